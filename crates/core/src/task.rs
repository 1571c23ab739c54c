//! Task types per provider with their typed, validated inputs, and task status.
//!
//! [`TaskSpec::parse`] turns the API's `model`, `task_type` and `input` into a typed spec,
//! refusing unknown fields, wrong types and out-of-range values with a [`SpecError`] that
//! names the field as a JSON pointer (`/input/index`).

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::SpecError;
use crate::provider::{ProcessMode, Provider};

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

/// The Midjourney price row a model version falls in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MjVersion {
    /// `--v` ≤ 5.2 or `--niji` ≤ 5.
    #[serde(rename = "v5.2")]
    V52AndBelow,
    /// V6 and newer.
    #[serde(rename = "v6")]
    V6,
}

impl MjVersion {
    /// The row's name as the seed writes it.
    pub fn label(self) -> &'static str {
        match self {
            MjVersion::V52AndBelow => "V5.2 & below",
            MjVersion::V6 => "V6",
        }
    }

    /// The version a prompt asks for (`--v 5.2`, `--version 6`, `--niji 5`), if any.
    ///
    /// Returns an error message when a version flag has no readable number.
    pub fn from_prompt(prompt: &str) -> Result<Option<MjVersion>, String> {
        let mut found = None;
        let mut tokens = prompt.split_whitespace().peekable();
        while let Some(tok) = tokens.next() {
            let lower = tok.to_ascii_lowercase();
            let (is_niji, value) = match lower.as_str() {
                "--v" | "--version" => match tokens.next() {
                    Some(v) => (false, Some(v)),
                    None => return Err(format!("`{tok}` needs a version number, e.g. `{tok} 6`")),
                },
                "--niji" => {
                    let next = tokens.peek().filter(|v| v.parse::<f64>().is_ok()).copied();
                    if next.is_some() {
                        tokens.next();
                    }
                    (true, next)
                }
                _ => continue,
            };
            let version = match value {
                // `--niji` alone is the current niji model.
                None => MjVersion::V6,
                Some(v) => {
                    let n: f64 = v.parse().map_err(|_| {
                        format!("`{tok} {v}` is not a version number; use e.g. `{tok} 6`")
                    })?;
                    let old = if is_niji { n <= 5.0 } else { n <= 5.2 + 1e-9 };
                    if old {
                        MjVersion::V52AndBelow
                    } else {
                        MjVersion::V6
                    }
                }
            };
            found = Some(version);
        }
        Ok(found)
    }
}

/// Midjourney's special upscalers (priced separately from U1–U4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Upscaler {
    /// 2x.
    #[serde(rename = "2x")]
    X2,
    /// 4x.
    #[serde(rename = "4x")]
    X4,
    /// Light (V5.2 type 1 price).
    Light,
    /// Beta (V5.2 type 1 price).
    Beta,
    /// Subtle (V6 type 1 price).
    Subtle,
    /// Creative (V6 type 1 price).
    Creative,
}

/// Pan direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PanDirection {
    /// Left.
    Left,
    /// Right.
    Right,
    /// Up.
    Up,
    /// Down.
    Down,
}

/// Blend output shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlendDimension {
    /// 2:3.
    Portrait,
    /// 1:1.
    Square,
    /// 3:2.
    Landscape,
}

/// `midjourney` / `imagine`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MjImagine {
    /// The prompt, with Midjourney flags.
    pub prompt: String,
    /// e.g. `16:9`.
    #[serde(default)]
    pub aspect_ratio: Option<String>,
    /// relax | fast | turbo (default relax).
    #[serde(default)]
    pub process_mode: Option<ProcessMode>,
    /// Skip the operator's prompt checker (a plan feature).
    #[serde(default)]
    pub skip_prompt_check: Option<bool>,
    /// Pin to one of the tenant's hosted accounts (a plan feature).
    #[serde(default)]
    pub bot_id: Option<String>,
}

/// `midjourney` / `upscale`: exactly one of `index` (U1–U4) or `upscaler`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MjUpscale {
    /// The imagine/variation task whose grid is upscaled.
    pub origin_task_id: String,
    /// 1..4.
    #[serde(default)]
    pub index: Option<u8>,
    /// A special upscaler.
    #[serde(default)]
    pub upscaler: Option<Upscaler>,
}

/// `midjourney` / `variation`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MjVariation {
    /// The origin task.
    pub origin_task_id: String,
    /// 1..4.
    pub index: u8,
    /// Remix prompt.
    #[serde(default)]
    pub prompt: Option<String>,
}

/// `midjourney` / `reroll`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MjReroll {
    /// The origin task.
    pub origin_task_id: String,
    /// Remix prompt.
    #[serde(default)]
    pub prompt: Option<String>,
}

/// `midjourney` / `describe`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MjDescribe {
    /// The image to describe (http(s)).
    pub image_url: String,
    /// relax | fast | turbo.
    #[serde(default)]
    pub process_mode: Option<ProcessMode>,
    /// Pin to one hosted account.
    #[serde(default)]
    pub bot_id: Option<String>,
}

