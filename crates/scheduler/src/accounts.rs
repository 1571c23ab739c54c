//! `account_upsert.lua`, `account_state.lua`: hosted and pool accounts, their capacity
//! per mode, weight, backup flag and health.

use std::collections::HashMap;

use switchyard_core::config::Pacing;
use switchyard_core::{AccountState, ActiveWindow, DailyCap, ProcessMode, Provider};

use crate::{Scheduler, SchedulerError, invoke, keys};

/// Who an account belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Owner {
    /// A tenant's hosted account (BYOA).
    Tenant(String),
    /// The operator's pay-per-use pool.
    Pool,
}

impl Owner {
    fn as_str(&self) -> &str {
        match self {
            Owner::Tenant(t) => t,
            Owner::Pool => "pool",
        }
    }
}

/// Capacity per process mode: how many tasks of that mode the account runs at once
/// (0: the mode is not served). Providers without modes use `relax` only.
pub type Capacity = [u32; 3];

fn mode_index(m: ProcessMode) -> usize {
    match m {
        ProcessMode::Relax => 0,
        ProcessMode::Fast => 1,
        ProcessMode::Turbo => 2,
    }
}

/// An account to create, or the fields to change (`None`: unchanged).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccountSpec {
    /// Display name.
    pub name: Option<String>,
    /// Capacity per mode.
    pub capacity: Option<Capacity>,
    /// Relative share of the load (≥ 1).
    pub weight: Option<u32>,
    /// Serves only when no primary account can.
    pub backup: Option<bool>,
    /// The stored secret (already encrypted by the caller).
    pub secret: Option<String>,
    /// Enable (re-activate) or disable by its owner.
    pub enabled: Option<bool>,
    /// A non-secret hint of the credential for display (e.g. `••••abcd`).
    pub hint: Option<String>,
    /// Its own pacing (`Some(None)`: back to the provider's default).
    pub pacing: Option<Option<Pacing>>,
    /// Its daily cap (`Some(None)`: none).
    pub daily_cap: Option<Option<DailyCap>>,
    /// Its active window (`Some(None)`: always active).
    pub window: Option<Option<ActiveWindow>>,
    /// On create: probe the credentials before the account takes work (it is
    /// `checking` until a worker of its provider has).
    pub check: bool,
}

/// An account as stored, with its load.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountInfo {
    /// Account id.
    pub id: String,
    /// Provider.
    pub provider: Provider,
    /// Owner.
    pub owner: Owner,
    /// Display name.
    pub name: String,
    /// Health.
    pub state: AccountState,
    /// Capacity per mode.
    pub capacity: Capacity,
    /// Weight.
    pub weight: u32,
    /// Backup flag.
    pub backup: bool,
    /// Running tasks per mode.
    pub in_flight: Capacity,
    /// Until when (ms since the epoch) the account takes no fast or turbo work because
    /// its fast hours ran out; `None` when it can.
    pub fast_off_until_ms: Option<u64>,
    /// The stored secret (encrypted); callers must never show it.
    pub secret: String,
    /// Display hint of the credential.
    pub hint: String,
    /// Its number among its owner's accounts of the provider (1, 2, …, in the order they
    /// were added; never reused): GoAPI's integer `bot_id`. 0 for an account added before
    /// accounts were numbered.
    pub bot_id: u32,
    /// Its pacing: its own, or the provider's default (`pacing_own` false).
    pub pacing: Pacing,
    /// Whether the pacing is the account's own.
    pub pacing_own: bool,
    /// Its daily cap.
    pub daily_cap: Option<DailyCap>,
    /// Its active window.
    pub window: Option<ActiveWindow>,
    /// The earliest time (ms) it takes a new task: pacing, or the end of a rest; `None`
    /// when it may now.
    pub next_allowed_ms: Option<u64>,
    /// While it rests (every mode it serves at its daily cap, or outside its window):
    /// until when (ms) and why (`daily_cap` | `outside_active_window`).
    pub resting: Option<(u64, String)>,
    /// Submissions today (the account's local day) per mode, and in all.
    pub today: Capacity,
}

