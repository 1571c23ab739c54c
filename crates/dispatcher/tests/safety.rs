//! Secrets never leak (logs, responses), rate limits, Redis outages, account notifications.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use common::{ADMIN, Api, Receiver};
use reqwest::Method;
use serde_json::json;

static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct Capture;
impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_secret_reaches_a_log_line_or_a_response() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("debug")
        .with_writer(|| Capture)
        .with_ansi(false)
        .try_init();
    let mut api = Api::start("safety_secrets").await;
    api.run_workers();
    let mut responses = Vec::new();
    let (tenant, key) = api.tenant("premium").await;
    api.credit(&tenant, "suno_quota", 1000).await;
    // The captcha and rate-limited accounts may be probed out of service
    // before their tasks arrive; those tasks then fail over to the pool.
    api.credit(&tenant, "mj_quota", 1000).await;
    api.credit(&tenant, "gpts_quota", 1000).await;
    let creds = [
        (
            "suno",
            json!({"cookie": "sim:ok:SECRET-COOKIE-ALPHA-123456"}),
        ),
        (
            "suno",
            json!({"cookie": "sim:banned:SECRET-COOKIE-BANNED-7890"}),
        ),
        (
            "midjourney",
            json!({"token": "sim:captcha:SECRET-DISCORD-TOKEN-42", "channel_id": "c1"}),
        ),
        (
            "gpts",
            json!({"access_token": "sim:ratelimited:SECRET-GPT-TOKEN-99"}),
        ),
    ];
    for (p, c) in &creds {
        let mut body = json!({"provider": p, "name": "acct", "credentials": c});
        if *p == "midjourney" {
            body["capacity"] = json!({"fast": 2});
        } else {
            body["concurrency"] = json!(2);
        }
        let (s, _, v) = api
            .raw(
                Some(&key),
                Method::POST,
                "/api/v1/accounts",
                Some(&body.to_string()),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        responses.push(v.to_string());
    }
    let hook = Receiver::start(1).await;
    let whsec = "WEBHOOK-SECRET-DO-NOT-LEAK";
    let cfg = json!({"service_mode": "private", "webhook_config": {"endpoint": hook.url, "secret": whsec}});
    let c = api.client(&key);
    let mut ids = Vec::new();
    for (model, tt, input) in [
        (
            "suno",
            "generate_music",
            json!({"gpt_description_prompt": "a [sim:ms=50]"}),
        ),
        (
            "suno",
            "generate_music",
            json!({"gpt_description_prompt": "b [sim:fail] [sim:ms=20]"}),
        ),
        (
            "midjourney",
            "imagine",
            json!({"prompt": "c", "process_mode": "fast"}),
        ),
        ("gpts", "create_conversation", json!({"message": "d"})),
    ] {
        let t = c
            .create_task(model, tt, input, Some(cfg.clone()))
            .await
            .unwrap();
        responses.push(t.to_string());
        ids.push(t["task_id"].as_str().unwrap().to_string());
    }
    // Let everything run its course (failures, disables, cool-downs, webhooks).
    tokio::time::sleep(Duration::from_secs(3)).await;
    for id in &ids {
        responses.push(c.get_task(id, 0).await.unwrap().to_string());
    }
    responses.push(
        c.fetch(&ids)
            .await
            .unwrap()
            .iter()
            .map(|v| v.to_string())
            .collect(),
    );
    for path in ["/api/v1/accounts", "/api/v1/me"] {
        responses.push(
            api.raw(Some(&key), Method::GET, path, None)
                .await
                .2
                .to_string(),
        );
    }
    responses.push(
        api.admin(Method::GET, "/admin/v1/tenants", None, None)
            .await
            .1
            .to_string(),
    );
    responses.push(
        api.admin(Method::GET, "/admin/v1/stats", None, None)
            .await
            .1
            .to_string(),
    );
    responses.push(
        api.raw(Some("sy_bad"), Method::GET, "/api/v1/me", None)
            .await
            .2
            .to_string(),
    );
    for (_, v, _) in hook.got.lock().unwrap().iter() {
        responses.push(v.to_string());
    }
    let logs = String::from_utf8_lossy(&LOGS.lock().unwrap()).to_string();
    assert!(logs.len() > 100, "logs were captured");
    let secrets = [
        "SECRET-COOKIE-ALPHA-123456",
        "SECRET-COOKIE-BANNED-7890",
        "SECRET-DISCORD-TOKEN-42",
        "SECRET-GPT-TOKEN-99",
        whsec,
        key.as_str(),
        ADMIN,
    ];
    for s in secrets {
        assert!(!logs.contains(s), "a log line contains {s}");
        for r in &responses {
            assert!(!r.contains(s), "a response contains {s}: {r}");
        }
    }
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_over_its_rate_gets_429_with_retry_after() {
    let api = Api::start_with("safety_rate", |c| {
        c.dispatcher.rate_limit_per_s = 1;
        c.dispatcher.rate_limit_burst = 2;
    })
    .await;
    let (tenant, key) = api.tenant("developer").await;
    api.credit(&tenant, "suno_quota", 1000).await;
    let body = json!({"model": "suno", "task_type": "generate_music", "input": {"gpt_description_prompt": "x"}}).to_string();
    let mut statuses = Vec::new();
    let mut retry = None;
    for _ in 0..4 {
        let (s, h, _) = api
            .raw(Some(&key), Method::POST, "/api/v1/task", Some(&body))
            .await;
        statuses.push(s);
        if s == 429 {
            retry = h
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
        }
    }
    assert_eq!(&statuses[..2], &[200, 200]);
    assert!(statuses[2..].contains(&429), "{statuses:?}");
    let retry: u64 = retry.unwrap().parse().unwrap();
    assert!(retry >= 1);
    // `me` is rate-limited too: come back when told.
    tokio::time::sleep(std::time::Duration::from_secs(retry)).await;
    let me = api.client(&key).me().await.unwrap();
    let created = statuses.iter().filter(|s| **s == 200).count() as i64;
    assert_eq!(
        me["held"]["suno_quota"].as_i64(),
        Some(10 * created),
        "a refused request holds nothing"
    );
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_answers_503_and_readyz_says_so() {
    let port = switchyard_test_support::free_port();
    let dir = std::env::temp_dir().join(format!("sy-outage-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut redis = std::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--dir",
            dir.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    switchyard_test_support::wait_until("redis up", Duration::from_secs(5), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let mut c = switchyard_core::Config::default();
    c.scheduler.pacing =
        switchyard_core::config::PacingDefaults::all(switchyard_core::config::Pacing::NONE);
    c.redis.url = format!("redis://127.0.0.1:{port}");
    c.redis.key_prefix = "outage".into();
    let sched = switchyard_scheduler::Scheduler::connect(&c).await.unwrap();
    let secrets = switchyard_core::secrets::SecretBox::new("k").unwrap();
    let t = switchyard_dispatcher::tenants::Tenant {
        tenant_id: "t_out".into(),
        name: "o".into(),
        plan: switchyard_core::Plan::Developer,
        created_at: String::new(),
        default_service_mode: switchyard_core::ServiceMode::Ppu,
        failover_max_wait_s: 0,
        notification_webhook: None,
        notification_secret: None,
        approved_extras: false,
        max_queued: None,
        max_pending_s: 0,
        downgrade_when_no_fast_hours: true,
    };
    let key = switchyard_dispatcher::tenants::create(&sched, &t)
        .await
        .unwrap();
    let state = switchyard_dispatcher::AppState::new(sched, secrets);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(switchyard_dispatcher::serve(
        state,
        listener,
        std::future::pending(),
    ));
    let http = reqwest::Client::new();
    assert_eq!(
        http.get(format!("{url}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    redis.kill().unwrap();
    redis.wait().unwrap();
    let r = http
        .post(format!("{url}/api/v1/task"))
        .header("x-api-key", &key)
        .json(&json!({"model": "suno", "task_type": "generate_music", "input": {"gpt_description_prompt": "x"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["data"]["error"]["reason"], "unavailable");
    assert_eq!(
        http.get(format!("{url}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        503
    );
    assert_eq!(
        http.get(format!("{url}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_banned_account_notifies_its_tenant() {
    let mut api = Api::start("safety_notify").await;
    api.run_workers();
    let (tenant, key) = api.tenant("developer").await;
    api.credit(&tenant, "suno_quota", 100).await;
    let hook = Receiver::start(0).await;
    let (s, _, v) = api
        .raw(
            Some(&key),
            Method::PATCH,
            "/api/v1/me/settings",
            Some(
                &json!({"notification_webhook": {"endpoint": hook.url, "secret": "n-secret"}})
                    .to_string(),
            ),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, _, acc) = api
        .raw(Some(&key), Method::POST, "/api/v1/accounts",
            Some(&json!({"provider": "suno", "name": "mine", "credentials": {"cookie": "sim:banned:b1"}, "concurrency": 1}).to_string()))
        .await;
    assert_eq!(s, 201, "{acc}");
    let suno_acc = acc["data"]["account_id"].as_str().unwrap().to_string();
    api.credit(&tenant, "mj_quota", 100).await;
    let mj = api
        .client(&key)
        .add_account(&json!({"provider": "midjourney", "name": "mine",
            "credentials": {"token": "sim:banned:mj-banned-0001"},
            "capacity": {"relax": 1, "fast": 1, "turbo": 0}}))
        .await
        .unwrap();
    let mj_acc = mj["account_id"].as_str().unwrap().to_string();
    // The probe of the new credentials finds the ban (then these are refused
    // `no_account`), or a task does.
    for (model, task_type, input) in [
        (
            "suno",
            "generate_music",
            json!({"gpt_description_prompt": "x"}),
        ),
        ("midjourney", "imagine", json!({"prompt": "x"})),
    ] {
        if let Err(e) = api
            .client(&key)
            .create_task(
                model,
                task_type,
                input,
                Some(json!({"service_mode": "private"})),
            )
            .await
        {
            assert_eq!(e.reason, "no_account", "{e:?}");
        }
    }
    // GoAPI's name for Midjourney, ours in the same shape for Suno.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    // Each was the tenant's only account: none is left to serve.
    for (kind, acc_id, provider) in [
        ("account_disabled", &suno_acc, "suno"),
        ("mj_bot_banned", &mj_acc, "midjourney"),
        ("no_active_account", &suno_acc, "suno"),
        ("no_active_mj_bot", &mj_acc, "midjourney"),
    ] {
        loop {
            let got = hook.got.lock().unwrap().clone();
            if let Some((h, v, _)) = got.iter().find(|(_, v, _)| v["type"] == kind) {
                assert_eq!(v["detail"]["account_id"], acc_id.as_str());
                assert_eq!(v["detail"]["provider"], provider);
                assert!(v["message"].is_string() && v["time"].is_u64());
                assert_eq!(h["x-webhook-secret"], "n-secret");
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no {kind} notification: {got:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    api.stop().await;
}

/// GoAPI's backups: a tenant whose last primary account stops serving is told its backups
/// took over (`backup_accounts_promoted`, with the mode); the backups then run its tasks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_promoted_notify_their_tenant_and_take_the_work() {
    let mut api = Api::start("safety_backups").await;
    api.run_workers();
    let (_, key) = api.tenant("premium").await;
    let hook = api.notifications(&key).await;
    let client = api.client(&key);
    let primary = client
        .add_account(&json!({"provider": "suno", "name": "main",
            "credentials": {"cookie": "sim:ok:suno-main-0001"}, "concurrency": 2}))
        .await
        .unwrap();
    let backup = client
        .add_account(&json!({"provider": "suno", "name": "spare", "backup": true,
            "credentials": {"cookie": "sim:ok:suno-spare-0001"}, "concurrency": 2}))
        .await
        .unwrap();
    let primary_id = primary["account_id"].as_str().unwrap().to_string();
    let byoa = json!({"service_mode": "private"});
    let t = client
        .create_task(
            "suno",
            "generate_music",
            json!({"gpt_description_prompt": "a song [sim:ms=20]"}),
            Some(byoa.clone()),
        )
        .await
        .unwrap();
    let t = client
        .wait_task(t["task_id"].as_str().unwrap(), Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(
        t["meta"]["account_id"],
        primary_id.as_str(),
        "the primary serves: {t}"
    );
    // More work than the primary runs at once: it waits for the primary; the backup,
    // idle, makes no upstream job (the simulator's witness).
    let mut ids = Vec::new();
    for i in 0..6 {
        let t = client
            .create_task(
                "suno",
                "generate_music",
                json!({"gpt_description_prompt": format!("song {i} [sim:ms=200]")}),
                Some(byoa.clone()),
            )
            .await
            .unwrap();
        ids.push(t["task_id"].as_str().unwrap().to_string());
    }
    for id in &ids {
        let t = client.wait_task(id, Duration::from_secs(30)).await.unwrap();
        assert_eq!(t["meta"]["account_id"], primary_id.as_str(), "{t}");
    }
    let stats = api.h.sim.stats();
    assert_eq!(stats.accounts["suno-main-0001"].max, 2);
    assert!(
        !stats.accounts.contains_key("suno-spare-0001"),
        "the backup stayed idle"
    );
    client
        .update_account(&primary_id, &json!({"enabled": false}))
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let got = hook.got.lock().unwrap().clone();
        // Disabled by its tenant: no ban is reported.
        assert!(
            got.iter()
                .all(|(_, v, _)| v["type"] != "account_disabled" && v["type"] != "account_banned"),
            "{got:?}"
        );
        if let Some((_, v, _)) = got
            .iter()
            .find(|(_, v, _)| v["type"] == "backup_accounts_promoted")
        {
            assert_eq!(v["detail"]["provider"], "suno");
            assert_eq!(v["detail"]["mode"], "relax");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no backup_accounts_promoted: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let t = client
        .create_task(
            "suno",
            "generate_music",
            json!({"gpt_description_prompt": "another [sim:ms=20]"}),
            Some(byoa),
        )
        .await
        .unwrap();
    let t = client
        .wait_task(t["task_id"].as_str().unwrap(), Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(t["status"], "completed", "{t}");
    assert_eq!(
        t["meta"]["account_id"], backup["account_id"],
        "the backup serves: {t}"
    );
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_account_events_reach_the_operators_webhook_and_metrics() {
    let hook = Receiver::start(0).await;
    let url = hook.url.clone();
    let mut api = Api::start_with("pool_events", move |c| {
        c.dispatcher.operator_webhook = url;
        c.dispatcher.operator_webhook_secret = "op-secret".into();
    })
    .await;
    api.run_workers();
    let (s, v) = api
        .admin(
            Method::POST,
            "/admin/v1/pool/accounts",
            Some(json!({"provider": "suno", "name": "pool suno",
                "credentials": {"cookie": "sim:banned:pool-banned-0001"}, "concurrency": 2})),
            None,
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let acc = v["data"]["account_id"].as_str().unwrap().to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    for kind in ["account_disabled", "no_active_account"] {
        loop {
            let got = hook.got.lock().unwrap().clone();
            if let Some((h, v, _)) = got.iter().find(|(_, v, _)| v["type"] == kind) {
                assert_eq!(v["detail"]["account_id"], acc.as_str(), "{v}");
                assert_eq!(v["pool"], true, "{v}");
                assert_eq!(h["x-webhook-secret"], "op-secret");
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no {kind} for the operator: {got:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let text = reqwest::get(format!("{}/metrics", api.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("switchyard_pool_account_events_total")
                && l.contains("provider=\"suno\"")
                && l.contains("state=\"disabled\"")),
        "{text}"
    );
    api.stop().await;
}
