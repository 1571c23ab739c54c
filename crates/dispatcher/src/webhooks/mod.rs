//! Webhooks: task events to the task's endpoint, account notifications to the tenant's.
//!
//! `endpoint` checks where a webhook may go (at create time and again, resolved, at each
//! attempt); `notify` consumes the scheduler's events and decides what each one sends;
//! `deliver` sends it, signed, with retries.
//!
//! Delivery reads every shard's event stream through a consumer group (so several
//! dispatchers share the work), keeps one ordered queue per task, and retries any non-2xx
//! or timeout with exponential backoff and full jitter (1 s doubling, at most
//! `webhook_max_backoff_s` apart) for `webhook_retry_for_s`. The stream entry is
//! acknowledged only when its delivery succeeded or was given up, and a dispatcher that
//! died leaves its entries to be claimed by another. Each attempt is logged on the task.
//! Every request carries `x-webhook-secret` and a signature
//! `x-switchyard-signature: t=<unix s>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.

mod deliver;
mod endpoint;
mod notify;

use switchyard_scheduler::Event;

pub use deliver::signature;
pub use endpoint::check_endpoint;
pub use notify::run;

/// The consumer group every dispatcher reads the event streams through.
const GROUP: &str = "webhooks";

/// One stream entry to deliver, held by this dispatcher's consumer until it is
/// acknowledged.
struct Job {
    consumer: String,
    provider: switchyard_core::Provider,
    base: String,
    entry: String,
    event: Event,
}
