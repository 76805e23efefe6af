//! Flow control: the bounded queue of messages waiting to be written to one
//! neighbour.
//!
//! A slow neighbour must never make the servent hold an unbounded backlog
//! for it, nor slow anyone else down. When its queue is full, messages are
//! dropped in Gnutella's order of worth: Pings and Pongs first (they are
//! cheap to replace), then Queries (the oldest first: a stale query is worth
//! least), and QueryHits last, since a hit is the answer somebody waited
//! for. Within one class messages keep their order; across classes the most
//! valuable go out first.

use std::collections::VecDeque;

use crate::wire::{Message, Payload};

/// Bytes one neighbour's queue may hold.
pub const QUEUE_BYTES: usize = 512 * 1024;

/// Classes of messages, from the first to be dropped to the last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    PingPong = 0,
    Query = 1,
    Reply = 2,
    Control = 3,
}

const CLASSES: usize = 4;

impl Class {
    fn of(message: &Message) -> Class {
        match message.payload {
            Payload::Ping(_) | Payload::Pong(_) => Class::PingPong,
            Payload::Query(_) => Class::Query,
            Payload::QueryHit(_) | Payload::Push(_) => Class::Reply,
            Payload::Bye(_) | Payload::Opaque { .. } => Class::Control,
        }
    }
}

/// The outgoing queue of one neighbour, bounded in bytes.
#[derive(Debug)]
pub struct OutQueue {
    capacity: usize,
    bytes: usize,
    queues: [VecDeque<(Message, usize)>; CLASSES],
    dropped: u64,
}

impl OutQueue {
    /// An empty queue holding at most `capacity` bytes of encoded messages.
    pub fn new(capacity: usize) -> OutQueue {
        OutQueue { capacity, bytes: 0, queues: Default::default(), dropped: 0 }
    }

    /// Adds a message, dropping less valuable ones (possibly this one) if
    /// the queue would overflow. Returns how many messages were dropped.
    pub fn push(&mut self, message: Message) -> u64 {
        let size = message.encoded_len();
        let class = Class::of(&message);
        let before = self.dropped;
        while self.bytes + size > self.capacity {
            // The least valuable class that holds anything, and only if it is
            // worth no more than the newcomer; otherwise the newcomer goes.
            match (0..=class as usize).find(|&c| !self.queues[c].is_empty()) {
                Some(victim) => {
                    if let Some((_, len)) = self.queues[victim].pop_front() {
                        self.bytes -= len;
                        self.dropped += 1;
                    }
                }
                None => {
                    self.dropped += 1;
                    return self.dropped - before;
                }
            }
        }
        self.bytes += size;
        self.queues[class as usize].push_back((message, size));
        self.dropped - before
    }

    /// The next message to write: the most valuable class first.
    pub fn pop(&mut self) -> Option<Message> {
        let (message, len) = self.queues.iter_mut().rev().find_map(|q| q.pop_front())?;
        self.bytes -= len;
        Some(message)
    }

    /// Bytes waiting.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Messages waiting.
    pub fn len(&self) -> usize {
        self.queues.iter().map(VecDeque::len).sum()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.queues.iter().all(VecDeque::is_empty)
    }

    /// Messages dropped since the queue was made.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::wire::{Guid, Ping, Query, QueryHit};

    fn ping(n: u8) -> Message {
        Message { guid: Guid([n; 16]), ttl: 1, hops: 0, payload: Payload::Ping(Ping::default()) }
    }

    fn query(n: u8) -> Message {
        let query = Query::words("seblinux");
        Message { guid: Guid([n; 16]), ttl: 3, hops: 0, payload: Payload::Query(query) }
    }

    fn hit(n: u8) -> Message {
        let hit = QueryHit {
            port: 1,
            ip: Ipv4Addr::LOCALHOST,
            speed: 0,
            results: vec![],
            trailer: None,
            servent_guid: Guid([0; 16]),
            original: Default::default(),
        };
        Message { guid: Guid([n; 16]), ttl: 3, hops: 0, payload: Payload::QueryHit(hit) }
    }

    fn guids(queue: &mut OutQueue) -> Vec<u8> {
        std::iter::from_fn(|| queue.pop()).map(|m| m.guid.0[0]).collect()
    }

    #[test]
    fn replies_go_out_before_queries_and_pings() {
        let mut queue = OutQueue::new(QUEUE_BYTES);
        queue.push(ping(1));
        queue.push(query(2));
        queue.push(hit(3));
        queue.push(query(4));
        assert_eq!(guids(&mut queue), vec![3, 2, 4, 1]);
        assert_eq!(queue.bytes(), 0);
    }

    #[test]
    fn full_queue_drops_pings_first_then_oldest_queries() {
        let size = query(0).encoded_len();
        let mut queue = OutQueue::new(3 * size);
        queue.push(ping(1));
        queue.push(query(2));
        queue.push(query(3));
        assert_eq!(queue.push(query(4)), 1, "the ping goes");
        assert_eq!(queue.push(query(5)), 1, "then the oldest query");
        assert_eq!(guids(&mut queue), vec![3, 4, 5]);
        assert_eq!(queue.dropped(), 2);
    }

    #[test]
    fn query_hit_evicts_queries_but_a_query_never_evicts_a_hit() {
        let size = hit(0).encoded_len().max(query(0).encoded_len());
        let mut queue = OutQueue::new(2 * size);
        queue.push(hit(1));
        queue.push(query(2));
        assert_eq!(queue.push(hit(3)), 1);
        assert_eq!(queue.push(query(4)), 1, "the new query itself is dropped");
        assert_eq!(guids(&mut queue), vec![1, 3]);
    }

    #[test]
    fn queue_never_exceeds_its_capacity() {
        let mut queue = OutQueue::new(4096);
        for n in 0..=255 {
            queue.push(if n % 3 == 0 { hit(n) } else { query(n) });
            assert!(queue.bytes() <= 4096);
        }
        assert!(queue.dropped() > 0);
        assert_eq!(queue.len() as u64 + queue.dropped(), 256);
    }
}
