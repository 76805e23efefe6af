//! GUESS 0.2 as gtk-gnutella does it (`doc/gnutella/GUESS`, section 10):
//! iterating ultrapeers over UDP for what flooding did not find.
//!
//! - **As server** (an ultrapeer taking UDP): a UDP Ping with GGEP `QK`
//!   gets a Pong carrying a query key for the sender's address (and `GUE`,
//!   we speak GUESS 0.2); a UDP Query carrying a valid key is acknowledged
//!   with a Pong (same GUID, `IPP` hosts when it carries `SCP`) and
//!   answered with hits straight back over UDP, at most
//!   [`MAX_HIT_DATAGRAMS`] of them. The key is a keyed hash of the address,
//!   so only who receives datagrams at an address can query from it: a
//!   spoofer cannot turn our hits on a victim. The secret changes every
//!   [`KEY_LIFETIME`] and the previous one's keys are still taken, so a key
//!   lasts one to two lifetimes. Answers stay within the UDP budget of
//!   [`super::udp`].
//! - **As client.** A search of ours that has fewer than [`RARE`] results
//!   after [`GUESS_AFTER`] asks ultrapeers one by one, [`HOSTS_PER_TICK`] a
//!   tick, at most [`MAX_HOSTS`] for one search: a key Ping, then the query
//!   with the key and `SCP`. Hosts come from the host cache and from the
//!   `IPP` of the acknowledgements (never another port of our own IP,
//!   outside a test network); our neighbours, who had the query by TCP,
//!   are skipped. A UDP hit counts only from a host we queried for
//!   that search, and no more than [`MAX_HIT_DATAGRAMS`] from it.

use std::collections::{BTreeSet, VecDeque};
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::guess_relay::{oversized, Relayed};
use super::{Action, Node, PendingAnswer, Reply};
use crate::handshake::Role;
use crate::wire::vendor::oob::SO;
use crate::wire::{ipp, Ggep, GgepId, Guid, Message, Payload, Ping, Pong, Query, QueryFlags, QueryHit};

/// `"QK"`: a query key request (empty, in a Ping) or the key (in a Pong and a Query).
pub const QK: GgepId = GgepId::from_static("QK");
/// How long a secret makes the query keys (gtk-gnutella's keys change too).
pub const KEY_LIFETIME: Duration = Duration::from_secs(60 * 60);
/// `"GUE"`: GUESS spoken, its version (0.2).
pub const GUE: GgepId = GgepId::from_static("GUE");
/// GUESS 0.2, major and minor in nibbles.
const VERSION: u8 = 0x02;
/// Bytes of our query keys.
pub const KEY_LEN: usize = 8;
/// How long a search floods before GUESS helps it.
pub const GUESS_AFTER: Duration = Duration::from_secs(3);
/// How long GUESS keeps iterating for one search.
pub const GUESS_FOR: Duration = Duration::from_secs(60);
/// Results under which a search is rare enough to iterate for.
pub const RARE: usize = 3;
/// Hosts asked per tick and search.
pub const HOSTS_PER_TICK: usize = 2;
/// Hosts asked for one search at most.
pub const MAX_HOSTS: usize = 64;
/// Searches iterated at once at most.
pub const MAX_SEARCHES: usize = 16;
/// Hit datagrams a GUESS query gets, and a client takes from one host, at most.
pub const MAX_HIT_DATAGRAMS: u8 = 4;
/// How long a key Ping or a query waits for its answer.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(30);

#[derive(Debug)]
struct Iteration {
    guid: Guid,
    query: Query,
    started: Instant,
    asked: BTreeSet<SocketAddrV4>,
    /// Hosts heard of in acknowledgements, to ask first.
    next: VecDeque<SocketAddrV4>,
}

