//! What the network shares, who holds each file, and how often each is
//! asked for.
//!
//! The catalog is a list of small files named like releases
//! (`SEBLINUX-pkg-007-1.0.tar`). Each name carries a number no other item
//! has, and a query asks for `SEBLINUX pkg 007`: every word must match, so
//! it finds that item and no other, and success is easy to judge.
//!
//! How many servents hold a copy of each item is the *replication*. Lv et
//! al. (2002) showed that with queries following a Zipf popularity, the
//! cost of blind search is lowest when copies are proportional to the
//! square root of popularity, between uniform replication (every item the
//! same) and proportional replication (copies follow the queries). All
//! three are here; with `uniform` queries pick items uniformly, with the
//! other two by their Zipf popularity. The mean number of copies is the
//! same in all three: `replication × nodes`.

use std::fmt;
use std::str::FromStr;

use rand::distributions::{Distribution as _, WeightedIndex};
use rand::seq::index;
use rand::Rng;
use search::Urn;

/// The Zipf exponent of item popularity: the i-th most popular item is
/// asked for in proportion to 1 / i^ZIPF_EXPONENT.
pub const ZIPF_EXPONENT: f64 = 1.0;
/// Most items a catalog may have.
pub const MAX_ITEMS: usize = 100_000;

/// How copies are spread over items, and queries with them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Distribution {
    /// Every item has the same number of copies; queries pick items uniformly.
    Uniform,
    /// Copies proportional to the square root of Zipf popularity; queries by popularity.
    Sqrt,
    /// Copies proportional to Zipf popularity; queries by popularity.
    Zipf,
}

impl FromStr for Distribution {
    type Err = String;

    fn from_str(text: &str) -> Result<Distribution, String> {
        match text {
            "uniform" => Ok(Distribution::Uniform),
            "sqrt" => Ok(Distribution::Sqrt),
            "zipf" => Ok(Distribution::Zipf),
            other => Err(format!("unknown distribution {other:?}: expected uniform, sqrt or zipf")),
        }
    }
}

impl fmt::Display for Distribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Distribution::Uniform => "uniform",
            Distribution::Sqrt => "sqrt",
            Distribution::Zipf => "zipf",
        })
    }
}

/// One file of the catalog.
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    /// The file name, e.g. `SEBLINUX-pkg-007-1.0.tar`.
    pub name: String,
    /// What a servent types to find it, e.g. `SEBLINUX pkg 007`.
    pub query: String,
    /// The file's bytes, different for every item.
    pub contents: Vec<u8>,
    /// The `urn:sha1:` of those bytes, what a download asks for.
    pub sha1: Urn,
    /// The `urn:sha256:` of those bytes, what tells the genuine file from a fake.
    pub sha256: Urn,
    /// The Tiger tree root of those bytes.
    pub tth: search::thex::Root,
    /// The nodes that share it, in increasing order.
    pub holders: Vec<usize>,
}

/// The items, their holders and their popularity.
#[derive(Clone, Debug)]
pub struct Catalog {
    items: Vec<Item>,
    popularity: WeightedIndex<f64>,
    /// For each node, the items it shares.
    shared: Vec<Vec<usize>>,
}

impl Catalog {
    /// A catalog of `items` files over `nodes` nodes, each held on average
    /// by `replication × nodes` of them (at least one, at most all), all
    /// among the `eligible` nodes (those that are not fakers).
    pub fn generate(
        items: usize,
        nodes: usize,
        eligible: &[usize],
        replication: f64,
        distribution: Distribution,
        rng: &mut impl Rng,
    ) -> Result<Catalog, String> {
        if items == 0 || items > MAX_ITEMS {
            return Err(format!("a catalog has from 1 to {MAX_ITEMS} items, not {items}"));
        }
        if eligible.is_empty() || eligible.iter().any(|&n| n >= nodes) {
            return Err("a catalog needs at least one node to hold it".into());
        }
        if !(replication > 0.0 && replication <= 1.0) {
            return Err(format!("replication is a fraction of the nodes, above 0 and at most 1, not {replication}"));
        }
        let zipf: Vec<f64> = (1..=items).map(|rank| (rank as f64).powf(-ZIPF_EXPONENT)).collect();
        let (queries, copies): (Vec<f64>, Vec<f64>) = match distribution {
            Distribution::Uniform => (vec![1.0; items], vec![1.0; items]),
            Distribution::Sqrt => (zipf.clone(), zipf.iter().map(|q| q.sqrt()).collect()),
            Distribution::Zipf => (zipf.clone(), zipf),
        };
        let scale = replication * nodes as f64 * items as f64 / copies.iter().sum::<f64>();
        let width = (items - 1).to_string().len().max(3);
        let mut shared = vec![Vec::new(); nodes];
        let mut catalog_items = Vec::with_capacity(items);
        for (i, weight) in copies.iter().enumerate() {
            let count = ((weight * scale).round() as usize).clamp(1, eligible.len());
            let mut holders: Vec<usize> =
                index::sample(rng, eligible.len(), count).into_iter().map(|i| eligible[i]).collect();
            holders.sort_unstable();
            for &holder in &holders {
                shared[holder].push(i);
            }
            let number = format!("{i:0width$}");
            let contents = format!("SEBLINUX-pkg-{number}-1.0: test-net catalog item {i}\n").into_bytes();
            let (digests, _) = search::hash_reader(&contents[..]).map_err(|e| format!("cannot hash item {i}: {e}"))?;
            catalog_items.push(Item {
                name: format!("SEBLINUX-pkg-{number}-1.0.tar"),
                query: format!("SEBLINUX pkg {number}"),
                contents,
                sha1: digests.sha1_urn(),
                sha256: digests.sha256_urn(),
                tth: digests.tth,
                holders,
            });
        }
        let popularity = WeightedIndex::new(&queries).map_err(|e| format!("cannot weigh popularity: {e}"))?;
        Ok(Catalog { items: catalog_items, popularity, shared })
    }

