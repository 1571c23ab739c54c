//! Reading task records (no script: a read changes nothing).

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use redis::AsyncCommands;
use serde_json::Value;
use switchyard_core::{ParseEnumError, ProcessMode, Provider, QuotaKind, ServiceMode, TaskStatus};

use crate::{Scheduler, SchedulerError, keys};

/// A task's status as the scripts store it (the API's is [`TaskStatus`], through
/// [`StoredStatus::api_status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoredStatus {
    /// Waiting in a lane for a claim.
    Queued,
    /// Waiting for its backoff to pass before a retry.
    Delayed,
    /// Claimed: holding a slot and running upstream.
    Processing,
    /// Finished with output.
    Completed,
    /// Finished with an error.
    Failed,
    /// Cancelled before it ran.
    Cancelled,
}

impl StoredStatus {
    /// Every status, in the order a task passes through them.
    pub const ALL: [StoredStatus; 6] = [
        StoredStatus::Queued,
        StoredStatus::Delayed,
        StoredStatus::Processing,
        StoredStatus::Completed,
        StoredStatus::Failed,
        StoredStatus::Cancelled,
    ];

    /// The stored name: `queued`, `delayed`, `processing`, `completed`, `failed`,
    /// `cancelled`.
    pub fn as_str(self) -> &'static str {
        match self {
            StoredStatus::Queued => "queued",
            StoredStatus::Delayed => "delayed",
            StoredStatus::Processing => "processing",
            StoredStatus::Completed => "completed",
            StoredStatus::Failed => "failed",
            StoredStatus::Cancelled => "cancelled",
        }
    }

    /// True for completed, failed and cancelled.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            StoredStatus::Completed | StoredStatus::Failed | StoredStatus::Cancelled
        )
    }

    /// The status as the API names it: a task waiting in a queue (queued, or delayed
    /// before a retry) is `staged` when `staged` (it waits for a PPU slot while its
    /// tenant is at its plan cap), `pending` otherwise. The one stored-to-API mapping.
    pub fn api_status(self, staged: bool) -> TaskStatus {
        match self {
            StoredStatus::Queued | StoredStatus::Delayed if staged => TaskStatus::Staged,
            StoredStatus::Queued | StoredStatus::Delayed => TaskStatus::Pending,
            StoredStatus::Processing => TaskStatus::Processing,
            StoredStatus::Completed => TaskStatus::Completed,
            StoredStatus::Failed => TaskStatus::Failed,
            StoredStatus::Cancelled => TaskStatus::Cancelled,
        }
    }
}

impl fmt::Display for StoredStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StoredStatus {
    type Err = ParseEnumError;

    /// The exact stored name.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StoredStatus::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| ParseEnumError {
                what: "stored task status",
                value: s.chars().take(64).collect(),
                expected: "queued, delayed, processing, completed, failed, cancelled",
            })
    }
}

/// Why a task failed, or (on a task waiting to retry) what its last run said.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TaskError {
    /// The stable error code (`upstream_rejected`, `retries_exhausted`, …); empty on a
    /// task waiting to retry.
    pub code: String,
    /// The message for the client.
    pub message: String,
    /// What the upstream said, verbatim.
    pub raw: String,
}

/// Where a task's webhook goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// The endpoint URL.
    pub endpoint: String,
    /// The signing secret, sealed (open it with the secrets key), if one was given.
    pub sealed_secret: Option<String>,
}

