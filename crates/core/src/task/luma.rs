//! Luma Dream Machine: the video tasks with their inputs, the grid column (feature) a
//! task falls in, and validation.

use serde::{Deserialize, Serialize};

use super::{MAX_TEXT_CHARS, aspect_ratio, check_http_url, id, opt_text, text};
use crate::error::SpecError;

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

task_type_names!(LumaTask {
    VideoGeneration => VIDEO_GENERATION = "video_generation",
    ExtendVideo => EXTEND_VIDEO = "extend_video",
    RemoveWatermark => REMOVE_WATERMARK = "remove_watermark",
});

impl LumaTask {
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

/// Check the values the task's types cannot express.
pub(super) fn validate(task: &LumaTask) -> Result<(), SpecError> {
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

#[cfg(test)]
mod tests {
    use super::super::test_support::{assert_bad_inputs, assert_listed_types_parse, parse};
    use super::*;
    use crate::provider::Provider;
    use crate::task::TaskSpec;
    use serde_json::json;

    #[test]
    fn bad_inputs_name_their_field() {
        assert_bad_inputs(&[
            (
                "luma",
                "video_generation",
                json!({"prompt": "p", "key_frames": {"frame0": {"type": "image"}}}),
                "/input/key_frames/frame0/url",
            ),
            ("luma", "extend_video", json!({}), "/input/origin_task_id"),
        ]);
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
    fn every_listed_task_type_parses_with_a_minimal_input() {
        assert_listed_types_parse(Provider::Luma, |tt| match tt {
            LumaTask::VIDEO_GENERATION => json!({"prompt": "p"}),
            LumaTask::EXTEND_VIDEO => json!({"generation_id": "g"}),
            _ => json!({"origin_task_id": "o"}),
        });
    }
}
