//! A stream's branch: first a [`Recipe`] from its first caps and the settings (what the
//! stream needs: passthrough, encode or transcode, and how), then the elements.
//!
//! ```text
//! raw video:       videoconvert ! videoscale ! capsfilter(I420, first size) ! GATE ! queue ! encoder ! mux
//! raw audio:       audioconvert ! audioresample ! capsfilter(S16, first rate) ! GATE ! queue ! encoder ! mux
//! encoded (held):  parser ! capsfilter ! GATE ! queue ! mux          (recorded without re-encoding)
//! encoded (other): decoder ! <raw branch>
//! ```
//!
//! The head (up to and including the queue after the GATE) lives as long as the stream; the
//! tail (the encoder) is built anew for every segment of a rotating recording, so each file
//! starts with a keyframe and a fresh audio encoder (`segments.rs`).
//!
//! The capsfilters are locked to the first negotiated caps (see the gate path), so a
//! resolution or rate change upstream is scaled/resampled instead of reaching the muxer.
//! Encoded H.264/H.265 carries its parameter sets in band (avc3/hev1 in MP4), so a resolution
//! change of passthrough video reaches the decoder while the muxer keeps its first caps.

use gst::prelude::*;

use super::settings::{Container, Settings, VideoFormat};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Video,
    Audio,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Video => "video",
            Kind::Audio => "audio",
        }
    }
}

/// How a stream's media goes into the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handling {
    /// Encoded media recorded as it is.
    Passthrough,
    /// Raw media encoded here.
    Encode,
    /// Encoded media the container cannot hold: decoded and encoded again.
    Transcode,
}

impl Handling {
    pub fn name(self) -> &'static str {
        match self {
            Handling::Passthrough => "passthrough",
            Handling::Encode => "encode",
            Handling::Transcode => "transcode",
        }
    }
}

/// How the media is normalised before the gate.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Normalise {
    /// A parser and a capsfilter fixing the stream format (H.264/H.265).
    ParseTo {
        parser: &'static str,
        caps_name: &'static str,
        stream_format: &'static str,
    },
    /// Just a parser (Opus, AAC) or identity.
    Parse(&'static str),
    /// Converted to I420 / S16 and locked to the first caps.
    Raw(Kind),
    /// Converted to I420 and scaled to a fixed size (letterboxed, the picture undistorted).
    RawSized(VideoFormat),
}

/// What a branch is made of, decided from its first caps and the settings.
#[derive(Debug, Clone)]
pub struct Recipe {
    pub kind: Kind,
    pub handling: Handling,
    decoder: Option<gst::ElementFactory>,
    normalise: Normalise,
    /// gst-launch description of the conversion and encoder after the gate's queue.
    encoder: Option<String>,
    /// In-band DTMF is masked (raw audio).
    dtmf: bool,
}

impl Recipe {
    /// Whether the branch has a fixed size (not locked to the first caps).
    pub fn has_fixed_size(&self) -> bool {
        matches!(self.normalise, Normalise::RawSized(_))
    }
}

impl Recipe {
    pub fn for_caps(kind: Kind, caps: &gst::Caps, settings: &Settings) -> Result<Recipe, String> {
        let structure = caps
            .structure(0)
            .ok_or_else(|| format!("empty caps {caps}"))?;
        let name = structure.name().as_str();
        // A quality preset records video at one size and bitrate for the whole call,
        // whatever the call starts at: encoded video is decoded and encoded again.
        let fixed = settings.video_format().filter(|_| kind == Kind::Video);
        // Masking in-band DTMF needs the audio itself: encoded audio is decoded for it.
        let dtmf = settings.dtmf_mask && kind == Kind::Audio;
        let handling = if name == "video/x-raw" || name == "audio/x-raw" {
            Handling::Encode
        } else if settings.container.holds(name, structure) && fixed.is_none() && !dtmf {
            Handling::Passthrough
        } else {
            Handling::Transcode
        };
        let decoder = (handling == Handling::Transcode)
            .then(|| find_decoder(caps))
            .transpose()?;
        let mp4 = settings.container == Container::Mp4;
        let normalise = match (handling, name) {
            (Handling::Passthrough, "video/x-h264") => Normalise::ParseTo {
                parser: "h264parse",
                caps_name: "video/x-h264",
                stream_format: if mp4 { "avc3" } else { "avc" },
            },
            (Handling::Passthrough, "video/x-h265") => Normalise::ParseTo {
                parser: "h265parse",
                caps_name: "video/x-h265",
                stream_format: if mp4 { "hev1" } else { "hvc1" },
            },
            (Handling::Passthrough, "audio/x-opus") => Normalise::Parse("opusparse"),
            (Handling::Passthrough, "audio/mpeg") => Normalise::Parse("aacparse"),
            (Handling::Passthrough, _) => Normalise::Parse("identity"),
            _ => match fixed {
                Some(format) => Normalise::RawSized(format),
                None => Normalise::Raw(kind),
            },
        };
        let encoder = (handling != Handling::Passthrough).then(|| {
            let description = match kind {
                Kind::Video => settings.video_encoder.clone().unwrap_or_else(|| {
                    settings.default_video_encoder(fixed.map(|format| format.kbps))
                }),
                Kind::Audio => settings
                    .audio_encoder
                    .clone()
                    .unwrap_or_else(|| settings.container.default_audio_encoder().into()),
            };
            // Whatever the encoder takes (planar float for avenc_aac, 48 kHz for Opus, NV12...).
            let convert = match kind {
                Kind::Video => "videoconvert",
                Kind::Audio => "audioconvert ! audioresample",
            };
            format!("{convert} ! {description}")
        });
        Ok(Recipe {
            kind,
            handling,
            decoder,
            normalise,
            encoder,
            dtmf,
        })
    }
}

