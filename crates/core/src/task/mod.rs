//! Task types per provider with their typed, validated inputs, and task status.
//!
//! [`TaskSpec::parse`] turns the API's `model`, `task_type` and `input` into a typed spec,
//! refusing unknown fields, wrong types and out-of-range values with a [`SpecError`] that
//! names the field as a JSON pointer (`/input/index`).
//!
//! Each provider's types, parsing and validation live in that provider's module; this
//! module holds what they share: the status, the spec over all providers, the limits and
//! the field checks. Each provider's task-type names are written once, in its
//! `task_type_names!` list, which gives the names, the parse arms and `name()`.

use std::fmt;
use std::str::FromStr;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{ParseEnumError, SpecError};
use crate::provider::{ProcessMode, Provider};

/// Gives a provider's task enum its task-type names from one list: an associated
/// `const` per name, `TASK_TYPES` (all of them, in order), `name()`, and `parse_input`,
/// which reads a named task type's input into its variant. Written once, so the names a
/// provider lists, parses and reports cannot drift apart.
macro_rules! task_type_names {
    ($task:ident { $($variant:ident => $konst:ident = $name:literal),+ $(,)? }) => {
        impl $task {
            $(
                #[doc = concat!("The `", $name, "` task type, as the API spells it.")]
                pub const $konst: &'static str = $name;
            )+

            /// Every task type of the provider, as the API spells them.
            pub const TASK_TYPES: &'static [&'static str] = &[$($name),+];

            /// The task-type name.
            pub fn name(&self) -> &'static str {
                match self {
                    $($task::$variant(_) => $name,)+
                }
            }

            /// Read `input` as the input of `task_type`; `None` when the provider has no
            /// such task type.
            pub(crate) fn parse_input(
                task_type: &str,
                input: &serde_json::Value,
            ) -> Result<Option<$task>, $crate::error::SpecError> {
                Ok(Some(match task_type {
                    $($name => $task::$variant($crate::task::de(input)?),)+
                    _ => return Ok(None),
                }))
            }
        }
    };
}

mod gpts;
mod luma;
mod midjourney;
mod suno;

pub use gpts::{
    Empty, GptsContinueConversation, GptsCreateConversation, GptsDefinition, GptsDownloadFile,
    GptsTask, GptsUploadFile,
};
pub use luma::{
    LumaExtend, LumaFeature, LumaFrame, LumaFrameKind, LumaKeyFrames, LumaModel,
    LumaRemoveWatermark, LumaTask, LumaVideo,
};
pub use midjourney::{
    BlendDimension, MjAction, MjBlend, MjDescribe, MjImagine, MjInpaint, MjOutpaint, MjPan,
    MjReroll, MjSeed, MjTask, MjUpscale, MjVariation, MjVersion, PanDirection, Upscaler,
    VariationOf,
};
pub use suno::{SunoConcat, SunoGenerate, SunoGenerateCustom, SunoLyrics, SunoTask, SunoUpload};

/// Longest Midjourney prompt accepted, in characters (Discord's message limit is 6,000).
pub const MAX_MJ_PROMPT_CHARS: usize = 6000;
/// Longest free text accepted in a Suno, Luma or GPTs field, in characters.
pub const MAX_TEXT_CHARS: usize = 20_000;
/// Longest URL accepted, in characters.
pub const MAX_URL_CHARS: usize = 4096;
/// Longest id (origin task, clip, generation, conversation, gizmo, bot), in characters.
pub const MAX_ID_CHARS: usize = 128;

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    /// Queued while the tenant has no free slot in its pool (at its plan cap).
    Staged,
    /// Queued, within the cap, waiting for an account.
    Pending,
    /// Holding a slot and running upstream.
    Processing,
    /// Finished with output.
    Completed,
    /// Finished with an error.
    Failed,
    /// Cancelled before it ran.
    Cancelled,
}

impl TaskStatus {
    /// Every status, in the order a task passes through them.
    pub const ALL: [TaskStatus; 6] = [
        TaskStatus::Staged,
        TaskStatus::Pending,
        TaskStatus::Processing,
        TaskStatus::Completed,
        TaskStatus::Failed,
        TaskStatus::Cancelled,
    ];

