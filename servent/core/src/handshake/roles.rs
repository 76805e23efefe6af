//! Ultrapeers and leaves in the handshake: what we say of our role and
//! capabilities, what we read of the peer's, and who may link with whom.
//!
//! A leaf links only to ultrapeers (3 or 4 of them) and answers queries its
//! ultrapeers route to it through its QRP table; an ultrapeer links to
//! ultrapeers and shelters leaves. The headers, as gtk-gnutella 1.2
//! (`src/core/nodes.c`, `node_process_handshake_header`) and LimeWire send
//! and read them:
//! - `X-Ultrapeer: True|False`: the sender's role.
//! - `X-Ultrapeer-Needed: False` from an ultrapeer that answers an
//!   ultrapeer: "I have no room for you as an ultrapeer, be my leaf".
//!   `True`: it wants more ultrapeers. We send `False` when we have leaf
//!   slots but no ultrapeer slot ([`Admission::LeavesOnly`]); we honour it
//!   when [`Config::may_become_leaf`] (the node's mode is auto and it has no
//!   leaves) by answering `X-Ultrapeer: False` and becoming its leaf
//!   ([`PeerInfo::demoted`]); a configured ultrapeer refuses with
//!   `403 Not becoming a leaf node`, as gtk-gnutella does.
//! - `X-Query-Routing: 0.2`: QRP, with 1-bit patches; `X-Ultrapeer-Query-Routing: 0.1`:
//!   ultrapeers exchange last-hop tables.
//! - `X-Degree`: the ultrapeer links the sender keeps. A gtk-gnutella leaf
//!   refuses an ultrapeer with a degree under 16 or without
//!   `X-Dynamic-Querying` (`403 High Outdegree and Dynamic Querying
//!   Required`); it assumes 8 without the header.
//! - `X-Max-TTL`: the highest TTL the sender accepts (7 assumed without it).
//! - `Bye-Packet: 0.1`: the sender sends a Bye before closing.
//! - `GUID`: the sender's servent GUID in hex; `X-Live-Since`: when it
//!   started, as an RFC 822 date.
//!
//! - `Vendor-Message: 0.2`: the sender speaks vendor messages. gtk-gnutella
//!   sends its Messages Supported only to a peer whose handshake carries
//!   it; we send it both ways, as gtk-gnutella does.
//! - `X-Requeries: False`: the sender does not repeat its queries by
//!   itself. Sent both ways as gtk-gnutella does, kept and enforced as it
//!   does, never read (`node::querying::requeries`).

use std::net::SocketAddr;

use super::{last_value, push_header, Config};
use crate::wire::Guid;

/// Degree a gtk-gnutella leaf requires of an ultrapeer (twice its legacy 8).
pub const MODERN_DEGREE: u32 = 16;

/// The part a servent plays in the network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Links to ultrapeers and shelters leaves.
    #[default]
    Ultrapeer,
    /// Links only to ultrapeers, which route queries to it through QRP.
    Leaf,
}

/// The responder's decision about an incoming connection, taken before it reads step 1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Room for any peer our role links with: answer 200 OK.
    Accept,
    /// An ultrapeer with leaf slots but no ultrapeer slot: leaves are
    /// welcome, an ultrapeer is asked to become our leaf
    /// (`X-Ultrapeer-Needed: False`).
    LeavesOnly {
        /// Sent in `X-Try-Ultrapeers` (IPv4 only, at most [`super::MAX_TRY_SENT`]).
        try_ultrapeers: Vec<SocketAddr>,
    },
    /// An ultrapeer with ultrapeer slots but no leaf slot: a leaf is
    /// refused with `503 Too many leaves`.
    UltrapeersOnly {
        /// Sent in `X-Try-Ultrapeers` with the refusal.
        try_ultrapeers: Vec<SocketAddr>,
    },
    /// Answer `503 Full`, suggesting these addresses instead, then close.
    Full {
        /// Sent in `X-Try-Ultrapeers` (IPv4 only, at most [`super::MAX_TRY_SENT`]).
        try_ultrapeers: Vec<SocketAddr>,
    },
}

