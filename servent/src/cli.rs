//! The `servent` command line: `run` starts a servent; every other command
//! is a thin client of a running servent's local JSON API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use structopt::StructOpt;

use crate::api::ApiToken;
use crate::config::{self, Config};
use crate::transfer::upload::UploadConfig;
use crate::updater;

/// A Gnutella 0.6 servent: share folders, search the network, download.
#[derive(Debug, StructOpt)]
#[structopt(name = "servent")]
pub enum Command {
    /// Joins the network, shares folders, and serves the local API.
    Run(Box<RunArgs>),
    /// Searches the network by keywords or by `urn:sha1:`/`urn:sha256:`.
    Search {
        // structopt refuses doc comments on flattened fields.
        #[allow(missing_docs)]
        #[structopt(flatten)]
        api: ApiArgs,
        /// Seconds to gather results before printing them.
        #[structopt(long, default_value = "3")]
        wait: f64,
        /// How far the query travels (1 to 7).
        #[structopt(long, default_value = "7")]
        ttl: u8,
        /// One JSON object per line.
        #[structopt(long)]
        json: bool,
        /// Words that every result must have, or one URN.
        #[structopt(required = true)]
        keywords: Vec<String>,
    },
    /// Downloads a file by `urn:sha1:`/`urn:sha256:` or magnet link, from
    /// every source at once; it lands verified in the downloads folder.
    Get {
        // structopt refuses doc comments on flattened fields.
        #[allow(missing_docs)]
        #[structopt(flatten)]
        api: ApiArgs,
        /// Return only once the file is complete and verified (or has failed).
        #[structopt(long)]
        wait: bool,
        /// One JSON object per line instead of a progress bar.
        #[structopt(long)]
        json: bool,
        /// Keep the file only if it is verified under a trusted publisher key.
        #[structopt(long)]
        require_verified: bool,
        /// A `urn:sha1:…`, `urn:sha256:…` or `magnet:?…`.
        target: String,
    },
    /// Lists downloads: state, bytes done, rate, sources.
    Downloads(ListArgs),
    /// Lists the connected peers.
    Peers(ListArgs),
    /// Lists the shared files.
    Library(ListArgs),
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
        /// A release name or keyword the key may publish (repeatable); none: anything.
        #[structopt(long)]
        scope: Vec<String>,
        /// The key.
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

/// Where the running servent's API is.
#[derive(Debug, StructOpt)]
pub struct ApiArgs {
    /// The API address of the running servent.
    #[structopt(long, default_value = "127.0.0.1:6347")]
    pub api: SocketAddr,
    /// The token that servent was started with (`run --api-token`), if any.
    #[structopt(long, env = "SERVENT_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,
}

/// Arguments of the listing commands.
#[derive(Debug, StructOpt)]
pub struct ListArgs {
    #[structopt(flatten)]
    api: ApiArgs,
    /// One JSON object per line.
    #[structopt(long)]
    json: bool,
}

/// Arguments of `servent run`.
#[derive(Debug, StructOpt)]
pub struct RunArgs {
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
    /// Where finished downloads land [default: <data-dir>/downloads]; shared.
    #[structopt(long, parse(from_os_str))]
    pub downloads: Option<PathBuf>,
    /// A servent to connect to, IP:PORT (repeatable).
    #[structopt(long)]
    pub peer: Vec<SocketAddr>,
    /// Uploads served at once; more get 503 with Retry-After.
    #[structopt(long, default_value = "8")]
    pub upload_slots: usize,
    /// Connections to keep.
    #[structopt(long, default_value = "16")]
    pub max_peers: usize,
    /// A GWebCache URL to ask for hosts when none is known (repeatable).
    #[structopt(long)]
    pub gwebcache: Vec<String>,
    /// The highest TTL + hops routed.
    #[structopt(long, default_value = "7")]
    pub max_ttl: u8,
    /// Never compress Gnutella links.
    #[structopt(long)]
    pub no_deflate: bool,
    /// Connect only to the peers given with --peer, not to hosts learned from the network.
    #[structopt(long)]
    pub no_discovery: bool,
    /// A publisher key to pin: a `.pub` file, an `RW…` line or the https URL
    /// of a page showing it, optionally followed by `#SCOPE,…` (repeatable).
    #[structopt(long)]
    pub trust: Vec<String>,
    /// Where releases are installed, and shared from [default: <data-dir>/installed].
    #[structopt(long, parse(from_os_str))]
    pub install_dir: Option<PathBuf>,
    /// Run an update pass every this many minutes.
    #[structopt(long, value_name = "MINUTES")]
    pub update_every: Option<u64>,
    /// A shell command run after each install (SERVENT_NAME, SERVENT_VERSION,
    /// SERVENT_PATH, SERVENT_PREVIOUS_VERSION set); failure rolls back.
    #[structopt(long, value_name = "CMD")]
    pub post_install: Option<String>,
    /// Seconds an update pass or install gathers search results for each
    /// package [default: 10]; shorter on a small or local network.
    #[structopt(long, value_name = "SECONDS")]
    pub update_search_wait: Option<f64>,
}

/// The longest `--update-search-wait`.
const MAX_UPDATE_SEARCH_WAIT: Duration = Duration::from_secs(600);

impl RunArgs {
    /// The servent configuration these arguments describe.
    pub fn config(&self) -> Result<Config, String> {
        if self.share.iter().any(|s| !s.is_dir()) {
            let missing: Vec<String> =
                self.share.iter().filter(|s| !s.is_dir()).map(|s| s.display().to_string()).collect();
            return Err(format!("not a folder: {}", missing.join(", ")));
        }
        if !(1..=15).contains(&self.max_ttl) {
            return Err(format!("--max-ttl {} is out of range 1..=15", self.max_ttl));
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
            peers: self.peer.clone(),
            max_peers: self.max_peers,
            discover: !self.no_discovery,
            gwebcaches: self.gwebcache.clone(),
            max_ttl: self.max_ttl,
            deflate: !self.no_deflate,
            uploads: UploadConfig { slots: self.upload_slots.max(1), ..UploadConfig::default() },
            downloads: self.downloads.clone(),
            api_token,
            ..Config::default()
        })
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
        let mut response = request
            .await
            .map_err(|e| format!("no servent answers at {} ({e}); is `servent run` running?", self.base))?;
        let body: Value =
            response.body_json().await.map_err(|e| format!("unreadable answer from {}: {e}", self.base))?;
        if !response.status().is_success() {
            let why = body["error"].as_str().unwrap_or("no reason given");
            return Err(format!("the servent refused: {why}"));
        }
        Ok(body)
    }
}