    /// True for completed, failed and cancelled.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskStatus::Completed | TaskStatus::Failed | TaskStatus::Cancelled
        )
    }

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Staged => "staged",
            TaskStatus::Pending => "pending",
            TaskStatus::Processing => "processing",
            TaskStatus::Completed => "completed",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskStatus {
    type Err = ParseEnumError;

    /// The exact lowercase name, as stored and as the API writes it.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaskStatus::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                ParseEnumError::new(
                    "task status",
                    s,
                    "staged, pending, processing, completed, failed, cancelled",
                )
            })
    }
}

/// A validated task of any provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "model", content = "task")]
pub enum TaskSpec {
    /// Midjourney.
    Midjourney(MjTask),
    /// Suno.
    Suno(SunoTask),
    /// Luma Dream Machine.
    Luma(LumaTask),
    /// ChatGPT GPTs.
    Gpts(GptsTask),
}

/// Other names GoAPI's documentation uses for a task type, with the name they stand for.
pub const TASK_TYPE_ALIASES: &[(Provider, &str, &str)] =
    &[(Provider::Suno, "generate_lyrics", SunoTask::LYRICS)];

/// The task type a request's `task_type` names (its own name, or what an alias stands for).
pub fn canonical_task_type(provider: Provider, task_type: &str) -> &str {
    TASK_TYPE_ALIASES
        .iter()
        .find(|(p, alias, _)| *p == provider && *alias == task_type)
        .map_or(task_type, |(_, _, name)| name)
}

/// Defaults that parsing needs from config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseOptions {
    /// The Midjourney price row when the prompt names no version.
    pub default_mj_version: MjVersion,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            default_mj_version: MjVersion::V6,
        }
    }
}

/// Task types per provider, as the API spells them.
pub fn task_types(provider: Provider) -> &'static [&'static str] {
    match provider {
        Provider::Midjourney => MjAction::TASK_TYPES,
        Provider::Suno => SunoTask::TASK_TYPES,
        Provider::Luma => LumaTask::TASK_TYPES,
        Provider::Gpts => GptsTask::TASK_TYPES,
    }
}

impl TaskSpec {
    /// Parse and validate `model`, `task_type` and `input` from a create request.
    pub fn parse(
        model: &str,
        task_type: &str,
        input: &serde_json::Value,
        opts: &ParseOptions,
    ) -> Result<TaskSpec, SpecError> {
        let provider = Provider::from_model_name(model)
            .ok_or_else(|| SpecError::UnknownModel(model.chars().take(64).collect()))?;
        let task_type = canonical_task_type(provider, task_type.trim());
        let music;
        let (task_type, input) = if provider == Provider::Suno && task_type == suno::MUSIC {
            let (tt, read) = suno::read_music(input)?;
            music = read;
            (tt, &music)
        } else {
            (task_type, input)
        };
        let spec = match provider {
            Provider::Midjourney => MjAction::parse_input(task_type, input)?
                .map(|action| midjourney::resolve(action, opts))
                .transpose()?
                .map(TaskSpec::Midjourney),
            Provider::Suno => SunoTask::parse_input(task_type, input)?.map(TaskSpec::Suno),
            Provider::Luma => LumaTask::parse_input(task_type, input)?.map(TaskSpec::Luma),
            Provider::Gpts => GptsTask::parse_input(task_type, input)?.map(TaskSpec::Gpts),
        };
        let Some(spec) = spec else {
            return Err(SpecError::UnknownTaskType {
                model: provider.to_string(),
                task_type: task_type.chars().take(64).collect(),
                expected: task_types(provider).join(", "),
            });
        };
        spec.validate()?;
        Ok(spec)
    }

    /// The provider that runs this task.
    pub fn provider(&self) -> Provider {
        match self {
            TaskSpec::Midjourney(_) => Provider::Midjourney,
            TaskSpec::Suno(_) => Provider::Suno,
            TaskSpec::Luma(_) => Provider::Luma,
            TaskSpec::Gpts(_) => Provider::Gpts,
        }
    }

