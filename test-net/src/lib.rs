//! Many real servents on one machine, and the numbers of unstructured
//! search: success rate, messages per query, duplicates, first-hit latency.
//!
//! A Gnutella network finds files by *flooding*: a Query goes to every
//! neighbour, which passes it to all of its own but the sender, until its
//! TTL runs out; servents drop a Query whose GUID they have seen (a
//! *duplicate*), which is what keeps a flood from looping. How far a flood
//! reaches and what it costs depends on the graph (its degree and shape),
//! on how many copies of a file exist, and on the TTL. Lv, Cao, Cohen, Li
//! and Shenker ("Search and Replication in Unstructured Peer-to-Peer
//! Networks", 2002) measured this in simulation and proposed the *expanding
//! ring*: flood with TTL 1, then 2, then 3… until something is found, which
//! finds popular files at a fraction of the cost.
//!
//! This crate measures the same things on the real servent. It builds a
//! [`topology`], a [`catalog`] of files spread over the nodes, a list of
//! queries and a [`churn`] schedule, all from one seed; signs every file as
//! a publisher would and lets a few adversaries share fakes of what is asked
//! for ([`content`]); starts a real servent per node on its own loopback
//! address ([`net`]); and runs every query twice, by flooding and by
//! expanding ring, downloading the best result when there are fakes about
//! ([`experiment`]). Messages are not estimated: they are the Query
//! descriptors the servents' writer tasks put on their sockets, summed over
//! all nodes, before and after each query. [`report`] turns the results
//! into a table, JSON and SVG plots.
//!
//! [`sim`] runs the same plan and measurement on the servent's node core
//! with in-memory links and a virtual clock, for networks of a hundred
//! thousand nodes that no machine could run as servents.
//!
//! What is deliberately absent: the harness never routes, answers or
//! shortcuts anything. Between two queries it waits until the network has
//! been quiet for a moment (see [`experiment`]); that is the only timing
//! assumption of the measurement.
//!
//! ```no_run
//! use std::sync::atomic::AtomicBool;
//! use test_net::{experiment, Settings};
//!
//! let settings = Settings { nodes: 50, degree: 4, queries: 10, ..Settings::default() };
//! let summary = async_std::task::block_on(experiment::run(&settings, &AtomicBool::new(false), |_| {}))?;
//! println!("{summary}");
//! # Ok::<(), test_net::Error>(())
//! ```
#![warn(missing_docs)]

pub mod catalog;
pub mod churn;
pub mod content;
pub mod experiment;
pub mod flash;
pub mod net;
pub mod report;
pub mod sim;
pub mod swarm;
pub mod tiers;
pub mod topology;

use std::io;
use std::net::SocketAddrV4;
use std::path::PathBuf;
use std::time::Duration;

pub use catalog::Distribution;
pub use experiment::{QueryRecord, Summary, SweepSummary};
pub use topology::Shape;

/// The highest TTL a query may have (the servent's maximum TTL + hops).
pub const MAX_TTL: u8 = servent::routing::DEFAULT_MAX_TTL;

/// Everything that defines a run; the seed makes it repeatable.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// Servents in the network.
    pub nodes: usize,
    /// Neighbours per node (the mean, for a power-law graph).
    pub degree: usize,
    /// The graph's shape.
    pub topology: Shape,
    /// The flood's TTL, and the largest ring of the expanding ring.
    pub ttl: u8,
    /// Files in the catalog.
    pub catalog: usize,
    /// The mean fraction of nodes holding each file.
    pub replication: f64,
    /// How copies (and queries) spread over the files.
    pub distribution: Distribution,
    /// Queries in the run.
    pub queries: usize,
    /// Seeds the topology, the catalog, the queries and the churn.
    pub seed: u64,
    /// The fraction of nodes that leave and rejoin during the run.
    pub churn: f64,
    /// Nodes that answer every query with fakes; with any, every asker
    /// downloads its best result and checks it.
    pub fakes: usize,
    /// Whether one node floods queries as fast as it can in a phase of its own.
    pub flooder: bool,
    /// The port every node listens on, each on its own address.
    pub port: u16,
    /// How long the network must send no Query before a query counts as over.
    pub quiet: Duration,
    /// Whether the run is simulated ([`sim`]): node cores on in-memory
    /// links and a virtual clock instead of real servents.
    pub sim: bool,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            nodes: 100,
            degree: 6,
            topology: Shape::Random,
            ttl: 5,
            catalog: 100,
            replication: 0.01,
            distribution: Distribution::Uniform,
            queries: 100,
            seed: 1,
            churn: 0.0,
            fakes: 0,
            flooder: false,
            port: servent::config::DEFAULT_PORT,
            quiet: Duration::from_millis(60),
            sim: false,
        }
    }
}

impl Settings {
    /// Checks what the generators do not: the bounds of the run itself.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |message: String| Err(Error::Settings(message));
        let max_nodes = if self.sim { sim::MAX_NODES } else { net::MAX_NODES };
        if self.nodes < 3 || self.nodes > max_nodes {
            return bad(format!("--nodes must be from 3 to {max_nodes}, not {}", self.nodes));
        }
        if self.sim && (self.churn > 0.0 || self.fakes > 0 || self.flooder) {
            return bad("--sim runs flooding and the expanding ring only: no --churn, --fakes or --flooder".into());
        }
        if self.ttl == 0 || self.ttl > MAX_TTL {
            return bad(format!("--ttl must be from 1 to {MAX_TTL}, not {}", self.ttl));
        }
        if self.queries == 0 {
            return bad("--queries must be at least 1".into());
        }
        if self.port == 0 {
            return bad("--port must not be 0: every node needs the same, known port".into());
        }
        let honest = self.nodes.saturating_sub(self.fakes);
        if honest < 2 + usize::from(self.flooder) {
            return bad(format!(
                "--fakes {} leaves too few honest nodes of {}: at least 2 must hold and ask{}",
                self.fakes,
                self.nodes,
                if self.flooder { ", besides the flooder" } else { "" }
            ));
        }
        if self.flooder && self.churn >= 1.0 {
            return bad("--flooder needs a node that does not churn: use --churn below 1".into());
        }
        Ok(())
    }
}

/// Why a run could not be done.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The settings describe an impossible run.
    #[error("{0}")]
    Settings(String),
    /// The shared files could not be written.
    #[error("cannot write shared files in {path}: {source}")]
    Files {
        /// The file or folder.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// The catalog could not be signed, or a key made.
    #[error("{0}")]
    Sign(String),
    /// A servent could not start.
    #[error("cannot start node {index} on {addr}: {source}")]
    Start {
        /// The node.
        index: usize,
        /// Its address.
        addr: SocketAddrV4,
        /// What the servent said.
        source: servent::node::NodeError,
    },
    /// A running servent stopped answering, or refused a search.
    #[error("node {index} on {addr}: {source}")]
    Node {
        /// The node.
        index: usize,
        /// Its address.
        addr: SocketAddrV4,
        /// What the servent said.
        source: servent::node::NodeError,
    },
    /// The network did not get ready in time.
    #[error("{0}")]
    Timeout(String),
    /// Ctrl-C, or the caller's cancel flag.
    #[error("interrupted")]
    Interrupted,
    /// The report could not be written.
    #[error("cannot write the report {path}: {source}")]
    Report {
        /// The file or folder.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
}

/// The resident memory of this process in MB (VmRSS), where Linux tells.
pub fn rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
