//! One Discord gateway connection per account: identify, heartbeat, and the Midjourney
//! bot's messages matched to our jobs — the first message carries our nonce, updates to
//! it carry progress, the final message references it; error embeds carry the nonce.

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
    /// The bot's first message for it.
    pub start_id: Option<String>,
    /// Last progress seen.
    pub progress: u8,
    /// The final message.
    pub done: Option<Value>,
    /// An error embed: title, description.
    pub error: Option<(String, String)>,
}

#[derive(Default)]
struct State {
    jobs: HashMap<String, JobView>,
    by_message: HashMap<String, String>,
}

/// A live gateway session.
pub(crate) struct Gateway {
    state: Mutex<State>,
    notify: Notify,
    alive: AtomicBool,
}

fn transient(what: &str) -> UpstreamError {
    UpstreamError::Transient(format!("discord gateway: {what}"))
}

impl Gateway {
    /// Connect, identify, and start reading. Authentication failures disable the account.
    pub async fn connect(url: &str, token: &str) -> Result<Arc<Gateway>, UpstreamError> {
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
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                    if v["t"] == "READY" {
                        break;
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
        }
        let gw = Arc::new(Gateway {
            state: Mutex::new(State::default()),
            notify: Notify::new(),
            alive: AtomicBool::new(true),
        });
        let me = gw.clone();
        tokio::spawn(async move {
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
                                    Some(0) => me.observe(v["t"].as_str().unwrap_or(""), &v["d"]),
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
            me.alive.store(false, Ordering::Relaxed);
            me.notify.notify_waiters();
        });
        Ok(gw)
    }

    /// Whether the session still reads events.
    pub fn alive(&self) -> bool {
        self.alive.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Start tracking a nonce (before the command is sent, so no event is missed).
    pub fn ensure(&self, nonce: &str) {
        self.lock().jobs.entry(nonce.to_string()).or_default();
    }

    /// What we know of a job now.
    pub fn view(&self, nonce: &str) -> JobView {
        self.lock().jobs.get(nonce).cloned().unwrap_or_default()
    }

    /// Wait until something changes, or `max` passes.
    pub async fn changed(&self, max: Duration) {
        let _ = tokio::time::timeout(max, self.notify.notified()).await;
    }

    /// Apply one dispatch (or one message read from the channel history).
    pub fn observe(&self, t: &str, d: &Value) {
        let mut s = self.lock();
        let id = d["id"].as_str().unwrap_or("").to_string();
        match t {
            "MESSAGE_CREATE" => {
                if let Some(nonce) = d["nonce"].as_str().filter(|n| s.jobs.contains_key(*n)) {
                    let nonce = nonce.to_string();
                    let embed = &d["embeds"][0];
                    let is_error = embed["color"]
                        .as_u64()
                        .is_some_and(|c| ERROR_COLORS.contains(&c));
                    let view = s.jobs.entry(nonce.clone()).or_default();
                    if is_error {
                        view.error = Some((
                            embed["title"].as_str().unwrap_or("error").to_string(),
                            embed["description"].as_str().unwrap_or("").to_string(),
                        ));
                    } else {
                        view.start_id = Some(id.clone());
                        s.by_message.insert(id, nonce);
                    }
                } else if let Some(origin) = d["message_reference"]["message_id"].as_str()
                    && let Some(nonce) = s.by_message.get(origin).cloned()
                    && let Some(view) = s.jobs.get_mut(&nonce)
                {
                    view.done = Some(d.clone());
                    view.progress = 100;
                }
            }
            "MESSAGE_UPDATE" => {
                if let Some(nonce) = s.by_message.get(&id).cloned()
                    && let Some(view) = s.jobs.get_mut(&nonce)
                    && let Some(p) = percent(d["content"].as_str().unwrap_or(""))
                {
                    view.progress = view.progress.max(p);
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
    fn progress_is_read_from_content() {
        assert_eq!(percent("**fox** - <@1> (31%) (fast)"), Some(31));
        assert_eq!(percent("**fox** - <@1> (Waiting to start)"), None);
    }
}
