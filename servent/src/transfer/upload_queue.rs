//! The queue in front of our upload slots: PARQ 1.0 as gtk-gnutella
//! serves it (`doc/gnutella/PARQ`, `src/core/parq.c`), pure and clocked
//! from outside.
//!
//! Past the upload slots a requester is not simply refused: it gets a
//! place, told as `503 Queued` with
//! `X-Queued: position=P; length=L; limit=S; lifetime=T; ID=…` and a
//! `Retry-After`. The rules:
//! - first come, first served: a slot that frees goes to the head of the
//!   queue when it comes back, never to a newcomer while others wait;
//! - a queued requester keeps its place by coming back (with its `ID`, or
//!   from the same address for the same file) within the lifetime, and
//!   not before `Retry-After`: a request too early is refused (unless its
//!   turn has come) and keeps its place, one after the lifetime finds its
//!   place gone;
//! - per-address fairness: one address holds at most
//!   [`MAX_PLACES_PER_ADDRESS`] places, so one host cannot fill the queue;
//! - the queue is bounded ([`QueueConfig::max_length`]); past it, a bare
//!   `503` with `Retry-After`.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use search::Urn;

/// Places one address may hold at once.
pub const MAX_PLACES_PER_ADDRESS: usize = 4;

/// The queue's limits and timers.
#[derive(Clone, Copy, Debug)]
pub struct QueueConfig {
    /// Places at most.
    pub max_length: usize,
    /// How soon a queued requester may come back (`Retry-After`).
    pub retry: Duration,
    /// How long a place is kept without the requester coming back.
    pub lifetime: Duration,
}

impl Default for QueueConfig {
    fn default() -> QueueConfig {
        QueueConfig { max_length: 256, retry: Duration::from_secs(30), lifetime: Duration::from_secs(300) }
    }
}

/// One place in the queue, as we keep it.
#[derive(Clone, Debug)]
struct Entry {
    id: u64,
    addr: IpAddr,
    urn: Urn,
    /// When the requester last asked: it may come back from `retry` after it.
    asked: Instant,
}

/// What to do with a request for a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Serve it now (a slot is taken for it).
    Serve,
    /// Queued: answer `503` with this place.
    Queued(QueuePlace),
    /// Came back before `Retry-After`: refused, its place kept.
    TooEarly {
        /// When it may come back.
        retry: Duration,
    },
    /// No room in the queue: a bare `503`.
    Full {
        /// When to try again.
        retry: Duration,
    },
}

/// A queue place as told to the requester.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueuePlace {
    /// 1 for the head of the queue.
    pub position: usize,
    /// Places in the queue.
    pub length: usize,
    /// Its ID, to send back.
    pub id: u64,
    /// When to come back.
    pub retry: Duration,
    /// How long the place is kept.
    pub lifetime: Duration,
}

impl QueuePlace {
    /// The `X-Queued` value.
    pub fn x_queued(&self, slots: usize) -> String {
        format!(
            "position={}; length={}; limit={slots}; lifetime={}; ID={:016x}",
            self.position,
            self.length,
            self.lifetime.as_secs(),
            self.id
        )
    }
}

/// The queue; see the module documentation.
#[derive(Debug, Default)]
pub struct UploadQueue {
    config: QueueConfig,
    places: VecDeque<Entry>,
}

/// Reads the `ID=` of an `X-Queued` header a requester sent back.
pub fn returned_id(x_queued: &str) -> Option<u64> {
    x_queued.split([';', ',']).find_map(|part| {
        let (key, value) = part.trim().split_once('=')?;
        key.trim().eq_ignore_ascii_case("ID").then(|| u64::from_str_radix(value.trim(), 16).ok())?
    })
}

impl UploadQueue {
    /// An empty queue with these limits.
    pub fn new(config: QueueConfig) -> UploadQueue {
        UploadQueue { config, places: VecDeque::new() }
    }

    /// Places in the queue now.
    pub fn len(&self) -> usize {
        self.places.len()
    }

    /// Whether nobody waits.
    pub fn is_empty(&self) -> bool {
        self.places.is_empty()
    }

    /// Decides on a request from `addr` for `urn`, with the queue ID it
    /// sent back if any, while `free_slots` slots are free; `new_id` names
    /// a new place (random, so that nobody can take another's place).
    pub fn admit(
        &mut self,
        addr: IpAddr,
        urn: Urn,
        id: Option<u64>,
        free_slots: usize,
        now: Instant,
        new_id: u64,
    ) -> Admission {
        let lifetime = self.config.lifetime;
        self.places.retain(|p| now.duration_since(p.asked) < lifetime);
        let found = self
            .places
            .iter()
            .position(|p| p.addr == addr && (id == Some(p.id) || (p.urn == urn && id.is_none_or(|id| id == p.id))));
        match found {
            Some(index) => {
                if index < free_slots {
                    self.places.remove(index);
                    return Admission::Serve;
                }
                let since = now.duration_since(self.places[index].asked);
                if since < self.config.retry {
                    return Admission::TooEarly { retry: self.config.retry - since };
                }
                self.places[index].asked = now;
                Admission::Queued(self.told(index))
            }
            None if self.places.len() < free_slots => Admission::Serve,
            None => {
                let held = self.places.iter().filter(|p| p.addr == addr).count();
                if self.places.len() >= self.config.max_length || held >= MAX_PLACES_PER_ADDRESS {
                    return Admission::Full { retry: self.config.retry };
                }
                self.places.push_back(Entry { id: new_id, addr, urn, asked: now });
                Admission::Queued(self.told(self.places.len() - 1))
            }
        }
    }