impl AccountInfo {
    /// Submissions today in all modes.
    pub fn today_total(&self) -> u32 {
        self.today.iter().sum()
    }
}

/// Errors of account changes.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// An account with this id exists.
    #[error("account {0} exists")]
    Exists(String),
    /// No such account for this owner.
    #[error("account {0} not found")]
    NotFound(String),
    /// Redis failed.
    #[error(transparent)]
    Scheduler(#[from] SchedulerError),
}

impl Scheduler {
    fn account_base(&self, provider: Provider, owner: &Owner, id: &str) -> String {
        match owner {
            Owner::Tenant(t) => self.base_for(provider, t),
            // Pool accounts are spread over the shards by their id.
            Owner::Pool => keys::shard_base(
                &self.inner.prefix,
                provider,
                keys::shard_of(id, self.inner.cfg.shards),
            ),
        }
    }

    async fn upsert(
        &self,
        provider: Provider,
        owner: &Owner,
        id: &str,
        create: bool,
        spec: &AccountSpec,
    ) -> Result<(), AccountError> {
        let base = self.account_base(provider, owner, id);
        let mut inv = self.inner.scripts.account_upsert.prepare_invoke();
        inv.key(&base)
            .arg(id)
            .arg(owner.as_str())
            .arg(if create { "1" } else { "0" })
            .arg(match spec.enabled {
                Some(true) => "1",
                Some(false) => "0",
                None => "",
            })
            .arg(if spec.check { "1" } else { "0" });
        if let Some(n) = &spec.name {
            inv.arg("name").arg(n);
        }
        if let Some(c) = spec.capacity {
            inv.arg("cap_relax")
                .arg(c[0])
                .arg("cap_fast")
                .arg(c[1])
                .arg("cap_turbo")
                .arg(c[2]);
        }
        if let Some(w) = spec.weight {
            inv.arg("weight").arg(w.max(1));
        }
        if let Some(b) = spec.backup {
            inv.arg("backup").arg(if b { "1" } else { "0" });
        }
        if let Some(s) = &spec.secret {
            inv.arg("secret").arg(s);
        }
        if let Some(h) = &spec.hint {
            inv.arg("hint").arg(h);
        }
        if let Some(p) = &spec.pacing {
            inv.arg("gap").arg(p.map_or(String::new(), |p| {
                let (lo, hi) = p.as_ms();
                format!("{lo},{hi}")
            }));
        }
        if let Some(d) = &spec.daily_cap {
            inv.arg("dcap").arg(d.map_or(String::new(), |d| {
                serde_json::to_string(&d).unwrap_or_default()
            }));
        }
        if let Some(w) = &spec.window {
            inv.arg("win").arg(w.as_ref().map_or(String::new(), |w| {
                // The zone's offsets from a day back (a clock set behind still finds its own).
                let from = self.now_ms() as i64 - 86_400_000;
                serde_json::json!({"s": w.start, "e": w.end, "tz": w.tz, "o": w.offsets(from)})
                    .to_string()
            }));
        }
        let mut conn = self.conn().await?;
        let v: String = invoke(&inv, &mut conn).await?;
        match v.as_str() {
            "ok" => Ok(()),
            "exists" => Err(AccountError::Exists(id.to_string())),
            "not_found" => Err(AccountError::NotFound(id.to_string())),
            _ => Err(SchedulerError::Protocol {
                script: "account_upsert",
                reply: v,
            }
            .into()),
        }
    }

    /// Create an account; it is active (unless `enabled: Some(false)`) and takes work at
    /// once.
    pub async fn add_account(
        &self,
        provider: Provider,
        owner: &Owner,
        id: &str,
        spec: &AccountSpec,
    ) -> Result<(), AccountError> {
        self.upsert(provider, owner, id, true, spec).await
    }