    /// The items, the most popular first.
    pub fn items(&self) -> &[Item] {
        &self.items
    }

    /// The items `node` shares.
    pub fn shared_by(&self, node: usize) -> &[usize] {
        &self.shared[node]
    }

    /// An item to ask for, drawn by popularity.
    pub fn draw(&self, rng: &mut impl Rng) -> usize {
        self.popularity.sample(rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn all(nodes: usize) -> Vec<usize> {
        (0..nodes).collect()
    }

    #[test]
    fn uniform_catalog_gives_every_item_the_same_copies() {
        let catalog =
            Catalog::generate(100, 1000, &all(1000), 0.01, Distribution::Uniform, &mut StdRng::seed_from_u64(7))
                .unwrap();
        assert!(catalog.items().iter().all(|item| item.holders.len() == 10));
        assert_eq!(catalog.items()[7].name, "SEBLINUX-pkg-007-1.0.tar");
        assert_eq!(catalog.items()[7].query, "SEBLINUX pkg 007");
        let shared: usize = (0..1000).map(|n| catalog.shared_by(n).len()).sum();
        assert_eq!(shared, 1000);
    }

    #[test]
    fn every_query_matches_exactly_its_item() {
        let catalog =
            Catalog::generate(1200, 50, &all(50), 0.1, Distribution::Uniform, &mut StdRng::seed_from_u64(1)).unwrap();
        for item in catalog.items() {
            let words = search::keywords(&item.query);
            let matching = catalog
                .items()
                .iter()
                .filter(|other| {
                    let name = search::keywords(&other.name);
                    words.iter().all(|w| name.contains(w))
                })
                .count();
            assert_eq!(matching, 1, "{} matches {matching} items", item.query);
        }
    }

    #[test]
    fn square_root_replication_sits_between_uniform_and_proportional() {
        let rng = &mut StdRng::seed_from_u64(2);
        let sqrt = Catalog::generate(100, 1000, &all(1000), 0.01, Distribution::Sqrt, rng).unwrap();
        let zipf = Catalog::generate(100, 1000, &all(1000), 0.01, Distribution::Zipf, rng).unwrap();
        let copies = |c: &Catalog, i: usize| c.items()[i].holders.len();
        assert!(copies(&zipf, 0) > copies(&sqrt, 0));
        assert!(copies(&sqrt, 0) > 10);
        assert!(copies(&zipf, 99) <= copies(&sqrt, 99));
        assert!(copies(&zipf, 99) >= 1);
    }

    #[test]
    fn popular_items_are_drawn_more_often() {
        let catalog =
            Catalog::generate(100, 100, &all(100), 0.05, Distribution::Zipf, &mut StdRng::seed_from_u64(3)).unwrap();
        let rng = &mut StdRng::seed_from_u64(4);
        let draws: Vec<usize> = (0..10_000).map(|_| catalog.draw(rng)).collect();
        let first = draws.iter().filter(|&&i| i == 0).count();
        let last = draws.iter().filter(|&&i| i == 99).count();
        assert!(first > 10 * last.max(1), "item 0 drawn {first} times, item 99 {last}");
    }

    #[test]
    fn only_eligible_nodes_hold_copies_and_every_item_has_its_hashes() {
        let eligible: Vec<usize> = (0..100).filter(|n| n % 10 != 0).collect();
        let catalog =
            Catalog::generate(50, 100, &eligible, 0.2, Distribution::Uniform, &mut StdRng::seed_from_u64(6)).unwrap();
        for item in catalog.items() {
            assert_eq!(item.holders.len(), 20);
            assert!(item.holders.iter().all(|h| h % 10 != 0), "{:?}", item.holders);
            let (digests, _) = search::hash_reader(&item.contents[..]).unwrap();
            assert_eq!((item.sha1, item.sha256), (digests.sha1_urn(), digests.sha256_urn()));
        }
        assert!((0..100).step_by(10).all(|n| catalog.shared_by(n).is_empty()));
    }

    #[test]
    fn bad_catalogs_are_refused() {
        let rng = &mut StdRng::seed_from_u64(0);
        assert!(Catalog::generate(0, 10, &all(10), 0.1, Distribution::Uniform, rng).is_err());
        assert!(Catalog::generate(10, 10, &all(10), 0.0, Distribution::Uniform, rng).is_err());
        assert!(Catalog::generate(10, 10, &all(10), 1.5, Distribution::Uniform, rng).is_err());
        assert!(Catalog::generate(10, 10, &all(10), f64::NAN, Distribution::Uniform, rng).is_err());
        assert!(Catalog::generate(10, 10, &[], 0.1, Distribution::Uniform, rng).is_err());
        assert!(Catalog::generate(10, 10, &[10], 0.1, Distribution::Uniform, rng).is_err());
    }
}
