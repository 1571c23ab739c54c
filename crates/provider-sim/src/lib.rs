//! Simulated upstreams for tests, the demo and benchmarks — never production code paths.
//!
//! One HTTP server speaks the shapes of four upstreams (UPSTREAMS.md §7): Discord REST and
//! gateway websocket for Midjourney, Suno's studio API and Clerk, Luma's web API, and
//! ChatGPT's conversation backend. Behaviour is scripted:
//! - per account, by its credential `sim:<behaviour>:<name>[:<capacity>]` with behaviour
//!   `ok`, `banned`, `ratelimited`, `flaky` (every second submission answers 5xx),
//!   `captcha`, `no_fast` (Midjourney fast/turbo jobs fail with "Credits exhausted");
//!   capacity (default 1000) is how many jobs the account runs at once — beyond it the
//!   upstream refuses as the real one does ("Queue full", 429);
//! - per task, by directives in its free text: `[sim:ms=N]` (the job takes N ms, default
//!   300), `[sim:fail]` (the upstream rejects it), `[sim:hang]` (it never finishes),
//!   `[sim:tag=X]` (the witness also counts it under tag X), `[sim:task=X]` (the witness
//!   counts the upstream jobs made for marker X, so a duplicate submission is visible),
//!   `[sim:cut]` (ChatGPT: the stream breaks off early while the answer is written on); a
//!   Suno upload's only text is its audio URL, so its directives ride in the URL.
//!
//! The **witness** records, per account and per tag, accepted submissions, refusals, and
//! current and maximum concurrency as the upstream sees it (from acceptance until the job
//! finishes upstream). `GET /_sim/stats` serves it; it is the honest check of every cap.

mod chatgpt;
mod discord;
mod luma;
mod media;
mod suno;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::broadcast;

/// How an account behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Works.
    Ok,
    /// Banned / unauthorized.
    Banned,
    /// Always rate-limited.
    RateLimited,
    /// Every second submission fails with a 5xx.
    Flaky,
    /// Needs a captcha.
    Captcha,
    /// No fast hours (Midjourney fast and turbo fail).
    NoFast,
    /// Works; Midjourney in Remix mode (variations, rerolls and pans open a prompt modal).
    Remix,
    /// Midjourney: its first fast job finds no fast hours ("Credits exhausted"); they
    /// are back after that (bought, or renewed): `/info` shows them (`no_fast_once`).
    NoFastOnce,
    /// Banned until this time (ms since the epoch), then works (`banned_until_<ms>`).
    BannedUntil(u64),
    /// Asks for a captcha once (its first submission), then works: the captcha was
    /// solved (`captcha_once`).
    CaptchaOnce,
    /// Its subscription expired: signs in, but every job is refused (`expired`).
    Expired,
}

/// A simulated account, from its credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimAccount {
    /// Behaviour.
    pub behaviour: Behaviour,
    /// Name (the witness key).
    pub name: String,
    /// Concurrent jobs it accepts.
    pub capacity: u64,
}

impl SimAccount {
    /// Whether the account is banned now: `banned`, or `banned_until_<ms>` before then.
    pub fn banned_now(&self) -> bool {
        match self.behaviour {
            Behaviour::Banned => true,
            Behaviour::BannedUntil(until) => now_ms() < until,
            _ => false,
        }
    }

    /// Parse `sim:<behaviour>:<name>[:<capacity>]`; anything else is unknown (401).
    pub fn parse(credential: &str) -> Option<SimAccount> {
        let mut parts = credential.trim().splitn(4, ':');
        if parts.next()? != "sim" {
            return None;
        }
        let behaviour = match parts.next()? {
            "ok" => Behaviour::Ok,
            "banned" => Behaviour::Banned,
            "ratelimited" => Behaviour::RateLimited,
            "flaky" => Behaviour::Flaky,
            "captcha" => Behaviour::Captcha,
            "no_fast" => Behaviour::NoFast,
            "remix" => Behaviour::Remix,
            "captcha_once" => Behaviour::CaptchaOnce,
            "no_fast_once" => Behaviour::NoFastOnce,
            "expired" => Behaviour::Expired,
            b => Behaviour::BannedUntil(b.strip_prefix("banned_until_")?.parse().ok()?),
        };
        let name = parts.next()?.to_string();
        if name.is_empty() {
            return None;
        }
        let capacity = parts.next().and_then(|c| c.parse().ok()).unwrap_or(1000);
        Some(SimAccount {
            behaviour,
            name,
            capacity,
        })
    }
}

