//! Luma Dream Machine: the video tasks with their inputs, the grid column (feature) a
//! task falls in, and validation.

use serde::{Deserialize, Serialize};

use super::{MAX_TEXT_CHARS, aspect_ratio, check_input_url, id, opt_text, text};
use crate::error::SpecError;

/// A Luma key frame. A request's frame is an image when it has a `url`, an earlier
/// generation when it has only an `id`; its `type` is informative (GoAPI's examples carry
/// filler values there), and a frame with neither is no frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

/// A key frame as a request gives it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FrameInput {
    #[serde(rename = "type", default)]
    _kind: Option<serde_json::Value>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    id: Option<String>,
}

impl FrameInput {
    fn frame(self) -> Option<LumaFrame> {
        let url = self.url.filter(|u| !u.is_empty());
        let id = self.id.filter(|i| !i.is_empty());
        let kind = match (&url, &id) {
            (Some(_), _) => LumaFrameKind::Image,
            (None, Some(_)) => LumaFrameKind::Generation,
            (None, None) => return None,
        };
        Some(LumaFrame { kind, url, id })
    }
}

/// An image frame from a URL.
fn image_frame(url: String) -> LumaFrame {
    LumaFrame {
        kind: LumaFrameKind::Image,
        url: Some(url),
        id: None,
    }
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
pub struct LumaKeyFrames {
    /// Start frame.
    #[serde(default)]
    pub frame0: Option<LumaFrame>,
    /// End frame.
    #[serde(default)]
    pub frame1: Option<LumaFrame>,
}

/// Key frames as a request gives them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFramesInput {
    #[serde(default)]
    frame0: Option<FrameInput>,
    #[serde(default)]
    frame1: Option<FrameInput>,
}

/// Luma's video models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LumaModel {
    /// Ray 1.
    #[serde(rename = "ray-v1")]
    RayV1,
    /// Ray 2.
    #[serde(rename = "ray-v2")]
    RayV2,
}

impl LumaModel {
    /// The name Luma's web API takes.
    pub fn upstream_name(self) -> &'static str {
        match self {
            LumaModel::RayV1 => "ray-1-6",
            LumaModel::RayV2 => "ray-2",
        }
    }
}

/// `luma` / `video_generation`. A start and an end frame come in any of GoAPI's three
/// forms (`key_frames`, `start_image`/`end_image`, `image_url`/`image_end_url`), which
/// mean the same; `model` is a synonym of `model_name`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "VideoInput")]
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
    /// `ray-v1` or `ray-v2` (Luma's default when absent).
    #[serde(default)]
    pub model_name: Option<LumaModel>,
    /// Seconds: 5 or 10 (Luma's default when absent).
    #[serde(default)]
    pub duration: Option<u8>,
}

/// A video generation as a request gives it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VideoInput {
    prompt: String,
    #[serde(default)]
    expand_prompt: Option<bool>,
    #[serde(rename = "loop", default)]
    loop_: Option<bool>,
    #[serde(default)]
    aspect_ratio: Option<String>,
    #[serde(default)]
    key_frames: Option<KeyFramesInput>,
    #[serde(default)]
    start_image: Option<String>,
    #[serde(default)]
    end_image: Option<String>,
    #[serde(default)]
    image_url: Option<String>,
    #[serde(default)]
    image_end_url: Option<String>,
    #[serde(default)]
    model_name: Option<LumaModel>,
    #[serde(default)]
    model: Option<LumaModel>,
    #[serde(default, deserialize_with = "duration")]
    duration: Option<u8>,
}

/// A duration in seconds, as a number or a string (`5`, `"5"`, `"5s"`).
fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u8>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Seconds {
        Number(u64),
        Text(String),
    }
    let n = match Option::<Seconds>::deserialize(d)? {
        None => return Ok(None),
        Some(Seconds::Number(n)) => Some(n),
        Some(Seconds::Text(t)) => t.trim().trim_end_matches('s').parse().ok(),
    };
    match n {
        Some(5) => Ok(Some(5)),
        Some(10) => Ok(Some(10)),
        _ => Err(serde::de::Error::custom(
            "duration must be 5 or 10 (seconds)",
        )),
    }
}

impl TryFrom<VideoInput> for LumaVideo {
    type Error = String;