/// A task as stored, parsed once when read. A stored value that does not parse reads as
/// the field's default (noted per field); fields only the scripts use (`token`,
/// `hold_state`, `retention_s`, `enq_ms`, `user_pin`) are not carried.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRecord {
    /// The task id.
    pub id: String,
    /// The owning tenant.
    pub tenant: String,
    /// The provider (from the shard it was found in).
    pub provider: Provider,
    /// Its shard base (the key prefix of its task, body and log keys).
    pub(crate) base: String,
    /// The stored status; an unknown value reads as `Queued` (the API shows `pending`).
    pub status: StoredStatus,
    /// The service mode the client asked for (`svc`); anything but `byoa` reads as PPU.
    pub requested: ServiceMode,
    /// The pool it runs in now (`pool`: BYOA, or PPU by request or failover); anything
    /// but `byoa` reads as PPU.
    pub pool: ServiceMode,
    /// Whether it failed over from BYOA to the PPU pool.
    pub failover: bool,
    /// The process mode it takes capacity in (`mode`); unknown reads as relax.
    pub process_mode: ProcessMode,
    /// The account it runs or ran on (set by a claim).
    pub account: Option<String>,
    /// The account it must run on next: a client's pin, or its current account to
    /// resume on.
    pub pin: Option<String>,
    /// The account a retry should avoid (the one whose run failed).
    pub avoid: Option<String>,
    /// Runs claimed, less those ended by an account-level outcome; unparsed reads as 0.
    pub attempts: u32,
    /// Progress in per cent, as last reported; unparsed reads as 0.
    pub progress: u8,
    /// The upstream's reference for a run in progress (so a re-claim resumes).
    pub upstream: Option<String>,
    /// The output (partial while running): JSON, `Null` when none or not JSON.
    pub output: Value,
    /// The error fields, when any is set (a retry's raw message, a failure).
    pub error: Option<TaskError>,
    /// The balance its PPU price is charged to (`kind`); unknown reads as the
    /// provider's quota.
    pub quota_kind: QuotaKind,
    /// Its price on the PPU pool; unparsed reads as 0 (as do the other amounts).
    pub ppu_price: u64,
    /// The amount held on the balance for it (0 on BYOA).
    pub hold: u64,
    /// The amount captured when it finished (0 until then, and when refunded).
    pub consume: u64,
    /// When it was created, Unix ms.
    pub created_ms: u64,
    /// When its latest run started, Unix ms; 0 before.
    pub started_ms: u64,
    /// When it finished, Unix ms; 0 before.
    pub ended_ms: u64,
    /// How long it is kept once finished (its tenant's plan), in seconds; 0 when unknown.
    pub retention_s: u64,
    /// Its webhook, when the client gave one.
    pub webhook: Option<Webhook>,
    /// The request body, as submitted (a `TaskBody` as JSON; empty if the key is gone).
    pub body: String,
}

impl TaskRecord {
    /// Parse a stored hash (the body is read from its own key: empty here).
    pub(crate) fn parse(provider: Provider, base: String, f: &HashMap<String, String>) -> Self {
        let text = |k: &str| f.get(k).map_or("", String::as_str);
        let opt = |k: &str| Some(text(k).to_string()).filter(|v| !v.is_empty());
        let num = |k: &str| text(k).parse::<u64>().unwrap_or(0);
        let mode = |k: &str| {
            if text(k) == ServiceMode::Byoa.as_str() {
                ServiceMode::Byoa
            } else {
                ServiceMode::Ppu
            }
        };
        let error = TaskError {
            code: text("error_code").into(),
            message: text("error_message").into(),
            raw: text("error_raw").into(),
        };
        TaskRecord {
            id: text("id").into(),
            tenant: text("tenant").into(),
            provider,
            base,
            status: text("status").parse().unwrap_or(StoredStatus::Queued),
            requested: mode("svc"),
            pool: mode("pool"),
            failover: text("failover") == "1",
            process_mode: text("mode").parse().unwrap_or_default(),
            account: opt("account"),
            pin: opt("pin"),
            avoid: opt("avoid"),
            attempts: text("attempts").parse().unwrap_or(0),
            progress: text("progress").parse().unwrap_or(0),
            upstream: opt("upstream"),
            output: serde_json::from_str(text("output")).unwrap_or(Value::Null),
            error: (error != TaskError::default()).then_some(error),
            quota_kind: text("kind")
                .parse()
                .unwrap_or_else(|_| QuotaKind::of(provider)),
            ppu_price: num("ppu_price"),
            hold: num("hold"),
            consume: num("consume"),
            created_ms: num("created_ms"),
            started_ms: num("started_ms"),
            ended_ms: num("ended_ms"),
            retention_s: num("retention_s"),
            webhook: opt("wh_endpoint").map(|endpoint| Webhook {
                endpoint,
                sealed_secret: opt("wh_secret"),
            }),
            body: String::new(),
        }
    }