    /// The task-type name.
    pub fn task_type(&self) -> &'static str {
        match self {
            TaskSpec::Midjourney(t) => t.action.name(),
            TaskSpec::Suno(t) => t.name(),
            TaskSpec::Luma(t) => t.name(),
            TaskSpec::Gpts(t) => t.name(),
        }
    }

    /// The process mode whose account capacity the task uses. Providers without modes
    /// use `relax`, the one capacity their accounts have.
    pub fn process_mode(&self) -> ProcessMode {
        match self {
            TaskSpec::Midjourney(t) => t.process_mode,
            _ => ProcessMode::Relax,
        }
    }

    /// Run it in another process mode (a fast task run in relax when no account has fast
    /// hours); providers without modes are unchanged.
    pub fn set_process_mode(&mut self, mode: ProcessMode) {
        if let TaskSpec::Midjourney(t) = self {
            t.process_mode = mode;
        }
    }

    /// The task this one follows up on, if any (a Midjourney action, a Luma extend or
    /// watermark removal).
    pub fn origin_task_id(&self) -> Option<&str> {
        match self {
            TaskSpec::Midjourney(t) => t.action.origin_task_id(),
            TaskSpec::Luma(LumaTask::ExtendVideo(e)) => e.origin_task_id.as_deref(),
            TaskSpec::Luma(LumaTask::RemoveWatermark(r)) => Some(&r.origin_task_id),
            TaskSpec::Suno(SunoTask::GenerateMusicCustom(c)) => c.continue_task_id.as_deref(),
            _ => None,
        }
    }

    /// The upstream object this task continues when it names one by its upstream id
    /// alone (a GPTs conversation or file, a Suno clip, a Luma generation): what it is
    /// and its id. Such a follow-up runs on the account that produced the object.
    pub fn owned_object(&self) -> Option<(&'static str, &str)> {
        match self {
            TaskSpec::Gpts(GptsTask::ContinueConversation(c)) => {
                Some(("conversation", &c.conversation_id))
            }
            TaskSpec::Gpts(GptsTask::DownloadFile(d)) => Some(("file", &d.file_id)),
            // A GPT made by one of the tenant's tasks (a public GPT is nobody's here).
            TaskSpec::Gpts(GptsTask::ModifyGpts(d)) => d.gizmo_id.as_deref().map(|g| ("GPT", g)),
            TaskSpec::Gpts(GptsTask::CreateConversation(c)) => {
                c.gizmo_id.as_deref().map(|g| ("GPT", g))
            }
            TaskSpec::Suno(SunoTask::GenerateMusicCustom(c)) if c.continue_task_id.is_none() => {
                c.continue_clip_id.as_deref().map(|clip| ("clip", clip))
            }
            TaskSpec::Suno(SunoTask::Concat(c)) => Some(("clip", &c.clip_id)),
            TaskSpec::Luma(LumaTask::ExtendVideo(e)) if e.origin_task_id.is_none() => {
                e.generation_id.as_deref().map(|g| ("generation", g))
            }
            _ => None,
        }
    }

    /// The hosted account the request pins (`bot_id`), if any.
    pub fn bot_id(&self) -> Option<&str> {
        match self {
            TaskSpec::Midjourney(t) => t.action.bot_id(),
            _ => None,
        }
    }

    /// The prompts the prompt checker reads, with their input field: Midjourney's prompt
    /// and remix prompts, Suno's description, lyrics, title and tags, Luma's prompt.
    pub fn prompts(&self) -> Vec<(&'static str, &str)> {
        let mut out = Vec::new();
        match self {
            TaskSpec::Midjourney(t) => {
                let remix = match &t.action {
                    MjAction::Imagine(a) => Some(a.prompt.as_str()),
                    MjAction::Inpaint(a) => Some(a.prompt.as_str()),
                    MjAction::Variation(a) => a.prompt.as_deref(),
                    MjAction::Reroll(a) => a.prompt.as_deref(),
                    MjAction::Outpaint(a) => a.prompt.as_deref(),
                    MjAction::Pan(a) => a.prompt.as_deref(),
                    _ => None,
                };
                out.extend(remix.map(|p| ("prompt", p)));
            }
            TaskSpec::Suno(SunoTask::GenerateMusic(g)) => {
                out.push(("gpt_description_prompt", g.gpt_description_prompt.as_str()));
            }
            TaskSpec::Suno(SunoTask::GenerateMusicCustom(g)) => {
                out.push(("prompt", g.prompt.as_str()));
                out.extend(g.title.as_deref().map(|t| ("title", t)));
                out.extend(g.tags.as_deref().map(|t| ("tags", t)));
            }
            TaskSpec::Suno(SunoTask::Lyrics(l)) => out.push(("prompt", l.prompt.as_str())),
            TaskSpec::Luma(LumaTask::VideoGeneration(v)) => out.push(("prompt", v.prompt.as_str())),
            TaskSpec::Luma(LumaTask::ExtendVideo(e)) => {
                out.extend(e.prompt.as_deref().map(|p| ("prompt", p)));
            }
            TaskSpec::Suno(SunoTask::Upload(_) | SunoTask::Concat(_))
            | TaskSpec::Luma(LumaTask::RemoveWatermark(_))
            | TaskSpec::Gpts(_) => {}
        }
        out
    }

    /// Whether the request asks to skip the prompt checker (`skip_prompt_check: true`).
    pub fn skip_prompt_check(&self) -> bool {
        let TaskSpec::Midjourney(t) = self else {
            return false;
        };
        let skip = match &t.action {
            MjAction::Imagine(a) => a.skip_prompt_check,
            MjAction::Variation(a) => a.skip_prompt_check,
            MjAction::Reroll(a) => a.skip_prompt_check,
            MjAction::Inpaint(a) => a.skip_prompt_check,
            MjAction::Outpaint(a) => a.skip_prompt_check,
            MjAction::Pan(a) => a.skip_prompt_check,
            _ => None,
        };
        skip == Some(true)
    }

    /// The free text the simulator reads directives from (prompt, description, lyrics,
    /// message), if the task has one.
    pub fn free_text(&self) -> Option<&str> {
        match self {
            TaskSpec::Midjourney(t) => match &t.action {
                MjAction::Imagine(a) => Some(&a.prompt),
                MjAction::Inpaint(a) => Some(&a.prompt),
                MjAction::Variation(a) => a.prompt.as_deref(),
                MjAction::Reroll(a) => a.prompt.as_deref(),
                MjAction::Outpaint(a) => a.prompt.as_deref(),
                MjAction::Pan(a) => a.prompt.as_deref(),
                _ => None,
            },
            TaskSpec::Suno(SunoTask::GenerateMusic(g)) => Some(&g.gpt_description_prompt),
            TaskSpec::Suno(SunoTask::GenerateMusicCustom(g)) => Some(&g.prompt),
            TaskSpec::Suno(SunoTask::Lyrics(l)) => Some(&l.prompt),
            TaskSpec::Luma(LumaTask::VideoGeneration(v)) => Some(&v.prompt),
            TaskSpec::Luma(LumaTask::ExtendVideo(e)) => e.prompt.as_deref(),
            TaskSpec::Gpts(GptsTask::CreateConversation(c)) => Some(&c.message),
            TaskSpec::Gpts(GptsTask::ContinueConversation(c)) => Some(&c.message),
            _ => None,
        }
    }

    fn validate(&self) -> Result<(), SpecError> {
        match self {
            TaskSpec::Midjourney(t) => midjourney::validate(&t.action),
            TaskSpec::Suno(t) => suno::validate(t),
            TaskSpec::Luma(t) => luma::validate(t),
            TaskSpec::Gpts(t) => gpts::validate(t),
        }
    }
}

