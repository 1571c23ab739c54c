//! `submit.lua`: store a task, choose its pool, hold its PPU price, queue it.

use std::collections::BTreeMap;

use switchyard_core::{Cost, ProcessMode, Provider, ServiceMode};

use crate::{Scheduler, SchedulerError, SubmitError, invoke};

/// A task to submit. The dispatcher has validated, entitled and priced it.
#[derive(Debug, Clone)]
pub struct NewTask {
    /// The task id (unique; UUIDv7 suggested).
    pub id: String,
    /// The tenant.
    pub tenant: String,
    /// The provider that runs it.
    pub provider: Provider,
    /// What the request asked for (a BYOA task may still fail over to PPU).
    pub service_mode: ServiceMode,
    /// The capacity mode it uses.
    pub process_mode: ProcessMode,
    /// An account it must run on (`bot_id`, or a follow-up's origin account).
    pub pin: Option<String>,
    /// What the pinned account holds that the task continues (`conversation c-1`, `the
    /// result of task …`), when the pin is its owner: the task is taken whatever the
    /// account's state, and fails `account_error` naming this if the account cannot
    /// serve it (it must not run elsewhere).
    pub pin_holds: Option<String>,
    /// Its PPU price: held when it runs on the pool (by request or failover).
    pub ppu_price: Cost,
    /// Opaque body for the worker (model, task type, input).
    pub body: String,
    /// More opaque fields stored on the task (for the dispatcher).
    pub extra: Vec<(String, String)>,
    /// Idempotency key and a hash of the request it came with.
    pub idempotency: Option<(String, String)>,
    /// Entries for the task's log, written with it (e.g. the intake's notes).
    pub log: Vec<String>,
}

/// A task accepted (or found again by its idempotency key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    /// Its id.
    pub id: String,
    /// The pool it is queued on; `None` for a replay (read the task for it).
    pub pool: Option<ServiceMode>,
    /// Whether it was moved from BYOA to PPU at submit.
    pub failover: bool,
    /// The quota held.
    pub held: u64,
    /// True when the idempotency key returned an existing task.
    pub replayed: bool,
}

impl Scheduler {
    fn submit_args(&self, task: &NewTask) -> (String, Vec<String>) {
        let base = self.base_for(task.provider, &task.tenant);
        let (idem, idem_hash) = task.idempotency.clone().unwrap_or_default();
        let mut args = vec![
            task.id.clone(),
            task.tenant.clone(),
            task.service_mode.as_str().to_string(),
            task.process_mode.as_str().to_string(),
            // The owner of what a follow-up continues is marked: it is not refused at
            // submit (claim fails the task if the account cannot serve it).
            match (&task.pin, &task.pin_holds) {
                (Some(p), Some(_)) => format!("!{p}"),
                (p, _) => p.clone().unwrap_or_default(),
            },
            task.ppu_price.amount.to_string(),
            task.ppu_price.kind.as_str().to_string(),
            idem,
            idem_hash,
            self.inner.cfg.idempotency_ttl_s.to_string(),
            "body".to_string(),
            task.body.clone(),
            "provider".to_string(),
            task.provider.as_str().to_string(),
        ];
        for (k, v) in &task.extra {
            args.push(k.clone());
            args.push(v.clone());
        }
        if let (Some(_), Some(holds)) = (&task.pin, &task.pin_holds) {
            args.push("owner_pin".to_string());
            args.push(holds.clone());
        }
        for entry in &task.log {
            args.push("log".to_string());
            args.push(entry.clone());
        }
        (base, args)
    }

    /// Submit a task: one script stores it, holds its quota and queues it.
    pub async fn submit(&self, task: &NewTask) -> Result<Submitted, SubmitError> {
        let mut replies = self.run_submit(&[task]).await?;
        let reply = replies.pop().unwrap_or_default();
        parse_submit(task, reply)
    }

    /// Submit many tasks: one script call per shard and per 256 tasks; each task is its
    /// own all-or-nothing step and gets its own result, in order.
    pub async fn submit_batch(
        &self,
        tasks: &[NewTask],
    ) -> Result<Vec<Result<Submitted, SubmitError>>, SchedulerError> {
        let mut by_base: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, t) in tasks.iter().enumerate() {
            by_base
                .entry(self.base_for(t.provider, &t.tenant))
                .or_default()
                .push(i);
        }
        let mut out: Vec<Option<Result<Submitted, SubmitError>>> =
            (0..tasks.len()).map(|_| None).collect();
        for idx in by_base.values() {
            for chunk in idx.chunks(256) {
                let group: Vec<&NewTask> = chunk.iter().map(|i| &tasks[*i]).collect();
                let replies = self.run_submit(&group).await?;
                for (i, reply) in chunk.iter().zip(replies) {
                    out[*i] = Some(parse_submit(&tasks[*i], reply));
                }
            }
        }
        Ok(out
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(SubmitError::Scheduler(SchedulerError::Protocol {
                        script: "submit",
                        reply: "no answer".into(),
                    }))
                })
            })
            .collect())
    }

    /// One script call for tasks of one shard.
    async fn run_submit(&self, tasks: &[&NewTask]) -> Result<Vec<Vec<String>>, SchedulerError> {
        let Some(first) = tasks.first() else {
            return Ok(Vec::new());
        };
        let mut inv = self.inner.scripts.submit.prepare_invoke();
        inv.key(self.base_for(first.provider, &first.tenant));
        for t in tasks {
            let (_, args) = self.submit_args(t);
            inv.arg(args.len());
            for a in &args {
                inv.arg(a);
            }
        }
        let mut conn = self.conn().await?;
        invoke(&inv, &mut conn).await
    }
}

fn parse_submit(task: &NewTask, reply: Vec<String>) -> Result<Submitted, SubmitError> {
    let first = reply.first().map(String::as_str).unwrap_or("");
    let get = |i: usize| reply.get(i).cloned().unwrap_or_default();
    match first {
        "ok" => Ok(Submitted {
            id: get(1),
            pool: Some(if get(2) == "ppu" {
                ServiceMode::Ppu
            } else {
                ServiceMode::Byoa
            }),
            failover: get(3) == "1",
            held: get(4).parse().unwrap_or(0),
            replayed: false,
        }),
        "dup" => Ok(Submitted {
            id: get(1),
            pool: None,
            failover: false,
            held: 0,
            replayed: true,
        }),
        "err" => Err(match get(1).as_str() {
            "no_tenant" => SubmitError::NoTenant(get(2)),
            "insufficient_quota" => SubmitError::InsufficientQuota {
                kind: task.ppu_price.kind,
                needed: task.ppu_price.amount,
                available: get(2).parse().unwrap_or(0),
            },
            "no_account" => SubmitError::NoAccount(get(2)),
            "account_not_found" => SubmitError::AccountNotFound(get(2)),
            "idempotency_key_reused" => SubmitError::IdempotencyKeyReused(get(2)),
            "queue_full" => SubmitError::QueueFull(get(2).parse().unwrap_or(0)),
            _ => protocol("submit", &reply)?,
        }),
        _ => protocol("submit", &reply)?,
    }
}

pub(crate) fn protocol<T>(script: &'static str, reply: &[String]) -> Result<T, SchedulerError> {
    Err(SchedulerError::Protocol {
        script,
        reply: reply.join(" "),
    })
}
