//! Running `signing-tool` and `minisign` in a scratch directory.
// Each test crate that includes this module uses only part of it.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A scratch directory where the commands run.
pub struct Scratch {
    dir: tempfile::TempDir,
}

/// What a command did.
pub struct Run {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch { dir: tempfile::tempdir().expect("create a scratch directory") }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, bytes).expect("write a scratch file");
        path
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).expect("read a scratch file")
    }

    /// Runs `signing-tool` with `args`, feeding `stdin`.
    pub fn tool(&self, args: &[&str], stdin: &str) -> Run {
        run(self.dir.path(), env!("CARGO_BIN_EXE_signing-tool"), args, stdin)
    }

    /// Runs `minisign` with `args`, feeding `stdin`.
    pub fn minisign(&self, args: &[&str], stdin: &str) -> Run {
        run(self.dir.path(), "minisign", args, stdin)
    }
}

fn run(dir: &Path, program: &str, args: &[&str], stdin: &str) -> Run {
    let mut child = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("failed to run {program}: {err}"));
    let mut input = child.stdin.take().expect("piped stdin");
    // A command that does not read its input closes the pipe early; that is not a failure.
    let _ = input.write_all(stdin.as_bytes());
    drop(input);
    let Output { status, stdout, stderr } = child.wait_with_output().expect("wait for the command");
    Run {
        ok: status.success(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Some content with a little of everything, the same on every run.
pub fn release_bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}
