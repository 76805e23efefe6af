//! The servent's log: one place every line goes through, on standard
//! error, each with its time (UTC) and level:
//!
//! ```text
//! 2026-12-06T22:51:10Z INFO  peer 192.0.2.7:6346 connected
//! 2026-12-06T22:52:10Z WARN  cannot connect to 192.0.2.9:6346: timed out (and 37 more like it in 60 s)
//! ```
//!
//! It is the `log` crate's logger, so the libraries the servent uses log
//! through it too. What is shown: `--log-level` (`error`, `warn`, `info`,
//! `debug`; `info` by default) for the servent's own lines and `warn` for
//! the libraries', or a `RUST_LOG`-style filter (`debug`,
//! `servent=debug,tide=info`) when `RUST_LOG` is set and `--log-level` is
//! not given.
//!
//! **Repeats are summarised** ([`Repeats`]): a warning or error is printed
//! the first time; lines of the same kind (the same words, numbers and
//! addresses aside: the same failure from many dead hosts is one kind)
//! within the next 60 s are counted, and one line says how many there were.
//! While a kind keeps coming, its summaries come less and less often
//! (60 s, 120 s, … up to an hour); a window without it ends its summaries,
//! and the next one is printed again.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Write;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use log::{Level, LevelFilter, Log, Metadata, Record};

/// The first window in which repeats of a kind are counted.
pub const REPEAT_WINDOW: Duration = Duration::from_secs(60);
/// The longest window between two summaries of one kind.
pub const MAX_REPEAT_WINDOW: Duration = Duration::from_secs(3600);
/// Kinds of lines followed at once; a line of a new kind beyond is printed unsummarised.
const MAX_KINDS: usize = 1024;
/// The prefix of the servent's own targets (its crates' module paths).
const OWN_TARGETS: [&str; 4] = ["servent", "servent_core", "search", "signing_tool"];

/// Which lines are shown: a level for the servent's own targets, one for
/// the others, and levels for target prefixes (the longest match wins).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    own: LevelFilter,
    others: LevelFilter,
    targets: Vec<(String, LevelFilter)>,
}

impl Filter {
    /// The servent's own lines at `level`, the libraries' at `warn` (or
    /// less, if `level` is less).
    pub fn new(level: LevelFilter) -> Filter {
        Filter { own: level, others: level.min(LevelFilter::Warn), targets: Vec::new() }
    }

    /// A `RUST_LOG`-style filter: comma-separated `LEVEL` (for everything)
    /// and `TARGET=LEVEL` entries; an entry that cannot be read is refused.
    pub fn parse(spec: &str) -> Result<Filter, String> {
        let mut filter = Filter::new(LevelFilter::Info);
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let level = |text: &str| {
                text.parse::<LevelFilter>()
                    .map_err(|_| format!("{text:?} is not a log level (error, warn, info, debug, trace, off)"))
            };
            match entry.split_once('=') {
                Some((target, text)) => filter.targets.push((target.trim().to_owned(), level(text.trim())?)),
                None => {
                    let level = level(entry)?;
                    (filter.own, filter.others) = (level, level);
                }
            }
        }
        Ok(filter)
    }

    /// Whether a line of `target` at `level` is shown.
    pub fn enabled(&self, target: &str, level: Level) -> bool {
        let within =
            |prefix: &str| target == prefix || (target.starts_with(prefix) && target[prefix.len()..].starts_with("::"));
        let chosen = self.targets.iter().filter(|(prefix, _)| within(prefix)).max_by_key(|(prefix, _)| prefix.len());
        let limit = match chosen {
            Some((_, limit)) => *limit,
            None if OWN_TARGETS.iter().any(|own| within(own)) => self.own,
            None => self.others,
        };
        level <= limit
    }

    /// The most detailed level any target shows.
    fn max(&self) -> LevelFilter {
        self.targets.iter().map(|(_, l)| *l).chain([self.own, self.others]).max().unwrap_or(LevelFilter::Off)
    }
}

/// Counts repeated lines of a kind and says when to summarise them (see
/// the module documentation). Pure: the time is passed in.
#[derive(Debug, Default)]
pub struct Repeats {
    kinds: HashMap<String, Kind>,
}

#[derive(Debug)]
struct Kind {
    opened: Instant,
    window: Duration,
    count: u32,
    first: String,
    last: String,
}

impl Repeats {
    /// A line `message` at `now`: whether to print it now (the first of
    /// its kind) or leave it to a summary.
    pub fn offer(&mut self, message: &str, now: Instant) -> bool {
        let kind = kind_of(message);
        if let Some(seen) = self.kinds.get_mut(&kind) {
            seen.count += 1;
            message.clone_into(&mut seen.last);
            return false;
        }
        if self.kinds.len() < MAX_KINDS {
            let (first, last) = (message.to_owned(), message.to_owned());
            self.kinds.insert(kind, Kind { opened: now, window: REPEAT_WINDOW, count: 0, first, last });
        }
        true
    }

