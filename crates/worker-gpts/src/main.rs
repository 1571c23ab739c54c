//! `switchyard-worker-gpts`: runs ChatGPT GPTs tasks. See `--help`.

use std::sync::Arc;

use switchyard_worker_gpts::Gpts;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    switchyard_worker::run_main(|c| Arc::new(Gpts::new(c))).await
}
