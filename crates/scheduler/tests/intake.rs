//! The intake: one path from a parsed request to the task to submit, for every caller.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{Value, json};
use switchyard_core::{MjVersion, ProcessMode};
use switchyard_core::{Plan, Provider, QuotaKind, ServiceMode, TaskBody, TaskSpec};
use switchyard_scheduler::{IntakeError, Owner, Scheduler, TaskRequest};

const MJ: Provider = Provider::Midjourney;

fn request(s: &Scheduler, task_type: &str, input: Value, mode: ServiceMode) -> TaskRequest {
    let spec = TaskSpec::parse("midjourney", task_type, &input, &s.config().parse_options())
        .unwrap_or_else(|e| panic!("{task_type}: {e}"));
    TaskRequest {
        model: "midjourney".into(),
        task_type: task_type.into(),
        spec,
        input,
        service_mode: mode,
        extra: vec![],
        idempotency: None,
    }
}

/// Submit through the intake and run the task to completion on whatever account claims it.
async fn run_to_completion(s: &Scheduler, tenant: &str, plan: Plan, req: TaskRequest) -> String {
    let task = s.intake(tenant, plan, req).await.unwrap();
    s.submit(&task).await.unwrap();
    let claimed = s.try_claim(MJ, 1).await.unwrap();
    assert_eq!(claimed.len(), 1);
    s.complete(&claimed[0].lease, r#"{"message_id":"m1"}"#)
        .await
        .unwrap();
    task.id
}

/// A follow-up takes its origin's pool, account, process mode and version, and the body
/// carries them to the worker as the typed spec.
#[tokio::test]
async fn a_follow_up_inherits_from_its_origin_and_travels_typed() {
    let s = scheduler("intake-follow").await;
    tenant(&s, "t_f", Plan::Premium).await;
    fund(&s, "t_f", QuotaKind::MjQuota, 1_000_000).await;
    account(&s, MJ, &Owner::Pool, "pool_a", [3, 3, 3]).await;
    account(&s, MJ, &Owner::Pool, "pool_b", [3, 3, 3]).await;
    let imagine = request(
        &s,
        "imagine",
        json!({"prompt": "a lighthouse --v 5.2", "process_mode": "turbo"}),
        ServiceMode::Ppu,
    );
    let origin = run_to_completion(&s, "t_f", Plan::Premium, imagine).await;
    let rec = s.get_task("t_f", &origin).await.unwrap().unwrap();
    let origin_account = rec.account.clone().unwrap_or_default();

    // The follow-up says nothing of mode or version.
    let up = request(
        &s,
        "upscale",
        json!({"origin_task_id": origin, "index": 2}),
        ServiceMode::Ppu,
    );
    let task = s.intake("t_f", Plan::Premium, up).await.unwrap();
    assert_eq!(task.pin.as_deref(), Some(origin_account.as_str()));
    assert_eq!(task.process_mode, ProcessMode::Turbo);
    let body = TaskBody::from_json(&task.body).unwrap();
    let TaskSpec::Midjourney(spec) = body.spec(&s.config().parse_options()).unwrap() else {
        panic!("not midjourney")
    };
    assert_eq!(spec.process_mode, ProcessMode::Turbo);
    assert_eq!(spec.version, MjVersion::V52AndBelow);
    assert_eq!(body.origin.as_ref().unwrap().task_id, origin);
    assert_eq!(body.origin.unwrap().output["message_id"], "m1");
    // Priced as a turbo V5.2 upscale, not as the defaults would price it.
    let turbo = s
        .config()
        .prices
        .price(ServiceMode::Ppu, &TaskSpec::Midjourney(spec));
    assert_eq!(task.ppu_price, turbo);
}

/// Refusals name what is wrong and build nothing.
#[tokio::test]
async fn refusals_say_why() {
    let s = scheduler("intake-refuse").await;
    tenant(&s, "t_r", Plan::Premium).await;
    let missing = request(
        &s,
        "upscale",
        json!({"origin_task_id": "no-such-task", "index": 1}),
        ServiceMode::Ppu,
    );
    assert!(matches!(
        s.intake("t_r", Plan::Premium, missing).await,
        Err(IntakeError::OriginNotFound(id)) if id == "no-such-task"
    ));

    // An origin still queued is not done.
    let queued = s
        .intake(
            "t_r",
            Plan::Premium,
            request(&s, "imagine", json!({"prompt": "x"}), ServiceMode::Ppu),
        )
        .await
        .unwrap();
    fund(&s, "t_r", QuotaKind::MjQuota, 1_000_000).await;
    s.submit(&queued).await.unwrap();
    let early = request(
        &s,
        "variation",
        json!({"origin_task_id": queued.id, "index": 1}),
        ServiceMode::Ppu,
    );
    match s.intake("t_r", Plan::Premium, early).await {
        Err(IntakeError::Invalid { field, message }) => {
            assert_eq!(field, "/input/origin_task_id");
            assert!(message.contains("pending"), "{message}");
        }
        other => panic!("{other:?}"),
    }

    // bot_id pins a hosted account: not on the PPU pool, and only an existing one.
    let ppu_bot = request(
        &s,
        "imagine",
        json!({"prompt": "x", "bot_id": "7"}),
        ServiceMode::Ppu,
    );
    assert!(matches!(
        s.intake("t_r", Plan::Premium, ppu_bot).await,
        Err(IntakeError::Invalid {
            field: "/input/bot_id",
            ..
        })
    ));
    let unknown_bot = request(
        &s,
        "imagine",
        json!({"prompt": "x", "bot_id": "7"}),
        ServiceMode::Byoa,
    );
    assert!(matches!(
        s.intake("t_r", Plan::Premium, unknown_bot).await,
        Err(IntakeError::AccountNotFound(id)) if id == "7"
    ));
}

/// GoAPI's integer `bot_id` is an account's number among the tenant's accounts of the
/// provider (1, 2, … in the order they were added, never reused); the account's id works
/// too; 0 pins nothing.
#[tokio::test]
async fn bot_ids_number_a_tenants_accounts() {
    let s = scheduler("intake-bots").await;
    tenant(&s, "t_b", Plan::Premium).await;
    let me = Owner::Tenant("t_b".into());
    for id in ["acc_first", "acc_second", "acc_third"] {
        account(&s, MJ, &me, id, [1, 1, 1]).await;
    }
    let numbers: Vec<(String, u32)> = s
        .list_accounts(MJ, &me)
        .await
        .unwrap()
        .into_iter()
        .map(|a| (a.id, a.bot_id))
        .collect();
    assert_eq!(
        numbers,
        [
            ("acc_first".into(), 1),
            ("acc_second".into(), 2),
            ("acc_third".into(), 3)
        ]
    );
    s.set_account_state(MJ, &me, "acc_second", None)
        .await
        .unwrap();
    account(&s, MJ, &me, "acc_fourth", [1, 1, 1]).await;
    let pin = |bot: Value| {
        let s = s.clone();
        async move {
            let req = request(
                &s,
                "imagine",
                json!({"prompt": "p", "bot_id": bot}),
                ServiceMode::Byoa,
            );
            s.intake("t_b", Plan::Premium, req).await.map(|t| t.pin)
        }
    };
    assert_eq!(pin(json!(3)).await.unwrap().as_deref(), Some("acc_third"));
    assert_eq!(pin(json!(4)).await.unwrap().as_deref(), Some("acc_fourth"));
    assert_eq!(
        pin(json!("acc_first")).await.unwrap().as_deref(),
        Some("acc_first")
    );
    assert_eq!(pin(json!(0)).await.unwrap(), None);
    // A removed account's number is not given to another.
    assert!(matches!(
        pin(json!(2)).await,
        Err(IntakeError::AccountNotFound(_))
    ));
}
