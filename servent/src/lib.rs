//! A Gnutella 0.6 servent for distributing signed software releases.
//!
//! The protocol core ([`wire`], [`handshake`], [`routing`], [`flow`],
//! [`compression`], [`hostcache`], [`searches`], [`trust`]) lives in the
//! `servent-core` crate, which does no I/O and cannot depend on async-std;
//! it is re-exported here under its old paths. [`node`] runs it over real
//! sockets, [`api`] serves the local JSON API on tide, and [`cli`] is the
//! command line, a thin client of that API; [`demo`] tells the whole story
//! with five servents on loopback.
#![warn(missing_docs)]

pub use servent_core::address;
pub mod api;
pub mod bootstrap;
pub mod cli;
pub use servent_core::compression;
pub mod config;
pub mod configfile;
pub mod datadir;
pub mod demo;
pub mod fakes;
pub use servent_core::flow;
pub use servent_core::handshake;
pub use servent_core::hostcache;
pub mod keysource;
pub mod logging;
pub mod node;
pub mod peeraddr;
pub use servent_core::push;
pub use servent_core::qrp;
pub use servent_core::routing;
pub use servent_core::searches;
pub mod transfer;
pub use servent_core::trust;
pub mod updater;
pub use servent_core::wire;