/// The node's GUESS state.
#[derive(Debug)]
pub(super) struct Guess {
    /// The secret keys are made with, and the previous one, still taken.
    secrets: [[u8; 16]; 2],
    /// When the secret last changed (at the first key).
    rotated: Option<Instant>,
    searches: VecDeque<Iteration>,
    /// Key Pings of ours: their GUID, to whom, for which search, when.
    key_pings: VecDeque<(Guid, SocketAddrV4, Guid, Instant)>,
    /// Queries of ours: search, to whom, hit datagrams still taken, when.
    queried: VecDeque<(Guid, SocketAddrV4, u8, Instant)>,
    /// Queries of others passed to our leaves.
    pub(super) relayed: Relayed,
}

/// The query key of `addr` under `secret`.
fn key_under(secret: &[u8; 16], addr: SocketAddrV4) -> Vec<u8> {
    let mut hash = Sha256::new();
    hash.update(secret);
    hash.update(addr.ip().octets());
    hash.update(addr.port().to_le_bytes());
    hash.finalize()[..KEY_LEN].to_vec()
}

impl Guess {
    pub(super) fn new(rng: &mut StdRng) -> Guess {
        let mut secrets = [[0; 16]; 2];
        rng.fill_bytes(&mut secrets[0]);
        rng.fill_bytes(&mut secrets[1]);
        Guess {
            secrets,
            rotated: None,
            searches: VecDeque::new(),
            key_pings: VecDeque::new(),
            queried: VecDeque::new(),
            relayed: Relayed::default(),
        }
    }

    /// Changes the secret every [`KEY_LIFETIME`]; after two, neither is kept.
    fn rotate(&mut self, rng: &mut StdRng, now: Instant) {
        let rotated = *self.rotated.get_or_insert(now);
        let elapsed = now.saturating_duration_since(rotated);
        if elapsed < KEY_LIFETIME {
            return;
        }
        let mut fresh = [0; 16];
        rng.fill_bytes(&mut fresh);
        self.secrets[1] = if elapsed < KEY_LIFETIME * 2 { self.secrets[0] } else { fresh };
        rng.fill_bytes(&mut self.secrets[0]);
        self.rotated = Some(now);
    }

    /// Whether `key` is `addr`'s, under the secret or the previous one.
    fn is_key_of(&self, addr: SocketAddrV4, key: &[u8]) -> bool {
        self.secrets.iter().any(|secret| key_under(secret, addr) == key)
    }

    /// The query key of `addr`.
    fn key(&self, addr: SocketAddrV4) -> Vec<u8> {
        key_under(&self.secrets[0], addr)
    }

    fn expire(&mut self, now: Instant) {
        self.searches.retain(|s| now < s.started + GUESS_FOR);
        self.key_pings.retain(|p| now < p.3 + ANSWER_WITHIN);
        self.queried.retain(|q| now < q.3 + ANSWER_WITHIN);
    }
}

impl Node {
    /// Remembers a search of ours, to iterate for if it stays rare.
    pub(super) fn guess_later(&mut self, guid: Guid, query: &Query, now: Instant) {
        if !self.config.udp {
            return;
        }
        let mut query = query.clone();
        // Hits come straight back: no out-of-band offer.
        query.flags = query.flags.with(QueryFlags::OOB_REPLY, false);
        query.ggep.remove(SO);
        if self.guess.searches.len() >= MAX_SEARCHES {
            self.guess.searches.pop_front();
        }
        self.guess.searches.push_back(Iteration {
            guid,
            query,
            started: now,
            asked: BTreeSet::new(),
            next: VecDeque::new(),
        });
    }

