//! Every scheduler script against a private 3-master Redis Cluster, with the scheduling
//! state split over three shards per provider (three hash tags, spread over the nodes).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{account, fund, task, tenant};
use switchyard_core::{AccountState, Config, Plan, ProcessMode, Provider, QuotaKind, ServiceMode};
use switchyard_scheduler::{
    CancelOutcome, CompleteOutcome, FailKind, FailOutcome, Owner, Scheduler, StoredStatus,
};

const MJ: Provider = Provider::Midjourney;

async fn cluster_scheduler() -> Scheduler {
    let cluster = switchyard_test_support::cluster()
        .expect("a private 3-master cluster (redis-server and redis-cli on PATH)");
    let mut c = Config::default();
    c.scheduler.pacing =
        switchyard_core::config::PacingDefaults::all(switchyard_core::config::Pacing::NONE);
    c.redis.url = cluster.url.clone();
    c.redis.cluster = true;
    c.redis.key_prefix = switchyard_test_support::unique_prefix("cluster");
    c.scheduler.lease_ms = 1000;
    c.scheduler.shards = 3;
    c.scheduler.retry_backoff_ms = 10;
    c.scheduler.retry_backoff_max_ms = 20;
    Scheduler::connect(&c).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_script_runs_on_a_cluster() {
    let s = cluster_scheduler().await;
    assert_eq!(s.bases(MJ).len(), 3);
    // Tenants land in different shards; each has its own account and pool account.
    let tenants = ["t_c1", "t_c2", "t_c3", "t_c4"];
    for t in tenants {
        tenant(&s, t, Plan::Premium).await; // tenant.lua
        fund(&s, t, QuotaKind::MjQuota, 1000).await; // topup.lua
        account(
            &s,
            MJ,
            &Owner::Tenant(t.into()),
            &format!("{t}_acc"),
            [0, 2, 0],
        )
        .await; // account_upsert.lua
    }
    for i in 0..6 {
        account(&s, MJ, &Owner::Pool, &format!("pool_{i}"), [10, 10, 10]).await;
    }
    // submit.lua (single and batch), claim.lua, heartbeat.lua, report.lua, complete.lua.
    let mut ids = Vec::new();
    for t in tenants {
        // With webhooks: their events are written (counted below).
        let mut a = task(t, MJ, ServiceMode::Ppu, ProcessMode::Fast, 14);
        let mut b = task(t, MJ, ServiceMode::Byoa, ProcessMode::Fast, 14);
        for x in [&mut a, &mut b] {
            x.extra
                .push(("wh_endpoint".into(), "https://hooks.example/c".into()));
        }
        ids.push((t, a.id.clone()));
        ids.push((t, b.id.clone()));
        s.submit(&a).await.unwrap();
        for r in s.submit_batch(&[b]).await.unwrap() {
            r.unwrap();
        }
    }
    let mut claimed = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while claimed.len() < 8 {
        claimed.extend(s.claim(MJ, 8, Duration::from_millis(100)).await.unwrap());
        assert!(
            std::time::Instant::now() < deadline,
            "claimed {}",
            claimed.len()
        );
    }
    let leases: Vec<_> = claimed.iter().map(|c| c.lease.clone()).collect();
    assert!(s.heartbeat(&leases).await.unwrap().iter().all(|ok| *ok));
    for c in &claimed {
        assert!(
            s.report(&c.lease, Some("ref"), Some(10), None)
                .await
                .unwrap()
        );
    }
    // fail.lua: a transient failure retries; account_dead disables (account_state via fail).
    let (first, rest) = claimed.split_first().unwrap();
    assert_eq!(
        s.fail(&first.lease, &FailKind::Transient, "502", "")
            .await
            .unwrap(),
        FailOutcome::Retry
    );
    for c in rest {
        assert_eq!(
            s.complete(&c.lease, "{}").await.unwrap(),
            CompleteOutcome::Completed
        );
    }
    let retried = s
        .claim(MJ, 1, Duration::from_secs(3))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(retried.lease.id, first.lease.id);
    // reap.lua: let the lease lapse.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while s.reap(MJ, 100).await.unwrap() == 0 {
        assert!(std::time::Instant::now() < deadline, "nothing reaped");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let again = s
        .claim(MJ, 1, Duration::from_secs(1))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(again.attempt, 3);
    assert_eq!(
        s.complete(&again.lease, "{}").await.unwrap(),
        CompleteOutcome::Completed
    );
    // cancel.lua and account_state.lua.
    let q = task("t_c1", MJ, ServiceMode::Ppu, ProcessMode::Relax, 6);
    s.submit(&q).await.unwrap();
    assert_eq!(
        s.cancel("t_c1", &q.id).await.unwrap(),
        CancelOutcome::Cancelled
    );
    assert!(
        s.set_account_state(
            MJ,
            &Owner::Tenant("t_c2".into()),
            "t_c2_acc",
            Some(&AccountState::Disabled {
                reason: "test".into()
            })
        )
        .await
        .unwrap()
    );
    // Reads across slots: tasks, balances, accounts, events.
    for (t, id) in &ids {
        let rec = s.get_task(t, id).await.unwrap().unwrap();
        assert_eq!(rec.status, StoredStatus::Completed, "{t} {id}");
    }
    for t in tenants {
        let b = s.balances(t).await.unwrap()[&QuotaKind::MjQuota];
        assert_eq!(b.held, 0);
        assert_eq!(b.captured, 14, "{t}: one PPU task charged once");
    }
    let pool = s.list_accounts(MJ, &Owner::Pool).await.unwrap();
    assert_eq!(pool.len(), 6);
    let mut events = 0;
    for base in s.bases(MJ) {
        events += s.read_events(&base, "0", 1000, 0).await.unwrap().len();
    }
    assert!(events > 20, "{events} events");
}