    fn told(&self, index: usize) -> QueuePlace {
        QueuePlace {
            position: index + 1,
            length: self.places.len(),
            id: self.places[index].id,
            retry: self.config.retry,
            lifetime: self.config.lifetime,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, n))
    }

    fn urn(n: u8) -> Urn {
        Urn::Sha1([n; 20])
    }

    fn queue() -> UploadQueue {
        UploadQueue::new(QueueConfig {
            max_length: 8,
            retry: Duration::from_secs(10),
            lifetime: Duration::from_secs(60),
        })
    }

    fn queued(admission: Admission) -> QueuePlace {
        match admission {
            Admission::Queued(place) => place,
            other => panic!("not queued: {other:?}"),
        }
    }

    #[test]
    fn past_the_slots_requesters_queue_in_order_and_each_is_served_in_turn() {
        let mut q = queue();
        let t0 = Instant::now();
        // One slot, taken: three requesters queue in arrival order.
        let places: Vec<QueuePlace> =
            (1..=3).map(|n| queued(q.admit(ip(n), urn(1), None, 0, t0, u64::from(n)))).collect();
        assert_eq!(places.iter().map(|p| (p.position, p.length)).collect::<Vec<_>>(), vec![(1, 1), (2, 2), (3, 3)]);
        let later = t0 + Duration::from_secs(10);
        // A slot frees: the third coming back first does not take it.
        assert_eq!(queued(q.admit(ip(3), urn(1), Some(3), 1, later, 99)).position, 3);
        assert_eq!(q.admit(ip(1), urn(1), Some(1), 1, later, 99), Admission::Serve);
        // A newcomer waits behind those already queued, even with a slot free.
        assert_eq!(queued(q.admit(ip(4), urn(1), None, 1, later, 4)).position, 3);
        assert_eq!(
            q.admit(ip(2), urn(1), None, 1, later, 99),
            Admission::Serve,
            "same address and file keep the place"
        );
        let later = later + Duration::from_secs(10);
        assert_eq!(q.admit(ip(3), urn(1), Some(3), 1, later, 99), Admission::Serve);
        assert_eq!(q.admit(ip(4), urn(1), Some(4), 1, later, 99), Admission::Serve);
        assert!(q.is_empty());
        assert_eq!(q.admit(ip(5), urn(1), None, 1, later, 5), Admission::Serve, "an empty queue serves at once");
    }

    #[test]
    fn too_early_is_refused_and_keeps_the_place_too_late_loses_it() {
        let mut q = queue();
        let t0 = Instant::now();
        queued(q.admit(ip(1), urn(1), None, 0, t0, 7));
        queued(q.admit(ip(2), urn(1), None, 0, t0, 8));
        assert_eq!(
            q.admit(ip(2), urn(1), Some(8), 0, t0 + Duration::from_secs(4), 0),
            Admission::TooEarly { retry: Duration::from_secs(6) }
        );
        assert_eq!(queued(q.admit(ip(2), urn(1), Some(8), 0, t0 + Duration::from_secs(10), 0)).position, 2);
        // The first never comes back: after its lifetime the second is the head.
        let late = t0 + Duration::from_secs(61);
        assert_eq!(queued(q.admit(ip(2), urn(1), Some(8), 0, late, 0)).position, 1);
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn one_address_cannot_fill_the_queue_and_the_queue_is_bounded() {
        let mut q = queue();
        let t0 = Instant::now();
        for n in 0..MAX_PLACES_PER_ADDRESS as u8 {
            queued(q.admit(ip(1), urn(n), None, 0, t0, u64::from(n)));
        }
        assert!(matches!(q.admit(ip(1), urn(50), None, 0, t0, 50), Admission::Full { .. }));
        for n in 2..=5 {
            queued(q.admit(ip(n), urn(1), None, 0, t0, u64::from(n) + 100));
        }
        assert_eq!(q.len(), 8);
        assert!(matches!(q.admit(ip(9), urn(1), None, 0, t0, 9), Admission::Full { .. }));
    }

    #[test]
    fn another_address_cannot_take_a_place_by_its_id() {
        let mut q = queue();
        let t0 = Instant::now();
        queued(q.admit(ip(1), urn(1), None, 0, t0, 42));
        let stolen = q.admit(ip(2), urn(1), Some(42), 1, t0 + Duration::from_secs(10), 43);
        assert_eq!(queued(stolen).position, 2, "a stranger with the ID queues behind");
    }

    #[test]
    fn the_id_is_read_back_from_x_queued() {
        let place = QueuePlace {
            position: 2,
            length: 3,
            id: 0xab12,
            retry: Duration::from_secs(30),
            lifetime: Duration::from_secs(300),
        };
        let header = place.x_queued(1);
        assert_eq!(header, "position=2; length=3; limit=1; lifetime=300; ID=000000000000ab12");
        assert_eq!(returned_id(&header), Some(0xab12));
        assert_eq!(returned_id("position=3; ID=ab12"), Some(0xab12));
        assert_eq!(returned_id("position=3"), None);
        assert_eq!(returned_id("ID=zz"), None);
    }
}
