//! One Discord gateway connection per account: identify, heartbeat, and the Midjourney
//! bot's messages matched to our jobs.
//!
//! How a message is matched to a job (Discord gives no single key for all of them):
//! - the interaction's first reply carries our nonce on the gateway (never in the channel
//!   history) and names the interaction, whose id INTERACTION_CREATE / INTERACTION_SUCCESS
//!   pair with the nonce; read back from the history it is found by that interaction id
//!   or, for a command whose interaction id was never seen, by the prompt it echoes;
//! - that reply is the job message: progress edits it in place, and its preview's file
//!   name carries the Midjourney job id;
//! - the result is a new message that names the job only by its image's file name and
//!   its buttons' `custom_id`s; an error after the start replies to the job message.
//!
//! The same [`Gateway::observe`] reads live events and pages of the channel's history,
//! so a resumed run rebuilds a job's state with the code that follows it live.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use switchyard_worker::UpstreamError;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tracing::{debug, warn};

const ERROR_COLORS: [u64; 2] = [16_711_680, 16_776_960];

/// What we know of one job.
#[derive(Debug, Clone, Default)]
pub(crate) struct JobView {
    /// The interaction Discord created for our command or button.
    pub interaction_id: Option<String>,
    /// The bot's job message (its first reply, edited with progress).
    pub start_id: Option<String>,
    /// Midjourney's job id.
    pub job_id: Option<String>,
    /// The job message was deleted: the job ended upstream.
    pub start_gone: bool,
    /// Last progress seen.
    pub progress: u8,
    /// The preview images of the job message's progress edits, in order, each once.
    pub previews: Vec<String>,
    /// The result message.
    pub done: Option<Value>,
    /// An error embed: title, description.
    pub error: Option<(String, String)>,
    /// Midjourney queued the job behind the account's running ones ("Job queued"): it
    /// starts by itself, on this account.
    pub queued: bool,
    /// The modal a button opened (Custom Zoom's text modal, Vary (Region)'s editor), to
    /// be submitted.
    pub modal: Option<Value>,
    /// The bot's first reply as it came (a command that is no job, as `/info`, answers
    /// with it alone).
    pub first_reply: Option<Value>,
}

impl JobView {
    /// A warning or error embed about the job: "Job queued" only says it waits (it
    /// starts by itself); anything else ends it.
    fn note_embed(&mut self, m: &Value) {
        let (title, description) = embed_error(m);
        if title.eq_ignore_ascii_case("job queued") {
            self.queued = true;
        } else {
            self.error = Some((title, description));
        }
    }
}

/// What is known of a job before this session saw anything (a resumed run).
#[derive(Debug, Clone, Default)]
pub(crate) struct Known {
    /// The prompt a command's first reply echoes (`**<prompt>** - …`), when it has one.
    pub echo: Option<String>,
    /// The interaction id, once seen.
    pub interaction_id: Option<String>,
    /// The job message id, once seen.
    pub start_id: Option<String>,
    /// The Midjourney job id, once seen.
    pub job_id: Option<String>,
    /// A seed asked for by reaction: the job id whose seed the bot's direct message
    /// names.
    pub seed_of: Option<String>,
}

#[derive(Default)]
struct State {
    jobs: HashMap<String, JobView>,
    echoes: HashMap<String, String>,
    by_message: HashMap<String, String>,
    by_job: HashMap<String, String>,
    by_interaction: HashMap<String, String>,
    /// Seeds awaited: the job id a direct message names → our nonce.
    seeds: HashMap<String, String>,
}

impl State {
    fn set_start(&mut self, nonce: &str, id: &str) {
        self.by_message.insert(id.to_string(), nonce.to_string());
        if let Some(v) = self.jobs.get_mut(nonce) {
            v.start_id = Some(id.to_string());
        }
    }

    fn set_job(&mut self, nonce: &str, job: Option<String>) {
        let Some(job) = job else { return };
        self.by_job.insert(job.clone(), nonce.to_string());
        if let Some(v) = self.jobs.get_mut(nonce) {
            v.job_id.get_or_insert(job);
        }
    }

