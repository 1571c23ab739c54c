//! Midjourney: the actions with their inputs, the model version and speed a task
//! resolves to, and their validation.

use serde::{Deserialize, Serialize};

use super::{MAX_MJ_PROMPT_CHARS, ParseOptions, aspect_ratio, check_input_url, id, opt_text, text};
use crate::error::SpecError;
use crate::provider::ProcessMode;

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
    /// Pin to one of the tenant's hosted accounts (a plan feature): its number (an
    /// integer, GoAPI's form) or its id; `0` and `""` pin nothing.
    #[serde(default, deserialize_with = "bot_id")]
    pub bot_id: Option<String>,
}

/// `midjourney` / `upscale`: exactly one of `index` (U1–U4) or `upscaler`. GoAPI's
/// `index` is a string, `"1"`…`"4"` or a special upscaler's name (`"2x"`, `"subtle"`, …);
/// an integer 1–4 and our own `upscaler` field are accepted too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "UpscaleInput")]
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

/// An upscale as a request gives it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpscaleInput {
    origin_task_id: String,
    #[serde(default)]
    index: Option<UpscaleIndex>,
    #[serde(default)]
    upscaler: Option<Upscaler>,
}

/// `index` of an upscale: an image of the grid, or a special upscaler by name.
enum UpscaleIndex {
    Image(u8),
    Upscaler(Upscaler),
}

impl<'de> Deserialize<'de> for UpscaleIndex {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const EXPECTED: &str = "\"1\", \"2\", \"3\", \"4\", \"light\", \"beta\", \"2x\", \"4x\", \"subtle\" or \"creative\"";
        match NumberOrText::deserialize(d)? {
            NumberOrText::Number(n) => Ok(UpscaleIndex::Image(grid_image(n)?)),
            NumberOrText::Text(t) => match t.trim().parse::<u64>() {
                Ok(n) => Ok(UpscaleIndex::Image(grid_image(n)?)),
                Err(_) => {
                    serde_json::from_value(serde_json::Value::String(t.trim().to_ascii_lowercase()))
                        .map(UpscaleIndex::Upscaler)
                        .map_err(|_| {
                            serde::de::Error::custom(format!("index must be {EXPECTED}; got {t:?}"))
                        })
                }
            },
        }
    }
}

impl From<UpscaleInput> for MjUpscale {
    fn from(u: UpscaleInput) -> Self {
        let (index, upscaler) = match u.index {
            Some(UpscaleIndex::Image(i)) => (Some(i), u.upscaler),
            // Named twice (index and upscaler) is refused by validation, as index + upscaler.
            Some(UpscaleIndex::Upscaler(up)) if u.upscaler.is_some() => (Some(0), Some(up)),
            Some(UpscaleIndex::Upscaler(up)) => (None, Some(up)),
            None => (None, u.upscaler),
        };
        MjUpscale {
            origin_task_id: u.origin_task_id,
            index,
            upscaler,
        }
    }
}

/// A number or a string holding one, as GoAPI's fields take either.
#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrText {
    Number(u64),
    Text(String),
}

/// An image of a grid, 1–4.
fn grid_image<E: serde::de::Error>(n: u64) -> Result<u8, E> {
    match u8::try_from(n) {
        Ok(i @ 1..=4) => Ok(i),
        _ => Err(E::custom(format!(
            "index must be 1, 2, 3 or 4 (the image in the grid); got {n}"
        ))),
    }
}

/// `bot_id`: an integer (GoAPI's form; 0 pins nothing) or a string (an account's number
/// or id; empty pins nothing).
fn bot_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<NumberOrText>::deserialize(d)? {
        None | Some(NumberOrText::Number(0)) => None,
        Some(NumberOrText::Number(n)) => Some(n.to_string()),
        Some(NumberOrText::Text(t)) if t.trim().is_empty() || t.trim() == "0" => None,
        Some(NumberOrText::Text(t)) => Some(t.trim().to_string()),
    })
}

/// Which variation of an upscaled image (Vary Strong / Subtle), or of a grid image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VariationOf {
    /// V1–V4 of a grid.
    Image(u8),
    /// Vary (Strong) of an upscaled image: `"high_variation"`.
    Strong,
    /// Vary (Subtle) of an upscaled image: `"low_variation"`.
    Subtle,
}

impl Serialize for VariationOf {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            VariationOf::Image(i) => s.serialize_u8(*i),
            VariationOf::Strong => s.serialize_str("high_variation"),
            VariationOf::Subtle => s.serialize_str("low_variation"),
        }
    }
}

impl<'de> Deserialize<'de> for VariationOf {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = match NumberOrText::deserialize(d)? {
            NumberOrText::Number(n) => return Ok(VariationOf::Image(grid_image(n)?)),
            NumberOrText::Text(t) => t,
        };
        match text.trim().to_ascii_lowercase().as_str() {
            "high_variation" => Ok(VariationOf::Strong),
            "low_variation" => Ok(VariationOf::Subtle),
            t => match t.parse::<u64>() {
                Ok(n) => Ok(VariationOf::Image(grid_image(n)?)),
                Err(_) => Err(serde::de::Error::custom(format!(
                    "index must be \"1\"…\"4\" (an image of the grid), \"high_variation\" or \"low_variation\" (Vary Strong / Subtle of an upscaled image); got {text:?}"
                ))),
            },
        }
    }
}

