//! The pump: the one task that owns the node core. It feeds the core what
//! the connection tasks, the library, the API and the clock report, and
//! carries out what the core asks: queue a message on a link, close one,
//! dial, look the library up, ask the GWebCaches, save the host cache. It
//! decides nothing itself.

use std::collections::HashMap;
use std::net::{SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_std::channel::{Receiver, RecvError, Sender};
use async_std::net::TcpStream;
use async_std::task::{self, JoinHandle};
use futures::future::{self, FutureExt};
use servent_core::node::{Action, Arrival, Connected, Event as CoreEvent, Node};

use super::udp::Datagrams;
use super::{
    connection, gwebcache, library, log, warn, Command, ConnectedPeer, Event, LinkCounters, NodeError, PeerSnapshot,
    SearchSnapshot, Shared, Status, HOST_CACHE_FILE,
};
use crate::flow::OutQueue;
use crate::routing::PeerId;
use crate::transfer::download::Downloads;
use crate::wire::Message;

/// Events taken in a row, at most, while a datagram waits.
const EVENTS_BEFORE_A_DATAGRAM: u32 = 8;

/// How long a shutdown waits for peers to receive their Bye.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// A live link: how to reach its writer, and what it counted.
pub(super) struct Link {
    addr: SocketAddr,
    queue: Arc<Mutex<OutQueue>>,
    wake: Sender<()>,
    stream: TcpStream,
    counters: Arc<LinkCounters>,
    writer: JoinHandle<()>,
}

impl Link {
    /// Queues a message; how many were dropped to make room.
    fn send(&self, message: Message) -> u64 {
        let dropped = match self.queue.lock() {
            Ok(mut queue) => queue.push(message),
            Err(_) => return 0,
        };
        self.counters.queue_dropped.fetch_add(dropped, Ordering::Relaxed);
        // A full wake channel already means "there is work": nothing to add.
        let _ = self.wake.try_send(());
        dropped
    }
}

pub(super) struct Pump {
    pub(super) core: Node,
    pub(super) shared: Arc<Shared>,
    pub(super) library: Arc<search::Library>,
    pub(super) links: HashMap<PeerId, Link>,
    pub(super) data_dir: Option<PathBuf>,
    pub(super) listen: SocketAddr,
    pub(super) downloads: Option<Downloads>,
    pub(super) tasks: Vec<JoinHandle<()>>,
    pub(super) inbox: Receiver<Event>,
    /// The last save of the host cache, written on the blocking pool.
    pub(super) saving: Option<JoinHandle<()>>,
    /// Datagrams to send from the Gnutella port, when UDP is open.
    pub(super) udp_out: Option<Sender<(SocketAddrV4, Vec<u8>)>>,
    /// Datagrams received on the Gnutella port, when UDP is open: a queue
    /// of their own, taken only when no other event waits.
    pub(super) datagrams: Option<Datagrams>,
    /// Events taken in a row while a datagram may have waited.
    pub(super) events_in_a_row: u32,
}

impl Pump {
    pub(super) async fn run(mut self) {
        loop {
            let wait = self.core.poll_timeout().map(|t| t.saturating_duration_since(Instant::now()));
            let received = match wait {
                Some(wait) => async_std::future::timeout(wait, self.next()).await.ok(),
                None => Some(self.next().await),
            };
            match received {
                Some(Ok(Event::Command(Command::Shutdown { reply }))) => {
                    self.shutdown().await;
                    let _ = reply.send(()).await;
                    return;
                }
                Some(Ok(event)) => self.on_event(event, Instant::now()),
                Some(Err(_)) => return,
                None => {}
            }
            let now = Instant::now();
            if self.core.poll_timeout().is_some_and(|t| t <= now) {
                self.core.handle_timeout(now);
            }
            self.carry_out(None);
        }
    }

    /// The next event, or else the next datagram ([`next_event`]).
    async fn next(&mut self) -> Result<Event, RecvError> {
        next_event(&self.inbox, self.datagrams.as_ref(), &mut self.events_in_a_row).await
    }

    fn on_event(&mut self, event: Event, now: Instant) {
        match event {
            Event::Core(event) => self.core.handle(event, now),
            Event::Connected(peer) => self.on_connected(*peer, now),
            Event::Command(command) => self.on_command(command, now),
        }
    }

    fn on_connected(&mut self, peer: ConnectedPeer, now: Instant) {
        let link = Link {
            addr: peer.addr,
            queue: peer.queue,
            wake: peer.wake,
            stream: peer.stream,
            counters: peer.counters,
            writer: peer.writer,
        };
        self.links.insert(peer.id, link);
        let connected = Connected {
            peer: peer.id,
            addr: peer.addr,
            local: peer.local,
            info: peer.info,
            direction: peer.direction,
            dialed: peer.dialed,
        };
        self.core.handle(CoreEvent::Connected(Box::new(connected)), now);
    }

    /// Does what the core asks; the links it closes are kept in `closed`
    /// when given, so that a shutdown can wait for their writers.
    fn carry_out(&mut self, mut closed: Option<&mut Vec<Link>>) {
        self.shared.pushes.set_reachable(!self.core.firewalled());
        while let Some(action) = self.core.poll_action() {
            match action {
                Action::Send { to, message } => {
                    let dropped = self.links.get(&to).map_or(0, |link| link.send(message));
                    if dropped > 0 {
                        self.core.handle(CoreEvent::QueueDropped { peer: to, count: dropped }, Instant::now());
                    }
                }
                Action::Close { peer, bye, reason } => {
                    let Some(link) = self.links.remove(&peer) else { continue };
                    if let Some(bye) = bye {
                        link.send(bye);
                    }
                    log(format_args!("{} gone: {reason}", link.addr));
                    // The writer ends once its queue is drained.
                    link.wake.close();
                    if let Some(closed) = closed.as_deref_mut() {
                        closed.push(link);
                    }
                }
                Action::Dial(addr) => {
                    task::spawn(connection::dial(addr, self.shared.clone()));
                }
                Action::AskGWebCaches(urls) => {
                    task::spawn(gwebcache::ask(urls, self.shared.events.clone()));
                }
                Action::LookUp { lookup, query } => {
                    let partial = self.shared.uploads.partial_shares().clone();
                    library::look_up(&self.library, &partial, lookup, query, &self.shared.events)
                }
                Action::SaveHosts(text) => {
                    if let Some(dir) = &self.data_dir {
                        let path = dir.join(HOST_CACHE_FILE);
                        self.saving = Some(task::spawn_blocking(move || {
                            if let Err(e) = crate::config::write_atomically(&path, text.as_bytes()) {
                                warn(format_args!("cannot save the host cache: {e}"));
                            }
                        }));
                    }
                }
                Action::Role { role, may_become_leaf } => {
                    if let Ok(mut now) = self.shared.role.lock() {
                        *now = (role, may_become_leaf);
                    }
                }
                Action::Advertise(addr) => {
                    if let Ok(mut advertised) = self.shared.advertised.lock() {
                        *advertised = addr;
                    }
                    self.shared.uploads.partial_shares().set_advertised(addr);
                    *self.shared.dial.write().unwrap_or_else(PoisonError::into_inner) = self.core.dial_rule();
                }
                Action::SendDatagram { to, message } => {
                    // A full queue drops the datagram, as the network may.
                    if let Some(out) = &self.udp_out {
                        let _ = out.try_send((to, message.encode()));
                    }
                }
                Action::Notice(text) => log(format_args!("{text}")),
                Action::Resolve { host, port } => {
                    task::spawn(super::udp::resolve(host, port, self.shared.events.clone()));
                }
                Action::ConnectBack { to, index } => {
                    let uploads = self.shared.uploads.clone();
                    task::spawn(crate::transfer::push::connect_back(to, index, self.core.guid(), uploads));
                }
                Action::GiveWay(remote) => self.shared.handshakes.cut(remote),
                Action::ProbeBack { to } => {
                    task::spawn(crate::transfer::push::probe_back(to));
                }
                Action::PushSource { source, servent, files, proxies, namer } => {
                    self.shared.pushes.learn(source, servent, files, proxies, namer)
                }
                Action::OfferSource { urns, source, signature } => {
                    if let Some(downloads) = &self.downloads {
                        let signature = signature
                            .and_then(|bytes| signing_tool::Minisig::from_compact(&bytes).ok())
                            .map(std::sync::Arc::new);
                        for urn in &urns {
                            downloads.offer_sources(urn, vec![source]);
                            if let Some(signature) = &signature {
                                downloads.offer_signature(urn, signature.clone());
                            }
                        }
                    }
                }
            }
        }
    }

    fn on_command(&mut self, command: Command, now: Instant) {
        match command {
            Command::Search { text, ttl, reply } => {
                let result = self.core.search(&text, ttl, now).map_err(|e| NodeError::BadSearch(e.0));
                let _ = reply.try_send(result);
            }
            Command::Results { id, reply } => {
                let rule = self.core.dial_rule();
                let snapshot = self.core.search_results(&id).map(|s| SearchSnapshot {
                    id: id.to_string(),
                    query: s.text.clone(),
                    hits_received: s.hits_received,
                    first_hit_ms: s.first_hit_after.map(|d| d.as_secs_f64() * 1000.0),
                    results: s.results().iter().map(|r| r.clone().with_browse(&rule)).collect(),
                });
                let _ = reply.try_send(snapshot);
            }
            Command::Peers { reply } => {
                let _ = reply.try_send(self.peer_snapshots(now));
            }
            Command::Status { reply } => {
                let (files, bytes) = self.library.totals();
                let status = Status {
                    guid: self.core.guid().to_string(),
                    listen: self.listen,
                    advertised: self.core.advertised(),
                    peers: self.links.len(),
                    host_cache: self.core.known_hosts(),
                    files,
                    bytes,
                    totals: self.core.totals().clone(),
                    messages_sent: self.shared.sent.messages.load(Ordering::Relaxed),
                    queries_sent: self.shared.sent.queries.load(Ordering::Relaxed),
                    oob_hits: self.core.oob_counters().hits,
                    firewalled: self.core.firewalled(),
                    givs_taken: self.shared.pushes.taken(),
                };
                let _ = reply.try_send(status);
            }
            Command::Connect { addr } => self.core.connect(addr, now),
            Command::ConnectName { host, port, addrs } => self.core.connect_name(&host, port, addrs, now),
            Command::Admit { remote, reply } => {
                self.core.handle(CoreEvent::Incoming { remote: remote.ip(), arrival: Arrival::Unasked }, now);
                let _ = reply.try_send(self.core.admit_incoming(remote, now));
            }
            Command::Known { urns, reply } => {
                let _ = reply.try_send(self.core.known(&urns));
            }
            Command::Push { servent, index, proxies } => {
                let routed = self.core.push(servent, index);
                let us = self.core.advertised();
                let asks = self.core.proxies_to_ask(&proxies, now);
                for proxy in &asks.asked {
                    task::spawn(crate::transfer::push::ask_proxy(*proxy, servent, index, us));
                }
                // Refused for the budget only: the download tries again later.
                if !routed && asks.asked.is_empty() && !asks.over_budget {
                    self.shared.pushes.unreachable(servent);
                }
            }
            Command::Identity { reply } => {
                let core = &self.core;
                let _ = reply.try_send((core.guid(), core.advertised(), core.firewalled(), core.push_proxies()));
            }
            Command::ProxyPush { servent, index, to, reply } => {
                let _ = reply.try_send(self.core.proxy_push(servent, index, to));
            }
            Command::Browsed { label, hits, reply } => {
                let id = self.core.browsed(label, &hits, now);
                let rule = self.core.dial_rule();
                let results = self.core.search_results(&id).map(|s| s.results().to_vec()).unwrap_or_default();
                let results = results.into_iter().map(|r| r.with_browse(&rule)).collect();
                let _ = reply.try_send(results);
            }
            Command::Shutdown { .. } => {}
        }
    }

    fn peer_snapshots(&self, now: Instant) -> Vec<PeerSnapshot> {
        self.core
            .peers()
            .map(|(id, peer)| {
                let link = self.links.get(&id);
                let count = |f: fn(&LinkCounters) -> u64| link.map_or(0, |l| f(&l.counters));
                PeerSnapshot {
                    addr: peer.addr,
                    listen: peer.listen,
                    user_agent: peer.user_agent.clone(),
                    direction: peer.direction,
                    connected_secs: now.duration_since(peer.since).as_secs(),
                    compressed: peer.compressed,
                    role: peer.role,
                    qrp: self.core.qrp_in_force(id),
                    vendor_messages: self.core.vendor_messages(id),
                    messages_out: count(|c| c.messages.load(Ordering::Relaxed)),
                    queries_out: count(|c| c.queries.load(Ordering::Relaxed)),
                    queue_dropped: count(|c| c.queue_dropped.load(Ordering::Relaxed)),
                    counters: self.core.counters(id).cloned().unwrap_or_default(),
                }
            })
            .collect()
    }

    async fn shutdown(&mut self) {
        for task in self.tasks.drain(..) {
            task.cancel().await;
        }
        self.core.shutdown();
        let mut closed = Vec::new();
        self.carry_out(Some(&mut closed));
        // Writers close their sockets once the Bye is out; a stuck peer is
        // cut off after a grace period.
        for link in closed {
            if async_std::future::timeout(SHUTDOWN_GRACE, link.writer).await.is_err() {
                let _ = link.stream.shutdown(std::net::Shutdown::Both);
            }
        }
        // The last save of the host cache, handed out by the core's shutdown.
        if let Some(saving) = self.saving.take() {
            saving.await;
        }
    }
}

/// The next event, or else the next datagram: a flood of datagrams
/// waits in (and overflows) its own queue, never ahead of the links,
/// the commands and the timers; but after [`EVENTS_BEFORE_A_DATAGRAM`]
/// events in a row, a datagram waiting goes first, so that a steady
/// stream of link events cannot starve UDP (our own searches' hits).
async fn next_event(
    inbox: &Receiver<Event>,
    datagrams: Option<&Datagrams>,
    events_in_a_row: &mut u32,
) -> Result<Event, RecvError> {
    let as_event = |(from, bytes)| Event::Core(CoreEvent::Datagram { from, bytes });
    if *events_in_a_row >= EVENTS_BEFORE_A_DATAGRAM {
        if let Some(datagram) = datagrams.and_then(Datagrams::try_recv) {
            *events_in_a_row = 0;
            return Ok(as_event(datagram));
        }
    }
    let event = inbox.recv().fuse();
    let datagram = async {
        match datagrams {
            Some(datagrams) => match datagrams.recv().await {
                Ok(datagram) => as_event(datagram),
                // The UDP port broke: the links go on.
                Err(_) => future::pending().await,
            },
            None => future::pending().await,
        }
    }
    .fuse();
    futures::pin_mut!(event, datagram);
    futures::select_biased! {
        event = event => {
            *events_in_a_row += 1;
            event
        }
        datagram = datagram => {
            *events_in_a_row = 0;
            Ok(datagram)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use async_std::channel::{self, Sender};

    use super::*;
    use crate::node::udp;

    const LINK: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 6346);

    /// A link's events (told apart by their sender) and a flood of
    /// datagrams, both queues full.
    fn both_full() -> (Sender<Event>, Receiver<Event>, Datagrams) {
        let (events, inbox) = channel::bounded(4 * EVENTS_BEFORE_A_DATAGRAM as usize);
        while events.try_send(Event::Core(CoreEvent::Datagram { from: LINK, bytes: vec![0; 23] })).is_ok() {}
        let (received, datagrams) = udp::inbound();
        udp::flood(&received);
        (events, inbox, datagrams)
    }

    fn is_link(event: Event) -> bool {
        matches!(event, Event::Core(CoreEvent::Datagram { from, .. }) if from == LINK)
    }

    #[test]
    fn with_both_queues_full_the_links_events_come_before_the_datagrams() {
        task::block_on(async {
            let (_events, inbox, datagrams) = both_full();
            let mut in_a_row = 0;
            for _ in 0..EVENTS_BEFORE_A_DATAGRAM {
                assert!(is_link(next_event(&inbox, Some(&datagrams), &mut in_a_row).await.unwrap()));
            }
        });
    }

    #[test]
    fn attack_a_steady_stream_of_link_events_does_not_starve_the_datagrams() {
        task::block_on(async {
            let (_events, inbox, datagrams) = both_full();
            let mut in_a_row = 0;
            let mut order = Vec::new();
            for _ in 0..2 * (EVENTS_BEFORE_A_DATAGRAM + 1) {
                order.push(is_link(next_event(&inbox, Some(&datagrams), &mut in_a_row).await.unwrap()));
            }
            let mut turn = vec![true; EVENTS_BEFORE_A_DATAGRAM as usize];
            turn.push(false);
            assert_eq!(
                order,
                [turn.clone(), turn].concat(),
                "a datagram after every {EVENTS_BEFORE_A_DATAGRAM} events"
            );
        });
    }
}