/// `midjourney` / `blend`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MjBlend {
    /// 2..5 images (http(s)).
    pub image_urls: Vec<String>,
    /// portrait | square | landscape.
    #[serde(default)]
    pub dimension: Option<BlendDimension>,
    /// relax | fast | turbo.
    #[serde(default)]
    pub process_mode: Option<ProcessMode>,
    /// Pin to one hosted account.
    #[serde(default)]
    pub bot_id: Option<String>,
}

/// `midjourney` / `seed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MjSeed {
    /// The origin task.
    pub origin_task_id: String,
}

/// `midjourney` / `inpaint` (vary region).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MjInpaint {
    /// The upscaled origin task.
    pub origin_task_id: String,
    /// The region mask (base64 PNG or a URL, as the upstream accepts).
    pub mask: String,
    /// The prompt for the region.
    pub prompt: String,
}

/// `midjourney` / `outpaint` (zoom out).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MjOutpaint {
    /// The upscaled origin task.
    pub origin_task_id: String,
    /// 1.0 < zoom ≤ 2.0.
    pub zoom_ratio: f64,
    /// Remix prompt.
    #[serde(default)]
    pub prompt: Option<String>,
}

/// `midjourney` / `pan`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MjPan {
    /// The upscaled origin task.
    pub origin_task_id: String,
    /// left | right | up | down.
    pub direction: PanDirection,
    /// Remix prompt.
    #[serde(default)]
    pub prompt: Option<String>,
}

/// One Midjourney operation with its input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "task_type", content = "input")]
pub enum MjAction {
    /// Type 0.
    Imagine(MjImagine),
    /// Type 2 (U1–U4) or a special upscaler.
    Upscale(MjUpscale),
    /// Type 1.
    Variation(MjVariation),
    /// Type 1.
    Reroll(MjReroll),
    /// Type 2.
    Describe(MjDescribe),
    /// Type 1.
    Blend(MjBlend),
    /// Type 3.
    Seed(MjSeed),
    /// Type 1.
    Inpaint(MjInpaint),
    /// Type 1.
    Outpaint(MjOutpaint),
    /// Type 1.
    Pan(MjPan),
}

impl MjAction {
    /// The action's task-type name.
    pub fn name(&self) -> &'static str {
        match self {
            MjAction::Imagine(_) => "imagine",
            MjAction::Upscale(_) => "upscale",
            MjAction::Variation(_) => "variation",
            MjAction::Reroll(_) => "reroll",
            MjAction::Describe(_) => "describe",
            MjAction::Blend(_) => "blend",
            MjAction::Seed(_) => "seed",
            MjAction::Inpaint(_) => "inpaint",
            MjAction::Outpaint(_) => "outpaint",
            MjAction::Pan(_) => "pan",
        }
    }

    /// The task this action follows up on (it inherits that task's mode and account).
    pub fn origin_task_id(&self) -> Option<&str> {
        match self {
            MjAction::Upscale(a) => Some(&a.origin_task_id),
            MjAction::Variation(a) => Some(&a.origin_task_id),
            MjAction::Reroll(a) => Some(&a.origin_task_id),
            MjAction::Seed(a) => Some(&a.origin_task_id),
            MjAction::Inpaint(a) => Some(&a.origin_task_id),
            MjAction::Outpaint(a) => Some(&a.origin_task_id),
            MjAction::Pan(a) => Some(&a.origin_task_id),
            MjAction::Imagine(_) | MjAction::Describe(_) | MjAction::Blend(_) => None,
        }
    }

    /// The hosted account the request pins, if any.
    pub fn bot_id(&self) -> Option<&str> {
        match self {
            MjAction::Imagine(a) => a.bot_id.as_deref(),
            MjAction::Describe(a) => a.bot_id.as_deref(),
            MjAction::Blend(a) => a.bot_id.as_deref(),
            _ => None,
        }
    }
}

/// A Midjourney task: the action plus the resolved mode and version that price it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MjTask {
    /// What to do.
    pub action: MjAction,
    /// relax | fast | turbo, from the input, a prompt flag, or the origin task.
    pub process_mode: ProcessMode,
    /// The price row, from the prompt's version flag, the default, or the origin task.
    pub version: MjVersion,
}

impl MjTask {
    /// A follow-up action takes its origin's mode and version.
    pub fn inherit(&mut self, process_mode: ProcessMode, version: MjVersion) {
        if self.action.origin_task_id().is_some() {
            self.process_mode = process_mode;
            self.version = version;
        }
    }
}

/// `suno` tasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "task_type", content = "input")]
pub enum SunoTask {
    /// Description mode.
    GenerateMusic(SunoGenerate),
    /// Custom mode (lyrics); with `continue_clip_id` it is a continue.
    GenerateMusicCustom(SunoGenerateCustom),
    /// Lyric synthesis.
    Lyrics(SunoLyrics),
    /// Audio upload.
    Upload(SunoUpload),
}