/// `midjourney` / `variation`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MjVariation {
    /// The origin task.
    pub origin_task_id: String,
    /// V1–V4 of a grid, or Vary Strong / Subtle of an upscaled image.
    pub index: VariationOf,
    /// Remix prompt.
    #[serde(default)]
    pub prompt: Option<String>,
    /// e.g. `16:9`, for the remix.
    #[serde(default)]
    pub aspect_ratio: Option<String>,
    /// Skip the operator's prompt checker (a plan feature).
    #[serde(default)]
    pub skip_prompt_check: Option<bool>,
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
    /// e.g. `16:9`, for the remix.
    #[serde(default)]
    pub aspect_ratio: Option<String>,
    /// Skip the operator's prompt checker (a plan feature).
    #[serde(default)]
    pub skip_prompt_check: Option<bool>,
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
    /// Pin to one hosted account (as for imagine).
    #[serde(default, deserialize_with = "bot_id")]
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
    /// Pin to one hosted account (as for imagine).
    #[serde(default, deserialize_with = "bot_id")]
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
    /// Skip the operator's prompt checker (a plan feature).
    #[serde(default)]
    pub skip_prompt_check: Option<bool>,
}

/// `midjourney` / `outpaint` (zoom out).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MjOutpaint {
    /// The upscaled origin task.
    pub origin_task_id: String,
    /// 1.0 < zoom ≤ 2.0 (a number, or a string holding one: GoAPI sends `"1.5"`).
    #[serde(deserialize_with = "zoom_ratio")]
    pub zoom_ratio: f64,
    /// Remix prompt.
    #[serde(default)]
    pub prompt: Option<String>,
    /// Skip the operator's prompt checker (a plan feature).
    #[serde(default)]
    pub skip_prompt_check: Option<bool>,
}

/// A zoom ratio given as a number or as a string holding one.
fn zoom_ratio<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Ratio {
        Number(f64),
        Text(String),
    }
    match Ratio::deserialize(d)? {
        Ratio::Number(n) => Ok(n),
        Ratio::Text(t) => t.trim().parse().map_err(|_| {
            serde::de::Error::custom(format!(
                "zoom_ratio must be a number from 1.0 to 2.0; got {t:?}"
            ))
        }),
    }
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
    /// Skip the operator's prompt checker (a plan feature).
    #[serde(default)]
    pub skip_prompt_check: Option<bool>,
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

task_type_names!(MjAction {
    Imagine => IMAGINE = "imagine",
    Upscale => UPSCALE = "upscale",
    Variation => VARIATION = "variation",
    Reroll => REROLL = "reroll",
    Describe => DESCRIBE = "describe",
    Blend => BLEND = "blend",
    Seed => SEED = "seed",
    Inpaint => INPAINT = "inpaint",
    Outpaint => OUTPAINT = "outpaint",
    Pan => PAN = "pan",
});

