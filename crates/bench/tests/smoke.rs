//! The peer benchmark's command works end to end at a small size: the kit's RESULT line
//! for each worker and mode (each run checks that every task completed once and every
//! balance adds up, or exits 1), the latency scenario, and a clear refusal of bad input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn bench(env: &[(&str, &str)]) -> std::process::Output {
    let redis = switchyard_test_support::redis();
    Command::new(env!("CARGO_BIN_EXE_switchyard-peer-bench"))
        .env("REDIS_URL", &redis.url)
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn field<'a>(line: &'a str, name: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {name} in {line}"))
}

#[test]
fn prints_the_kits_result_line_for_each_worker_and_mode() {
    for runtime in ["0", "1"] {
        for mode in ["separate", "concurrent"] {
            let out = bench(&[
                ("N", "600"),
                ("BATCH", "100"),
                ("RUNTIME", runtime),
                ("MODE", mode),
            ]);
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success(),
                "{mode} runtime={runtime}: {stdout}{stderr}"
            );
            let line = stdout
                .lines()
                .find(|l| l.starts_with("RESULT "))
                .unwrap_or_else(|| panic!("no RESULT line: {stdout}{stderr}"));
            assert!(field(line, "lib").starts_with("switchyard@"), "{line}");
            assert_eq!(field(line, "mode"), mode);
            assert_eq!(field(line, "n"), "600");
            assert_eq!(field(line, "conc"), "50");
            let worker = if runtime == "1" { "runtime" } else { "loop" };
            assert_eq!(field(line, "worker"), worker);
            let rate = if mode == "separate" {
                "process_jps"
            } else {
                "e2e_jps"
            };
            assert!(field(line, rate).parse::<f64>().unwrap() > 0.0, "{line}");
            assert!(
                field(line, "enqueue_jps").parse::<f64>().unwrap() > 0.0,
                "{line}"
            );
        }
    }
}

#[test]
fn measures_dispatch_latency() {
    let out = bench(&[("N", "600"), ("SCENARIO", "latency")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout.lines().find(|l| l.starts_with("RESULT ")).unwrap();
    assert_eq!(field(line, "scenario"), "latency");
    assert!(field(line, "dispatch_ms_p99").parse::<f64>().unwrap() >= 0.0);
}

#[test]
fn bad_input_is_refused_with_what_to_do() {
    for (env, says) in [
        (("MODE", "sideways"), "use separate or concurrent"),
        (("N", "many"), "N=many is not a valid value"),
        (("BATCH", "0"), "must be at least 1"),
        (
            ("SCENARIO", "nope"),
            "use peer (the default), latency or utilisation",
        ),
    ] {
        let out = bench(&[env]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{env:?} was accepted");
        assert!(stderr.contains(says), "{env:?}: {stderr}");
        assert!(!String::from_utf8_lossy(&out.stdout).contains("RESULT"));
    }
}