/// `suno` / `generate_music`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SunoGenerate {
    /// What the song should be about.
    pub gpt_description_prompt: String,
    /// No vocals.
    #[serde(default)]
    pub make_instrumental: Option<bool>,
    /// `chirp-v3-0`, `chirp-v3-5`, `chirp-v4`, …
    #[serde(default)]
    pub model_version: Option<String>,
}

/// `suno` / `generate_music_custom`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SunoGenerateCustom {
    /// The lyrics.
    pub prompt: String,
    /// Song title.
    #[serde(default)]
    pub title: Option<String>,
    /// Style tags.
    #[serde(default)]
    pub tags: Option<String>,
    /// Styles to avoid.
    #[serde(default)]
    pub negative_tags: Option<String>,
    /// No vocals.
    #[serde(default)]
    pub make_instrumental: Option<bool>,
    /// Model version.
    #[serde(default)]
    pub model_version: Option<String>,
    /// Continue this clip (makes the task a continue).
    #[serde(default)]
    pub continue_clip_id: Option<String>,
    /// Seconds into the clip to continue from.
    #[serde(default)]
    pub continue_at: Option<f64>,
}

/// `suno` / `lyrics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SunoLyrics {
    /// What the lyrics should be about.
    pub prompt: String,
}

/// `suno` / `upload`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SunoUpload {
    /// The audio to upload (http(s)).
    pub audio_url: String,
}

impl SunoTask {
    /// The task-type name.
    pub fn name(&self) -> &'static str {
        match self {
            SunoTask::GenerateMusic(_) => "generate_music",
            SunoTask::GenerateMusicCustom(_) => "generate_music_custom",
            SunoTask::Lyrics(_) => "lyrics",
            SunoTask::Upload(_) => "upload",
        }
    }

    /// True for a custom generation that continues a clip.
    pub fn is_continue(&self) -> bool {
        matches!(self, SunoTask::GenerateMusicCustom(c) if c.continue_clip_id.is_some())
    }

    /// The model version asked for, if any.
    pub fn model_version(&self) -> Option<&str> {
        match self {
            SunoTask::GenerateMusic(g) => g.model_version.as_deref(),
            SunoTask::GenerateMusicCustom(g) => g.model_version.as_deref(),
            _ => None,
        }
    }
}

/// A Luma key frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LumaFrame {
    /// `image` (a URL) or `generation` (an earlier generation's id).
    #[serde(rename = "type")]
    pub kind: LumaFrameKind,
    /// The image URL, for `image`.
    #[serde(default)]
    pub url: Option<String>,
    /// The generation id, for `generation`.
    #[serde(default)]
    pub id: Option<String>,
}

/// What a key frame refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LumaFrameKind {
    /// An image URL.
    Image,
    /// An earlier generation.
    Generation,
}

/// Start and end frames.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LumaKeyFrames {
    /// Start frame.
    #[serde(default)]
    pub frame0: Option<LumaFrame>,
    /// End frame.
    #[serde(default)]
    pub frame1: Option<LumaFrame>,
}

/// `luma` / `video_generation`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LumaVideo {
    /// The prompt.
    pub prompt: String,
    /// Let Luma rewrite the prompt.
    #[serde(default)]
    pub expand_prompt: Option<bool>,
    /// Loop the video.
    #[serde(rename = "loop", default)]
    pub loop_: Option<bool>,
    /// e.g. `16:9`.
    #[serde(default)]
    pub aspect_ratio: Option<String>,
    /// Image-to-video or start/end frames.
    #[serde(default)]
    pub key_frames: Option<LumaKeyFrames>,
}

/// `luma` / `extend_video`: exactly one of `origin_task_id` or `generation_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LumaExtend {
    /// The Switchyard task whose video is extended.
    #[serde(default)]
    pub origin_task_id: Option<String>,
    /// Or the upstream generation id.
    #[serde(default)]
    pub generation_id: Option<String>,
    /// The prompt for the extension.
    #[serde(default)]
    pub prompt: Option<String>,
}

/// `luma` / `remove_watermark`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LumaRemoveWatermark {
    /// The finished video task.
    pub origin_task_id: String,
}

/// `luma` tasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "task_type", content = "input")]
pub enum LumaTask {
    /// Text-, image- or frames-to-video.
    VideoGeneration(LumaVideo),
    /// Extend a video.
    ExtendVideo(LumaExtend),
    /// The watermark-free download of a finished video.
    RemoveWatermark(LumaRemoveWatermark),
}

/// Which Luma feature a task uses (the columns of the Luma grid).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LumaFeature {
    /// Text-to-video.
    TextToVideo,
    /// `frame0` image.
    ImageToVideo,
    /// `frame0` + `frame1`.
    StartEndFrame,
    /// Extend.
    Extend,
    /// Watermark-free download.
    RemoveWatermark,
}

