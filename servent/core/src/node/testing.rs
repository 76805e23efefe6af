//! Node cores wired together through in-memory links on a virtual clock,
//! in the manner of quinn-proto's test `Pair`: no socket, no thread, no
//! sleep. Each node listens on its own made-up address; a [`Action::Dial`]
//! reaches the node there, which admits or refuses it; a message sent on a
//! link arrives `latency` later; a library lookup is answered from the
//! node's list of files at once.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::{Action, Arrival, Config, Connected, Direction, Event, Node};
use crate::handshake::{Admission, PeerInfo, Role};
use crate::qrp::RouteTable;
use crate::routing::PeerId;
use crate::trust::{SharedTrust, TrustStore};
use crate::wire::{Message, Payload, Urn};

/// Steps [`Net::run_for`] takes at most, against a node that never settles.
const MAX_STEPS: usize = 1_000_000;

/// Several node cores and the links between them.
pub(crate) struct Net {
    pub nodes: Vec<Node>,
    /// What each node shares.
    pub libraries: Vec<Vec<search::SharedFile>>,
    /// The virtual clock.
    pub now: Instant,
    /// One-way delay of every link.
    pub latency: Duration,
    /// Messages each node received, in order.
    pub received: Vec<Vec<(PeerId, Message)>>,
    /// Actions each node took that the net does not carry out itself.
    pub other: Vec<Vec<Action>>,
    /// Events on their way, by arrival time and then the order sent: to which node.
    in_flight: BTreeMap<(Instant, u64), (usize, Event)>,
    sent: u64,
    /// (node, its link number) → (the other node, its link number).
    links: BTreeMap<(usize, PeerId), (usize, PeerId)>,
    next_peer: u64,
}

impl Net {
    /// `count` nodes with `config` (its listen address replaced by each
    /// node's own), seeded one after the other from `seed`.
    pub fn new(count: usize, config: Config, seed: u64) -> Net {
        let now = Instant::now();
        let nodes = (0..count)
            .map(|i| {
                let config = Config { listen: SocketAddr::V4(Net::addr(i)), ..config.clone() };
                let rng = StdRng::seed_from_u64(seed.wrapping_add(i as u64));
                Node::new(config, rng, SharedTrust::new(TrustStore::in_memory()), (0, 0), now)
            })
            .collect();
        Net {
            nodes,
            libraries: vec![Vec::new(); count],
            now,
            latency: Duration::from_millis(20),
            received: vec![Vec::new(); count],
            other: vec![Vec::new(); count],
            in_flight: BTreeMap::new(),
            sent: 0,
            links: BTreeMap::new(),
            next_peer: 1,
        }
    }