/// Directives read from a task's free text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Directives {
    /// Job duration in ms.
    pub ms: u64,
    /// Rejected upstream.
    pub fail: bool,
    /// Never finishes.
    pub hang: bool,
    /// Witness tag.
    pub tag: Option<String>,
    /// Marker of the task this text belongs to: the witness counts upstream jobs per marker.
    pub task: Option<String>,
}

impl Directives {
    /// Read `[sim:…]` directives.
    pub fn parse(text: &str) -> Directives {
        let mut d = Directives {
            ms: 300,
            ..Directives::default()
        };
        let mut rest = text;
        while let Some(start) = rest.find("[sim:") {
            let after = &rest[start + 5..];
            let Some(end) = after.find(']') else { break };
            let body = &after[..end];
            if let Some(ms) = body.strip_prefix("ms=") {
                d.ms = ms.parse().unwrap_or(d.ms);
            } else if body == "fail" {
                d.fail = true;
            } else if body == "hang" {
                d.hang = true;
            } else if let Some(tag) = body.strip_prefix("tag=") {
                d.tag = Some(tag.to_string());
            } else if let Some(task) = body.strip_prefix("task=") {
                d.task = Some(task.to_string());
            }
            rest = &after[end..];
        }
        d
    }
}

/// Witness counters for one account or tag.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Count {
    /// Jobs accepted.
    pub submissions: u64,
    /// Requests refused (rate limit, capacity, 5xx, auth).
    pub refused: u64,
    /// Jobs running now.
    pub current: u64,
    /// The most ever running at once.
    pub max: u64,
    /// Jobs the upstream queued behind the account's running ones (Midjourney's "Job
    /// queued").
    pub queued: u64,
    /// ChatGPT conversations read whole (`GET /backend-api/conversation/{id}`).
    pub conversation_reads: u64,
}

/// The witness: true concurrency per account and per tag.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Stats {
    /// Per account name.
    pub accounts: BTreeMap<String, Count>,
    /// Per `[sim:tag=X]`.
    pub tags: BTreeMap<String, Count>,
    /// Upstream jobs accepted per `[sim:task=X]` marker: more than one is a duplicate.
    pub tasks: BTreeMap<String, u64>,
    /// When each account's jobs were accepted (ms since the epoch), in order: its pacing.
    pub submitted_ms: BTreeMap<String, Vec<u64>>,
    /// Discord gateway sessions per account: `current` open now, `max` ever open at
    /// once, `submissions` opened in all.
    pub gateway_sessions: BTreeMap<String, Count>,
}

/// A job's state upstream.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum JobState {
    Running(u8),
    Done,
    Failed(String),
}

#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub account: String,
    pub tag: Option<String>,
    pub state: JobState,
    /// Provider-specific data (prompt, kind, ids…).
    pub data: Value,
}

