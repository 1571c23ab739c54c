//! Reading the event stream each shard keeps (`XADD MAXLEN ~`): task created, started,
//! progress, failover, completed, failed, cancelled, reaped; account state changes;
//! ledger entries. The dispatcher's webhook and metrics consumers read it.

use std::collections::HashMap;

use redis::streams::{StreamRangeReply, StreamReadOptions, StreamReadReply};

use crate::{Scheduler, SchedulerError, keys};

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The stream entry id (`<ms>-<seq>`), usable as a cursor.
    pub id: String,
    /// The event type (`created`, `started`, `progress`, `completed`, `failed`,
    /// `cancelled`, `failover`, `reaped`, `account`, `ledger`).
    pub kind: String,
    /// Its fields (`task`, `tenant`, `account`, `state`, `reason`, …).
    pub fields: HashMap<String, String>,
}

impl Event {
    /// An event from a stream entry (as read by XREAD, XREADGROUP, XRANGE, XAUTOCLAIM).
    pub fn from_entry(e: redis::streams::StreamId) -> Event {
        to_event(e.id, e.map)
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
