//! Who is connected to whom: the overlay graphs a test network is built on.
//!
//! An unstructured network's search cost depends on its shape. Lv et al.
//! (2002) compared a *random graph*, where every servent has about the same
//! number of neighbours, with a *power-law* graph, where a few hubs have
//! many and most servents few, as crawls of Gnutella showed in 2001. Both
//! are generated here from a seeded RNG, so a seed names one graph.
//!
//! Every graph is connected (a search can reach everyone with a TTL large
//! enough), has no self-loops and no duplicate edges. Nodes are numbered
//! in the order they start, and each edge is dialed by its newer end,
//! so a node only ever dials servents that are already listening.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use rand::seq::SliceRandom;
use rand::Rng;

/// Reshuffles of the left-over half-edges before the random graph gives up
/// on the last few (they would make self-loops or duplicate edges).
const PAIRING_ROUNDS: usize = 20;

/// The kind of graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shape {
    /// Every node has about `degree` neighbours, chosen at random.
    Random,
    /// Barabási–Albert preferential attachment with `degree / 2` edges per
    /// new node: the mean degree is about `degree`, the tail a power law.
    PowerLaw,
}

impl FromStr for Shape {
    type Err = String;

    fn from_str(text: &str) -> Result<Shape, String> {
        match text {
            "random" => Ok(Shape::Random),
            "power-law" => Ok(Shape::PowerLaw),
            other => Err(format!("unknown topology {other:?}: expected random or power-law")),
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Shape::Random => "random",
            Shape::PowerLaw => "power-law",
        })
    }
}

/// An undirected graph on nodes `0..nodes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    /// Each node's neighbours, in increasing order.
    neighbours: Vec<Vec<usize>>,
}

impl Topology {
    /// A two-tier network, as Gnutella's since 2002: the first
    /// `ultrapeers` nodes form a random graph of degree `degree`, and each
    /// other node (a leaf) links to `leaf_links` of them, chosen at random.
    /// Ultrapeers come first, so every leaf dials servents already up.
    pub fn two_tier(
        nodes: usize,
        ultrapeers: usize,
        degree: usize,
        leaf_links: usize,
        rng: &mut impl Rng,
    ) -> Result<Topology, String> {
        if leaf_links > ultrapeers {
            return Err(format!("{leaf_links} links per leaf need as many ultrapeers, not {ultrapeers}"));
        }
        let mut neighbours = Topology::random(ultrapeers, degree.min(ultrapeers - 1), rng)?.neighbours;
        neighbours.resize(nodes.max(ultrapeers), Vec::new());
        for leaf in ultrapeers..nodes {
            for up in rand::seq::index::sample(rng, ultrapeers, leaf_links) {
                neighbours[leaf].push(up);
                neighbours[up].push(leaf);
            }
        }
        neighbours.iter_mut().for_each(|n| n.sort_unstable());
        Ok(Topology { neighbours })
    }

    /// A graph of `shape` on `nodes` nodes with mean degree about `degree`.
    pub fn generate(shape: Shape, nodes: usize, degree: usize, rng: &mut impl Rng) -> Result<Topology, String> {
        match shape {
            Shape::Random => Topology::random(nodes, degree, rng),
            Shape::PowerLaw => Topology::power_law(nodes, degree, rng),
        }
    }

    /// A connected random graph in which every node has `degree`
    /// neighbours, but for a few that end one short.
    ///
    /// A random ring through all nodes makes it connected; the remaining
    /// `degree - 2` half-edges of every node are shuffled and paired, and a
    /// pair that would be a self-loop or a duplicate edge is reshuffled.
    pub fn random(nodes: usize, degree: usize, rng: &mut impl Rng) -> Result<Topology, String> {
        if nodes < 3 {
            return Err(format!("a random graph needs at least 3 nodes, not {nodes}"));
        }
        if degree < 2 || degree >= nodes {
            return Err(format!(
                "a random graph of {nodes} nodes needs a degree from 2 to {}, not {degree}",
                nodes - 1
            ));
        }
        let mut graph = Builder::new(nodes);
        let mut ring: Vec<usize> = (0..nodes).collect();
        ring.shuffle(rng);
        for (i, &node) in ring.iter().enumerate() {
            graph.add(node, ring[(i + 1) % nodes]);
        }
        let mut stubs: Vec<usize> =
            (0..nodes).flat_map(|node| std::iter::repeat_n(node, degree.saturating_sub(graph.degree(node)))).collect();
        for _ in 0..PAIRING_ROUNDS {
            stubs.shuffle(rng);
            let mut left = Vec::new();
            for pair in stubs.chunks(2) {
                match *pair {
                    [a, b] if graph.can_add(a, b) => graph.add(a, b),
                    _ => left.extend_from_slice(pair),
                }
            }
            stubs = left;
            if stubs.len() < 2 {
                break;
            }
        }
        Ok(graph.build())
    }

