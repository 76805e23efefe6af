//! A flash crowd in the simulator (`--flash-crowd N --sim`): the same
//! experiment as [`crate::flash`], up to [`MAX_SIM_CROWD`] downloaders, on a
//! virtual clock in one thread.
//!
//! Each downloader runs the servent's own chunk [`Plan`] (rarest first,
//! random among equals, the end game, stealing from slow sources, parking
//! busy ones); each uploader its own slot rule ([`upload_slots`] under its
//! cap) and, for a seeded publisher, its own [`SuperSeed`]. What the
//! servents' I/O does is modelled: a source says what it has (its checked
//! chunks, as `X-Available-Ranges`) whenever it is asked; an uploader names
//! up to [`ALT_PER_ANSWER`] of the latest [`MAX_SWARM_PER_URN`] downloaders
//! that asked it (`X-Alt`); a busy one sends the asker away for
//! [`SWARM_RETRY_AFTER`]. Bandwidth: every step each transfer moves its
//! share of its uploader's cap (split evenly over its uploads) or of its
//! downloader's (split evenly over its downloads), whichever is less;
//! fakers send junk at any rate, and each junk chunk fails the tree check
//! when it lands, which drops the faker as corrupt. Latency and request
//! overhead are not modelled. The reference is one download alone, from
//! the publisher, simulated the same way.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use servent::transfer::download::plan::{Completion, DropReason, Next, Plan, Tuning, PARTIAL_RECHECK};
use servent::transfer::download::MAX_SOURCES_PER_DOWNLOAD;
use servent::transfer::partial::{RangeSet, MAX_SWARM_PER_URN, SWARM_RETRY_AFTER};
use servent::transfer::rate::upload_slots;
use servent::transfer::seed::SuperSeed;
use servent::transfer::upload::UploadConfig;

use crate::flash::{Counts, FlashSettings, FlashSummary, Requests, GIVE_UP_RATIO, MAX_FILE_MIB};
use crate::Error;

/// The largest simulated crowd.
pub const MAX_SIM_CROWD: usize = 100_000;
/// Sources an uploader names in one answer, as uploads do in `X-Alt`.
pub const ALT_PER_ANSWER: usize = 10;
/// The virtual time one step moves.
const STEP: Duration = Duration::from_millis(20);

/// Checks the bounds of a simulated run.
pub fn validate(settings: &FlashSettings) -> Result<(), Error> {
    let bad = |message: String| Err(Error::Settings(message));
    if settings.crowd == 0 || settings.crowd > MAX_SIM_CROWD {
        return bad(format!("--flash-crowd with --sim must be from 1 to {MAX_SIM_CROWD}, not {}", settings.crowd));
    }
    if settings.file_mib == 0 || settings.file_mib > MAX_FILE_MIB {
        return bad(format!("--file-mib must be from 1 to {MAX_FILE_MIB}, not {}", settings.file_mib));
    }
    if settings.upload_rate == 0 || settings.download_rate == 0 {
        return bad("a flash crowd needs both caps: --max-upload-rate and --max-download-rate above 0".into());
    }
    Ok(())
}

/// Runs the simulated flash crowd: the reference download alone, then the crowd.
pub fn run(settings: &FlashSettings, cancel: &AtomicBool) -> Result<FlashSummary, Error> {
    validate(settings)?;
    let alone = FlashSettings { crowd: 1, fakers: 0, ..settings.clone() };
    let single = Swarm::new(&alone).run(Duration::MAX, cancel)?;
    let single_secs = single.finished.first().copied().flatten().ok_or(Error::Timeout("the single download".into()))?;
    let single_secs = single_secs.as_secs_f64();
    let give_up = Duration::from_secs_f64(single_secs * f64::from(GIVE_UP_RATIO));
    let crowd = Swarm::new(settings).run(give_up, cancel)?;
    let mut times: Vec<f64> =
        crowd.finished.iter().map(|done| done.map_or(give_up.as_secs_f64(), |t| t.as_secs_f64())).collect();
    times.sort_by(f64::total_cmp);
    let verified = crowd.finished.iter().filter(|done| done.is_some()).count();
    let counts = Counts {
        publisher_bytes: crowd.publisher_bytes,
        crowd_bytes: crowd.crowd_bytes,
        faker_bytes: crowd.junk_bytes,
        // Every chunk kept matched the tree: a copy is verified once whole.
        verified,
        fakes: 0,
        failed: settings.crowd - verified,
        requests: crowd.requests,
    };
    Ok(FlashSummary::new(settings, single_secs, &times, counts))
}

