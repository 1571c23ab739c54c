//! Logs of `switchyard serve` and `switchyard worker`: on stderr, JSON with
//! `SWITCHYARD_LOG_FORMAT=json` (as for the worker binaries), and text without colour codes
//! when stderr is not a terminal.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;
use std::process::Stdio;
use std::time::Duration;

use common::{lines, sigterm, switchyard, wait_line};

/// Run `switchyard <args>` against the test Redis until a stderr line contains `marker`,
/// then SIGTERM it; returns (stdout, stderr lines).
fn logs_until(args: &[&str], env: &[(&str, &str)], marker: &str) -> (String, Vec<String>) {
    let redis = switchyard_test_support::redis();
    let mut child = switchyard()
        .args(args)
        .env("RUST_LOG", "info")
        .env("REDIS_URL", &redis.url)
        .env(
            "SWITCHYARD_REDIS__KEY_PREFIX",
            switchyard_test_support::unique_prefix("logs"),
        )
        .env("SWITCHYARD_MASTER_KEY", "a-master-key-for-this-test")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let rx = lines(child.stderr.take().unwrap());
    let mut lines = Vec::new();
    if let Err(e) = wait_line(&rx, Duration::from_secs(30), &mut lines, |l| {
        l.contains(marker)
    }) {
        let _ = child.kill();
        panic!("no `{marker}` on stderr ({e:?}); stderr so far: {lines:#?}")
    }
    sigterm(&child);
    let status = child.wait().unwrap();
    lines.extend(rx.iter());
    assert!(status.success(), "{status:?}: {lines:#?}");
    (out_reader.join().unwrap(), lines)
}

/// As [`logs_until`] with `SWITCHYARD_LOG_FORMAT=json`, until the log line `message`;
/// checks that every stderr line is JSON with a level, and that one is `message`.
fn json_logs_until(args: &[&str], message: &str) -> (String, Vec<String>) {
    let (stdout, lines) = logs_until(args, &[("SWITCHYARD_LOG_FORMAT", "json")], message);
    assert_json_lines(&lines, message);
    (stdout, lines)
}

fn assert_json_lines(lines: &[String], message: &str) {
    assert!(!lines.is_empty());
    for line in lines.iter().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("a stderr line is not JSON ({e}): {line:?}"));
        assert!(v["level"].is_string(), "{line}");
    }
    assert!(
        lines.iter().any(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .is_ok_and(|v| v["fields"]["message"] == message)
        }),
        "{lines:#?}"
    );
}

#[test]
fn serve_logs_json_on_stderr_with_switchyard_log_format() {
    let (stdout, lines) = json_logs_until(
        &["serve", "--listen", "127.0.0.1:0"],
        "dispatcher listening",
    );
    assert!(
        lines.iter().any(|l| l.contains("the admin API is off")),
        "the admin-API note is a log line too: {lines:#?}"
    );
    // stdout carries only what the command prints for people and scripts.
    assert!(
        stdout
            .lines()
            .all(|l| l.starts_with("switchyard dispatcher on http://127.0.0.1:")),
        "{stdout}"
    );
}

#[test]
fn worker_logs_json_on_stderr_with_switchyard_log_format() {
    let (stdout, _) = json_logs_until(&["worker", "--provider", "suno"], "worker started");
    assert!(stdout.trim().is_empty(), "no logs on stdout: {stdout}");
}

#[test]
fn text_logs_have_no_colour_codes_when_stderr_is_not_a_terminal() {
    let (stdout, lines) = logs_until(
        &["serve", "--listen", "127.0.0.1:0"],
        &[],
        "dispatcher listening",
    );
    let all = lines.join("\n");
    assert!(!all.contains('\x1b'), "colour codes in piped logs: {all:?}");
    assert!(
        all.contains("INFO") && all.contains("dispatcher listening"),
        "{all}"
    );
    assert!(
        !stdout.contains("dispatcher listening"),
        "logs go to stderr: {stdout}"
    );
}

#[test]
fn a_bad_log_format_is_a_usage_error() {
    let (code, _, err) = common::run(&["serve"], &[("SWITCHYARD_LOG_FORMAT", "yaml")]);
    assert_eq!(code, 2);
    assert!(err.contains("yaml") && err.contains("json"), "{err}");
}

#[test]
fn serve_started_before_redis_waits_for_it_and_says_where() {
    let port = switchyard_test_support::free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let mut child = switchyard()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("SWITCHYARD_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .env("REDIS_URL", &url)
        .env("SWITCHYARD_MASTER_KEY", "a-master-key-for-this-test")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = lines(child.stdout.take().unwrap());
    let err = lines(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    let mut wait_for = |stream: &str, what: &str| {
        let rx = if stream == "out" { &out } else { &err };
        if let Err(e) = wait_line(rx, Duration::from_secs(30), &mut seen, |l| l.contains(what)) {
            panic!("no `{what}` on std{stream} ({e:?}): {seen:#?}")
        }
    };
    wait_for("err", &format!("waiting for Redis at {url}"));
    assert!(
        child.try_wait().unwrap().is_none(),
        "serve exited while Redis was down"
    );
    let redis = switchyard_test_support::start_redis_at("servewaits", port).unwrap();
    wait_for("out", "switchyard dispatcher on http://127.0.0.1:");
    sigterm(&child);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(redis.stop());
}

#[test]
fn a_sigterm_while_waiting_for_redis_ends_serve_and_worker_cleanly() {
    let port = switchyard_test_support::free_port();
    let url = format!("redis://127.0.0.1:{port}");
    for args in [
        &["serve", "--listen", "127.0.0.1:0"][..],
        &["worker", "--provider", "suno"][..],
    ] {
        let mut child = switchyard()
            .args(args)
            .env("SWITCHYARD_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .env("REDIS_URL", &url)
            .env("SWITCHYARD_MASTER_KEY", "a-master-key-for-this-test")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let err = lines(child.stderr.take().unwrap());
        let mut seen = Vec::new();
        if let Err(e) = wait_line(&err, Duration::from_secs(30), &mut seen, |l| {
            l.contains("waiting for Redis")
        }) {
            panic!("{args:?}: no `waiting for Redis` ({e:?}): {seen:#?}")
        }
        sigterm(&child);
        let status = child.wait().unwrap();
        assert!(status.success(), "{args:?}: {status:?}");
    }
}