/// The elements of a branch's head, not yet added to the bin.
pub struct Branch {
    /// In order, from the request pad's target to the queue after the gate.
    pub elements: Vec<gst::Element>,
    /// The element whose source pad is the gate.
    pub gate_element: gst::Element,
    /// The capsfilter locked to the first caps (raw media).
    pub caps_filter: gst::Element,
    /// The DTMF side chain (fed by the tee in `elements`), ending in `dtmfdetect`.
    pub dtmf_chain: Vec<gst::Element>,
}

impl Branch {
    /// The head's last pad: the queue's source, where segments switch.
    pub fn exit(&self) -> gst::Pad {
        self.elements
            .last()
            .and_then(|queue| queue.static_pad("src"))
            .expect("the head ends in a queue")
    }
}

/// The per-segment end of a branch: the encoder, if the stream is encoded here.
pub struct Tail {
    pub elements: Vec<gst::Element>,
}

impl Tail {
    pub fn build(recipe: &Recipe) -> Result<Tail, String> {
        let Some(description) = &recipe.encoder else {
            return Ok(Tail {
                elements: Vec::new(),
            });
        };
        let encoder = gst::parse::bin_from_description(description, true).map_err(|err| {
            format!(
                "cannot build {} encoder '{description}': {err}",
                recipe.kind.name()
            )
        })?;
        if encoder.static_pad("src").is_none() {
            return Err("the encoder has no output pad".into());
        }
        Ok(Tail {
            elements: vec![encoder.upcast()],
        })
    }

    /// The pad the head's queue links to (`None`: straight to the muxer).
    pub fn entry(&self) -> Option<gst::Pad> {
        self.elements.first().and_then(|e| e.static_pad("sink"))
    }

    /// The pad that links to the muxer (`None`: the head's queue does).
    pub fn exit(&self) -> Option<gst::Pad> {
        self.elements.last().and_then(|e| e.static_pad("src"))
    }
}

