//! A Gnutella 0.6 servent for distributing signed software releases.
//!
//! The protocol core ([`wire`], [`handshake`], [`routing`], [`flow`],
//! [`compression`], [`hostcache`], [`searches`], [`trust`]) does no I/O and knows nothing of async-std;
//! [`node`] runs it over real sockets, [`api`] serves the local JSON API
//! on tide, and [`cli`] is the command line, a thin client of that API.
#![warn(missing_docs)]

pub mod api;
pub mod cli;
pub mod compression;
pub mod config;
pub mod datadir;
pub mod flow;
pub mod handshake;
pub mod hostcache;
pub mod keysource;
pub mod node;
pub mod routing;
pub mod searches;
pub mod transfer;
pub mod trust;
pub mod updater;
pub mod wire;
