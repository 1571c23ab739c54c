//! The variables `switchyard --help` advertises (`SWITCHYARD_URL`,
//! `SWITCHYARD_ADMIN_TOKEN`, `SWITCHYARD_API_KEY`) are the CLI's, not config keys: every
//! command runs with them set. Nested `SWITCHYARD_<SECTION>__<KEY>` variables are still
//! config, and an unknown one still stops the program with the key and the reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Stdio;
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use common::{FAST_V6_IMAGINE, lines, run, sigterm, switchyard, wait_line};

const CLI_VARS: [(&str, &str); 3] = [
    ("SWITCHYARD_URL", "http://127.0.0.1:9"),
    ("SWITCHYARD_ADMIN_TOKEN", "an-admin-token"),
    ("SWITCHYARD_API_KEY", "sy_not_a_real_key"),
];

#[test]
fn plans_and_price_run_with_the_cli_variables_set() {
    let (code, out, err) = run(&["plans", "--json"], &CLI_VARS);
    assert_eq!(code, 0, "plans: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["plans"]["premium"]["ppu_caps"]["midjourney"], 30);
    let (code, out, err) = run(&FAST_V6_IMAGINE, &CLI_VARS);
    assert_eq!(code, 0, "price: {err}");
    assert!(out.contains("mj_quota"), "{out}");
}

#[test]
fn admin_commands_read_the_cli_variables_instead_of_failing_on_config() {
    // Nothing listens on port 9: the command gets as far as calling the URL it was given.
    let (code, _, err) = run(&["tenant", "list"], &CLI_VARS);
    assert!(!err.contains("unknown field"), "{err}");
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("127.0.0.1:9"),
        "the URL from SWITCHYARD_URL: {err}"
    );
    let (code, _, err) = run(&["stats"], &CLI_VARS);
    assert_eq!((code, err.contains("unknown field")), (1, false), "{err}");
}

#[test]
fn serve_starts_with_the_cli_variables_set() {
    let redis = switchyard_test_support::redis();
    let mut child = switchyard()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .envs(CLI_VARS)
        .env("REDIS_URL", &redis.url)
        .env(
            "SWITCHYARD_REDIS__KEY_PREFIX",
            switchyard_test_support::unique_prefix("envserve"),
        )
        .env("SWITCHYARD_MASTER_KEY", "a-master-key-for-this-test")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = lines(child.stdout.take().unwrap());
    let started = match wait_line(&rx, Duration::from_secs(30), &mut Vec::new(), |l| {
        l.starts_with("switchyard dispatcher on http://")
    }) {
        Ok(()) => true,
        Err(RecvTimeoutError::Disconnected) => false,
        Err(RecvTimeoutError::Timeout) => panic!("serve did not start in 30 s"),
    };
    if !started {
        let out = child.wait_with_output().unwrap();
        panic!(
            "serve exited ({:?}) before listening: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    sigterm(&child);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}", out.status);
}

#[test]
fn nested_variables_are_config_and_an_unknown_one_fails_with_its_key() {
    let (code, out, err) = run(
        &["plans", "--json"],
        &[("SWITCHYARD_PLANS__PREMIUM__PPU_CAPS__MIDJOURNEY", "31")],
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["plans"]["premium"]["ppu_caps"]["midjourney"], 31);

    let (code, _, err) = run(&["plans"], &[("SWITCHYARD_REDIS__NOPE", "1")]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("redis") && err.contains("nope"), "{err}");
    assert!(err.contains("unknown field"), "the reason: {err}");

    let (code, _, err) = run(&["plans"], &[("SWITCHYARD_SCHEDULER__LEASE_MS", "10")]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("scheduler.lease_ms"), "{err}");

    // A single underscore is not a config key: not read, and said so.
    let (code, _, err) = run(&["plans"], &[("SWITCHYARD_REDIS_URL", "redis://x:1")]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("SWITCHYARD_REDIS_URL is not read") && err.contains("SWITCHYARD_REDIS__URL"),
        "{err}"
    );
    let (_, _, err) = run(
        &["plans"],
        &[
            CLI_VARS[0],
            CLI_VARS[1],
            CLI_VARS[2],
            ("SWITCHYARD_FAULTS_SEED", "7"),
        ],
    );
    assert!(
        !err.contains("warning"),
        "not config, and not meant to be: {err}"
    );
}
