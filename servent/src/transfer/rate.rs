//! Bandwidth caps: `--max-upload-rate` and `--max-download-rate`.
//!
//! All uploads of a servent share one [`RateLimit`], and all its downloads
//! another, so a cap holds whatever the number of connections. The rule is
//! a token bucket in its "virtual scheduling" form ([`TokenBucket`], pure,
//! time passed in): every transfer of `n` bytes moves a theoretical
//! finishing time forward by `n / rate`, and may start once that time is
//! within one burst of now. Sending early is allowed up to the burst;
//! after that each sender waits in the order it asked, so the uploads that
//! share a cap share it evenly per piece sent. The async I/O only asks how
//! long to wait, sleeps that long, and moves at most [`RateLimit::piece`]
//! bytes at a time.
//!
//! A rate of 0 means unlimited, as on the command line.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The burst a capped bucket allows: this much time's worth of its rate.
const BURST_TIME: Duration = Duration::from_millis(100);
/// The smallest burst, in bytes, so that a low rate still moves whole
/// TCP segments.
const MIN_BURST: u64 = 4 * 1024;
/// The most bytes moved at once under a cap.
const MAX_PIECE: usize = 64 * 1024;
/// The highest rate accepted, in bytes per second (1 TiB/s): beyond it the
/// arithmetic of a piece's duration would lose its meaning.
pub const MAX_RATE: u64 = 1 << 40;

/// The least rate an upload slot should get under a cap: past
/// `cap / MIN_SLOT_RATE` bodies at once, each would crawl, and a chunk a
/// crowd waits for would take all the longer to reach anyone.
pub const MIN_SLOT_RATE: u64 = 256 * 1024;
/// Upload slots kept under any cap, so that one slow downloader never
/// holds all of them.
pub const MIN_CAPPED_SLOTS: usize = 2;

/// How many bodies an upload cap of `cap` bytes per second lets us send at
/// once, out of the `configured` slots: each gets at least
/// [`MIN_SLOT_RATE`] (with at least [`MIN_CAPPED_SLOTS`]). A crowd of
/// downloaders is then served a few at a time at a useful rate, rather
/// than all at once at a trickle: each chunk is whole, checked and offered
/// on to the others sooner. A cap of 0 (unlimited) keeps them all.
pub fn upload_slots(configured: usize, cap: u64) -> usize {
    if cap == 0 {
        return configured;
    }
    let by_cap = usize::try_from(cap / MIN_SLOT_RATE).unwrap_or(usize::MAX).max(MIN_CAPPED_SLOTS);
    configured.min(by_cap)
}

/// About how long a body of `len` bytes takes in one of `slots` upload
/// slots sharing a cap of `cap` bytes per second; uncapped (0), at
/// [`MIN_SLOT_RATE`], the least a slot should get (what the link gives is
/// not known).
pub fn slot_time(len: u64, cap: u64, slots: usize) -> Duration {
    let share = match cap {
        0 => MIN_SLOT_RATE,
        cap => (cap / slots.max(1) as u64).max(1),
    };
    Duration::from_secs_f64(len as f64 / share as f64)
}

/// A rate in bytes per second from `512K`, `2M`, `1G` or a plain number of
/// bytes (binary multiples, as servents count); `0` means unlimited.
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let bad = || format!("{text:?} is not a rate: bytes per second, like 512K, 2M or 0 for unlimited");
    let trimmed = text.trim();
    let (digits, unit) = match trimmed.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => trimmed.split_at(at),
        None => (trimmed, ""),
    };
    let multiple: u64 = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        _ => return Err(bad()),
    };
    if digits.is_empty() || digits.len() > 15 {
        return Err(bad());
    }
    let rate = digits.parse::<u64>().map_err(|_| bad())?.checked_mul(multiple).ok_or_else(bad)?;
    if rate > MAX_RATE {
        return Err(format!("{text:?} is more than the highest rate, {MAX_RATE} bytes per second"));
    }
    Ok(rate)
}

