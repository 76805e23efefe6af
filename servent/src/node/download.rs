//! What the pump does for downloads: completing what the user asked for
//! with what searches found, and telling the core where each download
//! stands, so that it re-queries only for those that fetch.

use std::net::SocketAddrV4;
use std::time::Duration;

use async_std::channel::Sender;
use async_std::task;
use servent_core::address::DialRule;
use servent_core::node::Event as CoreEvent;
use servent_core::requery::Phase;

use super::{Event, NodeError};
use crate::searches::SearchResult;
use crate::transfer::download::{DownloadRequest, DownloadState, Downloads, Keep};
use crate::transfer::magnet::Magnet;
use crate::wire::Urn;

/// How long `download` searches for a URN nobody has shown yet.
pub(super) const FIND_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the downloads' states are reported to the core.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// What the user asked to download, before sources are known.
pub(super) struct DownloadTarget {
    pub(super) urns: Vec<Urn>,
    name: Option<String>,
    pub(super) size: Option<u64>,
    sources: Vec<SocketAddrV4>,
}

impl DownloadTarget {
    pub(super) fn parse(text: &str) -> Result<DownloadTarget, NodeError> {
        let text = text.trim();
        if text.starts_with("magnet:") {
            let magnet = Magnet::parse(text).map_err(|e| NodeError::BadTarget(e.to_string()))?;
            let urns = magnet.sha1.into_iter().chain(magnet.sha256).collect();
            return Ok(DownloadTarget { urns, name: magnet.name, size: magnet.size, sources: magnet.sources });
        }
        let urn =
            text.parse::<Urn>().map_err(|e| NodeError::BadTarget(format!("expected a URN or a magnet link: {e}")))?;
        Ok(DownloadTarget { urns: vec![urn], name: None, size: None, sources: Vec::new() })
    }

    /// The request, completed with what a search found, if enough is known.
    /// A magnet's sources pass `rule` as those hits name do: a link from a
    /// web page must not aim requests at our machine or our LAN.
    pub(super) fn request(self, known: Option<SearchResult>, keep: Keep, rule: &DialRule) -> Option<DownloadRequest> {
        let mut urns = self.urns;
        let mut sources = self.sources;
        sources.retain(|source| rule.allows(*source));
        let (mut name, mut size) = (self.name, self.size);
        let mut signature = None;
        if let Some(found) = known {
            signature = found.signature;
            urns.extend(found.sha1.into_iter().chain(found.sha256).filter(|u| !urns.contains(u)).collect::<Vec<_>>());
            sources.extend(found.sources.into_iter().filter(|s| !sources.contains(s)).collect::<Vec<_>>());
            name.get_or_insert(found.name);
            size.get_or_insert(found.size);
        }
        // N2R requests need the SHA-1; keep it first.
        urns.sort_by_key(|u| !matches!(u, Urn::Sha1(_)));
        let name = name.unwrap_or_else(|| urns[0].base32());
        Some(DownloadRequest { urns, name, size: size?, sources, signature, keep })
    }
}

/// Reports every download's phase to the core, now and then, until the
/// servent stops: a pause, a queue, a resume or an end changes its re-queries.
pub(super) async fn watch(downloads: Downloads, events: Sender<Event>) {
    loop {
        if let Ok(list) = downloads.list().await {
            for download in list {
                let Some(urn) = download.sha1.or(download.sha256) else { continue };
                // Any state but these wants sources: a new one (stalled, say) too.
                let phase = match download.state {
                    _ if download.state.is_finished() => Phase::Finished,
                    DownloadState::Queued | DownloadState::Paused | DownloadState::Verifying => Phase::Waiting,
                    _ => Phase::Fetching,
                };
                let event = CoreEvent::DownloadPhase { id: download.id.0, urn, phase };
                if events.send(Event::Core(event)).await.is_err() {
                    return;
                }
            }
        }
        task::sleep(WATCH_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::Judgement;

    const SHA1: &str = "urn:sha1:PLSTHIPQGSSZTS5FJUPAKUZWUGYQYPFB";

    #[test]
    fn magnet_with_size_and_source_is_a_request_of_its_own() {
        let magnet = format!("magnet:?xt={SHA1}&dn=a.img&xl=5000&xs=http://192.0.2.1:6346/uri-res/N2R?{SHA1}");
        let request =
            DownloadTarget::parse(&magnet).unwrap().request(None, Keep::NotFake, &DialRule::new(false)).unwrap();
        assert_eq!((request.name.as_str(), request.size), ("a.img", 5000));
        assert_eq!(request.sources, vec!["192.0.2.1:6346".parse().unwrap()]);
    }

    #[test]
    fn attack_a_magnets_sources_on_our_machine_or_lan_are_dropped_outside_a_test_network() {
        let magnet = format!(
            "magnet:?xt={SHA1}&xl=5000&xs=http://127.0.0.1:22/uri-res/N2R?{SHA1}&as=http://192.168.1.1:80/\
             &xs=http://192.0.2.1:6346/uri-res/N2R?{SHA1}"
        );
        let request = |rule| DownloadTarget::parse(&magnet).unwrap().request(None, Keep::NotFake, &rule).unwrap();
        assert_eq!(request(DialRule::new(false)).sources, vec!["192.0.2.1:6346".parse().unwrap()]);
        assert_eq!(request(DialRule::new(true)).sources.len(), 3, "a test network dials its local addresses");
    }

    #[test]
    fn bare_urn_needs_what_a_search_found() {
        assert!(DownloadTarget::parse(SHA1).unwrap().request(None, Keep::NotFake, &DialRule::new(false)).is_none());
        let sha256 = Urn::Sha256([3; 32]);
        let mut found = SearchResult::judged("found.img", 7, Judgement::unsigned());
        found.sha256 = Some(sha256);
        found.sources = vec!["192.0.2.2:6346".parse().unwrap()];
        let request =
            DownloadTarget::parse(SHA1).unwrap().request(Some(found), Keep::NotFake, &DialRule::new(false)).unwrap();
        assert_eq!((request.name.as_str(), request.size), ("found.img", 7));
        assert_eq!(request.urns, vec![SHA1.parse().unwrap(), sha256], "the SHA-1 first, for N2R requests");
        assert_eq!(request.sources.len(), 1);
    }

    #[test]
    fn what_is_not_a_urn_or_magnet_is_refused() {
        assert!(matches!(DownloadTarget::parse("http://example.com/x"), Err(NodeError::BadTarget(_))));
    }
}
