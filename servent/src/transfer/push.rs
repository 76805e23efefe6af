//! Transfers by PUSH, over sockets: the rules are in
//! [`servent_core::push`].
//!
//! Uploading: when a PUSH names us, [`connect_back`] connects to the
//! downloader, opens with the `GIV` line and serves the request that comes
//! back on that connection as any upload. A neighbour's TCP Connect Back
//! (a firewall check) is answered by [`probe_back`].
//!
//! Downloading: [`Pushes`] knows which sources are firewalled (their
//! QueryHits said so), asks the node to send a PUSH for them, and hands the
//! download worker the connection that arrives on our listener with the
//! matching `GIV`. A `GIV` nobody waits for is closed.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_std::channel::{self, Sender};
use async_std::io::BufReader;
use async_std::net::TcpStream;
use futures::AsyncWriteExt;
use servent_core::push::{
    giv_line, parse_giv, parse_server_id, server_id, ProxyPush, MAX_GIV_LINE, MAX_NAMED_PROXIES, MAX_PROXIES,
};
pub use servent_core::push::{is_push_only, push_only_key};
use servent_core::wire::vendor::connect_back::GREETING;
use servent_core::wire::{Guid, Urn};

use super::alt::FirewalledLocation;
use super::http::{self, Request};
use super::upload::Uploads;

/// How a push-proxy request reaches the node: (leaf GUID, file index,
/// downloader's address) in, whether the leaf was ours out.
pub type ProxyHook = Box<dyn Fn(Guid, u32, SocketAddrV4) -> channel::Receiver<ProxyPush> + Send + Sync>;

/// How long connecting back to a downloader may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the downloader has to send its request after our `GIV`.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Firewalled sources remembered at most.
pub const MAX_PUSH_SOURCES: usize = 4096;
/// Downloads waiting for a `GIV` at once.
pub const MAX_WAITING: usize = 256;

/// Answers a PUSH: connects to `to`, sends `GIV index:servent/name`, and
/// serves the upload asked on the connection.
pub async fn connect_back(to: SocketAddrV4, index: u32, servent: Guid, uploads: Arc<Uploads>) {
    let remote = SocketAddr::V4(to);
    let Ok(stream) = async_std::io::timeout(CONNECT_TIMEOUT, TcpStream::connect(remote)).await else { return };
    let name = uploads.file_name(index).unwrap_or_default();
    if (&stream).write_all(&giv_line(index, servent, &name)).await.is_err() {
        return;
    }
    uploads.count_push();
    let mut reader = BufReader::new(stream.clone());
    let line = async_std::io::timeout(REQUEST_TIMEOUT, http::read_line(&mut reader, http::MAX_REQUEST_LINE)).await;
    if let Ok(line) = line {
        super::serve(&uploads, remote, line, reader, stream).await;
    }
}

/// Answers a neighbour's TCP Connect Back: connects to `to`, writes the
/// greeting and closes, as gtk-gnutella does (the core decided it may).
pub async fn probe_back(to: SocketAddrV4) {
    let connect = async_std::io::timeout(CONNECT_TIMEOUT, TcpStream::connect(SocketAddr::V4(to)));
    if let Ok(stream) = connect.await {
        let _ = async_std::io::timeout(CONNECT_TIMEOUT, (&stream).write_all(GREETING)).await;
        let _ = stream.shutdown(std::net::Shutdown::Both);
    }
}

