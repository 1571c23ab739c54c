//! Task intake: a parsed request turned into the [`NewTask`] to submit, the same way for
//! every caller (the dispatcher, the harness, anything built on the scheduler).
//!
//! In order: the origin of a follow-up (it fixes the service mode, the account and,
//! for Midjourney, the process mode and version, written into the spec), the `bot_id`
//! rule, the plan's entitlement, the pinned account; then the price and the body, which
//! carries the typed spec to the worker. The first refusal is the answer.

use serde_json::Value;
use switchyard_core::task::SunoTask;
use switchyard_core::{NotEntitled, Origin, Plan, ServiceMode, TaskBody, TaskSpec};

use crate::{NewTask, Owner, Scheduler, SchedulerError, StoredStatus};

/// A request, its input parsed and its `config` read.
#[derive(Debug, Clone)]
pub struct TaskRequest {
    /// `model` as the request named it (an alias such as `music-s` is shown back).
    pub model: String,
    /// `task_type` as the request named it.
    pub task_type: String,
    /// The typed input.
    pub spec: TaskSpec,
    /// The input as sent (shown back by the API).
    pub input: Value,
    /// The service mode asked for (the tenant's default when the request named none).
    pub service_mode: ServiceMode,
    /// More fields stored on the task for its caller (the webhook).
    pub extra: Vec<(String, String)>,
    /// The `Idempotency-Key` and the hash of the request it came with.
    pub idempotency: Option<(String, String)>,
}