/// What the responder answers step 1 with, given its admission and the
/// initiator's role.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Answer {
    /// 200 OK, with `X-Ultrapeer-Needed: False` when `leaf_wanted`.
    Welcome {
        /// Ask the ultrapeer to become our leaf.
        leaf_wanted: bool,
    },
    /// Refuse with this code and reason, suggesting these addresses.
    Refuse(u16, &'static str, Vec<SocketAddr>),
}

/// Who may link with us, from the responder's side.
pub(super) fn answer(ours: Role, admission: Admission, peer_is_ultrapeer: bool) -> Answer {
    match (ours, admission, peer_is_ultrapeer) {
        (_, Admission::Full { try_ultrapeers }, _) => Answer::Refuse(503, "Full", try_ultrapeers),
        (Role::Leaf, Admission::Accept, false) => Answer::Refuse(503, "Shielded leaf node", Vec::new()),
        (Role::Leaf, Admission::LeavesOnly { try_ultrapeers } | Admission::UltrapeersOnly { try_ultrapeers }, _) => {
            Answer::Refuse(503, "Full", try_ultrapeers)
        }
        (Role::Leaf, Admission::Accept, true) => Answer::Welcome { leaf_wanted: false },
        (Role::Ultrapeer, Admission::Accept, _) => Answer::Welcome { leaf_wanted: false },
        (Role::Ultrapeer, Admission::LeavesOnly { .. }, false) => Answer::Welcome { leaf_wanted: false },
        (Role::Ultrapeer, Admission::LeavesOnly { .. }, true) => Answer::Welcome { leaf_wanted: true },
        (Role::Ultrapeer, Admission::UltrapeersOnly { .. }, true) => Answer::Welcome { leaf_wanted: false },
        (Role::Ultrapeer, Admission::UltrapeersOnly { try_ultrapeers }, false) => {
            Answer::Refuse(503, "Too many leaves", try_ultrapeers)
        }
    }
}

/// What the initiator does with a 200 in step 2, given the responder's headers.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Reply {
    /// Accept the link as we are.
    Accept,
    /// Accept and become the responder's leaf (`X-Ultrapeer: False` in step 3).
    BecomeLeaf,
    /// Refuse in step 3 with this code and reason.
    Refuse(u16, &'static str),
}

/// Who may link with us, from the initiator's side.
pub(super) fn reply(config: &Config, headers: &[(String, String)], peer_is_ultrapeer: bool) -> Reply {
    let leaf_wanted =
        peer_is_ultrapeer && last_value(headers, "X-Ultrapeer-Needed").is_some_and(|v| v.eq_ignore_ascii_case("false"));
    match config.role {
        Role::Leaf if !peer_is_ultrapeer => Reply::Refuse(503, "Shielded leaf node"),
        Role::Leaf => Reply::Accept,
        Role::Ultrapeer if leaf_wanted && config.may_become_leaf => Reply::BecomeLeaf,
        Role::Ultrapeer if leaf_wanted => Reply::Refuse(403, "Not becoming a leaf node"),
        Role::Ultrapeer => Reply::Accept,
    }
}

/// Our `X-Ultrapeer` header.
pub(super) fn write_role_header(out: &mut String, role: Role) {
    push_header(out, "X-Ultrapeer", if role == Role::Ultrapeer { "True" } else { "False" });
}

/// The capability headers that follow our addresses.
pub(super) fn write_capability_headers(out: &mut String, config: &Config) {
    push_header(out, "X-Query-Routing", "0.2");
    if config.role == Role::Ultrapeer {
        if config.ultrapeer_query_routing {
            push_header(out, "X-Ultrapeer-Query-Routing", "0.1");
        }
        push_header(out, "X-Degree", &config.degree.to_string());
        push_header(out, "X-Dynamic-Querying", "0.1");
    }
    push_header(out, "X-Max-TTL", &config.max_ttl.to_string());
    push_header(out, "Bye-Packet", "0.1");
    push_header(out, "Vendor-Message", "0.2");
    push_header(out, "X-Requeries", "False");
    if let Some(guid) = config.guid {
        push_header(out, "GUID", &guid.to_string());
    }
    if let Some(since) = config.live_since {
        push_header(out, "X-Live-Since", &rfc822(since));
    }
}

