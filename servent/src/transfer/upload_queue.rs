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
//! - `Retry-After` says when the place's turn may come, not a fixed wait:
//!   the slots send [`Slots::total`] bodies at a time, each in about
//!   [`Slots::body`], so the `P`th place is told `⌈P / slots⌉ × body`
//!   (whole seconds, at least [`MIN_RETRY`], at most
//!   [`QueueConfig::retry`]). A fixed minute left the slots idle: a crowd
//!   fetching a new release in 256 KiB chunks frees them every second, and
//!   each requester came back a minute later;
//! - the places whose turn comes within [`MAX_OPEN_WAIT`] (PARQ's
//!   synchronous queue) keep their connection open when the request
//!   allows it (HTTP/1.1): the requester asks again on it after
//!   `Retry-After` (ours and gtk-gnutella's do), so a short wait costs no
//!   new connection. Any other place's connection closes,
//!   and it is told at least [`MIN_RETRY`], 10 s, as gtk-gnutella
//!   (`PARQ_MIN_POLL`): each of its visits is a connection, and a requester
//!   obeying a shorter wait would be cut off as hammering (ours at
//!   [`MAX_CONNECTS_PER_MINUTE`] a minute, gtk-gnutella's at 5);
//! - a requester later than [`LATE`] past when it is expected back holds
//!   no slot for its turn (it keeps its place: it is served first when it
//!   comes back to a free slot): a downloader that found the rest
//!   elsewhere, or finished, never comes back, and the places it left at
//!   the head of the queue would keep the slots idle until their lifetime
//!   ran out. `Retry-After` is only the least wait of the deployed
//!   downloaders: gtk-gnutella's comes back after its told position × 30 s
//!   (at most the lifetime − 40 s; `parq.c`,
//!   `parq_download_parse_queue_status`) when the `503` keeps the
//!   connection, and, as ours closes it, after the latest of `Retry-After`,
//!   20 s (`downloads.c`, `download_retry_timeout_min`), 15 s per server
//!   (`DOWNLOAD_SERVER_HOLD`) and 12 s after it last connected to us
//!   (`DOWNLOAD_CONNECT_DELAY`): about 21 s, 27 s when it fetched the
//!   file's tree meanwhile (`tests/gtkg_parq.rs`). A place is expected
//!   back until the later of `Retry-After` and the position timer, unless
//!   its requester has just shown that it comes back by `Retry-After`: it
//!   came back within [`LATE`] of it last time, and sooner than
//!   gtk-gnutella ever does (less than [`GTKG_EARLIEST_RETURN`] −
//!   [`LATE`], a margin for the two requests' own latency): then by
//!   `Retry-After` alone. Coming back in time from a `Retry-After` near
//!   20 s shows nothing: gtk-gnutella does so too, and comes back 20 s
//!   later whatever it is told next;
//! - absent places hold free slots for a bounded while: once a present
//!   requester has been refused with a slot free for [`HOLD`] (and no
//!   moment with all slots busy seen since), every place that asked before
//!   then holds no slot until it comes back (it keeps its place). Places
//!   refreshed only while enough places ahead are expected kept both
//!   slots idle for twelve minutes before;
//! - per-address fairness: one address holds at most
//!   [`MAX_PLACES_PER_ADDRESS`] places, so one host cannot fill the queue;
//! - the queue is bounded ([`QueueConfig::max_length`]); past it, a bare
//!   `503` with `Retry-After`.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use search::Urn;
use servent_core::node::MAX_CONNECTS_PER_MINUTE;

