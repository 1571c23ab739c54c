//! One Discord gateway session per account across every worker process.
//!
//! Each process that runs a task of an account keeps a hub for it. The hubs compete for
//! the account's session lease in Redis (`Scheduler::session_hold`, renewed every
//! [`LEASE_EVERY`], lost after [`LEASE_TTL`]); the holder alone opens the gateway socket
//! and appends each of its events to the account's session stream, fenced by the lease
//! (`session_event` refuses a holder that lost it: it closes its socket). Every hub —
//! the holder's too — reads that stream into its view (a [`Gateway`] fed by
//! [`Gateway::observe`]), so a job's messages reach whichever process follows it. When
//! the holder dies, another hub takes the lease once it expires and opens a new session:
//! a new epoch, announced by a READY entry; the views of the old session end, and their
//! followers catch up from the channel's history, as after any reconnect.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use switchyard_core::Provider;
use switchyard_scheduler::Scheduler;
use switchyard_worker::UpstreamError;
use tokio::sync::Notify;
use tracing::{debug, warn};

use crate::gateway::{Gateway, Socket};

/// How long a session lease lasts without renewal: a dead holder's account gets a new
/// session after at most this.
const LEASE_TTL: Duration = Duration::from_secs(6);
/// How often a hub renews (or tries to take) its account's lease.
const LEASE_EVERY: Duration = Duration::from_secs(2);
/// How long a task waits for its account's session before failing as transient.
const SESSION_WAIT: Duration = Duration::from_secs(20);

const MJ: Provider = Provider::Midjourney;
/// The most events a holder keeps while Redis does not take them.
const UNSHARED_MAX: usize = 10_000;

/// The hubs of this process, by account.
pub(crate) struct Sessions {
    sched: Scheduler,
    /// This process, as a lease holder.
    holder: String,
    gateway_url: String,
    hubs: Arc<Mutex<HashMap<String, Arc<Hub>>>>,
    /// The process's one reader of its hubs' streams, started with the first hub.
    reader: std::sync::Once,
}

/// One account's session as this process sees it.
struct Hub {
    account: String,
    /// The token to open the session with (the latest a task gave).
    token: Mutex<String>,
    /// The current session's epoch and view.
    view: Mutex<Option<(u64, Arc<Gateway>)>>,
    /// Why this process could not open the session (the token refused), until it can.
    error: Mutex<Option<UpstreamError>>,
    changed: Notify,
    /// Where the process's reader reads this account's stream on from (empty: not
    /// started).
    after: Mutex<String>,
    /// Its lease loop (which owns the socket's task while this process holds the
    /// lease): ended before the lease is given up ([`Sessions::release_all`]).
    lease_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// The holder's socket task: ended when dropped (the lease lost, or the lease loop
/// ended).
struct SocketTask(tokio::task::JoinHandle<()>);

impl Drop for SocketTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Sessions {
    pub fn new(sched: Scheduler, gateway_url: String) -> Sessions {
        Sessions {
            sched,
            holder: format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()),
            gateway_url,
            hubs: Arc::new(Mutex::new(HashMap::new())),
            reader: std::sync::Once::new(),
        }
    }

    /// The account's current session (waiting for one, up to [`SESSION_WAIT`]): a view
    /// to follow jobs with and its session id to send interactions with.
    pub async fn view(&self, account: &str, token: &str) -> Result<Arc<Gateway>, UpstreamError> {
        let hub = self.hub(account, token);
        let deadline = tokio::time::Instant::now() + SESSION_WAIT;
        loop {
            let notified = hub.changed.notified();
            if let Some((_, v)) = hub.current()
                && v.alive()
            {
                return Ok(v);
            }
            if let Some(e) = hub.error.lock().unwrap_or_else(|p| p.into_inner()).clone() {
                return Err(e);
            }
            // A session its reader has not seen start (it began before the reader read).
            if hub.current().is_none()
                && let Ok(Some((epoch, session))) = self.sched.session_current(MJ, account).await
            {
                hub.install(epoch, session);
                continue;
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(UpstreamError::Transient(
                    "discord gateway: no session for the account yet".into(),
                ));
            }
            let _ =
                tokio::time::timeout((deadline - now).min(Duration::from_millis(500)), notified)
                    .await;
        }
    }