    fn try_from(v: VideoInput) -> Result<Self, String> {
        let nonempty = |s: Option<String>| s.filter(|s| !s.is_empty());
        let (mut frame0, mut frame1) = match v.key_frames {
            Some(k) => (
                k.frame0.and_then(FrameInput::frame),
                k.frame1.and_then(FrameInput::frame),
            ),
            None => (None, None),
        };
        for (name, url, end) in [
            ("start_image", nonempty(v.start_image), false),
            ("image_url", nonempty(v.image_url), false),
            ("end_image", nonempty(v.end_image), true),
            ("image_end_url", nonempty(v.image_end_url), true),
        ] {
            let Some(url) = url else { continue };
            let slot = if end { &mut frame1 } else { &mut frame0 };
            if slot.is_some() {
                let which = if end { "end" } else { "start" };
                return Err(format!(
                    "{name} gives the {which} frame a second time; give it once (key_frames, start_image/end_image or image_url/image_end_url)"
                ));
            }
            *slot = Some(image_frame(url));
        }
        if v.model_name.is_some() && v.model.is_some() && v.model_name != v.model {
            return Err("model and model_name name different models; give one".into());
        }
        let key_frames =
            (frame0.is_some() || frame1.is_some()).then_some(LumaKeyFrames { frame0, frame1 });
        Ok(LumaVideo {
            prompt: v.prompt,
            expand_prompt: v.expand_prompt,
            loop_: v.loop_,
            aspect_ratio: v.aspect_ratio,
            key_frames,
            model_name: v.model_name.or(v.model),
            duration: v.duration,
        })
    }
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
            Some(u) => check_input_url(&format!("{field}/url"), u),
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
                json!({"prompt": "p", "key_frames": {"frame0": {"url": "ftp://x/a.png"}}}),
                "/input/key_frames/frame0/url",
            ),
            (
                "luma",
                "video_generation",
                json!({"prompt": "p", "duration": 7}),
                "/input/duration",
            ),
            (
                "luma",
                "video_generation",
                json!({"prompt": "p", "model_name": "ray-v9"}),
                "/input/model_name",
            ),
            ("luma", "extend_video", json!({}), "/input/origin_task_id"),
        ]);
    }

    /// GoAPI's three ways of giving a start and an end frame mean the same; a frame's
    /// `type` is informative, a frame with a `url` is an image, one with only an `id` a
    /// generation, one with neither no frame.
    #[test]
    fn the_three_frame_forms_mean_the_same() {
        let video = |input| match parse("luma", "video_generation", input).unwrap() {
            TaskSpec::Luma(LumaTask::VideoGeneration(v)) => v,
            other => panic!("{other:?}"),
        };
        let (a, b) = ("https://x/a.png", "https://x/b.png");
        let key_frames = video(json!({"prompt": "p", "key_frames": {
            "frame0": {"type": "laborum ad", "url": a, "id": "XFT5"},
            "frame1": {"type": "do ex", "url": b}}}));
        let start_end = video(json!({"prompt": "p", "start_image": a, "end_image": b}));
        let image_url = video(json!({"prompt": "p", "image_url": a, "image_end_url": b}));
        let urls = |v: &LumaVideo| {
            let k = v.key_frames.as_ref().unwrap();
            [&k.frame0, &k.frame1].map(|f| {
                let f = f.as_ref().unwrap();
                assert_eq!(f.kind, LumaFrameKind::Image);
                f.url.clone().unwrap()
            })
        };
        assert_eq!(urls(&key_frames), [a, b]);
        assert_eq!(urls(&start_end), [a, b]);
        assert_eq!(urls(&image_url), [a, b]);
        let generation = video(
            json!({"prompt": "p", "key_frames": {"frame0": {"type": "x", "id": "gen-1"}, "frame1": {"type": "image"}}}),
        );
        let k = generation.key_frames.unwrap();
        assert_eq!(k.frame0.unwrap().kind, LumaFrameKind::Generation);
        assert!(k.frame1.is_none());
        // `model` is `model_name`; duration as a number or a string.
        let v = video(json!({"prompt": "p", "model": "ray-v2", "duration": "10"}));
        assert_eq!(
            (v.model_name, v.duration),
            (Some(LumaModel::RayV2), Some(10))
        );
        // The same frame twice is refused.
        assert!(
            parse(
                "luma",
                "video_generation",
                json!({"prompt": "p", "start_image": a, "image_url": b})
            )
            .is_err()
        );
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