/// Answers a push-proxy request (`GET /gnutella/push-proxy?ServerId=<base32
/// GUID>[&file=N]` with `X-Node: ip:port`, as gtk-gnutella's `pproxy.c`
/// reads it): `202` once the PUSH is on its way to our leaf, `410` when
/// that servent is no leaf of ours, `400` when malformed or when `X-Node`
/// names an address we may not dial ([`ProxyPush::BadNode`]), `429` when
/// `requester` asked too often ([`servent_core::push::ProxyRequests`]).
/// `None` for any other request.
pub async fn proxy_request(uploads: &Uploads, request: &Request, requester: IpAddr) -> Option<u16> {
    let (path, query) = request.target.split_once('?').unwrap_or((&request.target, ""));
    if !["/gnutella/push-proxy", "/gnutella/pushproxy"].iter().any(|p| path.eq_ignore_ascii_case(p)) {
        return None;
    }
    if !uploads.allow_proxy_request(requester) {
        return Some(429);
    }
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|pair| pair.split_once('=').filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v))
    };
    let Some(servent) = param("ServerId").and_then(parse_server_id) else { return Some(400) };
    let index = match param("file").map(str::parse) {
        None => 0,
        Some(Ok(index)) => index,
        Some(Err(_)) => return Some(400),
    };
    let to = request.headers.get("X-Node").and_then(|node| node.trim().parse::<SocketAddrV4>().ok());
    let Some(to) = to.filter(|to| servent_core::address::usable(*to)) else { return Some(400) };
    let hook = uploads.push_proxy()?;
    Some(match hook(servent, index, to).recv().await.unwrap_or(ProxyPush::NoLeaf) {
        ProxyPush::Sent => 202,
        ProxyPush::NoLeaf => 410,
        ProxyPush::BadNode => 400,
    })
}

/// Asks push proxy `proxy` to send `servent` a PUSH for file `index`
/// naming `us`; whether it answered `202`.
pub async fn ask_proxy(proxy: SocketAddrV4, servent: Guid, index: u32, us: SocketAddrV4) -> bool {
    let ask = async {
        let stream = TcpStream::connect(proxy).await?;
        let request = format!(
            "GET /gnutella/push-proxy?ServerId={}&file={index} HTTP/1.1\r\nHost: {proxy}\r\nX-Node: {us}\r\nUser-Agent: {}\r\nConnection: close\r\n\r\n",
            server_id(servent),
            crate::config::USER_AGENT
        );
        (&stream).write_all(request.as_bytes()).await?;
        let mut reader = BufReader::new(stream);
        http::read_line(&mut reader, http::MAX_REQUEST_LINE).await
    };
    let status = async_std::io::timeout(CONNECT_TIMEOUT, ask).await;
    status.is_ok_and(|line| line.split(|&b| b == b' ').nth(1) == Some(b"202"))
}

/// A firewalled source, as its QueryHit described it.
#[derive(Clone, Debug)]
struct PushTarget {
    servent: Guid,
    files: Vec<(Vec<Urn>, u32)>,
    /// Its push proxies, each with the IP of who named it (earlier first).
    proxies: Vec<(SocketAddrV4, Ipv4Addr)>,
}

/// How a PUSH for (servent, file index) goes out, with the push proxies
/// to ask and who named each.
type PushSender = Box<dyn Fn(Guid, u32, Vec<(SocketAddrV4, Ipv4Addr)>) + Send + Sync>;

/// A connection that came with a `GIV`, ready for our HTTP requests.
pub type GivConnection = (BufReader<TcpStream>, TcpStream);

/// The firewalled sources we know and the downloads waiting for their `GIV`.
pub struct Pushes {
    targets: Mutex<HashMap<SocketAddrV4, PushTarget>>,
    waiting: Mutex<HashMap<Guid, Vec<Sender<GivConnection>>>>,
    send: PushSender,
    taken: AtomicU64,
    /// Whether the firewall check finds us reachable, as the node last said.
    reachable: AtomicBool,
}

impl std::fmt::Debug for Pushes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let targets = self.targets.lock().unwrap_or_else(PoisonError::into_inner).len();
        f.debug_struct("Pushes").field("firewalled_sources", &targets).finish_non_exhaustive()
    }
}

impl Pushes {
    /// A registry that sends a PUSH for (servent, index), along its route
    /// and through its push proxies, with `send`.
    pub fn new(send: impl Fn(Guid, u32, Vec<(SocketAddrV4, Ipv4Addr)>) + Send + Sync + 'static) -> Pushes {
        Pushes {
            targets: Mutex::default(),
            waiting: Mutex::default(),
            send: Box::new(send),
            taken: AtomicU64::new(0),
            reachable: AtomicBool::new(false),
        }
    }

