//! The `servent` command line: `run` starts a servent, `demo` tells the
//! story on loopback; every other command is a thin client of a running
//! servent's local JSON API.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use structopt::StructOpt;

use crate::api::ApiToken;
use crate::config::{self, Config};
use crate::configfile;
use crate::keysource;
use crate::peeraddr::PeerAddr;
use crate::transfer::browse::BROWSE_TIMEOUT;
use crate::transfer::rate::{self, Rates};
use crate::transfer::upload::UploadConfig;
use crate::updater;

/// A Gnutella 0.6 servent: share folders, search the network, download.
#[derive(Debug, StructOpt)]
// Commands listed in the order below: the demo first, then `run`.
#[structopt(name = "servent", setting = structopt::clap::AppSettings::DeriveDisplayOrder)]
pub enum Command {
    /// Shows the whole SEBLINUX story on this machine: a publisher, two
    /// members, a faker and your servent on loopback, narrated step by step,
    /// with your servent's page to explore (its address is printed).
    Demo {
        /// Exit once the story is told (0 only if every step happened)
        /// instead of staying up until Ctrl-C.
        #[structopt(long)]
        once: bool,
        /// One JSON object per step: `step`, `ok`, `detail`.
        #[structopt(long)]
        json: bool,
    },
    /// Joins the network, shares folders, and serves the local API.
    Run(Box<RunArgs>),
    /// Searches the network by keywords or by `urn:sha1:`/`urn:sha256:`;
    /// numbers the results, which `get N` then takes by number.
    Search {
        // structopt refuses doc comments on flattened fields.
        #[allow(missing_docs)]
        #[structopt(flatten)]
        api: ApiArgs,
        /// Seconds to gather results before printing them.
        #[structopt(long, default_value = "3")]
        wait: f64,
        /// Flood the query this far, in hops (1 to 7), instead of letting
        /// the network widen it until enough results come (experts only).
        #[structopt(long, parse(try_from_str = parse_ttl))]
        ttl: Option<u8>,
        /// One JSON object per line.
        #[structopt(long)]
        json: bool,
        /// Words that every result must have, or one URN.
        #[structopt(required = true)]
        keywords: Vec<String>,
    },
    /// Downloads a file by URN, magnet link, number in the last search
    /// (`get 3`) or name among its verified results, from every source at
    /// once; it lands checked in the downloads folder.
    Get {
        // structopt refuses doc comments on flattened fields.
        #[allow(missing_docs)]
        #[structopt(flatten)]
        api: ApiArgs,
        /// Return only once the file is complete and checked (or has failed or stalled).
        #[structopt(long)]
        wait: bool,
        /// One JSON object per line instead of a progress bar: with --wait,
        /// a line (id, name, state, bytes_done, size) each time the download
        /// moves on, then the whole download once it has ended.
        #[structopt(long)]
        json: bool,
        /// Keep the file only if it is verified under a trusted publisher key.
        #[structopt(long)]
        require_verified: bool,
        /// A `urn:sha1:…`, `urn:sha256:…`, `magnet:?…`, the number of a
        /// result of the last `servent search`, or the name of one of its
        /// verified results.
        target: String,
    },
    /// Pauses a download, keeping its partial data.
    Pause(DownloadArgs),
    /// Resumes a paused download.
    Resume(DownloadArgs),
    /// Cancels a download and deletes its partial data.
    Cancel(DownloadArgs),
    /// Lists downloads: id, state, verdict on the bytes once checked, bytes done, rate, sources.
    Downloads(ListArgs),
    /// Lists the connected peers: their address, messages received, dropped and sent.
    Peers(ListArgs),
    /// Connects a running servent to another servent.
    Peer(PeerCommand),
    /// Shares one more folder from a running servent, or lists the shared folders.
    Share(ShareCommand),
    /// Lists the shared files.
    Library(ListArgs),
    /// Lists another servent's shared files with their verdicts (browse
    /// host), numbered: `get N` then downloads one.
    Browse {
        // structopt refuses doc comments on flattened fields.
        #[allow(missing_docs)]
        #[structopt(flatten)]
        api: ApiArgs,
        /// One JSON object per line.
        #[structopt(long)]
        json: bool,
        /// The servent to browse, as IP:PORT.
        addr: SocketAddr,
    },
    /// Shows the servent's address, peers and counters.
    Status(ListArgs),
    /// Pins, lists or unpins publisher keys.
    Trust(TrustCommand),
    /// Installs the newest verified release of a package into the install directory.
    Install {
        // structopt refuses doc comments on flattened fields.
        #[allow(missing_docs)]
        #[structopt(flatten)]
        api: ApiArgs,
        /// Say what would be installed, and change nothing.
        #[structopt(long)]
        dry_run: bool,
        /// One JSON object.
        #[structopt(long)]
        json: bool,
        /// The release name, as signed (e.g. SEBLINUX-base).
        name: String,
    },
    /// Shows the updater; with --once, runs an update pass now.
    Update {
        // structopt refuses doc comments on flattened fields.
        #[allow(missing_docs)]
        #[structopt(flatten)]
        api: ApiArgs,
        /// Run one pass now over every installed package.
        #[structopt(long)]
        once: bool,
        /// Say what the pass would change, and change nothing.
        #[structopt(long)]
        dry_run: bool,
        /// One JSON object per line.
        #[structopt(long)]
        json: bool,
    },
    /// Puts the previous version of an installed package back.
    Rollback {
        // structopt refuses doc comments on flattened fields.
        #[allow(missing_docs)]
        #[structopt(flatten)]
        api: ApiArgs,
        /// One JSON object.
        #[structopt(long)]
        json: bool,
        /// The package name.
        name: String,
    },
    /// Removes an installed package (its file, its signature and the
    /// previous version kept), which is then no longer shared.
    Uninstall {
        // structopt refuses doc comments on flattened fields.
        #[allow(missing_docs)]
        #[structopt(flatten)]
        api: ApiArgs,
        /// One JSON object.
        #[structopt(long)]
        json: bool,
        /// The package name.
        name: String,
    },
}

/// `servent peer …`.
#[derive(Debug, StructOpt)]
pub enum PeerCommand {
    /// Connects to a servent at IP:PORT or HOST:PORT now, and keeps it among
    /// the addresses to try.
    Add {
        // structopt refuses doc comments on flattened fields.
        #[allow(missing_docs)]
        #[structopt(flatten)]
        api: ApiArgs,
        /// IP:PORT or HOST:PORT.
        addr: String,
    },
}