    /// The summaries due at `now`, one line for each kind whose window
    /// ended with repeats in it.
    pub fn due(&mut self, now: Instant) -> Vec<String> {
        let mut lines = Vec::new();
        self.kinds.retain(|_, kind| {
            if now.saturating_duration_since(kind.opened) < kind.window {
                return true;
            }
            if kind.count == 0 {
                return false;
            }
            let (count, secs) = (kind.count, kind.window.as_secs());
            lines.push(match kind.first == kind.last {
                true if count == 1 => format!("{} (repeated once in {secs} s)", kind.last),
                true => format!("{} (repeated {count} times in {secs} s)", kind.last),
                false => format!("{} (and {count} more like it in {secs} s)", kind.last),
            });
            kind.opened = now;
            kind.window = (kind.window * 2).min(MAX_REPEAT_WINDOW);
            kind.count = 0;
            kind.first.clone_from(&kind.last);
            true
        });
        lines
    }
}

/// A line's kind: its text with every run of digits as `#`, so that the
/// same failure from two hosts, or twice from one, is one kind.
fn kind_of(message: &str) -> String {
    let mut kind = String::with_capacity(message.len());
    let mut in_digits = false;
    for c in message.chars() {
        match c.is_ascii_digit() {
            true if in_digits => {}
            true => kind.push('#'),
            false => kind.push(c),
        }
        in_digits = c.is_ascii_digit();
    }
    kind
}

/// `message` as one line of plain text: control characters (a newline that
/// would forge a second line, a terminal's escape sequences) are written as
/// `\u{..}` escapes. Log lines carry text from the network (user agents,
/// reasons, file names).
fn one_line(message: &str) -> Cow<'_, str> {
    if !message.chars().any(char::is_control) {
        return Cow::Borrowed(message);
    }
    Cow::Owned(
        message.chars().map(|c| if c.is_control() { c.escape_unicode().to_string() } else { c.to_string() }).collect(),
    )
}

/// `2026-12-06T22:51:10Z`.
pub fn utc_timestamp(at: SystemTime) -> String {
    let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = servent_core::civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rest / 3600, rest % 3600 / 60, rest % 60)
}

/// The logger: the filter, the repeats, and standard error.
struct Logger {
    filter: Filter,
    repeats: Mutex<Repeats>,
}