/// Deserialize one task type's input struct, with JSON pointers to the failing field.
pub(crate) fn de<T: DeserializeOwned>(input: &serde_json::Value) -> Result<T, SpecError> {
    let empty = serde_json::Value::Object(Default::default());
    let input = match input {
        serde_json::Value::Null => &empty,
        serde_json::Value::Object(_) => input,
        _ => return Err(SpecError::input("", "input must be a JSON object")),
    };
    serde_path_to_error::deserialize(input).map_err(|e| {
        let inner = e.inner().to_string();
        let mut path: Vec<String> = e
            .path()
            .iter()
            .map(|seg| seg.to_string())
            .filter(|s| s != "?")
            .collect();
        // serde reports unknown and missing fields at the parent: name the field itself.
        for marker in ["unknown field `", "missing field `"] {
            if let Some(rest) = inner.strip_prefix(marker)
                && let Some(name) = rest.split('`').next()
                && path.last().map(String::as_str) != Some(name)
            {
                path.push(name.to_string());
            }
        }
        let field = path.join("/");
        SpecError::input(&field, clean_serde_message(&inner))
    })
}

fn clean_serde_message(msg: &str) -> String {
    // serde_json appends " at line 1 column 5" only for text input; values have none.
    msg.trim().to_string()
}

pub(crate) fn text(field: &str, value: &str, max: usize) -> Result<(), SpecError> {
    if value.trim().is_empty() {
        return Err(SpecError::input(
            field,
            format!("{field} must not be empty"),
        ));
    }
    let n = value.chars().count();
    if n > max {
        return Err(SpecError::input(
            field,
            format!("{field} is {n} characters; the maximum is {max}"),
        ));
    }
    Ok(())
}