/// `servent share …`.
#[derive(Debug, StructOpt)]
pub enum ShareCommand {
    /// Shares a folder (and its subfolders) from now on, while the servent
    /// runs: its files are indexed and answered at once. `--share` (or
    /// `shares` in servent.toml) keeps it shared across restarts.
    Add {
        // structopt refuses doc comments on flattened fields.
        #[allow(missing_docs)]
        #[structopt(flatten)]
        api: ApiArgs,
        /// The folder, relative to where you run the command or absolute.
        dir: PathBuf,
    },
    /// Lists the shared folders.
    List(ListArgs),
}

/// `servent trust …`.
#[derive(Debug, StructOpt)]
pub enum TrustCommand {
    /// Pins a publisher key: a `.pub` file, an `RW…` line, or the https URL
    /// of a page showing it, optionally followed by `#SCOPE,…`.
    Add {
        // structopt refuses doc comments on flattened fields.
        #[allow(missing_docs)]
        #[structopt(flatten)]
        api: ApiArgs,
        /// A package name the key may publish, exact or a prefix ending in `*`
        /// (`SEBLINUX-extras*`; repeatable); none: any name no other key's scope claims.
        #[structopt(long)]
        scope: Vec<String>,
        /// The key: a `.pub` file (read here, where you run the command), its
        /// `RW…` line, or an https:// page showing it.
        key: String,
    },
    /// Lists the pinned keys.
    List(ListArgs),
    /// Unpins a key by its id (16 hex digits, as `trust list` shows).
    Remove {
        // structopt refuses doc comments on flattened fields.
        #[allow(missing_docs)]
        #[structopt(flatten)]
        api: ApiArgs,
        /// The key id.
        key_id: String,
    },
}

// No doc comment: structopt would show it as the help of every command
// that flattens these arguments.
#[allow(missing_docs)]
#[derive(Debug, StructOpt)]
pub struct ApiArgs {
    /// The API address of the running servent.
    #[structopt(long, default_value = "127.0.0.1:6347")]
    pub api: SocketAddr,
    /// The token that servent was started with (`run --api-token`), if any.
    #[structopt(long, env = "SERVENT_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,
}

// No doc comment: structopt would show it as the help of the listing commands.
#[allow(missing_docs)]
#[derive(Debug, StructOpt)]
pub struct ListArgs {
    #[structopt(flatten)]
    api: ApiArgs,
    /// One JSON object per line.
    #[structopt(long)]
    json: bool,
}

// No doc comment: structopt would show it as the help of `run`.
#[allow(missing_docs)]
#[derive(Debug, StructOpt)]
pub struct RunArgs {
    /// A config file whose keys are these flags without their dashes; flags
    /// given here override it [default: ~/.config/servent/servent.toml, if it exists].
    #[structopt(long, parse(from_os_str), value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where the index, host cache and downloads live [default: ~/.local/share/servent].
    #[structopt(long, parse(from_os_str))]
    pub data_dir: Option<PathBuf>,
    /// The Gnutella (and HTTP) address to listen on.
    #[structopt(long, default_value = "0.0.0.0:6346")]
    pub listen: SocketAddr,
    /// The local API and page address (loopback, unless --api-token is given).
    #[structopt(long, default_value = "127.0.0.1:6347")]
    pub api: SocketAddr,
    /// A secret every API request must carry (`Authorization: Bearer TOKEN`;
    /// the page takes it once as `?token=`). Required for an --api off loopback.
    #[structopt(long, env = "SERVENT_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,
    /// A folder to share (repeatable).
    #[structopt(long, parse(from_os_str))]
    pub share: Vec<PathBuf>,
    /// Where finished downloads land [default: `<data-dir>/downloads`]; shared.
    #[structopt(long, parse(from_os_str))]
    pub downloads: Option<PathBuf>,
    /// A servent to connect to, IP:PORT or HOST:PORT (repeatable; a name is
    /// looked up again and again, less often while it fails).
    #[structopt(long, parse(try_from_str = PeerAddr::parse))]
    pub peer: Vec<PeerAddr>,
    /// Uploads served at once; more get 503 with Retry-After.
    #[structopt(long, default_value = "8")]
    pub upload_slots: usize,
    /// Bytes per second all uploads share, like 512K or 2M (0: unlimited).
    #[structopt(long, default_value = "0", value_name = "RATE", parse(try_from_str = rate::parse_rate))]
    pub max_upload_rate: u64,
    /// Bytes per second all downloads share, like 512K or 2M (0: unlimited).
    #[structopt(long, default_value = "0", value_name = "RATE", parse(try_from_str = rate::parse_rate))]
    pub max_download_rate: u64,
    /// A shared file to serve as a seed: each chunk once to the swarm before
    /// any twice, so downloaders fetch the rest from each other (repeatable).
    #[structopt(long, parse(from_os_str), value_name = "FILE")]
    pub seed_release: Vec<PathBuf>,
    /// Ultrapeer links to keep (a leaf keeps 4 at most).
    #[structopt(long, default_value = "16")]
    pub max_peers: usize,
    /// The part to play: auto (a leaf promoted to ultrapeer when able), ultrapeer or leaf.
    #[structopt(long, default_value = "auto")]
    pub mode: config::Mode,
    /// Leaves an ultrapeer shelters besides its ultrapeer links.
    #[structopt(long, default_value = "30")]
    pub max_leaves: usize,
    /// A GWebCache URL to ask for hosts when none is known (repeatable).
    #[structopt(long)]
    pub gwebcache: Vec<String>,
    /// A UDP host cache to ask for hosts when none is known, HOST:PORT or
    /// IP:PORT (repeatable), besides the bootstrap list in the data directory.
    #[structopt(long, parse(try_from_str = PeerAddr::parse), value_name = "HOST:PORT")]
    pub uhc: Vec<PeerAddr>,
    /// The highest TTL + hops routed.
    #[structopt(long, default_value = "7")]
    pub max_ttl: u8,
    /// Never compress Gnutella links.
    #[structopt(long)]
    pub no_deflate: bool,
    /// Connect only to the peers given with --peer, not to hosts learned from the network.
    #[structopt(long)]
    pub no_discovery: bool,
    /// What the log shows: error, warn, info or debug [default: info, or the
    /// RUST_LOG filter (`servent=debug,tide=info`) when that is set].
    #[structopt(long, value_name = "LEVEL", possible_values = &["error", "warn", "info", "debug"])]
    pub log_level: Option<String>,
    /// Also dial loopback and private addresses learned from the network (test networks on one machine).
    #[structopt(long)]
    pub dial_local: bool,
    /// A publisher key to pin: a `.pub` file, an `RW…` line or the https URL
    /// of a page showing it, optionally followed by `#SCOPE,…` (repeatable).
    #[structopt(long)]
    pub trust: Vec<String>,
    /// Where releases are installed, and shared from [default: `<data-dir>/installed`].
    #[structopt(long, parse(from_os_str))]
    pub install_dir: Option<PathBuf>,
    /// Run an update pass every this many minutes (1 to 43200); without it,
    /// passes run only on request (`servent update --once`).
    #[structopt(long, value_name = "MINUTES")]
    pub update_every: Option<u64>,
    /// A shell command run on each staged release before it goes into place
    /// (SERVENT_NAME, SERVENT_VERSION, SERVENT_PATH, SERVENT_PREVIOUS_VERSION
    /// set); failure, a hang or a crash keeps the previous version.
    #[structopt(long, value_name = "CMD")]
    pub post_install: Option<String>,
    /// Seconds an update pass or install gathers search results for each
    /// package [default: 10]; shorter on a small or local network.
    #[structopt(long, value_name = "SECONDS")]
    pub update_search_wait: Option<f64>,
}