pub(crate) struct Inner {
    pub stats: Stats,
    pub jobs: HashMap<String, Job>,
    /// Per-account submission counter (flaky).
    pub attempts: HashMap<String, u64>,
    /// Discord channel histories: per channel, messages by snowflake id (oldest first).
    /// They carry no nonce, as Discord's history does not.
    pub messages: HashMap<String, BTreeMap<u64, Value>>,
    /// The prompt behind each Midjourney bot message, by message id (for buttons).
    pub prompts: HashMap<String, String>,
    /// Midjourney's result images, by CDN file name.
    pub media: HashMap<String, media::MjImage>,
    /// Each finished Midjourney job's grid (width, height, colour seed), by job id.
    pub mj_grids: HashMap<String, (u32, u32, u64)>,
    /// How long Discord CDN links last, in seconds.
    pub cdn_link_ttl_s: u64,
    /// ChatGPT files and GPTs, by id: the account that made each (only it sees it).
    pub owned: HashMap<String, String>,
    /// Jobs waiting for a slot of their account (Midjourney's own queue), per account.
    pub queued: HashMap<String, u64>,
    /// Midjourney modals shown and not yet submitted, by interaction id (Custom Zoom) or
    /// iframe custom id (Vary Region).
    pub modals: HashMap<String, discord::Modal>,
    /// Every modal submission received, in order (what tests check).
    pub modal_log: Vec<ModalSubmission>,
    /// Discord gateway sessions (from READY) and the token of each.
    pub sessions: HashMap<String, String>,
    /// `no_fast_once` accounts whose fast hours ran out once (and are back).
    pub fast_refused: std::collections::HashSet<String>,
    /// `captcha_once` accounts whose captcha was shown (and so solved): fine from then on.
    pub captcha_shown: std::collections::HashSet<String>,
    /// Every Midjourney button pressed (its `custom_id`), in order.
    pub pressed: Vec<String>,
    /// Midjourney's slash commands: name → (id, version), as its command index lists them.
    pub commands: HashMap<String, (String, String)>,
    /// Messages an account reacted to with ✉️ (message id, account): one DM each.
    pub reacted: std::collections::HashSet<(String, String)>,
}

/// A Midjourney modal submission as the simulator received it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModalSubmission {
    /// `custom_zoom` or `vary_region`.
    pub kind: String,
    /// The prompt submitted.
    pub prompt: String,
    /// The `--zoom` of a Custom Zoom prompt, when it has one.
    pub zoom: Option<f64>,
    /// The mask of a Vary (Region) (PNG bytes).
    #[serde(skip)]
    pub mask: Vec<u8>,
}

pub(crate) struct SimState {
    pub seq: AtomicU64,
    pub inner: Mutex<Inner>,
    /// Gateway events: (token, event).
    pub gateway: broadcast::Sender<(String, Value)>,
    pub base_url: Mutex<String>,
}

pub(crate) type Shared = Arc<SimState>;

/// How a submission was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// It runs now.
    Now,
    /// It waits for a slot of its account, this many jobs ahead of it.
    Queued(u64),
}

/// Why a submission is refused before a job exists.
pub(crate) enum Refusal {
    Unauthorized,
    RateLimited,
    Flaky,
    Full,
    Captcha,
    Expired,
}

