//! `--tiers` on real servents: the plan's queries flooded on its flat
//! network, then asked by the same askers for the same items on a
//! two-tier network of as many servents (the simulator's layout,
//! [`sim::two_tier`]), in one run, summed up as the simulator does
//! ([`TierSummary`]).
//!
//! The flat servents are ultrapeers that exchange no last-hop route
//! tables (`ultrapeer_query_routing` off), so that a flood goes on to the
//! end of its TTL as flooding on a flat network does, and as the
//! simulator's flat cores flood: with those tables, a query's last hop
//! (most of a flood's messages) went only to servents whose files matched
//! it, and the real flood counted a third of the simulator's.
//!
//! The two-tier servents run as configured (`--mode ultrapeer` or
//! `--mode leaf`, `--dial-local`); queries are asked once every leaf's QRP
//! table is in force at its ultrapeers, through the servent's own search
//! (dynamic querying, no TTL), and their messages are the servents' own
//! per-link counts.

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use async_std::task;
use futures::future::join_all;
use servent_core::handshake::Role;
use servent_core::node::dynamic::RESULT_TIMEOUT;

use crate::content::Content;
use crate::experiment::{Outcome, Plan, QueryRecord, Session};
use crate::net::{check_cancel, Net, NetConfig};
use crate::sim::{self, Counts, TierFigures, TierSummary};
use crate::{Error, Settings};

/// How long the ultrapeers may take to have every leaf's QRP table in force.
const QRP_TIMEOUT: Duration = Duration::from_secs(120);
/// How often that is checked.
const QRP_POLL: Duration = Duration::from_millis(200);
/// Quiet past an ultrapeer's wait between two steps of a dynamic query,
/// which ends a query asked dynamically.
const DYNAMIC_QUIET_MARGIN: Duration = Duration::from_millis(500);

/// Floods the plan's queries at the run's TTL on its flat network of real
/// servents, then asks the same queries from the same servents on a real
/// two-tier network of as many. Calls `on_query` after each query of each.
/// Stops every servent before returning.
pub async fn run(
    settings: &Settings,
    cancel: &AtomicBool,
    mut on_query: impl FnMut(&str, &QueryRecord),
) -> Result<TierSummary, Error> {
    let plan = Plan::new(settings)?;
    let (ultrapeers, two_tier) = sim::two_tier(settings, &plan)?;
    let content = Content::new(&plan.catalog, &[], &[])?;
    let config = NetConfig { port: settings.port, trust: vec![content.trusted()], downloads: false, ultrapeers: 0 };
    let mut flat = Net::start(&plan.topology, &plan.catalog, &content, config.clone(), cancel).await?;
    let flood = ask(&mut Session { settings, plan: &plan, net: &mut flat, cancel }, 0, &mut on_query).await;
    flat.shutdown().await;
    let flood = flood?;
    let config = NetConfig { ultrapeers, ..config };
    let mut tiered = Net::start(&two_tier.topology, &two_tier.catalog, &content, config, cancel).await?;
    let quiet = settings.quiet.max(RESULT_TIMEOUT + DYNAMIC_QUIET_MARGIN);
    let settings = &Settings { quiet, ..settings.clone() };
    let dynamic = match wait_qrp(&tiered, ultrapeers, settings.nodes, cancel).await {
        Ok(()) => {
            let mut session = Session { settings, plan: &two_tier, net: &mut tiered, cancel };
            ask(&mut session, ultrapeers, &mut on_query).await
        }
        Err(e) => Err(e),
    };
    let oob_hits = match &dynamic {
        Ok(_) => oob_hits(&tiered, settings.nodes).await,
        Err(_) => Ok(0),
    };
    tiered.shutdown().await;
    Ok(TierSummary::new(settings, &plan, ultrapeers, TierFigures::of(&flood), TierFigures::of(&dynamic?), oob_hits?))
}

/// Asks every planned query on the session's network: flooded at the run's
/// TTL on a flat one (`ultrapeers` 0), else dynamically, with its messages
/// split by the kind of link.
async fn ask(
    session: &mut Session<'_>,
    ultrapeers: usize,
    on_query: &mut impl FnMut(&str, &QueryRecord),
) -> Result<Vec<(Outcome, Counts)>, Error> {
    let mut outcomes = Vec::with_capacity(session.plan.queries.len());
    for (step, planned) in session.plan.queries.iter().enumerate() {
        check_cancel(session.cancel)?;
        let item = &sim::routable(&session.plan.catalog.items()[planned.item]);
        let (outcome, counts) = if ultrapeers == 0 {
            (session.flood(planned.node, item, session.settings.ttl, &[]).await?.0, Counts::default())
        } else {
            let before = split(session.net, ultrapeers, session.settings.nodes).await?;
            let outcome = session.dynamic(planned.node, item).await?;
            let after = split(session.net, ultrapeers, session.settings.nodes).await?;
            (outcome, after.since(before))
        };
        let record = session.record(step, *planned, true, outcome, None);
        on_query(if ultrapeers == 0 { "flood" } else { "dynamic" }, &record);
        outcomes.push((record.flood, counts));
    }
    Ok(outcomes)
}

/// Queries written so far over links between two ultrapeers and between
/// an ultrapeer and a leaf, as the servents counted them per link.
async fn split(net: &Net, ultrapeers: usize, nodes: usize) -> Result<Counts, Error> {
    let mut counts = Counts::default();
    for index in 0..nodes {
        let Some(node) = net.node(index) else { continue };
        let peers = node.peers().await.map_err(|source| Error::Node { index, addr: net.addr(index), source })?;
        for peer in peers {
            if index < ultrapeers && peer.role == Role::Ultrapeer {
                counts.up_up += peer.queries_out;
            } else {
                counts.up_leaf += peer.queries_out;
            }
        }
    }
    Ok(counts)
}

/// QueryHits the servents took out of band, all together.
async fn oob_hits(net: &Net, nodes: usize) -> Result<u64, Error> {
    let statuses = join_all((0..nodes).filter_map(|i| net.node(i)).map(|node| node.status())).await;
    let mut hits = 0;
    for (index, status) in statuses.into_iter().enumerate() {
        hits += status.map_err(|source| Error::Node { index, addr: net.addr(index), source })?.oob_hits;
    }
    Ok(hits)
}

/// Waits until every ultrapeer has the QRP table of each of its leaves in
/// force, so that it routes them only what they match.
async fn wait_qrp(net: &Net, ultrapeers: usize, nodes: usize, cancel: &AtomicBool) -> Result<(), Error> {
    let deadline = Instant::now() + QRP_TIMEOUT;
    loop {
        let mut waiting = 0;
        for index in 0..ultrapeers.min(nodes) {
            let Some(node) = net.node(index) else { continue };
            let peers = node.peers().await.map_err(|source| Error::Node { index, addr: net.addr(index), source })?;
            waiting += peers.iter().filter(|p| p.role == Role::Leaf && !p.qrp).count();
        }
        if waiting == 0 {
            return Ok(());
        }
        check_cancel(cancel)?;
        if Instant::now() >= deadline {
            return Err(Error::Timeout(format!(
                "after {} s, {waiting} leaves' QRP tables are not in force at their ultrapeers",
                QRP_TIMEOUT.as_secs()
            )));
        }
        task::sleep(QRP_POLL).await;
    }
}
