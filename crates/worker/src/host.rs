//! Hosting a finished task's output files (API.md, "Results are hosted"): download each
//! from the upstream (bounded in size and time), store it under the task id, cut a grid
//! into its four images, and list what was stored in the output's `hosted_files` (JSON
//! pointer → file name), which the dispatcher turns into signed links. Also the sweeper
//! that deletes a task's files when its retention ends.

use std::time::Duration;

use bytes::Bytes;
use serde_json::{Map, Value, json};
use switchyard_core::Config;
use switchyard_core::config::StorageConfig;
use switchyard_files::{Files, HOSTED_FIELD, split_grid};

use crate::{OutputFile, UpstreamError};

/// The store and how files are fetched for it.
pub(crate) struct Host {
    files: Files,
    http: reqwest::Client,
    max_bytes: u64,
}

/// What a worker does with output files: host them, or not (storage off), or fail the
/// run because the store could not be opened (never complete with a dead link).
pub(crate) enum Hosting {
    Off,
    On(Host),
    Broken(String),
}

impl Hosting {
    pub(crate) fn open(config: &Config) -> Hosting {
        match open_files(&config.storage) {
            Ok(None) => Hosting::Off,
            Ok(Some(files)) => Hosting::On(Host {
                files,
                http: reqwest::Client::builder()
                    .timeout(Duration::from_secs(config.storage.download_timeout_s))
                    .build()
                    .unwrap_or_default(),
                max_bytes: config.storage.max_file_bytes,
            }),
            Err(e) => Hosting::Broken(e),
        }
    }

    pub(crate) fn files(&self) -> Option<&Files> {
        match self {
            Hosting::On(h) => Some(&h.files),
            _ => None,
        }
    }
}

/// The store `config` names; an error says what is wrong with the configuration.
pub fn open_files(config: &StorageConfig) -> Result<Option<Files>, String> {
    Files::open(config).map_err(|e| e.to_string())
}

fn transient(what: String) -> UpstreamError {
    UpstreamError::Transient(format!("upstream_timeout: {what}"))
}

impl Host {
    /// Store `wanted` for `task_id` and record them in `output`. Any failure fails the
    /// run as transient (a retry resumes the finished upstream job and hosts again).
    pub(crate) async fn host(
        &self,
        task_id: &str,
        wanted: Vec<OutputFile>,
        mut output: Value,
    ) -> Result<Value, UpstreamError> {
        let mut hosted = Map::new();
        for f in wanted {
            let bytes = self.download(&f.url).await.map_err(|e| {
                transient(format!("could not download the result {} ({e})", f.name))
            })?;
            let store = |name: String, bytes: Bytes| async move {
                self.files
                    .put(task_id, &name, bytes)
                    .await
                    .map_err(|e| transient(format!("could not store the result {name} ({e})")))
            };
            if let Some(into) = &f.split_into {
                let grid = bytes.clone();
                let parts = tokio::task::spawn_blocking(move || split_grid(&grid))
                    .await
                    .map_err(|e| transient(format!("cutting the grid stopped ({e})")))?
                    .map_err(|e| transient(format!("could not cut the grid {} ({e})", f.name)))?;
                let stem = f.name.rsplit_once('.').map_or(f.name.as_str(), |(s, _)| s);
                for (i, part) in parts.into_iter().enumerate() {
                    let name = format!("{stem}_{i}.png");
                    store(name.clone(), Bytes::from(part)).await?;
                    hosted.insert(format!("{into}/{i}"), json!(name));
                }
                // The links go at `into`'s four places (what the upstream put there stays
                // for a dispatcher that does not host).
                if output
                    .pointer(into)
                    .and_then(Value::as_array)
                    .is_none_or(|a| a.len() != 4)
                {
                    set_pointer(&mut output, into, json!([null, null, null, null]));
                }
            }
            store(f.name.clone(), bytes).await?;
            hosted.insert(f.pointer.clone(), json!(f.name));
            for p in &f.also_at {
                hosted.insert(p.clone(), json!(f.name));
            }
        }
        if !hosted.is_empty() {
            output[HOSTED_FIELD] = Value::Object(hosted);
        }
        Ok(output)
    }

    /// A file's bytes, at most `max_bytes`.
    async fn download(&self, url: &str) -> Result<Bytes, String> {
        let mut resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        if !resp.status().is_success() {
            return Err(format!("HTTP {}", resp.status().as_u16()));
        }
        let too_large = || format!("larger than storage.max_file_bytes ({})", self.max_bytes);
        if resp.content_length().is_some_and(|n| n > self.max_bytes) {
            return Err(too_large());
        }
        let mut out = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| e.without_url().to_string())?
        {
            if (out.len() + chunk.len()) as u64 > self.max_bytes {
                return Err(too_large());
            }
            out.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(out))
    }
}

/// Set the field at a JSON pointer of an object (`/a/b`), creating objects on the way.
fn set_pointer(v: &mut Value, pointer: &str, value: Value) {
    let mut cur = v;
    let parts: Vec<&str> = pointer.split('/').skip(1).collect();
    for (i, p) in parts.iter().enumerate() {
        if !cur.is_object() {
            *cur = json!({});
        }
        let Value::Object(m) = cur else { return };
        if i + 1 == parts.len() {
            m.insert((*p).to_string(), value);
            return;
        }
        cur = m.entry((*p).to_string()).or_insert_with(|| json!({}));
    }
}