/// Why a request cannot become a task.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// The origin task does not exist for this tenant (or expired).
    #[error("origin task {0} not found for this key")]
    OriginNotFound(String),
    /// A field's value cannot be used (a JSON pointer and what is wrong).
    #[error("{field}: {message}")]
    Invalid {
        /// The field, as a JSON pointer.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The plan does not include what was asked for.
    #[error(transparent)]
    NotEntitled(#[from] NotEntitled),
    /// `bot_id` names no account of this tenant.
    #[error("account {0} not found")]
    AccountNotFound(String),
    /// The prompt checker found a banned word or pattern.
    #[error("{field}: the prompt contains `{matched}`, which is not allowed; remove it and retry")]
    PromptRejected {
        /// The field, as a JSON pointer.
        field: String,
        /// The banned word, phrase or pattern.
        matched: String,
    },
    /// Redis failed.
    #[error(transparent)]
    Scheduler(#[from] SchedulerError),
}

/// What a follow-up takes from its origin task.
struct FollowUp {
    service_mode: ServiceMode,
    pin: Option<String>,
    origin: Origin,
}

impl Scheduler {
    /// Turn `req` from `tenant` (on `plan`) into the task to submit with
    /// [`Scheduler::submit`]. Reads the origin task and the pinned account; writes
    /// nothing.
    pub async fn intake(
        &self,
        tenant: &str,
        plan: Plan,
        req: TaskRequest,
    ) -> Result<NewTask, IntakeError> {
        let TaskRequest {
            model,
            task_type,
            mut spec,
            input,
            mut service_mode,
            extra,
            idempotency,
        } = req;
        let config = self.config();
        let mut log = Vec::new();
        self.check_prompts(plan, &spec, &mut log)?;
        let mut pin = None;
        let mut origin = None;
        // What the pin holds, when the task must run on the account that owns it.
        let mut pin_holds: Option<String> = None;
        // bot_id comes with tasks that have no origin, so the requested mode is theirs.
        if spec.bot_id().is_some() && service_mode == ServiceMode::Ppu {
            return Err(IntakeError::Invalid {
                field: "/input/bot_id",
                message: "bot_id pins one of your hosted accounts; set config.service_mode to \"private\"".into(),
            });
        }
        // 403 comes before 404 in the validation order: a follow-up whose origin is
        // unknown is answered by the entitlement of the mode it asked for (a known
        // origin's mode decides otherwise).
        let requested = config.plans.entitlement(plan, service_mode, &spec);
        if let Some(origin_id) = spec.origin_task_id().map(str::to_string) {
            let f = match (
                self.follow_up(tenant, &mut spec, origin_id).await,
                requested,
            ) {
                (Err(IntakeError::OriginNotFound(_)), Err(refused)) => return Err(refused.into()),
                (r, _) => r?,
            };
            service_mode = f.service_mode;
            if f.pin.is_some() {
                pin_holds = Some(format!("the result of task {}", f.origin.task_id));
            }
            pin = f.pin;
            origin = Some(f.origin);
        } else if let Some((what, object)) = spec.owned_object() {
            // An object named by its upstream id alone: on the account that produced it,
            // when a task of this tenant did (else it may be the tenant's own, from
            // before: it runs where the scheduler puts it).
            if let Some((pool, account)) = self.owner_of(spec.provider(), tenant, object).await? {
                pin_holds = Some(format!("{what} {object}"));
                service_mode = pool;
                pin = Some(account);
            }
        }
        config.plans.entitlement(plan, service_mode, &spec)?;
        if let Some(bot) = spec.bot_id() {
            let owner = Owner::Tenant(tenant.to_string());
            match self.account_by_bot_id(spec.provider(), &owner, bot).await? {
                Some(a) => pin = Some(a.id),
                None => return Err(IntakeError::AccountNotFound(bot.to_string())),
            }
        }
        // Its PPU price in relax, kept for running it there when no pool account has fast
        // hours (the difference is refunded then).
        let ppu_price = config.prices.price(ServiceMode::Ppu, &spec);
        let mut extra = extra;
        if spec.process_mode() != switchyard_core::ProcessMode::Relax {
            let mut relax = spec.clone();
            relax.set_process_mode(switchyard_core::ProcessMode::Relax);
            let relax_price = config.prices.price(ServiceMode::Ppu, &relax);
            if relax_price.amount < ppu_price.amount {
                extra.push(("relax_price".into(), relax_price.amount.to_string()));
            }
        }
        Ok(NewTask {
            id: uuid::Uuid::now_v7().to_string(),
            tenant: tenant.to_string(),
            provider: spec.provider(),
            service_mode,
            process_mode: spec.process_mode(),
            pin_holds: pin_holds.filter(|_| pin.is_some()),
            pin,
            ppu_price,
            body: TaskBody::new(spec, input, origin)
                .named(&model, &task_type)
                .to_json(),
            extra,
            idempotency,
            log,
        })
    }

    /// The prompt checker, unless the request skips it on a plan that allows skipping; a
    /// skip the plan does not allow is ignored and noted in the task's log.
    fn check_prompts(
        &self,
        plan: Plan,
        spec: &TaskSpec,
        log: &mut Vec<String>,
    ) -> Result<(), IntakeError> {
        let may_skip = self.config().plans.get(plan).midjourney.skip_prompt_check;
        if spec.skip_prompt_check() {
            if may_skip {
                return Ok(());
            }
            log.push(
                serde_json::json!({
                    "time": humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
                    "kind": "intake",
                    "message": format!(
                        "skip_prompt_check ignored: the {plan} plan does not include skipping the prompt checker; the prompt was checked"
                    ),
                })
                .to_string(),
            );
        }
        self.inner
            .prompt_checker
            .check(spec)
            .map_err(|r| IntakeError::PromptRejected {
                field: format!("/input/{}", r.field),
                matched: r.matched,
            })
    }

    /// The pool and account whose task produced `object` (an upstream id) for `tenant`,
    /// while that task is kept.
    pub async fn owner_of(
        &self,
        provider: switchyard_core::Provider,
        tenant: &str,
        object: &str,
    ) -> Result<Option<(ServiceMode, String)>, SchedulerError> {
        let mut conn = self.conn().await?;
        let key = crate::keys::owner(&self.base_for(provider, tenant), tenant, object);
        let v: Option<String> = redis::cmd("GET").arg(key).query_async(&mut conn).await?;
        Ok(v.and_then(|v| {
            let (pool, account) = v.split_once('|')?;
            let pool = pool.parse::<ServiceMode>().ok()?;
            Some((pool, account.to_string())).filter(|(_, a)| !a.is_empty())
        }))
    }

    /// Follow-ups run where their origin ran, with its service mode and (Midjourney) its
    /// process mode and version, which are written into `spec`.
    async fn follow_up(
        &self,
        tenant: &str,
        spec: &mut TaskSpec,
        origin_id: String,
    ) -> Result<FollowUp, IntakeError> {
        let o = self
            .get_task(tenant, &origin_id)
            .await?
            .ok_or_else(|| IntakeError::OriginNotFound(origin_id.clone()))?;
        if o.provider != spec.provider() {
            return Err(IntakeError::Invalid {
                field: "/input/origin_task_id",
                message: format!("the origin task is a {} task", o.provider),
            });
        }
        if o.status != StoredStatus::Completed {
            return Err(IntakeError::Invalid {
                field: "/input/origin_task_id",
                message: format!(
                    "the origin task is {}; follow-ups need a completed task",
                    o.api_status(false)
                ),
            });
        }
        let origin_spec = TaskBody::from_json(&o.body)
            .ok()
            .and_then(|b| b.spec(&self.config().parse_options()).ok());
        if let (TaskSpec::Midjourney(t), Some(TaskSpec::Midjourney(from))) =
            (&mut *spec, origin_spec)
        {
            t.inherit(from.process_mode, from.version);
        }
        if let TaskSpec::Suno(SunoTask::GenerateMusicCustom(c)) = &mut *spec
            && c.continue_clip_id.is_none()
        {
            // GoAPI's `music` continues a task: its first clip, or the clip of an upload.
            let clip = o.output["clips"]
                .as_object()
                .and_then(|m| m.keys().next().cloned())
                .or_else(|| o.output["clip_id"].as_str().map(str::to_string))
                .ok_or_else(|| IntakeError::Invalid {
                    field: "/input/task_id",
                    message: "the task to continue has no clip; name a music or upload task".into(),
                })?;
            c.continue_clip_id = Some(clip);
        }
        Ok(FollowUp {
            service_mode: o.pool,
            pin: o.account,
            origin: Origin {
                task_id: origin_id,
                output: o.output,
            },
        })
    }
}
