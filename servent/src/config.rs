//! Settings of a running servent and their defaults.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::time::Duration;

pub use servent_core::disk::write_atomically;
pub use servent_core::USER_AGENT;

/// The Gnutella port, by tradition.
pub const DEFAULT_PORT: u16 = 6346;
/// Where the local API and page answer by default.
pub const DEFAULT_API: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 6347);
/// Connections kept by default.
pub const DEFAULT_MAX_PEERS: usize = 16;
/// Leaves an ultrapeer shelters by default, as deployed ultrapeers do.
pub const DEFAULT_MAX_LEAVES: usize = servent_core::node::MAX_LEAVES;
/// How often shared folders are rescanned, so changes show within 10 s.
pub const RESCAN_INTERVAL: Duration = Duration::from_secs(5);

/// Everything a servent needs to run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the index, host cache and partial downloads live; `None` keeps
    /// everything in memory (tests and test networks).
    pub data_dir: Option<PathBuf>,
    /// The address the Gnutella (and HTTP) port listens on.
    pub listen: SocketAddr,
    /// Folders whose files are shared.
    pub shares: Vec<PathBuf>,
    /// Servents to connect to at start, and to keep trying.
    pub peers: Vec<SocketAddr>,
    /// Ultrapeer links the servent keeps and accepts at most (a leaf keeps 4 at most).
    pub max_peers: usize,
    /// The part it plays: `auto`, `ultrapeer` or `leaf`.
    pub mode: Mode,
    /// Leaves an ultrapeer shelters besides its ultrapeer links.
    pub max_leaves: usize,
    /// Whether the servent dials addresses it learns from the network (on by
    /// default; a test network turns it off to keep its topology).
    pub discover: bool,
    /// Whether loopback and private addresses heard from the network (and
    /// our own IP's) are dialed, and connections from them count for the
    /// firewall check: off, as they cannot be distant servents; a test
    /// network on one machine turns it on.
    pub dial_local: bool,
    /// GWebCache URLs asked for hosts when the host cache runs dry.
    pub gwebcaches: Vec<String>,
    /// UDP host caches asked for hosts when the host cache runs dry (`--uhc`).
    pub uhcs: Vec<crate::peeraddr::PeerAddr>,
    /// Servents given by host name (`--peer HOST:PORT`), looked up now and
    /// again by the node and kept trying.
    pub peer_names: Vec<crate::peeraddr::PeerAddr>,
    /// Whether the bootstrap list in the data directory is asked too
    /// (`servent run` with discovery on; see [`crate::bootstrap`]).
    pub bootstrap: bool,
    /// The highest TTL + hops routed.
    pub max_ttl: u8,
    /// Whether, as an ultrapeer, it exchanges last-hop route tables with
    /// ultrapeers (`X-Ultrapeer-Query-Routing`, on as deployed); a flat
    /// test network turns it off, so that its floods go to the end of
    /// their TTL as in Gnutella 0.4.
    pub ultrapeer_query_routing: bool,
    /// How often shared folders are rescanned.
    pub rescan_interval: Duration,
    /// Whether Gnutella links may be deflate-compressed.
    pub deflate: bool,
    /// Upload slots, per-address limit and timeouts.
    pub uploads: crate::transfer::upload::UploadConfig,
    /// The upload and download caps (`--max-upload-rate`, `--max-download-rate`).
    pub rates: crate::transfer::rate::Rates,
    /// Shared files served as a seed (`--seed-release`): each chunk once
    /// to the swarm before any twice.
    pub seed_releases: Vec<PathBuf>,
    /// Where finished downloads land (and are shared from); `None` means
    /// `<data-dir>/downloads`. Without a data directory there are no downloads.
    pub downloads: Option<PathBuf>,
    /// Publisher keys to pin at start (`--trust`), besides those pinned before.
    pub trust: Vec<crate::trust::TrustedKey>,
    /// What every request to the local API must carry (`--api-token`); the
    /// API is served beside the node, which does not look at it.
    pub api_token: Option<crate::api::guard::ApiToken>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            data_dir: Some(default_data_dir()),
            listen: SocketAddr::from((Ipv4Addr::UNSPECIFIED, DEFAULT_PORT)),
            shares: Vec::new(),
            peers: Vec::new(),
            max_peers: DEFAULT_MAX_PEERS,
            mode: Mode::Ultrapeer,
            max_leaves: DEFAULT_MAX_LEAVES,
            discover: true,
            dial_local: false,
            gwebcaches: Vec::new(),
            uhcs: Vec::new(),
            peer_names: Vec::new(),
            bootstrap: false,
            max_ttl: crate::routing::DEFAULT_MAX_TTL,
            ultrapeer_query_routing: true,
            rescan_interval: RESCAN_INTERVAL,
            deflate: true,
            uploads: crate::transfer::upload::UploadConfig::default(),
            rates: crate::transfer::rate::Rates::default(),
            seed_releases: Vec::new(),
            downloads: None,
            trust: Vec::new(),
            api_token: None,
        }
    }
}

/// The part a servent is asked to play (`run --mode`, `auto` by default
/// there; [`Config::default`] is a fixed ultrapeer, for tests and test
/// networks that must link up at once).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Decide by itself, as deployed servents do: start as a leaf, become
    /// an ultrapeer once reachable and up an hour (or when no ultrapeer is
    /// to be found), and back (`servent_core::node::promotion`).
    #[default]
    Auto,
    /// Always an ultrapeer.
    Ultrapeer,
    /// Always a leaf: 3 or 4 ultrapeer links, its QRP table sent to them.
    Leaf,
}

impl Mode {
    /// The role played at start.
    pub fn role(self) -> servent_core::handshake::Role {
        match self {
            Mode::Ultrapeer => servent_core::handshake::Role::Ultrapeer,
            Mode::Auto | Mode::Leaf => servent_core::handshake::Role::Leaf,
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = String;

    fn from_str(text: &str) -> Result<Mode, String> {
        match text {
            "auto" => Ok(Mode::Auto),
            "ultrapeer" => Ok(Mode::Ultrapeer),
            "leaf" => Ok(Mode::Leaf),
            other => Err(format!("--mode {other:?}: auto, ultrapeer or leaf")),
        }
    }
}

impl Config {
    /// The downloads directory and the directory of partial downloads, when
    /// this servent keeps state on disk.
    pub fn download_dirs(&self) -> Option<(PathBuf, PathBuf)> {
        let data = self.data_dir.as_ref()?;
        let finished = self.downloads.clone().unwrap_or_else(|| data.join("downloads"));
        Some((finished, data.join("partial")))
    }
}

/// `$XDG_DATA_HOME/servent`, else `~/.local/share/servent`, else `./servent-data`.
pub fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("servent");
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/share/servent"),
        None => PathBuf::from("servent-data"),
    }
}
