//! The network itself: real servents, one per node, in this process.
//!
//! Every node is a `servent::node` with its real TCP listener, its real
//! Gnutella 0.6 connections (handshake, deflate, pings) and its real index
//! of real files on disk. What makes a thousand of them fit on one machine
//! is only addressing: all of 127.0.0.0/8 reaches the loopback interface on
//! Linux, so node `i` listens on its own address `127.0.x.y` (see
//! [`node_addr`]) with the same port for all, and ports never run out.
//! `127.0.0.x` is left alone, for the servents and APIs people run there.
//!
//! The harness does not route or answer anything itself. It writes every
//! node's shared files ([`Content`]), starts the nodes (each dialing only
//! its topology neighbours, with discovery off, so the graph stays the one
//! generated, and each pinning the publisher's key), reads the counters the
//! servents keep at their sockets, and stops and restarts nodes for churn.
//! When nodes download, each gets a data directory of its own beside the
//! shared folders, kept across churn as a restarted servent keeps its own;
//! otherwise their index and state live in memory.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_std::task::{self, JoinHandle};
use futures::future::join_all;
use servent::config::{Config, Mode};
use servent::node::{self, NodeError, NodeHandle, Status};
use servent::routing::Drop as DropReason;

use servent::trust::TrustedKey;

use crate::catalog::Catalog;
use crate::content::{Content, NodeShare};
use crate::topology::Topology;
use crate::Error;

/// Addresses per third octet (`.1` to `.254`).
const HOSTS_PER_OCTET: usize = 254;
/// The most nodes that get an address of their own: `127.0.1.1` to `127.0.254.254`.
pub const MAX_NODES: usize = HOSTS_PER_OCTET * HOSTS_PER_OCTET;
/// Nodes started together before their files must be indexed: bounds the
/// Tantivy writers (each with its threads and arena) alive at once.
const START_BATCH: usize = 64;
/// How long the files of a batch may take to become searchable.
const INDEX_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the whole topology may take to connect once every node runs.
const LINK_TIMEOUT: Duration = Duration::from_secs(120);
/// How often readiness is checked while waiting.
const READY_POLL: Duration = Duration::from_millis(50);
/// Content never changes during a run: the scan at start is the one that
/// matters, later ones would only cost time.
const RESCAN_INTERVAL: Duration = Duration::from_secs(3600);

/// The listening address of node `index`: `127.0.x.y:port` with x and y
/// from 1 to 254, so that no address ends in `.0` or `.255` and none is in
/// `127.0.0.0/24`.
pub fn node_addr(index: usize, port: u16) -> Option<SocketAddrV4> {
    if index >= MAX_NODES {
        return None;
    }
    let x = (1 + index / HOSTS_PER_OCTET) as u8;
    let y = (1 + index % HOSTS_PER_OCTET) as u8;
    Some(SocketAddrV4::new(Ipv4Addr::new(127, 0, x, y), port))
}

/// What one servent has counted since it started, as far as a measurement
/// needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeCounts {
    /// Query descriptors written to its sockets.
    pub queries_sent: u64,
    /// Messages it dropped as duplicates.
    pub duplicates: u64,
    /// Queries it dropped because a neighbour sent too many.
    pub rate_limited: u64,
    /// Messages it dropped because a neighbour's queue was full.
    pub queue_full: u64,
}

impl NodeCounts {
    fn of(status: &Status) -> NodeCounts {
        let dropped = |reason| status.totals.dropped.get(&reason).copied().unwrap_or(0);
        NodeCounts {
            queries_sent: status.queries_sent,
            duplicates: dropped(DropReason::Duplicate),
            rate_limited: dropped(DropReason::RateLimited),
            queue_full: dropped(DropReason::QueueFull),
        }
    }

    fn minus(self, earlier: NodeCounts) -> NodeCounts {
        NodeCounts {
            queries_sent: self.queries_sent.saturating_sub(earlier.queries_sent),
            duplicates: self.duplicates.saturating_sub(earlier.duplicates),
            rate_limited: self.rate_limited.saturating_sub(earlier.rate_limited),
            queue_full: self.queue_full.saturating_sub(earlier.queue_full),
        }
    }

    fn plus(self, other: NodeCounts) -> NodeCounts {
        NodeCounts {
            queries_sent: self.queries_sent + other.queries_sent,
            duplicates: self.duplicates + other.duplicates,
            rate_limited: self.rate_limited + other.rate_limited,
            queue_full: self.queue_full + other.queue_full,
        }
    }
}

/// Every node's counters at one moment; `None` for nodes that were down.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    nodes: Vec<Option<NodeCounts>>,
}

impl Snapshot {
    /// The sum over all nodes that were up.
    pub fn total(&self) -> NodeCounts {
        self.nodes.iter().flatten().fold(NodeCounts::default(), |sum, c| sum.plus(*c))
    }

