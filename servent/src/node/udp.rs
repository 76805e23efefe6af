//! The UDP socket on the Gnutella port: datagrams in to the core as they
//! came, datagrams out as the core asks. One datagram is one descriptor;
//! the core decodes, budgets and decides ([`servent_core::node`]'s `udp`).

use std::io;
use std::net::{SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_std::channel::{self, Receiver, RecvError, Sender};
use async_std::net::UdpSocket;
use servent_core::node::Event as CoreEvent;

use super::{log, Event};
use crate::peeraddr::PeerAddr;

/// The largest datagram read; a longer one is cut, and so malformed.
const MAX_DATAGRAM: usize = 65_536;
/// Datagrams waiting to be sent at most; more are dropped, as UDP may.
pub(super) const OUT_QUEUE: usize = 256;

/// Datagrams received and waiting for the core at most; more are dropped,
/// as UDP allows, so a flood costs its queue and never delays the links.
pub(super) const IN_QUEUE: usize = 1024;
/// Bytes of the datagrams waiting for the core at most, whatever their number.
pub(super) const IN_QUEUE_BYTES: usize = 4 << 20;

/// The queue of datagrams received: its two ends share the count of the
/// bytes waiting in it.
pub(super) fn inbound() -> (Received, Datagrams) {
    let (sender, receiver) = channel::bounded(IN_QUEUE);
    let waiting = Arc::new(AtomicUsize::new(0));
    (Received { sender, waiting: waiting.clone() }, Datagrams { receiver, waiting })
}

/// The receiving task's end of [`inbound`].
pub(super) struct Received {
    sender: Sender<(SocketAddrV4, Vec<u8>)>,
    waiting: Arc<AtomicUsize>,
}

impl Received {
    /// Queues a datagram unless the queue is full, in number or in bytes.
    fn offer(&self, from: SocketAddrV4, bytes: Vec<u8>) {
        let len = bytes.len();
        if self.waiting.load(Ordering::Relaxed) + len > IN_QUEUE_BYTES {
            return;
        }
        if self.sender.try_send((from, bytes)).is_ok() {
            self.waiting.fetch_add(len, Ordering::Relaxed);
        }
    }
}

/// The pump's end of [`inbound`].
pub(super) struct Datagrams {
    receiver: Receiver<(SocketAddrV4, Vec<u8>)>,
    waiting: Arc<AtomicUsize>,
}

impl Datagrams {
    /// The next datagram, when one comes.
    pub(super) async fn recv(&self) -> Result<(SocketAddrV4, Vec<u8>), RecvError> {
        self.receiver.recv().await.inspect(|d| self.taken(d))
    }

    /// The next datagram, if one is waiting.
    pub(super) fn try_recv(&self) -> Option<(SocketAddrV4, Vec<u8>)> {
        self.receiver.try_recv().ok().inspect(|d| self.taken(d))
    }

    fn taken(&self, (_, bytes): &(SocketAddrV4, Vec<u8>)) {
        self.waiting.fetch_sub(bytes.len(), Ordering::Relaxed);
    }
}

/// Hands every datagram to the pump through its own queue
/// ([`IN_QUEUE`], [`IN_QUEUE_BYTES`]); when the queue is full, datagrams
/// are dropped rather than waited for.
pub(super) async fn receive(socket: Arc<UdpSocket>, received: Received) {
    let mut buffer = vec![0; MAX_DATAGRAM];
    loop {
        match socket.recv_from(&mut buffer).await {
            // On [::], an IPv4 sender comes as ::ffff:a.b.c.d: read as the IPv4 address it is.
            Ok((len, from)) => {
                if received.sender.is_closed() {
                    return;
                }
                if let SocketAddr::V4(from) = servent_core::address::canonical(from) {
                    received.offer(from, buffer.get(..len).unwrap_or_default().to_vec());
                }
            }
            // What an earlier send's ICMP leaves behind.
            Err(e) if matches!(e.kind(), io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset) => {}
            Err(e) => {
                log(format_args!("UDP port broken: {e}; going on without UDP"));
                return;
            }
        }
    }
}

/// Sends what the core asks, in order.
pub(super) async fn send(socket: Arc<UdpSocket>, outbox: Receiver<(SocketAddrV4, Vec<u8>)>) {
    while let Ok((to, bytes)) = outbox.recv().await {
        let _ = socket.send_to(&bytes, to).await;
    }
}

/// Looks a host name up for the core, which decides when to ask again.
pub(super) async fn resolve(host: String, port: u16, events: Sender<Event>) {
    let result = PeerAddr::Name(host.clone(), port).resolve().await;
    let _ = events.send(Event::Core(CoreEvent::Resolved { host, port, result })).await;
}

/// Fills the queue with small datagrams, as a flood does.
#[cfg(test)]
pub(super) fn flood(received: &Received) {
    let from = SocketAddrV4::new(std::net::Ipv4Addr::new(192, 0, 2, 2), 6346);
    for _ in 0..IN_QUEUE {
        received.offer(from, vec![0; 23]);
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn attack_datagrams_waiting_are_held_to_a_number_of_bytes() {
        let (received, datagrams) = inbound();
        let from = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 6346);
        for _ in 0..IN_QUEUE {
            received.offer(from, vec![0; MAX_DATAGRAM]);
        }
        let mut waiting = 0;
        while datagrams.try_recv().is_some() {
            waiting += 1;
        }
        assert_eq!(waiting, IN_QUEUE_BYTES / MAX_DATAGRAM, "not {IN_QUEUE} of 64 KiB");
        // Taken, they make room again; small ones fill the queue by number.
        for _ in 0..2 * IN_QUEUE {
            received.offer(from, vec![0; 23]);
        }
        assert_eq!(std::iter::from_fn(|| datagrams.try_recv()).count(), IN_QUEUE);
    }
}
