//! The built-in bootstrap list: the UDP host caches and GWebCaches a
//! servent that knows nobody asks for hosts, as deployed servents ship them.
//!
//! The list is `servent/bootstrap.txt`, built into the binary. `servent run`
//! copies it into the data directory as [`FILE`] the first time, and from
//! then on reads that copy, which the user may edit (it is never
//! overwritten). Lines are `uhc HOST:PORT` or `gwc URL`; `#` starts a
//! comment; a line that is neither is reported and skipped.

use std::io;
use std::path::Path;

use crate::peeraddr::PeerAddr;

/// The list's file name in the data directory.
pub const FILE: &str = "bootstrap.txt";
/// The list as shipped.
pub const DEFAULT: &str = include_str!("../bootstrap.txt");
/// Entries read at most; a longer file is cut.
pub const MAX_ENTRIES: usize = 256;
/// Bytes read at most.
pub const MAX_LEN: u64 = 64 * 1024;

/// Where to look for the network.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bootstrap {
    /// UDP host caches.
    pub uhcs: Vec<PeerAddr>,
    /// GWebCache URLs.
    pub gwebcaches: Vec<String>,
}

impl Bootstrap {
    /// Reads a list; returns it and one line per entry skipped.
    pub fn parse(text: &str) -> (Bootstrap, Vec<String>) {
        let mut list = Bootstrap::default();
        let mut problems = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            if list.uhcs.len() + list.gwebcaches.len() >= MAX_ENTRIES {
                problems.push(format!("line {}: more than {MAX_ENTRIES} entries, the rest skipped", number + 1));
                break;
            }
            let shown: String = line.chars().take(80).collect();
            match line.split_once(char::is_whitespace) {
                Some(("uhc", addr)) => match PeerAddr::parse(addr) {
                    Ok(addr) => list.uhcs.push(addr),
                    Err(why) => problems.push(format!("line {}: {why}", number + 1)),
                },
                Some(("gwc", url)) if is_web_address(url.trim()) => list.gwebcaches.push(url.trim().to_string()),
                _ => problems.push(format!("line {}: {shown:?} is neither `uhc HOST:PORT` nor `gwc URL`", number + 1)),
            }
        }
        (list, problems)
    }

    /// Reads the list in `data_dir`, first copying the shipped one there if
    /// there is none.
    pub fn load(data_dir: &Path) -> io::Result<(Bootstrap, Vec<String>)> {
        let path = data_dir.join(FILE);
        if !path.exists() {
            crate::config::write_atomically(&path, DEFAULT.as_bytes())?;
        }
        let mut text = String::new();
        io::Read::read_to_string(&mut io::Read::take(std::fs::File::open(&path)?, MAX_LEN), &mut text)?;
        Ok(Bootstrap::parse(&text))
    }
}

fn is_web_address(url: &str) -> bool {
    surf::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_list_reads_without_a_problem_and_names_host_caches() {
        let (list, problems) = Bootstrap::parse(DEFAULT);
        assert!(problems.is_empty(), "{problems:?}");
        assert!(list.uhcs.len() >= 4);
    }

    #[test]
    fn entries_comments_and_mistakes() {
        let text = "# comment\nuhc 192.0.2.1:6346 # ours\nuhc cache.example:1\ngwc http://gwc.example/x.php\n\
                    uhc nonsense\ngwc ftp://x\nhello\n";
        let (list, problems) = Bootstrap::parse(text);
        assert_eq!(
            list.uhcs,
            vec![PeerAddr::Ip("192.0.2.1:6346".parse().unwrap()), PeerAddr::Name("cache.example".into(), 1)]
        );
        assert_eq!(list.gwebcaches, vec!["http://gwc.example/x.php".to_string()]);
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].starts_with("line 5:"));
    }

    #[test]
    fn a_huge_list_is_cut() {
        let text = "uhc 192.0.2.1:6346\n".repeat(10_000);
        let (list, problems) = Bootstrap::parse(&text);
        assert_eq!(list.uhcs.len(), MAX_ENTRIES);
        assert_eq!(problems.len(), 1);
    }

    #[test]
    fn the_list_is_copied_once_then_the_users_copy_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let (list, _) = Bootstrap::load(dir.path()).unwrap();
        assert_eq!(list, Bootstrap::parse(DEFAULT).0);
        std::fs::write(dir.path().join(FILE), "uhc 192.0.2.9:9\n").unwrap();
        let (list, _) = Bootstrap::load(dir.path()).unwrap();
        assert_eq!(list.uhcs, vec![PeerAddr::Ip("192.0.2.9:9".parse().unwrap())]);
    }
}
