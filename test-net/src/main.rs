//! `test-net`: parses the command line, runs the experiment from the
//! library, and prints the results.

use std::io::{self, Write};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use structopt::StructOpt;
use test_net::experiment::{self, QueryRecord};
use test_net::{flash, report, sim, swarm, tiers, Distribution, Error, Settings, Shape};

/// Counts the heap, so that `--sim` reports its memory per node the same way every run.
#[global_allocator]
static ALLOCATOR: sim::CountingAllocator = sim::CountingAllocator;

/// Many real servents on this machine's loopback addresses: search success,
/// messages per query, duplicates and latency, for flooding and the
/// expanding ring.
#[derive(StructOpt, Debug)]
#[structopt(name = "test-net")]
struct Args {
    /// Servents in the network (each on its own address 127.0.x.y).
    #[structopt(long, default_value = "100")]
    nodes: usize,
    /// Neighbours per node (the mean, for power-law).
    #[structopt(long, default_value = "6")]
    degree: usize,
    /// Graph shape: random or power-law.
    #[structopt(long, default_value = "random")]
    topology: Shape,
    /// The flood's TTL, and the largest ring of the expanding ring.
    #[structopt(long, default_value = "5")]
    ttl: u8,
    /// Files in the catalog.
    #[structopt(long, default_value = "100")]
    catalog: usize,
    /// Mean fraction of nodes holding each file (at least one node does).
    #[structopt(long, default_value = "0.01")]
    replication: f64,
    /// Copies per file: uniform, sqrt or zipf (the latter two with queries by Zipf popularity).
    #[structopt(long, default_value = "uniform")]
    distribution: Distribution,
    /// Queries to ask.
    #[structopt(long, default_value = "100")]
    queries: usize,
    /// Seeds the topology, the catalog, the queries and the churn.
    #[structopt(long, default_value = "1")]
    seed: u64,
    /// Fraction of nodes that leave and rejoin during the run.
    #[structopt(long, default_value = "0")]
    churn: f64,
    /// Nodes that answer every query with fakes; every asker then downloads
    /// its best result and checks it.
    #[structopt(long, default_value = "0")]
    fakes: usize,
    /// After the queries, one node floods searches while some queries are asked again.
    #[structopt(long)]
    flooder: bool,
    /// Flood at each TTL of A..B (inclusive) instead of comparing strategies.
    #[structopt(long, value_name = "A..B", parse(try_from_str = parse_range))]
    sweep_ttl: Option<RangeInclusive<u8>>,
    /// Write summary.json (and, with --sweep-ttl, SVG plots) into this folder.
    #[structopt(long, value_name = "DIR")]
    report: Option<PathBuf>,
    /// One JSON object per query, then the summary object.
    #[structopt(long)]
    json: bool,
    /// The port all nodes listen on.
    #[structopt(long, default_value = "6346")]
    port: u16,
    /// Milliseconds without a Query sent anywhere that end a query.
    #[structopt(long, default_value = "60")]
    quiet_ms: u64,
    /// Simulate: node cores on in-memory links with a virtual clock, one
    /// thread, up to a million nodes; latencies are virtual, wall time and
    /// peak memory go to standard error.
    #[structopt(long)]
    sim: bool,
    /// A flash crowd instead: this many servents download a new signed
    /// release at once from one publisher (and --fakes junk sources), each
    /// with its own caps; prints the publisher's share and completion times.
    /// With --sim, the servents' own swarming rules on a virtual clock.
    #[structopt(long, value_name = "N")]
    flash_crowd: Option<usize>,
    /// The flash crowd's release, in MiB.
    #[structopt(long, value_name = "M", default_value = "8")]
    file_mib: u64,
    /// Each flash-crowd servent's upload cap (the publisher's too), like 512K or 2M.
    #[structopt(long, value_name = "RATE", default_value = "1M", parse(try_from_str = parse_rate))]
    max_upload_rate: u64,
    /// The flash crowd's publisher serves the release as a seed: each chunk
    /// once before any twice.
    #[structopt(long)]
    seed_release: bool,
    /// Each flash-crowd servent's download cap.
    #[structopt(long, value_name = "RATE", default_value = "2M", parse(try_from_str = parse_rate))]
    max_download_rate: u64,
    /// Flood the queries at --ttl on the flat network, then ask them
    /// dynamically from leaves of a two-tier network of as many servents
    /// (10 % ultrapeers of degree 30, leaves with 3 links); messages per
    /// query split by kind (and, with --sim, the QRP tables' memory).
    #[structopt(long)]
    tiers: bool,
}

impl Args {
    fn settings(&self) -> Settings {
        Settings {
            nodes: self.nodes,
            degree: self.degree,
            topology: self.topology,
            ttl: self.ttl,
            catalog: self.catalog,
            replication: self.replication,
            distribution: self.distribution,
            queries: self.queries,
            seed: self.seed,
            churn: self.churn,
            fakes: self.fakes,
            flooder: self.flooder,
            port: self.port,
            quiet: Duration::from_millis(self.quiet_ms),
            sim: self.sim,
        }
    }
}

fn parse_rate(text: &str) -> Result<u64, String> {
    servent::transfer::rate::parse_rate(text)
}

