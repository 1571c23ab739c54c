//! Starting before Redis: `Scheduler::connect_waiting` (what worker binaries and
//! `switchyard serve` / `switchyard worker` use) waits for Redis to come up instead of
//! failing, and logs the URL with its password redacted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use switchyard_scheduler::Scheduler;
use switchyard_scheduler::connection::redact_url;
use switchyard_test_support::DurableRedis;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_waiting_waits_for_redis_to_start() {
    let redis = DurableRedis::new("late");
    let c = config(&redis.url(), "late");
    c.validate().unwrap();
    // Today's plain connect fails at once while nothing listens.
    assert!(Scheduler::connect(&c).await.unwrap_err().is_transient());
    let waiting = tokio::spawn({
        let c = c.clone();
        async move { Scheduler::connect_waiting(&c).await }
    });
    // Down for a while: it keeps waiting (neither returns nor panics).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !waiting.is_finished(),
        "connect_waiting gave up while Redis was down"
    );
    redis.start();
    let sched = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("connected within 10 s of Redis starting")
        .unwrap()
        .unwrap();
    sched.ping().await.unwrap();
    // It wrote the settings, as connect does: the scheduler works.
    setup(&sched, "tenant", 1, 1).await;
    let id = submit(&sched, &c, "tenant", "late").await;
    let got = sched.try_claim(PROVIDER, 1).await.unwrap();
    assert_eq!(got[0].lease.id, id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_waiting_does_not_wait_on_refused_credentials() {
    let redis = DurableRedis::with_args("auth", &["--requirepass", "right-password"]);
    redis.spawn();
    let url = format!("redis://:wrong-password@127.0.0.1:{}", redis.port);
    let c = config(&url, "auth");
    let e = tokio::time::timeout(Duration::from_secs(10), async {
        // Redis may still be starting at first (refused: transient, waited for); then
        // the password is refused, which waiting cannot mend.
        Scheduler::connect_waiting(&c).await
    })
    .await
    .expect("returned instead of waiting forever")
    .unwrap_err();
    assert!(!e.is_transient(), "{e}");
    assert!(!e.to_string().contains("wrong-password"), "{e}");
}

#[test]
fn urls_are_logged_without_their_password() {
    for (url, shown) in [
        ("redis://127.0.0.1:6380", "redis://127.0.0.1:6380"),
        ("redis://127.0.0.1:6380/2", "redis://127.0.0.1:6380/2"),
        ("redis://:s3cret@h:6379/0", "redis://:***@h:6379/0"),
        ("redis://user:s3cret@h:6379", "redis://user:***@h:6379"),
        ("rediss://user:p%40ss:w@h", "rediss://user:***@h"),
        ("redis://s3cret@h", "redis://***@h"),
        (
            "redis://h:1/0?password=s3cret&x=1",
            "redis://h:1/0?password=***&x=1",
        ),
        (
            "redis+unix:///tmp/r.sock?pass=s3cret",
            "redis+unix:///tmp/r.sock?pass=***",
        ),
    ] {
        assert_eq!(redact_url(url), shown, "{url}");
    }
}
