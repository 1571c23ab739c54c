//! `session.lua`: one upstream session per account across every worker process (a
//! Midjourney account's Discord gateway). The holder of an account's lease opens the
//! session and appends its events to the account's stream; every process that follows
//! a job of the account reads them there, so a job's result reaches whichever process
//! runs its task, also after the holder died (another takes the lease when it expires,
//! opens a new session: a new epoch, which readers see as a READY entry).

use std::time::Duration;

use redis::streams::{StreamReadOptions, StreamReadReply};
use switchyard_core::Provider;

use crate::{Scheduler, SchedulerError, invoke, keys};

/// One entry of an account's session stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEvent {
    /// The stream entry id (read on after it).
    pub id: String,
    /// The session's epoch (a new one per session opened).
    pub epoch: u64,
    /// `READY` (a new session; `data` is its id) or the upstream's event type.
    pub kind: String,
    /// The event's payload (JSON text), or the session id of a READY.
    pub data: String,
    /// The process that held the session (it applied the event itself).
    pub holder: String,
}

impl Scheduler {
    /// The shard base of an account's session keys (by the account id: every process
    /// finds them from the account alone).
    fn session_base(&self, provider: Provider, account: &str) -> String {
        keys::shard_base(
            &self.inner.prefix,
            provider,
            keys::shard_of(account, self.inner.cfg.shards),
        )
    }

    async fn session_op(
        &self,
        provider: Provider,
        account: &str,
        op: &str,
        holder: &str,
        args: &[&str],
    ) -> Result<u64, SchedulerError> {
        let mut inv = self.inner.scripts.session.prepare_invoke();
        inv.key(self.session_base(provider, account))
            .arg(op)
            .arg(account)
            .arg(holder);
        for a in args {
            inv.arg(*a);
        }
        let mut conn = self.conn().await?;
        invoke(&inv, &mut conn).await
    }

    /// Take or keep the lease of `account`'s session for `holder` (a process) for `ttl`.
    /// Returns whether `holder` holds it.
    pub async fn session_hold(
        &self,
        provider: Provider,
        account: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, SchedulerError> {
        let ttl = ttl.as_millis().to_string();
        Ok(self
            .session_op(provider, account, "hold", holder, &[&ttl])
            .await?
            == 1)
    }

    /// The holder opened a session: its epoch (0: `holder` no longer holds the lease).
    pub async fn session_ready(
        &self,
        provider: Provider,
        account: &str,
        holder: &str,
        session_id: &str,
    ) -> Result<u64, SchedulerError> {
        self.session_op(provider, account, "ready", holder, &[session_id])
            .await
    }

    /// One event of the holder's session of `epoch`. Returns false when the lease is
    /// not the holder's (or the epoch not current) any more: it must close the session.
    pub async fn session_event(
        &self,
        provider: Provider,
        account: &str,
        holder: &str,
        epoch: u64,
        kind: &str,
        data: &str,
    ) -> Result<bool, SchedulerError> {
        let epoch = epoch.to_string();
        Ok(self
            .session_op(provider, account, "event", holder, &[&epoch, kind, data])
            .await?
            == 1)
    }

    /// Give up the lease (a holder that stops).
    pub async fn session_release(
        &self,
        provider: Provider,
        account: &str,
        holder: &str,
    ) -> Result<(), SchedulerError> {
        self.session_op(provider, account, "release", holder, &[])
            .await?;
        Ok(())
    }

    /// The account's current session: epoch and id, if one was opened.
    pub async fn session_current(
        &self,
        provider: Provider,
        account: &str,
    ) -> Result<Option<(u64, String)>, SchedulerError> {
        let key = keys::session(&self.session_base(provider, account), account);
        let mut conn = self.conn().await?;
        let (epoch, session): (Option<u64>, Option<String>) = redis::cmd("HMGET")
            .arg(&key)
            .arg("epoch")
            .arg("session")
            .query_async(&mut conn)
            .await?;
        Ok(epoch.zip(session).filter(|(e, s)| *e > 0 && !s.is_empty()))
    }

    /// Which process holds the account's session lease (its holder name), while one does.
    pub async fn session_holder(
        &self,
        provider: Provider,
        account: &str,
    ) -> Result<Option<String>, SchedulerError> {
        let key = keys::session(&self.session_base(provider, account), account);
        let mut conn = self.conn().await?;
        let (holder, until): (Option<String>, Option<u64>) = redis::cmd("HMGET")
            .arg(&key)
            .arg("holder")
            .arg("until")
            .query_async(&mut conn)
            .await?;
        Ok(holder.filter(|h| !h.is_empty() && until.is_some_and(|u| u > self.now_ms())))
    }

    /// The id of the last entry of `account`'s session stream (`0-0` when empty): where
    /// a reader that starts now reads on from.
    pub async fn session_cursor(
        &self,
        provider: Provider,
        account: &str,
    ) -> Result<String, SchedulerError> {
        let key = keys::session_events(&self.session_base(provider, account), account);
        let mut conn = self.conn().await?;
        let last: redis::streams::StreamRangeReply = redis::cmd("XREVRANGE")
            .arg(&key)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut conn)
            .await?;
        Ok(last
            .ids
            .first()
            .map_or_else(|| "0-0".to_string(), |e| e.id.clone()))
    }

    /// The session events of several accounts, each after its cursor (from
    /// [`Scheduler::session_cursor`] or an event read), waiting up to `block` for the
    /// first: one blocking read per shard (its accounts' streams share its slot).
    pub async fn session_events(
        &self,
        provider: Provider,
        cursors: &[(String, String)],
        block: Duration,
    ) -> Result<Vec<(String, SessionEvent)>, SchedulerError> {
        let mut by_base: Vec<(String, Vec<(String, String)>)> = Vec::new();
        for (account, after) in cursors {
            let base = self.session_base(provider, account);
            match by_base.iter_mut().find(|(b, _)| *b == base) {
                Some((_, list)) => list.push((account.clone(), after.clone())),
                None => by_base.push((base, vec![(account.clone(), after.clone())])),
            }
        }
        let mut out = Vec::new();
        let shards = by_base.len().max(1) as u32;
        for (base, list) in by_base {
            let keys: Vec<String> = list
                .iter()
                .map(|(a, _)| keys::session_events(&base, a))
                .collect();
            let ids: Vec<&str> = list.iter().map(|(_, after)| after.as_str()).collect();
            let opts = StreamReadOptions::default()
                .count(500)
                .block((block / shards).as_millis().clamp(1, 1000) as usize);
            let mut guard = crate::connection::Blocked(Some(self.conn().await?));
            let r: Result<Option<StreamReadReply>, redis::RedisError> = match guard.0.as_mut() {
                Some(c) => redis::AsyncCommands::xread_options(c, &keys, &ids, &opts).await,
                None => Ok(None),
            };
            guard.finish(r.is_ok());
            for k in r?.map(|r| r.keys).unwrap_or_default() {
                let Some(i) = keys.iter().position(|key| *key == k.key) else {
                    continue;
                };
                for e in k.ids {
                    let get = |f: &str| -> String {
                        e.map
                            .get(f)
                            .and_then(|v| redis::from_redis_value::<String>(v.clone()).ok())
                            .unwrap_or_default()
                    };
                    out.push((
                        list[i].0.clone(),
                        SessionEvent {
                            epoch: get("e").parse().unwrap_or(0),
                            kind: get("t"),
                            data: get("d"),
                            holder: get("h"),
                            id: e.id.clone(),
                        },
                    ));
                }
            }
        }
        Ok(out)
    }
}