    fn set_interaction(&mut self, nonce: &str, id: &str) {
        self.by_interaction
            .insert(id.to_string(), nonce.to_string());
        if let Some(v) = self.jobs.get_mut(nonce) {
            v.interaction_id = Some(id.to_string());
        }
    }

    /// The job whose first reply this is: by nonce (live), by interaction id, or by the
    /// prompt it echoes for a job whose first reply is still unknown.
    fn first_reply_of(&self, d: &Value) -> Option<String> {
        if let Some(n) = d["nonce"].as_str().filter(|n| self.jobs.contains_key(*n)) {
            return Some(n.to_string());
        }
        let meta = d["interaction_metadata"]["id"]
            .as_str()
            .or(d["interaction"]["id"].as_str());
        if let Some(n) = meta.and_then(|i| self.by_interaction.get(i)) {
            return Some(n.clone());
        }
        let content = d["content"].as_str().unwrap_or("");
        self.echoes
            .iter()
            .find(|(nonce, echo)| {
                self.jobs
                    .get(*nonce)
                    .is_some_and(|v| v.start_id.is_none() && v.done.is_none())
                    && content.starts_with(&format!("**{echo}**"))
            })
            .map(|(n, _)| n.clone())
    }
}

impl State {
    /// The job whose failure this error embed is when no reply names it: an error after
    /// the start replies to the job message, which Midjourney deletes, so a run that never
    /// saw that message (resumed from history) knows the job by the command and prompt the
    /// embed's footer names (`/imagine <prompt>`).
    fn error_by_echo(&self, d: &Value) -> Option<String> {
        let footer = d["embeds"][0]["footer"]["text"].as_str()?;
        self.echoes
            .iter()
            .find(|(nonce, echo)| {
                self.jobs
                    .get(*nonce)
                    .is_some_and(|v| v.done.is_none() && v.error.is_none())
                    && footer == format!("/imagine {echo}")
            })
            .map(|(n, _)| n.clone())
    }

    /// The job whose result this is when neither its job id nor a reply names it: a job
    /// whose job message is known but whose job id never was (it ended before its first
    /// progress was seen), and whose prompt the result echoes, posted after the job message.
    fn result_by_echo(&self, d: &Value) -> Option<String> {
        let content = d["content"].as_str().unwrap_or("");
        let id: u64 = d["id"].as_str().and_then(|i| i.parse().ok()).unwrap_or(0);
        self.echoes
            .iter()
            .find(|(nonce, echo)| {
                self.jobs.get(*nonce).is_some_and(|v| {
                    v.job_id.is_none()
                        && v.done.is_none()
                        && v.start_id
                            .as_deref()
                            .and_then(|s| s.parse::<u64>().ok())
                            .is_some_and(|start| start < id)
                }) && content.starts_with(&format!("**{echo}**"))
            })
            .map(|(n, _)| n.clone())
    }
}

