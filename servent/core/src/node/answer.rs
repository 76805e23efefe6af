//! Our answer to a neighbour's query: QueryHits naming the files the
//! library found, built without I/O.

use std::net::SocketAddrV4;

use crate::wire::{self, GgepId, Guid, QueryHit, QueryResult, Trailer, TrailerFlags};

/// The speed we claim in QueryHits, in kbit/s.
pub const ADVERTISED_SPEED: u32 = 10_000;
/// GGEP "BH" (empty) in a QueryHit's trailer: its servent answers browse
/// host, as gtk-gnutella writes it when `browse_host_enabled` (`qhit.c`)
/// and as deployed servents read it before offering to browse a hit's host.
pub const BROWSE_HOST: GgepId = GgepId::from_static("BH");

/// The QueryHits that offer `files` from `advertised`: [`query_hit`] split
/// so that each is small enough for [`wire::HIT_PAYLOAD`].
pub fn query_hits(
    files: Vec<search::SharedFile>,
    advertised: SocketAddrV4,
    servent: Guid,
    firewalled: bool,
    proxies: &[SocketAddrV4],
) -> Vec<QueryHit> {
    query_hit(files, advertised, servent, firewalled, proxies).split(wire::HIT_PAYLOAD)
}

/// One QueryHit offering all of `files` from `advertised`, under our servent
/// GUID (to be [split](QueryHit::split) once complete), flagged for a PUSH
/// when we are `firewalled`, listing our push `proxies`, saying we answer
/// browse host. A file's signature goes out as it is: whoever receives it
/// judges it.
pub fn query_hit(
    files: Vec<search::SharedFile>,
    advertised: SocketAddrV4,
    servent: Guid,
    firewalled: bool,
    proxies: &[SocketAddrV4],
) -> QueryHit {
    let results: Vec<QueryResult> = files
        .into_iter()
        .map(|f| {
            let mut result = QueryResult {
                index: f.index,
                size: f.size,
                name: f.name,
                urns: vec![f.sha1, f.sha256],
                ggep: Default::default(),
            };
            result.ggep.insert(GgepId::TIGER_TREE, f.tth.0.to_vec());
            if let Some(search::Sidecar::Signed(signed)) = &f.signature {
                result.ggep.insert(GgepId::RELEASE_SIGNATURE, signed.minisig.to_compact());
            }
            result
        })
        .collect();
    let mut trailer_ggep = wire::Ggep::default();
    trailer_ggep.insert(BROWSE_HOST, Vec::new());
    crate::push::add_proxies(&mut trailer_ggep, proxies);
    QueryHit {
        port: advertised.port(),
        ip: *advertised.ip(),
        speed: ADVERTISED_SPEED,
        results,
        trailer: Some(Trailer::ours(
            TrailerFlags { push: Some(firewalled), busy: Some(false), ..Default::default() },
            trailer_ggep,
        )),
        servent_guid: servent,
        original: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::node::tests::shared_file;

    #[test]
    fn our_hits_say_that_we_answer_browse_host_as_gtk_gnutella_reads_it() {
        let at = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 6346);
        let hit = query_hits(vec![shared_file("SEBLINUX.tar")], at, Guid([1; 16]), false, &[]).remove(0);
        let bytes =
            wire::Message { guid: Guid([2; 16]), ttl: 1, hops: 0, payload: wire::Payload::QueryHit(hit) }.encode();
        let wire::Payload::QueryHit(read) = wire::decode(&bytes).unwrap().payload else { panic!("not a QueryHit") };
        assert_eq!(read.trailer.unwrap().ggep.get(BROWSE_HOST), Some(&[][..]));
    }
}