    /// The status as the API names it ([`StoredStatus::api_status`]): `capped` when its
    /// tenant is at its plan cap for the provider, which stages a waiting task on the
    /// PPU pool.
    pub fn api_status(&self, capped: bool) -> TaskStatus {
        self.status
            .api_status(capped && self.pool == ServiceMode::Ppu)
    }

    /// When its retention ends and it (with its hosted files) is deleted, Unix ms; 0
    /// while it has not finished.
    pub fn retained_until_ms(&self) -> u64 {
        if self.ended_ms == 0 {
            return 0;
        }
        self.ended_ms + self.retention_s * 1000
    }
}

impl Scheduler {
    /// A tenant's task by id, or `None` (absent, expired, or another tenant's).
    pub async fn get_task(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<TaskRecord>, SchedulerError> {
        Ok(self
            .get_tasks(tenant, &[id.to_string()])
            .await?
            .into_iter()
            .next()
            .flatten())
    }

    /// Several of a tenant's tasks, in order; `None` where absent or not the tenant's.
    /// One pipelined round trip.
    pub async fn get_tasks(
        &self,
        tenant: &str,
        ids: &[String],
    ) -> Result<Vec<Option<TaskRecord>>, SchedulerError> {
        let bases: Vec<(Provider, String)> = Provider::ALL
            .iter()
            .map(|p| (*p, self.base_for(*p, tenant)))
            .collect();
        let mut cmds = Vec::with_capacity(ids.len() * bases.len());
        for id in ids {
            for (_, base) in &bases {
                let mut c = redis::cmd("HGETALL");
                c.arg(keys::task(base, id));
                cmds.push((base.clone(), c));
            }
        }
        let rows = self
            .query_grouped(cmds)
            .await?
            .into_iter()
            .map(redis::from_redis_value::<HashMap<String, String>>)
            .collect::<Result<Vec<_>, _>>()?;
        let mut out = Vec::with_capacity(ids.len());
        for chunk in rows.chunks(bases.len()) {
            let found = chunk.iter().zip(&bases).find_map(|(fields, (p, base))| {
                (fields.get("tenant").map(String::as_str) == Some(tenant))
                    .then(|| TaskRecord::parse(*p, base.clone(), fields))
            });
            out.push(found);
        }
        // The body lives in its own key; fetch it for the tasks found.
        let cmds: Vec<(String, redis::Cmd)> = out
            .iter()
            .flatten()
            .map(|r| {
                let mut c = redis::cmd("GET");
                c.arg(keys::task_body(&r.base, &r.id));
                (r.base.clone(), c)
            })
            .collect();
        if !cmds.is_empty() {
            let bodies = self.query_grouped(cmds).await?;
            for (rec, body) in out.iter_mut().flatten().zip(bodies) {
                let body: Option<String> = redis::from_redis_value(body)?;
                rec.body = body.unwrap_or_default();
            }
        }
        Ok(out)
    }

    /// Append an entry to a task's log (kept as long as the task).
    pub async fn append_task_log(
        &self,
        rec: &TaskRecord,
        entry: &str,
    ) -> Result<(), SchedulerError> {
        let key = keys::task_log(&rec.base, &rec.id);
        let mut conn = self.conn().await?;
        let mut pipe = redis::pipe();
        pipe.rpush(&key, entry).ltrim(&key, -200, -1);
        let ttl: i64 = conn.ttl(keys::task(&rec.base, &rec.id)).await?;
        if ttl > 0 {
            pipe.expire(&key, ttl);
        }
        let _: () = pipe.query_async(&mut conn).await?;
        Ok(())
    }

    /// A task's log entries.
    pub async fn task_log(&self, rec: &TaskRecord) -> Result<Vec<String>, SchedulerError> {
        let mut conn = self.conn().await?;
        Ok(conn
            .lrange(keys::task_log(&rec.base, &rec.id), 0, -1)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> TaskRecord {
        let f = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        TaskRecord::parse(Provider::Suno, "b".into(), &f)
    }

    #[test]
    fn stored_names_round_trip() {
        for s in StoredStatus::ALL {
            assert_eq!(s.as_str().parse::<StoredStatus>(), Ok(s));
        }
        assert!("pending".parse::<StoredStatus>().is_err());
    }

    #[test]
    fn fields_parse_typed() {
        let r = parse(&[
            ("id", "t1"),
            ("tenant", "t_a"),
            ("status", "failed"),
            ("svc", "byoa"),
            ("pool", "ppu"),
            ("failover", "1"),
            ("mode", "fast"),
            ("account", "acc"),
            ("pin", ""),
            ("attempts", "3"),
            ("progress", "40"),
            ("output", "{\"a\":1}"),
            ("error_code", "upstream_rejected"),
            ("kind", "mj_quota"),
            ("hold", "14"),
            ("ended_ms", "5"),
            ("wh_endpoint", "https://x"),
        ]);
        assert_eq!((r.id.as_str(), r.tenant.as_str()), ("t1", "t_a"));
        assert_eq!(r.status, StoredStatus::Failed);
        assert_eq!((r.requested, r.pool), (ServiceMode::Byoa, ServiceMode::Ppu));
        assert!(r.failover);
        assert_eq!(r.process_mode, ProcessMode::Fast);
        assert_eq!(
            (r.account.as_deref(), r.pin.as_deref()),
            (Some("acc"), None)
        );
        assert_eq!((r.attempts, r.progress), (3, 40));
        assert_eq!(r.output, serde_json::json!({"a": 1}));
        assert_eq!(r.error.unwrap().code, "upstream_rejected");
        assert_eq!(r.quota_kind, QuotaKind::MjQuota);
        assert_eq!((r.hold, r.consume, r.started_ms, r.ended_ms), (14, 0, 0, 5));
        let w = r.webhook.unwrap();
        assert_eq!((w.endpoint.as_str(), w.sealed_secret), ("https://x", None));
    }

    #[test]
    fn unparsable_values_read_as_defaults() {
        let r = parse(&[
            ("status", "exploded"),
            ("pool", "nowhere"),
            ("mode", "warp"),
            ("attempts", "-1"),
            ("progress", "300"),
            ("output", "not json"),
            ("kind", "gold"),
            ("hold", "x"),
        ]);
        assert_eq!(r.status, StoredStatus::Queued);
        assert_eq!(r.pool, ServiceMode::Ppu);
        assert_eq!(r.process_mode, ProcessMode::Relax);
        assert_eq!((r.attempts, r.progress, r.hold), (0, 0, 0));
        assert_eq!(r.output, Value::Null);
        assert_eq!(r.quota_kind, QuotaKind::SunoQuota);
        assert_eq!((&r.error, &r.webhook), (&None, &None));
        assert_eq!(r.api_status(false), TaskStatus::Pending);
        assert_eq!(r.api_status(true), TaskStatus::Staged);
    }

    #[test]
    fn api_status_stages_only_waiting_ppu_tasks() {
        for (stored, api) in [
            ("queued", TaskStatus::Staged),
            ("delayed", TaskStatus::Staged),
            ("processing", TaskStatus::Processing),
            ("completed", TaskStatus::Completed),
        ] {
            assert_eq!(
                parse(&[("status", stored), ("pool", "ppu")]).api_status(true),
                api
            );
        }
        let byoa = parse(&[("status", "queued"), ("pool", "byoa")]);
        assert_eq!(byoa.api_status(true), TaskStatus::Pending);
    }
}
