//! The task body: what the scheduler stores with a task and the provider worker reads.
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

/// A task as stored: the typed spec the worker runs (with the mode and version resolved,
/// a follow-up's inherited from its origin), the input as the client sent it (the API
/// shows it back), and the origin of a follow-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskBody {
    /// The provider.
    pub model: Provider,
    /// The model as the request named it, when that was an alias (`music-s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_name: Option<String>,
    /// The task type, as the request named it.
    pub task_type: String,
    /// The input, as the client sent it.
    pub input: serde_json::Value,
    /// The typed task. Absent only in bodies stored before it was (see [`TaskBody::spec`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    spec: Option<TaskSpec>,
    /// Older bodies' resolved Midjourney mode and version; read, never written.
    #[serde(default, skip_serializing)]
    resolved: Option<serde_json::Value>,
    /// For follow-ups: the origin task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
}

impl TaskBody {
    /// The body of a task: its typed spec, its input as sent, its origin.
    pub fn new(spec: TaskSpec, input: serde_json::Value, origin: Option<Origin>) -> TaskBody {
        TaskBody {
            model: spec.provider(),
            model_name: None,
            task_type: spec.task_type().to_string(),
            input,
            spec: Some(spec),
            resolved: None,
            origin,
        }
    }

    /// Keep the names the request used for the model and the task type (an alias such as
    /// `music-s` or `generate_lyrics` is shown back as sent).
    pub fn named(mut self, model: &str, task_type: &str) -> TaskBody {
        let model = model.trim();
        if model != self.model.as_str() {
            self.model_name = Some(model.to_string());
        }
        self.task_type = task_type.trim().to_string();
        self
    }

    /// The model's name as the request gave it.
    pub fn model_name(&self) -> &str {
        self.model_name.as_deref().unwrap_or(self.model.as_str())
    }

    /// Parse the stored JSON.
    pub fn from_json(s: &str) -> Result<TaskBody, serde_json::Error> {
        serde_json::from_str(s)
    }

    /// The JSON to store.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The typed task. A body stored before specs were (model, task type, input and the
    /// resolved Midjourney mode and version) is parsed again with `opts`; one that no
    /// longer parses is a bad request.
    pub fn spec(&self, opts: &ParseOptions) -> Result<TaskSpec, SpecError> {
        if let Some(spec) = &self.spec {
            return Ok(spec.clone());
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::ProcessMode;
    use crate::task::MjVersion;
    use serde_json::json;

    fn opts() -> ParseOptions {
        ParseOptions::default()
    }

    /// A stored body gives back the spec it was made from, for every provider, with what
    /// was resolved at intake (a follow-up's inherited mode and version) intact.
    #[test]
    fn the_spec_travels_typed() {
        let cases = [
            (
                "midjourney",
                "imagine",
                json!({"prompt": "a cat --v 5.2", "process_mode": "fast"}),
            ),
            (
                "midjourney",
                "upscale",
                json!({"origin_task_id": "t1", "index": 2}),
            ),
            (
                "suno",
                "generate_music",
                json!({"gpt_description_prompt": "jazz"}),
            ),
            ("luma", "video_generation", json!({"prompt": "waves"})),
            (
                "gpts",
                "create_conversation",
                json!({"gizmo_id": "g-abc123", "message": "hi"}),
            ),
        ];
        for (model, task_type, input) in cases {
            let mut spec = TaskSpec::parse(model, task_type, &input, &opts())
                .unwrap_or_else(|e| panic!("{model}/{task_type}: {e}"));
            if let TaskSpec::Midjourney(t) = &mut spec {
                t.inherit(ProcessMode::Turbo, MjVersion::V52AndBelow);
            }
            let body = TaskBody::new(spec.clone(), input.clone(), None);
            let back = TaskBody::from_json(&body.to_json()).unwrap();
            assert_eq!(back.spec(&opts()).unwrap(), spec, "{model}/{task_type}");
            assert_eq!(back.input, input);
            assert_eq!(back.task_type, task_type);
        }
    }

    /// A body stored in the older form (no spec; Midjourney's mode and version under
    /// `resolved`) still reads.
    #[test]
    fn an_older_body_still_reads() {
        let old = json!({
            "model": "midjourney", "task_type": "upscale",
            "input": {"origin_task_id": "t1", "index": 1},
            "resolved": {"process_mode": "turbo", "version": "v5.2"},
            "origin": {"task_id": "t1", "output": {"message_id": "m"}}
        })
        .to_string();
        let body = TaskBody::from_json(&old).unwrap();
        let TaskSpec::Midjourney(t) = body.spec(&opts()).unwrap() else {
            panic!("not midjourney")
        };
        assert_eq!(t.process_mode, ProcessMode::Turbo);
        assert_eq!(t.version, MjVersion::V52AndBelow);
        assert_eq!(body.origin.unwrap().task_id, "t1");
        assert!(
            !TaskBody::from_json(&old)
                .unwrap()
                .to_json()
                .contains("resolved")
        );
    }
}