    /// Change an account's fields (`None` fields are kept).
    pub async fn update_account(
        &self,
        provider: Provider,
        owner: &Owner,
        id: &str,
        patch: &AccountSpec,
    ) -> Result<(), AccountError> {
        self.upsert(provider, owner, id, false, patch).await
    }

    /// Set an account's health (the worker's findings, or the operator's hand).
    /// `None` removes it: running tasks finish, nothing new is sent.
    pub async fn set_account_state(
        &self,
        provider: Provider,
        owner: &Owner,
        id: &str,
        state: Option<&AccountState>,
    ) -> Result<bool, SchedulerError> {
        let base = self.account_base(provider, owner, id);
        let (name, until, reason) = match state {
            None => ("removed", 0, String::new()),
            Some(AccountState::Active) => ("active", 0, String::new()),
            Some(AccountState::CoolingDown { until_ms, reason }) => {
                ("cooling_down", *until_ms, reason.clone())
            }
            Some(AccountState::Disabled { reason }) => ("disabled", 0, reason.clone()),
            Some(AccountState::Checking) => ("checking", 0, String::new()),
        };
        // The owner must match: read it first (a tenant cannot touch another's account).
        if self.get_account(provider, owner, id).await?.is_none() {
            return Ok(false);
        }
        let mut inv = self.inner.scripts.account_state.prepare_invoke();
        inv.key(&base).arg(id).arg(name).arg(until).arg(reason);
        let mut conn = self.conn().await?;
        let v: i64 = invoke(&inv, &mut conn).await?;
        Ok(v == 1)
    }

    /// One account of an owner.
    pub async fn get_account(
        &self,
        provider: Provider,
        owner: &Owner,
        id: &str,
    ) -> Result<Option<AccountInfo>, SchedulerError> {
        let base = self.account_base(provider, owner, id);
        Ok(self
            .read_accounts(provider, &base, &[id.to_string()])
            .await?
            .into_iter()
            .find(|a| &a.owner == owner))
    }

    /// The account a request's `bot_id` names: the account with that id, else the one
    /// with that number (GoAPI's integer `bot_id`).
    pub async fn account_by_bot_id(
        &self,
        provider: Provider,
        owner: &Owner,
        bot_id: &str,
    ) -> Result<Option<AccountInfo>, SchedulerError> {
        if let Some(a) = self.get_account(provider, owner, bot_id).await? {
            return Ok(Some(a));
        }
        let Ok(n) = bot_id.parse::<u32>() else {
            return Ok(None);
        };
        Ok(self
            .list_accounts(provider, owner)
            .await?
            .into_iter()
            .find(|a| n > 0 && a.bot_id == n))
    }

