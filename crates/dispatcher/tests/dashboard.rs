//! The operator dashboard in headless Chromium: it loads without console errors and
//! shows the tenants, the accounts and a non-empty throughput chart after a workload;
//! a screenshot is written to `target/dashboard.png`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::{ADMIN, Api};
use serde_json::json;

fn chromium() -> Option<String> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(str::to_string)
}

fn headless(
    browser: &str,
    profile: &std::path::Path,
    extra: &[&str],
    url: &str,
) -> std::process::Output {
    Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=8000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("run chromium")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_dashboard_shows_tenants_accounts_and_throughput() {
    let mut api = Api::start("dashboard").await;
    api.pool().await;
    api.run_workers();
    let (tenant, key) = api.tenant("premium").await;
    api.credit(&tenant, "suno_quota", 1000).await;
    api.credit(&tenant, "mj_quota", 1000).await;
    let c = api.client(&key);
    let mut ids = Vec::new();
    for i in 0..4 {
        let t = c
            .create_task(
                "suno",
                "generate_music",
                json!({"gpt_description_prompt": format!("s{i} [sim:ms=50]")}),
                None,
            )
            .await
            .unwrap();
        ids.push(t["task_id"].as_str().unwrap().to_string());
    }
    let bad = c
        .create_task(
            "midjourney",
            "imagine",
            json!({"prompt": "no [sim:fail] [sim:ms=20]"}),
            None,
        )
        .await
        .unwrap();
    ids.push(bad["task_id"].as_str().unwrap().to_string());
    for id in &ids {
        c.wait_task(id, Duration::from_secs(20)).await.unwrap();
    }
    // The data behind the page: the four Suno completions (tasks without a webhook,
    // counted by their complete calls) per account and per minute, and the failure.
    let data = switchyard_dispatcher::client::Client::admin(&api.url, ADMIN)
        .dashboard()
        .await
        .unwrap();
    let per_account: u64 = data["providers"]["suno"]["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["recent"]["completed"].as_u64().unwrap())
        .sum();
    assert_eq!(per_account, 4, "{data}");
    let per_minute: u64 = data["throughput"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["completed"].as_u64().unwrap())
        .sum();
    assert_eq!(per_minute, 4, "{data}");
    let failed: u64 = data["throughput"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["failed"].as_u64().unwrap())
        .sum();
    assert_eq!(failed, 1, "{data}");
    let Some(browser) = chromium() else {
        assert!(
            std::env::var("CI").is_err(),
            "CI must have chromium (.ci/run installs it)"
        );
        eprintln!("skipped the page: no chromium on this machine (apt-get install chromium)");
        return;
    };
    let profile = std::env::temp_dir().join(format!("sy-chromium-{}", std::process::id()));
    let url = format!("{}/dashboard#token={ADMIN}", api.url);
    let (browser2, profile2, url2) = (browser.clone(), profile.clone(), url.clone());
    let dom =
        tokio::task::spawn_blocking(move || headless(&browser2, &profile2, &["--dump-dom"], &url2))
            .await
            .unwrap();
    let html = String::from_utf8_lossy(&dom.stdout).to_string();
    let log = String::from_utf8_lossy(&dom.stderr).to_string();
    for line in log.lines().filter(|l| l.contains("CONSOLE")) {
        assert!(
            !line.contains("Uncaught") && !line.to_lowercase().contains("error"),
            "console: {line}"
        );
    }
    assert!(
        html.contains("data-loaded=\"1\""),
        "the page did not load its data:\n{html}"
    );
    assert!(html.contains("premium co"), "tenant missing");
    assert!(
        html.contains("pool suno") && html.contains("pool midjourney"),
        "accounts missing"
    );
    assert!(html.contains("class=\"active\""), "account states missing");
    let chart_total: u64 = html
        .split("data-value=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next()?.parse::<u64>().ok())
        .sum();
    assert!(chart_total >= 4, "throughput chart is empty");
    assert!(
        html.contains("upstream_rejected"),
        "recent failures missing"
    );
    let shot = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/dashboard.png");
    let arg = format!("--screenshot={}", shot.display());
    let out = tokio::task::spawn_blocking(move || {
        headless(&browser, &profile, &[&arg, "--window-size=1400,1000"], &url)
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let size = std::fs::metadata(&shot).unwrap().len();
    assert!(size > 10_000, "screenshot is {size} bytes");
    api.stop().await;
}
