//! Error types shared by the domain model.

use thiserror::Error;

use crate::plan::Plan;

/// A name that is not one of an enum's spellings.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown {what} `{value}`; expected one of: {expected}")]
pub struct ParseEnumError {
    /// What was being parsed (`model`, `plan`, …).
    pub what: &'static str,
    /// The text that did not match.
    pub value: String,
    /// The accepted spellings, comma-separated.
    pub expected: &'static str,
}

impl ParseEnumError {
    pub(crate) fn new(what: &'static str, value: &str, expected: &'static str) -> Self {
        ParseEnumError {
            what,
            value: value.chars().take(64).collect(),
            expected,
        }
    }
}

/// A task that the tenant's plan does not allow.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{feature} is not available on the {plan} plan{}", needs_text(*.needs))]
pub struct NotEntitled {
    /// The tenant's plan.
    pub plan: Plan,
    /// The lowest plan that would allow it, if any plan does.
    pub needs: Option<Plan>,
    /// What was asked for, in words (`suno continue`, `luma remove_watermark (PPU)`).
    pub feature: String,
}

fn needs_text(needs: Option<Plan>) -> String {
    match needs {
        Some(p) => format!("; it needs the {p} plan or above"),
        None => String::new(),
    }
}

/// An invalid task input: which field (a JSON pointer into the request) and why.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SpecError {
    /// `model` is not a provider Switchyard serves.
    #[error(
        "unknown model `{0}`; expected one of: midjourney, suno (also `music-s`, `suno/v3-chorip`), luma, gpts"
    )]
    UnknownModel(String),
    /// `task_type` is not one of the provider's task types.
    #[error("unknown task_type `{task_type}` for model {model}; expected one of: {expected}")]
    UnknownTaskType {
        /// The provider.
        model: String,
        /// The task type given.
        task_type: String,
        /// The provider's task types.
        expected: String,
    },
    /// A field is missing, mistyped or out of range.
    #[error("{message}")]
    Invalid {
        /// JSON pointer to the field in the request body (`/input/index`).
        field: String,
        /// What was wrong and what is accepted.
        message: String,
    },
}

impl SpecError {
    /// An invalid field under `/input`.
    pub fn input(field: &str, message: impl Into<String>) -> Self {
        SpecError::Invalid {
            field: if field.is_empty() {
                "/input".to_string()
            } else {
                format!("/input/{field}")
            },
            message: message.into(),
        }
    }
}
