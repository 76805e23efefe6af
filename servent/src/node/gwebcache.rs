//! Asking GWebCaches for hosts, when the core says so.

use std::net::SocketAddrV4;
use std::time::Duration;

use async_std::channel::Sender;
use servent_core::address;
use servent_core::node::Event as CoreEvent;

use super::{log, warn, Event};
use crate::hostcache;

/// Asks each GWebCache for hosts (version 2, then version 1 syntax).
pub(super) async fn ask(urls: Vec<String>, events: Sender<Event>) {
    for url in urls {
        let separator = if url.contains('?') { '&' } else { '?' };
        let request =
            format!("{url}{separator}get=1&hostfile=1&net=gnutella&client=SEBL&version={}", env!("CARGO_PKG_VERSION"));
        let body = async {
            let mut response = surf::get(&request).await?;
            response.take_body().into_string().await
        };
        match async_std::future::timeout(Duration::from_secs(20), body).await {
            Ok(Ok(body)) => {
                let hosts: Vec<SocketAddrV4> =
                    hostcache::parse_gwebcache(&body).into_iter().filter(|a| address::usable(*a)).collect();
                log(format_args!("GWebCache {url}: {}", crate::cli::plural(hosts.len(), "host")));
                if events.send(Event::Core(CoreEvent::HostsLearned(hosts))).await.is_err() {
                    return;
                }
            }
            Ok(Err(e)) => warn(format_args!("GWebCache {url}: {e}")),
            Err(_) => warn(format_args!("GWebCache {url}: timed out")),
        }
    }
}
