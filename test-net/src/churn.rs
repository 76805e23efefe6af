//! Churn: servents leaving and coming back while the network is searched.
//!
//! Stutzbach and Rejaie's crawls of Gnutella ("Understanding Churn in
//! Peer-to-Peer Networks", IMC 2006) found session lengths heavy-tailed:
//! most sessions are short, a few last very long, and a log-normal (or
//! Weibull) fits them better than the exponential that a memoryless model
//! would assume. Downtimes are heavy-tailed too.
//!
//! Here a fraction of the nodes are *churners*. Each one is in a session
//! already when the run starts, leaves at a point drawn uniformly from the
//! first half of the run, stays away for a log-normal downtime, rejoins,
//! stays for a log-normal session, and so on. Time is counted in query
//! steps, not seconds, and every draw comes from the seeded RNG, so a seed
//! decides exactly which node leaves and returns at which query. The
//! medians are scaled to the length of the run (minutes here, where the
//! crawls saw hours), so that every churner leaves at least once and most
//! come back before the end.

use rand::seq::index;
use rand::Rng;

/// The shape of the log-normal session and downtime lengths (the standard
/// deviation of their logarithm): the larger, the heavier the tail.
pub const LOG_NORMAL_SIGMA: f64 = 1.0;
/// The median session, as a fraction of the run's query steps.
pub const MEDIAN_SESSION: f64 = 0.25;
/// The median downtime, as a fraction of the run's query steps.
pub const MEDIAN_DOWNTIME: f64 = 0.1;

/// What happens at one query step.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Step {
    /// Nodes that come back before the step's query is sent.
    pub rejoin: Vec<usize>,
    /// Nodes that leave while the step's first query is under way.
    pub leave: Vec<usize>,
}

/// When every churner leaves and rejoins, step by step.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Schedule {
    steps: Vec<Step>,
}

impl Schedule {
    /// A schedule in which `round(fraction × candidates.len())` of the
    /// `candidates` churn over a run of `steps` query steps.
    pub fn generate(candidates: &[usize], fraction: f64, steps: usize, rng: &mut impl Rng) -> Result<Schedule, String> {
        if !(0.0..=1.0).contains(&fraction) {
            return Err(format!("churn is a fraction of the nodes, from 0 to 1, not {fraction}"));
        }
        let mut schedule = Schedule { steps: vec![Step::default(); steps] };
        let churners = (fraction * candidates.len() as f64).round() as usize;
        if steps == 0 || churners == 0 {
            return Ok(schedule);
        }
        let mut chosen: Vec<usize> =
            index::sample(rng, candidates.len(), churners).into_iter().map(|i| candidates[i]).collect();
        chosen.sort_unstable();
        let median_session = (MEDIAN_SESSION * steps as f64).max(1.0);
        let median_downtime = (MEDIAN_DOWNTIME * steps as f64).max(1.0);
        for node in chosen {
            let mut leave = rng.gen_range(0..steps.div_ceil(2));
            loop {
                schedule.steps[leave].leave.push(node);
                let rejoin = leave + log_normal_steps(rng, median_downtime);
                if rejoin >= steps {
                    break;
                }
                schedule.steps[rejoin].rejoin.push(node);
                leave = rejoin + log_normal_steps(rng, median_session);
                if leave >= steps {
                    break;
                }
            }
        }
        Ok(schedule)
    }

    /// What happens at `step` (nothing past the end).
    pub fn step(&self, step: usize) -> Option<&Step> {
        self.steps.get(step)
    }

    /// Departures over the whole run.
    pub fn departures(&self) -> usize {
        self.steps.iter().map(|s| s.leave.len()).sum()
    }

    /// Returns over the whole run.
    pub fn returns(&self) -> usize {
        self.steps.iter().map(|s| s.rejoin.len()).sum()
    }
}

/// A log-normal length with this median, in whole steps, at least one.
fn log_normal_steps(rng: &mut impl Rng, median: f64) -> usize {
    // Box–Muller: two uniforms make one standard normal.
    let u1: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
    let u2: f64 = rng.gen();
    let normal = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    let length = median * (LOG_NORMAL_SIGMA * normal).exp();
    // Beyond any run's length the exact value does not matter.
    length.round().clamp(1.0, 1e9) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn churners_leave_before_they_rejoin_and_never_twice_in_a_row() {
        let nodes: Vec<usize> = (0..200).collect();
        let schedule = Schedule::generate(&nodes, 0.3, 500, &mut StdRng::seed_from_u64(7)).unwrap();
        let mut away = std::collections::HashSet::new();
        let mut churners = std::collections::HashSet::new();
        for step in 0..500 {
            let step = schedule.step(step).unwrap();
            for node in &step.rejoin {
                assert!(away.remove(node), "node {node} rejoins without having left");
            }
            for node in &step.leave {
                assert!(away.insert(*node), "node {node} leaves twice");
                churners.insert(*node);
            }
        }
        assert_eq!(churners.len(), 60);
        assert!(schedule.returns() >= 30, "{} returns", schedule.returns());
        assert!(schedule.departures() > 60, "nobody left twice");
    }

    #[test]
    fn session_lengths_are_heavy_tailed() {
        let rng = &mut StdRng::seed_from_u64(1);
        let mut lengths: Vec<usize> = (0..10_000).map(|_| log_normal_steps(rng, 100.0)).collect();
        lengths.sort_unstable();
        let median = lengths[5000];
        assert!((90..=110).contains(&median), "median {median}");
        // A log-normal with sigma 1 puts its 99th percentile ten times above
        // its median; an exponential with that median only at 6.6.
        assert!(lengths[9900] > 8 * median, "99th percentile {}", lengths[9900]);
    }

    #[test]
    fn only_candidates_churn_and_bad_fractions_are_refused() {
        let rng = &mut StdRng::seed_from_u64(2);
        let schedule = Schedule::generate(&[3, 5, 8], 1.0, 10, rng).unwrap();
        for step in 0..10 {
            assert!(schedule.step(step).unwrap().leave.iter().all(|n| [3, 5, 8].contains(n)));
        }
        assert!(Schedule::generate(&[1], 1.5, 10, rng).is_err());
        assert!(Schedule::generate(&[1], f64::NAN, 10, rng).is_err());
        assert_eq!(Schedule::generate(&[1, 2], 0.0, 10, rng).unwrap().departures(), 0);
    }
}
