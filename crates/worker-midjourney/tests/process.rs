//! Real Midjourney worker processes killed with SIGKILL: a second process finishes the job
//! the first started, from the upstream reference alone, with one upstream job, although the
//! channel has moved on by more than a page of messages.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::{Value, json};
use switchyard_core::{Plan, Provider, QuotaKind, ServiceMode};
use switchyard_harness::{Harness, WorkerProcess, output};
use switchyard_scheduler::{Owner, StoredStatus, TaskRecord};

/// The channel the worker uses when the account names none.
const CHANNEL: &str = "0";

fn spawn_worker(h: &Harness) -> WorkerProcess {
    h.spawn_worker_binary(env!("CARGO_BIN_EXE_switchyard-worker-midjourney"), &[])
}

fn reference(r: &TaskRecord) -> Value {
    serde_json::from_str(r.upstream.as_deref().unwrap_or_default()).unwrap_or(Value::Null)
}

async fn setup(name: &str) -> Harness {
    let h = Harness::with(name, |c| c.scheduler.lease_ms = 1500).await;
    h.tenant("t_p", Plan::Premium).await;
    h.fund("t_p", QuotaKind::MjQuota, 10_000).await;
    h.account(
        Provider::Midjourney,
        &Owner::Pool,
        "pool1",
        "sim:ok:mjcrash",
        [5, 5, 5],
    )
    .await;
    h
}

async fn imagine(h: &Harness, text: &str) -> String {
    h.submit(
        "t_p",
        ServiceMode::Ppu,
        "midjourney",
        "imagine",
        json!({"prompt": text, "process_mode": "fast"}),
    )
    .await
}

/// Kill the worker once the job message and the job id are stored; returns the reference.
async fn kill_when_referenced(h: &Harness, id: &str, mut worker: WorkerProcess) -> Value {
    let r = h
        .wait_task(
            "t_p",
            id,
            "a reference with the job message and job id",
            Duration::from_secs(20),
            |r| {
                let v = reference(r);
                v["message_id"].is_string() && v["job_id"].is_string()
            },
        )
        .await;
    worker.kill(); // SIGKILL: no hand-back
    reference(&r)
}