impl LumaTask {
    /// The task-type name.
    pub fn name(&self) -> &'static str {
        match self {
            LumaTask::VideoGeneration(_) => "video_generation",
            LumaTask::ExtendVideo(_) => "extend_video",
            LumaTask::RemoveWatermark(_) => "remove_watermark",
        }
    }

    /// The grid column this task falls in.
    pub fn feature(&self) -> LumaFeature {
        match self {
            LumaTask::VideoGeneration(v) => match &v.key_frames {
                Some(LumaKeyFrames {
                    frame0: Some(f0),
                    frame1,
                }) => {
                    if f0.kind == LumaFrameKind::Generation {
                        LumaFeature::Extend
                    } else if frame1.is_some() {
                        LumaFeature::StartEndFrame
                    } else {
                        LumaFeature::ImageToVideo
                    }
                }
                Some(LumaKeyFrames {
                    frame0: None,
                    frame1: Some(_),
                }) => LumaFeature::StartEndFrame,
                _ => LumaFeature::TextToVideo,
            },
            LumaTask::ExtendVideo(_) => LumaFeature::Extend,
            LumaTask::RemoveWatermark(_) => LumaFeature::RemoveWatermark,
        }
    }
}

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

impl GptsTask {
    /// The task-type name.
    pub fn name(&self) -> &'static str {
        match self {
            GptsTask::CreateConversation(_) => "create_conversation",
            GptsTask::ContinueConversation(_) => "continue_conversation",
            GptsTask::UploadFile(_) => "upload_file",
            GptsTask::DownloadFile(_) => "download_file",
            GptsTask::CreateGpts(_) => "create_gpts",
            GptsTask::ModifyGpts(_) => "modify_gpts",
            GptsTask::Models(_) => "models",
            GptsTask::Gizmos(_) => "gizmos",
        }
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
        Provider::Midjourney => &[
            "imagine",
            "upscale",
            "variation",
            "reroll",
            "describe",
            "blend",
            "seed",
            "inpaint",
            "outpaint",
            "pan",
        ],
        Provider::Suno => &[
            "generate_music",
            "generate_music_custom",
            "lyrics",
            "upload",
        ],
        Provider::Luma => &["video_generation", "extend_video", "remove_watermark"],
        Provider::Gpts => &[
            "create_conversation",
            "continue_conversation",
            "upload_file",
            "download_file",
            "create_gpts",
            "modify_gpts",
            "models",
            "gizmos",
        ],
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
        let provider: Provider = model
            .parse()
            .map_err(|_| SpecError::UnknownModel(model.chars().take(64).collect()))?;
        let task_type = task_type.trim();
        if !task_types(provider).contains(&task_type) {
            return Err(SpecError::UnknownTaskType {
                model: provider.to_string(),
                task_type: task_type.chars().take(64).collect(),
                expected: task_types(provider).join(", "),
            });
        }
        let spec = match provider {
            Provider::Midjourney => TaskSpec::Midjourney(parse_mj(task_type, input, opts)?),
            Provider::Suno => TaskSpec::Suno(parse_suno(task_type, input)?),
            Provider::Luma => TaskSpec::Luma(parse_luma(task_type, input)?),
            Provider::Gpts => TaskSpec::Gpts(parse_gpts(task_type, input)?),
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

    /// The task this one follows up on, if any (a Midjourney action, a Luma extend or
    /// watermark removal).
    pub fn origin_task_id(&self) -> Option<&str> {
        match self {
            TaskSpec::Midjourney(t) => t.action.origin_task_id(),
            TaskSpec::Luma(LumaTask::ExtendVideo(e)) => e.origin_task_id.as_deref(),
            TaskSpec::Luma(LumaTask::RemoveWatermark(r)) => Some(&r.origin_task_id),
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
            TaskSpec::Midjourney(t) => validate_mj(&t.action),
            TaskSpec::Suno(t) => validate_suno(t),
            TaskSpec::Luma(t) => validate_luma(t),
            TaskSpec::Gpts(t) => validate_gpts(t),
        }
    }
}

/// Deserialize one task type's input struct, with JSON pointers to the failing field.
fn de<T: DeserializeOwned>(input: &serde_json::Value) -> Result<T, SpecError> {
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

fn parse_suno(task_type: &str, input: &serde_json::Value) -> Result<SunoTask, SpecError> {
    Ok(match task_type {
        "generate_music" => SunoTask::GenerateMusic(de(input)?),
        "generate_music_custom" => SunoTask::GenerateMusicCustom(de(input)?),
        "lyrics" => SunoTask::Lyrics(de(input)?),
        _ => SunoTask::Upload(de(input)?),
    })
}

fn parse_luma(task_type: &str, input: &serde_json::Value) -> Result<LumaTask, SpecError> {
    Ok(match task_type {
        "video_generation" => LumaTask::VideoGeneration(de(input)?),
        "extend_video" => LumaTask::ExtendVideo(de(input)?),
        _ => LumaTask::RemoveWatermark(de(input)?),
    })
}

fn parse_gpts(task_type: &str, input: &serde_json::Value) -> Result<GptsTask, SpecError> {
    Ok(match task_type {
        "create_conversation" => GptsTask::CreateConversation(de(input)?),
        "continue_conversation" => GptsTask::ContinueConversation(de(input)?),
        "upload_file" => GptsTask::UploadFile(de(input)?),
        "download_file" => GptsTask::DownloadFile(de(input)?),
        "create_gpts" => GptsTask::CreateGpts(de(input)?),
        "modify_gpts" => GptsTask::ModifyGpts(de(input)?),
        "models" => GptsTask::Models(de(input)?),
        _ => GptsTask::Gizmos(de(input)?),
    })
}

fn parse_mj_action(task_type: &str, input: &serde_json::Value) -> Result<MjAction, SpecError> {
    Ok(match task_type {
        "imagine" => MjAction::Imagine(de(input)?),
        "upscale" => MjAction::Upscale(de(input)?),
        "variation" => MjAction::Variation(de(input)?),
        "reroll" => MjAction::Reroll(de(input)?),
        "describe" => MjAction::Describe(de(input)?),
        "blend" => MjAction::Blend(de(input)?),
        "seed" => MjAction::Seed(de(input)?),
        "inpaint" => MjAction::Inpaint(de(input)?),
        "outpaint" => MjAction::Outpaint(de(input)?),
        _ => MjAction::Pan(de(input)?),
    })
}

fn clean_serde_message(msg: &str) -> String {
    // serde_json appends " at line 1 column 5" only for text input; values have none.
    msg.trim().to_string()
}

fn parse_mj(
    task_type: &str,
    input: &serde_json::Value,
    opts: &ParseOptions,
) -> Result<MjTask, SpecError> {
    let action = parse_mj_action(task_type, input)?;
    let (explicit_mode, prompt) = match &action {
        MjAction::Imagine(a) => (a.process_mode, Some(a.prompt.as_str())),
        MjAction::Describe(a) => (a.process_mode, None),
        MjAction::Blend(a) => (a.process_mode, None),
        _ => (None, None),
    };
    let mut version = opts.default_mj_version;
    let mut mode = explicit_mode.unwrap_or_default();
    if let Some(prompt) = prompt {
        if let Some(v) =
            MjVersion::from_prompt(prompt).map_err(|m| SpecError::input("prompt", m))?
        {
            version = v;
        }
        let flags: Vec<ProcessMode> = prompt
            .split_whitespace()
            .filter_map(|t| match t.to_ascii_lowercase().as_str() {
                "--fast" => Some(ProcessMode::Fast),
                "--relax" => Some(ProcessMode::Relax),
                "--turbo" => Some(ProcessMode::Turbo),
                _ => None,
            })
            .collect();
        if let Some(first) = flags.first() {
            if flags.iter().any(|f| f != first) {
                return Err(SpecError::input(
                    "prompt",
                    "the prompt has more than one speed flag (--fast, --relax, --turbo); keep one, or set input.process_mode",
                ));
            }
            match explicit_mode {
                Some(m) if m != *first => {
                    return Err(SpecError::input(
                        "prompt",
                        format!(
                            "the prompt flag --{first} contradicts process_mode `{m}`; remove the flag or change process_mode"
                        ),
                    ));
                }
                _ => mode = *first,
            }
        }
    }
    Ok(MjTask {
        action,
        process_mode: mode,
        version,
    })
}

fn text(field: &str, value: &str, max: usize) -> Result<(), SpecError> {
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

fn opt_text(field: &str, value: &Option<String>, max: usize) -> Result<(), SpecError> {
    match value {
        Some(v) => text(field, v, max),
        None => Ok(()),
    }
}

fn id(field: &str, value: &str) -> Result<(), SpecError> {
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

fn index(field: &str, value: u8) -> Result<(), SpecError> {
    if (1..=4).contains(&value) {
        Ok(())
    } else {
        Err(SpecError::input(
            field,
            format!("{field} must be 1, 2, 3 or 4 (the image in the grid); got {value}"),
        ))
    }
}

fn validate_mj(action: &MjAction) -> Result<(), SpecError> {
    if let Some(origin) = action.origin_task_id() {
        id("origin_task_id", origin)?;
    }
    if let Some(bot) = action.bot_id() {
        id("bot_id", bot)?;
    }
    match action {
        MjAction::Imagine(a) => {
            text("prompt", &a.prompt, MAX_MJ_PROMPT_CHARS)?;
            if let Some(ar) = &a.aspect_ratio {
                aspect_ratio("aspect_ratio", ar)?;
            }
        }
        MjAction::Upscale(a) => match (a.index, a.upscaler) {
            (Some(i), None) => index("index", i)?,
            (None, Some(_)) => {}
            (Some(_), Some(_)) => {
                return Err(SpecError::input(
                    "upscaler",
                    "give either index (U1–U4) or upscaler, not both",
                ));
            }
            (None, None) => {
                return Err(SpecError::input(
                    "index",
                    "upscale needs index (1–4) or upscaler (2x, 4x, light, beta, subtle, creative)",
                ));
            }
        },
        MjAction::Variation(a) => {
            index("index", a.index)?;
            opt_text("prompt", &a.prompt, MAX_MJ_PROMPT_CHARS)?;
        }
        MjAction::Reroll(a) => opt_text("prompt", &a.prompt, MAX_MJ_PROMPT_CHARS)?,
        MjAction::Describe(a) => check_http_url("image_url", &a.image_url)?,
        MjAction::Blend(a) => {
            if !(2..=5).contains(&a.image_urls.len()) {
                return Err(SpecError::input(
                    "image_urls",
                    format!("blend takes 2 to 5 image_urls; got {}", a.image_urls.len()),
                ));
            }
            for (i, u) in a.image_urls.iter().enumerate() {
                check_http_url(&format!("image_urls/{i}"), u)?;
            }
        }
        MjAction::Seed(_) => {}
        MjAction::Inpaint(a) => {
            text("prompt", &a.prompt, MAX_MJ_PROMPT_CHARS)?;
            text("mask", &a.mask, 8 * 1024 * 1024)?;
        }
        MjAction::Outpaint(a) => {
            if !(a.zoom_ratio > 1.0 && a.zoom_ratio <= 2.0) {
                return Err(SpecError::input(
                    "zoom_ratio",
                    format!(
                        "zoom_ratio must be above 1.0 and at most 2.0; got {}",
                        a.zoom_ratio
                    ),
                ));
            }
            opt_text("prompt", &a.prompt, MAX_MJ_PROMPT_CHARS)?;
        }
        MjAction::Pan(a) => opt_text("prompt", &a.prompt, MAX_MJ_PROMPT_CHARS)?,
    }
    Ok(())
}

fn aspect_ratio(field: &str, value: &str) -> Result<(), SpecError> {
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

fn validate_suno(task: &SunoTask) -> Result<(), SpecError> {
    match task {
        SunoTask::GenerateMusic(g) => {
            text(
                "gpt_description_prompt",
                &g.gpt_description_prompt,
                MAX_TEXT_CHARS,
            )?;
            opt_text("model_version", &g.model_version, 64)?;
        }
        SunoTask::GenerateMusicCustom(g) => {
            text("prompt", &g.prompt, MAX_TEXT_CHARS)?;
            opt_text("title", &g.title, 200)?;
            opt_text("tags", &g.tags, 1000)?;
            opt_text("negative_tags", &g.negative_tags, 1000)?;
            opt_text("model_version", &g.model_version, 64)?;
            if let Some(clip) = &g.continue_clip_id {
                id("continue_clip_id", clip)?;
            }
            match (g.continue_at, &g.continue_clip_id) {
                (Some(at), Some(_)) if !(at.is_finite() && at >= 0.0) => {
                    return Err(SpecError::input(
                        "continue_at",
                        "continue_at must be a number of seconds ≥ 0",
                    ));
                }
                (Some(_), None) => {
                    return Err(SpecError::input(
                        "continue_at",
                        "continue_at needs continue_clip_id",
                    ));
                }
                _ => {}
            }
        }
        SunoTask::Lyrics(l) => text("prompt", &l.prompt, MAX_TEXT_CHARS)?,
        SunoTask::Upload(u) => check_http_url("audio_url", &u.audio_url)?,
    }
    Ok(())
}

fn validate_frame(field: &str, frame: &LumaFrame) -> Result<(), SpecError> {
    match frame.kind {
        LumaFrameKind::Image => match &frame.url {
            Some(u) => check_http_url(&format!("{field}/url"), u),
            None => Err(SpecError::input(
                &format!("{field}/url"),
                "an image key frame needs url",
            )),
        },
        LumaFrameKind::Generation => match &frame.id {
            Some(i) => id(&format!("{field}/id"), i),
            None => Err(SpecError::input(
                &format!("{field}/id"),
                "a generation key frame needs id",
            )),
        },
    }
}

fn validate_luma(task: &LumaTask) -> Result<(), SpecError> {
    match task {
        LumaTask::VideoGeneration(v) => {
            text("prompt", &v.prompt, MAX_TEXT_CHARS)?;
            if let Some(ar) = &v.aspect_ratio {
                aspect_ratio("aspect_ratio", ar)?;
            }
            if let Some(kf) = &v.key_frames {
                if let Some(f) = &kf.frame0 {
                    validate_frame("key_frames/frame0", f)?;
                }
                if let Some(f) = &kf.frame1 {
                    validate_frame("key_frames/frame1", f)?;
                }
            }
        }
        LumaTask::ExtendVideo(e) => {
            match (&e.origin_task_id, &e.generation_id) {
                (Some(o), None) => id("origin_task_id", o)?,
                (None, Some(g)) => id("generation_id", g)?,
                _ => {
                    return Err(SpecError::input(
                        "origin_task_id",
                        "extend_video needs exactly one of origin_task_id or generation_id",
                    ));
                }
            }
            opt_text("prompt", &e.prompt, MAX_TEXT_CHARS)?;
        }
        LumaTask::RemoveWatermark(r) => id("origin_task_id", &r.origin_task_id)?,
    }
    Ok(())
}

fn validate_gpts(task: &GptsTask) -> Result<(), SpecError> {
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
        GptsTask::UploadFile(u) => check_http_url("file_url", &u.file_url)?,
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
    use super::*;
    use serde_json::json;

    fn parse(model: &str, tt: &str, input: serde_json::Value) -> Result<TaskSpec, SpecError> {
        TaskSpec::parse(model, tt, &input, &ParseOptions::default())
    }

    fn field_of(e: SpecError) -> String {
        match e {
            SpecError::Invalid { field, .. } => field,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn version_flags_pick_the_price_row() {
        let cases = [
            ("a fox", None),
            ("a fox --v 5.2", Some(MjVersion::V52AndBelow)),
            ("a fox --v 5", Some(MjVersion::V52AndBelow)),
            ("a fox --version 6", Some(MjVersion::V6)),
            ("a fox --v 6.1", Some(MjVersion::V6)),
            ("a fox --v 7", Some(MjVersion::V6)),
            ("a fox --niji 5", Some(MjVersion::V52AndBelow)),
            ("a fox --niji 6", Some(MjVersion::V6)),
            ("a fox --niji", Some(MjVersion::V6)),
            ("a fox --NIJI 4 --ar 2:3", Some(MjVersion::V52AndBelow)),
        ];
        for (prompt, want) in cases {
            assert_eq!(MjVersion::from_prompt(prompt).unwrap(), want, "{prompt}");
        }
        assert!(MjVersion::from_prompt("x --v").is_err());
        assert!(MjVersion::from_prompt("x --v six").is_err());
    }

    #[test]
    fn imagine_resolves_mode_and_version() {
        let TaskSpec::Midjourney(t) = parse(
            "midjourney",
            "imagine",
            json!({"prompt": "a red fox --v 5.2", "process_mode": "fast"}),
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(t.process_mode, ProcessMode::Fast);
        assert_eq!(t.version, MjVersion::V52AndBelow);

        let TaskSpec::Midjourney(t) =
            parse("midjourney", "imagine", json!({"prompt": "a fox --turbo"})).unwrap()
        else {
            panic!()
        };
        assert_eq!(t.process_mode, ProcessMode::Turbo);
        assert_eq!(t.version, MjVersion::V6);
    }

    #[test]
    fn contradicting_speed_flag_is_refused_on_the_prompt() {
        let e = parse(
            "midjourney",
            "imagine",
            json!({"prompt": "a fox --fast", "process_mode": "relax"}),
        )
        .unwrap_err();
        assert_eq!(field_of(e), "/input/prompt");
    }

    #[test]
    fn bad_inputs_name_their_field() {
        let cases = [
            (
                "midjourney",
                "imagine",
                json!({"prompt": ""}),
                "/input/prompt",
            ),
            ("midjourney", "imagine", json!({}), "/input/prompt"),
            (
                "midjourney",
                "imagine",
                json!({"prompt": "x", "colour": 1}),
                "/input/colour",
            ),
            (
                "midjourney",
                "imagine",
                json!({"prompt": 5}),
                "/input/prompt",
            ),
            (
                "midjourney",
                "imagine",
                json!({"prompt": "x", "process_mode": "warp"}),
                "/input/process_mode",
            ),
            (
                "midjourney",
                "imagine",
                json!({"prompt": "x".repeat(MAX_MJ_PROMPT_CHARS + 1)}),
                "/input/prompt",
            ),
            (
                "midjourney",
                "upscale",
                json!({"origin_task_id": "t1", "index": 5}),
                "/input/index",
            ),
            (
                "midjourney",
                "upscale",
                json!({"origin_task_id": "t1"}),
                "/input/index",
            ),
            (
                "midjourney",
                "upscale",
                json!({"origin_task_id": "t1", "upscaler": "8x"}),
                "/input/upscaler",
            ),
            (
                "midjourney",
                "variation",
                json!({"origin_task_id": "t1", "index": 0}),
                "/input/index",
            ),
            (
                "midjourney",
                "blend",
                json!({"image_urls": ["https://a/1"]}),
                "/input/image_urls",
            ),
            (
                "midjourney",
                "blend",
                json!({"image_urls": ["https://a/1", "https://a/2", "https://a/3", "https://a/4", "https://a/5", "https://a/6"]}),
                "/input/image_urls",
            ),
            (
                "midjourney",
                "blend",
                json!({"image_urls": ["https://a/1", "ftp://a/2"]}),
                "/input/image_urls/1",
            ),
            (
                "midjourney",
                "describe",
                json!({"image_url": "not a url"}),
                "/input/image_url",
            ),
            (
                "midjourney",
                "outpaint",
                json!({"origin_task_id": "t", "zoom_ratio": 3.0}),
                "/input/zoom_ratio",
            ),
            (
                "midjourney",
                "pan",
                json!({"origin_task_id": "t", "direction": "north"}),
                "/input/direction",
            ),
            (
                "suno",
                "generate_music",
                json!({"gpt_description_prompt": "  "}),
                "/input/gpt_description_prompt",
            ),
            (
                "suno",
                "generate_music_custom",
                json!({"prompt": "la", "continue_at": 3}),
                "/input/continue_at",
            ),
            (
                "suno",
                "upload",
                json!({"audio_url": "file:///etc/passwd"}),
                "/input/audio_url",
            ),
            (
                "luma",
                "video_generation",
                json!({"prompt": "p", "key_frames": {"frame0": {"type": "image"}}}),
                "/input/key_frames/frame0/url",
            ),
            ("luma", "extend_video", json!({}), "/input/origin_task_id"),
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
        ];
        for (model, tt, input, field) in cases {
            let e = parse(model, tt, input.clone()).unwrap_err();
            assert_eq!(field_of(e), field, "{model}/{tt} {input}");
        }
    }

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
    fn luma_features_follow_key_frames() {
        let f = |input| match parse("luma", "video_generation", input).unwrap() {
            TaskSpec::Luma(l) => l.feature(),
            _ => unreachable!(),
        };
        assert_eq!(f(json!({"prompt": "p"})), LumaFeature::TextToVideo);
        assert_eq!(
            f(
                json!({"prompt": "p", "key_frames": {"frame0": {"type": "image", "url": "https://x/a.png"}}})
            ),
            LumaFeature::ImageToVideo
        );
        assert_eq!(
            f(json!({"prompt": "p", "key_frames": {
                "frame0": {"type": "image", "url": "https://x/a.png"},
                "frame1": {"type": "image", "url": "https://x/b.png"}}})),
            LumaFeature::StartEndFrame
        );
    }

    #[test]
    fn follow_ups_inherit_the_origin_mode() {
        let TaskSpec::Midjourney(mut t) = parse(
            "midjourney",
            "upscale",
            json!({"origin_task_id": "t1", "index": 1}),
        )
        .unwrap() else {
            panic!()
        };
        t.inherit(ProcessMode::Turbo, MjVersion::V52AndBelow);
        assert_eq!(t.process_mode, ProcessMode::Turbo);
        assert_eq!(t.version, MjVersion::V52AndBelow);
    }

    #[test]
    fn every_listed_task_type_parses_with_a_minimal_input() {
        let minimal = |p: Provider, tt: &str| match (p, tt) {
            (Provider::Midjourney, "imagine") => json!({"prompt": "p"}),
            (Provider::Midjourney, "upscale") => json!({"origin_task_id": "o", "index": 1}),
            (Provider::Midjourney, "variation") => json!({"origin_task_id": "o", "index": 2}),
            (Provider::Midjourney, "describe") => json!({"image_url": "https://x/a.png"}),
            (Provider::Midjourney, "blend") => {
                json!({"image_urls": ["https://x/a", "https://x/b"]})
            }
            (Provider::Midjourney, "inpaint") => {
                json!({"origin_task_id": "o", "mask": "m", "prompt": "p"})
            }
            (Provider::Midjourney, "outpaint") => json!({"origin_task_id": "o", "zoom_ratio": 1.5}),
            (Provider::Midjourney, "pan") => json!({"origin_task_id": "o", "direction": "left"}),
            (Provider::Midjourney, _) => json!({"origin_task_id": "o"}),
            (Provider::Suno, "generate_music") => json!({"gpt_description_prompt": "p"}),
            (Provider::Suno, "generate_music_custom") => json!({"prompt": "la la"}),
            (Provider::Suno, "lyrics") => json!({"prompt": "p"}),
            (Provider::Suno, _) => json!({"audio_url": "https://x/a.mp3"}),
            (Provider::Luma, "video_generation") => json!({"prompt": "p"}),
            (Provider::Luma, "extend_video") => json!({"generation_id": "g"}),
            (Provider::Luma, _) => json!({"origin_task_id": "o"}),
            (Provider::Gpts, "create_conversation") => json!({"message": "hi"}),
            (Provider::Gpts, "continue_conversation") => {
                json!({"conversation_id": "c", "message": "hi"})
            }
            (Provider::Gpts, "upload_file") => json!({"file_url": "https://x/f"}),
            (Provider::Gpts, "download_file") => json!({"file_id": "f"}),
            (Provider::Gpts, "create_gpts") => json!({"name": "n"}),
            (Provider::Gpts, "modify_gpts") => json!({"gizmo_id": "g-1"}),
            (Provider::Gpts, _) => json!({}),
        };
        for p in Provider::ALL {
            for tt in task_types(p) {
                let spec = parse(p.as_str(), tt, minimal(p, tt))
                    .unwrap_or_else(|e| panic!("{p}/{tt}: {e}"));
                assert_eq!(spec.provider(), p);
                assert_eq!(spec.task_type(), *tt);
            }
        }
    }
}