/// A rate as people read it: `512K`, `2M`, `1500`, or `unlimited`.
pub fn format_rate(rate: u64) -> String {
    match rate {
        0 => "unlimited".to_string(),
        r if r % (1 << 30) == 0 => format!("{}G", r >> 30),
        r if r % (1 << 20) == 0 => format!("{}M", r >> 20),
        r if r % (1 << 10) == 0 => format!("{}K", r >> 10),
        r => r.to_string(),
    }
}

/// The two caps of a servent, in bytes per second (0: unlimited), as the
/// API shows and takes them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rates {
    /// All uploads together (`--max-upload-rate`).
    pub max_upload_rate: u64,
    /// All downloads together (`--max-download-rate`).
    pub max_download_rate: u64,
}

impl Rates {
    /// Refuses a cap above [`MAX_RATE`].
    pub fn check(self) -> Result<Rates, String> {
        match [self.max_upload_rate, self.max_download_rate].iter().any(|rate| *rate > MAX_RATE) {
            true => Err(format!("a rate is more than the highest, {MAX_RATE} bytes per second")),
            false => Ok(self),
        }
    }
}

/// The bucket: a rate and the theoretical time at which everything granted
/// so far has been sent at that rate. Times are durations since any fixed
/// start the caller chooses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenBucket {
    /// Bytes per second; 0 is unlimited.
    rate: u64,
    /// When all bytes granted so far are paid for at `rate`.
    paid_until: Duration,
}

impl TokenBucket {
    /// A bucket of `rate` bytes per second (0: unlimited), full.
    pub fn new(rate: u64) -> TokenBucket {
        TokenBucket { rate: rate.min(MAX_RATE), paid_until: Duration::ZERO }
    }

    /// The rate, in bytes per second; 0 is unlimited.
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// Changes the rate at `now`; what was granted before is forgiven, so
    /// a lower rate does not charge the past at its new price.
    pub fn set_rate(&mut self, rate: u64, now: Duration) {
        self.rate = rate.min(MAX_RATE);
        self.paid_until = now;
    }

    /// The bytes one may send at once without exceeding the burst.
    pub fn burst(&self) -> u64 {
        let per_burst = u128::from(self.rate) * BURST_TIME.as_nanos() / 1_000_000_000;
        u64::try_from(per_burst).unwrap_or(u64::MAX).max(MIN_BURST)
    }

    /// Grants `bytes` at `now` and says how long the caller must wait
    /// before sending them (zero when unlimited or within the burst).
    pub fn reserve(&mut self, bytes: u64, now: Duration) -> Duration {
        if self.rate == 0 {
            return Duration::ZERO;
        }
        let burst_time = self.duration_of(self.burst());
        // A bucket left alone refills to one burst, never more.
        let start = self.paid_until.max(now);
        self.paid_until = start + self.duration_of(bytes);
        self.paid_until.saturating_sub(now + burst_time)
    }