impl MjAction {
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

/// The speed and price row of a parsed action: from its input and prompt flags, else the
/// defaults. (A follow-up takes its origin's later, through [`MjTask::inherit`].)
pub(super) fn resolve(action: MjAction, opts: &ParseOptions) -> Result<MjTask, SpecError> {
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

/// U1–U4: which image of a grid.
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

/// Check the values an action's types cannot express.
pub(super) fn validate(action: &MjAction) -> Result<(), SpecError> {
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
            opt_text("prompt", &a.prompt, MAX_MJ_PROMPT_CHARS)?;
            if let Some(ar) = &a.aspect_ratio {
                aspect_ratio("aspect_ratio", ar)?;
            }
        }
        MjAction::Reroll(a) => {
            opt_text("prompt", &a.prompt, MAX_MJ_PROMPT_CHARS)?;
            if let Some(ar) = &a.aspect_ratio {
                aspect_ratio("aspect_ratio", ar)?;
            }
        }
        MjAction::Describe(a) => check_input_url("image_url", &a.image_url)?,
        MjAction::Blend(a) => {
            if !(2..=5).contains(&a.image_urls.len()) {
                return Err(SpecError::input(
                    "image_urls",
                    format!("blend takes 2 to 5 image_urls; got {}", a.image_urls.len()),
                ));
            }
            for (i, u) in a.image_urls.iter().enumerate() {
                check_input_url(&format!("image_urls/{i}"), u)?;
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

#[cfg(test)]
mod tests {
    use super::super::test_support::{
        assert_bad_inputs, assert_listed_types_parse, field_of, parse,
    };
    use super::*;
    use crate::provider::Provider;
    use crate::task::TaskSpec;
    use serde_json::json;

    fn action(task_type: &str, input: serde_json::Value) -> MjAction {
        match parse("midjourney", task_type, input).unwrap() {
            TaskSpec::Midjourney(t) => t.action,
            other => panic!("{other:?}"),
        }
    }

    /// GoAPI's forms: string indexes (with the special upscalers and Vary Strong/Subtle
    /// among them), integer bot ids (0 = none), zoom ratios as strings.
    #[test]
    fn goapi_field_forms_are_understood() {
        let up = |index: serde_json::Value| match action(
            "upscale",
            json!({"origin_task_id": "t", "index": index}),
        ) {
            MjAction::Upscale(u) => (u.index, u.upscaler),
            other => panic!("{other:?}"),
        };
        assert_eq!(up(json!("3")), (Some(3), None));
        assert_eq!(up(json!(3)), (Some(3), None));
        assert_eq!(up(json!("2x")), (None, Some(Upscaler::X2)));
        assert_eq!(up(json!("Subtle")), (None, Some(Upscaler::Subtle)));
        let vary = |index: serde_json::Value| match action(
            "variation",
            json!({"origin_task_id": "t", "index": index}),
        ) {
            MjAction::Variation(v) => v.index,
            other => panic!("{other:?}"),
        };
        assert_eq!(vary(json!("1")), VariationOf::Image(1));
        assert_eq!(vary(json!(4)), VariationOf::Image(4));
        assert_eq!(vary(json!("high_variation")), VariationOf::Strong);
        assert_eq!(vary(json!("low_variation")), VariationOf::Subtle);
        let bot = |b: serde_json::Value| {
            action("imagine", json!({"prompt": "p", "bot_id": b}))
                .bot_id()
                .map(str::to_string)
        };
        assert_eq!(bot(json!(0)), None);
        assert_eq!(bot(json!("")), None);
        assert_eq!(bot(json!(2)), Some("2".to_string()));
        assert_eq!(bot(json!("acc_x")), Some("acc_x".to_string()));
        match action(
            "outpaint",
            json!({"origin_task_id": "t", "zoom_ratio": "1.5"}),
        ) {
            MjAction::Outpaint(o) => assert_eq!(o.zoom_ratio, 1.5),
            other => panic!("{other:?}"),
        }
        assert_bad_inputs(&[
            (
                "midjourney",
                "upscale",
                json!({"origin_task_id": "t", "index": "5"}),
                "/input/index",
            ),
            (
                "midjourney",
                "upscale",
                json!({"origin_task_id": "t", "index": "8x"}),
                "/input/index",
            ),
            (
                "midjourney",
                "variation",
                json!({"origin_task_id": "t", "index": "strong"}),
                "/input/index",
            ),
            (
                "midjourney",
                "imagine",
                json!({"prompt": "p", "bot_id": -1}),
                "/input/bot_id",
            ),
            (
                "midjourney",
                "outpaint",
                json!({"origin_task_id": "t", "zoom_ratio": "big"}),
                "/input/zoom_ratio",
            ),
            (
                "midjourney",
                "reroll",
                json!({"origin_task_id": "t", "aspect_ratio": "wide"}),
                "/input/aspect_ratio",
            ),
        ]);
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
    fn files_the_worker_fetches_may_be_data_urls() {
        let opts = crate::task::ParseOptions::default();
        for (tt, input) in [
            (
                "describe",
                json!({"image_url": "data:image/png;base64,AQID"}),
            ),
            (
                "blend",
                json!({"image_urls": ["data:image/png;base64,AQID", "https://x.com/b.png"]}),
            ),
        ] {
            assert!(
                crate::TaskSpec::parse("midjourney", tt, &input, &opts).is_ok(),
                "{tt}"
            );
        }
    }

    #[test]
    fn bad_inputs_name_their_field() {
        assert_bad_inputs(&[
            (
                "midjourney",
                "describe",
                json!({"image_url": "data:image/png;base64,%%%"}),
                "/input/image_url",
            ),
            (
                "midjourney",
                "describe",
                json!({"image_url": "data:image/png,plain"}),
                "/input/image_url",
            ),
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
        ]);
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
        assert_listed_types_parse(Provider::Midjourney, |tt| match tt {
            MjAction::IMAGINE => json!({"prompt": "p"}),
            MjAction::UPSCALE => json!({"origin_task_id": "o", "index": 1}),
            MjAction::VARIATION => json!({"origin_task_id": "o", "index": 2}),
            MjAction::DESCRIBE => json!({"image_url": "https://x/a.png"}),
            MjAction::BLEND => json!({"image_urls": ["https://x/a", "https://x/b"]}),
            MjAction::INPAINT => json!({"origin_task_id": "o", "mask": "m", "prompt": "p"}),
            MjAction::OUTPAINT => json!({"origin_task_id": "o", "zoom_ratio": 1.5}),
            MjAction::PAN => json!({"origin_task_id": "o", "direction": "left"}),
            _ => json!({"origin_task_id": "o"}),
        });
    }
}