impl Branch {
    pub fn build(recipe: &Recipe) -> Result<Branch, String> {
        let mut elements = Vec::new();
        if let Some(decoder) = &recipe.decoder {
            elements.push(decoder.create().build().map_err(|err| err.to_string())?);
        }
        match &recipe.normalise {
            Normalise::ParseTo {
                parser,
                caps_name,
                stream_format,
            } => {
                let parse = make(parser)?;
                // Parameter sets in every keyframe: resumes and resolution changes decode.
                parse.set_property("config-interval", -1i32);
                let filter = make("capsfilter")?;
                filter.set_property(
                    "caps",
                    gst::Caps::builder(*caps_name)
                        .field("stream-format", *stream_format)
                        .field("alignment", "au")
                        .build(),
                );
                elements.extend([parse, filter]);
            }
            Normalise::Parse(parser) => elements.push(make(parser)?),
            Normalise::Raw(Kind::Video) => {
                elements.push(make("videoconvert")?);
                elements.push(make("videoscale")?);
                elements.push(locked_capsfilter(
                    gst::Caps::builder("video/x-raw")
                        .field("format", "I420")
                        .build(),
                )?);
            }
            Normalise::RawSized(format) => {
                elements.push(make("videoconvert")?);
                let scale = make("videoscale")?;
                scale.set_property("add-borders", true);
                elements.push(scale);
                elements.push(locked_capsfilter(
                    gst::Caps::builder("video/x-raw")
                        .field("format", "I420")
                        .field("width", format.width as i32)
                        .field("height", format.height as i32)
                        .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
                        .build(),
                )?);
            }
            Normalise::Raw(Kind::Audio) => {
                elements.push(make("audioconvert")?);
                elements.push(make("audioresample")?);
                elements.push(locked_capsfilter(
                    gst::Caps::builder("audio/x-raw")
                        .field("format", "S16LE")
                        .field("layout", "interleaved")
                        .build(),
                )?);
            }
        }
        let caps_filter = elements.last().expect("a normalising element").clone();
        let mut dtmf_chain = Vec::new();
        if recipe.dtmf {
            // A copy at 8 kHz mono goes through the detectors in the tee's thread; behind the
            // hold-back queue the gate waits until the tone tracker has listened past each
            // buffer (`dtmf_path.rs`), so a tone is known before its first samples are
            // recorded.
            let tee = make("tee")?;
            let hold_back = make("queue")?;
            hold_back.set_property("max-size-buffers", 0u32);
            hold_back.set_property("max-size-bytes", 0u32);
            hold_back.set_property("max-size-time", 3 * gst::ClockTime::SECOND.nseconds());
            elements.extend([tee, hold_back]);
            // In the tee's thread: the detector has seen a buffer before the recording does.
            dtmf_chain.push(make("audioconvert")?);
            dtmf_chain.push(make("audioresample")?);
            let narrow = make("capsfilter")?;
            narrow.set_property(
                "caps",
                gst::Caps::builder("audio/x-raw")
                    .field("format", "S16LE")
                    .field("rate", crate::dtmf::RATE as i32)
                    .field("channels", 1i32)
                    .build(),
            );
            dtmf_chain.push(narrow);
            dtmf_chain.push(make("dtmfdetect").map_err(|_| {
                "element 'dtmfdetect' is missing (install gstreamer1.0-plugins-bad)".to_string()
            })?);
            // No sink after it: a sink would preroll in PAUSED and hold the tee (and with it
            // the recording) until PLAYING; `dtmf_path.rs` consumes what it outputs.
        }
        let gate_element = elements.last().expect("a normalising element").clone();
        // Decouples the gate from the muxer, which waits for every stream in turn.
        let queue = make("queue")?;
        queue.set_property("max-size-buffers", 0u32);
        queue.set_property("max-size-bytes", 0u32);
        queue.set_property("max-size-time", 3 * gst::ClockTime::SECOND.nseconds());
        elements.push(queue);
        Ok(Branch {
            elements,
            gate_element,
            caps_filter,
            dtmf_chain,
        })
    }
}

fn make(factory: &str) -> Result<gst::Element, String> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| format!("element '{factory}' is missing (see scripts/install-deps.sh)"))
}

/// A capsfilter for raw media that the gate path locks to the first caps.
fn locked_capsfilter(caps: gst::Caps) -> Result<gst::Element, String> {
    let filter = make("capsfilter")?;
    filter.set_property("caps", caps);
    filter.set_property_from_str("caps-change-mode", "delayed");
    Ok(filter)
}

/// Finds the best decoder for caps the container cannot hold.
fn find_decoder(caps: &gst::Caps) -> Result<gst::ElementFactory, String> {
    let mut factories: Vec<gst::ElementFactory> = gst::ElementFactory::factories_with_type(
        gst::ElementFactoryType::DECODER,
        gst::Rank::MARGINAL,
    )
    .into_iter()
    .filter(|factory| factory.can_sink_all_caps(caps))
    .collect();
    factories.sort_by_key(|factory| std::cmp::Reverse(factory.rank()));
    factories
        .into_iter()
        .next()
        .ok_or_else(|| format!("no decoder for {caps} (the container cannot hold it as it is)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipe(kind: Kind, caps: &str, container: Container) -> Recipe {
        gst::init().unwrap();
        let settings = Settings {
            container,
            ..Default::default()
        };
        Recipe::for_caps(kind, &caps.parse().unwrap(), &settings).unwrap()
    }

    #[test]
    fn recipes_follow_caps_and_container() {
        let h264 = recipe(Kind::Video, "video/x-h264", Container::Mp4);
        assert_eq!(h264.handling, Handling::Passthrough);
        assert!(matches!(
            h264.normalise,
            Normalise::ParseTo {
                stream_format: "avc3",
                ..
            }
        ));
        let raw = recipe(Kind::Audio, "audio/x-raw", Container::Mp4);
        assert_eq!(raw.handling, Handling::Encode);
        assert!(raw.encoder.as_deref().unwrap().contains("opusenc"));
        let vp8 = recipe(Kind::Video, "video/x-vp8", Container::Mp4);
        assert_eq!(vp8.handling, Handling::Transcode);
        assert!(vp8.decoder.is_some());
        let vp8 = recipe(Kind::Video, "video/x-vp8", Container::Webm);
        assert_eq!(vp8.handling, Handling::Passthrough);
        let opus = recipe(Kind::Audio, "audio/x-opus", Container::Mp4);
        assert_eq!(opus.handling, Handling::Passthrough);
        assert!(opus.encoder.is_none());
    }
}
