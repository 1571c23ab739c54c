//! Hosted accounts (BYOA) and the PPU pool's accounts. Credentials are write-only:
//! validated per provider, sealed before they are stored, shown only as `••••` + last 4.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde_json::{Map, Value};
use switchyard_core::config::Pacing;
use switchyard_core::secrets::mask;
use switchyard_core::{ActiveWindow, DailyCap, Provider};
use switchyard_scheduler::{AccountSpec, Owner};

use crate::error::{ApiError, ok};
use crate::json::{self, FromJson, Json, body_object};
use crate::{Caller, Operator, Shared, view};

/// Credential fields per provider; the first is required and is the one hinted.
pub(crate) fn credential_fields(p: Provider) -> &'static [&'static str] {
    match p {
        Provider::Midjourney => &["token", "guild_id", "channel_id", "user_agent"],
        Provider::Suno | Provider::Luma => &["cookie"],
        Provider::Gpts => &["access_token"],
    }
}

/// An account id carries its provider: `acc_<provider>_<hex>`.
fn provider_of(id: &str) -> Option<Provider> {
    id.strip_prefix("acc_")?.split('_').next()?.parse().ok()
}

fn non_negative(v: &Value, field: &str) -> Result<u32, ApiError> {
    v.as_u64()
        .filter(|n| *n <= 10_000)
        .map(|n| n as u32)
        .ok_or_else(|| {
            ApiError::invalid(
                field,
                format!(
                    "{} must be a whole number from 0 to 10000",
                    field.rsplit('/').next().unwrap_or(field)
                ),
            )
        })
}

/// Capacity from `capacity{relax,fast,turbo}` (Midjourney) or `concurrency` (others).
fn capacity(
    p: Provider,
    m: &Map<String, Value>,
    required: bool,
) -> Result<Option<[u32; 3]>, ApiError> {
    if p == Provider::Midjourney {
        if m.contains_key("concurrency") {
            return Err(ApiError::invalid(
                "/concurrency",
                "midjourney accounts take capacity {relax, fast, turbo}",
            ));
        }
        match m.get("capacity") {
            Some(Value::Object(c)) => {
                if let Some(k) = c
                    .keys()
                    .find(|k| !["relax", "fast", "turbo"].contains(&k.as_str()))
                {
                    return Err(ApiError::invalid(
                        &format!("/capacity/{k}"),
                        "capacity takes relax, fast, turbo",
                    ));
                }
                let get = |mode: &str| {
                    c.get(mode)
                        .map_or(Ok(0), |v| non_negative(v, &format!("/capacity/{mode}")))
                };
                let cap = [get("relax")?, get("fast")?, get("turbo")?];
                if cap == [0, 0, 0] {
                    return Err(ApiError::invalid(
                        "/capacity",
                        "give at least one mode a capacity above 0",
                    ));
                }
                Ok(Some(cap))
            }
            None if !required => Ok(None),
            _ => Err(ApiError::invalid(
                "/capacity",
                "capacity {relax, fast, turbo} is required (an omitted mode is not served)",
            )),
        }
    } else {
        if m.contains_key("capacity") {
            return Err(ApiError::invalid(
                "/capacity",
                format!("{p} accounts take concurrency: n"),
            ));
        }
        match m.get("concurrency") {
            Some(v) => {
                let n = non_negative(v, "/concurrency")?;
                if n == 0 {
                    return Err(ApiError::invalid(
                        "/concurrency",
                        "concurrency must be at least 1",
                    ));
                }
                Ok(Some([n, 0, 0]))
            }
            None if !required => Ok(None),
            None => Err(ApiError::invalid(
                "/concurrency",
                "concurrency (how many tasks the account runs at once) is required",
            )),
        }
    }
}