    /// Asks the next ultrapeers for each search still rare (at every tick).
    pub(super) fn guess_tick(&mut self, now: Instant) {
        self.guess.expire(now);
        let neighbours: BTreeSet<SocketAddrV4> = self.peers.values().filter_map(|p| p.listen).collect();
        let cached: Vec<SocketAddrV4> = self.hosts.good(MAX_HOSTS).into_iter().filter_map(super::v4).collect();
        let mut pings = Vec::new();
        for search in &mut self.guess.searches {
            let results = self.searches.get(&search.guid).map_or(0, |s| s.results().len());
            if now < search.started + GUESS_AFTER || results >= RARE || search.asked.len() >= MAX_HOSTS {
                continue;
            }
            let fresh =
                |h: &SocketAddrV4| !search.asked.contains(h) && !neighbours.contains(h) && *h != self.advertised;
            let hosts: Vec<SocketAddrV4> =
                search.next.iter().chain(cached.iter()).copied().filter(fresh).take(HOSTS_PER_TICK).collect();
            for host in hosts {
                search.asked.insert(host);
                pings.push((host, search.guid));
            }
        }
        for (host, search) in pings {
            let guid = Guid::from_rng(&mut self.rng);
            self.guess.key_pings.push_back((guid, host, search, now));
            let mut ggep = Ggep::new();
            ggep.insert(QK, Vec::new());
            ggep.insert(ipp::SCP, vec![u8::from(self.config.role == Role::Ultrapeer)]);
            let ping = Message::new(guid, 1, Payload::Ping(Ping { ggep }));
            self.actions.push_back(Action::SendDatagram { to: host, message: ping });
        }
    }

    /// Our key and GUESS version, for a Pong answering a Ping that asks for a key.
    pub(super) fn guess_pong_extensions(&mut self, to: SocketAddrV4, ping: &Ping, ggep: &mut Ggep, now: Instant) {
        if self.config.role == Role::Ultrapeer && ping.ggep.get(QK).is_some_and(<[u8]>::is_empty) {
            self.guess.rotate(&mut self.rng, now);
            ggep.insert(GUE, vec![VERSION]);
            ggep.insert(QK, self.guess.key(to));
        }
    }

    /// A UDP Pong answering a key Ping or a query of ours; whether it did.
    pub(super) fn on_guess_pong(&mut self, from: SocketAddrV4, guid: Guid, pong: &Pong, now: Instant) -> bool {
        self.guess.expire(now);
        let mut hosts = pong.ggep.get(ipp::IPP).and_then(|p| ipp::unpack(p).ok()).unwrap_or_default();
        let rule = self.dial_rule();
        hosts.retain(|h| super::udp::routable(*h, self.advertised) && rule.allows(*h));
        if let Some(at) = self.guess.key_pings.iter().position(|p| p.0 == guid && p.1 == from) {
            let Some((_, _, search, _)) = self.guess.key_pings.remove(at) else { return true };
            let Some(key) = pong.ggep.get(QK).filter(|k| !k.is_empty() && k.len() <= 16) else { return true };
            let Some(iteration) = self.guess.searches.iter_mut().find(|s| s.guid == search) else { return true };
            iteration.next.extend(hosts.into_iter().take(ipp::MAX_UNPACKED));
            let mut query = iteration.query.clone();
            query.ggep.insert(QK, key.to_vec());
            query.ggep.insert(ipp::SCP, Vec::new());
            self.guess.queried.push_back((search, from, MAX_HIT_DATAGRAMS, now));
            let message = Message::new(search, 1, Payload::Query(query));
            self.actions.push_back(Action::SendDatagram { to: from, message });
            return true;
        }
        if self.guess.queried.iter().any(|q| q.0 == guid && q.1 == from) {
            if let Some(iteration) = self.guess.searches.iter_mut().find(|s| s.guid == guid) {
                let room = ipp::MAX_UNPACKED.saturating_sub(iteration.next.len());
                iteration.next.extend(hosts.into_iter().take(room));
            }
            return true;
        }
        false
    }

    /// A UDP QueryHit for a GUESS query of ours; whether it was one.
    pub(super) fn on_guess_hit(&mut self, from: SocketAddrV4, guid: Guid, hit: &QueryHit, now: Instant) -> bool {
        self.guess.expire(now);
        let Some(queried) = self.guess.queried.iter_mut().find(|q| q.0 == guid && q.1 == from && q.2 > 0) else {
            return false;
        };
        queried.2 -= 1;
        self.on_hit(guid, hit.clone(), now);
        true
    }