fn assert_resumed(h: &Harness, r: &TaskRecord, marker: &str, job_id: &str) {
    assert_eq!(r.status, StoredStatus::Completed, "{:?}", r);
    assert_eq!(r.attempts, 2, "claimed again after the crash");
    let out = output(r);
    assert_eq!(out["job_id"], job_id, "the result of the first job: {out}");
    assert!(out["image_url"].as_str().unwrap().contains(job_id), "{out}");
    assert_eq!(out["progress"], 100);
    let stats = h.sim.stats();
    assert_eq!(stats.tasks[marker], 1, "one upstream job for the task");
    assert_eq!(stats.accounts["mjcrash"].submissions, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_still_running_is_finished_by_the_next_process() {
    let h = setup("mj_resume_running").await;
    let id = imagine(&h, "a heron at dawn [sim:ms=6000] [sim:task=run1]").await;
    let a = spawn_worker(&h);
    let before = kill_when_referenced(&h, &id, a).await;
    // The channel moves on: the job message is far beyond the most recent page.
    h.sim.discord_chatter(CHANNEL, 150);
    let b = spawn_worker(&h);
    let r = h.wait_terminal("t_p", &id, Duration::from_secs(30)).await;
    b.terminate(Duration::from_secs(10));
    assert_resumed(&h, &r, "run1", before["job_id"].as_str().unwrap());
    assert_eq!(reference(&r)["message_id"], before["message_id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_ended_while_no_one_watched_is_found_in_the_channel() {
    let h = setup("mj_resume_ended").await;
    let id = imagine(&h, "a lighthouse in fog [sim:ms=2000] [sim:task=end1]").await;
    let a = spawn_worker(&h);
    let before = kill_when_referenced(&h, &id, a).await;
    // The job ends upstream while no worker runs, and then more than a page of messages
    // lands on top of its result.
    h.wait_upstream_idle("mjcrash", Duration::from_secs(20))
        .await;
    h.sim.discord_chatter(CHANNEL, 250);
    let b = spawn_worker(&h);
    let r = h.wait_terminal("t_p", &id, Duration::from_secs(30)).await;
    b.terminate(Duration::from_secs(10));
    assert_resumed(&h, &r, "end1", before["job_id"].as_str().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_failed_while_no_one_watched_fails_once() {
    let h = setup("mj_resume_failed").await;
    let id = imagine(&h, "a bad prompt [sim:ms=2000] [sim:fail] [sim:task=fail1]").await;
    let a = spawn_worker(&h);
    kill_when_referenced(&h, &id, a).await;
    h.wait_upstream_idle("mjcrash", Duration::from_secs(20))
        .await;
    h.sim.discord_chatter(CHANNEL, 150);
    let b = spawn_worker(&h);
    let r = h.wait_terminal("t_p", &id, Duration::from_secs(30)).await;
    b.terminate(Duration::from_secs(10));
    assert_eq!(r.status, StoredStatus::Failed, "{:?}", r);
    assert!(
        r.error
            .as_ref()
            .is_some_and(|e| e.message.contains("Banned prompt")),
        "{:?}",
        r
    );
    assert_eq!(h.sim.stats().tasks["fail1"], 1, "not submitted again");
    let bal = h.sched.balances("t_p").await.unwrap()[&QuotaKind::MjQuota];
    assert_eq!(
        (bal.captured, bal.held),
        (0, 0),
        "a failed task is refunded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_seen_only_as_its_message_is_found_by_its_prompt_after_it_ended() {
    let h = setup("mj_resume_no_job_id").await;
    // The first progress (which names the job id) comes 2 s after the job message.
    let id = imagine(&h, "a fox in snow [sim:ms=8000] [sim:task=early1]").await;
    let mut a = spawn_worker(&h);
    let r = h
        .wait_task(
            "t_p",
            &id,
            "a reference with the job message",
            Duration::from_secs(20),
            |r| reference(r)["message_id"].is_string(),
        )
        .await;
    a.kill();
    assert!(
        reference(&r)["job_id"].is_null(),
        "killed before the job id was seen: {:?}",
        r.upstream
    );
    h.wait_upstream_idle("mjcrash", Duration::from_secs(20))
        .await;
    h.sim.discord_chatter(CHANNEL, 150);
    let b = spawn_worker(&h);
    let r = h.wait_terminal("t_p", &id, Duration::from_secs(30)).await;
    b.terminate(Duration::from_secs(10));
    assert_eq!(r.status, StoredStatus::Completed, "{:?}", r);
    assert_eq!(r.attempts, 2);
    assert!(output(&r)["job_id"].is_string(), "{}", r.output);
    assert_eq!(h.sim.stats().tasks["early1"], 1, "one upstream job");
}

/// A task's record and its log.
async fn task_and_log(h: &Harness, tenant: &str, id: &str) -> (TaskRecord, Vec<String>) {
    let r = h.sched.get_task(tenant, id).await.unwrap().unwrap();
    let log = h.sched.task_log(&r).await.unwrap();
    (r, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_work_runs_in_relax_when_no_account_has_fast_hours() {
    let h = Harness::new("mj_fast_relax").await;
    // PPU: the pool's only account has no fast hours.
    h.tenant("t_p", Plan::Premium).await;
    h.fund("t_p", QuotaKind::MjQuota, 10_000).await;
    h.account(
        Provider::Midjourney,
        &Owner::Pool,
        "pool1",
        "sim:no_fast:relax-pool",
        [2, 2, 0],
    )
    .await;
    // BYOA: the tenant's only account has none either.
    h.tenant("t_b", Plan::Premium).await;
    h.upsert_uncapped("t_b").await;
    h.account(
        Provider::Midjourney,
        &Owner::Tenant("t_b".into()),
        "own1",
        "sim:no_fast:relax-own",
        [2, 2, 0],
    )
    .await;
    let input = json!({"prompt": "a heron --fast [sim:ms=100]", "process_mode": "fast"});
    let ppu = h
        .submit(
            "t_p",
            ServiceMode::Ppu,
            "midjourney",
            "imagine",
            input.clone(),
        )
        .await;
    let byoa = h
        .submit("t_b", ServiceMode::Byoa, "midjourney", "imagine", input)
        .await;
    let held = h.sched.balances("t_p").await.unwrap()[&QuotaKind::MjQuota].held;
    let w = spawn_worker(&h);
    for (tenant, id) in [("t_p", &ppu), ("t_b", &byoa)] {
        let r = h.wait_terminal(tenant, id, Duration::from_secs(30)).await;
        assert_eq!(r.status, StoredStatus::Completed, "{r:?}");
        let (r, log) = task_and_log(&h, tenant, id).await;
        assert_eq!(r.process_mode, switchyard_core::ProcessMode::Relax, "{r:?}");
        assert!(log.iter().any(|l| l.contains("runs in relax")), "{log:?}");
    }
    w.terminate(Duration::from_secs(10));
    // PPU: charged the relax price, the difference refunded.
    let table = switchyard_core::PriceTable::seed();
    let spec = |mode: &str| {
        switchyard_core::TaskSpec::parse(
            "midjourney",
            "imagine",
            &json!({"prompt": "a heron", "process_mode": mode}),
            &h.config.parse_options(),
        )
        .unwrap()
    };
    let fast = table.price(ServiceMode::Ppu, &spec("fast")).amount as i64;
    let relax = table.price(ServiceMode::Ppu, &spec("relax")).amount as i64;
    assert!(relax < fast);
    assert_eq!(held, fast, "the fast price was held at submit");
    let bal = h.sched.balances("t_p").await.unwrap()[&QuotaKind::MjQuota];
    assert_eq!(
        (bal.captured, bal.refunded, bal.held, bal.available),
        (relax, fast - relax, 0, 10_000 - relax),
        "{bal:?}"
    );
    // The relax jobs ran with --relax, the fast attempts were refused upstream.
    let stats = h.sim.stats();
    assert!(stats.accounts["relax-pool"].submissions >= 2, "{stats:?}");
}

/// Which of `workers` is the session lease holder `holder` (`<pid>-<id>`).
fn holding(workers: &[WorkerProcess], holder: &str) -> usize {
    let pid: u32 = holder.split('-').next().unwrap().parse().unwrap();
    workers
        .iter()
        .position(|w| w.id() == pid)
        .expect("the holder is one of ours")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gateway_session_per_account_across_processes_and_past_a_killed_holder() {
    let h = Harness::with("mj_sessions", |c| c.scheduler.lease_ms = 2000).await;
    h.tenant("t_p", Plan::Premium).await;
    h.upsert_uncapped("t_p").await;
    h.fund("t_p", QuotaKind::MjQuota, 1_000_000).await;
    const ACCOUNTS: usize = 20;
    for i in 0..ACCOUNTS {
        h.account(
            Provider::Midjourney,
            &Owner::Pool,
            &format!("pool{i}"),
            &format!("sim:ok:mjsess{i}"),
            [0, 3, 0],
        )
        .await;
    }
    let mut ids = Vec::new();
    for i in 0..60 {
        ids.push(
            imagine(
                &h,
                &format!("a lighthouse {i} [sim:ms=2500] [sim:task=s{i}]"),
            )
            .await,
        );
    }
    let mut workers: Vec<WorkerProcess> = (0..4).map(|_| spawn_worker(&h)).collect();
    // Kill the process holding pool0's session once that account runs a job.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let holder = loop {
        let running = h
            .sim
            .stats()
            .accounts
            .get("mjsess0")
            .is_some_and(|c| c.current > 0);
        if running
            && let Some(holder) = h
                .sched
                .session_holder(Provider::Midjourney, "pool0")
                .await
                .unwrap()
        {
            break holder;
        }
        assert!(std::time::Instant::now() < deadline, "pool0 never ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let victim = holding(&workers, &holder);
    workers.remove(victim).kill();
    for id in &ids {
        let r = h.wait_terminal("t_p", id, Duration::from_secs(60)).await;
        assert_eq!(r.status, StoredStatus::Completed, "{r:?}");
    }
    let taken_over = h
        .sched
        .session_holder(Provider::Midjourney, "pool0")
        .await
        .unwrap()
        .expect("another process holds pool0's session");
    assert_ne!(taken_over, holder);
    for w in workers {
        w.terminate(Duration::from_secs(10));
    }
    let stats = h.sim.stats();
    for i in 0..ACCOUNTS {
        let s = stats
            .gateway_sessions
            .get(&format!("mjsess{i}"))
            .copied()
            .unwrap_or_default();
        assert!(s.max <= 1, "mjsess{i}: {} sessions open at once", s.max);
    }
    assert!(
        stats.gateway_sessions["mjsess0"].submissions >= 2,
        "a new session after the kill"
    );
    for i in 0..60 {
        assert_eq!(
            stats.tasks[&format!("s{i}")],
            1,
            "one upstream job for task {i}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_hours_found_by_info_end_the_pause_early() {
    let h = Harness::new("mj_info_probe").await;
    let table = switchyard_core::PlanTable::seed();
    // These tenants keep fast work in fast mode on their own account (no relax, no
    // failover): it waits for fast hours.
    for (tenant, cred) in [
        ("t_back", "sim:no_fast_once:fast-back"),
        ("t_none", "sim:no_fast:fast-none"),
    ] {
        h.tenant(tenant, Plan::Premium).await;
        let mut settings =
            switchyard_scheduler::TenantSettings::from_plan("premium", table.get(Plan::Premium), 0)
                .with_downgrade(false);
        settings.failover = false;
        h.sched.upsert_tenant(tenant, &settings).await.unwrap();
        h.account(
            Provider::Midjourney,
            &Owner::Tenant(tenant.into()),
            &format!("acc_{tenant}"),
            cred,
            [1, 1, 0],
        )
        .await;
    }
    let input = json!({"prompt": "a kestrel [sim:ms=100]", "process_mode": "fast"});
    let back = h
        .submit(
            "t_back",
            ServiceMode::Byoa,
            "midjourney",
            "imagine",
            input.clone(),
        )
        .await;
    let none = h
        .submit("t_none", ServiceMode::Byoa, "midjourney", "imagine", input)
        .await;
    let w = spawn_worker(&h);
    // "Credits exhausted" pauses fast work for an hour; the probe's /info finds the fast
    // hours back within seconds and the task runs in fast.
    let r = h
        .wait_terminal("t_back", &back, Duration::from_secs(20))
        .await;
    assert_eq!(r.status, StoredStatus::Completed, "{r:?}");
    assert_eq!(r.process_mode, switchyard_core::ProcessMode::Fast);
    assert_eq!(
        h.sim.stats().accounts["fast-back"].submissions,
        2,
        "refused once, then run"
    );
    // Where /info shows none, the pause stays and the fast task waits.
    let acc = h
        .sched
        .get_account(
            Provider::Midjourney,
            &Owner::Tenant("t_none".into()),
            "acc_t_none",
        )
        .await
        .unwrap()
        .unwrap();
    assert!(acc.fast_off_until_ms.is_some(), "{acc:?}");
    let still = h.sched.get_task("t_none", &none).await.unwrap().unwrap();
    assert_eq!(still.status, StoredStatus::Queued, "{still:?}");
    w.terminate(Duration::from_secs(10));
}

/// A holder that stops cleanly (SIGTERM) gives its gateway session up: the next process
/// to follow the account takes it at once, not when the lease would have expired (up to
/// 6 s after its last renewal), and never two sessions at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_that_stops_cleanly_hands_its_gateway_session_over_at_once() {
    let h = Harness::with("mj_session_handover", |c| c.scheduler.lease_ms = 2000).await;
    h.tenant("t_p", Plan::Premium).await;
    h.upsert_uncapped("t_p").await;
    h.fund("t_p", QuotaKind::MjQuota, 1_000_000).await;
    h.account(
        Provider::Midjourney,
        &Owner::Pool,
        "pool0",
        "sim:ok:mjhand",
        [0, 3, 0],
    )
    .await;
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(imagine(&h, &format!("a harbour {i} [sim:ms=1500] [sim:task=h{i}]")).await);
    }
    let mut workers: Vec<WorkerProcess> = (0..2).map(|_| spawn_worker(&h)).collect();
    for id in &ids {
        let r = h.wait_terminal("t_p", id, Duration::from_secs(30)).await;
        assert_eq!(r.status, StoredStatus::Completed, "{r:?}");
    }
    let holder = h
        .sched
        .session_holder(Provider::Midjourney, "pool0")
        .await
        .unwrap()
        .expect("a process holds pool0's session");
    let victim = holding(&workers, &holder);
    let status = workers.remove(victim).terminate(Duration::from_secs(20));
    assert!(status.success(), "{status:?}");
    let stopped = std::time::Instant::now();
    // A new job of the account: the other process follows it, and wants its session.
    let id = imagine(&h, "a harbour after [sim:ms=300] [sim:task=h9]").await;
    let taken_over = loop {
        if let Some(now) = h
            .sched
            .session_holder(Provider::Midjourney, "pool0")
            .await
            .unwrap()
            && now != holder
        {
            break stopped.elapsed();
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(15),
            "no other process took the session"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        taken_over < Duration::from_millis(3500),
        "the session passed {taken_over:?} after the holder stopped: it waited for the lease to expire"
    );
    // The new holder serves it.
    let r = h.wait_terminal("t_p", &id, Duration::from_secs(30)).await;
    assert_eq!(r.status, StoredStatus::Completed, "{r:?}");
    for w in workers {
        w.terminate(Duration::from_secs(10));
    }
    let s = h.sim.stats().gateway_sessions["mjhand"];
    assert!(s.max <= 1, "{} sessions open at once", s.max);
    assert!(s.submissions >= 2, "a new session after the handover");
}