fn parse_range(text: &str) -> Result<RangeInclusive<u8>, String> {
    let (start, end) = text.split_once("..").ok_or_else(|| format!("expected A..B, like 1..7, not {text:?}"))?;
    let number = |s: &str| s.trim().parse::<u8>().map_err(|e| format!("{s:?} in {text:?}: {e}"));
    Ok(number(start)?..=number(end)?)
}

/// One line of `--json` output.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Line<'a> {
    Query {
        #[serde(skip_serializing_if = "Option::is_none")]
        sweep_ttl: Option<u8>,
        #[serde(flatten)]
        record: &'a QueryRecord,
    },
    Summary(&'a experiment::Summary),
    FlashCrowd(&'a flash::FlashSummary),
    Tiers(&'a sim::TierSummary),
    TierQuery {
        strategy: &'a str,
        #[serde(flatten)]
        record: &'a QueryRecord,
    },
    Sweep(&'a experiment::SweepSummary),
}

/// Writes lines to standard output; a closed pipe stops the run.
struct Output {
    json: bool,
    broken: Arc<AtomicBool>,
    cancel: Arc<AtomicBool>,
}

impl Output {
    fn line(&self, line: &Line<'_>) {
        if !self.json {
            return;
        }
        let text = serde_json::to_string(line).unwrap_or_default();
        self.print(&text);
    }

    fn print(&self, text: &str) {
        let mut out = io::stdout().lock();
        if writeln!(out, "{text}").and_then(|()| out.flush()).is_err() {
            self.broken.store(true, Ordering::Relaxed);
            self.cancel.store(true, Ordering::Relaxed);
        }
    }
}

fn main() -> ExitCode {
    let args = Args::from_args();
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    // The first Ctrl-C stops the run cleanly (every servent closes its
    // port); a second one leaves at once.
    let handler = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::Relaxed) {
            std::process::exit(130);
        }
    });
    if let Err(e) = handler {
        eprintln!("test-net: cannot catch Ctrl-C: {e}");
        return ExitCode::FAILURE;
    }
    let output = Output { json: args.json, broken: Arc::new(AtomicBool::new(false)), cancel: cancel.clone() };
    match async_std::task::block_on(try_main(&args, &cancel, &output)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Error::Interrupted) if output.broken.load(Ordering::Relaxed) => ExitCode::SUCCESS,
        Err(Error::Interrupted) => {
            eprintln!("test-net: interrupted; every node stopped");
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("test-net: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn try_main(args: &Args, cancel: &AtomicBool, output: &Output) -> Result<(), Error> {
    if let Some(crowd) = args.flash_crowd {
        let settings = flash::FlashSettings {
            crowd,
            file_mib: args.file_mib,
            fakers: args.fakes,
            upload_rate: args.max_upload_rate,
            download_rate: args.max_download_rate,
            port: args.port,
            seed: args.seed,
            seed_release: args.seed_release,
        };
        let began = Instant::now();
        let summary = match args.sim {
            true => swarm::run(&settings, cancel)?,
            false => flash::run(&settings, cancel).await?,
        };
        if args.json {
            output.line(&Line::FlashCrowd(&summary));
        } else {
            output.print(&summary.to_string());
        }
        if args.sim {
            eprintln!("test-net --flash-crowd --sim: wall time {:.1} s", began.elapsed().as_secs_f64());
        }
        return Ok(());
    }
    let settings = args.settings();
    let began = Instant::now();
    match &args.sweep_ttl {
        _ if args.tiers => {
            let on_query = |strategy: &str, record: &QueryRecord| output.line(&Line::TierQuery { strategy, record });
            let summary = match args.sim {
                true => sim::tiers(&settings, cancel, on_query)?,
                false => tiers::run(&settings, cancel, on_query).await?,
            };
            if args.json {
                output.line(&Line::Tiers(&summary));
            } else {
                output.print(&summary.to_string());
            }
        }
        Some(ttls) => {
            let on_query = |ttl, record: &QueryRecord| output.line(&Line::Query { sweep_ttl: Some(ttl), record });
            let sweep = if args.sim {
                sim::sweep(&settings, ttls.clone(), cancel, on_query)?
            } else {
                experiment::sweep(&settings, ttls.clone(), cancel, on_query).await?
            };
            if let Some(dir) = &args.report {
                report::write_sweep(dir, &sweep)?;
            }
            if args.json {
                output.line(&Line::Sweep(&sweep));
            } else {
                output.print(&sweep.to_string());
            }
        }
        None => {
            let on_query = |record: &QueryRecord| output.line(&Line::Query { sweep_ttl: None, record });
            let summary = if args.sim {
                sim::run(&settings, cancel, on_query)?
            } else {
                experiment::run(&settings, cancel, on_query).await?
            };
            if let Some(dir) = &args.report {
                report::write_summary(dir, &summary)?;
            }
            if args.json {
                output.line(&Line::Summary(&summary));
            } else {
                output.print(&summary.to_string());
            }
        }
    }
    if args.sim {
        // Kept off standard output, which is the same for the same seed.
        let rss = sim::peak_rss_mb().map_or_else(|| "unknown".to_string(), |mb| format!("{mb:.0} MB"));
        eprintln!("test-net --sim: wall time {:.1} s, peak resident memory {rss}", began.elapsed().as_secs_f64());
    }
    Ok(())
}