/// One servent of the simulation.
struct Node {
    /// A downloader's plan; `None` for the publisher and the fakers.
    plan: Option<Plan>,
    /// The publisher's seeding rule, with `--seed-release`.
    seed: Option<SuperSeed>,
    faker: bool,
    /// The latest downloaders that asked it, newest last.
    swarm: VecDeque<usize>,
    uploads: usize,
    downloads: usize,
    /// The sources it fetches from now.
    fetching: Vec<usize>,
    /// When it looks for work again.
    wake: Duration,
    finished: Option<Duration>,
    sent: u64,
}

struct Transfer {
    from: usize,
    to: usize,
    chunk: usize,
    len: u64,
    received: f64,
}

/// What a simulated run measured.
struct Outcome {
    /// Each downloader's completion time, if it completed.
    finished: Vec<Option<Duration>>,
    publisher_bytes: u64,
    crowd_bytes: u64,
    junk_bytes: u64,
    requests: Requests,
}

struct Swarm {
    nodes: Vec<Node>,
    transfers: Vec<Transfer>,
    /// Node 0 is the publisher, then the fakers, then the crowd.
    first_downloader: usize,
    upload_rate: f64,
    download_rate: f64,
    slots: usize,
    rng: StdRng,
    /// The virtual clock's origin: the plans read `Instant`s.
    epoch: Instant,
    junk: u64,
    /// Requests to honest servents: each that found a chunk to fetch (or
    /// no slot for it), or nothing the asker needs.
    requests: Requests,
}

fn addr(node: usize) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::from(0x0A00_0000 + node as u32), 6346)
}

fn node_of(addr: SocketAddrV4) -> usize {
    (u32::from(*addr.ip()) - 0x0A00_0000) as usize
}

impl Swarm {
    fn new(settings: &FlashSettings) -> Swarm {
        let size = settings.file_mib << 20;
        let mut rng = StdRng::seed_from_u64(settings.seed);
        let first_downloader = 1 + settings.fakers;
        let node = |plan, seed, faker| Node {
            plan,
            seed,
            faker,
            swarm: VecDeque::new(),
            uploads: 0,
            downloads: 0,
            fetching: Vec::new(),
            wake: Duration::ZERO,
            finished: None,
            sent: 0,
        };
        let mut nodes = vec![node(None, settings.seed_release.then(|| SuperSeed::new(size)), false)];
        nodes.extend((0..settings.fakers).map(|_| node(None, None, true)));
        for _ in 0..settings.crowd {
            let mut plan = Plan::new(size, Tuning::default());
            plan.seed(rng.gen());
            // What a search returns: the publisher and the fakers.
            for source in 0..first_downloader {
                plan.add_source(addr(source));
            }
            nodes.push(node(Some(plan), None, false));
        }
        Swarm {
            nodes,
            transfers: Vec::new(),
            first_downloader,
            upload_rate: settings.upload_rate as f64,
            download_rate: settings.download_rate as f64,
            slots: upload_slots(UploadConfig::default().slots, settings.upload_rate),
            rng,
            epoch: Instant::now(),
            junk: 0,
            requests: Requests::default(),
        }
    }

    fn run(mut self, give_up: Duration, cancel: &AtomicBool) -> Result<Outcome, Error> {
        let mut now = Duration::ZERO;
        let mut left = self.nodes.len() - self.first_downloader;
        while left > 0 && now < give_up {
            if cancel.load(Ordering::Relaxed) {
                return Err(Error::Interrupted);
            }
            for node in self.first_downloader..self.nodes.len() {
                if self.nodes[node].finished.is_none() && self.nodes[node].wake <= now {
                    self.look_for_work(node, now);
                }
            }
            now += STEP;
            left -= self.move_bytes(now);
        }
        let downloaders = &self.nodes[self.first_downloader..];
        Ok(Outcome {
            finished: downloaders.iter().map(|n| n.finished).collect(),
            publisher_bytes: self.nodes[0].sent,
            crowd_bytes: downloaders.iter().map(|n| n.sent).sum(),
            junk_bytes: self.junk,
            requests: self.requests,
        })
    }

