//! Whether a download that fetches nothing is *stalled*, and why, in one
//! sentence for people.
//!
//! A download is stalled once no source has held a chunk for
//! [`super::DownloadsConfig::stall_after`]: none known, all dropped or
//! corrupt, all queued, or all busy or failing. It shows `stalled` with the
//! reason (the command line, `--json`, the page), `get --wait` ends with
//! it, and it goes back to `downloading` as soon as a source serves again.
//!
//! Pure: the driver passes its sources as it publishes them, and how long
//! nothing was fetched.

use std::time::Duration;

use super::{SourceSnapshot, SourceState};

/// Sources named in a reason at most; the others are counted.
const NAMED_SOURCES: usize = 5;

/// Why a download with these sources, which no source has served for
/// `idle`, cannot progress.
pub fn reason(sources: &[SourceSnapshot], idle: Duration) -> String {
    let secs = idle.as_secs();
    let all = |f: fn(SourceState) -> bool| sources.iter().all(|s| f(s.state));
    let head = if sources.is_empty() {
        return format!("no source known for {secs} s");
    } else if all(|s| s == SourceState::Corrupt) {
        "every source served corrupt data".to_string()
    } else if all(|s| matches!(s, SourceState::Dropped | SourceState::Corrupt)) {
        "every source dropped".to_string()
    } else if all(|s| matches!(s, SourceState::Queued | SourceState::Dropped | SourceState::Corrupt)) {
        format!("queued at every source for {secs} s")
    } else {
        format!("no source served for {secs} s")
    };
    let mut named: Vec<String> = sources
        .iter()
        .take(NAMED_SOURCES)
        .map(|s| match &s.note {
            Some(note) => format!("{}: {note}", s.addr),
            None => format!("{}: {}", s.addr, state_name(s.state)),
        })
        .collect();
    if sources.len() > NAMED_SOURCES {
        named.push(format!("and {} more", sources.len() - NAMED_SOURCES));
    }
    format!("{head} ({})", named.join("; "))
}

fn state_name(state: SourceState) -> &'static str {
    match state {
        SourceState::Waiting => "waiting",
        SourceState::Downloading => "downloading",
        SourceState::Idle => "idle",
        SourceState::Busy => "busy",
        SourceState::Queued => "queued",
        SourceState::Dropped => "dropped",
        SourceState::Corrupt => "corrupt",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(n: u8, state: SourceState, note: Option<&str>) -> SourceSnapshot {
        SourceSnapshot {
            addr: std::net::SocketAddrV4::new([10, 0, 0, n].into(), 6346),
            state,
            rate_bytes_per_sec: None,
            bytes: 0,
            errors: 0,
            note: note.map(str::to_string),
        }
    }

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn each_way_of_being_stuck_has_its_sentence() {
        assert_eq!(reason(&[], MINUTE), "no source known for 60 s");
        let corrupt = [source(1, SourceState::Corrupt, Some("served data that failed verification"))];
        assert_eq!(
            reason(&corrupt, MINUTE),
            "every source served corrupt data (10.0.0.1:6346: served data that failed verification)"
        );
        let dropped = [source(1, SourceState::Corrupt, None), source(2, SourceState::Dropped, Some("404 Not Found"))];
        assert_eq!(
            reason(&dropped, MINUTE),
            "every source dropped (10.0.0.1:6346: corrupt; 10.0.0.2:6346: 404 Not Found)"
        );
        let queued = [source(1, SourceState::Queued, Some("queued at position 7 of 9")), dropped[1].clone()];
        assert_eq!(
            reason(&queued, MINUTE),
            "queued at every source for 60 s (10.0.0.1:6346: queued at position 7 of 9; 10.0.0.2:6346: 404 Not Found)"
        );
        let busy = [source(1, SourceState::Busy, Some("503 Busy, asking again in 60 s")), queued[0].clone()];
        assert!(reason(&busy, MINUTE).starts_with("no source served for 60 s (10.0.0.1:6346: 503 Busy"));
    }

    #[test]
    fn a_long_list_of_sources_is_cut() {
        let many: Vec<SourceSnapshot> =
            (0..40).map(|n| source(n, SourceState::Dropped, Some("cannot connect"))).collect();
        let text = reason(&many, MINUTE);
        assert!(text.ends_with("10.0.0.4:6346: cannot connect; and 35 more)"), "{text}");
    }
}
