//! Remote queueing as deployed servents speak it, and how long to wait
//! before asking a source again.
//!
//! A busy servent may answer `503` with a place in its queue instead of a
//! bare refusal: PARQ (gtk-gnutella's `X-Queued: position=3; length=9;
//! ETA=120; lifetime=600; ID=…`, see its `doc/gnutella/PARQ`) or
//! LimeWire's older `X-Queue: position=3, pollMin=45, pollMax=120`. The
//! client keeps its place by asking again after `Retry-After` (or
//! `pollMin`) and before the place's lifetime ends, naming the queue ID it
//! was given. [`QueueTicket`] is that place; [`retry_delay`] the back-off
//! after failures, so that no source is ever asked again in a tight loop.
//!
//! Pure: no I/O, no clock.

use std::time::Duration;

/// Longest queue ID kept (gtk-gnutella's are 32 hex digits).
const MAX_QUEUE_ID: usize = 64;
/// Variables read from one queue header at most.
const MAX_QUEUE_FIELDS: usize = 16;
/// How long a place is held when the source says nothing (PARQ's implicit
/// lifetime: `Retry-After` plus 60 seconds).
const IMPLICIT_LIFETIME_MARGIN: Duration = Duration::from_secs(60);
/// Shortest wait before asking a source again, whatever it says: a
/// `Retry-After: 0` must not become a tight loop.
pub const MIN_RETRY: Duration = Duration::from_secs(1);
/// Longest wait honoured; longer ones are cut to this.
pub const MAX_RETRY: Duration = Duration::from_secs(3600);
/// Back-off after the first failure; it doubles with each further one.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Longest back-off after failures.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Our place in a source's upload queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueTicket {
    /// Our position, 1 being next.
    pub position: u32,
    /// How many wait in that queue, when said.
    pub length: Option<u32>,
    /// The source's estimate of our wait, when said.
    pub eta: Option<Duration>,
    /// The queue ID to send back (PARQ); LimeWire's queue has none.
    pub id: Option<String>,
    /// Not before this long from the answer.
    pub retry: Duration,
    /// Ask again within this long from the answer, or lose the place.
    pub lifetime: Duration,
}

impl QueueTicket {
    /// The place a `503` announces, if its `X-Queued` (PARQ) or `X-Queue`
    /// (LimeWire) header names a position; `retry_after` is the answer's
    /// `Retry-After`, if any. Unknown variables are ignored; a header
    /// without a position is no place.
    pub fn from_headers(x_queued: Option<&str>, x_queue: Option<&str>, retry_after: Option<Duration>) -> Option<Self> {
        let value = x_queued.or(x_queue)?;
        let mut ticket = QueueTicket {
            position: 0,
            length: None,
            eta: None,
            id: None,
            retry: Duration::ZERO,
            lifetime: Duration::ZERO,
        };
        let (mut lifetime, mut poll_min, mut poll_max) = (None, None, None);
        for field in value.split([';', ',']).take(MAX_QUEUE_FIELDS) {
            let Some((name, value)) = field.split_once('=') else { continue };
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
            let number = value.parse::<u32>().ok();
            match name.as_str() {
                "position" => ticket.position = number.filter(|&p| p > 0)?,
                "length" => ticket.length = number,
                "eta" => ticket.eta = number.map(secs),
                "lifetime" => lifetime = number.map(secs),
                "pollmin" => poll_min = number.map(secs),
                "pollmax" => poll_max = number.map(secs),
                "id" if !value.is_empty()
                    && value.len() <= MAX_QUEUE_ID
                    && value.bytes().all(|b| b.is_ascii_alphanumeric()) =>
                {
                    ticket.id = Some(value.to_string());
                }
                _ => {}
            }
        }
        if ticket.position == 0 {
            return None;
        }
        ticket.retry = bounded(retry_after.or(poll_min).unwrap_or(DEFAULT_QUEUE_RETRY));
        let lifetime = lifetime.or(poll_max).unwrap_or(ticket.retry + IMPLICIT_LIFETIME_MARGIN);
        ticket.lifetime = lifetime.max(ticket.retry);
        Some(ticket)
    }