/// Places one address may hold at once.
pub const MAX_PLACES_PER_ADDRESS: usize = 4;
/// How late past its `Retry-After` a queued requester may come back and
/// still have a slot kept for its turn.
pub const LATE: Duration = Duration::from_secs(5);
/// The soonest gtk-gnutella 1.2.3's downloader comes back after a `503`
/// that closed the connection, whatever `Retry-After` says (`downloads.c`,
/// `download_retry_timeout_min`).
const GTKG_EARLIEST_RETURN: Duration = Duration::from_secs(20);
/// How long free slots are kept for absent places while a present
/// requester is refused: long enough for gtk-gnutella's head of the queue
/// to come back by its position timer.
const HOLD: Duration = TIMER_BY_POSITION.saturating_add(LATE);
/// The shortest `Retry-After` of a place whose connection closes,
/// gtk-gnutella's `PARQ_MIN_POLL`: a requester obeying it connects at most
/// [`MAX_CONNECTS_PER_MINUTE`] times a minute.
pub const MIN_RETRY: Duration = Duration::from_secs(10);
/// The shortest `Retry-After` on a connection kept open (HTTP's are whole
/// seconds).
const MIN_RETRY_OPEN: Duration = Duration::from_secs(1);
/// The longest wait on a connection kept open: well within the time a
/// connection may stay idle, and gtk-gnutella's position timer at the head.
const MAX_OPEN_WAIT: Duration = Duration::from_secs(20);
const _: () = assert!(60 / MIN_RETRY.as_secs() <= MAX_CONNECTS_PER_MINUTE as u64);
/// How long gtk-gnutella's downloader waits for each place before its own
/// (`PARQ_TIMER_BY_POS`).
const TIMER_BY_POSITION: Duration = Duration::from_secs(30);
/// How long before the place's lifetime ends gtk-gnutella's downloader
/// comes back at the latest (`PARQ_RETRY_SAFETY`).
const RETRY_SAFETY: Duration = Duration::from_secs(40);

/// The upload slots as a request finds them: how many are free, how many
/// bodies go out at once, and about how long one takes (the request's own
/// length at a slot's share of the upload cap).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slots {
    /// Slots free now.
    pub free: usize,
    /// Bodies sent at once.
    pub total: usize,
    /// About how long one body takes.
    pub body: Duration,
}

impl Slots {
    /// The `Retry-After` of the `position`th place (from 1): when its turn
    /// may come, in whole seconds, from `least` up to `longest`.
    pub fn retry(&self, position: usize, least: Duration, longest: Duration) -> Duration {
        let rounds = u32::try_from(position.div_ceil(self.total.max(1))).unwrap_or(u32::MAX);
        let wait = self.body.saturating_mul(rounds);
        let whole = Duration::from_secs(wait.as_secs() + u64::from(wait.subsec_nanos() > 0));
        whole.clamp(least, longest.max(least))
    }
}

/// A request for a file, as the queue judges it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// Where it comes from.
    pub addr: IpAddr,
    /// The file.
    pub urn: Urn,
    /// The queue ID it sent back, if any.
    pub id: Option<u64>,
    /// Whether its connection may stay open after the answer (HTTP/1.1
    /// keep-alive).
    pub persistent: bool,
}

/// The queue's limits and timers.
#[derive(Clone, Copy, Debug)]
pub struct QueueConfig {
    /// Places at most.
    pub max_length: usize,
    /// The longest `Retry-After` told; a place's own is shorter when the
    /// slots turn over faster ([`Slots::retry`]).
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
    /// The `Retry-After` it was told then.
    retry: Duration,
    /// When gtk-gnutella's downloader would come back after `asked`, by
    /// the position it was told.
    timer: Duration,
    /// Whether its requester came back last time within [`LATE`] of its
    /// `Retry-After` and sooner than [`GTKG_EARLIEST_RETURN`] − [`LATE`]: it
    /// follows `Retry-After`, not a timer of its own.
    prompt: bool,
}

impl Entry {
    /// How long after `asked` its requester is expected back: by its
    /// `Retry-After` if it has shown that it follows it, else by the later
    /// of that and the deployed downloader's timer.
    fn due(&self) -> Duration {
        if self.prompt {
            self.retry
        } else {
            self.retry.max(self.timer)
        }
    }