// No doc comment: structopt would show it as the help of the command.
#[allow(missing_docs)]
#[derive(Debug, StructOpt)]
pub struct DownloadArgs {
    #[structopt(flatten)]
    api: ApiArgs,
    /// The download's id, as `servent downloads` lists it.
    id: u64,
}

/// The longest `--update-every`: 30 days, in minutes.
const MAX_UPDATE_EVERY_MINUTES: u64 = 30 * 24 * 60;

/// Whether `url` is an http:// or https:// address with a host.
fn is_web_address(url: &str) -> bool {
    surf::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
}

/// A search's `--ttl`: 1 to the default maximum of hops.
fn parse_ttl(text: &str) -> Result<u8, String> {
    let max = crate::routing::DEFAULT_MAX_TTL;
    match text.parse::<u8>() {
        Ok(ttl) if (1..=max).contains(&ttl) => Ok(ttl),
        _ => Err(format!("{text:?} is not a TTL: a number of hops from 1 to {max}")),
    }
}

/// The longest `--update-search-wait`.
const MAX_UPDATE_SEARCH_WAIT: Duration = Duration::from_secs(600);

impl RunArgs {
    /// The `--peer`s given by host name, which the node looks up.
    pub fn peer_names(&self) -> impl Iterator<Item = &PeerAddr> {
        self.peer.iter().filter(|p| matches!(p, PeerAddr::Name(..)))
    }

    /// The servent configuration these arguments describe (`--peer`s
    /// given by name in `peer_names`, looked up by the node).
    pub fn config(&self) -> Result<Config, String> {
        if self.share.iter().any(|s| !s.is_dir()) {
            let missing: Vec<String> =
                self.share.iter().filter(|s| !s.is_dir()).map(|s| s.display().to_string()).collect();
            return Err(format!("not a folder: {}", missing.join(", ")));
        }
        if !(1..=15).contains(&self.max_ttl) {
            return Err(format!("--max-ttl {} is out of range 1..=15", self.max_ttl));
        }
        if let Some(missing) = self.seed_release.iter().find(|file| !file.is_file()) {
            return Err(format!("--seed-release {}: not a file", missing.display()));
        }
        if self.upload_slots == 0 {
            return Err("--upload-slots 0 would serve no upload: give at least 1".into());
        }
        if self.max_peers == 0 {
            return Err(
                "--max-peers 0 would keep no connection, and a servent alone finds nothing: give at least 1".into()
            );
        }
        if let Some(url) = self.gwebcache.iter().find(|url| !is_web_address(url)) {
            return Err(format!("--gwebcache {url:?} is not an http:// or https:// address"));
        }
        let api_token = self.api_token.as_deref().map(ApiToken::new).transpose()?;
        if !self.api.ip().is_loopback() && api_token.is_none() {
            return Err(format!(
                "--api {} is not a loopback address: give --api-token TOKEN too, or the API answers on loopback only",
                self.api
            ));
        }
        Ok(Config {
            data_dir: Some(self.data_dir.clone().unwrap_or_else(config::default_data_dir)),
            listen: self.listen,
            shares: self.share.clone(),
            peers: self
                .peer
                .iter()
                .filter_map(|p| match p {
                    PeerAddr::Ip(addr) => Some(SocketAddr::V4(*addr)),
                    PeerAddr::Name(..) => None,
                })
                .collect(),
            max_peers: self.max_peers,
            mode: self.mode,
            max_leaves: self.max_leaves,
            discover: !self.no_discovery,
            dial_local: self.dial_local,
            gwebcaches: self.gwebcache.clone(),
            uhcs: self.uhc.clone(),
            peer_names: self.peer_names().cloned().collect(),
            bootstrap: true,
            max_ttl: self.max_ttl,
            deflate: !self.no_deflate,
            uploads: UploadConfig { slots: self.upload_slots, ..UploadConfig::default() },
            rates: Rates { max_upload_rate: self.max_upload_rate, max_download_rate: self.max_download_rate },
            seed_releases: self.seed_release.clone(),
            downloads: self.downloads.clone(),
            api_token,
            ..Config::default()
        })
    }

    /// The log's filter: `--log-level`, else `RUST_LOG`, else `info`.
    pub fn log_filter(&self) -> Result<crate::logging::Filter, String> {
        let level = self.log_level.as_deref().map(str::parse).transpose().map_err(|_| "--log-level: not a level")?;
        crate::logging::filter_from(level, std::env::var("RUST_LOG").ok())
    }

    /// How often the updater runs a pass by itself, if at all.
    pub fn update_every(&self) -> Result<Option<Duration>, String> {
        match self.update_every {
            None => Ok(None),
            Some(minutes) if (1..=MAX_UPDATE_EVERY_MINUTES).contains(&minutes) => {
                Ok(Some(Duration::from_secs(minutes * 60)))
            }
            Some(minutes) => Err(format!(
                "--update-every {minutes} is out of range: 1 to {MAX_UPDATE_EVERY_MINUTES} minutes \
                 (leave it out for passes only on request, `servent update --once`)"
            )),
        }
    }

    /// How long the updater gathers search results for each package.
    pub fn update_search_wait(&self) -> Result<Duration, String> {
        let Some(secs) = self.update_search_wait else { return Ok(updater::SEARCH_WAIT) };
        match Duration::try_from_secs_f64(secs) {
            Ok(wait) if !wait.is_zero() && wait <= MAX_UPDATE_SEARCH_WAIT => Ok(wait),
            _ => Err(format!(
                "--update-search-wait {secs} is out of range: more than 0, at most {} seconds",
                MAX_UPDATE_SEARCH_WAIT.as_secs()
            )),
        }
    }
}

