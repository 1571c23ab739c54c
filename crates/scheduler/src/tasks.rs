//! Reading task records (no script: a read changes nothing).

use std::collections::HashMap;

use redis::AsyncCommands;
use switchyard_core::{Provider, ServiceMode, TaskStatus};

use crate::{Scheduler, SchedulerError, keys};

/// A task as stored: its provider, shard and fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRecord {
    /// The provider.
    pub provider: Provider,
    /// Its shard base.
    pub base: String,
    /// Every stored field.
    pub fields: HashMap<String, String>,
}

impl TaskRecord {
    /// One field, or "".
    pub fn get(&self, name: &str) -> &str {
        self.fields.get(name).map(String::as_str).unwrap_or("")
    }

    /// A numeric field, or 0.
    pub fn num(&self, name: &str) -> u64 {
        self.get(name).parse().unwrap_or(0)
    }

    /// The stored status: queued, delayed, processing, completed, failed, cancelled.
    pub fn status(&self) -> &str {
        self.get("status")
    }

    /// The status as the API names it: a task waiting in a queue (queued, or delayed
    /// before a retry) is `staged` while `capped` (its tenant is at its plan cap for the
    /// provider and the task waits for the PPU pool), `pending` otherwise.
    pub fn api_status(&self, capped: bool) -> TaskStatus {
        match self.status().parse::<TaskStatus>() {
            Ok(s) => s,
            Err(_) if capped && self.get("pool") == ServiceMode::Ppu.as_str() => TaskStatus::Staged,
            Err(_) => TaskStatus::Pending,
        }
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
                (fields.get("tenant").map(String::as_str) == Some(tenant)).then(|| TaskRecord {
                    provider: *p,
                    base: base.clone(),
                    fields: fields.clone(),
                })
            });
            out.push(found);
        }
        // The body lives in its own key; fetch it for the tasks found.
        let cmds: Vec<(String, redis::Cmd)> = out
            .iter()
            .flatten()
            .map(|r| {
                let mut c = redis::cmd("GET");
                c.arg(keys::task_body(&r.base, r.get("id")));
                (r.base.clone(), c)
            })
            .collect();
        if !cmds.is_empty() {
            let bodies = self.query_grouped(cmds).await?;
            for (rec, body) in out.iter_mut().flatten().zip(bodies) {
                let body: Option<String> = redis::from_redis_value(body)?;
                rec.fields.insert("body".into(), body.unwrap_or_default());
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
        let key = keys::task_log(&rec.base, rec.get("id"));
        let mut conn = self.conn().await?;
        let mut pipe = redis::pipe();
        pipe.rpush(&key, entry).ltrim(&key, -200, -1);
        let ttl: i64 = conn.ttl(keys::task(&rec.base, rec.get("id"))).await?;
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
            .lrange(keys::task_log(&rec.base, rec.get("id")), 0, -1)
            .await?)
    }
}
