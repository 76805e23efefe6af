//! Ultrapeers and leaves between real servents on 127.0.0.1: who links
//! with whom, and queries reaching a leaf only through its QRP table.

mod common;

use std::time::Duration;

use async_std::task;
use common::{share, start_with, wait_connected, wait_for, wait_indexed, RawPeer};
use servent::config::Mode;
use servent::handshake::Role;
use servent::node::NodeHandle;
use servent::qrp::RouteTable;
use servent::wire::vendor::{Kind, MessagesSupported, Vendor};
use servent::wire::{Guid, Message, Payload};

async fn ultrapeer() -> NodeHandle {
    start_with(&[], None, |config| config.mode = Mode::Ultrapeer).await
}

/// A leaf, typed as a gtk-gnutella 1.2 leaf sends its handshake.
async fn raw_leaf(ultrapeer: &NodeHandle) -> (RawPeer, String) {
    let mut leaf = RawPeer::connect(ultrapeer.listen_addr()).await;
    leaf.send_bytes(
        b"GNUTELLA CONNECT/0.6\r\nUser-Agent: gtk-gnutella/1.2.3\r\nX-Ultrapeer: False\r\n\
          X-Query-Routing: 0.2\r\nX-Max-TTL: 4\r\nBye-Packet: 0.1\r\n\r\n",
    )
    .await;
    let response = leaf.read_headers().await;
    leaf.send_bytes(b"GNUTELLA/0.6 200 OK\r\n\r\n").await;
    (leaf, response)
}

async fn wait_qrp_in_force(ultrapeer: &NodeHandle) {
    wait_for("the leaf's QRP table to be in force", || async {
        ultrapeer.peers().await.unwrap().iter().any(|p| p.role == Role::Leaf && p.qrp)
    })
    .await;
}

fn criteria(message: &Message) -> Option<&str> {
    match &message.payload {
        Payload::Query(query) => Some(&query.criteria),
        _ => None,
    }
}

#[test]
fn a_leaf_gets_only_the_queries_its_route_table_matches() {
    task::block_on(async {
        let ultra = ultrapeer().await;
        let (mut leaf, response) = raw_leaf(&ultra).await;
        assert!(response.starts_with("GNUTELLA/0.6 200"), "{response}");
        for header in [
            "X-Ultrapeer: True",
            "X-Degree: 16",
            "X-Dynamic-Querying: 0.1",
            "X-Query-Routing: 0.2",
            "Vendor-Message: 0.2",
        ] {
            assert!(response.contains(header), "{header} missing from {response}");
        }
        let table = RouteTable::from_library(["SEBLINUX-base-1.0.tar"], []);
        for update in table.updates_from(None) {
            let payload = Payload::Opaque { payload_type: 0x30, bytes: update.encode() };
            leaf.send(&Message { guid: Guid::random(), ttl: 1, hops: 0, payload }).await;
        }
        wait_qrp_in_force(&ultra).await;
        // As `peers --json` and the page show it.
        let peers = serde_json::to_value(ultra.peers().await.unwrap()).unwrap();
        assert_eq!((&peers[0]["role"], &peers[0]["qrp"]), (&serde_json::json!("leaf"), &serde_json::json!(true)));

        ultra.search("linux kernel", 7).await.unwrap();
        ultra.search("seblinux base", 7).await.unwrap();
        // One link, in order: had the first query been sent, it would come first.
        let first = leaf.receive_until(|m| criteria(m).is_some()).await;
        assert_eq!(criteria(&first), Some("seblinux base"));
        assert_eq!(first.ttl, 4, "capped at the leaf's X-Max-TTL");
        ultra.shutdown().await;
    });
}

#[test]
fn no_query_is_flooded_to_a_leaf_before_its_table_and_a_bad_table_drops_it() {
    task::block_on(async {
        let ultra = ultrapeer().await;
        let (mut leaf, _) = raw_leaf(&ultra).await;
        wait_for("the leaf to be linked", || async {
            ultra.peers().await.unwrap().iter().any(|p| p.role == Role::Leaf)
        })
        .await;
        ultra.search("seblinux", 7).await.unwrap();
        let reset = Payload::Opaque { payload_type: 0x30, bytes: vec![0, 12, 0, 0, 0, 7] };
        leaf.send(&Message { guid: Guid::random(), ttl: 1, hops: 0, payload: reset }).await;
        let mut seen = Vec::new();
        loop {
            let message = leaf.receive().await;
            if let Payload::Bye(bye) = &message.payload {
                assert_eq!(bye.code, 413, "{bye:?}");
                break;
            }
            seen.push(message);
        }
        assert!(seen.iter().all(|m| criteria(m).is_none()), "no query before a table: {seen:?}");
        leaf.expect_closed().await;
        ultra.shutdown().await;
    });
}