    /// How long `bytes` take at the rate, rounded up.
    fn duration_of(&self, bytes: u64) -> Duration {
        let nanos = (u128::from(bytes) * 1_000_000_000).div_ceil(u128::from(self.rate));
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

/// A [`TokenBucket`] shared by every transfer in one direction, with the
/// clock it is read against.
#[derive(Debug)]
pub struct RateLimit {
    bucket: Mutex<TokenBucket>,
    epoch: Instant,
}

impl RateLimit {
    /// A limit of `rate` bytes per second; 0 is unlimited.
    pub fn new(rate: u64) -> RateLimit {
        RateLimit { bucket: Mutex::new(TokenBucket::new(rate)), epoch: Instant::now() }
    }

    fn bucket(&self) -> std::sync::MutexGuard<'_, TokenBucket> {
        // Every change is one assignment: nothing is ever half-done.
        self.bucket.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The rate, in bytes per second; 0 is unlimited.
    pub fn rate(&self) -> u64 {
        self.bucket().rate()
    }

    /// Sets the rate, from now on.
    pub fn set_rate(&self, rate: u64) {
        let now = self.epoch.elapsed();
        self.bucket().set_rate(rate, now);
    }

    /// The most bytes to move at once, so that waits stay short and the
    /// connections sharing the limit take turns.
    pub fn piece(&self, wanted: usize) -> usize {
        let bucket = self.bucket();
        if bucket.rate() == 0 {
            return wanted;
        }
        let burst = usize::try_from(bucket.burst()).unwrap_or(usize::MAX);
        wanted.min(burst).clamp(1, MAX_PIECE)
    }

    /// Grants `bytes` and waits until they may be moved.
    pub async fn pace(&self, bytes: usize) {
        let now = self.epoch.elapsed();
        let wait = self.bucket().reserve(bytes as u64, now);
        if !wait.is_zero() {
            async_std::task::sleep(wait).await;
        }
    }
}

/// Writes all of `bytes` within `limit`, a piece at a time, failing if
/// the peer takes nothing for `stall`.
pub async fn write_paced(
    limit: &RateLimit,
    stream: &mut async_std::net::TcpStream,
    mut bytes: &[u8],
    stall: Duration,
) -> std::io::Result<()> {
    while !bytes.is_empty() {
        let piece = limit.piece(bytes.len());
        limit.pace(piece).await;
        super::upload::write_all(stream, &bytes[..piece], stall).await?;
        bytes = &bytes[piece..];
    }
    Ok(())
}

impl Default for RateLimit {
    /// No limit.
    fn default() -> RateLimit {
        RateLimit::new(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cap_keeps_the_slots_it_can_feed() {
        assert_eq!(upload_slots(8, 0), 8, "unlimited: every configured slot");
        assert_eq!(upload_slots(8, 1 << 20), 4, "1 MiB/s feeds four slots at 256 KiB/s");
        assert_eq!(upload_slots(8, 64 << 20), 8, "never more than configured");
        assert_eq!(upload_slots(8, 10 * 1024), MIN_CAPPED_SLOTS, "a tiny cap still serves two");
        assert_eq!(upload_slots(1, 10 * 1024), 1, "nor more than configured at a tiny cap");
        assert_eq!(upload_slots(8, MAX_RATE), 8);
    }

    const KIB: u64 = 1024;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn a_body_takes_its_length_at_its_slots_share_of_the_cap() {
        assert_eq!(slot_time(256 << 10, 1 << 20, 4), Duration::from_secs(1), "a chunk at 256 KiB/s");
        assert_eq!(slot_time(256 << 10, 1 << 20, 1), Duration::from_millis(250));
        assert_eq!(slot_time(512 << 10, 0, 8), Duration::from_secs(2), "uncapped: at the least a slot should get");
        assert_eq!(slot_time(10, 3, 8), Duration::from_secs(10), "a share below a byte a second is one");
    }

    #[test]
    fn rates_are_read_in_binary_multiples_and_zero_is_unlimited() {
        assert_eq!(parse_rate("512K"), Ok(512 * KIB));
        assert_eq!(parse_rate("2M"), Ok(2 * KIB * KIB));
        assert_eq!(parse_rate("2m"), Ok(2 * KIB * KIB));
        assert_eq!(parse_rate("1G"), Ok(KIB * KIB * KIB));
        assert_eq!(parse_rate("1500"), Ok(1500));
        assert_eq!(parse_rate("0"), Ok(0));
        assert_eq!(format_rate(512 * KIB), "512K");
        assert_eq!(format_rate(2 * KIB * KIB), "2M");
        assert_eq!(format_rate(1500), "1500");
        assert_eq!(format_rate(0), "unlimited");
    }

    #[test]
    fn hostile_rates_are_refused() {
        for bad in ["", "K", "-1", "1.5M", "12Q", "99999999999999999999", "999999999999999G", "2000G", "1 M"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unlimited_never_waits() {
        let mut bucket = TokenBucket::new(0);
        assert_eq!(bucket.reserve(u64::MAX / 2, Duration::ZERO), Duration::ZERO);
        assert_eq!(bucket.reserve(u64::MAX / 2, Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn a_full_bucket_sends_one_burst_at_once_then_paces_at_the_rate() {
        let mut bucket = TokenBucket::new(100 * KIB);
        let burst = bucket.burst();
        assert_eq!(burst, 10 * KIB);
        let start = secs(10.0);
        assert_eq!(bucket.reserve(burst, start), Duration::ZERO);
        // Each further 10 KiB waits 0.1 s more than the one before.
        let waits: Vec<Duration> = (0..5).map(|_| bucket.reserve(burst, start)).collect();
        for (i, wait) in waits.iter().enumerate() {
            assert_eq!(*wait, Duration::from_millis(100 * (i as u64 + 1)));
        }
    }

    #[test]
    fn over_any_span_no_more_than_the_rate_plus_one_burst_is_granted() {
        let rate = 64 * KIB;
        let mut bucket = TokenBucket::new(rate);
        let mut now = secs(1.0);
        let mut granted = 0u64;
        let begin = now;
        // A greedy sender that sends as soon as it is allowed, in pieces of 3000 bytes.
        for _ in 0..1000 {
            now += bucket.reserve(3000, now);
            granted += 3000;
            let elapsed = (now - begin).as_secs_f64();
            assert!(granted as f64 <= rate as f64 * elapsed + bucket.burst() as f64 + 3000.0, "{granted} at {elapsed}");
        }
        // And it is not starved either: it got close to the rate.
        let elapsed = (now - begin).as_secs_f64();
        assert!(granted as f64 >= rate as f64 * elapsed * 0.95);
    }

    #[test]
    fn an_idle_bucket_refills_to_one_burst_only() {
        let mut bucket = TokenBucket::new(100 * KIB);
        assert_eq!(bucket.reserve(10 * KIB, Duration::ZERO), Duration::ZERO);
        // An hour later, still only one burst is free.
        let later = secs(3600.0);
        assert_eq!(bucket.reserve(10 * KIB, later), Duration::ZERO);
        assert_eq!(bucket.reserve(10 * KIB, later), Duration::from_millis(100));
    }

    #[test]
    fn senders_sharing_a_bucket_share_its_rate() {
        let mut bucket = TokenBucket::new(100 * KIB);
        let now = Duration::ZERO;
        let first = bucket.reserve(50 * KIB, now);
        let second = bucket.reserve(50 * KIB, now);
        // Together 100 KiB: the last waits a second less one burst.
        assert!(first < second);
        assert_eq!(second, Duration::from_millis(900));
    }

    #[test]
    fn a_new_rate_applies_from_now() {
        let mut bucket = TokenBucket::new(KIB * KIB);
        bucket.reserve(10 * KIB * KIB, Duration::ZERO);
        bucket.set_rate(0, secs(1.0));
        assert_eq!(bucket.reserve(KIB * KIB, secs(1.0)), Duration::ZERO);
        bucket.set_rate(100 * KIB, secs(2.0));
        assert_eq!(bucket.reserve(10 * KIB, secs(2.0)), Duration::ZERO);
        assert_eq!(bucket.reserve(10 * KIB, secs(2.0)), Duration::from_millis(100));
    }

    #[test]
    fn pieces_are_bounded_under_a_cap_only() {
        assert_eq!(RateLimit::new(0).piece(1 << 20), 1 << 20);
        assert_eq!(RateLimit::new(100 * KIB).piece(1 << 20), 10 * KIB as usize);
        assert_eq!(RateLimit::new(100 * KIB * KIB).piece(1 << 20), MAX_PIECE);
        assert_eq!(RateLimit::new(100).piece(1 << 20), MIN_BURST as usize);
    }
}
