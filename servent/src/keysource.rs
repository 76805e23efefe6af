//! Where a publisher key to pin comes from: `--trust` and `trust add` take
//! a minisign `.pub` file, its `RW…` line, or the URL of the publisher's
//! web page or key file, optionally followed by `#` and a scope: package
//! names, exact or prefixes ending in `*` (`seblinux.pub#SEBLINUX-base,SEBLINUX-extras*`;
//! see [`crate::trust`]).
//!
//! A page is fetched once (with surf) and must show exactly one minisign
//! public key; the key is then pinned like any other, and the caller shows
//! its key id so the user can compare it with what the publisher
//! announced. Plain `http://` is accepted for loopback addresses only.

use std::time::Duration;

use signing_tool::PublicKey;

use crate::trust::TrustedKey;

/// The largest page read when looking for a key.
const MAX_PAGE_BYTES: usize = 1 << 20;
/// How long a fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(20);
/// The length of a minisign public key line (`RW` + base64 of 42 bytes).
const KEY_LINE_LEN: usize = 56;

/// A key to pin and where it came from, for the user.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// The key and its scope.
    pub trusted: TrustedKey,
    /// The file, URL or `key line` it was read from.
    pub source: String,
}

/// Reads the key `arg` names (see the module documentation).
pub async fn resolve(arg: &str) -> Result<Resolved, String> {
    let (what, scope) = match arg.rsplit_once('#') {
        Some((what, scope)) => {
            (what, scope.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect())
        }
        None => (arg, Vec::new()),
    };
    let what = what.trim();
    let key = if names_a_page(what) { key_from_page(what, &fetch(what).await?)? } else { load_key(what)? };
    let source = if what.starts_with("RW") { "the key given".to_owned() } else { what.to_owned() };
    Ok(Resolved { trusted: TrustedKey { key, scope }, source })
}

/// Whether `arg` (with or without its `#SCOPE`) is the address of a page,
/// fetched by whoever resolves it, rather than a file or a key line.
pub fn names_a_page(arg: &str) -> bool {
    let arg = arg.trim_start();
    arg.starts_with("https://") || arg.starts_with("http://")
}

/// A key from a `.pub` file or an `RW…` line. Errors never repeat what was
/// given unless it names an existing file: a secret key pasted by mistake
/// must not be echoed into a terminal, a log or an API answer.
fn load_key(what: &str) -> Result<PublicKey, String> {
    let is_file = std::path::Path::new(what).is_file();
    let secret = "that is a minisign *secret* key: pin the publisher's public key (the .pub file or its RW… line); \
                  a secret key never leaves its owner";
    match signing_tool::files::load_public_key(what) {
        Ok(key) => Ok(key),
        Err(_) if is_file && looks_secret(&std::fs::read_to_string(what).unwrap_or_default()) => {
            Err(format!("{what}: {secret}"))
        }
        Err(e) if is_file => Err(e.to_string()),
        Err(_) if looks_secret(what) => Err(secret.to_owned()),
        Err(_) => Err("the key given is neither a file, an https:// address nor a minisign public key line \
                       (RW…, 56 characters)"
            .to_owned()),
    }
}

/// Whether `text` is a minisign secret key file or its key line.
fn looks_secret(text: &str) -> bool {
    let text = text.trim();
    signing_tool::SecretKeyFile::parse(text).is_ok()
        || signing_tool::SecretKeyFile::parse(&format!("untrusted comment: \n{text}")).is_ok()
}

async fn fetch(url: &str) -> Result<String, String> {
    let parsed = surf::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
    if parsed.scheme() == "http" && !is_loopback(&parsed) {
        return Err(format!("{url}: a key is fetched over https only (http is for loopback tests)"));
    }
    let body = async {
        let mut response = surf::get(url).await?;
        if !response.status().is_success() {
            return Err(surf::Error::from_str(response.status(), format!("HTTP {}", response.status())));
        }
        response.take_body().into_bytes().await
    };
    let bytes = async_std::future::timeout(FETCH_TIMEOUT, body)
        .await
        .map_err(|_| format!("{url}: timed out"))?
        .map_err(|e| format!("{url}: {e}"))?;
    let bytes = bytes.get(..MAX_PAGE_BYTES).unwrap_or(&bytes);
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

fn is_loopback(url: &surf::Url) -> bool {
    let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The one minisign public key written on a page.
fn key_from_page(url: &str, page: &str) -> Result<PublicKey, String> {
    let mut keys: Vec<PublicKey> = Vec::new();
    let words = page.split(|c: char| !(c.is_ascii_alphanumeric() || c == '+' || c == '/' || c == '='));
    for word in words.filter(|w| w.len() == KEY_LINE_LEN && w.starts_with("RW")) {
        if let Ok(key) = PublicKey::from_base64(word) {
            if !keys.iter().any(|k| k.key_id() == key.key_id()) {
                keys.push(key);
            }
        }
    }
    match keys.len() {
        1 => Ok(keys.remove(0)),
        0 => Err(format!("{url}: no minisign public key (RW…) on that page")),
        _ => {
            let ids: Vec<String> = keys.iter().map(|k| k.key_id().to_string()).collect();
            Err(format!(
                "{url}: {} different keys on that page ({}); give the one you mean",
                keys.len(),
                ids.join(", ")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_line() -> String {
        signing_tool::SecretKey::generate().unwrap().public_key().to_base64()
    }

    #[test]
    fn page_with_one_key_gives_it_whatever_surrounds_it() {
        let line = key_line();
        let page =
            format!("<html><p>Our key:</p><pre>untrusted comment: minisign public key\n{line}</pre>{line}</html>");
        let key = key_from_page("https://example.org", &page).unwrap();
        assert_eq!(key.to_base64(), line);
    }

    #[test]
    fn page_with_no_key_or_two_keys_is_refused() {
        let none = key_from_page("https://example.org", "<p>RWnothing here</p>").unwrap_err();
        assert!(none.contains("no minisign public key"), "{none}");
        let two = format!("{} and {}", key_line(), key_line());
        let err = key_from_page("https://example.org", &two).unwrap_err();
        assert!(err.contains("2 different keys"), "{err}");
    }

    #[test]
    fn key_line_with_a_scope_resolves() {
        let line = key_line();
        let resolved = async_std::task::block_on(resolve(&format!("{line}#SEBLINUX-base, SEBLINUX-extras*"))).unwrap();
        assert_eq!(resolved.trusted.key.to_base64(), line);
        assert_eq!(resolved.trusted.scope, ["SEBLINUX-base", "SEBLINUX-extras*"]);
    }

    #[test]
    fn a_secret_key_given_by_mistake_is_refused_and_never_echoed() {
        let secret = signing_tool::SecretKey::generate().unwrap();
        let text = secret.to_file_text(None).unwrap();
        let line = text.lines().nth(1).unwrap().to_owned();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("seblinux.key");
        std::fs::write(&file, text.as_bytes()).unwrap();
        for given in [line.clone(), text.to_string(), file.display().to_string(), format!("{line}#SEBLINUX*")] {
            let err = async_std::task::block_on(resolve(&given)).unwrap_err();
            assert!(err.contains("secret* key"), "{err}");
            assert!(!err.contains(&line[..20]), "key material echoed: {err}");
        }
        let err = async_std::task::block_on(resolve("RWnot a key at all")).unwrap_err();
        assert!(!err.contains("not a key at all"), "{err}");
    }

    #[test]
    fn plain_http_is_refused_off_loopback() {
        let err = async_std::task::block_on(resolve("http://192.0.2.7/key.pub")).unwrap_err();
        assert!(err.contains("https only"), "{err}");
    }
}
