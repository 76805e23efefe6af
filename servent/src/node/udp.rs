//! The UDP socket on the Gnutella port: datagrams in to the core as they
//! came, datagrams out as the core asks. One datagram is one descriptor;
//! the core decodes, budgets and decides ([`servent_core::node`]'s `udp`).

use std::io;
use std::net::{SocketAddr, SocketAddrV4};
use std::sync::Arc;

use async_std::channel::{Receiver, Sender};
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

/// Hands every datagram to the pump through its own queue
/// ([`IN_QUEUE`]); when the queue is full, datagrams are dropped rather
/// than waited for.
pub(super) async fn receive(socket: Arc<UdpSocket>, received: Sender<(SocketAddrV4, Vec<u8>)>) {
    let mut buffer = vec![0; MAX_DATAGRAM];
    loop {
        match socket.recv_from(&mut buffer).await {
            Ok((len, SocketAddr::V4(from))) => {
                if received.is_closed() {
                    return;
                }
                let bytes = buffer.get(..len).unwrap_or_default().to_vec();
                let _ = received.try_send((from, bytes));
            }
            Ok((_, SocketAddr::V6(_))) => {}
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