    /// What happened between `earlier` and this snapshot, summed over the
    /// nodes up at both; a node that left in between counts with what it
    /// had when it left (see [`Net::leave`]), kept in `left`.
    pub fn since(&self, earlier: &Snapshot, left: &[(usize, NodeCounts)]) -> NodeCounts {
        let mut sum = NodeCounts::default();
        for (i, before) in earlier.nodes.iter().enumerate() {
            let Some(before) = before else { continue };
            let after =
                self.nodes.get(i).copied().flatten().or_else(|| left.iter().find(|(n, _)| *n == i).map(|l| l.1));
            if let Some(after) = after {
                sum = sum.plus(after.minus(*before));
            }
        }
        sum
    }

    /// What happened at `nodes` between `earlier` and this snapshot, summed
    /// over those up at both. A node keeps its counters across its links, so
    /// a link cut or replaced meanwhile loses nothing.
    pub fn since_at(&self, earlier: &Snapshot, nodes: &[usize]) -> NodeCounts {
        let at = |snapshot: &Snapshot, i: usize| snapshot.nodes.get(i).copied().flatten();
        nodes
            .iter()
            .filter_map(|&i| Some(at(self, i)?.minus(at(earlier, i)?)))
            .fold(NodeCounts::default(), NodeCounts::plus)
    }
}

/// One node: how to start it, and the servent while it runs.
struct Slot {
    addr: SocketAddrV4,
    /// Its folder of shared files, if it holds any, and what is in it.
    share: NodeShare,
    /// Its data directory, when nodes download.
    data_dir: Option<PathBuf>,
    /// Neighbours it dials at its first start (the older ones).
    dials: Vec<SocketAddr>,
    /// All its neighbours, which it dials when it comes back after churn.
    neighbours: Vec<SocketAddr>,
    /// Its part, its ultrapeer links and its leaves.
    mode: Mode,
    max_peers: usize,
    max_leaves: usize,
    node: Option<NodeHandle>,
    /// A shutdown under way, which must end before the address is reused.
    stopping: Option<JoinHandle<()>>,
}

/// How every servent of a network is set up.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// The port every node listens on, each on its own address.
    pub port: u16,
    /// The publisher keys every node pins.
    pub trust: Vec<TrustedKey>,
    /// Whether nodes get a data directory of their own, so they can download.
    pub downloads: bool,
    /// The first this many nodes run as ultrapeers, the others as leaves;
    /// 0 for a flat network of ultrapeers that exchange no last-hop route
    /// tables, so that a flood goes on to the end of its TTL, as flooding
    /// does on a flat Gnutella network (and in the simulator).
    pub ultrapeers: usize,
}

/// A running test network.
pub struct Net {
    slots: Vec<Slot>,
    config: NetConfig,
    /// The shared folders and data directories; removed when the network is dropped.
    _files: tempfile::TempDir,
}

impl Net {
    /// Writes every node's files, starts every servent and waits until all
    /// files are searchable and every link of `topology` is up. Stops what
    /// it started if anything fails, or if `cancel` is set.
    pub async fn start(
        topology: &Topology,
        catalog: &Catalog,
        content: &Content,
        config: NetConfig,
        cancel: &AtomicBool,
    ) -> Result<Net, Error> {
        let files = tempfile::Builder::new()
            .prefix("test-net-")
            .tempdir()
            .map_err(|source| Error::Files { path: std::env::temp_dir(), source })?;
        let mut slots = Vec::with_capacity(topology.nodes());
        for index in 0..topology.nodes() {
            let addr = node_addr(index, config.port).ok_or(Error::Settings(format!("at most {MAX_NODES} nodes")))?;
            let share = content.write_share(catalog, files.path(), index)?;
            let addrs = |list: &mut dyn Iterator<Item = usize>| -> Vec<SocketAddr> {
                list.filter_map(|n| node_addr(n, config.port)).map(SocketAddr::V4).collect()
            };
            let neighbours = topology.neighbours(index);
            let up_links = neighbours.iter().filter(|&&n| n < config.ultrapeers).count();
            let (mode, max_peers, max_leaves) = match config.ultrapeers {
                0 => (Mode::Ultrapeer, neighbours.len(), servent::config::DEFAULT_MAX_LEAVES),
                ultrapeers if index < ultrapeers => (Mode::Ultrapeer, up_links, neighbours.len() - up_links),
                _ => (Mode::Leaf, up_links, 0),
            };
            slots.push(Slot {
                addr,
                mode,
                max_peers,
                max_leaves,
                share,
                data_dir: config.downloads.then(|| files.path().join(format!("data-{index}"))),
                dials: addrs(&mut topology.dials(index)),
                neighbours: addrs(&mut topology.neighbours(index).iter().copied()),
                node: None,
                stopping: None,
            });
        }
        let mut net = Net { slots, config, _files: files };
        match net.boot(cancel).await {
            Ok(()) => Ok(net),
            Err(e) => {
                net.shutdown().await;
                Err(e)
            }
        }
    }

