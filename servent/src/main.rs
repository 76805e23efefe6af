//! `servent`: parses the command line and hands over to the library.

use std::io::Write;
use std::process::ExitCode;

use async_std::net::TcpListener;
use async_std::task;
use servent::cli::{self, Command, RunArgs};
use servent::datadir::DataDirLock;
use servent::updater::{Updater, UpdaterConfig};
use servent::{api, demo, keysource, node};

fn main() -> ExitCode {
    let command = match cli::command_from(std::env::args_os().collect()) {
        Ok(command) => command,
        Err(message) => {
            eprintln!("servent: {message}");
            return ExitCode::FAILURE;
        }
    };
    let result = match command {
        Command::Run(args) => task::block_on(run(*args)),
        Command::Demo { once, json } => task::block_on(demo::run(once, json)),
        command => task::block_on(cli::run_client(command)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("servent: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a servent until interrupted (Ctrl-C or SIGTERM), then says Bye to
/// its peers and stops.
async fn run(args: RunArgs) -> Result<(), String> {
    servent::logging::init(args.log_filter()?);
    let mut config = args.config()?;
    // One servent per data directory, held until this process ends.
    let _lock = match &config.data_dir {
        Some(dir) => Some(DataDirLock::acquire(dir)?),
        None => None,
    };
    let search_wait = args.update_search_wait()?;
    let update_every = args.update_every()?;
    let mut pinned = Vec::new();
    for arg in &args.trust {
        let resolved = keysource::resolve(arg).await?;
        let scope = resolved.trusted.scope.join(", ");
        let scope = if scope.is_empty() { "any name no other key's scope claims".to_owned() } else { scope };
        pinned.push(format!(
            "servent: trusting key {} from {} for {scope}",
            resolved.trusted.key.key_id(),
            resolved.source
        ));
        config.trust.push(resolved.trusted);
    }
    let api_listener =
        TcpListener::bind(args.api).await.map_err(|e| format!("cannot listen on {} for the API: {e}", args.api))?;
    let api_addr = api_listener.local_addr().map_err(|e| e.to_string())?;
    let (data_dir, api_token) = (config.data_dir.clone(), config.api_token.clone());
    let install_dir = match (&args.install_dir, &data_dir) {
        (Some(dir), _) => dir.clone(),
        (None, Some(data)) => data.join("installed"),
        (None, None) => return Err("an install directory needs --install-dir or --data-dir".into()),
    };
    std::fs::create_dir_all(&install_dir).map_err(|e| format!("cannot create {}: {e}", install_dir.display()))?;
    // What is installed is shared on: every user re-shares the updates.
    config.shares.push(install_dir.clone());
    let node = node::start(config).await.map_err(|e| e.to_string())?;
    let updater_config =
        UpdaterConfig { post_install: args.post_install.clone(), search_wait, ..UpdaterConfig::new(install_dir) };
    let updater = Updater::open(node.clone(), updater_config).map_err(|e| e.to_string())?;
    if let Some(every) = update_every {
        updater.spawn_every(every);
    }
    let (stop, stopped) = async_std::channel::bounded::<()>(1);
    ctrlc::set_handler(move || {
        let _ = stop.try_send(());
    })
    .map_err(|e| format!("cannot catch signals: {e}"))?;
    // Written without panicking: a servent whose standard output was closed
    // by its supervisor must go on serving.
    let _ = writeln!(
        std::io::stdout(),
        "servent: listening on {} (Gnutella, HTTP), API on http://{api_addr}",
        node.listen_addr()
    );
    if let Some(dir) = data_dir {
        let _ = writeln!(std::io::stdout(), "servent: data in {}", dir.display());
    }
    for line in pinned {
        let _ = writeln!(std::io::stdout(), "{line}");
    }
    let server = task::spawn(api::serve(node.clone(), Some(updater), api_listener, api_token));
    let _ = stopped.recv().await;
    let _ = writeln!(std::io::stdout(), "servent: stopping");
    node.shutdown().await;
    server.cancel().await;
    Ok(())
}
