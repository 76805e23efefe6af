//! `servent.toml`: the `run` flags, kept in a file.
//!
//! Every flag of `servent run` has a key of the same name without its
//! dashes (`max-peers = 32`, `share = ["/srv/seblinux"]`, `no-deflate =
//! true`). The file is read from `--config FILE`, else from
//! `$XDG_CONFIG_HOME/servent/servent.toml` (`~/.config/servent/…`) when it
//! exists, and turned into the flags it stands for, placed before those of
//! the command line; a flag given on the command line overrides its key
//! (all of a repeatable flag's values at once). An unknown key, or a value
//! of the wrong type, is refused with the file's name.
//!
//! Pure but for [`default_path`], which reads the environment.

use std::path::{Path, PathBuf};

/// How a key's value becomes flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// One value: `--key VALUE`.
    One,
    /// A list (or one value): `--key A --key B`.
    Many,
    /// A switch: `true` gives `--key`.
    Switch,
}

/// Every flag of `servent run` but `--config`, by key.
const KEYS: &[(&str, Kind)] = &[
    ("data-dir", Kind::One),
    ("listen", Kind::One),
    ("api", Kind::One),
    ("api-token", Kind::One),
    ("share", Kind::Many),
    ("downloads", Kind::One),
    ("peer", Kind::Many),
    ("upload-slots", Kind::One),
    ("max-upload-rate", Kind::One),
    ("max-download-rate", Kind::One),
    ("seed-release", Kind::Many),
    ("max-peers", Kind::One),
    ("gwebcache", Kind::Many),
    ("uhc", Kind::Many),
    ("max-ttl", Kind::One),
    ("no-deflate", Kind::Switch),
    ("no-discovery", Kind::Switch),
    ("log-level", Kind::One),
    ("dial-local", Kind::Switch),
    ("trust", Kind::Many),
    ("install-dir", Kind::One),
    ("update-every", Kind::One),
    ("post-install", Kind::One),
    ("update-search-wait", Kind::One),
    ("mode", Kind::One),
    ("max-leaves", Kind::One),
];

/// The largest config file read.
pub const MAX_BYTES: u64 = 1 << 20;

/// `$XDG_CONFIG_HOME/servent/servent.toml`, else `~/.config/servent/servent.toml`.
pub fn default_path() -> Option<PathBuf> {
    let xdg = std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()).map(PathBuf::from);
    let home = std::env::var_os("HOME").filter(|d| !d.is_empty()).map(|h| PathBuf::from(h).join(".config"));
    Some(xdg.or(home)?.join("servent").join("servent.toml"))
}

/// The flags `text` (the file at `path`) stands for, but those of keys
/// whose flag is among `given` (the command line's arguments).
pub fn flags(path: &Path, text: &str, given: &[String]) -> Result<Vec<String>, String> {
    let at = path.display();
    let document: toml_edit::DocumentMut = text.parse().map_err(|e| format!("{at}: {e}"))?;
    let mut flags = Vec::new();
    for (key, item) in document.iter() {
        let Some(&(_, kind)) = KEYS.iter().find(|(k, _)| *k == key) else {
            return Err(format!("{at}: unknown key {key:?} (the keys are `servent run`'s flags without their dashes)"));
        };
        let flag = format!("--{key}");
        if given.iter().any(|g| *g == flag || g.starts_with(&format!("{flag}="))) {
            continue;
        }
        let wrong = |wanted: &str| format!("{at}: {key} must be {wanted}");
        let value = item.as_value().ok_or_else(|| wrong("a value, not a table"))?;
        match kind {
            Kind::Switch => match value.as_bool() {
                Some(true) => flags.push(flag),
                Some(false) => {}
                None => return Err(wrong("true or false")),
            },
            Kind::One => flags.extend([flag, scalar(value).ok_or_else(|| wrong("a string or a number"))?]),
            Kind::Many => {
                let values: Vec<String> = match value.as_array() {
                    Some(list) => list.iter().map(scalar).collect::<Option<_>>(),
                    None => scalar(value).map(|v| vec![v]),
                }
                .ok_or_else(|| wrong("a string or a list of strings"))?;
                for value in values {
                    flags.extend([flag.clone(), value]);
                }
            }
        }
    }
    Ok(flags)
}

/// A string or number as a flag's value.
fn scalar(value: &toml_edit::Value) -> Option<String> {
    match value {
        toml_edit::Value::String(s) => Some(s.value().clone()),
        toml_edit::Value::Integer(i) => Some(i.value().to_string()),
        toml_edit::Value::Float(f) => Some(f.value().to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags_of(text: &str, given: &[&str]) -> Result<Vec<String>, String> {
        let given: Vec<String> = given.iter().map(|g| g.to_string()).collect();
        flags(Path::new("servent.toml"), text, &given)
    }

    #[test]
    fn keys_become_the_flags_they_name() {
        let text = r#"
            share = ["/srv/a", "/srv/b"]
            peer = "seblinux.example:6346"
            max-peers = 32
            update-search-wait = 2.5
            no-deflate = true
            no-discovery = false
        "#;
        let flags = flags_of(text, &[]).unwrap();
        assert_eq!(
            flags,
            [
                "--share",
                "/srv/a",
                "--share",
                "/srv/b",
                "--peer",
                "seblinux.example:6346",
                "--max-peers",
                "32",
                "--update-search-wait",
                "2.5",
                "--no-deflate"
            ]
        );
    }

    #[test]
    fn a_flag_on_the_command_line_overrides_its_key() {
        let text = "share = [\"/srv/a\"]\nmax-peers = 32\nlisten = \"0.0.0.0:6346\"";
        let flags = flags_of(text, &["--share", "/home/x", "--listen=127.0.0.1:0"]).unwrap();
        assert_eq!(flags, ["--max-peers", "32"]);
    }

    #[test]
    fn unknown_keys_wrong_types_and_bad_toml_are_refused_with_the_files_name() {
        for (text, said) in [
            ("max_peers = 3", "unknown key \"max_peers\""),
            ("no-deflate = \"yes\"", "no-deflate must be true or false"),
            ("share = [1, true]", "share must be a string or a list of strings"),
            ("listen = [\"a\"]", "listen must be a string or a number"),
            ("[share]\na = 1", "share must be a value"),
            ("listen = ", "servent.toml"),
        ] {
            let refused = flags_of(text, &[]).unwrap_err();
            assert!(refused.starts_with("servent.toml: ") && refused.contains(said), "{text}: {refused}");
        }
    }

    #[test]
    fn every_run_flag_has_a_key() {
        let mut help = Vec::new();
        <crate::cli::RunArgs as structopt::StructOpt>::clap().write_long_help(&mut help).unwrap();
        let help = String::from_utf8(help).unwrap();
        let flags: std::collections::BTreeSet<&str> = help
            .lines()
            .filter_map(|l| {
                let l = l.trim_start();
                l.strip_prefix("--").or_else(|| l.strip_prefix("-h, --")).or_else(|| l.strip_prefix("-V, --"))
            })
            .filter_map(|rest| rest.split([' ', ',', '<']).next())
            .filter(|f| !f.is_empty() && !["help", "version", "config"].contains(f))
            .collect();
        let keys: std::collections::BTreeSet<&str> = KEYS.iter().map(|(k, _)| *k).collect();
        assert_eq!(flags, keys);
    }
}
