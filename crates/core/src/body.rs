//! The task body: what the dispatcher stores with a task and the provider worker reads.
//! The scheduler keeps it as an opaque string.

use serde::{Deserialize, Serialize};

use crate::error::SpecError;
use crate::provider::Provider;
use crate::task::{ParseOptions, TaskSpec};

/// What a follow-up task needs of the task it follows (its output and upstream reference).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Origin {
    /// The origin task's id.
    pub task_id: String,
    /// Its output (e.g. Midjourney's message id and buttons, Luma's generation id).
    pub output: serde_json::Value,
}

/// A task as the worker receives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskBody {
    /// The provider.
    pub model: Provider,
    /// The task type.
    pub task_type: String,
    /// The validated input, as the client sent it.
    pub input: serde_json::Value,
    /// The resolved Midjourney mode and version (from the input, or the origin task).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved: Option<serde_json::Value>,
    /// For follow-ups: the origin task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
}

impl TaskBody {
    /// Parse the stored JSON.
    pub fn from_json(s: &str) -> Result<TaskBody, serde_json::Error> {
        serde_json::from_str(s)
    }

    /// The JSON to store.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The typed task (validated again; a body that no longer parses is a bad request).
    pub fn spec(&self, opts: &ParseOptions) -> Result<TaskSpec, SpecError> {
        let mut spec = TaskSpec::parse(self.model.as_str(), &self.task_type, &self.input, opts)?;
        if let (TaskSpec::Midjourney(t), Some(r)) = (&mut spec, &self.resolved)
            && let (Ok(mode), Ok(version)) = (
                serde_json::from_value(r["process_mode"].clone()),
                serde_json::from_value(r["version"].clone()),
            )
        {
            t.process_mode = mode;
            t.version = version;
        }
        Ok(spec)
    }
}