    /// A Query over UDP of `len` bytes: a GUESS query, answered only with
    /// a valid key and within the size a TCP query may have; passed on to
    /// our leaves too ([`super::guess_relay`]).
    pub(super) fn on_udp_query(&mut self, from: SocketAddrV4, guid: Guid, mut query: Query, len: usize, now: Instant) {
        if let Some(junk) = oversized(len) {
            self.udp_oversized(junk);
            return;
        }
        self.guess.rotate(&mut self.rng, now);
        let valid = query.ggep.get(QK).is_some_and(|k| self.guess.is_key_of(from, k));
        if self.config.role != Role::Ultrapeer || !valid || !self.udp_budget_allows(from, now) {
            self.udp_ignored();
            return;
        }
        let mut ggep = Ggep::new();
        ggep.insert(GUE, vec![VERSION]);
        if query.ggep.get(ipp::SCP).is_some() {
            let hosts = self.hosts_to_share(from);
            if !hosts.is_empty() {
                ggep.insert(ipp::IPP, ipp::pack(&hosts));
            }
        }
        let (files, bytes) = self.library;
        let pong =
            Pong { port: self.advertised.port(), ip: *self.advertised.ip(), files, kbytes: super::kbytes(bytes), ggep };
        self.actions.push_back(Action::SendDatagram { to: from, message: Message::new(guid, 1, Payload::Pong(pong)) });
        self.relay_guess_to_leaves(guid, from, &query, now);
        query.ggep.remove(QK);
        query.ggep.remove(ipp::SCP);
        let partials = super::partial::wanted_by(&query);
        self.look_up(PendingAnswer { guid, reply_ttl: 1, reply: Reply::Datagram(from), partials }, query);
    }