/// A Unix time as an RFC 822 date in GMT, e.g. `Sun, 06 Dec 2026 19:58:11 GMT`.
pub fn rfc822(unix: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let days = unix / 86_400;
    let secs = unix % 86_400;
    let (year, month, day) = crate::civil_from_days(days);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Reads `major.minor`, as gtk-gnutella's `parse_major_minor` does.
fn version(value: &str) -> Option<(u32, u32)> {
    let (major, minor) = value.trim().split_once('.')?;
    Some((major.trim().parse().ok()?, minor.trim().parse().ok()?))
}

impl super::PeerInfo {
    /// What a servent playing `role` with `degree` ultrapeer links and
    /// `X-Max-TTL: max_ttl` states in its handshake, as its peer reads it:
    /// for simulations that link cores without a handshake.
    pub fn stated(role: Role, degree: u32, max_ttl: u8) -> super::PeerInfo {
        let config = Config {
            user_agent: String::new(),
            listen: None,
            max_ttl,
            deflate: false,
            role,
            degree,
            may_become_leaf: false,
            ultrapeer_query_routing: true,
            guid: None,
            live_since: None,
        };
        let mut text = String::new();
        write_role_header(&mut text, role);
        write_capability_headers(&mut text, &config);
        let headers =
            text.lines().filter_map(|line| line.split_once(':')).map(|(n, v)| (n.to_string(), v.trim().to_string()));
        super::PeerInfo { ultrapeer: role == Role::Ultrapeer, headers: headers.collect(), ..super::PeerInfo::default() }
    }

    /// The peer's role: a leaf when it says so (`X-Ultrapeer: False`); a
    /// legacy servent that says nothing is a peer of a flat network, an
    /// ultrapeer link.
    pub fn role(&self) -> Role {
        let declared_leaf = !self.ultrapeer && self.header("X-Ultrapeer").is_some();
        if declared_leaf {
            Role::Leaf
        } else {
            Role::Ultrapeer
        }
    }

    /// The QRP version it speaks (`X-Query-Routing`), if any.
    pub fn query_routing(&self) -> Option<(u32, u32)> {
        self.header("X-Query-Routing").and_then(version)
    }

    /// Whether it sends and reads last-hop tables between ultrapeers.
    pub fn ultrapeer_query_routing(&self) -> bool {
        self.ultrapeer && self.header("X-Ultrapeer-Query-Routing").and_then(version).is_some()
    }

    /// Whether it is an ultrapeer that queries dynamically.
    pub fn dynamic_querying(&self) -> bool {
        self.ultrapeer && self.header("X-Dynamic-Querying").and_then(version).is_some()
    }

    /// The ultrapeer links it keeps (`X-Degree`, 1 to 1000), if it says.
    pub fn degree(&self) -> Option<u32> {
        self.header("X-Degree").and_then(|v| v.trim().parse().ok()).filter(|d| (1..=1000).contains(d))
    }

    /// The highest TTL it accepts (`X-Max-TTL`, 1 to 255), if it says.
    pub fn max_ttl(&self) -> Option<u8> {
        self.header("X-Max-TTL").and_then(|v| v.trim().parse().ok()).filter(|&t| t >= 1)
    }

    /// Whether an ultrapeer asked us to become its leaf (`X-Ultrapeer-Needed: False`).
    pub fn wants_leaves(&self) -> bool {
        self.ultrapeer && self.header("X-Ultrapeer-Needed").is_some_and(|v| v.eq_ignore_ascii_case("false"))
    }

    /// Its servent GUID (`GUID`), if well formed.
    pub fn guid(&self) -> Option<Guid> {
        self.header("GUID").and_then(|v| v.trim().parse().ok())
    }

    /// Whether it sends a Bye before closing (`Bye-Packet`).
    pub fn bye_packet(&self) -> bool {
        self.header("Bye-Packet").and_then(version).is_some()
    }
}