pub(crate) fn opt_text(field: &str, value: &Option<String>, max: usize) -> Result<(), SpecError> {
    match value {
        Some(v) => text(field, v, max),
        None => Ok(()),
    }
}

pub(crate) fn id(field: &str, value: &str) -> Result<(), SpecError> {
    text(field, value, MAX_ID_CHARS)
}

/// An http(s) URL with a host.
pub fn check_http_url(field: &str, value: &str) -> Result<(), SpecError> {
    text(field, value, MAX_URL_CHARS)?;
    match url::Url::parse(value.trim()) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        Ok(u) => Err(SpecError::input(
            field,
            format!(
                "{field} must be an http(s) URL with a host; got scheme `{}`",
                u.scheme()
            ),
        )),
        Err(e) => Err(SpecError::input(
            field,
            format!("{field} is not a valid URL ({e})"),
        )),
    }
}

/// Largest file a `data:` URL may carry, decoded (the request's body limit also bounds it).
pub const MAX_DATA_URL_BYTES: usize = 8 * 1024 * 1024;

/// A file the worker fetches and uploads (an image, a key frame, a GPTs file): an
/// http(s) URL with a host, or a `data:<type>;base64,<data>` URL of at most
/// [`MAX_DATA_URL_BYTES`].
pub fn check_input_url(field: &str, value: &str) -> Result<(), SpecError> {
    let v = value.trim();
    if v.len() >= 5 && v[..5].eq_ignore_ascii_case("data:") {
        return decode_data_url(v)
            .map(|_| ())
            .map_err(|m| SpecError::input(field, format!("{field}: {m}")));
    }
    check_http_url(field, value)
}

/// The bytes of a `data:<type>;base64,<data>` URL, or what is wrong with it.
pub fn decode_data_url(url: &str) -> Result<Vec<u8>, String> {
    use base64::Engine;
    let rest = url
        .get(5..)
        .filter(|_| url[..5].eq_ignore_ascii_case("data:"))
        .ok_or("not a data: URL")?;
    let (meta, data) = rest
        .split_once(',')
        .ok_or("a data: URL needs a comma before its data")?;
    if !meta.to_ascii_lowercase().ends_with(";base64") {
        return Err("a data: URL must be base64 (data:<type>;base64,<data>)".into());
    }
    if data.len() > MAX_DATA_URL_BYTES / 3 * 4 + 4 {
        return Err(format!(
            "the data: URL carries more than {MAX_DATA_URL_BYTES} bytes; give an http(s) URL"
        ));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|_| "the data: URL's data is not valid base64".to_string())?;
    if bytes.is_empty() {
        return Err("the data: URL is empty".into());
    }
    Ok(bytes)
}