    /// Sends a GUESS query's hits straight back over UDP, within the
    /// share its leaves' hits draw from too ([`super::guess_relay`]).
    pub(super) fn answer_guess(&mut self, guid: Guid, to: SocketAddrV4, hits: Vec<QueryHit>, now: Instant) {
        for hit in hits.into_iter().take(usize::from(MAX_HIT_DATAGRAMS)) {
            if self.guess.relayed.querier(guid, now) == Some(None) {
                break;
            }
            self.actions.push_back(Action::SendDatagram { to, message: Message::new(guid, 1, Payload::QueryHit(hit)) });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr};

    use super::*;
    use crate::node::tests::{actions, node_with, shared_file};
    use crate::node::{Config, Event};

    fn addr(n: u8) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, n), 6346)
    }

    fn node(n: u8, now: Instant) -> Node {
        node_with(Config { listen: SocketAddr::V4(addr(n)), udp: true, ..Config::default() }, now)
    }

    fn datagrams(node: &mut Node) -> Vec<(SocketAddrV4, Message)> {
        actions(node)
            .into_iter()
            .filter_map(|a| match a {
                Action::SendDatagram { to, message } => Some((to, message)),
                _ => None,
            })
            .collect()
    }

    fn key_of(server: &mut Node, from: SocketAddrV4, now: Instant) -> Vec<u8> {
        let mut ggep = Ggep::new();
        ggep.insert(QK, Vec::new());
        let ping = Message::new(Guid([1; 16]), 1, Payload::Ping(Ping { ggep }));
        server.handle(Event::Datagram { from, bytes: ping.encode() }, now);
        let [(_, pong)] = datagrams(server).try_into().unwrap();
        let Payload::Pong(pong) = pong.payload else { panic!("a pong") };
        assert_eq!(pong.ggep.get(GUE), Some(&[VERSION][..]));
        pong.ggep.get(QK).unwrap().to_vec()
    }

    fn query(key: Option<Vec<u8>>) -> Vec<u8> {
        let mut query = super::super::build_query("seblinux").unwrap();
        if let Some(key) = key {
            query.ggep.insert(QK, key);
        }
        Message::new(Guid([2; 16]), 1, Payload::Query(query)).encode()
    }

    #[test]
    fn a_query_with_the_senders_key_is_acked_and_answered_over_udp() {
        let now = Instant::now();
        let mut server = node(2, now);
        let key = key_of(&mut server, addr(1), now);
        assert_eq!(key.len(), KEY_LEN);
        server.handle(Event::Datagram { from: addr(1), bytes: query(Some(key)) }, now);
        let taken = actions(&mut server);
        assert!(
            matches!(&taken[0], Action::SendDatagram { to, message } if *to == addr(1) && matches!(message.payload, Payload::Pong(_)))
        );
        let Action::LookUp { lookup, .. } = &taken[1] else { panic!("{taken:?}") };
        server.handle(Event::LocalResults { lookup: *lookup, files: vec![shared_file("SEBLINUX.tar")] }, now);
        let hits = datagrams(&mut server);
        assert_eq!(hits.len(), 1);
        assert!(matches!(hits[0].1.payload, Payload::QueryHit(_)) && hits[0].0 == addr(1));
    }

    #[test]
    fn the_query_key_changes_hourly_and_the_previous_one_is_still_taken() {
        let now = Instant::now();
        let mut server = node(2, now);
        let key = key_of(&mut server, addr(1), now);
        let answered = |server: &mut Node, key: &[u8], at: Instant| {
            server.handle(Event::Datagram { from: addr(1), bytes: query(Some(key.to_vec())) }, at);
            !datagrams(server).is_empty()
        };
        let hour_later = now + KEY_LIFETIME + Duration::from_secs(60);
        assert!(answered(&mut server, &key, hour_later), "the previous secret's key is still taken");
        let fresh = key_of(&mut server, addr(1), hour_later);
        assert_ne!(fresh, key, "a new secret, a new key");
        let two_hours_later = hour_later + KEY_LIFETIME;
        assert!(!answered(&mut server, &key, two_hours_later), "two secrets ago: refused");
        assert!(answered(&mut server, &fresh, two_hours_later));
    }

    #[test]
    fn attack_a_query_without_a_key_or_with_another_addresss_key_gets_nothing() {
        let now = Instant::now();
        let mut server = node(2, now);
        let key = key_of(&mut server, addr(1), now);
        // A spoofer who got its own key and sends under a victim's address.
        server.handle(Event::Datagram { from: addr(9), bytes: query(Some(key)) }, now);
        server.handle(Event::Datagram { from: addr(9), bytes: query(None) }, now);
        server.handle(Event::Datagram { from: addr(9), bytes: query(Some(vec![0; KEY_LEN])) }, now);
        assert!(actions(&mut server).is_empty());
    }

    /// `client` (at `at`, knowing ultrapeer 2) searches; ultrapeer 2's key
    /// Pong names `named` in its `IPP`: where `client` sends datagrams then.
    fn sent_after_a_key_pong_naming(
        mut client: Node,
        at: SocketAddrV4,
        named: &[SocketAddrV4],
        now: Instant,
    ) -> Vec<SocketAddrV4> {
        client.handle(Event::HostsLearned(vec![addr(2)]), now);
        client.search("seblinux", 1, now).unwrap();
        actions(&mut client);
        let mut later = now + GUESS_AFTER;
        client.handle_timeout(later);
        let [(_, ping)] = datagrams(&mut client).try_into().unwrap();
        let mut server = node(2, now);
        server.handle(Event::Datagram { from: at, bytes: ping.encode() }, later);
        let [(_, mut pong)] = datagrams(&mut server).try_into().unwrap();
        let Payload::Pong(body) = &mut pong.payload else { panic!("a pong") };
        body.ggep.insert(ipp::IPP, ipp::pack(named));
        client.handle(Event::Datagram { from: addr(2), bytes: pong.encode() }, later);
        let mut sent = Vec::new();
        for _ in 0..4 {
            sent.extend(datagrams(&mut client).into_iter().map(|(to, _)| to));
            later += Duration::from_secs(1);
            client.handle_timeout(later);
        }
        sent
    }

    #[test]
    fn attack_a_key_pong_naming_another_port_of_our_own_ip_gets_no_datagram_sent_there() {
        let now = Instant::now();
        let ours = SocketAddrV4::new(*addr(1).ip(), 22);
        let sent = sent_after_a_key_pong_naming(node(1, now), addr(1), &[ours, addr(3)], now);
        assert!(sent.contains(&addr(3)), "the other host it named is asked: {sent:?}");
        assert!(!sent.contains(&ours), "a datagram to our own machine: {sent:?}");
    }

    /// A servent at home behind a NAT advertises its private address (the
    /// local end of its first link) and is no test network: a key Pong's
    /// `IPP` naming hosts of its LAN (the router's DNS, UPnP) must not aim
    /// datagrams there, as the dial rule refuses them everywhere else.
    #[test]
    fn attack_a_key_pong_naming_our_lan_gets_no_datagram_sent_there() {
        let now = Instant::now();
        let home = SocketAddrV4::new(Ipv4Addr::new(192, 168, 1, 5), 6346);
        let client = node_with(Config { listen: SocketAddr::V4(home), udp: true, ..Config::default() }, now);
        let lan =
            [SocketAddrV4::new(Ipv4Addr::new(192, 168, 1, 1), 53), SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 1900)];
        let sent = sent_after_a_key_pong_naming(client, home, &[lan[0], lan[1], addr(3)], now);
        assert!(sent.contains(&addr(3)), "the other host it named is asked: {sent:?}");
        assert!(!sent.iter().any(|to| lan.contains(to)), "a datagram into our LAN: {sent:?}");
    }

    #[test]
    fn a_rare_search_asks_a_cached_host_for_a_key_then_queries_it_and_takes_its_hits_only() {
        let now = Instant::now();
        let mut client = node(1, now);
        client.handle(Event::HostsLearned(vec![addr(2)]), now);
        let guid = client.search("seblinux", 1, now).unwrap();
        actions(&mut client);
        client.handle_timeout(now + Duration::from_secs(1));
        assert!(datagrams(&mut client).is_empty(), "flooding goes first");
        let later = now + GUESS_AFTER;
        client.handle_timeout(later);
        let [(to, ping)] = datagrams(&mut client).try_into().unwrap();
        assert_eq!(to, addr(2));
        let mut server = node(2, now);
        server.handle(Event::Datagram { from: addr(1), bytes: ping.encode() }, later);
        let [(_, pong)] = datagrams(&mut server).try_into().unwrap();
        client.handle(Event::Datagram { from: addr(2), bytes: pong.encode() }, later);
        let [(to, guess_query)] = datagrams(&mut client).try_into().unwrap();
        assert_eq!((to, guess_query.guid), (addr(2), guid));
        server.handle(Event::Datagram { from: addr(1), bytes: guess_query.encode() }, later);
        let Some(Action::LookUp { lookup, .. }) =
            actions(&mut server).into_iter().find(|a| matches!(a, Action::LookUp { .. }))
        else {
            panic!("the server looks its library up")
        };
        server.handle(Event::LocalResults { lookup, files: vec![shared_file("SEBLINUX.tar")] }, later);
        let [(_, hit)] = datagrams(&mut server).try_into().unwrap();
        // The same hit from a host we did not query is refused.
        client.handle(Event::Datagram { from: addr(9), bytes: hit.encode() }, later);
        assert!(client.search_results(&guid).unwrap().results().is_empty());
        client.handle(Event::Datagram { from: addr(2), bytes: hit.encode() }, later);
        assert_eq!(client.search_results(&guid).unwrap().results().len(), 1);
    }
}
