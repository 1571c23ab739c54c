//! `/metrics` is Prometheus text and moves when tasks run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::Api;
use serde_json::json;

/// Parse Prometheus text: every sample line is `name{labels} value`.
fn parse(text: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line: {line}"));
        let v: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad name: {line}"
        );
        if series.contains('{') {
            assert!(series.ends_with('}'), "bad labels: {line}");
        }
        out.insert(series.to_string(), v);
    }
    out
}

fn sum(m: &HashMap<String, f64>, prefix: &str, label: &str) -> f64 {
    m.iter()
        .filter(|(k, _)| k.starts_with(prefix) && k.contains(label))
        .map(|(_, v)| v)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_move_when_tasks_run() {
    let mut api = Api::start("metrics").await;
    api.pool().await;
    api.run_workers();
    let (tenant, key) = api.tenant("developer").await;
    api.credit(&tenant, "suno_quota", 1000).await;
    let scrape = || async {
        let text = reqwest::get(format!("{}/metrics", api.url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        parse(&text)
    };
    let before = scrape().await;
    assert_eq!(
        before.get("switchyard_pool_capacity{provider=\"suno\"}"),
        Some(&50.0)
    );
    let c = api.client(&key);
    for i in 0..3 {
        let t = c
            .create_task(
                "suno",
                "generate_music",
                json!({"gpt_description_prompt": format!("s{i} [sim:ms=50]")}),
                None,
            )
            .await
            .unwrap();
        c.wait_task(t["task_id"].as_str().unwrap(), Duration::from_secs(20))
            .await
            .unwrap();
    }
    let after = scrape().await;
    let created =
        |m: &HashMap<String, f64>| sum(m, "switchyard_tasks_created_total", "provider=\"suno\"");
    let completed = |m: &HashMap<String, f64>| {
        sum(m, "switchyard_task_outcomes_total", "outcome=\"completed\"")
    };
    assert_eq!(created(&after) - created(&before), 3.0);
    assert_eq!(completed(&after) - completed(&before), 3.0);
    assert!(
        after
            .keys()
            .any(|k| k.starts_with("switchyard_claim_seconds")),
        "claim latency histogram"
    );
    assert_eq!(
        after.get("switchyard_queue_depth{provider=\"suno\"}"),
        Some(&0.0)
    );
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_lists_every_route_the_router_serves() {
    let api = Api::start("openapi").await;
    let doc: serde_json::Value = reqwest::get(format!("{}/openapi.json", api.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.0.3");
    let paths = doc["paths"].as_object().unwrap();
    for r in switchyard_dispatcher::openapi::ROUTES {
        assert!(
            paths[r.path].get(r.method).is_some(),
            "{} {}",
            r.method,
            r.path
        );
        // The router serves it: anything but the fallback's `not_found` code. (Not
        // /metrics: its gauges are process-wide and the other test here reads them.)
        if r.path == "/metrics" {
            continue;
        }
        let path = r
            .path
            .replace("{task_id}", "x")
            .replace("{account_id}", "acc_suno_x")
            .replace("{tenant_id}", "t_x");
        let method = reqwest::Method::from_bytes(r.method.to_uppercase().as_bytes()).unwrap();
        let resp = reqwest::Client::new()
            .request(method, format!("{}{path}", api.url))
            .send()
            .await
            .unwrap();
        let body: serde_json::Value = resp.json().await.unwrap_or(serde_json::Value::Null);
        assert_ne!(
            body["data"]["error"]["reason"], "not_found",
            "{} {} is not routed",
            r.method, r.path
        );
    }
    // Every API.md route is described.
    for p in [
        "/api/v1/task",
        "/api/v1/task/{task_id}",
        "/api/v1/task/fetch",
        "/api/v1/accounts",
        "/api/v1/me",
        "/admin/v1/tenants",
        "/admin/v1/tenants/{tenant_id}/credits",
        "/admin/v1/pool/accounts",
        "/admin/v1/stats",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
    ] {
        assert!(paths.contains_key(p), "{p} missing");
    }
    let codes = doc["components"]["schemas"]["Error"]["properties"]["data"]["properties"]["error"]
        ["properties"]["reason"]["enum"]
        .as_array()
        .unwrap();
    assert!(codes.iter().any(|c| c == "idempotency_key_reused"));
    api.stop().await;
}