    /// A Barabási–Albert graph: a clique of `m + 1` nodes, then each new
    /// node links to `m = degree / 2` distinct older nodes chosen with
    /// probability proportional to their degree.
    pub fn power_law(nodes: usize, degree: usize, rng: &mut impl Rng) -> Result<Topology, String> {
        let m = degree / 2;
        if m == 0 {
            return Err(format!("a power-law graph needs a degree of at least 2, not {degree}"));
        }
        if nodes <= m + 1 {
            return Err(format!("a power-law graph of degree {degree} needs more than {} nodes", m + 1));
        }
        let mut graph = Builder::new(nodes);
        // Every edge puts both its ends here once, so a uniform pick from
        // this list picks a node with probability proportional to its degree.
        let mut ends = Vec::new();
        for a in 0..=m {
            for b in a + 1..=m {
                graph.add(a, b);
                ends.extend([a, b]);
            }
        }
        for node in m + 1..nodes {
            let mut targets = BTreeSet::new();
            while targets.len() < m {
                if let Some(&target) = ends.choose(rng) {
                    targets.insert(target);
                }
            }
            for target in targets {
                graph.add(node, target);
                ends.extend([node, target]);
            }
        }
        Ok(graph.build())
    }

    /// How many nodes.
    pub fn nodes(&self) -> usize {
        self.neighbours.len()
    }

    /// How many edges (links between two servents).
    pub fn edges(&self) -> usize {
        self.neighbours.iter().map(Vec::len).sum::<usize>() / 2
    }

    /// The neighbours of `node`, in increasing order.
    pub fn neighbours(&self, node: usize) -> &[usize] {
        &self.neighbours[node]
    }

    /// The neighbours `node` dials at its first start: the older ones.
    pub fn dials(&self, node: usize) -> impl Iterator<Item = usize> + '_ {
        self.neighbours[node].iter().copied().take_while(move |&other| other < node)
    }

    /// The Query descriptors a flood from `origin` with `ttl` sends when
    /// every node is first reached over a shortest path: the origin sends
    /// to all its neighbours, and every node less than `ttl` hops away to
    /// all of its own but the one it heard from. No flood sends more: a
    /// node first reached over a longer path has less TTL left, and
    /// duplicates go no further.
    pub fn flood_bound(&self, origin: usize, ttl: u8) -> u64 {
        let mut hops = vec![usize::MAX; self.nodes()];
        let mut ring = vec![origin];
        hops[origin] = 0;
        let mut sent = self.neighbours[origin].len() as u64;
        for hop in 1..usize::from(ttl) {
            let mut next = Vec::new();
            for &node in &ring {
                for &other in &self.neighbours[node] {
                    if hops[other] == usize::MAX {
                        hops[other] = hop;
                        next.push(other);
                        sent += self.neighbours[other].len() as u64 - 1;
                    }
                }
            }
            ring = next;
        }
        sent
    }

    /// The largest number of neighbours any node has.
    pub fn max_degree(&self) -> usize {
        self.neighbours.iter().map(Vec::len).max().unwrap_or(0)
    }
}

/// A graph under construction; sets keep edges unique.
struct Builder {
    neighbours: Vec<BTreeSet<usize>>,
}

impl Builder {
    fn new(nodes: usize) -> Builder {
        Builder { neighbours: vec![BTreeSet::new(); nodes] }
    }

    fn degree(&self, node: usize) -> usize {
        self.neighbours[node].len()
    }

    fn can_add(&self, a: usize, b: usize) -> bool {
        a != b && !self.neighbours[a].contains(&b)
    }

    fn add(&mut self, a: usize, b: usize) {
        if self.can_add(a, b) {
            self.neighbours[a].insert(b);
            self.neighbours[b].insert(a);
        }
    }

