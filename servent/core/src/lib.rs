//! The servent without I/O: everything that decides, and nothing that waits.
//!
//! The protocol rules ([`wire`], [`handshake`], [`routing`], [`flow`],
//! [`compression`], [`qrp`]), what a servent remembers ([`hostcache`], [`searches`],
//! [`trust`]), the [`node`] core that owns them and decides for the
//! servent, and the downloads' [`requery`] schedule live here, with no
//! async runtime, socket or clock among this crate's dependencies: time is
//! passed in as an argument and randomness comes from a seeded generator the
//! caller owns. The `servent` crate runs them over real sockets; a simulator
//! can run thousands in one thread.
//!
//! The only file I/O here is [`disk`]'s atomic write and the trust store's
//! own file, which it reads and writes through it.
#![warn(missing_docs)]

pub mod compression;
pub mod disk;
pub mod flow;
pub mod handshake;
pub mod hostcache;
pub mod node;
pub mod push;
pub mod qrp;
pub mod requery;
pub mod routing;
pub mod searches;
pub mod trust;
pub mod wire;

/// What we call ourselves in handshakes and HTTP headers.
pub const USER_AGENT: &str = concat!("Seblinux/", env!("CARGO_PKG_VERSION"));