    /// The `X-Queued` header value a request sends back to keep the place
    /// (PARQ), if the source gave an ID.
    pub fn x_queued(&self) -> Option<String> {
        self.id.as_ref().map(|id| format!("position={}; ID={id}", self.position))
    }
}

/// The wait when a queue says neither `Retry-After` nor `pollMin`.
const DEFAULT_QUEUE_RETRY: Duration = Duration::from_secs(60);

fn secs(n: u32) -> Duration {
    Duration::from_secs(u64::from(n))
}

/// A source's requested wait, kept within [`MIN_RETRY`]..=[`MAX_RETRY`].
pub fn bounded(wait: Duration) -> Duration {
    wait.clamp(MIN_RETRY, MAX_RETRY)
}

/// How long to leave a source alone after its `failures`-th failure in a
/// row (counting from 1): one second, doubling each time, at most five
/// minutes.
pub fn retry_delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    (FIRST_BACKOFF * 2u32.pow(doublings)).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parq_place_is_read_with_its_id_and_lifetime() {
        let ticket = QueueTicket::from_headers(
            Some("position=1503; length=1840; ETA=4200; lifetime=3600; ID=6a074979f3201edbf323b6425fef4a53"),
            None,
            Some(secs(600)),
        )
        .unwrap();
        assert_eq!(
            ticket,
            QueueTicket {
                position: 1503,
                length: Some(1840),
                eta: Some(secs(4200)),
                id: Some("6a074979f3201edbf323b6425fef4a53".into()),
                retry: secs(600),
                lifetime: secs(3600),
            }
        );
        assert_eq!(ticket.x_queued().unwrap(), "position=1503; ID=6a074979f3201edbf323b6425fef4a53");
    }

    #[test]
    fn limewire_queue_polls_between_its_bounds() {
        let ticket = QueueTicket::from_headers(None, Some("position=2, length=5, pollMin=45, pollMax=120"), None);
        let ticket = ticket.unwrap();
        assert_eq!((ticket.position, ticket.retry, ticket.lifetime), (2, secs(45), secs(120)));
        assert_eq!(ticket.x_queued(), None, "no ID to send back");
    }

    #[test]
    fn missing_lifetime_is_retry_after_plus_a_minute() {
        let ticket = QueueTicket::from_headers(Some("position=4;ID=ab"), None, Some(secs(30))).unwrap();
        assert_eq!((ticket.retry, ticket.lifetime), (secs(30), secs(90)));
        let ticket = QueueTicket::from_headers(Some("position=4"), None, None).unwrap();
        assert_eq!((ticket.retry, ticket.lifetime), (secs(60), secs(120)));
    }

    #[test]
    fn hostile_queue_headers_are_no_place_or_are_bounded() {
        for value in ["", "length=3", "position=0; ID=x", "position=-1", "position=99999999999", "garbage"] {
            assert_eq!(QueueTicket::from_headers(Some(value), None, None), None, "{value}");
        }
        let ticket = QueueTicket::from_headers(Some("position=1; lifetime=1"), None, Some(Duration::ZERO)).unwrap();
        assert_eq!(ticket.retry, MIN_RETRY, "Retry-After: 0 is no tight loop");
        assert_eq!(ticket.lifetime, MIN_RETRY, "a lifetime never ends before the retry");
        let ticket = QueueTicket::from_headers(Some("position=1"), None, Some(secs(1_000_000))).unwrap();
        assert_eq!(ticket.retry, MAX_RETRY);
        let long_id = format!("position=1; ID={}", "a".repeat(65));
        assert_eq!(QueueTicket::from_headers(Some(&long_id), None, None).unwrap().id, None);
        let odd_id = "position=1; ID=ab\r\nX-Evil: 1";
        assert_eq!(QueueTicket::from_headers(Some(odd_id), None, None).unwrap().id, None);
    }

    #[test]
    fn failures_back_off_exponentially_up_to_a_bound() {
        let delays: Vec<u64> = (1..=10).map(|n| retry_delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]);
        assert_eq!(retry_delay(0), secs(1));
        assert_eq!(retry_delay(u32::MAX), MAX_BACKOFF);
    }
}