    fn build(self) -> Topology {
        Topology { neighbours: self.neighbours.into_iter().map(|set| set.into_iter().collect()).collect() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn is_connected(graph: &Topology) -> bool {
        let mut seen = vec![false; graph.nodes()];
        let mut stack = vec![0];
        while let Some(node) = stack.pop() {
            if !std::mem::replace(&mut seen[node], true) {
                stack.extend(graph.neighbours(node).iter().copied().filter(|&n| !seen[n]));
            }
        }
        seen.iter().all(|&s| s)
    }

    fn has_no_loops_or_duplicates(graph: &Topology) -> bool {
        (0..graph.nodes()).all(|node| {
            let list = graph.neighbours(node);
            !list.contains(&node)
                && list.windows(2).all(|w| w[0] < w[1])
                && list.iter().all(|&other| graph.neighbours(other).contains(&node))
        })
    }

    #[test]
    fn two_tier_leaves_link_only_to_ultrapeers_which_come_first() {
        let graph = Topology::two_tier(1000, 100, 30, 3, &mut StdRng::seed_from_u64(7)).unwrap();
        assert!(is_connected(&graph) && has_no_loops_or_duplicates(&graph));
        for leaf in 100..1000 {
            assert_eq!(graph.neighbours(leaf).len(), 3);
            assert!(graph.neighbours(leaf).iter().all(|&up| up < 100));
            assert_eq!(graph.dials(leaf).count(), 3, "a leaf dials its ultrapeers");
        }
        let mean = (0..100).map(|up| graph.neighbours(up).iter().filter(|&&n| n < 100).count()).sum::<usize>() / 100;
        assert!((29..=30).contains(&mean), "{mean}");
    }

    #[test]
    fn random_graph_is_connected_and_nearly_regular() {
        let graph = Topology::random(1000, 6, &mut StdRng::seed_from_u64(7)).unwrap();
        assert!(is_connected(&graph));
        assert!(has_no_loops_or_duplicates(&graph));
        assert_eq!(graph.max_degree(), 6);
        let short = (0..1000).filter(|&n| graph.neighbours(n).len() < 6).count();
        assert!(short <= 2, "{short} nodes short of their degree");
        assert!((0..1000).all(|n| graph.neighbours(n).len() >= 5));
    }

    #[test]
    fn power_law_graph_has_hubs_and_a_floor() {
        let graph = Topology::power_law(1000, 6, &mut StdRng::seed_from_u64(7)).unwrap();
        assert!(is_connected(&graph));
        assert!(has_no_loops_or_duplicates(&graph));
        assert!((0..1000).all(|n| graph.neighbours(n).len() >= 3));
        assert!(graph.max_degree() > 30, "no hub: max degree {}", graph.max_degree());
        let mean = 2.0 * graph.edges() as f64 / 1000.0;
        assert!((5.5..=6.0).contains(&mean), "mean degree {mean}");
    }

    #[test]
    fn a_flood_bound_counts_every_node_within_the_ttl_forwarding_to_all_but_its_sender() {
        // A ring of 20 (degree 2): two Queries per hop, one each way.
        let ring = Topology::random(20, 2, &mut StdRng::seed_from_u64(5)).unwrap();
        assert_eq!((0..20).map(|n| ring.neighbours(n).len()).max(), Some(2));
        assert_eq!(ring.flood_bound(3, 5), 10);
        assert_eq!(ring.flood_bound(3, 1), 2);
        // A star: the hub reaches every leaf in one hop; leaves have no one else.
        let star = Topology { neighbours: std::iter::once((1..6).collect()).chain((1..6).map(|_| vec![0])).collect() };
        assert_eq!(star.flood_bound(0, 7), 5);
        assert_eq!(star.flood_bound(1, 1), 1);
        assert_eq!(star.flood_bound(1, 2), 1 + 4);
        // A square 0-1-2-3-0: 2 is first reached over both 1 and 3, once.
        let square = Topology { neighbours: vec![vec![1, 3], vec![0, 2], vec![1, 3], vec![0, 2]] };
        assert_eq!(square.flood_bound(0, 2), 2 + 1 + 1);
        assert_eq!(square.flood_bound(0, 3), 2 + 1 + 1 + 1);
        let big = Topology::random(1000, 6, &mut StdRng::seed_from_u64(7)).unwrap();
        assert!(big.flood_bound(0, 5) > big.flood_bound(0, 4));
        assert!(big.flood_bound(0, 5) <= 6 + 5 * 999);
    }

    #[test]
    fn newer_end_dials() {
        let graph = Topology::random(50, 4, &mut StdRng::seed_from_u64(1)).unwrap();
        let dialed: usize = (0..50).map(|n| graph.dials(n).count()).sum();
        assert_eq!(dialed, graph.edges());
        assert!((0..50).all(|n| graph.dials(n).all(|d| d < n)));
    }

    #[test]
    fn same_seed_same_graph() {
        let one = Topology::random(200, 6, &mut StdRng::seed_from_u64(3)).unwrap();
        let two = Topology::random(200, 6, &mut StdRng::seed_from_u64(3)).unwrap();
        let other = Topology::random(200, 6, &mut StdRng::seed_from_u64(4)).unwrap();
        assert_eq!(one, two);
        assert_ne!(one, other);
    }

    #[test]
    fn impossible_graphs_are_refused() {
        let rng = &mut StdRng::seed_from_u64(0);
        assert!(Topology::random(5, 5, rng).is_err());
        assert!(Topology::random(10, 1, rng).is_err());
        assert!(Topology::random(2, 1, rng).is_err());
        assert!(Topology::power_law(10, 1, rng).is_err());
        assert!(Topology::power_law(4, 6, rng).is_err());
    }
}