    /// Discord refused a session as unknown: its view ends (the next use waits for the
    /// account's next session).
    pub fn ended(&self, session_id: &str) {
        let hubs = self.hubs.lock().unwrap_or_else(|p| p.into_inner());
        for hub in hubs.values() {
            if let Some((_, v)) = hub.current()
                && v.session_id == session_id
            {
                v.end();
            }
        }
    }

    fn hub(&self, account: &str, token: &str) -> Arc<Hub> {
        self.reader.call_once(|| {
            tokio::spawn(read(
                self.sched.clone(),
                self.holder.clone(),
                self.hubs.clone(),
            ));
        });
        let mut hubs = self.hubs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = hubs.get(account) {
            *h.token.lock().unwrap_or_else(|p| p.into_inner()) = token.to_string();
            return h.clone();
        }
        let hub = Arc::new(Hub {
            account: account.to_string(),
            token: Mutex::new(token.to_string()),
            view: Mutex::new(None),
            error: Mutex::new(None),
            changed: Notify::new(),
            after: Mutex::new(String::new()),
            lease_task: Mutex::new(None),
        });
        hubs.insert(account.to_string(), hub.clone());
        let lease = tokio::spawn(hub.clone().lease(
            self.sched.clone(),
            self.holder.clone(),
            self.gateway_url.clone(),
        ));
        *hub.lease_task.lock().unwrap_or_else(|p| p.into_inner()) = Some(lease);
        hub
    }

    /// The process stops: every hub's lease loop ends (and with it its socket), then each
    /// session lease this process holds is given up, so that another process following
    /// the account takes it at its next try rather than when it expires.
    pub async fn release_all(&self) {
        let all: Vec<Arc<Hub>> = self
            .hubs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(_, h)| h)
            .collect();
        for hub in &all {
            let task = hub
                .lease_task
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            if let Some(task) = task {
                task.abort();
                // Ended (not only told to): no renewal can follow the release below.
                let _ = task.await;
            }
        }
        for hub in all {
            if let Err(e) = self
                .sched
                .session_release(MJ, &hub.account, &self.holder)
                .await
            {
                debug!(account = %hub.account, error = %e, "session lease not given up: it expires");
            }
        }
    }
}