/// `pacing`: `{min_gap_s, max_gap_s}` in seconds, or null (the provider's default).
fn pacing(v: &Value) -> Result<Option<Pacing>, ApiError> {
    if v.is_null() {
        return Ok(None);
    }
    let bad = || {
        ApiError::invalid(
            "/pacing",
            "pacing is {min_gap_s, max_gap_s} (seconds, 0 to 3600, min ≤ max) or null for the provider's default",
        )
    };
    let o = v.as_object().ok_or_else(bad)?;
    if o.keys().any(|k| k != "min_gap_s" && k != "max_gap_s") {
        return Err(bad());
    }
    let get = |k: &str| o.get(k).and_then(Value::as_f64).ok_or_else(bad);
    let p = Pacing {
        min_gap_s: get("min_gap_s")?,
        max_gap_s: get("max_gap_s")?,
    };
    match p.problem() {
        Some(why) => Err(ApiError::invalid("/pacing", why)),
        None => Ok(Some(p)),
    }
}

/// `daily_cap`: n (all modes), `{relax?, fast?, turbo?}` (Midjourney), or null (none).
fn daily_cap(p: Provider, v: &Value) -> Result<Option<DailyCap>, ApiError> {
    let count = |v: &Value, field: &str| -> Result<u32, ApiError> {
        v.as_u64()
            .filter(|n| (1..=100_000).contains(n))
            .map(|n| n as u32)
            .ok_or_else(|| {
                ApiError::invalid(field, "a daily cap is a whole number from 1 to 100000")
            })
    };
    match v {
        Value::Null => Ok(None),
        Value::Object(o) if p == Provider::Midjourney => {
            let mut cap = DailyCap::default();
            for (k, v) in o {
                let field = format!("/daily_cap/{k}");
                let n = Some(count(v, &field)?);
                match k.as_str() {
                    "relax" => cap.relax = n,
                    "fast" => cap.fast = n,
                    "turbo" => cap.turbo = n,
                    _ => {
                        return Err(ApiError::invalid(
                            &field,
                            "daily_cap takes relax, fast, turbo (or one number for all modes)",
                        ));
                    }
                }
            }
            if cap == DailyCap::default() {
                return Err(ApiError::invalid(
                    "/daily_cap",
                    "give at least one mode a cap, or null for none",
                ));
            }
            Ok(Some(cap))
        }
        Value::Object(_) => Err(ApiError::invalid(
            "/daily_cap",
            format!("{p} accounts take one number: submissions per day"),
        )),
        n => Ok(Some(DailyCap {
            all: Some(count(n, "/daily_cap")?),
            ..DailyCap::default()
        })),
    }
}

/// `active_window`: `{start: "HH:MM", end: "HH:MM", tz?: "Area/City"}`, or null.
fn active_window(v: &Value) -> Result<Option<ActiveWindow>, ApiError> {
    if v.is_null() {
        return Ok(None);
    }
    let o = v.as_object().ok_or_else(|| {
        ApiError::invalid(
            "/active_window",
            "active_window is {start: \"HH:MM\", end: \"HH:MM\", tz: \"Area/City\"} or null",
        )
    })?;
    if let Some(k) = o
        .keys()
        .find(|k| !["start", "end", "tz"].contains(&k.as_str()))
    {
        return Err(ApiError::invalid(
            &format!("/active_window/{k}"),
            "active_window takes start, end and tz",
        ));
    }
    let time = |k: &str| {
        o.get(k)
            .and_then(Value::as_str)
            .and_then(ActiveWindow::parse_hhmm)
            .ok_or_else(|| {
                ApiError::invalid(
                    &format!("/active_window/{k}"),
                    format!("{k} is a time of day \"HH:MM\" (00:00 to 23:59)"),
                )
            })
    };
    let (start, end) = (time("start")?, time("end")?);
    if start == end {
        return Err(ApiError::invalid(
            "/active_window/end",
            "end must differ from start (a window across midnight ends earlier than it starts)",
        ));
    }
    let tz = match o.get("tz") {
        None | Some(Value::Null) => None,
        Some(Value::String(z)) if ActiveWindow::zone_exists(z) => Some(z.clone()),
        Some(_) => {
            return Err(ApiError::invalid(
                "/active_window/tz",
                "tz is an IANA time zone name such as \"Europe/Paris\" (UTC when left out)",
            ));
        }
    };
    Ok(Some(ActiveWindow { start, end, tz }))
}

