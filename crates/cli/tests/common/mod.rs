//! Shared helpers for the tests of the `switchyard` command: the binary with a clean
//! environment, its output, its lines as they come, SIGTERM.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// `switchyard price` of a fast Midjourney v6 imagine, as JSON.
pub const FAST_V6_IMAGINE: [&str; 10] = [
    "price",
    "--model",
    "midjourney",
    "--task",
    "imagine",
    "--mode",
    "fast",
    "--prompt",
    "a red fox --v 6",
    "--json",
];

/// The `switchyard` binary, without this process's `SWITCHYARD_*` variables and
/// `REDIS_URL`: each test sets the environment it means.
pub fn switchyard() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_switchyard"));
    for (k, _) in std::env::vars_os() {
        if k.to_str()
            .is_some_and(|k| k.starts_with("SWITCHYARD_") || k == "REDIS_URL")
        {
            c.env_remove(k);
        }
    }
    // Hosted results in this test binary's scratch directory (removed when it exits).
    c.env(
        "SWITCHYARD_STORAGE__DIR",
        switchyard_test_support::scratch("files"),
    );
    c
}

/// Run `switchyard <args>` with `env` to the end: (exit code, stdout, stderr).
pub fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = switchyard()
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run switchyard");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The lines of `r` as they come (read on a thread until the end or until the receiver
/// is dropped).
pub fn lines(r: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Receive lines (each kept in `seen`) until one satisfies `hit`; the error when the
/// stream ends or `within` passes first.
pub fn wait_line(
    rx: &mpsc::Receiver<String>,
    within: Duration,
    seen: &mut Vec<String>,
    hit: impl Fn(&str) -> bool,
) -> Result<(), mpsc::RecvTimeoutError> {
    let deadline = Instant::now() + within;
    loop {
        let line = rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))?;
        let found = hit(&line);
        seen.push(line);
        if found {
            return Ok(());
        }
    }
}

/// `kill <sig> <pid>` (`sig` such as `-TERM`); whether the signal was sent.
pub fn signal(pid: u32, sig: &str) -> bool {
    Command::new("kill")
        .args([sig, &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// SIGTERM a child (the way an operator stops `serve` or `worker`).
pub fn sigterm(child: &Child) {
    assert!(signal(child.id(), "-TERM"), "kill -TERM {}", child.id());
}
