//! Reading the event stream each shard keeps (`XADD MAXLEN ~`): task created, progress,
//! failover, completed, failed, cancelled, reaped; account state changes; ledger entries.
//! The dispatcher's webhook deliverer and its dashboard read it.

use std::collections::HashMap;

use redis::streams::{StreamRangeReply, StreamReadOptions, StreamReadReply};

use crate::{Scheduler, SchedulerError, keys};

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The stream entry id (`<ms>-<seq>`), usable as a cursor.
    pub id: String,
    /// The event type (`created`, `progress`, `completed`, `completed_n`, `failed`,
    /// `cancelled`, `failover`, `reaped`, `account`, `ledger`). The task events but
    /// `failed` are written for tasks with a webhook; `completed_n` counts, per account,
    /// those without one that a complete call finished ([`Event::completions`]).
    pub kind: String,
    /// Its fields (`task`, `tenant`, `account`, `state`, `reason`, …).
    pub fields: HashMap<String, String>,
}

impl Event {
    /// An event from a stream entry (as read by XREAD, XREADGROUP, XRANGE, XAUTOCLAIM).
    pub fn from_entry(e: redis::streams::StreamId) -> Event {
        to_event(e.id, e.map)
    }

    /// The completions this event records, per account: one for a `completed` event (a
    /// task with a webhook), each account's count for a `completed_n` (the tasks without
    /// one that a complete call finished); none for any other event.
    pub fn completions(&self) -> Vec<(String, u64)> {
        match self.kind.as_str() {
            "completed" => vec![(self.fields.get("account").cloned().unwrap_or_default(), 1)],
            "completed_n" => self
                .fields
                .get("accounts")
                .and_then(|a| serde_json::from_str::<Vec<(String, u64)>>(a).ok())
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }
}

fn to_event(id: String, map: HashMap<String, redis::Value>) -> Event {
    let mut fields: HashMap<String, String> = map
        .into_iter()
        .map(|(k, v)| (k, redis::from_redis_value::<String>(v).unwrap_or_default()))
        .collect();
    // The scripts do not write the time: the entry id (`<ms>-<seq>`) is it.
    if !fields.contains_key("at") {
        let ms = id.split('-').next().unwrap_or_default().to_string();
        fields.insert("at".into(), ms);
    }
    Event {
        id,
        kind: fields.get("type").cloned().unwrap_or_default(),
        fields,
    }
}

impl Scheduler {
    /// Events of one shard after `cursor` (`0` for the start), at most `count`, waiting
    /// up to `block_ms` for the first one (0: do not wait).
    pub async fn read_events(
        &self,
        base: &str,
        cursor: &str,
        count: usize,
        block_ms: usize,
    ) -> Result<Vec<Event>, SchedulerError> {
        let mut conn = self.conn().await?;
        let key = keys::events(base);
        if block_ms == 0 {
            let r: StreamRangeReply = redis::cmd("XRANGE")
                .arg(&key)
                .arg(format!("({cursor}"))
                .arg("+")
                .arg("COUNT")
                .arg(count)
                .query_async(&mut conn)
                .await?;
            return Ok(r.ids.into_iter().map(|e| to_event(e.id, e.map)).collect());
        }
        let opts = StreamReadOptions::default()
            .count(count)
            .block(block_ms.min(400));
        let r: Option<StreamReadReply> =
            redis::AsyncCommands::xread_options(&mut conn, &[key.as_str()], &[cursor], &opts)
                .await?;
        Ok(r.map(|r| {
            r.keys
                .into_iter()
                .flat_map(|k| k.ids)
                .map(|e| to_event(e.id, e.map))
                .collect()
        })
        .unwrap_or_default())
    }
}

/// Consuming a shard's event stream through a consumer group, so that several readers
/// share its entries and an entry stays pending until it is acknowledged: read new
/// entries, acknowledge, keep an entry claimed while it is being worked on, and take over
/// entries another consumer left idle (it died). `base` is the shard's base
/// ([`Scheduler::bases`]); the stream's key is built here.
impl Scheduler {
    /// Create the consumer group `group` on a shard's stream (and the stream, if it does
    /// not exist yet), reading from its start. A group that exists already is left as it
    /// is.
    pub async fn ensure_event_group(&self, base: &str, group: &str) -> Result<(), SchedulerError> {
        let mut conn = self.conn().await?;
        let r: Result<(), redis::RedisError> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(keys::events(base))
            .arg(group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        match r {
            Err(e) if e.code() != Some("BUSYGROUP") => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// New entries of a shard's stream for `consumer` in `group`, at most `count`, waiting
    /// up to `block_ms` for the first. A group that does not exist (the stream was
    /// deleted) is created again, with its connection given back first, and nothing is
    /// returned.
    pub async fn read_event_group(
        &self,
        base: &str,
        group: &str,
        consumer: &str,
        count: usize,
        block_ms: usize,
    ) -> Result<Vec<Event>, SchedulerError> {
        let r: Result<StreamReadReply, redis::RedisError> = {
            let mut conn = self.conn().await?;
            redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg(group)
                .arg(consumer)
                .arg("COUNT")
                .arg(count)
                .arg("BLOCK")
                .arg(block_ms)
                .arg("STREAMS")
                .arg(keys::events(base))
                .arg(">")
                .query_async(&mut conn)
                .await
        };
        match r {
            Ok(reply) => Ok(reply
                .keys
                .into_iter()
                .flat_map(|k| k.ids)
                .map(Event::from_entry)
                .collect()),
            Err(e) if e.code() == Some("NOGROUP") => {
                self.ensure_event_group(base, group).await?;
                Ok(Vec::new())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Acknowledge an entry: `group` is done with it.
    pub async fn ack_event(&self, base: &str, group: &str, id: &str) -> Result<(), SchedulerError> {
        let mut conn = self.conn().await?;
        let _: i64 = redis::cmd("XACK")
            .arg(keys::events(base))
            .arg(group)
            .arg(id)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Keep an entry claimed by `consumer` (reset its idle time), so that
    /// [`Scheduler::claim_stale_events`] does not hand it to another consumer while this
    /// one still works on it.
    pub async fn keep_event_claimed(
        &self,
        base: &str,
        group: &str,
        consumer: &str,
        id: &str,
    ) -> Result<(), SchedulerError> {
        let mut conn = self.conn().await?;
        let _: redis::Value = redis::cmd("XCLAIM")
            .arg(keys::events(base))
            .arg(group)
            .arg(consumer)
            .arg(0)
            .arg(id)
            .arg("JUSTID")
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Take over, for `consumer`, at most `count` entries of `group` that have been
    /// pending unacknowledged for at least `min_idle_ms` (their consumer died), from the
    /// start of the stream.
    pub async fn claim_stale_events(
        &self,
        base: &str,
        group: &str,
        consumer: &str,
        min_idle_ms: u64,
        count: usize,
    ) -> Result<Vec<Event>, SchedulerError> {
        let mut conn = self.conn().await?;
        // Redis 7 answers [cursor, entries, deleted ids], Redis 6.2 [cursor, entries].
        let reply: Vec<redis::Value> = redis::cmd("XAUTOCLAIM")
            .arg(keys::events(base))
            .arg(group)
            .arg(consumer)
            .arg(min_idle_ms)
            .arg("0")
            .arg("COUNT")
            .arg(count)
            .query_async(&mut conn)
            .await?;
        let Some(entries) = reply.into_iter().nth(1) else {
            return Err(SchedulerError::Protocol {
                script: "XAUTOCLAIM",
                reply: "no entries".into(),
            });
        };
        let range: StreamRangeReply = redis::from_redis_value(entries)?;
        Ok(range.ids.into_iter().map(Event::from_entry).collect())
    }
}

impl Scheduler {
    /// A provider's events since `since_ms` (ms since the epoch), newest first in each
    /// shard, at most `count_per_shard` from each shard, shard after shard.
    pub async fn recent_events(
        &self,
        provider: switchyard_core::Provider,
        since_ms: u64,
        count_per_shard: usize,
    ) -> Result<Vec<Event>, SchedulerError> {
        let mut events = Vec::new();
        for base in self.bases(provider) {
            let mut conn = self.conn().await?;
            let recent: StreamRangeReply = redis::cmd("XREVRANGE")
                .arg(keys::events(&base))
                .arg("+")
                .arg(since_ms)
                .arg("COUNT")
                .arg(count_per_shard)
                .query_async(&mut conn)
                .await?;
            events.extend(recent.ids.into_iter().map(|e| to_event(e.id, e.map)));
        }
        Ok(events)
    }
}