/// This machine's clock, in ms since the epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl SimState {
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the account must solve a captcha now: always for `captcha`; for
    /// `captcha_once`, the first time it is asked (after that it is solved).
    pub fn captcha_required(&self, account: &SimAccount) -> bool {
        match account.behaviour {
            Behaviour::Captcha => true,
            Behaviour::CaptchaOnce => self.lock().captcha_shown.insert(account.name.clone()),
            _ => false,
        }
    }

    /// Whether a fast job on the account finds no fast hours now: always for `no_fast`;
    /// for `no_fast_once`, the first time (after that they are back).
    pub fn fast_exhausted(&self, account: &SimAccount, asking: bool) -> bool {
        match account.behaviour {
            Behaviour::NoFast => true,
            Behaviour::NoFastOnce if asking => {
                self.lock().fast_refused.insert(account.name.clone())
            }
            _ => false,
        }
    }

    pub fn next_id(&self, prefix: &str) -> String {
        format!("{prefix}{}", self.seq.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// How long Discord CDN links last, in seconds.
    pub fn cdn_link_ttl_s(&self) -> u64 {
        self.lock().cdn_link_ttl_s
    }

    pub fn base(&self) -> String {
        self.base_url
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Admission: behaviour, flakiness and capacity. On success the job is counted as
    /// running by the witness.
    pub fn admit(
        &self,
        account: &SimAccount,
        directives: &Directives,
        captcha_refuses: bool,
    ) -> Result<(), Refusal> {
        self.admit_or_queue(account, directives, captcha_refuses, 0)
            .map(|_| ())
    }

    /// Admission with a wait queue of `queue` jobs beyond the account's concurrency (as
    /// Midjourney queues an account's jobs): `Queued(n)` when the job waits, `n` jobs
    /// ahead of it, counted as submitted but not running until [`SimState::take_slot`].
    pub fn admit_or_queue(
        &self,
        account: &SimAccount,
        directives: &Directives,
        captcha_refuses: bool,
        queue: u64,
    ) -> Result<Admission, Refusal> {
        let mut inner = self.lock();
        let refusal = match account.behaviour {
            _ if account.banned_now() => Some(Refusal::Unauthorized),
            Behaviour::RateLimited => Some(Refusal::RateLimited),
            Behaviour::Captcha if captcha_refuses => Some(Refusal::Captcha),
            Behaviour::Expired => Some(Refusal::Expired),
            Behaviour::Flaky => {
                let n = inner.attempts.entry(account.name.clone()).or_default();
                *n += 1;
                (*n % 2 == 1).then_some(Refusal::Flaky)
            }
            _ => None,
        };
        let cur = inner
            .stats
            .accounts
            .get(&account.name)
            .map_or(0, |c| c.current);
        let waiting = inner.queued.get(&account.name).copied().unwrap_or(0);
        // A free slot goes to the jobs waiting for one first.
        let full = cur >= account.capacity || waiting > 0;
        let refusal = refusal.or_else(|| (full && waiting >= queue).then_some(Refusal::Full));
        if let Some(r) = refusal {
            inner
                .stats
                .accounts
                .entry(account.name.clone())
                .or_default()
                .refused += 1;
            return Err(r);
        }
        if let Some(task) = &directives.task {
            *inner.stats.tasks.entry(task.clone()).or_default() += 1;
        }
        let at = now_ms();
        inner
            .stats
            .submitted_ms
            .entry(account.name.clone())
            .or_default()
            .push(at);
        if full {
            *inner.queued.entry(account.name.clone()).or_default() += 1;
            let c = inner
                .stats
                .accounts
                .entry(account.name.clone())
                .or_default();
            c.submissions += 1;
            c.queued += 1;
            return Ok(Admission::Queued(waiting));
        }
        let bump = |c: &mut Count| {
            c.submissions += 1;
            c.current += 1;
            c.max = c.max.max(c.current);
        };
        bump(
            inner
                .stats
                .accounts
                .entry(account.name.clone())
                .or_default(),
        );
        if let Some(tag) = &directives.tag {
            bump(inner.stats.tags.entry(tag.clone()).or_default());
        }
        Ok(Admission::Now)
    }

    /// A queued job (see [`SimState::admit_or_queue`]) waits for a free slot of its
    /// account, in turn, and is counted as running from then on.
    pub async fn take_slot(&self, account: &SimAccount, directives: &Directives) {
        loop {
            {
                let mut inner = self.lock();
                let cur = inner
                    .stats
                    .accounts
                    .get(&account.name)
                    .map_or(0, |c| c.current);
                if cur < account.capacity {
                    if let Some(q) = inner.queued.get_mut(&account.name) {
                        *q = q.saturating_sub(1);
                    }
                    let c = inner
                        .stats
                        .accounts
                        .entry(account.name.clone())
                        .or_default();
                    c.current += 1;
                    c.max = c.max.max(c.current);
                    if let Some(tag) = &directives.tag {
                        let t = inner.stats.tags.entry(tag.clone()).or_default();
                        t.submissions += 1;
                        t.current += 1;
                        t.max = t.max.max(t.current);
                    }
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A queued job was dropped before it started.
    pub fn unqueue(&self, account: &SimAccount) {
        if let Some(q) = self.lock().queued.get_mut(&account.name) {
            *q = q.saturating_sub(1);
        }
    }

    /// A job ended upstream: the witness stops counting it.
    pub fn end(&self, account: &str, tag: Option<&str>) {
        let mut inner = self.lock();
        if let Some(c) = inner.stats.accounts.get_mut(account) {
            c.current = c.current.saturating_sub(1);
        }
        if let Some(tag) = tag
            && let Some(c) = inner.stats.tags.get_mut(tag)
        {
            c.current = c.current.saturating_sub(1);
        }
    }

    /// Create a job and run its clock: progress in four steps over `ms`, then done or
    /// failed; `on_step` is told each state (for push-style upstreams).
    pub fn start_job(
        self: &Arc<Self>,
        id: &str,
        account: &SimAccount,
        d: &Directives,
        data: Value,
        on_step: impl Fn(&Shared, &str, &JobState) + Send + 'static,
    ) {
        self.lock().jobs.insert(
            id.to_string(),
            Job {
                account: account.name.clone(),
                tag: d.tag.clone(),
                state: JobState::Running(0),
                data,
            },
        );
        let state = self.clone();
        let id = id.to_string();
        let d = d.clone();
        tokio::spawn(async move {
            on_step(&state, &id, &JobState::Running(0));
            if d.hang {
                return; // never finishes; the witness keeps counting it
            }
            for pct in [25u8, 50, 75] {
                tokio::time::sleep(Duration::from_millis(d.ms / 4)).await;
                state.set_job(&id, JobState::Running(pct));
                on_step(&state, &id, &JobState::Running(pct));
            }
            tokio::time::sleep(Duration::from_millis(d.ms / 4)).await;
            let end = if d.fail {
                JobState::Failed("Banned prompt detected".into())
            } else {
                JobState::Done
            };
            let (account, tag) = {
                let inner = state.lock();
                let j = inner.jobs.get(&id);
                (
                    j.map(|j| j.account.clone()).unwrap_or_default(),
                    j.and_then(|j| j.tag.clone()),
                )
            };
            state.set_job(&id, end.clone());
            state.end(&account, tag.as_deref());
            on_step(&state, &id, &end);
        });
    }

    pub fn set_job(&self, id: &str, s: JobState) {
        if let Some(j) = self.lock().jobs.get_mut(id) {
            j.state = s;
        }
    }

    pub fn job(&self, id: &str) -> Option<Job> {
        self.lock().jobs.get(id).cloned()
    }
}

/// A JSON error reply.
pub(crate) fn err(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

/// The standard reply for a refusal, for providers that answer over HTTP.
pub(crate) fn refusal_reply(r: Refusal) -> Response {
    match r {
        Refusal::Unauthorized => err(
            StatusCode::UNAUTHORIZED,
            json!({"detail": "Unauthorized: the session is not valid (banned or logged out)"}),
        ),
        Refusal::RateLimited | Refusal::Full => {
            let mut resp = err(
                StatusCode::TOO_MANY_REQUESTS,
                json!({"detail": "Too many requests; try again later", "clears_in": 30}),
            );
            resp.headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from_static("30"));
            resp
        }
        Refusal::Flaky => err(
            StatusCode::BAD_GATEWAY,
            json!({"detail": "upstream connect error"}),
        ),
        Refusal::Captcha => err(
            StatusCode::FORBIDDEN,
            json!({"detail": "captcha required", "code": "captcha_required"}),
        ),
        Refusal::Expired => err(
            StatusCode::PAYMENT_REQUIRED,
            json!({"detail": "Your subscription has expired", "code": "subscription_expired"}),
        ),
    }
}

/// A running simulator.
pub struct Sim {
    addr: SocketAddr,
    state: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Sim {
    /// Serve on `listen` (e.g. `127.0.0.1:0`).
    pub async fn start(listen: &str) -> std::io::Result<Sim> {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let (tx, _) = broadcast::channel(4096);
        let state: Shared = Arc::new(SimState {
            seq: AtomicU64::new(0),
            inner: Mutex::new(Inner {
                stats: Stats::default(),
                jobs: HashMap::new(),
                attempts: HashMap::new(),
                messages: HashMap::new(),
                prompts: HashMap::new(),
                media: HashMap::new(),
                mj_grids: HashMap::new(),
                cdn_link_ttl_s: 24 * 3600,
                owned: HashMap::new(),
                queued: HashMap::new(),
                modals: HashMap::new(),
                modal_log: Vec::new(),
                reacted: Default::default(),
                captcha_shown: Default::default(),
                fast_refused: Default::default(),
                sessions: HashMap::new(),
                pressed: Vec::new(),
                commands: [
                    ("imagine", "938956540159881230"),
                    ("describe", "1092492867185950852"),
                    ("blend", "1062880104792997970"),
                    ("info", "972289487818334209"),
                ]
                .into_iter()
                .map(|(n, id)| {
                    (
                        n.to_string(),
                        (id.to_string(), "1237876415471554623".to_string()),
                    )
                })
                .collect(),
            }),
            gateway: tx,
            base_url: Mutex::new(format!("http://{addr}")),
        });
        let app = router(state.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "simulator stopped");
            }
        });
        Ok(Sim { addr, state, task })
    }

    /// `http://host:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The witness now.
    pub fn stats(&self) -> Stats {
        self.state.lock().stats.clone()
    }

    /// Midjourney publishes new versions of its slash commands (as it does now and then):
    /// a command sent with an old version is refused as outdated.
    pub fn bump_command_versions(&self) {
        for (_, version) in self.state.lock().commands.values_mut() {
            let v: u64 = version.parse().unwrap_or(0);
            *version = (v + 1000).to_string();
        }
    }

    /// Every Midjourney button pressed so far (`custom_id`s, in order).
    pub fn pressed_buttons(&self) -> Vec<String> {
        self.state.lock().pressed.clone()
    }

    /// Every Midjourney modal submission received so far (Custom Zoom prompts with their
    /// zoom, Vary (Region) prompts with their masks).
    pub fn modal_submissions(&self) -> Vec<ModalSubmission> {
        self.state.lock().modal_log.clone()
    }

    /// Make the Discord CDN links of results from now on last `secs` (a day by default),
    /// as a test of what outlives them needs.
    pub fn set_cdn_link_ttl(&self, secs: u64) {
        self.state.lock().cdn_link_ttl_s = secs;
    }

    /// Post `n` messages from another user in a Discord channel, as a busy server does:
    /// they push a job's messages out of the channel's most recent page.
    pub fn discord_chatter(&self, channel: &str, n: usize) {
        discord::chatter(&self.state, channel, n);
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn router(state: Shared) -> Router {
    Router::new()
        .route("/_sim/stats", get(stats))
        // Media "CDN": results point here, and key frames or files to upload are fetched
        // from here in tests.
        .route("/_cdn/{file}", get(discord::cdn))
        .route("/_mjcdn/{job}/{file}", get(discord::mj_cdn))
        .merge(discord::routes())
        .merge(suno::routes())
        .merge(luma::routes())
        .merge(chatgpt::routes())
        .with_state(state)
}

async fn stats(State(s): State<Shared>) -> Json<Stats> {
    Json(s.lock().stats.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_and_directives_parse() {
        let a = SimAccount::parse("sim:flaky:acc1:3").unwrap();
        assert_eq!(
            (a.behaviour, a.name.as_str(), a.capacity),
            (Behaviour::Flaky, "acc1", 3)
        );
        assert_eq!(SimAccount::parse("sim:ok:x").unwrap().capacity, 1000);
        assert!(SimAccount::parse("real-token").is_none());
        assert!(SimAccount::parse("sim:weird:x").is_none());
        let d = Directives::parse("a fox [sim:ms=50] [sim:tag=t1] [sim:fail] [sim:task=k7]");
        assert_eq!(
            d,
            Directives {
                ms: 50,
                fail: true,
                hang: false,
                tag: Some("t1".into()),
                task: Some("k7".into()),
            }
        );
        assert_eq!(Directives::parse("plain").ms, 300);
    }
}
