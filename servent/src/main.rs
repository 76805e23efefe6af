//! `servent`: parses the command line and hands over to the library.

use std::io::Write;
use std::process::ExitCode;

use async_std::net::TcpListener;
use async_std::task;
use servent::cli::{self, Command, RunArgs};
use servent::{api, node};
use structopt::StructOpt;

fn main() -> ExitCode {
    let result = match Command::from_args() {
        Command::Run(args) => task::block_on(run(args)),
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
    let config = args.config()?;
    let api_listener =
        TcpListener::bind(args.api).await.map_err(|e| format!("cannot listen on {} for the API: {e}", args.api))?;
    let api_addr = api_listener.local_addr().map_err(|e| e.to_string())?;
    let (data_dir, api_token) = (config.data_dir.clone(), config.api_token.clone());
    let node = node::start(config).await.map_err(|e| e.to_string())?;
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
    let server = task::spawn(api::serve(node.clone(), api_listener, api_token));
    let _ = stopped.recv().await;
    let _ = writeln!(std::io::stdout(), "servent: stopping");
    node.shutdown().await;
    server.cancel().await;
    Ok(())
}