/// How long a client waits for an answer, but for the updater's calls,
/// which last as long as their downloads.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);
/// How much longer than the servent's own bound a client waits for it.
const ANSWER_MARGIN: Duration = Duration::from_secs(10);

/// A client of the local API.
struct Client {
    base: String,
    http: surf::Client,
    token: Option<String>,
}

impl Client {
    fn new(api: &ApiArgs) -> Client {
        Client::with_timeout(api, Some(ANSWER_TIMEOUT))
    }

    /// A client that waits as long as the servent works (install, update, rollback).
    fn patient(api: &ApiArgs) -> Client {
        Client::with_timeout(api, None)
    }

    fn with_timeout(api: &ApiArgs, timeout: Option<Duration>) -> Client {
        let config = surf::Config::new().set_timeout(timeout);
        Client {
            base: format!("http://{}", api.api),
            http: config.try_into().unwrap_or_default(),
            token: api.api_token.clone(),
        }
    }

    async fn get(&self, path: &str) -> Result<Value, String> {
        self.send(self.http.get(format!("{}{path}", self.base))).await
    }

    async fn post(&self, path: &str, body: &Value) -> Result<Value, String> {
        let request = self.http.post(format!("{}{path}", self.base)).body_json(body).map_err(|e| e.to_string())?;
        self.send(request).await
    }

    async fn send(&self, mut request: surf::RequestBuilder) -> Result<Value, String> {
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let mut response = request.await.map_err(|e| {
            let why = plain_error(&e.to_string());
            format!("no servent answers at {} ({why}); is `servent run` running?", self.base)
        })?;
        let body: Value =
            response.body_json().await.map_err(|e| format!("unreadable answer from {}: {e}", self.base))?;
        if !response.status().is_success() {
            let why = body["error"].as_str().unwrap_or("no reason given");
            // The servent it asked (a browse) failed, not ours: said as it is.
            if response.status() == surf::StatusCode::BadGateway {
                return Err(why.to_owned());
            }
            return Err(format!("the servent refused: {why}"));
        }
        Ok(body)
    }
}

/// The command line `args` (the program's name first), with the flags of
/// `run`'s config file ([`configfile`]) put before those given. Help, and
/// arguments that do not parse, are printed and end the process, as
/// structopt does.
pub fn command_from(mut args: Vec<OsString>) -> Result<Command, String> {
    if args.get(1).is_some_and(|a| a == "run") {
        let given: Vec<String> = args[2..].iter().map(|a| a.to_string_lossy().into_owned()).collect();
        let named = given.iter().enumerate().find_map(|(i, a)| match a.strip_prefix("--config") {
            Some("") => given.get(i + 1).map(PathBuf::from),
            Some(value) => value.strip_prefix('=').map(PathBuf::from),
            None => None,
        });
        let path = match named {
            Some(path) => Some(path),
            None => configfile::default_path().filter(|p| p.exists()),
        };
        if let Some(path) = path {
            let text = read_config(&path)?;
            let flags = configfile::flags(&path, &text, &given)?;
            args.splice(2..2, flags.into_iter().map(OsString::from));
        }
    }
    Ok(Command::from_iter(args))
}

