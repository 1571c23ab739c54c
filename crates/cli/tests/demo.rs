//! `switchyard demo` as a user runs it: a child process driven over HTTP with the keys
//! it prints, stopped with SIGINT; nothing it started outlives it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{lines, signal, switchyard};

/// `/proc/<pid>/stat`: (command name, parent pid, start time).
fn stat(pid: u32) -> Option<(String, u32, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (head, rest) = s.rsplit_once(')')?;
    let comm = head.split_once('(')?.1.to_string();
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state, ppid, … starttime is field 22 of the whole line.
    Some((comm, f.get(1)?.parse().ok()?, f.get(19)?.parse().ok()?))
}

/// Every process descended from `root` now: (pid, name, start time).
fn descendants(root: u32) -> Vec<(u32, String, u64)> {
    let all: Vec<(u32, String, u32, u64)> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| stat(pid).map(|(c, pp, st)| (pid, c, pp, st)))
        .collect();
    let mut out: Vec<(u32, String, u64)> = Vec::new();
    let mut parents = vec![root];
    while let Some(p) = parents.pop() {
        for (pid, comm, _, st) in all.iter().filter(|(_, _, pp, _)| *pp == p) {
            out.push((*pid, comm.clone(), *st));
            parents.push(*pid);
        }
    }
    out
}

/// The demo as a child process, up to its "Ctrl-C to stop" line.
struct Demo {
    child: Child,
    api: String,
    redis_port: u16,
    keys: Vec<(String, String)>,
    /// The rest of its stdout (kept open so that its last lines can be written).
    _stdout: std::sync::mpsc::Receiver<String>,
}

fn start_demo() -> Demo {
    let mut child = switchyard()
        .args([
            "demo",
            "--no-workload",
            "--listen",
            "127.0.0.1:0",
            "--admin-token",
            "demo-test-admin",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let rx = lines(child.stdout.take().unwrap());
    let (mut api, mut redis_port, mut keys) = (String::new(), None, Vec::new());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("demo output");
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["API", url, ..] => api = url.to_string(),
            ["redis", "private", "redis-server", "on", addr, ..] => {
                redis_port = addr.rsplit(':').next().and_then(|p| p.parse::<u16>().ok())
            }
            ["tenant", plan, "key", key] => keys.push((plan.to_string(), key.to_string())),
            ["Ctrl-C", ..] => break,
            _ => {}
        }
    }
    assert!(api.starts_with("http://127.0.0.1:"), "{api}");
    assert_eq!(keys.len(), 3);
    let redis_port = redis_port.expect("the demo started its own redis-server");
    Demo {
        child,
        api,
        redis_port,
        keys,
        _stdout: rx,
    }
}

/// Send `sig` to the demo; it exits with success within 10 s, and by then every
/// process it started (its redis-server and that server's watcher) is gone and the
/// private Redis's scratch directory is removed.
fn stop_demo(demo: Demo, sig: &str) {
    let Demo {
        mut child,
        redis_port,
        ..
    } = demo;
    let pid = child.id();
    let started = descendants(pid);
    assert!(
        started.iter().any(|(_, c, _)| c == "redis-server"),
        "the demo's redis-server is among its descendants: {started:?}"
    );
    assert!(
        started.iter().any(|(_, c, _)| c == "sh"),
        "the watcher is among its descendants: {started:?}"
    );
    let t0 = Instant::now();
    assert!(signal(pid, sig), "kill {sig} {pid}");
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the demo did not exit within 10 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(status.success(), "{status:?}");
    // Right when it has exited, nothing it started is alive (not even as a zombie).
    let left: Vec<_> = started
        .iter()
        .filter(|(p, _, st)| stat(*p).is_some_and(|(_, _, now)| now == *st))
        .collect();
    assert!(
        left.is_empty(),
        "still running after the demo exited: {left:?}"
    );
    let scratch = std::env::temp_dir().join(format!("switchyard-demo-{pid}"));
    assert!(!scratch.exists(), "{} is left behind", scratch.display());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", redis_port)).is_err(),
        "the demo's redis-server still answers"
    );
}

#[test]
fn the_demo_serves_tasks_and_stops_cleanly_on_sigint() {
    let demo = start_demo();
    let (api, keys) = (demo.api.clone(), demo.keys.clone());
    let developer = &keys.iter().find(|(p, _)| p == "developer").unwrap().1;

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = switchyard_dispatcher::client::Client::new(&api, developer);
        let t = c
            .create_task(
                "midjourney",
                "imagine",
                serde_json::json!({"prompt": "a red fox [sim:ms=300]", "process_mode": "fast"}),
                None,
            )
            .await
            .unwrap();
        let id = t["task_id"].as_str().unwrap();
        let done = c.wait_task(id, Duration::from_secs(30)).await.unwrap();
        assert_eq!(done["status"], "completed", "{done}");
        assert_eq!(done["output"]["image_urls"].as_array().unwrap().len(), 4);
        let stats: serde_json::Value = reqwest::Client::new()
            .get(format!("{api}/admin/v1/stats"))
            .bearer_auth("demo-test-admin")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            stats["data"]["providers"]["midjourney"]["pool"]["capacity"],
            180
        );
    });

    stop_demo(demo, "-INT");
}

#[test]
fn the_demo_stops_cleanly_on_sigterm() {
    stop_demo(start_demo(), "-TERM");
}