    /// Remembers that `source` (the address its hit gave) is reached by a
    /// PUSH to `servent` (or through its `proxies`, which `namer` named), with these files' indices.
    /// A [`push_only_key`] another servent holds stays its: GUIDs are public,
    /// and one sharing the key's five bytes must not take over its source.
    pub fn learn(
        &self,
        source: SocketAddrV4,
        servent: Guid,
        files: Vec<(Vec<Urn>, u32)>,
        proxies: Vec<SocketAddrV4>,
        namer: Ipv4Addr,
    ) {
        let proxies = proxies.into_iter().take(MAX_NAMED_PROXIES).map(|proxy| (proxy, namer)).collect();
        let mut targets = self.targets.lock().unwrap_or_else(PoisonError::into_inner);
        if is_push_only(source) && targets.get(&source).is_some_and(|known| known.servent != servent) {
            return;
        }
        if targets.len() >= MAX_PUSH_SOURCES && !targets.contains_key(&source) {
            // Forget one at random (hash order): a bound, not a policy.
            let Some(old) = targets.keys().next().copied() else { return };
            targets.remove(&old);
        }
        targets.insert(source, PushTarget { servent, files, proxies });
    }

    /// Remembers the firewalled sources an answer named in `X-Falt` (a hint
    /// for one download, as `X-Alt` is): each under its [`push_only_key`],
    /// never under the address it claims, so that no answer can make us
    /// push to a source we reach directly; and never in place of a source
    /// a hit taught (a full table takes no more hints), nor of another
    /// servent sharing the key. The proxies each
    /// names join those known (earlier ones kept, up to
    /// [`MAX_NAMED_PROXIES`]), counted against `namer` (the answer's
    /// sender), so that a later answer cannot replace proxies an earlier one
    /// gave. Their keys.
    pub fn learn_firewalled(&self, locations: &[FirewalledLocation], namer: Ipv4Addr) -> Vec<SocketAddrV4> {
        let mut targets = self.targets.lock().unwrap_or_else(PoisonError::into_inner);
        let mut keys = Vec::new();
        for location in locations {
            let key = push_only_key(location.servent);
            if !targets.contains_key(&key) && targets.len() >= MAX_PUSH_SOURCES {
                continue;
            }
            let target = targets.entry(key).or_insert_with(|| PushTarget {
                servent: location.servent,
                files: Vec::new(),
                proxies: Vec::new(),
            });
            if target.servent != location.servent {
                continue;
            }
            for proxy in &location.proxies {
                if target.proxies.len() < MAX_NAMED_PROXIES && !target.proxies.iter().any(|(known, _)| known == proxy) {
                    target.proxies.push((*proxy, namer));
                }
            }
            keys.push(key);
        }
        keys
    }

    /// `source` as a firewalled location others may be told of, if it is one.
    pub fn location(&self, source: SocketAddrV4) -> Option<FirewalledLocation> {
        let targets = self.targets.lock().unwrap_or_else(PoisonError::into_inner);
        let target = targets.get(&source)?;
        let address = Some(source).filter(|s| !is_push_only(*s));
        let proxies = target.proxies.iter().map(|(proxy, _)| *proxy).take(MAX_PROXIES).collect();
        Some(FirewalledLocation { servent: target.servent, address, proxies })
    }

    /// Whether `source` must be reached with a PUSH.
    pub fn firewalled(&self, source: SocketAddrV4) -> bool {
        self.targets.lock().unwrap_or_else(PoisonError::into_inner).contains_key(&source)
    }

    /// Sends a PUSH for `urn` to firewalled `source` and waits at most
    /// `timeout` for its `GIV` connection.
    pub async fn connect(&self, source: SocketAddrV4, urn: &Urn, timeout: Duration) -> Result<GivConnection, String> {
        let target = self.targets.lock().unwrap_or_else(PoisonError::into_inner).get(&source).cloned();
        let target = target.ok_or_else(|| format!("{source} is not known as firewalled"))?;
        let index = target.files.iter().find(|(urns, _)| urns.contains(urn)).map_or(0, |(_, index)| *index);
        let (sender, arrival) = channel::bounded(1);
        {
            let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
            waiting.retain(|_, senders| {
                senders.retain(|s| !s.is_closed());
                !senders.is_empty()
            });
            if waiting.values().map(Vec::len).sum::<usize>() >= MAX_WAITING {
                return Err("too many downloads wait for a GIV".into());
            }
            waiting.entry(target.servent).or_default().push(sender);
        }
        (self.send)(target.servent, index, target.proxies);
        match async_std::future::timeout(timeout, arrival.recv()).await {
            Ok(Ok(connection)) => Ok(connection),
            _ => Err(format!("no GIV from {} within {} s of our PUSH", target.servent, timeout.as_secs())),
        }
    }