/// The config file's text, at most [`configfile::MAX_BYTES`].
fn read_config(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let failed = |e: std::io::Error| format!("cannot read {}: {e}", path.display());
    let mut text = String::new();
    std::fs::File::open(path)
        .map_err(failed)?
        .take(configfile::MAX_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(failed)?;
    if text.len() as u64 > configfile::MAX_BYTES {
        return Err(format!("{} is larger than {} bytes", path.display(), configfile::MAX_BYTES));
    }
    Ok(text)
}

/// An HTTP client's error without the wording of its connection pool
/// ("An error occured while creating a new object: …"): only the cause.
fn plain_error(error: &str) -> String {
    if error.contains("timeout occured") {
        return "timed out".to_owned();
    }
    match error.split_once("occured while ") {
        Some((_, rest)) => rest.split_once(": ").map_or(rest, |(_, cause)| cause).to_owned(),
        None => error.to_owned(),
    }
}

/// Runs a client command (everything but `run` and `demo`); prints its output.
pub async fn run_client(command: Command) -> Result<(), String> {
    match command {
        Command::Run(_) | Command::Demo { .. } => Err("`run` and `demo` are not client commands".into()),
        Command::Search { api, wait, ttl, json, keywords } => {
            search(&Client::new(&api), &keywords.join(" "), ttl, wait, json).await
        }
        Command::Get { api, wait, json, require_verified, target } => {
            let target = resolve_target(&target, LastSearch::load().as_ref())?;
            get(&Client::new(&api), &target, require_verified, wait, json).await
        }
        Command::Pause(args) => control(args, "pause", "paused").await,
        Command::Resume(args) => control(args, "resume", "resumed").await,
        Command::Cancel(args) => control(args, "cancel", "cancelled").await,
        Command::Peer(PeerCommand::Add { api, addr }) => {
            let answer = Client::new(&api).post("/api/peers", &serde_json::json!({ "addr": addr })).await?;
            println!("connecting to {}", text(&answer["connecting"]));
            Ok(())
        }
        Command::Share(ShareCommand::Add { api, dir }) => {
            // The folder is where the user means it, not where the servent was started.
            let dir = std::path::absolute(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let answer = Client::new(&api).post("/api/shares", &serde_json::json!({ "dir": dir })).await?;
            match answer["added"].as_bool() {
                Some(true) => println!("sharing {}", text(&answer["dir"])),
                _ => println!("{} is shared already", text(&answer["dir"])),
            }
            Ok(())
        }
        Command::Share(ShareCommand::List(args)) => {
            let folders = Client::new(&args.api).get("/api/shares").await?;
            print_list(&folders, args.json, &["folder"], |f| vec![text(f)]);
            Ok(())
        }
        Command::Trust(command) => trust(command).await,
        Command::Install { api, dry_run, json, name } => {
            let body = serde_json::json!({ "name": name, "dry_run": dry_run });
            let decision = Client::patient(&api).post("/api/install", &body).await?;
            print_decisions(std::slice::from_ref(&decision), json)
        }
        Command::Update { api, once, dry_run, json } => update(&Client::patient(&api), once, dry_run, json).await,
        Command::Rollback { api, json, name } => {
            let decision = Client::patient(&api).post("/api/rollback", &serde_json::json!({ "name": name })).await?;
            print_decisions(std::slice::from_ref(&decision), json)
        }
        Command::Uninstall { api, json, name } => {
            let decision = Client::patient(&api).post("/api/uninstall", &serde_json::json!({ "name": name })).await?;
            print_decisions(std::slice::from_ref(&decision), json)
        }
        Command::Downloads(args) => {
            let downloads = Client::new(&args.api).get("/api/downloads").await?;
            let columns = ["id", "name", "state", "verdict", "done", "rate", "sources"];
            print_list(&downloads, args.json, &columns, |d| {
                let size = d["size"].as_u64().unwrap_or(0);
                let done = d["bytes_done"].as_u64().unwrap_or(0);
                vec![
                    text(&d["id"]),
                    text(&d["name"]),
                    match d["state"].as_str() {
                        // Why it cannot go on, in the same cell.
                        Some(state @ ("stalled" | "failed")) => format!("{state}: {}", text(&d["reason"])),
                        _ => text(&d["state"]),
                    },
                    text(&d["verdict"]),
                    format!("{} / {}", human_size(done), human_size(size)),
                    format!("{}/s", human_size(d["rate_bytes_per_sec"].as_f64().unwrap_or(0.0) as u64)),
                    d["sources"].as_array().map_or(0, Vec::len).to_string(),
                ]
            });
            Ok(())
        }
        Command::Peers(args) => {
            let peers = Client::new(&args.api).get("/api/peers").await?;
            let columns =
                ["address", "direction", "role", "user_agent", "connected", "received", "dropped", "sent", "unsent"];
            print_list(&peers, args.json, &columns, |p| {
                // An incoming peer by the address it listens on, not its outgoing port.
                let address = if p["listen"].is_null() { &p["addr"] } else { &p["listen"] };
                vec![
                    text(address),
                    text(&p["direction"]),
                    if p["qrp"] == true { format!("{}, qrp", text(&p["role"])) } else { text(&p["role"]) },
                    text(&p["user_agent"]),
                    format!("{}s", p["connected_secs"]),
                    text(&p["counters"]["received"]),
                    dropped(&p["counters"]).to_string(),
                    text(&p["messages_out"]),
                    text(&p["queue_dropped"]),
                ]
            });
            Ok(())
        }
        Command::Library(args) => {
            let files = Client::new(&args.api).get("/api/library").await?;
            print_list(&files, args.json, &["name", "size", "verdict", "version", "sha1"], |f| {
                vec![
                    text(&f["name"]),
                    human_size(f["size"].as_u64().unwrap_or(0)),
                    text(&f["verdict"]),
                    text(&f["version"]),
                    text(&f["sha1"]),
                ]
            });
            Ok(())
        }
        Command::Browse { api, json, addr } => {
            // The servent gives up on the browsed one first, and says why.
            let client = Client::with_timeout(&api, Some(BROWSE_TIMEOUT + ANSWER_MARGIN));
            let results = client.post("/api/browse", &serde_json::json!({ "addr": addr.to_string() })).await?;
            let results = results.as_array().cloned().unwrap_or_default();
            show_results(&format!("browse {addr}"), results, json, &format!("{addr} shares no files"));
            Ok(())
        }
        Command::Status(args) => {
            let status = Client::new(&args.api).get("/api/status").await?;
            if args.json {
                println!("{status}");
            } else {
                println!("listening   {}", text(&status["listen"]));
                println!("advertised  {}", text(&status["advertised"]));
                println!("peers       {}", status["peers"]);
                println!("host cache  {}", status["host_cache"]);
                let files = plural(status["files"].as_u64().unwrap_or(0) as usize, "file");
                println!("sharing     {files}, {}", human_size(status["bytes"].as_u64().unwrap_or(0)));
                println!("dropped     {}", dropped(&status["totals"]));
            }
            Ok(())
        }
    }
}

/// Searches, prints the results numbered, and remembers them for `get N`.
async fn search(client: &Client, text_query: &str, ttl: Option<u8>, wait: f64, json: bool) -> Result<(), String> {
    let started = client.post("/api/searches", &serde_json::json!({ "query": text_query, "ttl": ttl })).await?;
    let id = started["id"].as_str().ok_or("the servent gave no search id")?.to_string();
    async_std::task::sleep(Duration::from_secs_f64(wait.clamp(0.0, 3600.0))).await;
    let snapshot = client.get(&format!("/api/searches/{id}")).await?;
    let results = snapshot["results"].as_array().cloned().unwrap_or_default();
    show_results(text_query, results, json, &format!("no results for {text_query:?}"));
    Ok(())
}

/// Prints results numbered, best verdicts first, and remembers them for
/// `get N` as the results of `query`; says `none` on standard error when
/// there are none.
fn show_results(query: &str, mut results: Vec<Value>, json: bool, none: &str) {
    sort_results(&mut results);
    let last = LastSearch { query: query.to_owned(), results };
    if let Err(why) = last.save() {
        eprintln!("servent: the results cannot be remembered for `get N`: {why}");
    }
    if last.results.is_empty() {
        eprintln!("{none}");
        return;
    }
    let numbered: Vec<Value> = last
        .results
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut r = r.clone();
            r["n"] = Value::from(i + 1);
            r
        })
        .collect();
    let columns = ["#", "name", "size", "sources", "verdict", "version", "urn"];
    print_list(&Value::Array(numbered), json, &columns, |r| {
        vec![
            text(&r["n"]),
            text(&r["name"]),
            human_size(r["size"].as_u64().unwrap_or(0)),
            r["sources"].as_array().map_or(0, Vec::len).to_string(),
            text(&r["verdict"]),
            text(&r["version"]),
            short_urn(r),
        ]
    });
}

/// Where a verdict comes in a list of results: verified first, then
/// unsigned, untrusted, and fakes last.
pub fn verdict_rank(verdict: &str) -> u8 {
    match verdict {
        "verified" => 0,
        "unsigned" => 1,
        "untrusted" => 2,
        "fake" => 4,
        _ => 3,
    }
}

/// Sorts search results by verdict ([`verdict_rank`]), then by sources, most first.
fn sort_results(results: &mut [Value]) {
    results.sort_by_key(|r| {
        let sources = r["sources"].as_array().map_or(0, Vec::len);
        (verdict_rank(r["verdict"].as_str().unwrap_or_default()), std::cmp::Reverse(sources))
    });
}

