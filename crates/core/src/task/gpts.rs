//! ChatGPT GPTs: the conversation, file and GPT-definition tasks with their inputs and
//! validation.

use serde::{Deserialize, Serialize};

use super::{MAX_TEXT_CHARS, check_input_url, id, opt_text, text};
use crate::error::SpecError;

/// `gpts` / `create_conversation`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GptsCreateConversation {
    /// The GPT (`g-XXXX`); absent for plain ChatGPT.
    #[serde(default)]
    pub gizmo_id: Option<String>,
    /// `gpt-4o`, `gpt-4`, …
    #[serde(default)]
    pub model: Option<String>,
    /// The first message.
    pub message: String,
}

/// `gpts` / `continue_conversation`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GptsContinueConversation {
    /// The conversation to continue.
    pub conversation_id: String,
    /// The next message.
    pub message: String,
}

/// `gpts` / `upload_file`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GptsUploadFile {
    /// The file (http(s)).
    pub file_url: String,
}

/// `gpts` / `download_file`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GptsDownloadFile {
    /// The upstream file id.
    pub file_id: String,
}

/// `gpts` / `create_gpts` and `modify_gpts` (with `gizmo_id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GptsDefinition {
    /// The GPT to modify (`modify_gpts` only).
    #[serde(default)]
    pub gizmo_id: Option<String>,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Short description.
    #[serde(default)]
    pub description: Option<String>,
    /// System instructions.
    #[serde(default)]
    pub instructions: Option<String>,
    /// Suggested openers.
    #[serde(default)]
    pub conversation_starters: Option<Vec<String>>,
}

/// `gpts` / `models` and `gizmos`: no input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// `gpts` tasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "task_type", content = "input")]
pub enum GptsTask {
    /// 30 quotas.
    CreateConversation(GptsCreateConversation),
    /// 10 quotas.
    ContinueConversation(GptsContinueConversation),
    /// 1 quota.
    UploadFile(GptsUploadFile),
    /// 1 quota.
    DownloadFile(GptsDownloadFile),
    /// 100 quotas.
    CreateGpts(GptsDefinition),
    /// 10 quotas.
    ModifyGpts(GptsDefinition),
    /// List models: free.
    Models(Empty),
    /// List gizmos: free.
    Gizmos(Empty),
}

task_type_names!(GptsTask {
    CreateConversation => CREATE_CONVERSATION = "create_conversation",
    ContinueConversation => CONTINUE_CONVERSATION = "continue_conversation",
    UploadFile => UPLOAD_FILE = "upload_file",
    DownloadFile => DOWNLOAD_FILE = "download_file",
    CreateGpts => CREATE_GPTS = "create_gpts",
    ModifyGpts => MODIFY_GPTS = "modify_gpts",
    Models => MODELS = "models",
    Gizmos => GIZMOS = "gizmos",
});

/// Check the values the task's types cannot express.
pub(super) fn validate(task: &GptsTask) -> Result<(), SpecError> {
    match task {
        GptsTask::CreateConversation(c) => {
            text("message", &c.message, MAX_TEXT_CHARS)?;
            if let Some(g) = &c.gizmo_id {
                gizmo("gizmo_id", g)?;
            }
            opt_text("model", &c.model, 64)?;
        }
        GptsTask::ContinueConversation(c) => {
            id("conversation_id", &c.conversation_id)?;
            text("message", &c.message, MAX_TEXT_CHARS)?;
        }
        GptsTask::UploadFile(u) => check_input_url("file_url", &u.file_url)?,
        GptsTask::DownloadFile(d) => id("file_id", &d.file_id)?,
        GptsTask::CreateGpts(d) => {
            if d.gizmo_id.is_some() {
                return Err(SpecError::input(
                    "gizmo_id",
                    "create_gpts makes a new GPT; use modify_gpts to change an existing one",
                ));
            }
            text("name", d.name.as_deref().unwrap_or(""), 200)?;
            gpts_definition(d)?;
        }
        GptsTask::ModifyGpts(d) => {
            match &d.gizmo_id {
                Some(g) => gizmo("gizmo_id", g)?,
                None => return Err(SpecError::input("gizmo_id", "modify_gpts needs gizmo_id")),
            }
            opt_text("name", &d.name, 200)?;
            gpts_definition(d)?;
        }
        GptsTask::Models(_) | GptsTask::Gizmos(_) => {}
    }
    Ok(())
}

fn gpts_definition(d: &GptsDefinition) -> Result<(), SpecError> {
    opt_text("description", &d.description, 1000)?;
    opt_text("instructions", &d.instructions, MAX_TEXT_CHARS)?;
    if let Some(starters) = &d.conversation_starters {
        for (i, s) in starters.iter().enumerate() {
            text(&format!("conversation_starters/{i}"), s, 1000)?;
        }
    }
    Ok(())
}

fn gizmo(field: &str, value: &str) -> Result<(), SpecError> {
    id(field, value)?;
    if value.starts_with("g-") {
        Ok(())
    } else {
        Err(SpecError::input(
            field,
            format!("{field} must be a GPT id starting with `g-` (from the chatgpt.com/g/ URL)"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{assert_bad_inputs, assert_listed_types_parse};
    use super::*;
    use crate::provider::Provider;
    use serde_json::json;

    #[test]
    fn bad_inputs_name_their_field() {
        assert_bad_inputs(&[
            (
                "gpts",
                "create_conversation",
                json!({"message": "hi", "gizmo_id": "abc"}),
                "/input/gizmo_id",
            ),
            (
                "gpts",
                "modify_gpts",
                json!({"name": "x"}),
                "/input/gizmo_id",
            ),
            ("gpts", "models", json!({"x": 1}), "/input/x"),
        ]);
    }

    #[test]
    fn every_listed_task_type_parses_with_a_minimal_input() {
        assert_listed_types_parse(Provider::Gpts, |tt| match tt {
            GptsTask::CREATE_CONVERSATION => json!({"message": "hi"}),
            GptsTask::CONTINUE_CONVERSATION => json!({"conversation_id": "c", "message": "hi"}),
            GptsTask::UPLOAD_FILE => json!({"file_url": "https://x/f"}),
            GptsTask::DOWNLOAD_FILE => json!({"file_id": "f"}),
            GptsTask::CREATE_GPTS => json!({"name": "n"}),
            GptsTask::MODIFY_GPTS => json!({"gizmo_id": "g-1"}),
            _ => json!({}),
        });
    }
}