    /// What `node` says it has: `None` for the whole file.
    fn available(&self, node: usize) -> Option<RangeSet> {
        let n = &self.nodes[node];
        match (&n.plan, &n.seed) {
            (Some(plan), _) => {
                let mut ranges = RangeSet::new();
                for (start, end) in plan.done_ranges() {
                    ranges.insert(start, end);
                }
                Some(ranges)
            }
            (None, Some(seed)) => Some(seed.offered()),
            (None, None) => None,
        }
    }

    /// A downloader asks its sources for chunks, as its workers would.
    fn look_for_work(&mut self, node: usize, now: Duration) {
        let at = self.epoch + now;
        let candidates = self.nodes[node].plan.as_mut().map(|p| p.candidates(at)).unwrap_or_default();
        for source in candidates {
            if self.nodes[node].fetching.len() >= MAX_SOURCES_PER_DOWNLOAD {
                break;
            }
            let uploader = node_of(source);
            if self.nodes[node].fetching.contains(&uploader) {
                continue;
            }
            let available = self.available(uploader);
            self.learn_from(uploader, node);
            let faker = self.nodes[uploader].faker;
            let has_slot = faker || self.nodes[uploader].uploads < self.slots;
            let Some(plan) = self.nodes[node].plan.as_mut() else { return };
            plan.set_available(source, available);
            let honest = u64::from(!faker);
            let chunk = match plan.next_for(source, at) {
                Next::Fetch(chunk) => chunk,
                // A usable source is parked only when it had nothing we need.
                Next::Parked(_) => {
                    self.requests.answered += honest;
                    self.requests.unavailable += honest;
                    continue;
                }
                _ => continue,
            };
            self.requests.answered += honest;
            if !has_slot {
                self.requests.busy += honest;
                plan.busy(source, at + SWARM_RETRY_AFTER, at);
                continue;
            }
            if let Some(seed) = self.nodes[uploader].seed.as_mut() {
                seed.record(chunk.start, chunk.end);
            }
            self.nodes[uploader].uploads += 1;
            self.nodes[node].downloads += 1;
            self.nodes[node].fetching.push(uploader);
            self.transfers.push(Transfer {
                from: uploader,
                to: node,
                chunk: chunk.index,
                len: chunk.len(),
                received: 0.0,
            });
        }
        let plan = self.nodes[node].plan.as_ref();
        let unpark = plan.and_then(|p| p.next_unpark()).map(|t| t.saturating_duration_since(self.epoch));
        self.nodes[node].wake = (now + PARTIAL_RECHECK).min(unpark.unwrap_or(Duration::MAX)).max(now + STEP);
    }

    /// The uploader keeps the asker in its swarm and names others to it.
    fn learn_from(&mut self, uploader: usize, asker: usize) {
        let swarm = &mut self.nodes[uploader].swarm;
        swarm.retain(|&n| n != asker);
        swarm.push_back(asker);
        if swarm.len() > MAX_SWARM_PER_URN {
            swarm.pop_front();
        }
        let others: Vec<usize> = swarm.iter().copied().filter(|&n| n != asker).collect();
        for _ in 0..ALT_PER_ANSWER.min(others.len()) {
            let named = others[self.rng.gen_range(0..others.len())];
            if let Some(plan) = self.nodes[asker].plan.as_mut() {
                plan.add_source(addr(named));
            }
        }
    }