/// The first characters of a result's SHA-1 URN (else its SHA-256), enough
/// to tell results apart by eye: `sha1:PLSTHIPQ`.
fn short_urn(result: &Value) -> String {
    let urn = result["sha1"].as_str().or(result["sha256"].as_str()).unwrap_or("-");
    let urn = urn.strip_prefix("urn:").unwrap_or(urn);
    urn.chars().take(SHORT_URN_CHARS).collect()
}

/// `sha1:` and 8 characters of base32: 40 bits.
const SHORT_URN_CHARS: usize = 13;
/// The largest last-search file read back: far more than a search's results.
const MAX_LAST_SEARCH_BYTES: u64 = 16 << 20;

/// The results of the last `servent search`, kept so that `get 3` and
/// `get NAME` can refer to them.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct LastSearch {
    query: String,
    results: Vec<Value>,
}

impl LastSearch {
    /// `$XDG_STATE_HOME/servent/last-search.json`, else under `~/.local/state`.
    fn path() -> Option<PathBuf> {
        let state = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()).map(PathBuf::from);
        let home = std::env::var_os("HOME").filter(|d| !d.is_empty()).map(|h| PathBuf::from(h).join(".local/state"));
        Some(state.or(home)?.join("servent").join("last-search.json"))
    }

    fn save(&self) -> Result<(), String> {
        let path = LastSearch::path().ok_or("no $HOME or $XDG_STATE_HOME")?;
        let dir = path.parent().ok_or("no folder")?;
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let bytes = serde_json::to_vec(self).map_err(|e| e.to_string())?;
        config::write_atomically(&path, &bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    /// The last search, if one was saved and reads back.
    fn load() -> Option<LastSearch> {
        use std::io::Read;
        let file = std::fs::File::open(LastSearch::path()?).ok()?;
        let mut bytes = Vec::new();
        file.take(MAX_LAST_SEARCH_BYTES).read_to_end(&mut bytes).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// What `get` downloads: a URN or magnet link as given, the Nth result of
/// the last search, or the one verified result of the last search with
/// that name (the whole file name, or its beginning: `SEBLINUX-base-1.1`).
fn resolve_target(target: &str, last: Option<&LastSearch>) -> Result<String, String> {
    let lower = target.to_ascii_lowercase();
    if lower.starts_with("urn:") || lower.starts_with("magnet:") {
        return Ok(target.to_owned());
    }
    let Some(last) = last else {
        return Err(format!("{target:?} is not a URN or magnet link, and there is no last search to take it from: run `servent search` first"));
    };
    let urn = |r: &Value| r["sha1"].as_str().or(r["sha256"].as_str()).map(str::to_owned);
    if let Ok(n) = target.parse::<usize>() {
        let count = last.results.len();
        let result = n.checked_sub(1).and_then(|i| last.results.get(i));
        return result.and_then(urn).ok_or_else(|| {
            format!("the last search ({:?}) has no result {n}: it has {}", last.query, plural(count, "result"))
        });
    }
    let verified: Vec<(usize, &Value)> =
        last.results.iter().enumerate().filter(|(_, r)| r["verdict"] == "verified").collect();
    let named = |r: &Value| r["name"].as_str().unwrap_or_default().to_ascii_lowercase();
    let exact: Vec<_> = verified.iter().filter(|(_, r)| named(r) == lower).collect();
    let matching: Vec<_> = match exact.is_empty() {
        true => verified.iter().filter(|(_, r)| named(r).starts_with(&lower)).collect(),
        false => exact,
    };
    match matching.as_slice() {
        [(_, result)] => urn(result).ok_or_else(|| format!("the result {target:?} has no URN")),
        [] => Err(format!(
            "no verified result of the last search ({:?}) is named {target:?}; give its number or URN",
            last.query
        )),
        several => {
            let names: Vec<String> = several.iter().map(|(i, r)| format!("{} {}", i + 1, text(&r["name"]))).collect();
            Err(format!("{target:?} names {} verified results: {}; give its number", several.len(), names.join(", ")))
        }
    }
}

/// `1 result`, `2 results`.
pub fn plural(n: usize, thing: &str) -> String {
    match n {
        1 => format!("1 {thing}"),
        _ => format!("{n} {thing}s"),
    }
}

/// Pauses, resumes or cancels a download.
async fn control(args: DownloadArgs, action: &str, done: &str) -> Result<(), String> {
    Client::new(&args.api).post(&format!("/api/downloads/{}/{action}", args.id), &serde_json::json!({})).await?;
    println!("{done} download {}", args.id);
    Ok(())
}

/// How often `get --wait` asks how the download is going.
const PROGRESS_POLL: Duration = Duration::from_millis(250);

async fn get(client: &Client, target: &str, require_verified: bool, wait: bool, json: bool) -> Result<(), String> {
    let request = serde_json::json!({ "target": target, "require_verified": require_verified });
    let started = client.post("/api/downloads", &request).await?;
    let id = started["id"].as_u64().ok_or("the servent gave no download id")?;
    if !wait {
        match json {
            true => println!("{started}"),
            false => println!("queued download {id}"),
        }
        return Ok(());
    }
    let bar = (!json).then(|| {
        let bar = indicatif::ProgressBar::new(0);
        let style =
            indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}")
                .map(|s| s.progress_chars("=> "));
        if let Ok(style) = style {
            bar.set_style(style);
        }
        bar
    });
    let mut last_progress = None;
    loop {
        let download = client.get(&format!("/api/downloads/{id}")).await?;
        if let Some(bar) = &bar {
            bar.set_message(text(&download["name"]));
            bar.set_length(download["size"].as_u64().unwrap_or(0));
            bar.set_position(download["bytes_done"].as_u64().unwrap_or(0));
        }
        let state = download["state"].as_str().unwrap_or_default().to_owned();
        if json && !matches!(state.as_str(), "complete" | "failed" | "cancelled") {
            let line = progress(&download);
            if last_progress.as_ref() != Some(&line) {
                println!("{line}");
                last_progress = Some(line);
            }
        }
        match state.as_str() {
            "complete" => {
                if let Some(bar) = bar {
                    bar.finish_and_clear();
                }
                match json {
                    true => println!("{download}"),
                    false => println!("{}", text(&download["path"])),
                }
                return Ok(());
            }
            "failed" | "stalled" => {
                if let Some(bar) = bar {
                    bar.abandon();
                }
                if json {
                    println!("{download}");
                }
                let reason = text(&download["reason"]);
                return Err(match state.as_str() {
                    "failed" => format!("download {id} failed: {reason}"),
                    _ => format!("download {id} stalled: {reason} (it goes on in the servent: `servent downloads`)"),
                });
            }
            "cancelled" => return Err(format!("download {id} cancelled")),
            _ => async_std::task::sleep(PROGRESS_POLL).await,
        }
    }
}

/// A progress line of `get --wait --json`: where a download stands, without
/// its sources; printed when it changes.
fn progress(download: &Value) -> Value {
    serde_json::json!({
        "id": download["id"],
        "name": download["name"],
        "state": download["state"],
        "bytes_done": download["bytes_done"],
        "size": download["size"],
    })
}

async fn update(client: &Client, once: bool, dry_run: bool, json: bool) -> Result<(), String> {
    if once || dry_run {
        let report = client.post("/api/updates/run", &serde_json::json!({ "dry_run": dry_run })).await?;
        return print_decisions(report["decisions"].as_array().map(Vec::as_slice).unwrap_or_default(), json);
    }
    let status = client.get("/api/updates").await?;
    if json {
        println!("{status}");
        return Ok(());
    }
    println!("install dir  {}", text(&status["install_dir"]));
    match status["every_minutes"].as_u64() {
        Some(minutes) => println!("passes       every {}", plural(minutes as usize, "minute")),
        None => println!("passes       on request (`update --once`)"),
    }
    print_list(&status["installed"], false, &["name", "version", "key_id", "previous"], |p| {
        vec![
            text(&p["current"]["name"]),
            text(&p["current"]["version"]),
            text(&p["current"]["key_id"]),
            text(&p["previous"]["version"]),
        ]
    });
    if let Some(decisions) = status["last_pass"]["decisions"].as_array() {
        println!("last pass:");
        print_decisions(decisions, false)?;
    }
    Ok(())
}

/// Prints the updater's decisions; fails when one of them failed.
fn print_decisions(decisions: &[Value], json: bool) -> Result<(), String> {
    for d in decisions {
        match json {
            true => println!("{d}"),
            false => println!("{} {}: {}", text(&d["name"]), text(&d["action"]).replace('_', " "), text(&d["reason"])),
        }
    }
    match decisions.iter().find(|d| d["action"] == "failed" || d["action"] == "not_found") {
        Some(d) if d["action"] == "not_found" => {
            Err(format!("{}: not found: {}", text(&d["name"]), text(&d["reason"])))
        }
        Some(d) => Err(format!("{}: {}", text(&d["name"]), text(&d["reason"]))),
        None => Ok(()),
    }
}

async fn trust(command: TrustCommand) -> Result<(), String> {
    match command {
        TrustCommand::Add { api, mut scope, key } => {
            // A file is read here, where the user runs the command, not in
            // the servent's working directory; only the key line travels.
            let key = if keysource::names_a_page(&key) {
                key
            } else {
                let resolved = keysource::resolve(&key).await?;
                scope.splice(0..0, resolved.trusted.scope);
                resolved.trusted.key.to_base64()
            };
            let entry =
                Client::new(&api).post("/api/trust", &serde_json::json!({ "key": key, "scope": scope })).await?;
            println!("trusting key {} ({})", text(&entry["key_id"]), scope_text(&entry["scope"]));
        }
        TrustCommand::List(args) => {
            let keys = Client::new(&args.api).get("/api/trust").await?;
            print_list(&keys, args.json, &["key_id", "scope", "key", "note"], |k| {
                vec![text(&k["key_id"]), scope_text(&k["scope"]), text(&k["key"]), text(&k["note"])]
            });
        }
        TrustCommand::Remove { api, key_id } => {
            Client::new(&api).post("/api/trust/remove", &serde_json::json!({ "key_id": key_id })).await?;
            println!("no longer trusting key {key_id}");
        }
    }
    Ok(())
}

/// A key's scope for people: `SEBLINUX-base, SEBLINUX-extras*`, or what an empty one allows.
fn scope_text(scope: &Value) -> String {
    let entries: Vec<String> = scope.as_array().map(|a| a.iter().map(text).collect()).unwrap_or_default();
    if entries.is_empty() {
        "any name not in another key's scope".into()
    } else {
        entries.join(", ")
    }
}

/// Prints a JSON list one object per line, or as an aligned table.
fn print_list(list: &Value, json: bool, columns: &[&str], row: impl Fn(&Value) -> Vec<String>) {
    let items = list.as_array().map(Vec::as_slice).unwrap_or_default();
    if json {
        for item in items {
            println!("{item}");
        }
        return;
    }
    let mut rows = vec![columns.iter().map(|c| c.to_uppercase()).collect::<Vec<_>>()];
    rows.extend(items.iter().map(row));
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| rows.iter().map(|r| r.get(i).map_or(0, |c| c.chars().count())).max().unwrap_or(0))
        .collect();
    for row in rows {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        println!("{}", cells.join("  ").trim_end());
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn dropped(counters: &Value) -> u64 {
    counters["dropped"].as_object().map_or(0, |d| d.values().filter_map(Value::as_u64).sum())
}

/// Sizes for people: 1.5 MiB.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1024.0 && unit < UNITS.len() - 1 {
        size /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{size:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(24 * 1024 * 1024), "24.0 MiB");
    }

    #[test]
    fn api_off_loopback_is_refused_without_a_token() {
        let args = RunArgs::from_iter(["run", "--api", "0.0.0.0:6347"]);
        assert!(args.config().unwrap_err().contains("--api-token"));
        let args = RunArgs::from_iter(["run", "--api", "0.0.0.0:6347", "--api-token", "correct-horse-battery"]);
        assert_eq!(args.config().unwrap().api_token, Some(ApiToken::new("correct-horse-battery").unwrap()));
        let args = RunArgs::from_iter(["run", "--api", "0.0.0.0:6347", "--api-token", "short"]);
        assert!(args.config().unwrap_err().contains("at least 16"));
    }

    #[test]
    fn missing_share_folder_is_a_clear_error() {
        let args = RunArgs::from_iter(["run", "--share", "/no/such/folder"]);
        assert_eq!(args.config().unwrap_err(), "not a folder: /no/such/folder");
    }

    #[test]
    fn zero_slots_zero_peers_and_a_gwebcache_that_is_no_address_are_refused() {
        for (flag, value, said) in [
            ("--upload-slots", "0", "at least 1"),
            ("--max-peers", "0", "at least 1"),
            ("--gwebcache", "notaurl", "not an http:// or https:// address"),
            ("--gwebcache", "ftp://cache.example/", "not an http:// or https:// address"),
        ] {
            let args = RunArgs::from_iter(["run", flag, value]);
            assert!(args.config().unwrap_err().contains(said), "{flag} {value}");
        }
        let args = RunArgs::from_iter(["run", "--gwebcache", "http://cache.example/gwc.php", "--upload-slots", "1"]);
        assert!(args.config().is_ok());
    }

    #[test]
    fn peers_are_taken_by_ip_at_once_and_by_host_name_to_look_up_and_nonsense_is_refused() {
        let args = RunArgs::from_iter(["run", "--peer", "192.0.2.7:6346", "--peer", "seblinux.example:6346"]);
        assert_eq!(args.config().unwrap().peers, ["192.0.2.7:6346".parse::<SocketAddr>().unwrap()]);
        let names: Vec<&PeerAddr> = args.peer_names().collect();
        assert_eq!(names, [&PeerAddr::Name("seblinux.example".into(), 6346)]);
        let refused = RunArgs::from_iter_safe(["run", "--peer", "nonsense"]).unwrap_err();
        assert!(refused.message.contains("is not IP:PORT or HOST:PORT"), "{}", refused.message);
    }

    #[test]
    fn the_systemd_unit_runs_with_flags_that_exist() {
        let unit = include_str!("../../contrib/servent.service");
        let exec = unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).unwrap();
        let words: Vec<String> = exec.split_whitespace().skip(1).map(|w| w.replace("%h", "/home/member")).collect();
        let args = RunArgs::from_iter_safe(&words).unwrap();
        assert_eq!(args.share, [PathBuf::from("/home/member/seblinux")]);
        assert_eq!(args.data_dir, Some(PathBuf::from("/home/member/.local/share/servent")));
    }

    #[test]
    fn update_every_is_off_without_the_flag_and_refuses_zero() {
        assert_eq!(RunArgs::from_iter(["run"]).update_every(), Ok(None));
        let args = RunArgs::from_iter(["run", "--update-every", "60"]);
        assert_eq!(args.update_every(), Ok(Some(Duration::from_secs(3600))));
        for wrong in ["0", "43201"] {
            let args = RunArgs::from_iter(["run", "--update-every", wrong]);
            assert!(args.update_every().unwrap_err().contains("out of range"), "{wrong}");
        }
    }

    #[test]
    fn a_search_ttl_is_one_to_seven_hops() {
        assert_eq!(parse_ttl("1"), Ok(1));
        assert_eq!(parse_ttl("7"), Ok(7));
        for wrong in ["0", "8", "255", "-1", "x"] {
            assert!(parse_ttl(wrong).unwrap_err().contains("from 1 to 7"), "{wrong}");
        }
    }

    fn last_search() -> LastSearch {
        let result = |name: &str, verdict: &str, sha1: &str| serde_json::json!({ "name": name, "verdict": verdict, "sha1": format!("urn:sha1:{sha1}"), "sha256": null });
        let results = vec![
            result("SEBLINUX-base-1.0.tar", "verified", "AAAA"),
            result("SEBLINUX-base-1.0.tar", "fake", "BBBB"),
            result("SEBLINUX-base-1.1.tar", "verified", "CCCC"),
            result("SEBLINUX-docs-1.0.tar", "unsigned", "DDDD"),
        ];
        LastSearch { query: "SEBLINUX".into(), results }
    }

    #[test]
    fn get_takes_a_urn_as_given_a_number_from_the_last_search_or_an_unambiguous_verified_name() {
        let last = last_search();
        assert_eq!(resolve_target("urn:sha1:ZZZZ", None).unwrap(), "urn:sha1:ZZZZ");
        assert_eq!(resolve_target("magnet:?xt=urn:sha1:ZZZZ", Some(&last)).unwrap(), "magnet:?xt=urn:sha1:ZZZZ");
        assert_eq!(resolve_target("2", Some(&last)).unwrap(), "urn:sha1:BBBB");
        assert_eq!(resolve_target("SEBLINUX-base-1.0.tar", Some(&last)).unwrap(), "urn:sha1:AAAA");
        assert_eq!(resolve_target("seblinux-base-1.1", Some(&last)).unwrap(), "urn:sha1:CCCC");

        assert!(resolve_target("3", None).unwrap_err().contains("run `servent search` first"));
        assert!(resolve_target("0", Some(&last)).unwrap_err().contains("has no result 0: it has 4 results"));
        assert!(resolve_target("5", Some(&last)).unwrap_err().contains("has no result 5"));
        let ambiguous = resolve_target("SEBLINUX-base", Some(&last)).unwrap_err();
        assert!(
            ambiguous.contains("names 2 verified results: 1 SEBLINUX-base-1.0.tar, 3 SEBLINUX-base-1.1.tar"),
            "{ambiguous}"
        );
        let unsigned = resolve_target("SEBLINUX-docs-1.0.tar", Some(&last)).unwrap_err();
        assert!(unsigned.contains("no verified result"), "{unsigned}");
    }

    #[test]
    fn results_come_verified_first_then_unsigned_untrusted_and_fakes_last_then_by_sources() {
        let result = |name: &str, verdict: &str, sources: usize| serde_json::json!({ "name": name, "verdict": verdict, "sources": vec!["127.0.0.1:6346"; sources] });
        let mut results = vec![
            result("a", "fake", 9),
            result("b", "unsigned", 1),
            result("c", "verified", 1),
            result("d", "untrusted", 5),
            result("e", "unsigned", 3),
            result("f", "verified", 2),
        ];
        sort_results(&mut results);
        let names: Vec<&str> = results.iter().map(|r| r["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["f", "c", "e", "b", "d", "a"]);
    }

    #[test]
    fn client_errors_say_the_cause_without_the_connection_pools_words() {
        let pool = "An error occured while creating a new object: Connection refused (os error 111)";
        assert_eq!(plain_error(pool), "Connection refused (os error 111)");
        assert_eq!(plain_error("A timeout occured while waiting for a slot to become available"), "timed out");
        assert_eq!(plain_error("Connection reset by peer"), "Connection reset by peer");
    }

    #[test]
    fn update_search_wait_defaults_to_the_updaters_and_takes_fractions_within_range() {
        assert_eq!(RunArgs::from_iter(["run"]).update_search_wait(), Ok(updater::SEARCH_WAIT));
        let args = RunArgs::from_iter(["run", "--update-search-wait", "1.5"]);
        assert_eq!(args.update_search_wait(), Ok(Duration::from_millis(1500)));
        for wrong in ["0", "-1", "601", "NaN"] {
            let args = RunArgs::from_iter(["run".to_string(), format!("--update-search-wait={wrong}")]);
            assert!(args.update_search_wait().unwrap_err().contains("out of range"), "{wrong}");
        }
    }
}