    /// The address node `i` listens on, each in its own /24 so that the
    /// diversity rule (a few links per /24) never binds.
    pub fn addr(i: usize) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::new(10, (i / 250) as u8, (i % 250) as u8, 1), 6346)
    }

    /// Shares a file of this name and content number on node `i`.
    pub fn share(&mut self, i: usize, name: &str, content: u8) {
        let file = search::SharedFile {
            index: self.libraries[i].len() as u32,
            name: name.into(),
            path: PathBuf::from(name),
            size: 1000 + u64::from(content),
            sha1: Urn::Sha1([content; 20]),
            sha256: Urn::Sha256([content; 32]),
            tth: search::thex::Root([content; 24]),
            signature: None,
        };
        self.libraries[i].push(file);
        let (files, bytes) = (self.libraries[i].len() as u32, self.libraries[i].iter().map(|f| f.size).sum());
        self.nodes[i].handle(Event::LibraryChanged { files, bytes }, self.now);
        let names = self.libraries[i].iter().map(|f| f.name.as_str());
        let table = RouteTable::from_library(names, self.libraries[i].iter().map(|f| &f.sha1));
        self.nodes[i].handle(Event::LibraryTable(table), self.now);
    }

    /// Runs the net until `duration` of virtual time has passed.
    pub fn run_for(&mut self, duration: Duration) {
        let end = self.now + duration;
        for _ in 0..MAX_STEPS {
            self.drain_actions();
            let next_event = self.in_flight.keys().next().map(|(at, _)| *at);
            let next_timer = self.nodes.iter().filter_map(Node::poll_timeout).min();
            let next = match (next_event, next_timer) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => match a.or(b) {
                    Some(t) => t,
                    None => break,
                },
            };
            if next > end {
                break;
            }
            self.now = self.now.max(next);
            self.deliver_due();
            for node in &mut self.nodes {
                if node.poll_timeout().is_some_and(|t| t <= self.now) {
                    node.handle_timeout(self.now);
                }
            }
        }
        self.now = self.now.max(end);
    }

    fn deliver_due(&mut self) {
        let now = self.now;
        while let Some(entry) = self.in_flight.first_entry().filter(|e| e.key().0 <= now) {
            let (to, event) = entry.remove();
            if let Event::Message { peer, message } = &event {
                self.received[to].push((*peer, message.clone()));
            }
            self.nodes[to].handle(event, now);
        }
    }

    fn drain_actions(&mut self) {
        loop {
            let mut any = false;
            for i in 0..self.nodes.len() {
                while let Some(action) = self.nodes[i].poll_action() {
                    any = true;
                    self.carry(i, action);
                }
            }
            if !any {
                return;
            }
        }
    }

    fn send_later(&mut self, to: usize, event: Event) {
        self.sent += 1;
        self.in_flight.insert((self.now + self.latency, self.sent), (to, event));
    }

    fn carry(&mut self, from: usize, action: Action) {
        match action {
            Action::Send { to, message } => {
                if let Some(&(node, peer)) = self.links.get(&(from, to)) {
                    self.send_later(node, Event::Message { peer, message });
                }
            }
            Action::Close { peer, bye, reason } => {
                if let Some((node, remote)) = self.links.remove(&(from, peer)) {
                    self.links.remove(&(node, remote));
                    if let Some(bye) = bye {
                        self.send_later(node, Event::Message { peer: remote, message: bye });
                    }
                    self.send_later(node, Event::Closed { peer: remote, reason });
                }
            }
            Action::Dial(addr) => self.dial(from, addr),
            Action::LookUp { lookup, query } => {
                let files =
                    self.libraries[from].iter().filter(|f| matches(f, &query)).take(query.limit).cloned().collect();
                self.nodes[from].handle(Event::LocalResults { lookup, files }, self.now);
            }
            other => self.other[from].push(other),
        }
    }

    fn dial(&mut self, from: usize, addr: SocketAddrV4) {
        let target = (0..self.nodes.len()).find(|&j| Net::addr(j) == addr);
        let Some(to) = target.filter(|&j| j != from) else {
            self.send_later(from, Event::DialFailed { addr, try_hosts: Vec::new() });
            return;
        };
        let remote = IpAddr::V4(*Net::addr(from).ip());
        self.nodes[to].handle(Event::Incoming { remote, arrival: Arrival::Unasked }, self.now);
        let leaves = [from, to].iter().all(|&i| self.nodes[i].config.role == Role::Leaf);
        if leaves {
            // The handshake refuses: "503 Shielded leaf node".
            self.send_later(from, Event::DialFailed { addr, try_hosts: Vec::new() });
            return;
        }
        match self.nodes[to].admit(SocketAddr::V4(Net::addr(from))) {
            (Admission::Full { try_ultrapeers }, _) => {
                self.send_later(from, Event::DialFailed { addr, try_hosts: try_ultrapeers });
            }
            (Admission::Accept | Admission::LeavesOnly { .. } | Admission::UltrapeersOnly { .. }, _) => {
                let (dialer, listener) = (PeerId(self.next_peer), PeerId(self.next_peer + 1));
                self.next_peer += 2;
                self.links.insert((from, dialer), (to, listener));
                self.links.insert((to, listener), (from, dialer));
                let info = |i: usize| PeerInfo {
                    listen: Some(SocketAddr::V4(Net::addr(i))),
                    ..self.nodes[i].handshake_info()
                };
                let outgoing = Connected {
                    peer: dialer,
                    addr: SocketAddr::V4(addr),
                    local: SocketAddr::V4(Net::addr(from)),
                    info: info(to),
                    direction: Direction::Outgoing,
                    dialed: Some(addr),
                };
                let incoming = Connected {
                    peer: listener,
                    addr: SocketAddr::V4(SocketAddrV4::new(*Net::addr(from).ip(), 40000)),
                    local: SocketAddr::V4(addr),
                    info: info(from),
                    direction: Direction::Incoming,
                    dialed: None,
                };
                self.send_later(from, Event::Connected(Box::new(outgoing)));
                self.send_later(to, Event::Connected(Box::new(incoming)));
            }
        }
    }

    /// The QueryHits node `i` received.
    pub fn hits_received(&self, i: usize) -> Vec<&Message> {
        self.received[i].iter().map(|(_, m)| m).filter(|m| matches!(m.payload, Payload::QueryHit(_))).collect()
    }
}

/// Whether a shared file answers a library query: any URN, or all words in its name.
fn matches(file: &search::SharedFile, query: &search::Query) -> bool {
    if !query.urns.is_empty() {
        return query.urns.iter().any(|u| *u == file.sha1 || *u == file.sha256);
    }
    let name = file.name.to_lowercase();
    let words = search::keywords(&query.words);
    !words.is_empty() && words.iter().all(|w| name.contains(w.as_str()))
}

impl Node {
    /// What this node would say of itself in a handshake: its role, QRP
    /// and its degree when it was configured for roles (leaves, or a leaf
    /// itself); nothing for a node of a flat network.
    fn handshake_info(&self) -> PeerInfo {
        let roles = self.config.role == Role::Leaf || self.config.max_leaves > 0;
        if !roles {
            return PeerInfo::default();
        }
        let degree = u32::try_from(self.config.max_peers).unwrap_or(u32::MAX);
        PeerInfo::stated(self.config.role, degree, self.config.max_ttl)
    }
}
