//! `switchyard-worker-suno`: runs Suno tasks. See `--help`.

use std::sync::Arc;

use switchyard_worker_suno::Suno;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    switchyard_worker::run_main(|c| Arc::new(Suno::new(c))).await
}