    /// Every account of an owner, with state and load.
    pub async fn list_accounts(
        &self,
        provider: Provider,
        owner: &Owner,
    ) -> Result<Vec<AccountInfo>, SchedulerError> {
        let bases = match owner {
            Owner::Tenant(t) => vec![self.base_for(provider, t)],
            Owner::Pool => self.bases(provider),
        };
        let mut out = Vec::new();
        let mut conn = self.conn().await?;
        for base in bases {
            let ids: Vec<String> = redis::cmd("SMEMBERS")
                .arg(keys::accounts_of(&base, owner.as_str()))
                .query_async(&mut conn)
                .await?;
            out.extend(self.read_accounts(provider, &base, &ids).await?);
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// The scheduler's clock (ms since the epoch): this machine's, shifted as the scripts
    /// shift Redis's (`scheduler.clock_offset_ms`).
    pub fn now_ms(&self) -> u64 {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        (wall + self.inner.cfg.clock_offset_ms).max(0) as u64
    }

    async fn read_accounts(
        &self,
        provider: Provider,
        base: &str,
        ids: &[String],
    ) -> Result<Vec<AccountInfo>, SchedulerError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("HGETALL").arg(keys::account(base, id));
            for m in ProcessMode::ALL {
                pipe.cmd("SCARD")
                    .arg(keys::account_in_flight(base, id, m.as_str()));
            }
        }
        let mut conn = self.conn().await?;
        let rows: Vec<redis::Value> = pipe.query_async(&mut conn).await?;
        // Only to hide a pause or a rest that has run out but not been cleared yet.
        let now_ms = self.now_ms();
        let mut out = Vec::new();
        for (id, chunk) in ids.iter().zip(rows.chunks(4)) {
            let h: HashMap<String, String> = redis::from_redis_value(chunk[0].clone())?;
            if h.is_empty() || h.get("state").map(String::as_str) == Some("removed") {
                continue;
            }
            let get = |k: &str| h.get(k).cloned().unwrap_or_default();
            let num = |k: &str| get(k).parse::<u32>().unwrap_or(0);
            let mut in_flight = [0u32; 3];
            for m in ProcessMode::ALL {
                in_flight[mode_index(m)] =
                    redis::from_redis_value(chunk[1 + mode_index(m)].clone())?;
            }
            let state = match get("state").as_str() {
                "checking" => AccountState::Checking,
                "cooling_down" => AccountState::CoolingDown {
                    until_ms: get("until").parse().unwrap_or(0),
                    reason: get("reason"),
                },
                "disabled" => AccountState::Disabled {
                    reason: get("reason"),
                },
                _ => AccountState::Active,
            };
            let window = serde_json::from_str::<serde_json::Value>(&get("win"))
                .ok()
                .and_then(|w| {
                    Some(ActiveWindow {
                        start: u16::try_from(w.get("s")?.as_u64()?).ok()?,
                        end: u16::try_from(w.get("e")?.as_u64()?).ok()?,
                        tz: w.get("tz").and_then(|z| z.as_str()).map(str::to_string),
                    })
                });
            let daily_cap: Option<DailyCap> = serde_json::from_str(&get("dcap")).ok();
            let pacing = get("gap").split_once(',').and_then(|(lo, hi)| {
                Some(Pacing {
                    min_gap_s: lo.parse::<f64>().ok()? / 1000.0,
                    max_gap_s: hi.parse::<f64>().ok()? / 1000.0,
                })
            });
            let resting = get("rest_until")
                .parse::<u64>()
                .ok()
                .filter(|u| *u > now_ms)
                .map(|u| (u, get("rest_why")));
            let next_allowed_ms = [
                get("next").parse::<u64>().ok(),
                resting.as_ref().map(|r| r.0),
            ]
            .into_iter()
            .flatten()
            .filter(|t| *t > now_ms)
            .max();
            let day = ActiveWindow::local_day(
                window.as_ref().and_then(|w| w.tz.as_deref()),
                now_ms as i64,
            );
            let today = if get("day").parse::<i64>().ok() == Some(day) {
                [num("dn_relax"), num("dn_fast"), num("dn_turbo")]
            } else {
                [0; 3]
            };
            let owner = match get("owner").as_str() {
                "pool" => Owner::Pool,
                t => Owner::Tenant(t.to_string()),
            };
            out.push(AccountInfo {
                id: id.clone(),
                provider,
                owner,
                name: get("name"),
                state,
                capacity: [num("cap_relax"), num("cap_fast"), num("cap_turbo")],
                weight: num("weight").max(1),
                backup: get("backup") == "1",
                in_flight,
                fast_off_until_ms: get("nofast_until")
                    .parse::<u64>()
                    .ok()
                    .filter(|until| *until > now_ms),
                secret: get("secret"),
                hint: get("hint"),
                bot_id: num("bot"),
                pacing: pacing.unwrap_or(self.inner.cfg.pacing.of(provider)),
                pacing_own: pacing.is_some(),
                daily_cap,
                window,
                next_allowed_ms,
                resting,
                today,
            });
        }
        Ok(out)
    }
}