pub(crate) fn aspect_ratio(field: &str, value: &str) -> Result<(), SpecError> {
    let ok = value
        .split_once(':')
        .map(|(w, h)| {
            matches!(w.parse::<u32>(), Ok(1..=100)) && matches!(h.parse::<u32>(), Ok(1..=100))
        })
        .unwrap_or(false);
    if ok {
        Ok(())
    } else {
        Err(SpecError::input(
            field,
            format!(
                "{field} must look like W:H with whole numbers 1–100 (e.g. 16:9); got `{value}`"
            ),
        ))
    }
}

/// What the tests of every provider module share.
#[cfg(test)]
mod test_support {
    use super::*;

    /// Parse with the default options.
    pub(super) fn parse(
        model: &str,
        tt: &str,
        input: serde_json::Value,
    ) -> Result<TaskSpec, SpecError> {
        TaskSpec::parse(model, tt, &input, &ParseOptions::default())
    }

    /// The JSON pointer an `Invalid` error names.
    pub(super) fn field_of(e: SpecError) -> String {
        match e {
            SpecError::Invalid { field, .. } => field,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    /// Every `(model, task_type, input)` case fails on the named field.
    pub(super) fn assert_bad_inputs(cases: &[(&str, &str, serde_json::Value, &str)]) {
        for (model, tt, input, field) in cases {
            let e = parse(model, tt, input.clone()).unwrap_err();
            assert_eq!(field_of(e), *field, "{model}/{tt} {input}");
        }
    }

    /// Every task type the provider lists parses from `minimal(task_type)`, reports the
    /// same name through `task_type()` and its serialized tag, and reads back from its
    /// serialized form.
    pub(super) fn assert_listed_types_parse(
        provider: Provider,
        minimal: impl Fn(&str) -> serde_json::Value,
    ) {
        for tt in task_types(provider) {
            let spec = parse(provider.as_str(), tt, minimal(tt))
                .unwrap_or_else(|e| panic!("{provider}/{tt}: {e}"));
            assert_eq!(spec.provider(), provider);
            assert_eq!(spec.task_type(), *tt);
            let v = serde_json::to_value(&spec).unwrap();
            let tagged = match provider {
                Provider::Midjourney => &v["task"]["action"]["task_type"],
                _ => &v["task"]["task_type"],
            };
            assert_eq!(tagged, *tt, "{provider}/{tt}: serialized as {v}");
            // The task body stores the spec as JSON: it must read back as it was.
            let back: TaskSpec = serde_json::from_value(v.clone())
                .unwrap_or_else(|e| panic!("{provider}/{tt}: {v} does not read back: {e}"));
            assert_eq!(back, spec, "{provider}/{tt}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::parse;
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_model_and_task_type_are_distinguished() {
        assert!(matches!(
            parse("kling", "video", json!({})),
            Err(SpecError::UnknownModel(_))
        ));
        assert!(matches!(
            parse("suno", "imagine", json!({})),
            Err(SpecError::UnknownTaskType { .. })
        ));
        assert!(matches!(
            parse("suno", "lyrics", json!("text")),
            Err(SpecError::Invalid { .. })
        ));
    }

    #[test]
    fn unknown_task_type_lists_the_provider_names() {
        match parse("luma", " imagine ", json!({})) {
            Err(SpecError::UnknownTaskType {
                model,
                task_type,
                expected,
            }) => {
                assert_eq!(model, "luma");
                assert_eq!(task_type, "imagine");
                assert_eq!(expected, LumaTask::TASK_TYPES.join(", "));
            }
            other => panic!("expected UnknownTaskType, got {other:?}"),
        }
    }

    #[test]
    fn status_names_round_trip() {
        for s in TaskStatus::ALL {
            assert_eq!(s.as_str().parse::<TaskStatus>(), Ok(s));
            assert_eq!(serde_json::to_value(s).unwrap(), json!(s.as_str()));
        }
        assert!("queued".parse::<TaskStatus>().is_err());
        assert!("Completed".parse::<TaskStatus>().is_err());
        let terminal: Vec<TaskStatus> = TaskStatus::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(
            terminal,
            [
                TaskStatus::Completed,
                TaskStatus::Failed,
                TaskStatus::Cancelled
            ]
        );
    }
}
