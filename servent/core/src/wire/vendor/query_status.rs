//! Query Status Request and Response (BEAR/11 and BEAR/12, version 1):
//! leaf guidance of a dynamic query.
//!
//! An ultrapeer running a leaf's query dynamically asks the leaf how many
//! results it kept; both messages carry the query's GUID as their own
//! (gtk-gnutella's `vmsg.c`). The request has no body; the response is a
//! little-endian u16 count, 0xFFFF meaning "stop, I have enough or the
//! search is gone".

use super::{Kind, Vendor};
use crate::wire::WireError;

/// The body of a Query Status Response: results the leaf kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueryStatus(pub u16);

impl QueryStatus {
    /// "Stop this query."
    pub const STOP: QueryStatus = QueryStatus(0xFFFF);

    /// What a leaf answers for a search that kept `kept` results (at most
    /// 0xFFFE, so that a count never reads as "stop").
    pub fn kept(kept: usize) -> QueryStatus {
        QueryStatus(u16::try_from(kept).unwrap_or(u16::MAX).min(0xFFFE))
    }

    /// Whether the leaf asks to stop.
    pub fn is_stop(self) -> bool {
        self == QueryStatus::STOP
    }

    /// Reads the body of a response.
    pub fn decode(body: &[u8]) -> Result<QueryStatus, WireError> {
        match body {
            [low, high, ..] => Ok(QueryStatus(u16::from_le_bytes([*low, *high]))),
            _ => Err(WireError::Truncated { what: "query status" }),
        }
    }

    /// The response to send.
    pub fn to_vendor(self) -> Vendor {
        Vendor { kind: Kind::QUERY_STATUS_RESPONSE, body: self.0.to_le_bytes().to_vec() }
    }

    /// The request to send: it has no body.
    pub fn request() -> Vendor {
        Vendor { kind: Kind::QUERY_STATUS_REQUEST, body: Vec::new() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_is_a_little_endian_count_and_ffff_stops() {
        let vendor = QueryStatus::kept(300).to_vendor();
        assert_eq!(vendor.body, [0x2C, 0x01]);
        assert_eq!(QueryStatus::decode(&vendor.body), Ok(QueryStatus(300)));
        assert!(!QueryStatus::kept(1 << 20).is_stop(), "a large count is no stop");
        assert!(QueryStatus::decode(&[0xFF, 0xFF]).unwrap().is_stop());
        assert!(matches!(QueryStatus::decode(&[1]), Err(WireError::Truncated { .. })));
        assert!(QueryStatus::request().body.is_empty());
    }
}
