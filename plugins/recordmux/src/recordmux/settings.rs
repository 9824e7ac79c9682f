//! recordmux's settings: the enums shown by gst-inspect, and the settings snapshot every
//! other part works from.

use std::path::PathBuf;

use gst::glib;
use gst::prelude::*;

use crate::manifest::{self, CallMetadata};

#[derive(Debug, Clone, Copy, PartialEq, Eq, glib::Enum)]
#[enum_type(name = "GstRecordMuxPauseMode")]
pub enum PauseMode {
    #[enum_value(
        name = "Cut: paused media is dropped, the recording has no gap",
        nick = "cut"
    )]
    Cut,
    #[enum_value(
        name = "Mask: paused video is black and audio silent, the recording keeps the call's timeline",
        nick = "mask"
    )]
    Mask,
}

impl PauseMode {
    pub fn gate_mode(self) -> crate::gate::PauseMode {
        match self {
            PauseMode::Cut => crate::gate::PauseMode::Cut,
            PauseMode::Mask => crate::gate::PauseMode::Mask,
        }
    }

    pub fn nick(self) -> &'static str {
        match self {
            PauseMode::Cut => "cut",
            PauseMode::Mask => "mask",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, glib::Enum)]
#[enum_type(name = "GstRecordMuxVideoPreset")]
pub enum VideoPreset {
    #[enum_value(
        name = "Passthrough: encoded video as it comes, raw video at its first size",
        nick = "passthrough"
    )]
    Passthrough,
    #[enum_value(name = "SD: 640x360 at 800 kbit/s for the whole call", nick = "sd")]
    Sd,
    #[enum_value(name = "HD: 1280x720 at 2000 kbit/s for the whole call", nick = "hd")]
    Hd,
    #[enum_value(
        name = "Custom: video-width x video-height at video-bitrate for the whole call",
        nick = "custom"
    )]
    Custom,
}

/// A fixed recording size and bitrate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoFormat {
    pub width: u32,
    pub height: u32,
    pub kbps: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, glib::Enum)]
#[enum_type(name = "GstRecordMuxContainer")]
pub enum Container {
    #[enum_value(
        name = "Fragmented MP4 (ISO BMFF): H.264/H.265 video, Opus/AAC audio",
        nick = "mp4"
    )]
    Mp4,
    #[enum_value(name = "Matroska (streamable): any codec", nick = "matroska")]
    Matroska,
    #[enum_value(name = "WebM (streamable): VP8/VP9 video, Opus audio", nick = "webm")]
    Webm,
}

impl Container {
    pub fn muxer_factory(self) -> &'static str {
        match self {
            Container::Mp4 => "mp4mux",
            Container::Matroska => "matroskamux",
            Container::Webm => "webmmux",
        }
    }

    pub fn nick(self) -> &'static str {
        match self {
            Container::Mp4 => "mp4",
            Container::Matroska => "matroska",
            Container::Webm => "webm",
        }
    }

    pub fn default_video_encoder(self) -> &'static str {
        match self {
            Container::Webm => {
                "vp8enc deadline=1 cpu-used=8 keyframe-max-dist=60 target-bitrate=1500000"
            }
            _ => "x264enc tune=zerolatency speed-preset=veryfast key-int-max=60 bitrate=1500",
        }
    }

    pub fn default_audio_encoder(self) -> &'static str {
        "opusenc bitrate=48000"
    }

    /// Whether the container holds this encoded format as it is.
    pub fn holds(self, name: &str, structure: &gst::StructureRef) -> bool {
        match (self, name) {
            (Container::Webm, "video/x-vp8" | "video/x-vp9" | "audio/x-opus") => true,
            (Container::Webm, _) => false,
            (_, "video/x-h264" | "video/x-h265" | "audio/x-opus") => true,
            (_, "audio/mpeg") => structure.get::<i32>("mpegversion").ok() == Some(4),
            (Container::Matroska, "video/x-vp8" | "video/x-vp9") => true,
            _ => false,
        }
    }
}

pub const DEFAULT_FRAGMENT_DURATION_MS: u32 = 1000;
pub const DEFAULT_MAIN_STREAM_TIMEOUT_MS: u32 = 1000;
pub const DEFAULT_MANIFEST_INTERVAL_MS: u32 = 2000;
/// Shortest and longest segment a rotating recording takes.
pub const MIN_SEGMENT_DURATION: u64 = 1_000_000_000;
pub const MAX_SEGMENT_DURATION: u64 = 24 * 3600 * 1_000_000_000;
pub const MIN_SEGMENT_BYTES: u64 = 64 * 1024;