fn patch_fields(
    p: Provider,
    m: &Map<String, Value>,
    spec: &mut AccountSpec,
) -> Result<(), ApiError> {
    spec.capacity = capacity(p, m, false)?;
    if let Some(v) = m.get("pacing") {
        spec.pacing = Some(pacing(v)?);
    }
    if let Some(v) = m.get("daily_cap") {
        spec.daily_cap = Some(daily_cap(p, v)?);
    }
    if let Some(v) = m.get("active_window") {
        spec.window = Some(active_window(v)?);
    }
    if let Some(w) = m.get("weight") {
        let w = non_negative(w, "/weight")?;
        if w == 0 {
            return Err(ApiError::invalid("/weight", "weight must be at least 1"));
        }
        spec.weight = Some(w);
    }
    if let Some(b) = m.get("backup") {
        spec.backup = Some(
            b.as_bool()
                .ok_or_else(|| ApiError::invalid("/backup", "backup must be true or false"))?,
        );
    }
    if let Some(n) = m.get("name") {
        let n = n
            .as_str()
            .filter(|n| !n.trim().is_empty() && n.len() <= 200)
            .ok_or_else(|| {
                ApiError::invalid(
                    "/name",
                    "name must be a non-empty string of at most 200 characters",
                )
            })?;
        spec.name = Some(n.to_string());
    }
    Ok(())
}

/// `modes`: the Midjourney modes the account serves (`["relax", "fast"]`); a mode left
/// out gets no capacity.
fn served_modes(p: Provider, v: &Value, mut cap: [u32; 3]) -> Result<[u32; 3], ApiError> {
    let bad = || {
        ApiError::invalid(
            "/modes",
            "modes is a list of the modes the account serves: relax, fast, turbo",
        )
    };
    if p != Provider::Midjourney {
        return Err(ApiError::invalid(
            "/modes",
            format!("{p} accounts have no modes"),
        ));
    }
    let list = v.as_array().filter(|l| !l.is_empty()).ok_or_else(bad)?;
    let mut on = [false; 3];
    for m in list {
        match m.as_str() {
            Some("relax") => on[0] = true,
            Some("fast") => on[1] = true,
            Some("turbo") => on[2] = true,
            _ => return Err(bad()),
        }
    }
    for (c, on) in cap.iter_mut().zip(on) {
        if !on {
            *c = 0;
        }
    }
    if cap == [0, 0, 0] {
        return Err(ApiError::invalid(
            "/modes",
            "no mode it serves has a capacity: give capacity to a listed mode",
        ));
    }
    Ok(cap)
}

/// The body of an account create, checked: the provider, its credentials (not yet
/// sealed) and the account's settings with their defaults.
pub struct NewAccount {
    provider: Provider,
    credentials: Map<String, Value>,
    spec: AccountSpec,
}

impl FromJson for NewAccount {
    fn from_json(v: Value) -> Result<Self, ApiError> {
        let allowed = [
            "provider",
            "name",
            "credentials",
            "capacity",
            "concurrency",
            "weight",
            "backup",
            "modes",
            "pacing",
            "daily_cap",
            "active_window",
        ];
        let m = body_object(&v, &allowed, "")?;
        let provider: Provider = m
            .get("provider")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ApiError::invalid(
                    "/provider",
                    "provider is required: midjourney, suno, luma or gpts",
                )
            })?
            .parse()
            .map_err(|e: switchyard_core::ParseEnumError| {
                ApiError::invalid("/provider", e.to_string())
            })?;
        let creds = m
            .get("credentials")
            .and_then(Value::as_object)
            .ok_or_else(|| {
                ApiError::invalid("/credentials", "credentials is required (an object)")
            })?;
        let fields = credential_fields(provider);
        if let Some(k) = creds.keys().find(|k| !fields.contains(&k.as_str())) {
            return Err(ApiError::invalid(
                &format!("/credentials/{k}"),
                format!(
                    "unknown credential field `{k}` for {provider}; expected: {}",
                    fields.join(", ")
                ),
            ));
        }
        for (k, v) in creds {
            if !v.is_string() {
                return Err(ApiError::invalid(
                    &format!("/credentials/{k}"),
                    "credential fields are strings",
                ));
            }
        }
        let main = creds
            .get(fields[0])
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| {
                ApiError::invalid(
                    &format!("/credentials/{}", fields[0]),
                    format!("credentials.{} is required", fields[0]),
                )
            })?;
        let mut spec = AccountSpec {
            name: Some(provider.to_string()),
            weight: Some(1),
            backup: Some(false),
            hint: Some(mask(main)),
            ..AccountSpec::default()
        };
        patch_fields(provider, m, &mut spec)?;
        spec.capacity = capacity(provider, m, true)?;
        if let Some(v) = m.get("modes") {
            spec.capacity = Some(served_modes(
                provider,
                v,
                spec.capacity.unwrap_or_default(),
            )?);
        }
        Ok(NewAccount {
            provider,
            credentials: creds.clone(),
            spec,
        })
    }
}

