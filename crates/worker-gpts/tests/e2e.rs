//! GPTs end to end: scheduler + worker + simulator on loopback, real HTTP and SSE.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use switchyard_core::{AccountState, Plan, Provider, QuotaKind, ServiceMode};
use switchyard_harness::{Harness, output};
use switchyard_scheduler::{Owner, StoredStatus};
use switchyard_worker_gpts::Gpts;

const T: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_gpts_task_type_completes() {
    let h = Harness::new("gpts_all").await;
    h.tenant("t_d", Plan::Developer).await;
    h.fund("t_d", QuotaKind::GptsQuota, 1000).await;
    h.account(
        Provider::Gpts,
        &Owner::Pool,
        "pool1",
        "sim:ok:gpt1",
        [10, 0, 0],
    )
    .await;
    let w = h.start_worker(Arc::new(Gpts::new(&h.config)));
    let ppu = ServiceMode::Ppu;
    let conv = h
        .submit(
            "t_d",
            ppu,
            "gpts",
            "create_conversation",
            json!({"gizmo_id": "g-abc123", "message": "hello there [sim:ms=100]"}),
        )
        .await;
    let c = h.wait_terminal("t_d", &conv, T).await;
    assert_eq!(c.status, StoredStatus::Completed, "{:?}", c);
    let out = output(&c);
    let conv_id = out["conversation_id"].as_str().unwrap().to_string();
    assert!(
        out["message"]["content"]
            .as_str()
            .unwrap()
            .contains("hello there")
    );
    assert_eq!(out["message"]["role"], "assistant");
    let next = h
        .submit(
            "t_d",
            ppu,
            "gpts",
            "continue_conversation",
            json!({"conversation_id": conv_id, "message": "and more [sim:ms=50]"}),
        )
        .await;
    let n = h.wait_terminal("t_d", &next, T).await;
    assert_eq!(output(&n)["conversation_id"], json!(conv_id));
    // A file and a GPT are seen only by the account that made them: download and modify
    // what the tasks before made.
    let mut made = serde_json::Map::new();
    type Input<'a> =
        Box<dyn Fn(&serde_json::Map<String, serde_json::Value>) -> serde_json::Value + 'a>;
    let cases: [(&str, Input, &str); 6] = [
        (
            "upload_file",
            Box::new(|_| json!({"file_url": format!("{}/_cdn/doc.pdf", h.sim.url())})),
            "file_id",
        ),
        (
            "download_file",
            Box::new(|m| json!({"file_id": m["file_id"]})),
            "download_url",
        ),
        (
            "create_gpts",
            Box::new(|_| json!({"name": "Helper", "instructions": "be kind"})),
            "gizmo_id",
        ),
        (
            "modify_gpts",
            Box::new(|m| json!({"gizmo_id": m["gizmo_id"], "name": "Helper 2"})),
            "gizmo_id",
        ),
        ("models", Box::new(|_| json!({})), "models"),
        ("gizmos", Box::new(|_| json!({})), "gizmos"),
    ];
    for (tt, input, field) in cases {
        let id = h.submit("t_d", ppu, "gpts", tt, input(&made)).await;
        let r = h.wait_terminal("t_d", &id, T).await;
        assert_eq!(r.status, StoredStatus::Completed, "{tt}: {:?}", r);
        assert!(
            !output(&r)[field].is_null(),
            "{tt} output lacks {field}: {}",
            r.output
        );
        made.insert(field.to_string(), output(&r)[field].clone());
    }
    // 30 + 10 + 1 + 1 + 100 + 10 + 0 + 0.
    let b = h.sched.balances("t_d").await.unwrap()[&QuotaKind::GptsQuota];
    assert_eq!((b.captured, b.held), (152, 0));
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_usage_limit_cools_the_account_until_the_time_given() {
    let h = Harness::new("gpts_limit").await;
    h.tenant("t_d", Plan::Developer).await;
    h.fund("t_d", QuotaKind::GptsQuota, 1000).await;
    h.account(
        Provider::Gpts,
        &Owner::Pool,
        "limited",
        "sim:ratelimited:lim",
        [5, 0, 0],
    )
    .await;
    h.account(
        Provider::Gpts,
        &Owner::Pool,
        "fine",
        "sim:ok:fine",
        [5, 0, 0],
    )
    .await;
    let w = h.start_worker(Arc::new(Gpts::new(&h.config)));
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(
            h.submit(
                "t_d",
                ServiceMode::Ppu,
                "gpts",
                "create_conversation",
                json!({"message": format!("hi {i} [sim:ms=50]")}),
            )
            .await,
        );
    }
    for id in &ids {
        let r = h.wait_terminal("t_d", id, T).await;
        assert_eq!(
            (r.status, r.account.as_deref()),
            (StoredStatus::Completed, Some("fine")),
            "{:?}",
            r
        );
    }
    let acc = h
        .sched
        .get_account(Provider::Gpts, &Owner::Pool, "limited")
        .await
        .unwrap()
        .unwrap();
    match acc.state {
        AccountState::CoolingDown { until_ms, reason } => {
            // The simulator said "clears_in": 30 seconds.
            assert!(
                until_ms >= before + 29_000 && until_ms <= before + 40_000,
                "until {until_ms}"
            );
            assert!(reason.contains("usage_limited"), "{reason}");
        }
        other => panic!("expected a cool-down, got {other:?}"),
    }
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_cut_mid_answer_is_resumed_not_returned_half_written() {
    let h = Harness::new("gpts_cut").await;
    h.tenant("t_d", Plan::Developer).await;
    h.fund("t_d", QuotaKind::GptsQuota, 1000).await;
    h.account(
        Provider::Gpts,
        &Owner::Pool,
        "pool1",
        "sim:ok:cut1",
        [5, 0, 0],
    )
    .await;
    let w = h.start_worker(Arc::new(Gpts::new(&h.config)));
    let text = "a long question about tides [sim:ms=800] [sim:cut] [sim:task=x1]";
    let id = h
        .submit(
            "t_d",
            ServiceMode::Ppu,
            "gpts",
            "create_conversation",
            json!({"message": text}),
        )
        .await;
    let r = h.wait_terminal("t_d", &id, T).await;
    w.stop().await;
    assert_eq!(r.status, StoredStatus::Completed, "{:?}", r);
    assert_eq!(
        output(&r)["message"]["content"],
        json!(format!("Simulated answer to: {text}")),
        "the whole answer"
    );
    assert_eq!(r.attempts, 2, "retried after the cut, from the reference");
    assert_eq!(h.sim.stats().tasks["x1"], 1, "resumed, not sent again");
}
