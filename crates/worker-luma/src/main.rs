//! `switchyard-worker-luma`: runs Luma Dream Machine tasks. See `--help`.

use std::sync::Arc;

use switchyard_worker_luma::Luma;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    switchyard_worker::run_main(|c| Arc::new(Luma::new(c))).await
}