/// Runs a client command (everything but `run`); prints its output.
pub async fn run_client(command: Command) -> Result<(), String> {
    match command {
        Command::Run(_) => Err("`run` is not a client command".into()),
        Command::Search { api, wait, ttl, json, keywords } => {
            search(&Client::new(&api), &keywords.join(" "), ttl, wait, json).await
        }
        Command::Get { api, wait, json, require_verified, target } => {
            get(&Client::new(&api), &target, require_verified, wait, json).await
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
        Command::Downloads(args) => {
            let downloads = Client::new(&args.api).get("/api/downloads").await?;
            print_list(&downloads, args.json, &["id", "name", "state", "done", "rate", "sources"], |d| {
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
                    format!("{} / {}", human_size(done), human_size(size)),
                    format!("{}/s", human_size(d["rate_bytes_per_sec"].as_f64().unwrap_or(0.0) as u64)),
                    d["sources"].as_array().map_or(0, Vec::len).to_string(),
                ]
            });
            Ok(())
        }
        Command::Peers(args) => {
            let peers = Client::new(&args.api).get("/api/peers").await?;
            print_list(
                &peers,
                args.json,
                &["addr", "direction", "user_agent", "connected_secs", "messages_out", "queue_dropped"],
                |p| {
                    vec![
                        text(&p["addr"]),
                        text(&p["direction"]),
                        text(&p["user_agent"]),
                        format!("{}s", p["connected_secs"]),
                        format!("{}/{}", p["counters"]["received"], p["messages_out"]),
                        format!("{}", dropped(&p["counters"]) + p["queue_dropped"].as_u64().unwrap_or(0)),
                    ]
                },
            );
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
        Command::Status(args) => {
            let status = Client::new(&args.api).get("/api/status").await?;
            if args.json {
                println!("{status}");
            } else {
                println!("listening   {}", text(&status["listen"]));
                println!("advertised  {}", text(&status["advertised"]));
                println!("peers       {}", status["peers"]);
                println!("host cache  {}", status["host_cache"]);
                println!(
                    "sharing     {} files, {}",
                    status["files"],
                    human_size(status["bytes"].as_u64().unwrap_or(0))
                );
                println!("dropped     {}", dropped(&status["totals"]));
            }
            Ok(())
        }
    }
}

async fn search(client: &Client, text_query: &str, ttl: u8, wait: f64, json: bool) -> Result<(), String> {
    let started = client.post("/api/searches", &serde_json::json!({ "query": text_query, "ttl": ttl })).await?;
    let id = started["id"].as_str().ok_or("the servent gave no search id")?.to_string();
    async_std::task::sleep(Duration::from_secs_f64(wait.clamp(0.0, 3600.0))).await;
    let snapshot = client.get(&format!("/api/searches/{id}")).await?;
    let results = &snapshot["results"];
    if results.as_array().is_none_or(Vec::is_empty) {
        eprintln!("no results for {text_query:?}");
        return Ok(());
    }
    print_list(results, json, &["name", "size", "sources", "verdict", "version", "publisher"], |r| {
        vec![
            text(&r["name"]),
            human_size(r["size"].as_u64().unwrap_or(0)),
            r["sources"].as_array().map_or(0, Vec::len).to_string(),
            text(&r["verdict"]),
            text(&r["version"]),
            text(&r["publisher"]),
        ]
    });
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
    loop {
        let download = client.get(&format!("/api/downloads/{id}")).await?;
        if let Some(bar) = &bar {
            bar.set_message(text(&download["name"]));
            bar.set_length(download["size"].as_u64().unwrap_or(0));
            bar.set_position(download["bytes_done"].as_u64().unwrap_or(0));
        }
        match download["state"].as_str() {
            Some("complete") => {
                if let Some(bar) = bar {
                    bar.finish_and_clear();
                }
                match json {
                    true => println!("{download}"),
                    false => println!("{}", text(&download["path"])),
                }
                return Ok(());
            }
            Some("failed") => return Err(format!("download failed: {}", text(&download["reason"]))),
            // It goes on in the servent (`servent downloads` shows it),
            // but waiting here would be waiting for nothing.
            Some("stalled") => return Err(format!("download {id} stalled: {}", text(&download["reason"]))),
            Some("cancelled") => return Err("download cancelled".into()),
            _ => async_std::task::sleep(PROGRESS_POLL).await,
        }
    }
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
        Some(minutes) => println!("passes       every {minutes} minutes"),
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
    match decisions.iter().find(|d| d["action"] == "failed") {
        Some(d) => Err(format!("{}: {}", text(&d["name"]), text(&d["reason"]))),
        None => Ok(()),
    }
}

async fn trust(command: TrustCommand) -> Result<(), String> {
    match command {
        TrustCommand::Add { api, scope, key } => {
            let entry =
                Client::new(&api).post("/api/trust", &serde_json::json!({ "key": key, "scope": scope })).await?;
            println!("trusting key {} ({})", text(&entry["key_id"]), scope_text(&entry["scope"]));
        }
        TrustCommand::List(args) => {
            let keys = Client::new(&args.api).get("/api/trust").await?;
            print_list(&keys, args.json, &["key_id", "scope", "key"], |k| {
                vec![text(&k["key_id"]), scope_text(&k["scope"]), text(&k["key"])]
            });
        }
        TrustCommand::Remove { api, key_id } => {
            Client::new(&api).post("/api/trust/remove", &serde_json::json!({ "key_id": key_id })).await?;
            println!("no longer trusting key {key_id}");
        }
    }
    Ok(())
}

/// A key's scope for people: `SEBLINUX, extra`, or `anything`.
fn scope_text(scope: &Value) -> String {
    let entries: Vec<String> = scope.as_array().map(|a| a.iter().map(text).collect()).unwrap_or_default();
    if entries.is_empty() {
        "anything".into()
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
