//! Suno: the music, lyrics and upload tasks with their inputs and validation.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{MAX_TEXT_CHARS, check_http_url, id, opt_text, text};
use crate::error::SpecError;

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
    /// The whole song of a continued clip, as one clip.
    Concat(SunoConcat),
}

/// `suno` / `generate_music`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SunoGenerate {
    /// What the song should be about (`prompt` is accepted for it).
    #[serde(alias = "prompt")]
    pub gpt_description_prompt: String,
    /// No vocals.
    #[serde(default)]
    pub make_instrumental: Option<bool>,
    /// `chirp-v3-0`, `chirp-v3-5`, `chirp-v4`, … (`mv` is accepted for it).
    #[serde(default, alias = "mv")]
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
    /// Model version (`mv` is accepted for it).
    #[serde(default, alias = "mv")]
    pub model_version: Option<String>,
    /// Continue this clip (makes the task a continue).
    #[serde(default)]
    pub continue_clip_id: Option<String>,
    /// Seconds into the clip to continue from.
    #[serde(default)]
    pub continue_at: Option<f64>,
    /// Continue the first clip of this task (GoAPI's `music` names the task in
    /// `task_id`); the intake resolves it into `continue_clip_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continue_task_id: Option<String>,
}

/// `suno` / `lyrics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SunoLyrics {
    /// What the lyrics should be about; empty lets Suno choose (GoAPI's example sends an
    /// empty input).
    #[serde(default)]
    pub prompt: String,
}

/// `suno` / `upload`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SunoUpload {
    /// The audio to upload (http(s)).
    pub audio_url: String,
}

/// `suno` / `concat`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SunoConcat {
    /// The last clip of a continued song.
    pub clip_id: String,
}

task_type_names!(SunoTask {
    GenerateMusic => GENERATE_MUSIC = "generate_music",
    GenerateMusicCustom => GENERATE_MUSIC_CUSTOM = "generate_music_custom",
    Lyrics => LYRICS = "lyrics",
    Upload => UPLOAD = "upload",
    Concat => CONCAT = "concat",
});

/// GoAPI's current Suno task type, read as the task type it stands for.
pub const MUSIC: &str = "music";

/// The fields `music` takes.
const MUSIC_FIELDS: &[&str] = &[
    "prompt",
    "gpt_description_prompt",
    "title",
    "tags",
    "negative_tags",
    "make_instrumental",
    "mv",
    "model_version",
    "task_id",
    "continue_clip_id",
    "continue_at",
];

/// A `music` input as the task type it stands for: with a `title` or `tags` (or a
/// `task_id` or `continue_clip_id` to continue) a custom generation whose `prompt` is the
/// lyrics, otherwise a description generation whose `prompt` is the description. Empty
/// strings count as absent, as GoAPI's examples send `"task_id": ""`.
pub fn read_music(input: &Value) -> Result<(&'static str, Value), SpecError> {
    let Some(m) = input.as_object() else {
        return Err(SpecError::input("", "input must be a JSON object"));
    };
    if let Some(k) = m.keys().find(|k| !MUSIC_FIELDS.contains(&k.as_str())) {
        return Err(SpecError::input(
            k,
            format!(
                "unknown field `{k}`; music takes {}",
                MUSIC_FIELDS.join(", ")
            ),
        ));
    }
    let given = |k: &str| {
        m.get(k)
            .filter(|v| !v.is_null() && v.as_str() != Some(""))
            .cloned()
    };
    let mut out = serde_json::Map::new();
    let custom = ["title", "tags", "task_id", "continue_clip_id"]
        .iter()
        .any(|k| given(k).is_some());
    let task_type = if custom {
        for (from, to) in [
            ("prompt", "prompt"),
            ("title", "title"),
            ("tags", "tags"),
            ("negative_tags", "negative_tags"),
            ("make_instrumental", "make_instrumental"),
            ("mv", "mv"),
            ("model_version", "model_version"),
            ("continue_clip_id", "continue_clip_id"),
            ("continue_at", "continue_at"),
            ("task_id", "continue_task_id"),
        ] {
            if let Some(v) = given(from) {
                out.insert(to.into(), v);
            }
        }
        if given("gpt_description_prompt").is_some() {
            return Err(SpecError::input(
                "gpt_description_prompt",
                "a music task with a title, tags or a task to continue is a custom generation: give the lyrics in prompt",
            ));
        }
        SunoTask::GENERATE_MUSIC_CUSTOM
    } else {
        let description = given("gpt_description_prompt").or_else(|| given("prompt"));
        if let Some(d) = description {
            out.insert("gpt_description_prompt".into(), d);
        }
        for k in ["make_instrumental", "mv", "model_version"] {
            if let Some(v) = given(k) {
                out.insert(k.into(), v);
            }
        }
        for k in ["negative_tags", "continue_at"] {
            if given(k).is_some() {
                return Err(SpecError::input(
                    k,
                    format!("{k} needs a custom generation: give a title or tags"),
                ));
            }
        }
        SunoTask::GENERATE_MUSIC
    };
    Ok((task_type, Value::Object(out)))
}

impl SunoTask {
    /// True for a custom generation that continues a clip (or a task's first clip).
    pub fn is_continue(&self) -> bool {
        matches!(self, SunoTask::GenerateMusicCustom(c)
            if c.continue_clip_id.is_some() || c.continue_task_id.is_some())
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

/// Check the values the task's types cannot express.
pub(super) fn validate(task: &SunoTask) -> Result<(), SpecError> {
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
            if let Some(task) = &g.continue_task_id {
                id("task_id", task)?;
            }
            match (
                g.continue_at,
                g.continue_clip_id.as_ref().or(g.continue_task_id.as_ref()),
            ) {
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
        SunoTask::Lyrics(l) if l.prompt.is_empty() => {}
        SunoTask::Lyrics(l) => text("prompt", &l.prompt, MAX_TEXT_CHARS)?,
        SunoTask::Upload(u) => check_http_url("audio_url", &u.audio_url)?,
        SunoTask::Concat(c) => id("clip_id", &c.clip_id)?,
    }
    Ok(())
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
        ]);
    }

    #[test]
    fn every_listed_task_type_parses_with_a_minimal_input() {
        assert_listed_types_parse(Provider::Suno, |tt| match tt {
            SunoTask::GENERATE_MUSIC => json!({"gpt_description_prompt": "p"}),
            SunoTask::GENERATE_MUSIC_CUSTOM => json!({"prompt": "la la"}),
            SunoTask::LYRICS => json!({"prompt": "p"}),
            SunoTask::CONCAT => json!({"clip_id": "c1"}),
            _ => json!({"audio_url": "https://x/a.mp3"}),
        });
    }
}