/// The process's reader: every hub's stream, in one blocking read per shard, into the
/// hubs' views.
async fn read(sched: Scheduler, holder: String, hubs: Arc<Mutex<HashMap<String, Arc<Hub>>>>) {
    loop {
        let all: Vec<Arc<Hub>> = hubs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        let mut cursors = Vec::with_capacity(all.len());
        for hub in &all {
            let after = hub.after.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let after = if after.is_empty() {
                // A new hub: its session so far, and its stream from now on.
                let Ok(cursor) = sched.session_cursor(MJ, &hub.account).await else {
                    continue;
                };
                if let Ok(Some((epoch, session))) = sched.session_current(MJ, &hub.account).await {
                    hub.install(epoch, session);
                }
                *hub.after.lock().unwrap_or_else(|p| p.into_inner()) = cursor.clone();
                cursor
            } else {
                after
            };
            cursors.push((hub.account.clone(), after));
        }
        if cursors.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let events = match sched
            .session_events(MJ, &cursors, Duration::from_millis(500))
            .await
        {
            Ok(e) => e,
            Err(e) => {
                warn!(error = %e, "gateway session events: Redis failed");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        for (account, e) in events {
            if let Some(hub) = all.iter().find(|h| h.account == account) {
                *hub.after.lock().unwrap_or_else(|p| p.into_inner()) = e.id.clone();
                // The holder applied its own session's events as they came.
                if e.holder != holder {
                    hub.apply(&sched, e).await;
                }
            }
        }
    }
}

impl Hub {
    fn current(&self) -> Option<(u64, Arc<Gateway>)> {
        self.view.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A new session (epoch): the old view ends (its followers catch up), a new one
    /// starts.
    fn install(&self, epoch: u64, session_id: String) {
        let mut view = self.view.lock().unwrap_or_else(|p| p.into_inner());
        if view.as_ref().is_some_and(|(e, _)| *e >= epoch) {
            return;
        }
        if let Some((_, old)) = view.take() {
            old.end();
        }
        *view = Some((epoch, Gateway::view_of(session_id)));
        drop(view);
        self.changed.notify_waiters();
    }

    /// Hold the account's session lease, or wait to take it: the holder keeps the
    /// socket open and forwards its events; a hub that loses the lease closes it.
    async fn lease(self: Arc<Self>, sched: Scheduler, holder: String, url: String) {
        let mut socket: Option<SocketTask> = None;
        loop {
            let held = match sched
                .session_hold(MJ, &self.account, &holder, LEASE_TTL)
                .await
            {
                Ok(h) => h,
                Err(e) => {
                    // Unknown: the socket stays (a holder that really lost the lease is
                    // fenced off at its next event).
                    warn!(account = %self.account, error = %e, "session lease: Redis failed");
                    tokio::time::sleep(LEASE_EVERY).await;
                    continue;
                }
            };
            if !held {
                if socket.take().is_some() {
                    debug!(account = %self.account, "session lease lost: closing the gateway");
                }
            } else if socket.as_ref().is_none_or(|s| s.0.is_finished()) {
                socket = None;
                let token = self.token.lock().unwrap_or_else(|p| p.into_inner()).clone();
                match Gateway::open(&url, &token).await {
                    Ok(s) => match sched
                        .session_ready(MJ, &self.account, &holder, &s.session_id)
                        .await
                    {
                        Ok(epoch) if epoch > 0 => {
                            *self.error.lock().unwrap_or_else(|p| p.into_inner()) = None;
                            self.install(epoch, s.session_id.clone());
                            let me = self.clone();
                            socket = Some(SocketTask(tokio::spawn(me.forward(
                                sched.clone(),
                                holder.clone(),
                                epoch,
                                s,
                            ))));
                        }
                        _ => {} // lost the lease meanwhile: the socket closes (dropped)
                    },
                    Err(e) => {
                        if matches!(e, UpstreamError::AccountDead { .. }) {
                            *self.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                            self.changed.notify_waiters();
                        }
                        let _ = sched.session_release(MJ, &self.account, &holder).await;
                    }
                }
            }
            tokio::time::sleep(LEASE_EVERY).await;
        }
    }

    /// The holder's socket: each event applied here at once, and appended to the
    /// account's stream for the other processes, while the lease is this process's. An
    /// event Redis did not take (an outage) is kept and appended, in order, once it
    /// answers again: the others' jobs get it late, never not at all.
    async fn forward(
        self: Arc<Self>,
        sched: Scheduler,
        holder: String,
        epoch: u64,
        mut socket: Socket,
    ) {
        let mut unshared: std::collections::VecDeque<(String, String)> = Default::default();
        // Said once per outage, not at every retry.
        let mut failing = false;
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                ev = socket.events.recv() => {
                    let Some((kind, data)) = ev else { return };
                    if let Some((e, view)) = self.current()
                        && e == epoch
                    {
                        view.observe(&kind, &data);
                    }
                    if unshared.len() >= UNSHARED_MAX {
                        unshared.pop_front();
                    }
                    unshared.push_back((kind, data.to_string()));
                }
                _ = tick.tick() => {}
            }
            while let Some((kind, data)) = unshared.front() {
                match sched
                    .session_event(MJ, &self.account, &holder, epoch, kind, data)
                    .await
                {
                    Ok(true) => {
                        unshared.pop_front();
                        failing = false;
                    }
                    Ok(false) => {
                        debug!(account = %self.account, "session fenced off: closing the gateway");
                        return;
                    }
                    Err(e) => {
                        if !failing {
                            warn!(account = %self.account, error = %e, "gateway events not shared yet; kept until Redis answers");
                            failing = true;
                        }
                        break;
                    }
                }
            }
        }
    }

    /// One entry of the account's stream: a new session, or an event of the current one.
    async fn apply(&self, sched: &Scheduler, e: switchyard_scheduler::SessionEvent) {
        if e.kind == "READY" {
            self.install(e.epoch, e.data);
            return;
        }
        let current = self.current().map_or(0, |(epoch, _)| epoch);
        if e.epoch > current
            && let Ok(Some((epoch, session))) = sched.session_current(MJ, &self.account).await
        {
            // A session whose start this hub missed: its id from the lease.
            self.install(epoch, session);
        }
        if let Some((epoch, view)) = self.current()
            && epoch == e.epoch
        {
            let data: Value = serde_json::from_str(&e.data).unwrap_or(Value::Null);
            view.observe(&e.kind, &data);
        }
    }
}
