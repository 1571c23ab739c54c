//! `switchyard demo` as a user runs it: a child process driven over HTTP with the keys
//! it prints, stopped with SIGINT; nothing it started outlives it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn the_demo_serves_tasks_and_stops_cleanly_on_sigint() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args([
            "demo",
            "--no-workload",
            "--listen",
            "127.0.0.1:0",
            "--admin-token",
            "demo-test-admin",
        ])
        .env_remove("REDIS_URL")
        .env_remove("SWITCHYARD_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
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

    let t0 = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the demo did not exit within 10 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    // Its redis-server is gone.
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", redis_port)).is_ok() {
        assert!(
            Instant::now() < deadline,
            "the demo's redis-server still runs"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