#[test]
fn our_leaf_under_our_ultrapeer_is_found_through_its_table() {
    task::block_on(async {
        let files = share(&[("SEBLINUX-base-1.0.tar", b"base system".as_slice())]);
        let ultra = ultrapeer().await;
        let leaf = start_with(&[ultra.listen_addr()], Some(files.path()), |config| config.mode = Mode::Leaf).await;
        wait_connected(&ultra, &leaf).await;
        wait_indexed(&leaf, "seblinux", 1).await;
        wait_qrp_in_force(&ultra).await;
        let up_seen_by_leaf = leaf.peers().await.unwrap();
        assert_eq!(up_seen_by_leaf.iter().map(|p| p.role).collect::<Vec<_>>(), [Role::Ultrapeer]);

        // The table in force may still be the one sent before the first
        // scan ended; its patch follows. Ask again until it is there.
        wait_for("the ultrapeer to find the leaf's file", || async {
            let id = ultra.search("seblinux base", 4).await.unwrap();
            task::sleep(Duration::from_millis(300)).await;
            !ultra.search_results(id).await.unwrap().unwrap().results.is_empty()
        })
        .await;
        for node in [leaf, ultra] {
            node.shutdown().await;
        }
    });
}

/// An ultrapeer, typed as gtk-gnutella 1.2 sends its handshake.
async fn raw_ultrapeer(ultrapeer: &NodeHandle) -> RawPeer {
    let mut peer = RawPeer::connect(ultrapeer.listen_addr()).await;
    peer.send_bytes(
        b"GNUTELLA CONNECT/0.6\r\nUser-Agent: gtk-gnutella/1.2.3\r\nX-Ultrapeer: True\r\n\
          X-Query-Routing: 0.2\r\nX-Degree: 32\r\nX-Max-TTL: 4\r\nX-Dynamic-Querying: 0.1\r\n\r\n",
    )
    .await;
    let response = peer.read_headers().await;
    assert!(response.starts_with("GNUTELLA/0.6 200"), "{response}");
    peer.send_bytes(b"GNUTELLA/0.6 200 OK\r\n\r\n").await;
    peer
}

#[test]
fn a_search_without_ttl_probes_three_ultrapeers_and_each_link_opens_with_messages_supported() {
    task::block_on(async {
        let ultra = ultrapeer().await;
        let mut peers = Vec::new();
        for _ in 0..4 {
            peers.push(raw_ultrapeer(&ultra).await);
        }
        wait_for("four ultrapeer links", || async { ultra.peers().await.unwrap().len() == 4 }).await;
        ultra.search("seblinux dynamic", None).await.unwrap();
        // A flooded search after it: on each link it comes after whatever the first sent.
        ultra.search("seblinux fence", 4).await.unwrap();
        let mut probed = Vec::new();
        for peer in &mut peers {
            let first = peer.receive().await;
            let Some(Ok(vendor)) = Vendor::from_payload(&first.payload) else { panic!("{first:?}") };
            let announced = MessagesSupported::decode(&vendor.body).unwrap();
            for kind in [Kind::HOPS_FLOW, Kind::QUERY_STATUS_REQUEST, Kind::QUERY_STATUS_RESPONSE] {
                assert!(announced.version_of(kind).is_some(), "{kind:?} not announced");
            }
            let query = peer.receive_until(|m| criteria(m).is_some()).await;
            if criteria(&query) == Some("seblinux dynamic") {
                assert_eq!(query.ttl, 2, "a probe");
                probed.push(query);
            } else {
                assert_eq!(criteria(&query), Some("seblinux fence"));
            }
        }
        assert_eq!(probed.len(), 3, "the probe goes to three ultrapeers, not all");
        ultra.shutdown().await;
    });
}

#[test]
fn a_servent_in_auto_mode_starts_as_a_leaf_and_is_promoted_when_no_ultrapeer_is_about() {
    task::block_on(async {
        let ultra = ultrapeer().await;
        let auto = start_with(&[ultra.listen_addr()], None, |config| config.mode = Mode::Auto).await;
        wait_for("the auto servent to link as a leaf", || async {
            ultra.peers().await.unwrap().iter().any(|p| p.role == Role::Leaf)
        })
        .await;
        ultra.shutdown().await;
        // Each leaf that knocks is refused (a leaf takes no leaves) but shows
        // we are reachable; with no ultrapeer left, after the shortage wait
        // the auto servent answers as an ultrapeer.
        wait_for("the auto servent to answer as an ultrapeer", || async {
            let (_leaf, response) = raw_leaf(&auto).await;
            response.starts_with("GNUTELLA/0.6 200") && response.contains("X-Ultrapeer: True")
        })
        .await;
        auto.shutdown().await;
    });
}