    /// Moves one step's bytes; returns how many downloads completed.
    fn move_bytes(&mut self, now: Duration) -> usize {
        let at = self.epoch + now;
        let step = STEP.as_secs_f64();
        let mut landed = Vec::new();
        for (index, t) in self.transfers.iter_mut().enumerate() {
            let (from, to) = (&self.nodes[t.from], &self.nodes[t.to]);
            let up = if from.faker { f64::INFINITY } else { self.upload_rate / from.uploads as f64 };
            let rate = up.min(self.download_rate / to.downloads as f64);
            let received = (t.received + rate * step).min(t.len as f64);
            let moved = received as u64 - t.received as u64;
            t.received = received;
            if !self.nodes[t.from].faker {
                self.nodes[t.from].sent += moved;
            }
            if let Some(plan) = self.nodes[t.to].plan.as_mut() {
                plan.progress(addr(t.from), t.chunk, received as u64, at);
            }
            if received >= t.len as f64 {
                landed.push(index);
            }
        }
        let mut ended = vec![false; self.transfers.len()];
        let mut completed = 0;
        for index in landed {
            if ended[index] {
                continue; // revoked by a chunk that landed first
            }
            ended[index] = true;
            let Transfer { from, to, chunk, len, .. } = self.transfers[index];
            let faker = self.nodes[from].faker;
            let Some(plan) = self.nodes[to].plan.as_mut() else { continue };
            if faker {
                // The junk fails the tree check: the faker is dropped.
                self.junk += len;
                plan.drop_source(addr(from), DropReason::Corrupt);
            } else if let Completion::Accepted { revoked } = plan.complete(addr(from), chunk, at) {
                for other in revoked.into_iter().map(node_of) {
                    let same = |t: &Transfer| t.from == other && t.to == to && t.chunk == chunk;
                    if let Some(i) = self.transfers.iter().position(same) {
                        ended[i] = true;
                    }
                }
            }
            let node = &mut self.nodes[to];
            node.wake = now;
            if node.finished.is_none() && node.plan.as_ref().is_some_and(Plan::is_complete) {
                node.finished = Some(now);
                completed += 1;
            }
        }
        for (t, _) in self.transfers.iter().zip(&ended).filter(|(_, &ended)| ended) {
            self.nodes[t.from].uploads -= 1;
            self.nodes[t.to].downloads -= 1;
            self.nodes[t.to].fetching.retain(|&n| n != t.from);
        }
        let mut ended = ended.into_iter();
        self.transfers.retain(|_| !ended.next().unwrap_or(false));
        completed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(crowd: usize, fakers: usize, seed_release: bool) -> FlashSettings {
        FlashSettings {
            crowd,
            file_mib: 2,
            fakers,
            upload_rate: 1 << 20,
            download_rate: 2 << 20,
            port: 6346,
            seed: 7,
            seed_release,
        }
    }

    #[test]
    fn a_simulated_crowd_gets_its_copies_from_itself_and_drops_the_fakers() {
        let cancel = AtomicBool::new(false);
        let summary = run(&settings(200, 5, true), &cancel).unwrap();
        assert_eq!((summary.copies_verified, summary.downloads_failed), (200, 0), "{summary}");
        // One download alone: 2 MiB at 1 MiB/s.
        assert!((summary.single_download_secs - 2.0).abs() < 0.1, "{summary}");
        assert!(summary.publisher_upload_share < 0.1, "{summary}");
        assert!(summary.completion_max_ratio < 10.0, "{summary}");
        // Each downloader took one junk chunk at most from each faker.
        assert!(summary.faker_bytes <= 200 * 5 * (256 << 10), "{summary}");
        assert_eq!(summary, run(&settings(200, 5, true), &cancel).unwrap(), "the same seed, the same run");
    }

    #[test]
    fn a_crowd_of_a_thousand_replaces_the_sources_that_had_nothing_with_newly_named_ones() {
        // With a table of the first 64 names kept for good, as before, the
        // last of them took 12.3 single-download times, the median 9.3.
        let summary = run(&settings(1000, 5, true), &AtomicBool::new(false)).unwrap();
        assert_eq!(summary.copies_verified, 1000, "{summary}");
        assert!(summary.completion_max_ratio < 8.0, "{summary}");
    }

    #[test]
    fn the_simulated_crowd_is_bounded() {
        assert!(validate(&settings(MAX_SIM_CROWD + 1, 0, false)).is_err());
        assert!(validate(&settings(MAX_SIM_CROWD, 0, false)).is_ok());
    }
}
