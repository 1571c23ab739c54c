//! A burst of requests larger than the Redis pool is served, not deadlocked: no request
//! holds one pooled connection while it waits for another.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::Api;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_past_the_pool_size_is_served() {
    let api = Api::start_with("pool_burst", |c| c.redis.pool_size = 4).await;
    let (_, key) = api.tenant("developer").await;
    let mut calls = Vec::new();
    for _ in 0..64 {
        let http = api.http.clone();
        let url = format!("{}/api/v1/me", api.url);
        let key = key.clone();
        calls.push(tokio::spawn(async move {
            http.get(url)
                .header("x-api-key", key)
                .timeout(Duration::from_secs(20))
                .send()
                .await
                .map(|r| r.status().as_u16())
        }));
    }
    for c in calls {
        let status = c.await.unwrap();
        assert!(
            matches!(status, Ok(200)),
            "a request stalled or failed: {status:?}"
        );
    }
    api.stop().await;
}