/// The Midjourney job id a message names: in its buttons' `custom_id`s or its image's
/// file name (`<job>_grid_0.webp` while it runs, `<user>_<prompt>_<job>.png` at the end).
pub(crate) fn job_id_of(m: &Value) -> Option<String> {
    let ids = m["components"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["components"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c["custom_id"].as_str().map(str::to_string));
    let files = m["attachments"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| {
            a["filename"]
                .as_str()
                .or(a["url"].as_str().and_then(|u| u.rsplit('/').next()))
                .map(|f| f.split('?').next().unwrap_or(f).to_string())
        });
    ids.chain(files).find_map(|text| {
        text.split(['_', '.', ':'])
            .find(|part| is_uuid(part))
            .map(str::to_string)
    })
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

/// A finished job's message: buttons under it, and neither "Waiting to start" nor a
/// progress percentage in its text.
/// The job id a bot message about a job's seed names (`Job ID: <uuid>` with a seed, in
/// its content or its embed), if it is one.
pub(crate) fn seed_job_of(m: &Value) -> Option<String> {
    let text = format!(
        "{}\n{}",
        m["content"].as_str().unwrap_or(""),
        m["embeds"][0]["description"].as_str().unwrap_or("")
    );
    if !text.to_ascii_lowercase().contains("seed") {
        return None;
    }
    let (_, after) = text.split_once("Job ID")?;
    after
        .split(|c: char| !(c.is_ascii_hexdigit() || c == '-'))
        .find(|p| is_uuid(p))
        .map(str::to_string)
}

/// The seed a bot message names (`seed 123`, `**seed** 123`).
pub(crate) fn seed_in(m: &Value) -> Option<u64> {
    let text = format!(
        "{}\n{}",
        m["content"].as_str().unwrap_or(""),
        m["embeds"][0]["description"].as_str().unwrap_or("")
    );
    let (_, after) = text.split_once("seed")?;
    after
        .trim_start_matches(['*', ':', ' '])
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

fn is_result(m: &Value) -> bool {
    let content = m["content"].as_str().unwrap_or("");
    !is_error(m)
        && m["components"].as_array().is_some_and(|c| !c.is_empty())
        && !content.contains("(Waiting to start)")
        && percent(content).is_none()
}

fn is_error(m: &Value) -> bool {
    m["embeds"][0]["color"]
        .as_u64()
        .is_some_and(|c| ERROR_COLORS.contains(&c))
}

fn embed_error(m: &Value) -> (String, String) {
    let embed = &m["embeds"][0];
    (
        embed["title"].as_str().unwrap_or("error").to_string(),
        embed["description"].as_str().unwrap_or("").to_string(),
    )
}

/// A live gateway session.
pub(crate) struct Gateway {
    state: Mutex<State>,
    notify: Notify,
    alive: AtomicBool,
    /// The session id READY gave; interactions name it.
    pub session_id: String,
}

fn transient(what: &str) -> UpstreamError {
    UpstreamError::Transient(format!("discord gateway: {what}"))
}

/// An open gateway socket: the session id READY gave and the session's dispatch events
/// (type, data) as they come; the channel closes when the socket does. Dropped, it
/// closes the socket.
pub(crate) struct Socket {
    /// The session id; interactions name it.
    pub session_id: String,
    /// The dispatch events.
    pub events: tokio::sync::mpsc::UnboundedReceiver<(String, Value)>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Gateway {
    /// Open a socket: connect, identify, heartbeat, forward dispatches. Authentication
    /// failures disable the account.
    pub async fn open(url: &str, token: &str) -> Result<Socket, UpstreamError> {
        let (mut ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .map_err(|_| transient("could not connect"))?;
        let hello = next_json(&mut ws).await?;
        if hello["op"] != 10 {
            return Err(transient("no HELLO"));
        }
        let interval = hello["d"]["heartbeat_interval"].as_u64().unwrap_or(41_250);
        let identify = json!({"op": 2, "d": {"token": token, "capabilities": 16381,
            "properties": {"os": "Linux", "browser": "Chrome", "device": "", "client_build_number": 300000},
            "presence": {"status": "online", "since": 0, "activities": [], "afk": false},
            "compress": false}});
        ws.send(Message::Text(identify.to_string().into()))
            .await
            .map_err(|_| transient("could not identify"))?;
        let session_id = loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                    if v["t"] == "READY" {
                        break v["d"]["session_id"].as_str().unwrap_or("").to_string();
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    let code = frame.map(|f| u16::from(f.code)).unwrap_or(0);
                    return Err(if code == 4004 || code >= 4010 {
                        UpstreamError::AccountDead {
                            reason: format!("discord rejected the token (gateway close {code})"),
                        }
                    } else {
                        transient("closed during identify")
                    });
                }
                Some(Ok(_)) => {}
                _ => return Err(transient("closed during identify")),
            }
        };
        let (tx, events) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let (mut write, mut read) = ws.split();
            let mut beat = tokio::time::interval(Duration::from_millis(interval));
            beat.tick().await;
            let mut seq: Option<u64> = None;
            loop {
                tokio::select! {
                    _ = beat.tick() => {
                        if write.send(Message::Text(json!({"op": 1, "d": seq}).to_string().into())).await.is_err() {
                            break;
                        }
                    }
                    msg = read.next() => {
                        match msg {
                            Some(Ok(Message::Text(t))) => {
                                let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                                if let Some(s) = v["s"].as_u64() { seq = Some(s); }
                                match v["op"].as_u64() {
                                    Some(0) => {
                                        let kind = v["t"].as_str().unwrap_or("").to_string();
                                        if tx.send((kind, v["d"].clone())).is_err() { break; }
                                    }
                                    Some(7) | Some(9) => { debug!("gateway asked to reconnect"); break; }
                                    _ => {}
                                }
                            }
                            Some(Ok(Message::Close(f))) => {
                                if f.as_ref().is_some_and(|f| f.code != CloseCode::Normal) {
                                    warn!("gateway closed by the server");
                                }
                                break;
                            }
                            Some(Ok(_)) => {}
                            _ => break,
                        }
                    }
                }
            }
            let _ = write.send(Message::Close(None)).await;
        });
        Ok(Socket {
            session_id,
            events,
            task,
        })
    }

    /// A session of this process alone: a socket whose events this view reads.
    pub async fn connect(url: &str, token: &str) -> Result<Arc<Gateway>, UpstreamError> {
        let mut socket = Gateway::open(url, token).await?;
        let gw = Gateway::view_of(socket.session_id.clone());
        let me = gw.clone();
        tokio::spawn(async move {
            while let Some((t, d)) = socket.events.recv().await {
                me.observe(&t, &d);
            }
            me.end();
        });
        Ok(gw)
    }

    /// A view of a session whose events are fed to [`Gateway::observe`] by its reader
    /// (the session's socket, here or in another process).
    pub fn view_of(session_id: String) -> Arc<Gateway> {
        Arc::new(Gateway {
            state: Mutex::new(State::default()),
            notify: Notify::new(),
            alive: AtomicBool::new(true),
            session_id,
        })
    }

    /// The session ended: its followers reconnect (to the next session) and catch up.
    pub fn end(&self) {
        self.alive.store(false, Ordering::Relaxed);
        self.notify.notify_waiters();
    }

    /// A session with no connection (tests of the matcher).
    #[cfg(test)]
    fn detached() -> Gateway {
        Gateway {
            state: Mutex::new(State::default()),
            notify: Notify::new(),
            alive: AtomicBool::new(false),
            session_id: String::new(),
        }
    }

    /// Whether the session still reads events.
    pub fn alive(&self) -> bool {
        self.alive.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Start tracking a job (before its command is sent, so no event is missed), with
    /// whatever an earlier run learnt of it.
    pub fn track(&self, nonce: &str, known: &Known) {
        let mut s = self.lock();
        s.jobs.entry(nonce.to_string()).or_default();
        if let Some(e) = &known.echo {
            s.echoes.insert(nonce.to_string(), e.clone());
        }
        if let Some(i) = &known.interaction_id {
            s.set_interaction(nonce, i);
        }
        if let Some(m) = &known.start_id {
            s.set_start(nonce, m);
        }
        if let Some(j) = &known.seed_of {
            s.seeds.insert(j.clone(), nonce.to_string());
        } else {
            s.set_job(nonce, known.job_id.clone());
        }
    }

    /// Stop tracking a job.
    pub fn forget(&self, nonce: &str) {
        let mut s = self.lock();
        s.jobs.remove(nonce);
        s.echoes.remove(nonce);
        s.by_message.retain(|_, n| n != nonce);
        s.by_job.retain(|_, n| n != nonce);
        s.by_interaction.retain(|_, n| n != nonce);
        s.seeds.retain(|_, n| n != nonce);
    }

    /// What we know of a job now.
    pub fn view(&self, nonce: &str) -> JobView {
        self.lock().jobs.get(nonce).cloned().unwrap_or_default()
    }

    /// Wait until something changes, or `max` passes.
    pub async fn changed(&self, max: Duration) {
        let _ = tokio::time::timeout(max, self.notify.notified()).await;
    }

    /// Apply one dispatch, or one message read from the channel history (as
    /// MESSAGE_CREATE; history carries no nonce).
    pub fn observe(&self, t: &str, d: &Value) {
        let mut s = self.lock();
        let id = d["id"].as_str().unwrap_or("").to_string();
        match t {
            "INTERACTION_CREATE" | "INTERACTION_SUCCESS" => {
                let Some(nonce) = d["nonce"].as_str().filter(|n| s.jobs.contains_key(*n)) else {
                    return;
                };
                let nonce = nonce.to_string();
                s.set_interaction(&nonce, &id);
            }
            "INTERACTION_MODAL_CREATE" | "INTERACTION_IFRAME_MODAL_CREATE" => {
                let Some(nonce) = d["nonce"].as_str().filter(|n| s.jobs.contains_key(*n)) else {
                    return;
                };
                let nonce = nonce.to_string();
                if let Some(v) = s.jobs.get_mut(&nonce) {
                    v.modal = Some(d.clone());
                }
            }
            "MESSAGE_CREATE"
                if !s.seeds.is_empty()
                    && seed_job_of(d).is_some_and(|j| s.seeds.contains_key(&j)) =>
            {
                // The bot's direct message with a job's seed (after a ✉️ reaction).
                let Some(nonce) = seed_job_of(d).and_then(|j| s.seeds.get(&j).cloned()) else {
                    return;
                };
                if let Some(v) = s.jobs.get_mut(&nonce) {
                    v.done = Some(d.clone());
                    v.progress = 100;
                }
            }
            "MESSAGE_CREATE" | "MESSAGE_UPDATE" => {
                if let Some(nonce) = s.by_message.get(&id).cloned() {
                    // The job message again (an edit, or read back from the history).
                    s.set_job(&nonce, job_id_of(d));
                    if let Some(v) = s.jobs.get_mut(&nonce)
                        && let Some(p) = percent(d["content"].as_str().unwrap_or(""))
                    {
                        v.progress = v.progress.max(p);
                        if let Some(url) = d["attachments"][0]["url"].as_str()
                            && !v.previews.iter().any(|u| u == url)
                        {
                            v.previews.push(url.to_string());
                        }
                    }
                } else if t == "MESSAGE_CREATE"
                    && let Some(nonce) = s.first_reply_of(d)
                {
                    if let Some(v) = s.jobs.get_mut(&nonce) {
                        v.first_reply.get_or_insert_with(|| d.clone());
                    }
                    if is_error(d) {
                        if let Some(v) = s.jobs.get_mut(&nonce) {
                            v.note_embed(d);
                        }
                    } else if is_result(d) {
                        // A job that answers at once, with no job message first.
                        s.set_job(&nonce, job_id_of(d));
                        if let Some(v) = s.jobs.get_mut(&nonce) {
                            v.done = Some(d.clone());
                            v.progress = 100;
                        }
                    } else {
                        s.set_start(&nonce, &id);
                        s.set_job(&nonce, job_id_of(d));
                    }
                } else if t == "MESSAGE_CREATE" {
                    let by_job = job_id_of(d).and_then(|j| s.by_job.get(&j).cloned());
                    let replied = d["message_reference"]["message_id"]
                        .as_str()
                        .and_then(|m| s.by_message.get(m).cloned());
                    let echoed = || s.result_by_echo(d).filter(|_| is_result(d));
                    let failed = || s.error_by_echo(d).filter(|_| is_error(d));
                    let Some(nonce) = by_job
                        .filter(|_| is_result(d))
                        .or(replied)
                        .or_else(echoed)
                        .or_else(failed)
                    else {
                        return;
                    };
                    if is_result(d) {
                        s.set_job(&nonce, job_id_of(d));
                    }
                    let Some(v) = s.jobs.get_mut(&nonce) else {
                        return;
                    };
                    if is_error(d) {
                        v.note_embed(d);
                    } else if is_result(d) {
                        v.done = Some(d.clone());
                        v.progress = 100;
                    }
                } else {
                    return;
                }
            }
            "MESSAGE_DELETE" => {
                let Some(nonce) = s.by_message.get(&id).cloned() else {
                    return;
                };
                if let Some(v) = s.jobs.get_mut(&nonce) {
                    v.start_gone = true;
                }
            }
            _ => return,
        }
        drop(s);
        self.notify.notify_waiters();
    }
}

/// `(31%)` in a progress message.
fn percent(content: &str) -> Option<u8> {
    let end = content.find("%)")?;
    let start = content[..end].rfind('(')? + 1;
    content[start..end].trim().parse().ok()
}

async fn next_json<S>(ws: &mut S) -> Result<Value, UpstreamError>
where
    S: StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => {
                return serde_json::from_str(&t).map_err(|_| transient("unreadable frame"));
            }
            Some(Ok(_)) => {}
            _ => return Err(transient("closed")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_are_read_from_buttons_and_file_names() {
        let id = "1b2c3d4e-0000-4abc-a123-00000000002a";
        let preview =
            json!({"attachments": [{"url": format!("http://cdn/x/{id}_grid_0.webp?ex=1")}]});
        assert_eq!(job_id_of(&preview).as_deref(), Some(id));
        let result = json!({"attachments": [{"filename": format!("me_a_red_fox_{id}.png")}]});
        assert_eq!(job_id_of(&result).as_deref(), Some(id));
        let buttons = json!({"components": [{"components": [{"custom_id": format!("MJ::JOB::upsample::1::{id}")}]}]});
        assert_eq!(job_id_of(&buttons).as_deref(), Some(id));
        assert_eq!(
            job_id_of(&json!({"attachments": [{"filename": "image0.png"}]})),
            None
        );
    }

    #[test]
    fn a_failure_whose_job_message_is_gone_is_known_by_its_footer() {
        let gw = Gateway::detached();
        gw.track(
            "n1",
            &Known {
                echo: Some("a fox --relax".into()),
                ..Known::default()
            },
        );
        gw.track(
            "n2",
            &Known {
                echo: Some("a fox --fast".into()),
                ..Known::default()
            },
        );
        // From the history: the reply to a deleted job message, with its footer.
        gw.observe(
            "MESSAGE_CREATE",
            &json!({"id": "20", "content": "", "attachments": [], "components": [],
                    "message_reference": {"message_id": "19"},
                    "embeds": [{"title": "Invalid parameter", "color": 16_711_680,
                                "footer": {"text": "/imagine a fox --fast"}}]}),
        );
        assert!(gw.view("n1").error.is_none());
        assert_eq!(
            gw.view("n2").error.map(|e| e.0).as_deref(),
            Some("Invalid parameter")
        );
    }

    #[test]
    fn job_queued_is_waiting_not_failure_and_the_job_then_starts() {
        let gw = Gateway::detached();
        gw.track("n1", &Known::default());
        gw.observe("INTERACTION_CREATE", &json!({"id": "7", "nonce": "n1"}));
        gw.observe(
            "MESSAGE_CREATE",
            &json!({"id": "9", "nonce": "n1", "interaction_metadata": {"id": "7"},
                    "content": "", "attachments": [], "components": [],
                    "embeds": [{"title": "Job queued", "color": 16_776_960}]}),
        );
        let v = gw.view("n1");
        assert!(v.queued && v.error.is_none() && v.start_id.is_none());
        gw.observe(
            "MESSAGE_CREATE",
            &json!({"id": "10", "nonce": "n1", "interaction_metadata": {"id": "7"},
                    "content": "**a fox** - <@1> (Waiting to start)", "attachments": [], "components": []}),
        );
        assert_eq!(gw.view("n1").start_id.as_deref(), Some("10"));
        // Queue full is a refusal.
        gw.track("n2", &Known::default());
        gw.observe(
            "MESSAGE_CREATE",
            &json!({"id": "11", "nonce": "n2", "content": "", "attachments": [], "components": [],
                    "embeds": [{"title": "Queue full", "color": 16_776_960}]}),
        );
        assert_eq!(
            gw.view("n2").error.map(|e| e.0).as_deref(),
            Some("Queue full")
        );
    }

    #[test]
    fn a_resumed_job_is_rebuilt_from_history_without_nonces() {
        let gw = Gateway::detached();
        let id = "1b2c3d4e-0000-4abc-a123-00000000002a";
        gw.track(
            "n1",
            &Known {
                echo: Some("a fox --fast".into()),
                ..Known::default()
            },
        );
        // The history's copy of the first reply: no nonce; found by the echoed prompt.
        gw.observe(
            "MESSAGE_CREATE",
            &json!({"id": "10", "content": "**a fox --fast** - <@1> (Waiting to start)",
            "attachments": [], "components": []}),
        );
        assert_eq!(gw.view("n1").start_id.as_deref(), Some("10"));
        gw.observe(
            "MESSAGE_UPDATE",
            &json!({"id": "10", "content": "**a fox --fast** - <@1> (50%) (fast)",
            "attachments": [{"url": format!("http://cdn/{id}_grid_0.webp")}], "components": []}),
        );
        let v = gw.view("n1");
        assert_eq!((v.progress, v.job_id.as_deref()), (50, Some(id)));
        // Someone else's result with the same prompt is not ours.
        gw.observe("MESSAGE_CREATE", &json!({"id": "11", "content": "**a fox --fast** - <@1> (fast)",
            "attachments": [{"filename": "me_a_fox_00000000-0000-4000-a000-000000000001.png"}],
            "components": [{"components": [{"custom_id": "MJ::JOB::upsample::1::00000000-0000-4000-a000-000000000001"}]}]}));
        assert!(gw.view("n1").done.is_none());
        gw.observe("MESSAGE_CREATE", &json!({"id": "12", "content": "**a fox --fast** - <@1> (fast)",
            "attachments": [{"filename": format!("me_a_fox_{id}.png")}],
            "components": [{"components": [{"custom_id": format!("MJ::JOB::upsample::1::{id}")}]}]}));
        assert_eq!(gw.view("n1").done.unwrap()["id"], "12");
    }

    #[test]
    fn a_result_is_found_by_its_prompt_when_only_the_job_message_was_seen() {
        let gw = Gateway::detached();
        let id = "1b2c3d4e-0000-4abc-a123-00000000002a";
        let known = Known {
            echo: Some("an owl --relax".into()),
            start_id: Some("100".into()),
            ..Known::default()
        };
        gw.track("n2", &known);
        let result = |mid: &str| {
            json!({"id": mid, "content": "**an owl --relax** - <@1> (relaxed)",
                "attachments": [{"filename": format!("me_an_owl_{id}.png")}],
                "components": [{"components": [{"custom_id": format!("MJ::JOB::upsample::1::{id}")}]}]})
        };
        // An older result with the same prompt is not ours.
        gw.observe("MESSAGE_CREATE", &result("90"));
        assert!(gw.view("n2").done.is_none());
        gw.observe("MESSAGE_CREATE", &result("120"));
        let v = gw.view("n2");
        assert_eq!(v.done.unwrap()["id"], "120");
        assert_eq!(v.job_id.as_deref(), Some(id));
    }

    #[test]
    fn progress_is_read_from_content() {
        assert_eq!(percent("**fox** - <@1> (31%) (fast)"), Some(31));
        assert_eq!(percent("**fox** - <@1> (Waiting to start)"), None);
    }
}
