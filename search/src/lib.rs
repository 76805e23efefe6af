//! The index of the user's shared folders.
//!
//! A [`Library`] walks the shared folders, hashes each file once (SHA-1 for
//! Gnutella's HUGE URNs, SHA-256 for every security decision), remembers the
//! hashes in a persistent cache keyed by path, size and modification time, and
//! keeps a Tantivy index of the file names so that it can answer Gnutella
//! keyword queries ("all these words, any case, accents folded") and URN
//! queries. The servent calls [`Library::rescan`] every few seconds and
//! [`Library::search`] for each incoming Query.
//!
//! A file with a `FILE.minisig` beside it carries that signature
//! ([`Sidecar`]), and the release metadata of its trusted comment (name,
//! version, keywords) is searchable like the file's name.
//!
//! It is not a network component: it knows nothing of sockets, Query
//! messages, routing or downloads, and it does not judge signatures. It only
//! says which local files match, what their hashes are and what signatures
//! lie beside them.
//!
//! ```no_run
//! use search::{Library, Query};
//! # fn main() -> Result<(), search::Error> {
//! let library = Library::open("/home/me/.servent".as_ref())?;
//! library.rescan(&["/home/me/Shared".into()])?;
//! let query = Query { words: "seblinux base".into(), urns: vec![], limit: 50 };
//! for file in library.search(&query)? {
//!     println!("{} {} {}", file.index, file.name, file.sha256);
//! }
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

mod catalog;
mod hash;
mod index;
mod library;
mod scan;
mod signature;
pub mod urn;

use std::io;
use std::path::PathBuf;

pub use hash::{hash_file, hash_reader, hash_reader_with, AlsoFeed, Digests};
pub use index::keywords;
pub use library::Library;
pub use signature::{Sidecar, Signed};
pub use thex;
pub use urn::{Urn, UrnError};

/// Most words a keyword query is matched on; the rest are ignored
/// (Gnutella criteria are at most 256 bytes anyway).
pub const MAX_QUERY_WORDS: usize = 32;
/// Most URNs a query is matched on; the rest are ignored.
pub const MAX_QUERY_URNS: usize = 16;
/// Most results one search returns, whatever [`Query::limit`] asks.
pub const MAX_RESULTS: usize = 1024;
/// Most files a library shares; a scan that finds more reports an error and
/// leaves the rest out.
pub const MAX_SHARED_FILES: usize = 1_000_000;

/// One shared file, as the index knows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SharedFile {
    /// Stable number of this path, used by `/get/<index>/<name>` downloads.
    pub index: u32,
    /// The file name, without its folder.
    pub name: String,
    /// Where the file is on disk.
    pub path: PathBuf,
    /// Length in bytes, as hashed.
    pub size: u64,
    /// `urn:sha1:` of the content.
    pub sha1: Urn,
    /// `urn:sha256:` of the content.
    pub sha256: Urn,
    /// Its Tiger tree root (`urn:tree:tiger/:`), base32 in JSON.
    pub tth: thex::Root,
    /// The `FILE.minisig` beside it, if any.
    #[serde(skip)]
    pub signature: Option<Sidecar>,
}

/// What to look for: words (all must match) and/or URNs (any matches).
///
/// When URNs are given the words are ignored, as Gnutella requeries send
/// `\` as their words. A query with neither finds nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query {
    /// Free text, split by [`keywords`].
    pub words: String,
    /// Content URNs, any of which may match.
    pub urns: Vec<Urn>,
    /// Most results wanted (capped at [`MAX_RESULTS`]).
    pub limit: usize,
}

/// What a [`Library::rescan`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanReport {
    /// Files shared for the first time.
    pub added: usize,
    /// Files whose size or modification time changed, hashed again.
    pub changed: usize,
    /// Files no longer found, no longer shared.
    pub removed: usize,
    /// Files seen as they were, not hashed again.
    pub unchanged: usize,
    /// Problems with single files or folders, as `path: what went wrong`;
    /// the scan went on past each of them.
    pub errors: Vec<String>,
}

/// Why the library could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or folder of the library's own could not be read or written.
    #[error("failed to {action} {}: {source}", path.display())]
    Io {
        /// What was being done, as a verb: "read", "create", ...
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The system's reason.
        source: io::Error,
    },
    /// Tantivy failed.
    #[error("failed to {action} the index {location}: {source}")]
    Index {
        /// What was being done, as a verb: "open", "commit", ...
        action: &'static str,
        /// Where the index is: "in /x/index" or "in memory".
        location: String,
        /// Tantivy's reason.
        source: tantivy::TantivyError,
    },
}

impl Error {
    fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { action, path, source }
    }
}