    async fn boot(&mut self, cancel: &AtomicBool) -> Result<(), Error> {
        let count = self.slots.len();
        for batch in (0..count).collect::<Vec<_>>().chunks(START_BATCH) {
            for &index in batch {
                let peers = self.slots[index].dials.clone();
                self.launch(index, peers).await?;
            }
            self.wait_indexed(batch, cancel).await?;
        }
        self.wait_linked(cancel).await
    }

    /// Starts the servent of node `index`, dialing `peers`.
    async fn launch(&mut self, index: usize, peers: Vec<SocketAddr>) -> Result<(), Error> {
        let slot = &mut self.slots[index];
        if let Some(stopping) = slot.stopping.take() {
            stopping.await;
        }
        let config = Config {
            data_dir: slot.data_dir.clone(),
            listen: SocketAddr::V4(slot.addr),
            shares: slot.share.dir.iter().cloned().collect(),
            peers,
            max_peers: slot.max_peers,
            mode: slot.mode,
            max_leaves: slot.max_leaves,
            discover: false,
            rescan_interval: RESCAN_INTERVAL,
            trust: self.config.trust.clone(),
            // Every node is on loopback: local addresses are servents here.
            dial_local: true,
            ultrapeer_query_routing: self.config.ultrapeers > 0,
            ..Config::default()
        };
        let node = node::start(config).await.map_err(|source| Error::Start { index, addr: slot.addr, source })?;
        slot.node = Some(node);
        Ok(())
    }

    /// Waits until every file the nodes of `batch` share can be found in
    /// their own index.
    async fn wait_indexed(&self, batch: &[usize], cancel: &AtomicBool) -> Result<(), Error> {
        let deadline = Instant::now() + INDEX_TIMEOUT;
        let mut waiting: Vec<usize> = batch.to_vec();
        loop {
            waiting.retain(|&index| !self.is_indexed(index));
            if waiting.is_empty() {
                return Ok(());
            }
            check_cancel(cancel)?;
            if Instant::now() >= deadline {
                let slot = &self.slots[waiting[0]];
                return Err(Error::Timeout(format!(
                    "after {} s, {} nodes have not indexed their files yet, {} among them",
                    INDEX_TIMEOUT.as_secs(),
                    waiting.len(),
                    slot.addr
                )));
            }
            task::sleep(READY_POLL).await;
        }
    }

    fn is_indexed(&self, index: usize) -> bool {
        let slot = &self.slots[index];
        let Some(node) = &slot.node else { return true };
        slot.share.expected.iter().all(|expected| {
            let query = search::Query { words: expected.query.clone(), urns: Vec::new(), limit: 10 };
            let found = node.library().search(&query).unwrap_or_default();
            found.iter().filter(|f| f.name == expected.name).count() >= expected.copies
        })
    }

    /// Waits until every live node is linked to exactly its neighbours.
    async fn wait_linked(&self, cancel: &AtomicBool) -> Result<(), Error> {
        let deadline = Instant::now() + LINK_TIMEOUT;
        loop {
            let missing = self.missing_links().await?;
            if missing.is_empty() {
                return Ok(());
            }
            check_cancel(cancel)?;
            if Instant::now() >= deadline {
                let (index, have) = missing[0];
                let slot = &self.slots[index];
                return Err(Error::Timeout(format!(
                    "after {} s, {} nodes still lack neighbours: {} has {have} of {}",
                    LINK_TIMEOUT.as_secs(),
                    missing.len(),
                    slot.addr,
                    slot.neighbours.len()
                )));
            }
            task::sleep(READY_POLL * 4).await;
        }
    }

    /// Nodes without all their neighbours, with how many they have.
    async fn missing_links(&self) -> Result<Vec<(usize, usize)>, Error> {
        let live = self.running();
        let peers = join_all(live.iter().map(|(_, node)| node.peers())).await;
        let mut missing = Vec::new();
        for (&(index, _), peers) in live.iter().zip(peers) {
            let peers = peers.map_err(|source| self.lost(index, source))?;
            let linked: HashSet<SocketAddr> = peers.iter().filter_map(|p| p.listen.map(SocketAddr::V4)).collect();
            let have = self.slots[index].neighbours.iter().filter(|n| linked.contains(n)).count();
            if have < self.slots[index].neighbours.len() {
                missing.push((index, have));
            }
        }
        Ok(missing)
    }

    /// Whether node `index` is up.
    pub fn is_live(&self, index: usize) -> bool {
        self.slots.get(index).is_some_and(|s| s.node.is_some())
    }

