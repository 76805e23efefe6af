//! `signing-tool`: make minisign keys, sign releases, verify them. The work is in the library.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use structopt::StructOpt;

use signing_tool::files::{self, Verified};
use signing_tool::{password, Error, ReleaseMeta};

/// Release signatures in minisign's format, byte-compatible with the minisign command line.
#[derive(StructOpt)]
#[structopt(name = "signing-tool")]
enum Command {
    /// Generates a key pair: a public key to publish and a secret key to sign with.
    Keygen {
        /// Where to write the public key.
        #[structopt(short = "p", long = "public-key", parse(from_os_str))]
        public_key: PathBuf,
        /// Where to write the secret key.
        #[structopt(short = "s", long = "secret-key", parse(from_os_str))]
        secret_key: PathBuf,
        /// Writes the secret key unencrypted, without asking for a password (as minisign -W).
        #[structopt(short = "W", long = "without-password")]
        without_password: bool,
        /// Overwrites existing key files.
        #[structopt(short = "f", long)]
        force: bool,
    },
    /// Signs each FILE into FILE.minisig, with release metadata when --name and --version are given.
    Sign {
        /// The secret key.
        #[structopt(short = "s", long = "secret-key", parse(from_os_str))]
        secret_key: PathBuf,
        /// The release's name, e.g. SEBLINUX-base.
        #[structopt(long, requires = "version")]
        name: Option<String>,
        /// The release's version, e.g. 1.1.
        #[structopt(long, requires = "name")]
        version: Option<String>,
        /// Comma-separated search keywords, e.g. SEBLINUX.
        #[structopt(long, requires = "name")]
        keywords: Option<String>,
        /// The files to sign.
        #[structopt(required = true, parse(from_os_str))]
        files: Vec<PathBuf>,
    },
    /// Writes a key rotation record: the new public key, signed by the old secret key, handing
    /// the packages named over to the new key (KEYROTATION-OLDID-NEWID.pub and its .minisig).
    Rotate {
        /// The old secret key, the one the packages are bound to.
        #[structopt(short = "s", long = "secret-key", parse(from_os_str))]
        secret_key: PathBuf,
        /// The new public key: a .pub file or its RW... line.
        #[structopt(short = "p", long = "public-key")]
        public_key: String,
        /// A package name handed over, exact or a prefix ending in `*` (repeatable).
        #[structopt(long = "name", required = true, number_of_values = 1)]
        names: Vec<String>,
        /// The folder to write the record into (a shared folder, so that it travels).
        #[structopt(short = "o", long = "output-dir", parse(from_os_str), default_value = ".")]
        output_dir: PathBuf,
    },
    /// Verifies each FILE against FILE.minisig and prints its signed release metadata.
    Verify {
        /// The public key: a .pub file or its RW... line.
        #[structopt(short = "p", long = "public-key")]
        public_key: String,
        /// The files to verify.
        #[structopt(required = true, parse(from_os_str))]
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    match try_main(Command::from_args()) {
        Ok(true) => ExitCode::SUCCESS,
        // Each failure has had its own line already.
        Ok(false) => ExitCode::FAILURE,
        Err(Error::Write { source, .. }) if source.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("signing-tool: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the command; `Ok(false)` when some of its files failed.
fn try_main(command: Command) -> Result<bool, Error> {
    match command {
        Command::Keygen { public_key, secret_key, without_password, force } => {
            let password = if without_password { None } else { Some(password::ask_new()?) };
            let key = files::keygen(&public_key, &secret_key, password.as_deref().map(String::as_str), force)?;
            say(&format!(
                "key {}: secret key written to {}, public key to {}\n{}",
                key.key_id(),
                secret_key.display(),
                public_key.display(),
                key.to_base64()
            ))?;
            Ok(true)
        }
        Command::Sign { secret_key, name, version, keywords, files: paths } => {
            let meta = name.zip(version).map(|(name, version)| ReleaseMeta {
                name,
                version,
                keywords: keywords.iter().flat_map(|list| list.split(',')).map(str::to_owned).collect(),
            });
            let key = files::load_secret_key(&secret_key, password::ask)?;
            let timestamp = files::unix_now();
            each_file(&paths, |path| {
                let signature = files::sign_file(&key, path, meta.as_ref(), timestamp)?;
                Ok(format!("{}: signed by key {} into {}", path.display(), key.key_id(), signature.display()))
            })
        }
        Command::Rotate { secret_key, public_key, names, output_dir } => {
            let new = files::load_public_key(&public_key)?;
            let old = files::load_secret_key(&secret_key, password::ask)?;
            let (path, rotation) = files::write_rotation(&old, &new, &names, &output_dir, files::unix_now())?;
            say(&format!(
                "{}: key {} hands {} over to key {}",
                path.display(),
                rotation.from,
                rotation.names.join(", "),
                rotation.to.key_id()
            ))?;
            Ok(true)
        }
        Command::Verify { public_key, files: paths } => {
            let key = files::load_public_key(&public_key)?;
            each_file(&paths, |path| {
                let verified: Verified = files::verify_file(&key, path)?;
                Ok(format!("{}: {verified}", path.display()))
            })
        }
    }
}

/// Runs `work` on every file, printing its line or its error, and tells whether all succeeded.
fn each_file(paths: &[PathBuf], work: impl Fn(&Path) -> Result<String, Error>) -> Result<bool, Error> {
    let mut all = true;
    for path in paths {
        match work(path) {
            Ok(line) => say(&line)?,
            Err(err) => {
                eprintln!("signing-tool: {err}");
                all = false;
            }
        }
    }
    Ok(all)
}

fn say(line: &str) -> Result<(), Error> {
    writeln!(io::stdout().lock(), "{line}").map_err(|source| Error::Write { path: "standard output".into(), source })
}