/// `?check=sync` on create: answer after the probe (422 when it fails).
#[derive(serde::Deserialize)]
pub struct CreateQuery {
    check: Option<String>,
}

/// How long a request waits for a worker to probe an account.
const PROBE_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

/// Wait until the account was probed after `since_ms` (or `PROBE_WAIT` passed).
async fn wait_probed(
    state: &Shared,
    provider: Provider,
    owner: &Owner,
    id: &str,
    since_ms: u64,
) -> Result<(), ApiError> {
    let deadline = tokio::time::Instant::now() + PROBE_WAIT;
    while tokio::time::Instant::now() < deadline {
        if state
            .sched
            .last_probe_ms(provider, owner, id)
            .await?
            .is_some_and(|t| t >= since_ms)
        {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Ok(())
}

async fn create_for(
    state: &Shared,
    owner: Owner,
    NewAccount {
        provider,
        credentials,
        mut spec,
    }: NewAccount,
    sync: bool,
) -> Result<Response, ApiError> {
    spec.secret = Some(state.secrets.seal(&Value::Object(credentials).to_string()));
    // New credentials are probed by a worker of the provider before the account works.
    spec.check = true;
    let id = format!("acc_{provider}_{}", uuid::Uuid::now_v7().simple());
    let since = state.sched.now_ms();
    state
        .sched
        .add_account(provider, &owner, &id, &spec)
        .await?;
    if sync {
        wait_probed(state, provider, &owner, &id, since).await?;
    }
    let a = state
        .sched
        .get_account(provider, &owner, &id)
        .await?
        .ok_or_else(|| ApiError::account_not_found(&id))?;
    if sync && let switchyard_core::AccountState::Disabled { reason } = &a.state {
        // Refused: nothing stays behind.
        state
            .sched
            .set_account_state(provider, &owner, &id, None)
            .await?;
        return Err(ApiError::invalid_credentials(format!(
            "the {provider} account did not pass its check: {reason}"
        )));
    }
    Ok(crate::error::created(view::account(&a)))
}

async fn check_for(state: &Shared, owner: Owner, id: &str) -> Result<Response, ApiError> {
    let provider = provider_of(id).ok_or_else(|| ApiError::account_not_found(id))?;
    let a = state
        .sched
        .get_account(provider, &owner, id)
        .await?
        .ok_or_else(|| ApiError::account_not_found(id))?;
    if matches!(&a.state, switchyard_core::AccountState::Disabled { reason } if reason == switchyard_scheduler::BY_TENANT)
    {
        return Err(ApiError::conflict(
            "account_disabled",
            "the account is disabled by its owner: enable it (PATCH enabled: true) to have it checked",
        ));
    }
    let since = state.sched.now_ms();
    state.sched.request_probe(provider, &owner, id).await?;
    wait_probed(state, provider, &owner, id, since).await?;
    let a = state
        .sched
        .get_account(provider, &owner, id)
        .await?
        .ok_or_else(|| ApiError::account_not_found(id))?;
    Ok(ok(view::account(&a)))
}

async fn list_for(state: &Shared, owner: Owner) -> Result<Response, ApiError> {
    let mut out = Vec::new();
    for p in Provider::ALL {
        for a in state.sched.list_accounts(p, &owner).await? {
            out.push(view::account(&a));
        }
    }
    Ok(ok(Value::Array(out)))
}

async fn update_for(
    state: &Shared,
    owner: Owner,
    id: &str,
    body: Body,
) -> Result<Response, ApiError> {
    let provider = provider_of(id).ok_or_else(|| ApiError::account_not_found(id))?;
    if state
        .sched
        .get_account(provider, &owner, id)
        .await?
        .is_none()
    {
        return Err(ApiError::account_not_found(id));
    }
    let v: Value = json::read(state, body).await?;
    let allowed = [
        "enabled",
        "weight",
        "capacity",
        "concurrency",
        "backup",
        "name",
        "pacing",
        "daily_cap",
        "active_window",
    ];
    let m = body_object(
        &v,
        &allowed,
        "; credentials cannot be changed: remove the account and add it again",
    )?;
    let mut spec = AccountSpec::default();
    patch_fields(provider, m, &mut spec)?;
    if let Some(e) = m.get("enabled") {
        spec.enabled = Some(
            e.as_bool()
                .ok_or_else(|| ApiError::invalid("/enabled", "enabled must be true or false"))?,
        );
    }
    state
        .sched
        .update_account(provider, &owner, id, &spec)
        .await?;
    let a = state
        .sched
        .get_account(provider, &owner, id)
        .await?
        .ok_or_else(|| ApiError::account_not_found(id))?;
    Ok(ok(view::account(&a)))
}

async fn remove_for(state: &Shared, owner: Owner, id: &str) -> Result<Response, ApiError> {
    let provider = provider_of(id).ok_or_else(|| ApiError::account_not_found(id))?;
    if !state
        .sched
        .set_account_state(provider, &owner, id, None)
        .await?
    {
        return Err(ApiError::account_not_found(id));
    }
    Ok(ok(view::account_deleted(id)))
}

fn sync_check(q: &CreateQuery) -> Result<bool, ApiError> {
    match q.check.as_deref() {
        None | Some("async") => Ok(false),
        Some("sync") => Ok(true),
        Some(_) => Err(ApiError::invalid(
            "/check",
            "check is sync (answer after the credentials were probed) or async (the default)",
        )),
    }
}

/// `POST /api/v1/accounts[?check=sync]`.
pub async fn create(
    State(s): State<Shared>,
    Caller(t): Caller,
    Query(q): Query<CreateQuery>,
    Json(body): Json<NewAccount>,
) -> Result<Response, ApiError> {
    let sync = sync_check(&q)?;
    create_for(&s, Owner::Tenant(t.tenant_id), body, sync).await
}
/// `POST /api/v1/accounts/{id}/check`.
pub async fn check(
    State(s): State<Shared>,
    Caller(t): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    check_for(&s, Owner::Tenant(t.tenant_id), &id).await
}
/// `POST /admin/v1/pool/accounts/{id}/check`.
pub async fn pool_check(
    State(s): State<Shared>,
    _: Operator,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    check_for(&s, Owner::Pool, &id).await
}
/// `GET /api/v1/accounts`.
pub async fn list(State(s): State<Shared>, Caller(t): Caller) -> Result<Response, ApiError> {
    list_for(&s, Owner::Tenant(t.tenant_id)).await
}
/// `PATCH /api/v1/accounts/{id}`.
pub async fn update(
    State(s): State<Shared>,
    Caller(t): Caller,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    update_for(&s, Owner::Tenant(t.tenant_id), &id, body).await
}
/// `DELETE /api/v1/accounts/{id}`.
pub async fn remove(
    State(s): State<Shared>,
    Caller(t): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    remove_for(&s, Owner::Tenant(t.tenant_id), &id).await
}
/// `POST /admin/v1/pool/accounts`.
pub async fn pool_create(
    State(s): State<Shared>,
    _: Operator,
    Query(q): Query<CreateQuery>,
    Json(body): Json<NewAccount>,
) -> Result<Response, ApiError> {
    let sync = sync_check(&q)?;
    create_for(&s, Owner::Pool, body, sync).await
}
/// `GET /admin/v1/pool/accounts`.
pub async fn pool_list(State(s): State<Shared>, _: Operator) -> Result<Response, ApiError> {
    list_for(&s, Owner::Pool).await
}
/// `PATCH /admin/v1/pool/accounts/{id}`.
pub async fn pool_update(
    State(s): State<Shared>,
    _: Operator,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    update_for(&s, Owner::Pool, &id, body).await
}
/// `DELETE /admin/v1/pool/accounts/{id}`.
pub async fn pool_remove(
    State(s): State<Shared>,
    _: Operator,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    remove_for(&s, Owner::Pool, &id).await
}