    /// Records what the firewall check says now (the node tells it).
    pub fn set_reachable(&self, reachable: bool) {
        self.reachable.store(reachable, Ordering::Relaxed);
    }

    /// Whether firewalled sources are of use to our downloads: a `GIV`
    /// after our PUSH can reach us only while we are reachable
    /// (gtk-gnutella's `dmesh_can_use_fwalt`).
    pub fn can_use_fwalt(&self) -> bool {
        self.reachable.load(Ordering::Relaxed)
    }

    /// `GIV` connections handed to downloads so far.
    pub fn taken(&self) -> u64 {
        self.taken.load(Ordering::Relaxed)
    }

    /// No PUSH can reach `servent` (no route): the downloads waiting for it stop waiting.
    pub fn unreachable(&self, servent: Guid) {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner).remove(&servent);
    }

    /// Takes a connection whose first line was `first`: a `GIV` some
    /// download waits for goes to it; anything else is closed.
    pub async fn accept(&self, first: &[u8], mut reader: BufReader<TcpStream>, stream: TcpStream) {
        let Some((_, servent)) = parse_giv(first) else { return };
        // The GIV line ends with an empty line.
        let blank = async_std::io::timeout(REQUEST_TIMEOUT, http::read_line(&mut reader, MAX_GIV_LINE)).await;
        if !blank.is_ok_and(|line| line.is_empty()) {
            return;
        }
        let mut connection = (reader, stream);
        loop {
            let sender = {
                let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
                let Some(senders) = waiting.get_mut(&servent) else { return };
                let sender = senders.remove(0);
                if senders.is_empty() {
                    waiting.remove(&servent);
                }
                sender
            };
            match sender.try_send(connection) {
                Ok(()) => {
                    self.taken.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                // That download gave up waiting: the next one may take it.
                Err(e) => connection = e.into_inner(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(n: u16) -> FirewalledLocation {
        let mut guid = [0; 16];
        guid[..2].copy_from_slice(&n.to_be_bytes());
        guid[8] = 0xFF;
        FirewalledLocation { servent: Guid(guid), address: None, proxies: vec!["192.0.2.1:6346".parse().unwrap()] }
    }

    /// A servent GUID is public (every hit carries it), and its push-only
    /// key is five of its bytes: a hostile servent whose GUID shares them,
    /// answering the same search from an address we may not dial, must not
    /// take over the key another servent's hit taught, or the download's
    /// PUSHes for that source go to it (and its proxies) instead.
    /// An honest servent's source, learnt from its hit naming a LAN
    /// address (so known by its push-only key) with one push proxy, and a
    /// GUID forged to share that key's five bytes.
    struct Forgery {
        pushes: Pushes,
        honest: Guid,
        forged: Guid,
        named: Ipv4Addr,
        hostile_proxy: SocketAddrV4,
    }

    fn forgery() -> Forgery {
        let pushes = Pushes::new(|_, _, _| {});
        let honest = Guid([7; 16]);
        let mut forged = [0xEE; 16];
        forged[..5].copy_from_slice(&honest.0[..5]);
        let named = Ipv4Addr::new(10, 0, 0, 1);
        pushes.learn(push_only_key(honest), honest, Vec::new(), vec!["192.0.2.1:6346".parse().unwrap()], named);
        let hostile_proxy = "203.0.113.66:6346".parse().unwrap();
        Forgery { pushes, honest, forged: Guid(forged), named, hostile_proxy }
    }

    #[test]
    fn attack_a_guid_sharing_another_servents_push_only_key_does_not_take_its_source() {
        let Forgery { pushes, honest, forged, named, hostile_proxy } = forgery();
        let key = push_only_key(honest);
        pushes.learn(push_only_key(forged), forged, Vec::new(), vec![hostile_proxy], named);
        let told = pushes.location(key).unwrap();
        assert_eq!(told.servent, honest, "the PUSH for the honest source goes to {:?}", told.servent);
        assert!(!told.proxies.contains(&hostile_proxy));
    }

    /// As a hit's, an `X-Falt` naming a GUID that shares another servent's
    /// push-only key adds no proxy to that servent's source, nor is given
    /// to the download as a source.
    #[test]
    fn attack_an_x_falt_sharing_another_servents_push_only_key_adds_nothing_to_its_source() {
        let Forgery { pushes, honest, forged, named, hostile_proxy } = forgery();
        let hint = FirewalledLocation { servent: forged, address: None, proxies: vec![hostile_proxy] };
        assert!(pushes.learn_firewalled(&[hint], named).is_empty());
        let told = pushes.location(push_only_key(honest)).unwrap();
        assert_eq!((told.servent, told.proxies), (honest, vec!["192.0.2.1:6346".parse().unwrap()]));
    }

    #[test]
    fn x_falt_sources_are_keyed_apart_from_real_addresses_and_told_on_without_one() {
        let pushes = Pushes::new(|_, _, _| {});
        let claimed = FirewalledLocation { address: Some("198.51.100.7:6346".parse().unwrap()), ..location(1) };
        let keys = pushes.learn_firewalled(&[claimed], Ipv4Addr::new(198, 51, 100, 1));
        assert_eq!(keys, [push_only_key(location(1).servent)]);
        assert!(is_push_only(keys[0]) && pushes.firewalled(keys[0]));
        assert!(
            !pushes.firewalled("198.51.100.7:6346".parse().unwrap()),
            "the claimed address is not made a push source"
        );
        assert_eq!(pushes.location(keys[0]), Some(location(1)));
    }

    #[test]
    fn attack_x_falt_floods_never_evict_the_firewalled_sources_hits_taught() {
        let pushes = Pushes::new(|_, _, _| {});
        for n in 0..MAX_PUSH_SOURCES as u16 {
            let source = SocketAddrV4::new(Ipv4Addr::new(10, 0, (n >> 8) as u8, n as u8), 6346);
            pushes.learn(source, location(n).servent, Vec::new(), Vec::new(), *source.ip());
        }
        let flood: Vec<FirewalledLocation> = (0..64).map(|n| location(50_000 + n)).collect();
        assert!(pushes.learn_firewalled(&flood, Ipv4Addr::new(198, 51, 100, 1)).is_empty());
        assert!(pushes.firewalled(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 0), 6346)));
    }

    #[test]
    fn attack_a_later_x_falt_cannot_replace_the_push_proxies_an_earlier_one_gave() {
        let sent = Arc::new(Mutex::new(Vec::new()));
        let seen = sent.clone();
        let pushes = Pushes::new(move |_, _, proxies| seen.lock().unwrap().push(proxies));
        let proxy = |n: u8| SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, n), 6346);
        let (honest, hostile) = (Ipv4Addr::new(198, 51, 100, 1), Ipv4Addr::new(203, 0, 113, 66));
        let first = FirewalledLocation { proxies: vec![proxy(1), proxy(2)], ..location(1) };
        let [key] = pushes.learn_firewalled(&[first], honest)[..] else { panic!("one key") };
        // Another answer names the same servent with proxies of its own, many.
        let later = FirewalledLocation { proxies: (10..30).map(proxy).collect(), ..location(1) };
        assert_eq!(pushes.learn_firewalled(&[later], hostile), [key]);
        let urn = Urn::Sha1([1; 20]);
        let _ = async_std::task::block_on(pushes.connect(key, &urn, Duration::from_millis(1)));
        let asked = sent.lock().unwrap().remove(0);
        assert_eq!(asked.len(), MAX_NAMED_PROXIES, "bounded");
        assert_eq!(asked[..2], [(proxy(1), honest), (proxy(2), honest)], "the earlier ones are kept, first");
        assert!(asked[2..].iter().all(|(_, namer)| *namer == hostile), "each counted against who named it");
    }
}
