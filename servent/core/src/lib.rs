//! The servent without I/O: everything that decides, and nothing that waits.
//!
//! The protocol rules ([`wire`], [`handshake`], [`routing`], [`flow`],
//! [`compression`], [`qrp`], which [`address`]es may be used), what a servent remembers ([`hostcache`], [`searches`],
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

pub mod address;
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

/// The civil date (year, month 1–12, day 1–31) of a count of days since
/// 1970-01-01, by Howard Hinnant's `civil_from_days`.
pub fn civil_from_days(days: u64) -> (i64, i64, i64) {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// What we call ourselves in handshakes and HTTP headers.
pub const USER_AGENT: &str = concat!("Seblinux/", env!("CARGO_PKG_VERSION"));