/// An account whose probe is due, taken by one prober for a while.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueProbe {
    /// The account.
    pub account: String,
    /// Its stored secret (sealed credentials).
    pub secret: String,
    base: String,
}

/// What a probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// The account works: active (again), and its fast hours too (a pause for want of
    /// them ends).
    Works,
    /// It works but has no fast hours: active (again), its fast-hours pause kept (and
    /// probed again on the backoff while it lasts).
    NoFastHours,
    /// It does not: disabled with this reason, probed again after a backoff.
    Dead(String),
    /// The probe could not tell: probed again after a backoff, the state unchanged.
    Unknown,
}

impl Scheduler {
    /// Take up to `limit` accounts per shard of `provider` whose probe is due, each held
    /// for `hold` (another prober takes it only after that).
    pub async fn due_probes(
        &self,
        provider: Provider,
        limit: usize,
        hold: std::time::Duration,
    ) -> Result<Vec<DueProbe>, SchedulerError> {
        let mut conn = self.conn().await?;
        let mut out = Vec::new();
        for base in self.bases(provider) {
            let mut inv = self.inner.scripts.probe_take.prepare_invoke();
            inv.key(&base).arg(limit).arg(hold.as_millis() as u64);
            let flat: Vec<String> = invoke(&inv, &mut conn).await?;
            out.extend(flat.chunks_exact(2).map(|c| DueProbe {
                account: c[0].clone(),
                secret: c[1].clone(),
                base: base.clone(),
            }));
        }
        Ok(out)
    }

    /// Record a probe's outcome.
    pub async fn probe_done(
        &self,
        probe: &DueProbe,
        outcome: &ProbeOutcome,
    ) -> Result<(), SchedulerError> {
        let (kind, reason) = match outcome {
            ProbeOutcome::Works => ("ok", ""),
            ProbeOutcome::NoFastHours => ("nofast", ""),
            ProbeOutcome::Dead(r) => ("dead", r.as_str()),
            ProbeOutcome::Unknown => ("retry", ""),
        };
        let mut inv = self.inner.scripts.probe_done.prepare_invoke();
        inv.key(&probe.base)
            .arg(&probe.account)
            .arg(kind)
            .arg(reason);
        let mut conn = self.conn().await?;
        let _: i64 = invoke(&inv, &mut conn).await?;
        Ok(())
    }

    /// Probe an account now (`POST /api/v1/accounts/{id}/check`): it is due at once,
    /// whatever its state, unless its tenant disabled it. Returns whether it was
    /// scheduled.
    pub async fn request_probe(
        &self,
        provider: Provider,
        owner: &Owner,
        id: &str,
    ) -> Result<bool, SchedulerError> {
        let Some(a) = self.get_account(provider, owner, id).await? else {
            return Ok(false);
        };
        if matches!(&a.state, AccountState::Disabled { reason } if reason == BY_TENANT) {
            return Ok(false);
        }
        let base = self.account_base(provider, owner, id);
        let mut conn = self.conn().await?;
        let _: i64 = redis::cmd("ZADD")
            .arg(keys::probe(&base))
            .arg(self.now_ms())
            .arg(id)
            .query_async(&mut conn)
            .await?;
        Ok(true)
    }
}

impl Scheduler {
    /// When the account was last probed (ms, the scheduler's clock), if ever.
    pub async fn last_probe_ms(
        &self,
        provider: Provider,
        owner: &Owner,
        id: &str,
    ) -> Result<Option<u64>, SchedulerError> {
        let base = self.account_base(provider, owner, id);
        let mut conn = self.conn().await?;
        let v: Option<u64> = redis::cmd("HGET")
            .arg(keys::account(&base, id))
            .arg("probed_ms")
            .query_async(&mut conn)
            .await?;
        Ok(v)
    }
}

/// The reason of an account disabled by its tenant (never probed, never re-enabled by
/// Switchyard); the scripts' `BY_TENANT`.
pub const BY_TENANT: &str = "disabled by tenant";