impl Logger {
    fn write(&self, level: Level, message: &str) {
        let line = format!("{} {level:<5} {}\n", utc_timestamp(SystemTime::now()), one_line(message));
        // A closed standard error must not stop the servent.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn summarise(&self, now: Instant) {
        let due = self.repeats.lock().unwrap_or_else(PoisonError::into_inner).due(now);
        for line in due {
            self.write(Level::Warn, &line);
        }
    }
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.filter.enabled(metadata.target(), metadata.level())
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let now = Instant::now();
        self.summarise(now);
        let message = record.args().to_string();
        let repeatable = record.level() <= Level::Warn;
        if !repeatable || self.repeats.lock().unwrap_or_else(PoisonError::into_inner).offer(&message, now) {
            self.write(record.level(), &message);
        }
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

/// Installs the logger for this process with `filter` (the first call
/// wins), and a thread that prints summaries when they are due even if
/// nothing else is logged.
pub fn init(filter: Filter) {
    let max = filter.max();
    let logger: &'static Logger = Box::leak(Box::new(Logger { filter, repeats: Mutex::default() }));
    if log::set_logger(logger).is_err() {
        return;
    }
    log::set_max_level(max);
    let _ = std::thread::Builder::new().name("log summaries".into()).spawn(move || loop {
        std::thread::sleep(Duration::from_secs(1));
        logger.summarise(Instant::now());
    });
}

/// The filter for `--log-level` (when given) or `RUST_LOG` (when set), else `info`.
pub fn filter_from(level: Option<LevelFilter>, rust_log: Option<String>) -> Result<Filter, String> {
    match (level, rust_log.filter(|s| !s.trim().is_empty())) {
        (Some(level), _) => Ok(Filter::new(level)),
        (None, Some(spec)) => Filter::parse(&spec).map_err(|e| format!("RUST_LOG: {e}")),
        (None, None) => Ok(Filter::new(LevelFilter::Info)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_failure_from_many_hosts_is_one_line_then_one_summary() {
        let start = Instant::now();
        let mut repeats = Repeats::default();
        assert!(repeats.offer("cannot connect to 192.0.2.7:6346: timed out", start));
        for n in 1..=37u64 {
            let host = format!("cannot connect to 192.0.2.{}:6346: timed out", n % 200);
            assert!(!repeats.offer(&host, start + Duration::from_secs(n)));
        }
        assert!(repeats.offer("cannot read the host cache: denied", start), "another kind is printed");
        assert!(repeats.due(start + Duration::from_secs(59)).is_empty());
        let due = repeats.due(start + Duration::from_secs(60));
        assert_eq!(due, ["cannot connect to 192.0.2.37:6346: timed out (and 37 more like it in 60 s)"]);
    }

    #[test]
    fn a_dead_host_retried_every_30_s_is_summarised_less_and_less_often_then_forgotten() {
        let start = Instant::now();
        let mut repeats = Repeats::default();
        let line = "cannot connect to 192.0.2.7:6346: timed out";
        let mut printed = Vec::new();
        for tick in 0..=(4 * 60) {
            let now = start + Duration::from_secs(tick * 30);
            for summary in repeats.due(now) {
                printed.push((tick * 30, summary));
            }
            if tick < 4 * 60 - 100 && repeats.offer(line, now) {
                printed.push((tick * 30, line.to_owned()));
            }
        }
        let at: Vec<u64> = printed.iter().map(|(at, _)| *at).collect();
        // Once, then after 60 s, 120 s, 240 s … an hour apart at most: not every 30 s.
        assert_eq!(&at[..5], [0, 60, 180, 420, 900]);
        assert!(at.windows(2).all(|w| w[1] - w[0] <= 3600));
        assert_eq!(printed[1].1, format!("{line} (repeated once in 60 s)"));
        assert_eq!(printed[2].1, format!("{line} (repeated 4 times in 120 s)"));
        // When it stops, one last summary, then the kind is forgotten and prints again.
        let quiet_from = (4 * 60 - 100) * 30;
        assert!(printed.last().unwrap().0 <= quiet_from + 3600, "{printed:?}");
        let later = start + Duration::from_secs(240 * 30 + 3600);
        repeats.due(later);
        assert!(repeats.due(later + MAX_REPEAT_WINDOW).is_empty());
        assert!(repeats.offer(line, later + MAX_REPEAT_WINDOW));
    }

    #[test]
    fn kinds_mask_numbers_only() {
        assert_eq!(kind_of("peer 10.0.0.1:6346 gone: Bye 200"), "peer #.#.#.#:# gone: Bye #");
        assert_ne!(kind_of("download 3 (a.iso) stalled"), kind_of("download 4 (b.iso) stalled"));
    }

    #[test]
    fn levels_and_rust_log_filters() {
        let info = Filter::new(LevelFilter::Info);
        assert!(info.enabled("servent::node", Level::Info));
        assert!(!info.enabled("servent::node", Level::Debug));
        assert!(!info.enabled("tide::log::middleware", Level::Info), "libraries at warn");
        assert!(info.enabled("tide::server", Level::Warn));
        assert!(!Filter::new(LevelFilter::Error).enabled("surf", Level::Warn));
        let spec = Filter::parse("warn, servent::transfer=debug,tide=info").unwrap();
        assert!(spec.enabled("servent::transfer::download", Level::Debug));
        assert!(!spec.enabled("servent::node", Level::Info));
        assert!(spec.enabled("tide::server", Level::Info));
        let own = Filter::parse("servent=debug").unwrap();
        assert!(own.enabled("servent::node", Level::Debug));
        assert!(!own.enabled("servent_core::node", Level::Debug), "a prefix of the text is not a parent target");
        assert!(own.enabled("servent_core::node", Level::Info), "the core is the servent's own");
        assert!(Filter::parse("servent=loud").unwrap_err().contains("\"loud\" is not a log level"));
        assert_eq!(filter_from(Some(LevelFilter::Debug), Some("error".into())), Ok(Filter::new(LevelFilter::Debug)));
        assert_eq!(filter_from(None, Some("error".into())), Filter::parse("error"));
        assert_eq!(filter_from(None, Some(" ".into())), Ok(Filter::new(LevelFilter::Info)));
    }

    #[test]
    fn text_from_the_network_cannot_forge_a_line_or_drive_the_terminal() {
        let agent = "peer 192.0.2.7:6346 connected (LimeWire)\n2026-12-06T22:51:10Z INFO  key pinned\u{1b}[2J";
        let line = one_line(agent);
        assert!(!line.contains('\n') && !line.contains('\u{1b}'), "{line}");
        assert!(line.contains("\\u{a}2026-12-06") && line.contains("\\u{1b}[2J"), "{line}");
        assert!(matches!(one_line("plain été"), Cow::Borrowed("plain été")));
    }

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        assert_eq!(utc_timestamp(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(utc_timestamp(UNIX_EPOCH + Duration::from_secs(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(utc_timestamp(UNIX_EPOCH + Duration::from_secs(1_796_597_470)), "2026-12-06T22:51:10Z");
    }
}