    /// Whether its requester may still come back in time for its turn.
    fn expected(&self, now: Instant) -> bool {
        now < self.asked + self.due() + LATE
    }
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
    /// Whether the connection stays open: the requester asks again on it.
    pub keep_open: bool,
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
    /// Since when a present requester has been refused with a slot free,
    /// no moment with all slots busy seen since.
    refused_free: Option<Instant>,
    /// Places that asked before this hold no slot until they come back.
    held_until: Option<Instant>,
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
        UploadQueue { config, places: VecDeque::new(), refused_free: None, held_until: None }
    }

    /// Places in the queue now.
    pub fn len(&self) -> usize {
        self.places.len()
    }

    /// Whether nobody waits.
    pub fn is_empty(&self) -> bool {
        self.places.is_empty()
    }

    /// Decides on `request` with the `slots` as they are; `new_id` names a
    /// new place (random, so that nobody can take another's place).
    pub fn admit(&mut self, request: Request, slots: Slots, now: Instant, new_id: u64) -> Admission {
        let lifetime = self.config.lifetime;
        self.places.retain(|p| now.duration_since(p.asked) < lifetime);
        self.held_until = self.held_until(now);
        if slots.free == 0 || self.refused_free.is_some_and(|since| since + HOLD <= now) {
            self.refused_free = None;
        }
        let admission = self.decide(request, slots, now, new_id);
        if slots.free > 0 && admission != Admission::Serve {
            self.refused_free.get_or_insert(now);
        }
        admission
    }

    /// [`UploadQueue::admit`]'s decision, the queue's timers brought up
    /// to `now`.
    fn decide(&mut self, request: Request, slots: Slots, now: Instant, new_id: u64) -> Admission {
        let Request { addr, urn, id, persistent } = request;
        let found = self
            .places
            .iter()
            .position(|p| p.addr == addr && (id == Some(p.id) || (p.urn == urn && id.is_none_or(|id| id == p.id))));
        match found {
            Some(index) => {
                let ahead = self.expected_before(index, now);
                if ahead < slots.free {
                    self.places.remove(index);
                    return Admission::Serve;
                }
                let entry = &mut self.places[index];
                let since = now.duration_since(entry.asked);
                if since < entry.retry {
                    return Admission::TooEarly { retry: entry.retry - since };
                }
                entry.prompt = since < entry.retry + LATE && since + LATE < GTKG_EARLIEST_RETURN;
                Admission::Queued(self.tell(index, ahead + 1, slots, persistent, now))
            }
            None if self.expected_before(self.places.len(), now) < slots.free => Admission::Serve,
            None => {
                let held = self.places.iter().filter(|p| p.addr == addr).count();
                if self.places.len() >= self.config.max_length || held >= MAX_PLACES_PER_ADDRESS {
                    return Admission::Full { retry: self.config.retry };
                }
                let ahead = self.expected_before(self.places.len(), now);
                let entry =
                    Entry { id: new_id, addr, urn, asked: now, retry: MIN_RETRY, timer: Duration::ZERO, prompt: false };
                self.places.push_back(entry);
                Admission::Queued(self.tell(self.places.len() - 1, ahead + 1, slots, persistent, now))
            }
        }
    }

    /// Places before `index` whose requesters may still come back in time
    /// and still hold a slot.
    fn expected_before(&self, index: usize, now: Instant) -> usize {
        let held_until = self.held_until(now);
        self.places
            .iter()
            .take(index)
            .filter(|p| p.expected(now) && held_until.is_none_or(|until| p.asked >= until))
            .count()
    }

    /// Before when places asked that hold no slot now: when a present
    /// requester had been refused with a slot free for [`HOLD`].
    fn held_until(&self, now: Instant) -> Option<Instant> {
        let ended = self.refused_free.map(|since| since + HOLD).filter(|&end| end <= now);
        self.held_until.max(ended)
    }

    /// Tells the place at `index`, the `position`th of those expected, when
    /// to come back (on its connection, kept open when `persistent` allows
    /// and its turn comes within [`MAX_OPEN_WAIT`]), and remembers it.
    fn tell(&mut self, index: usize, position: usize, slots: Slots, persistent: bool, now: Instant) -> QueuePlace {
        let soon = slots.retry(position, MIN_RETRY_OPEN, self.config.retry);
        let keep_open = persistent && soon <= MAX_OPEN_WAIT;
        let retry = if keep_open { soon } else { soon.max(MIN_RETRY) };
        let by_position = TIMER_BY_POSITION.saturating_mul(u32::try_from(position).unwrap_or(u32::MAX));
        let length = self.places.len();
        let entry = &mut self.places[index];
        entry.asked = now;
        entry.retry = retry;
        entry.timer = by_position.min(self.config.lifetime.saturating_sub(RETRY_SAFETY));
        QueuePlace { position, length, id: entry.id, retry, lifetime: self.config.lifetime, keep_open }
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

    /// A request whose connection closes after a `503`.
    fn closed(addr: IpAddr, urn: Urn, id: Option<u64>) -> Request {
        Request { addr, urn, id, persistent: false }
    }

    /// `free` slots free of one, each body taking as long as the queue's
    /// longest `Retry-After`: every place is told that.
    fn slots(free: usize) -> Slots {
        Slots { free, total: 1, body: Duration::from_secs(10) }
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
            (1..=3).map(|n| queued(q.admit(closed(ip(n), urn(1), None), slots(0), t0, u64::from(n)))).collect();
        assert_eq!(places.iter().map(|p| (p.position, p.length)).collect::<Vec<_>>(), vec![(1, 1), (2, 2), (3, 3)]);
        let later = t0 + Duration::from_secs(10);
        // A slot frees: the third coming back first does not take it.
        assert_eq!(queued(q.admit(closed(ip(3), urn(1), Some(3)), slots(1), later, 99)).position, 3);
        assert_eq!(q.admit(closed(ip(1), urn(1), Some(1)), slots(1), later, 99), Admission::Serve);
        // A newcomer waits behind those already queued, even with a slot free.
        assert_eq!(queued(q.admit(closed(ip(4), urn(1), None), slots(1), later, 4)).position, 3);
        assert_eq!(
            q.admit(closed(ip(2), urn(1), None), slots(1), later, 99),
            Admission::Serve,
            "same address and file keep the place"
        );
        let later = later + Duration::from_secs(10);
        assert_eq!(q.admit(closed(ip(3), urn(1), Some(3)), slots(1), later, 99), Admission::Serve);
        assert_eq!(q.admit(closed(ip(4), urn(1), Some(4)), slots(1), later, 99), Admission::Serve);
        assert!(q.is_empty());
        assert_eq!(
            q.admit(closed(ip(5), urn(1), None), slots(1), later, 5),
            Admission::Serve,
            "an empty queue serves at once"
        );
    }

    #[test]
    fn the_retry_after_says_when_the_turn_may_come_as_the_slots_turn_over() {
        let crowd = Slots { free: 0, total: 4, body: Duration::from_secs(10) };
        let told: Vec<u64> = (1..=9).map(|p| crowd.retry(p, MIN_RETRY, Duration::from_secs(60)).as_secs()).collect();
        assert_eq!(told, [10, 10, 10, 10, 20, 20, 20, 20, 30]);
        let short = Slots { body: Duration::from_millis(300), ..crowd };
        let told: Vec<u64> = (1..=9).map(|p| short.retry(p, MIN_RETRY, Duration::from_secs(60)).as_secs()).collect();
        assert_eq!(told, [10; 9], "never below gtk-gnutella's least poll: no requester hammers");
        let slow = Slots { body: Duration::from_millis(10_500), ..crowd };
        assert_eq!(slow.retry(1, MIN_RETRY, Duration::from_secs(60)), Duration::from_secs(11), "rounded up");
        assert_eq!(
            slow.retry(400, MIN_RETRY, Duration::from_secs(60)),
            Duration::from_secs(60),
            "never above the longest"
        );
        let instant = Slots { body: Duration::ZERO, total: 0, ..crowd };
        assert_eq!(instant.retry(usize::MAX, MIN_RETRY, Duration::from_secs(60)), MIN_RETRY);
    }

    /// PARQ's synchronous queue: the places whose turn comes within
    /// [`MAX_OPEN_WAIT`] keep their connection open, if the request allows
    /// it, and are told how soon that is; the others' connections close, and
    /// they are told no less than [`MIN_RETRY`].
    #[test]
    fn the_head_of_the_queue_waits_on_its_open_connection_the_rest_comes_back_later() {
        let mut q = UploadQueue::new(QueueConfig { max_length: 64, ..QueueConfig::default() });
        let slots = Slots { free: 0, total: 2, body: Duration::from_secs(4) };
        let t0 = Instant::now();
        let open = |n: u8| Request { addr: ip(n), urn: urn(1), id: None, persistent: true };
        let told: Vec<(u64, bool)> = (1..=12)
            .map(|n| queued(q.admit(open(n), slots, t0, u64::from(n))))
            .map(|p| (p.retry.as_secs(), p.keep_open))
            .collect();
        let open_then_closed =
            [4, 4, 8, 8, 12, 12, 16, 16, 20, 20].map(|s| (s, true)).into_iter().chain([(24, false); 2]);
        assert_eq!(told, open_then_closed.collect::<Vec<_>>());
        let place = queued(q.admit(closed(ip(13), urn(1), None), slots, t0, 13));
        assert_eq!((place.position, place.retry, place.keep_open), (13, Duration::from_secs(28), false));
        let quick = Slots { body: Duration::from_secs(1), ..slots };
        let place = queued(q.admit(closed(ip(14), urn(1), None), quick, t0, 14));
        assert_eq!((place.retry, place.keep_open), (MIN_RETRY, false), "a closed connection waits 10 s at least");
        let mut q = UploadQueue::new(QueueConfig::default());
        let place = queued(q.admit(closed(ip(1), urn(1), None), slots, t0, 1));
        assert_eq!((place.position, place.retry, place.keep_open), (1, MIN_RETRY, false), "HTTP/1.0 closes");
    }

    /// A requester obeying every `Retry-After` it is told, however fast
    /// the slots turn over, is never cut off as hammering.
    #[test]
    fn a_requester_obeying_retry_after_never_hammers() {
        let mut hammering = servent_core::node::Hammering::default();
        let mut q = UploadQueue::new(QueueConfig::default());
        let crowd = |free| Slots { free, total: 4, body: Duration::from_millis(100) };
        let (requester, t0) = (IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)), Instant::now());
        queued(q.admit(closed(ip(1), urn(1), None), crowd(0), t0, 1));
        let mut now = t0;
        let mut id = None;
        for _ in 0..30 {
            assert!(hammering.allow(requester, now), "cut off at {:?}", now - t0);
            let place = queued(q.admit(closed(requester, urn(1), id), crowd(0), now, 2));
            id = Some(place.id);
            now += place.retry;
        }
    }

    /// The flash crowd's publisher, a file shared whole: four slots, a
    /// body every 10 s in each, eight downloaders. Each requester is served
    /// or told to come back when a slot is due, so the slots never stand
    /// idle while the crowd waits (they were told the longest wait, a
    /// minute, before).
    #[test]
    fn a_crowd_is_served_as_fast_as_the_slots_free() {
        let mut q = UploadQueue::new(QueueConfig { retry: Duration::from_secs(60), ..QueueConfig::default() });
        let slots = |free| Slots { free, total: 4, body: Duration::from_secs(10) };
        let t0 = Instant::now();
        let mut retries = Vec::new();
        for n in 1..=8u8 {
            let free = 4usize.saturating_sub(usize::from(n) - 1);
            match q.admit(closed(ip(n), urn(1), None), slots(free), t0, u64::from(n)) {
                Admission::Serve => {}
                other => retries.push((n, queued(other).retry.as_secs())),
            }
        }
        assert_eq!(retries, [(5, 10), (6, 10), (7, 10), (8, 10)]);
        // When the four slots free, the four served come back for their
        // next chunk: they queue behind, told 20 s.
        let t1 = t0 + Duration::from_secs(10);
        for n in 1..=4u8 {
            let place = queued(q.admit(closed(ip(n), urn(1), None), slots(4), t1, u64::from(n)));
            assert_eq!((place.position, place.retry.as_secs()), (usize::from(n) + 4, 20));
        }
        // The first four queued come back then: their turn.
        for n in 5..=8u8 {
            assert_eq!(
                q.admit(closed(ip(n), urn(1), Some(u64::from(n))), slots(4 - usize::from(n - 5)), t1, 0),
                Admission::Serve
            );
        }
        let t3 = t1 + Duration::from_secs(20);
        for n in 1..=4u8 {
            assert_eq!(
                q.admit(closed(ip(n), urn(1), Some(u64::from(n))), slots(4 - usize::from(n - 1)), t3, 0),
                Admission::Serve
            );
        }
        assert!(q.is_empty());
    }

    /// Downloaders that found the rest elsewhere never come back: once a
    /// requester has shown that it comes back by `Retry-After`, its place
    /// holds no slot past that and [`LATE`], and one that comes back after
    /// all is still served before those behind it.
    #[test]
    fn places_whose_requesters_did_not_come_back_hold_no_slot() {
        let mut q = queue();
        let slots = |free| Slots { free, total: 4, body: Duration::from_secs(1) };
        let t0 = Instant::now();
        for n in 1..=3u8 {
            assert_eq!(queued(q.admit(closed(ip(n), urn(1), None), slots(0), t0, u64::from(n))).retry, MIN_RETRY);
        }
        // They come back by their Retry-After, still before their turn.
        let t1 = t0 + MIN_RETRY;
        for n in 1..=3u8 {
            assert_eq!(
                queued(q.admit(closed(ip(n), urn(1), Some(u64::from(n))), slots(0), t1, 0)).position,
                usize::from(n)
            );
        }
        // In time, their turns are kept from a newcomer.
        let due = t1 + MIN_RETRY + LATE - Duration::from_millis(1);
        assert_eq!(queued(q.admit(closed(ip(9), urn(1), None), slots(2), due, 9)).position, 4);
        // Too late: the first three hold no slot. The second comes back
        // after all: served before the newcomer behind it, which is served
        // in turn.
        let late = t1 + MIN_RETRY + LATE;
        assert_eq!(q.admit(closed(ip(2), urn(1), Some(2)), slots(1), late, 0), Admission::Serve);
        assert_eq!(q.admit(closed(ip(9), urn(1), Some(9)), slots(1), late, 0), Admission::Serve);
        assert_eq!(q.len(), 2);
    }

    /// A place whose requester has not yet shown when it comes back is
    /// expected by the deployed downloader's timer (gtk-gnutella's, its
    /// position × 30 s, at most the lifetime − 40 s), then holds no slot:
    /// what a downloader that never comes back costs.
    #[test]
    fn a_new_place_is_expected_by_the_deployed_timer_then_holds_no_slot() {
        let mut q = UploadQueue::new(QueueConfig { lifetime: Duration::from_secs(100), ..QueueConfig::default() });
        let slots = |free| Slots { free, total: 4, body: Duration::from_secs(1) };
        let t0 = Instant::now();
        for n in 1..=3u8 {
            queued(q.admit(closed(ip(n), urn(1), None), slots(0), t0, u64::from(n)));
        }
        let expected = |secs| q.expected_before(q.len(), t0 + Duration::from_secs(secs));
        assert_eq!(expected(34), 3, "the first expected until 30 s + LATE");
        assert_eq!(expected(35), 2);
        assert_eq!(expected(64), 2, "the second and third until 60 s (the lifetime − 40 s) + LATE");
        assert_eq!(expected(65), 0);
        assert_eq!(q.admit(closed(ip(9), urn(1), None), slots(1), t0 + Duration::from_secs(65), 9), Admission::Serve);
    }

    #[test]
    fn too_early_is_refused_and_keeps_the_place_too_late_loses_it() {
        let mut q = queue();
        let t0 = Instant::now();
        queued(q.admit(closed(ip(1), urn(1), None), slots(0), t0, 7));
        queued(q.admit(closed(ip(2), urn(1), None), slots(0), t0, 8));
        assert_eq!(
            q.admit(closed(ip(2), urn(1), Some(8)), slots(0), t0 + Duration::from_secs(4), 0),
            Admission::TooEarly { retry: Duration::from_secs(6) }
        );
        assert_eq!(
            queued(q.admit(closed(ip(2), urn(1), Some(8)), slots(0), t0 + Duration::from_secs(10), 0)).position,
            2
        );
        // The first never comes back: after its lifetime the second is the head.
        let late = t0 + Duration::from_secs(61);
        assert_eq!(queued(q.admit(closed(ip(2), urn(1), Some(8)), slots(0), late, 0)).position, 1);
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn one_address_cannot_fill_the_queue_and_the_queue_is_bounded() {
        let mut q = queue();
        let t0 = Instant::now();
        for n in 0..MAX_PLACES_PER_ADDRESS as u8 {
            queued(q.admit(closed(ip(1), urn(n), None), slots(0), t0, u64::from(n)));
        }
        assert!(matches!(q.admit(closed(ip(1), urn(50), None), slots(0), t0, 50), Admission::Full { .. }));
        for n in 2..=5 {
            queued(q.admit(closed(ip(n), urn(1), None), slots(0), t0, u64::from(n) + 100));
        }
        assert_eq!(q.len(), 8);
        assert!(matches!(q.admit(closed(ip(9), urn(1), None), slots(0), t0, 9), Admission::Full { .. }));
    }

    /// gtk-gnutella 1.2.3's downloader, told `503 Queued`, comes back
    /// `position × 30 s` later (`parq.c`, `parq_download_parse_queue_status`:
    /// `Retry-After` is only its least, `PARQ_TIMER_BY_POS`), well within the
    /// lifetime. Were it expected by `Retry-After` alone (10 s at the head),
    /// it would be "late" from 15 s on, and the slot that frees would go to
    /// whoever queued behind it and comes back every 10 s: in a crowd of our
    /// servents a gtk-gnutella downloader would find a free slot only by
    /// chance.
    #[test]
    fn a_gtk_gnutella_downloader_coming_back_by_its_position_keeps_its_turn() {
        let mut q = UploadQueue::new(QueueConfig { retry: Duration::from_secs(60), ..QueueConfig::default() });
        let slots = |free| Slots { free, total: 4, body: Duration::from_secs(1) };
        let t0 = Instant::now();
        let gtkg = queued(q.admit(closed(ip(1), urn(1), None), slots(0), t0, 1));
        assert_eq!((gtkg.position, gtkg.retry), (1, MIN_RETRY));
        queued(q.admit(closed(ip(2), urn(1), None), slots(0), t0, 2));
        // One of ours, queued behind, comes back as a slot frees.
        let t16 = t0 + Duration::from_secs(16);
        let behind = q.admit(closed(ip(2), urn(1), Some(2)), slots(1), t16, 0);
        assert!(matches!(behind, Admission::Queued(QueuePlace { position: 2, .. })), "{behind:?}: took its turn");
        let back = t0 + Duration::from_secs(30) * u32::try_from(gtkg.position).unwrap();
        assert_eq!(q.admit(closed(ip(1), urn(1), Some(1)), slots(1), back, 0), Admission::Serve);
    }

    /// gtk-gnutella 1.2.3, its `503` closed, comes back after `Retry-After`
    /// but never sooner than 20 s after (`downloads.c`,
    /// `download_retry_timeout_min`). Told 18 s, it comes back at 21 s,
    /// within [`LATE`]: that does not show it follows `Retry-After` (it
    /// came no sooner than [`GTKG_EARLIEST_RETURN`] allows). Told 10 s next
    /// (short bodies now in the slot), it comes back 21 s later again, and
    /// the slot that freed meanwhile is still kept for its turn (it went to
    /// the place behind it while a place came back in time once was taken
    /// to follow `Retry-After` for good).
    #[test]
    fn a_gtk_gnutella_downloader_held_back_by_its_least_retry_wait_keeps_its_turn() {
        let mut q = UploadQueue::new(QueueConfig::default());
        let slow = |free| Slots { free, total: 1, body: Duration::from_secs(18) };
        let fast = |free| Slots { free, total: 1, body: Duration::from_secs(1) };
        let t0 = Instant::now();
        assert_eq!(queued(q.admit(closed(ip(1), urn(1), None), slow(0), t0, 1)).retry.as_secs(), 18);
        queued(q.admit(closed(ip(2), urn(1), None), slow(0), t0, 2));
        let t21 = t0 + Duration::from_secs(21);
        let gtkg = queued(q.admit(closed(ip(1), urn(1), Some(1)), fast(0), t21, 0));
        assert_eq!((gtkg.position, gtkg.retry), (1, MIN_RETRY));
        let t37 = t21 + Duration::from_secs(16);
        let behind = q.admit(closed(ip(2), urn(1), Some(2)), fast(1), t37, 0);
        assert!(matches!(behind, Admission::Queued(QueuePlace { position: 2, .. })), "{behind:?}: took its turn");
        assert_eq!(
            q.admit(closed(ip(1), urn(1), Some(1)), fast(1), t21 + Duration::from_secs(21), 0),
            Admission::Serve
        );
    }

    /// Two slots, free all along. Sixty-three addresses queue four places
    /// each (252 of the 256) while the slots are busy, then never take a
    /// slot: each comes back,
    /// with its place's ID, only while enough places ahead are expected
    /// that it is told to wait (what its told position shows it). An
    /// honest requester queued behind them, coming back by every
    /// `Retry-After`, waited 744 s while both slots stood idle (88 s with
    /// four addresses). Refused with slots free from the first second, the
    /// places hold them [`HOLD`] at most: it is served by its next
    /// `Retry-After` after that (60 s).
    #[test]
    fn attack_places_refreshed_behind_the_head_cannot_keep_free_slots_idle() {
        let mut q = UploadQueue::new(QueueConfig::default());
        let slots = |free| Slots { free, total: 2, body: Duration::from_secs(1) };
        let t0 = Instant::now();
        let mut hostile = Vec::new();
        for host in 1..=63u8 {
            for file in 1..=4u8 {
                let id = u64::from(host) * 100 + u64::from(file);
                queued(q.admit(closed(ip(host), urn(file), None), slots(0), t0, id));
                hostile.push((ip(host), urn(file), id));
            }
        }
        let honest = ip(99);
        let mut place = queued(q.admit(closed(honest, urn(1), None), slots(0), t0, 99));
        let mut asked = t0;
        let mut served = None;
        for second in 1..=QueueConfig::default().lifetime.as_secs() {
            let now = t0 + Duration::from_secs(second);
            for &(addr, urn, id) in &hostile {
                let Some(index) = q.places.iter().position(|p| p.id == id) else { continue };
                if q.expected_before(index, now) >= 2 && now >= q.places[index].asked + q.places[index].retry {
                    queued(q.admit(closed(addr, urn, Some(id)), slots(2), now, 0));
                }
            }
            if now >= asked + place.retry {
                match q.admit(closed(honest, urn(1), Some(99)), slots(2), now, 0) {
                    Admission::Serve => {
                        served = Some(second);
                        break;
                    }
                    other => (place, asked) = (queued(other), now),
                }
            }
        }
        let bound = (Duration::from_secs(1) + HOLD + QueueConfig::default().retry).as_secs();
        assert!(served.is_some_and(|s| s <= bound), "served at {served:?}, not by {bound} s; last told {place:?}");
    }

    /// A place expected back by gtk-gnutella's timer (60 s at the second
    /// position) keeps a free slot for its turn while a present requester
    /// behind it is refused, but for [`HOLD`] at most (a moment with all
    /// slots busy starts the count again); then the present one is served,
    /// and the absent one keeps its place, served when it comes back.
    #[test]
    fn a_free_slot_is_kept_for_an_absent_place_for_a_bounded_while() {
        let mut q = UploadQueue::new(QueueConfig::default());
        let slots = |free| Slots { free, total: 1, body: Duration::from_secs(1) };
        let t0 = Instant::now();
        for n in 1..=3u8 {
            queued(q.admit(closed(ip(n), urn(1), None), slots(0), t0, u64::from(n)));
        }
        let at = |secs| t0 + Duration::from_secs(secs);
        assert_eq!(queued(q.admit(closed(ip(3), urn(1), Some(3)), slots(1), at(10), 0)).position, 3);
        assert_eq!(queued(q.admit(closed(ip(3), urn(1), Some(3)), slots(0), at(20), 0)).position, 3, "all slots busy");
        let refused = at(30);
        assert_eq!(queued(q.admit(closed(ip(3), urn(1), Some(3)), slots(1), refused, 0)).position, 3);
        let held = refused + HOLD - Duration::from_secs(1);
        assert_eq!(queued(q.admit(closed(ip(3), urn(1), Some(3)), slots(1), held, 0)).position, 2, "the first is late");
        assert_eq!(q.admit(closed(ip(3), urn(1), Some(3)), slots(1), refused + HOLD, 0), Admission::Serve);
        assert_eq!(q.admit(closed(ip(2), urn(1), Some(2)), slots(1), at(70), 0), Admission::Serve, "its place kept");
        assert_eq!(q.len(), 1);
    }

    /// A requester that came back by `Retry-After` once (10 s), then 21 s
    /// after being told 10 s, as gtk-gnutella does: that visit shows it does
    /// not follow `Retry-After`: it is expected by its timer again, and keeps
    /// its turn from the place behind.
    #[test]
    fn a_requester_back_by_its_retry_after_once_then_late_is_expected_by_the_timer_again() {
        let mut q = UploadQueue::new(QueueConfig::default());
        let slots = |free| Slots { free, total: 1, body: Duration::from_secs(1) };
        let t0 = Instant::now();
        queued(q.admit(closed(ip(1), urn(1), None), slots(0), t0, 1));
        queued(q.admit(closed(ip(2), urn(1), None), slots(0), t0, 2));
        let at = |secs| t0 + Duration::from_secs(secs);
        assert_eq!(queued(q.admit(closed(ip(1), urn(1), Some(1)), slots(0), at(10), 0)).retry, MIN_RETRY);
        assert_eq!(queued(q.admit(closed(ip(1), urn(1), Some(1)), slots(0), at(31), 0)).retry, MIN_RETRY);
        let behind = q.admit(closed(ip(2), urn(1), Some(2)), slots(1), at(40), 0);
        assert!(matches!(behind, Admission::Queued(QueuePlace { position: 2, .. })), "{behind:?}: took its turn");
        assert_eq!(q.admit(closed(ip(1), urn(1), Some(1)), slots(1), at(52), 0), Admission::Serve);
    }

    #[test]
    fn another_address_cannot_take_a_place_by_its_id() {
        let mut q = queue();
        let t0 = Instant::now();
        queued(q.admit(closed(ip(1), urn(1), None), slots(0), t0, 42));
        let stolen = q.admit(closed(ip(2), urn(1), Some(42)), slots(1), t0 + Duration::from_secs(10), 43);
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
            keep_open: false,
        };
        let header = place.x_queued(1);
        assert_eq!(header, "position=2; length=3; limit=1; lifetime=300; ID=000000000000ab12");
        assert_eq!(returned_id(&header), Some(0xab12));
        assert_eq!(returned_id("position=3; ID=ab12"), Some(0xab12));
        assert_eq!(returned_id("position=3"), None);
        assert_eq!(returned_id("ID=zz"), None);
    }
}
