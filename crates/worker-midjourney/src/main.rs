//! `switchyard-worker-midjourney`: runs Midjourney tasks through Discord. See `--help`.

use std::sync::Arc;

use switchyard_worker_midjourney::Midjourney;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    switchyard_worker::run_main(|c| Arc::new(Midjourney::new(c))).await
}