#[derive(Debug, Clone)]
pub struct Settings {
    pub pause_mode: PauseMode,
    pub container: Container,
    pub fragment_duration_ms: u32,
    pub video_encoder: Option<String>,
    pub audio_encoder: Option<String>,
    pub call_id: Option<String>,
    pub agent_id: Option<String>,
    pub customer_reference: Option<String>,
    pub direction: Option<String>,
    pub queue: Option<String>,
    pub extra_tags: Option<gst::Structure>,
    pub manifest_location: Option<PathBuf>,
    pub main_stream_timeout_ms: u32,
    pub manifest_interval_ms: u32,
    /// 0: no limit.
    pub max_segment_duration: u64,
    /// 0: no limit.
    pub max_segment_bytes: u64,
    pub video_preset: VideoPreset,
    pub dtmf_mask: bool,
    /// For the custom preset.
    pub video_width: u32,
    pub video_height: u32,
    pub video_kbps: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            pause_mode: PauseMode::Cut,
            container: Container::Mp4,
            fragment_duration_ms: DEFAULT_FRAGMENT_DURATION_MS,
            video_encoder: None,
            audio_encoder: None,
            call_id: None,
            agent_id: None,
            customer_reference: None,
            direction: None,
            queue: None,
            extra_tags: None,
            manifest_location: None,
            main_stream_timeout_ms: DEFAULT_MAIN_STREAM_TIMEOUT_MS,
            manifest_interval_ms: DEFAULT_MANIFEST_INTERVAL_MS,
            max_segment_duration: 0,
            max_segment_bytes: 0,
            video_preset: VideoPreset::Passthrough,
            dtmf_mask: false,
            video_width: 1280,
            video_height: 720,
            video_kbps: 2000,
        }
    }
}

impl Settings {
    /// The fixed size and bitrate video is recorded at, unless passthrough.
    pub fn video_format(&self) -> Option<VideoFormat> {
        match self.video_preset {
            VideoPreset::Passthrough => None,
            VideoPreset::Sd => Some(VideoFormat {
                width: 640,
                height: 360,
                kbps: 800,
            }),
            VideoPreset::Hd => Some(VideoFormat {
                width: 1280,
                height: 720,
                kbps: 2000,
            }),
            VideoPreset::Custom => Some(VideoFormat {
                width: self.video_width,
                height: self.video_height,
                kbps: self.video_kbps,
            }),
        }
    }

    /// The default video encoder at `kbps` (or the container's default bitrate).
    pub fn default_video_encoder(&self, kbps: Option<u32>) -> String {
        match (self.container, kbps) {
            (Container::Webm, Some(kbps)) => format!(
                "vp8enc deadline=1 cpu-used=8 keyframe-max-dist=60 target-bitrate={}",
                kbps * 1000
            ),
            (_, Some(kbps)) => format!(
                "x264enc tune=zerolatency speed-preset=veryfast key-int-max=60 bitrate={kbps}"
            ),
            (container, None) => container.default_video_encoder().to_string(),
        }
    }

    pub fn rotation_limits(&self) -> crate::rotation::Limits {
        crate::rotation::Limits {
            max_duration: (self.max_segment_duration > 0).then_some(self.max_segment_duration),
            max_bytes: (self.max_segment_bytes > 0).then_some(self.max_segment_bytes),
        }
    }

    /// The call metadata for the manifest and the container tags. Values were bounded when
    /// they were set; the free tags are bounded here (see [`Settings::tags_were_cut`]).
    pub fn metadata(&self) -> CallMetadata {
        let tags = self
            .extra_tags
            .iter()
            .flat_map(|structure| structure.iter())
            .take(manifest::MAX_TAGS)
            .map(|(field, value)| {
                let text = value.get::<String>().unwrap_or_else(|_| {
                    value.serialize().map(|s| s.to_string()).unwrap_or_default()
                });
                let (field, _) = manifest::bounded(field, manifest::MAX_FIELD_BYTES);
                let (text, _) = manifest::bounded(&text, manifest::MAX_FIELD_BYTES);
                (field, serde_json::Value::String(text))
            })
            .collect();
        CallMetadata {
            call_id: self.call_id.clone(),
            agent_id: self.agent_id.clone(),
            customer_reference: self.customer_reference.clone(),
            direction: self.direction.clone(),
            queue: self.queue.clone(),
            tags,
        }
    }

    /// Whether `extra-tags` holds more than the manifest keeps.
    pub fn tags_were_cut(&self) -> bool {
        self.extra_tags.as_ref().is_some_and(|structure| {
            structure.n_fields() > manifest::MAX_TAGS
                || structure.iter().any(|(field, value)| {
                    field.len() > manifest::MAX_FIELD_BYTES
                        || value
                            .get::<String>()
                            .is_ok_and(|text| text.len() > manifest::MAX_FIELD_BYTES)
                })
        })
    }
}