    /// The servent of node `index`, if it is up.
    pub fn node(&self, index: usize) -> Option<&NodeHandle> {
        self.slots.get(index).and_then(|s| s.node.as_ref())
    }

    /// The live nodes with their servents.
    fn running(&self) -> Vec<(usize, &NodeHandle)> {
        self.slots.iter().enumerate().filter_map(|(i, s)| s.node.as_ref().map(|node| (i, node))).collect()
    }

    /// The listening address of node `index`.
    pub fn addr(&self, index: usize) -> SocketAddrV4 {
        self.slots[index].addr
    }

    /// The counters of every live node, read from the servents.
    pub async fn snapshot(&self) -> Result<Snapshot, Error> {
        let live = self.running();
        let statuses = join_all(live.iter().map(|(_, node)| node.status())).await;
        let mut nodes = vec![None; self.slots.len()];
        for (&(index, _), status) in live.iter().zip(statuses) {
            let status = status.map_err(|source| self.lost(index, source))?;
            nodes[index] = Some(NodeCounts::of(&status));
        }
        Ok(Snapshot { nodes })
    }

    /// Stops node `index` and returns what it had counted until then. The
    /// servent says Bye to its neighbours and closes; that finishes in the
    /// background, so a query under way goes on without it.
    pub async fn leave(&mut self, index: usize) -> Result<NodeCounts, Error> {
        let Some(node) = self.slots[index].node.take() else { return Ok(NodeCounts::default()) };
        let status = node.status().await.map_err(|source| self.lost(index, source))?;
        self.slots[index].stopping = Some(task::spawn(async move { node.shutdown().await }));
        Ok(NodeCounts::of(&status))
    }

    /// Starts node `index` again on the same address with the same files,
    /// dialing all its neighbours, as a servent coming back does with the
    /// hosts it knew.
    pub async fn rejoin(&mut self, index: usize) -> Result<(), Error> {
        if self.is_live(index) {
            return Ok(());
        }
        let peers = self.slots[index].neighbours.clone();
        self.launch(index, peers).await
    }

    /// Stops every servent and waits until all have closed their ports.
    pub async fn shutdown(&mut self) {
        let stopping: Vec<JoinHandle<()>> = self.slots.iter_mut().filter_map(|s| s.stopping.take()).collect();
        let running: Vec<NodeHandle> = self.slots.iter_mut().filter_map(|s| s.node.take()).collect();
        join_all(running.iter().map(NodeHandle::shutdown)).await;
        join_all(stopping).await;
    }

    fn lost(&self, index: usize, source: NodeError) -> Error {
        Error::Node { index, addr: self.slots[index].addr, source }
    }
}

/// Fails with [`Error::Interrupted`] once `cancel` is set.
pub(crate) fn check_cancel(cancel: &AtomicBool) -> Result<(), Error> {
    if cancel.load(Ordering::Relaxed) {
        Err(Error::Interrupted)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_avoid_zero_broadcast_and_the_first_block() {
        assert_eq!(node_addr(0, 6346).unwrap().to_string(), "127.0.1.1:6346");
        assert_eq!(node_addr(253, 6346).unwrap().to_string(), "127.0.1.254:6346");
        assert_eq!(node_addr(254, 6346).unwrap().to_string(), "127.0.2.1:6346");
        assert_eq!(node_addr(MAX_NODES - 1, 1).unwrap().to_string(), "127.0.254.254:1");
        assert_eq!(node_addr(MAX_NODES, 1), None);
        let all: HashSet<SocketAddrV4> = (0..MAX_NODES).filter_map(|i| node_addr(i, 1)).collect();
        assert_eq!(all.len(), MAX_NODES);
    }

    #[test]
    fn a_node_that_left_counts_with_what_it_had() {
        let counts = |q| Some(NodeCounts { queries_sent: q, ..NodeCounts::default() });
        let before = Snapshot { nodes: vec![counts(10), counts(20), None] };
        let after = Snapshot { nodes: vec![counts(15), None, counts(3)] };
        let left = [(1, NodeCounts { queries_sent: 26, ..NodeCounts::default() })];
        assert_eq!(after.since(&before, &left).queries_sent, 5 + 6);
        assert_eq!(after.total().queries_sent, 18);
    }

    #[test]
    fn counts_at_some_nodes_skip_those_down_at_either_end() {
        let limited = |r| Some(NodeCounts { rate_limited: r, ..NodeCounts::default() });
        let before = Snapshot { nodes: vec![limited(1), limited(2), None, limited(4)] };
        let after = Snapshot { nodes: vec![limited(11), limited(22), limited(30), None] };
        assert_eq!(after.since_at(&before, &[0, 2, 3]).rate_limited, 10);
        assert_eq!(after.since_at(&before, &[0, 1, 7]).rate_limited, 30);
    }
}
