//! GStreamer glue for `recordmux`: a bin with request pads `video_%u` / `audio_%u` and one
//! `src` pad. Each input gets a branch, built when its first caps arrive:
//!
//! ```text
//! raw video:      videoconvert ! videoscale ! capsfilter(I420, first size) ! GATE ! queue ! encoder ! mux
//! raw audio:      audioconvert ! audioresample ! capsfilter(S16, first rate) ! GATE ! queue ! encoder ! mux
//! encoded (held): parser ! capsfilter ! GATE ! queue ! mux          (recorded without re-encoding)
//! encoded (other): decoder ! <raw branch>
//! ```
//!
//! GATE is a pad probe that asks `crate::gate` what to do with every buffer and retimes it;
//! the capsfilters are locked to the first negotiated caps so a resolution or rate change
//! upstream is scaled/resampled instead of reaching the muxer (which cannot take it). Encoded
//! H.264 carries its SPS/PPS in band (avc3 in MP4), so a resolution change of passthrough
//! video reaches the decoder while the muxer keeps its first caps.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use crate::gate::{self, Gate, MainVerdict, SecondaryVerdict, Transition, TransitionKind};
use crate::manifest::{
    CallMetadata, Manifest, ManifestEvent, OutputHasher, PausedSpan, StreamRecord,
};
use crate::pcm::{self, PcmLayout};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "recordmux",
        gst::DebugColorFlags::empty(),
        Some("call recording muxer with pause/resume"),
    )
});

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
    fn muxer_factory(self) -> &'static str {
        match self {
            Container::Mp4 => "mp4mux",
            Container::Matroska => "matroskamux",
            Container::Webm => "webmmux",
        }
    }

    fn nick(self) -> &'static str {
        match self {
            Container::Mp4 => "mp4",
            Container::Matroska => "matroska",
            Container::Webm => "webm",
        }
    }

    fn default_video_encoder(self) -> &'static str {
        match self {
            Container::Webm => {
                "vp8enc deadline=1 cpu-used=8 keyframe-max-dist=60 target-bitrate=1500000"
            }
            _ => "x264enc tune=zerolatency speed-preset=veryfast key-int-max=60 bitrate=1500",
        }
    }

    fn default_audio_encoder(self) -> &'static str {
        "opusenc bitrate=48000"
    }

    /// Whether the container holds this encoded format as it is.
    fn holds(self, name: &str, structure: &gst::StructureRef) -> bool {
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

#[derive(Debug, Clone)]
struct Settings {
    pause_mode: PauseMode,
    container: Container,
    fragment_duration_ms: u32,
    video_encoder: Option<String>,
    audio_encoder: Option<String>,
    call_id: Option<String>,
    agent_id: Option<String>,
    customer_reference: Option<String>,
    direction: Option<String>,
    queue: Option<String>,
    extra_tags: Option<gst::Structure>,
    manifest_location: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            pause_mode: PauseMode::Cut,
            container: Container::Mp4,
            fragment_duration_ms: 1000,
            video_encoder: None,
            audio_encoder: None,
            call_id: None,
            agent_id: None,
            customer_reference: None,
            direction: None,
            queue: None,
            extra_tags: None,
            manifest_location: None,
        }
    }
}

impl Settings {
    fn metadata(&self) -> CallMetadata {
        let tags = self
            .extra_tags
            .iter()
            .flat_map(|structure| structure.iter())
            .map(|(field, value)| {
                let text = value.get::<String>().unwrap_or_else(|_| {
                    value.serialize().map(|s| s.to_string()).unwrap_or_default()
                });
                (field.to_string(), serde_json::Value::String(text))
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Video,
    Audio,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Video => "video",
            Kind::Audio => "audio",
        }
    }
}

/// How a stream's media goes into the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handling {
    /// Encoded media recorded as it is.
    Passthrough,
    /// Raw media encoded here.
    Encode,
    /// Encoded media the container cannot hold: decoded and encoded again.
    Transcode,
}

impl Handling {
    fn name(self) -> &'static str {
        match self {
            Handling::Passthrough => "passthrough",
            Handling::Encode => "encode",
            Handling::Transcode => "transcode",
        }
    }
}

/// Per-stream state the gate probes share.
struct StreamState {
    kind: Kind,
    handling: Option<Handling>,
    segment: Option<gst::FormattedSegment<gst::ClockTime>>,
    /// Layout of raw audio at the gate.
    pcm: Option<PcmLayout>,
    /// Layout of raw video at the gate (I420).
    video: Option<gst_video::VideoInfo>,
    /// Whether the branch's capsfilter is locked to its first caps.
    caps_locked: bool,
    /// Caps as they arrive on the request pad.
    pad_caps: Option<gst::Caps>,
    flushing: bool,
    record: StreamRecord,
}

/// Everything the streaming threads share, behind one mutex.
struct Recording {
    gate: Gate,
    /// False while shutting down: nobody may wait any more.
    running: bool,
    /// Index of the stream that decides (see `crate::gate`).
    main: Option<usize>,
    streams: Vec<StreamState>,
    manifest: Manifest,
    manifest_location: Option<PathBuf>,
    hasher: OutputHasher,
    finished: bool,
    /// Where the main stream ended (so far).
    main_end: u64,
    /// Where secondary streams got to after the main stream ended.
    after_main_end: u64,
}

impl Recording {
    fn new(settings: &Settings, recording: bool) -> Recording {
        let mode = match settings.pause_mode {
            PauseMode::Cut => gate::PauseMode::Cut,
            PauseMode::Mask => gate::PauseMode::Mask,
        };
        Recording {
            gate: Gate::new(mode, recording),
            running: true,
            main: None,
            streams: Vec::new(),
            manifest: Manifest {
                format: Manifest::FORMAT,
                call: settings.metadata(),
                pause_mode: match mode {
                    gate::PauseMode::Cut => "cut",
                    gate::PauseMode::Mask => "mask",
                },
                output: crate::manifest::OutputRecord {
                    container: settings.container.nick().to_string(),
                    ..Default::default()
                },
                ..Default::default()
            },
            manifest_location: settings.manifest_location.clone(),
            hasher: OutputHasher::default(),
            finished: false,
            main_end: 0,
            after_main_end: 0,
        }
    }

    /// The main stream: the first video stream, else the first audio stream.
    fn main_stream(&mut self) -> Option<usize> {
        if self.main.is_none() {
            self.main = self
                .streams
                .iter()
                .position(|s| s.kind == Kind::Video)
                .or_else(|| self.streams.iter().position(|s| s.kind == Kind::Audio));
        }
        self.main
    }

    /// Brings the manifest up to date with the gate and the streams.
    fn refresh_manifest(&mut self, complete: bool) {
        let until = self.main_end.max(self.after_main_end);
        let manifest = &mut self.manifest;
        manifest.origin_running_time_ns = self.gate.origin();
        manifest.recorded_duration_ns = self.gate.recorded_duration(until);
        manifest.paused_spans = self
            .gate
            .paused_spans(until)
            .into_iter()
            .map(|span| PausedSpan {
                start_running_time_ns: span.start,
                end_running_time_ns: span.end,
                duration_ns: span.end - span.start,
            })
            .collect();
        manifest.paused_duration_ns = manifest.paused_spans.iter().map(|s| s.duration_ns).sum();
        manifest.streams = self.streams.iter().map(|s| s.record.clone()).collect();
        manifest.output.bytes = self.hasher.bytes();
        manifest.complete = complete;
        if complete {
            manifest.output.sha256 = Some(self.hasher.hex_digest());
            manifest.ended_utc = Some(now_utc());
        }
    }

    fn write_manifest(&mut self, complete: bool) -> Result<(), String> {
        self.refresh_manifest(complete);
        match &self.manifest_location {
            Some(path) => self
                .manifest
                .write_atomically(path, complete)
                .map_err(|err| format!("cannot write manifest '{}': {err}", path.display())),
            None => Ok(()),
        }
    }
}

fn now_utc() -> String {
    glib::DateTime::now_utc()
        .and_then(|now| {
            let seconds = now.format("%Y-%m-%dT%H:%M:%S")?;
            Ok(format!("{seconds}.{:03}Z", now.microsecond() / 1000))
        })
        .unwrap_or_default()
}

struct Shared {
    recording: Mutex<Recording>,
    /// Signalled whenever the main stream advances, a stream ends or flushes, or on shutdown.
    changed: Condvar,
}

/// The elements of one input.
struct StreamPad {
    ghost: gst::GhostPad,
    mux_pad: gst::Pad,
    elements: Vec<gst::Element>,
    index: usize,
}

#[derive(Default)]
struct Pads {
    muxer: Option<gst::Element>,
    streams: Vec<StreamPad>,
    next_video: u32,
    next_audio: u32,
}

pub struct RecordMux {
    settings: Mutex<Settings>,
    /// What `recording` was last set to, kept across state changes.
    want_recording: Mutex<bool>,
    shared: Arc<Shared>,
    pads: Mutex<Pads>,
    srcpad: gst::GhostPad,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[glib::object_subclass]
impl ObjectSubclass for RecordMux {
    const NAME: &'static str = "GstRecordMux";
    type Type = super::RecordMux;
    type ParentType = gst::Bin;

    fn with_class(klass: &Self::Class) -> Self {
        let settings = Settings::default();
        let srcpad = gst::GhostPad::builder_from_template(&klass.pad_template("src").unwrap())
            .name("src")
            .build();
        RecordMux {
            shared: Arc::new(Shared {
                recording: Mutex::new(Recording::new(&settings, true)),
                changed: Condvar::new(),
            }),
            settings: Mutex::new(settings),
            want_recording: Mutex::new(true),
            pads: Mutex::new(Pads::default()),
            srcpad,
        }
    }
}

impl RecordMux {
    /// Pauses (`false`) or resumes (`true`) at the next main-stream buffer.
    fn request(&self, recording: bool, reason: &str) {
        *lock(&self.want_recording) = recording;
        let at = self.live_running_time();
        let force_keyframe = {
            let mut rec = lock(&self.shared.recording);
            let changed = rec.gate.request(recording, reason, at);
            self.shared.changed.notify_all();
            // Encoded video resumes on a keyframe: ask for one now rather than wait a GOP.
            rec.main_stream().filter(|&main| {
                let stream = &rec.streams[main];
                changed
                    && recording
                    && stream.kind == Kind::Video
                    && stream.handling == Some(Handling::Passthrough)
            })
        };
        gst::info!(
            CAT,
            imp = self,
            "requested recording={recording} ({reason})"
        );
        if let Some(main) = force_keyframe {
            self.request_keyframe(main);
        }
    }

    /// The running time now, if the pipeline is live and playing: buffer running times are
    /// then capture times, and a request applies to media captured from now on. A non-live
    /// pipeline (a file) runs on its own pace: its requests apply at the next buffer.
    fn live_running_time(&self) -> Option<u64> {
        let element = self.obj();
        if element.current_state() != gst::State::Playing {
            return None;
        }
        let live = element.sink_pads().iter().any(|pad| {
            let mut query = gst::query::Latency::new();
            pad.peer_query(&mut query) && query.result().0
        });
        if !live {
            return None;
        }
        let now = element.clock()?.time();
        Some(now.checked_sub(element.base_time()?)?.nseconds())
    }

    /// Asks upstream of stream `index` for a keyframe (encoded input resumes on one).
    fn request_keyframe(&self, index: usize) {
        let ghost = lock(&self.pads)
            .streams
            .iter()
            .find(|s| s.index == index)
            .map(|s| s.ghost.clone());
        if let Some(ghost) = ghost {
            gst::debug!(CAT, imp = self, "asking {} for a keyframe", ghost.name());
            let event = gst_video::UpstreamForceKeyUnitEvent::builder()
                .all_headers(true)
                .build();
            ghost.push_event(event);
        }
    }

    fn ensure_muxer(&self, pads: &mut Pads) -> Result<gst::Element, glib::BoolError> {
        if let Some(muxer) = &pads.muxer {
            return Ok(muxer.clone());
        }
        let settings = lock(&self.settings).clone();
        let factory = settings.container.muxer_factory();
        let muxer = gst::ElementFactory::make(factory)
            .name("muxer")
            .build()
            .map_err(|_| {
                glib::bool_error!(
                    "element '{factory}' is missing (install gstreamer1.0-plugins-good)"
                )
            })?;
        configure_muxer(&muxer, &settings);
        self.obj().add(&muxer)?;
        let muxer_src = muxer.static_pad("src").unwrap();
        self.srcpad.set_target(Some(&muxer_src))?;
        let shared = Arc::downgrade(&self.shared);
        let element = self.obj().downgrade();
        // The header (ftyp, moov) comes first: only the first buffers can need the fix.
        let header_buffers_left = AtomicU32::new(if settings.container == Container::Mp4 {
            4
        } else {
            0
        });
        muxer_src.add_probe(
            gst::PadProbeType::BUFFER
                | gst::PadProbeType::BUFFER_LIST
                | gst::PadProbeType::EVENT_DOWNSTREAM,
            move |_, info| {
                if info.buffer().is_some()
                    && header_buffers_left
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                        .is_ok()
                {
                    fix_opus_header(info);
                }
                if let (Some(shared), Some(element)) = (shared.upgrade(), element.upgrade()) {
                    element.imp().on_output(&shared, info);
                }
                gst::PadProbeReturn::Ok
            },
        );
        // Tell the muxer its output cannot seek, so it never goes back to rewrite headers:
        // the bytes as pushed are the file (and what the manifest hashes).
        muxer_src.add_probe(gst::PadProbeType::QUERY_DOWNSTREAM, |_, info| {
            if let Some(query) = info.query_mut()
                && let gst::QueryViewMut::Seeking(seeking) = query.view_mut()
            {
                seeking.set(false, gst::format::Bytes::ZERO, gst::format::Bytes::NONE);
                return gst::PadProbeReturn::Handled;
            }
            gst::PadProbeReturn::Ok
        });
        muxer.sync_state_with_parent()?;
        pads.muxer = Some(muxer.clone());
        Ok(muxer)
    }

    /// Hashes output bytes; writes the final manifest at EOS.
    fn on_output(&self, shared: &Shared, info: &gst::PadProbeInfo) {
        let mut rec = lock(&shared.recording);
        match &info.data {
            Some(gst::PadProbeData::Buffer(buffer)) => {
                if let Ok(map) = buffer.map_readable() {
                    rec.hasher.update(&map);
                }
            }
            Some(gst::PadProbeData::BufferList(list)) => {
                for buffer in list.iter() {
                    if let Ok(map) = buffer.map_readable() {
                        rec.hasher.update(&map);
                    }
                }
            }
            Some(gst::PadProbeData::Event(event)) => match event.view() {
                gst::EventView::Segment(segment) => {
                    let segment = segment.segment();
                    if segment.format() == gst::Format::Bytes && segment.start().value() > 0 {
                        gst::warning!(
                            CAT,
                            imp = self,
                            "muxer seeks in its output: the manifest hash covers the bytes as pushed"
                        );
                    }
                }
                gst::EventView::Eos(_) if !rec.finished => {
                    rec.finished = true;
                    let result = rec.write_manifest(true);
                    let json = rec.manifest.to_json();
                    let location = rec.manifest_location.clone();
                    drop(rec);
                    if let Err(err) = result {
                        gst::element_imp_error!(self, gst::ResourceError::Write, ("{err}"));
                    }
                    let mut structure =
                        gst::Structure::builder("recordmux-manifest").field("manifest", json);
                    if let Some(location) = location {
                        structure = structure.field("location", location.display().to_string());
                    }
                    let _ = self.obj().post_message(
                        gst::message::Element::builder(structure.build())
                            .src(&*self.obj())
                            .build(),
                    );
                }
                _ => (),
            },
            _ => (),
        }
    }

    /// Builds the branch of stream `index` for its first caps.
    fn build_branch(&self, index: usize, kind: Kind, caps: &gst::Caps) -> Result<(), String> {
        let settings = lock(&self.settings).clone();
        let structure = caps
            .structure(0)
            .ok_or_else(|| format!("empty caps {caps}"))?;
        let name = structure.name().as_str();
        let is_raw = name == "video/x-raw" || name == "audio/x-raw";
        let make = |factory: &str| {
            gst::ElementFactory::make(factory).build().map_err(|_| {
                format!("element '{factory}' is missing (see scripts/install-deps.sh)")
            })
        };
        let mut elements = Vec::new();
        let handling = if is_raw {
            Handling::Encode
        } else if settings.container.holds(name, structure) {
            Handling::Passthrough
        } else {
            Handling::Transcode
        };
        if handling == Handling::Transcode {
            elements.push(find_decoder(caps)?);
        }
        // Elements before the gate, and the capsfilter to lock to the first caps.
        if handling == Handling::Passthrough {
            match name {
                "video/x-h264" => {
                    let parse = make("h264parse")?;
                    // SPS/PPS in every keyframe: resumes and resolution changes decode.
                    parse.set_property("config-interval", -1i32);
                    let filter = make("capsfilter")?;
                    let format = if settings.container == Container::Mp4 {
                        "avc3"
                    } else {
                        "avc"
                    };
                    filter.set_property(
                        "caps",
                        gst::Caps::builder("video/x-h264")
                            .field("stream-format", format)
                            .field("alignment", "au")
                            .build(),
                    );
                    elements.extend([parse, filter]);
                }
                "video/x-h265" => {
                    let parse = make("h265parse")?;
                    parse.set_property("config-interval", -1i32);
                    let filter = make("capsfilter")?;
                    let format = if settings.container == Container::Mp4 {
                        "hev1"
                    } else {
                        "hvc1"
                    };
                    filter.set_property(
                        "caps",
                        gst::Caps::builder("video/x-h265")
                            .field("stream-format", format)
                            .field("alignment", "au")
                            .build(),
                    );
                    elements.extend([parse, filter]);
                }
                "audio/x-opus" => elements.push(make("opusparse")?),
                "audio/mpeg" => elements.push(make("aacparse")?),
                _ => elements.push(make("identity")?),
            }
        } else {
            match kind {
                Kind::Video => {
                    elements.push(make("videoconvert")?);
                    elements.push(make("videoscale")?);
                    let filter = make("capsfilter")?;
                    filter.set_property(
                        "caps",
                        gst::Caps::builder("video/x-raw")
                            .field("format", "I420")
                            .build(),
                    );
                    filter.set_property_from_str("caps-change-mode", "delayed");
                    elements.push(filter);
                }
                Kind::Audio => {
                    elements.push(make("audioconvert")?);
                    elements.push(make("audioresample")?);
                    let filter = make("capsfilter")?;
                    filter.set_property(
                        "caps",
                        gst::Caps::builder("audio/x-raw")
                            .field("format", "S16LE")
                            .field("layout", "interleaved")
                            .build(),
                    );
                    filter.set_property_from_str("caps-change-mode", "delayed");
                    elements.push(filter);
                }
            }
        }
        let gate_element = elements.last().unwrap().clone();
        let queue = make("queue")?;
        queue.set_property("max-size-buffers", 0u32);
        queue.set_property("max-size-bytes", 0u32);
        queue.set_property("max-size-time", 3 * gst::ClockTime::SECOND.nseconds());
        elements.push(queue);
        if handling != Handling::Passthrough {
            let description = match kind {
                Kind::Video => settings
                    .video_encoder
                    .clone()
                    .unwrap_or_else(|| settings.container.default_video_encoder().into()),
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
            let description = format!("{convert} ! {description}");
            let encoder = gst::parse::bin_from_description(&description, true).map_err(|err| {
                format!(
                    "cannot build {} encoder '{description}': {err}",
                    kind.name()
                )
            })?;
            elements.push(encoder.upcast());
        }

        let (ghost, mux_pad) = {
            let pads = lock(&self.pads);
            let stream = pads
                .streams
                .iter()
                .find(|s| s.index == index)
                .ok_or("pad was released")?;
            (stream.ghost.clone(), stream.mux_pad.clone())
        };
        let bin = self.obj();
        for element in &elements {
            bin.add(element).map_err(|err| err.to_string())?;
        }
        gst::Element::link_many(&elements).map_err(|err| format!("cannot link branch: {err}"))?;
        let last_src = elements
            .last()
            .and_then(|last| last.static_pad("src"))
            .ok_or("the encoder has no output pad")?;
        last_src.link(&mux_pad).map_err(|err| {
            format!(
                "the {} muxer refuses this stream: {err:?}",
                settings.container.nick()
            )
        })?;
        for element in elements.iter().rev() {
            element
                .sync_state_with_parent()
                .map_err(|err| err.to_string())?;
        }
        let gate_pad = gate_element.static_pad("src").unwrap();
        self.install_gate(index, &gate_pad, &gate_element);
        self.install_caps_guard(index, &mux_pad);
        ghost
            .set_target(Some(&elements[0].static_pad("sink").unwrap()))
            .map_err(|err| err.to_string())?;
        {
            let mut rec = lock(&self.shared.recording);
            let stream = &mut rec.streams[index];
            stream.handling = Some(handling);
            stream.record.handling = handling.name();
            stream.record.input_caps = caps.to_string();
        }
        if let Some(stream) = lock(&self.pads)
            .streams
            .iter_mut()
            .find(|s| s.index == index)
        {
            stream.elements = elements;
        }
        gst::info!(
            CAT,
            imp = self,
            "stream {index} ({}): {} {caps}",
            kind.name(),
            handling.name()
        );
        Ok(())
    }

    /// The gate probe: every buffer and event of stream `index` after normalisation.
    fn install_gate(&self, index: usize, pad: &gst::Pad, filter: &gst::Element) {
        let element = self.obj().downgrade();
        let filter = filter.clone();
        pad.add_probe(
            gst::PadProbeType::BUFFER
                | gst::PadProbeType::BUFFER_LIST
                | gst::PadProbeType::EVENT_DOWNSTREAM
                | gst::PadProbeType::EVENT_FLUSH,
            move |_, info| {
                let Some(element) = element.upgrade() else {
                    return gst::PadProbeReturn::Ok;
                };
                let imp = element.imp();
                match info.data.take() {
                    Some(gst::PadProbeData::Buffer(buffer)) => match imp.gate_buffer(index, buffer)
                    {
                        Some(buffer) => {
                            info.data = Some(gst::PadProbeData::Buffer(buffer));
                            gst::PadProbeReturn::Ok
                        }
                        // Taken out of `info` and dropped here.
                        None => gst::PadProbeReturn::Handled,
                    },
                    Some(gst::PadProbeData::BufferList(list)) => {
                        let mut kept = gst::BufferList::new();
                        {
                            let kept = kept.get_mut().unwrap();
                            for buffer in list.iter_owned() {
                                if let Some(buffer) = imp.gate_buffer(index, buffer) {
                                    kept.add(buffer);
                                }
                            }
                        }
                        if kept.is_empty() {
                            return gst::PadProbeReturn::Handled;
                        }
                        info.data = Some(gst::PadProbeData::BufferList(kept));
                        gst::PadProbeReturn::Ok
                    }
                    Some(gst::PadProbeData::Event(event)) => {
                        match imp.gate_event(index, event, &filter) {
                            Some(event) => {
                                info.data = Some(gst::PadProbeData::Event(event));
                                gst::PadProbeReturn::Ok
                            }
                            // Taken out of `info` and dropped here.
                            None => gst::PadProbeReturn::Handled,
                        }
                    }
                    other => {
                        info.data = other;
                        gst::PadProbeReturn::Ok
                    }
                }
            },
        );
    }

    /// Keeps the muxer on its first caps: later changes (new codec data after a resolution
    /// change) are carried in band instead; the muxer would write a broken file otherwise.
    fn install_caps_guard(&self, index: usize, mux_pad: &gst::Pad) {
        let element = self.obj().downgrade();
        mux_pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |pad, info| {
            let Some(gst::PadProbeData::Event(event)) = &info.data else {
                return gst::PadProbeReturn::Ok;
            };
            let gst::EventView::Caps(caps) = event.view() else {
                return gst::PadProbeReturn::Ok;
            };
            let Some(current) = pad.current_caps() else {
                if let Some(element) = element.upgrade() {
                    let codec = caps.caps().structure(0).map(|s| s.name().to_string());
                    let mut rec = lock(&element.imp().shared.recording);
                    rec.streams[index].record.recorded_codec = codec.unwrap_or_default();
                }
                return gst::PadProbeReturn::Ok;
            };
            if current.as_ref() == caps.caps() {
                return gst::PadProbeReturn::Ok;
            }
            gst::debug!(CAT, obj = pad, "keeping {current}, not {}", caps.caps());
            gst::PadProbeReturn::Drop
        });
    }

    fn gate_event(
        &self,
        index: usize,
        event: gst::Event,
        filter: &gst::Element,
    ) -> Option<gst::Event> {
        let mut rec = lock(&self.shared.recording);
        let is_main = rec.main_stream() == Some(index);
        let stream = &mut rec.streams[index];
        match event.view() {
            gst::EventView::Segment(segment) => {
                match segment.segment().clone().downcast::<gst::ClockTime>() {
                    Ok(segment) => stream.segment = Some(segment),
                    Err(_) => {
                        drop(rec);
                        gst::element_imp_error!(
                            self,
                            gst::StreamError::Format,
                            (
                                "recordmux needs time segments, got {:?}",
                                segment.segment().format()
                            )
                        );
                        return None;
                    }
                }
                // Output times are recording times, starting at 0.
                let fresh = gst::FormattedSegment::<gst::ClockTime>::new();
                Some(
                    gst::event::Segment::builder(&fresh)
                        .seqnum(event.seqnum())
                        .build(),
                )
            }
            gst::EventView::Caps(caps) => {
                let caps = caps.caps_owned();
                if stream.handling != Some(Handling::Passthrough) && !stream.caps_locked {
                    // Lock the branch to its first caps: later changes are converted.
                    filter.set_property("caps", &caps);
                    stream.caps_locked = true;
                }
                if stream.kind == Kind::Video && stream.handling != Some(Handling::Passthrough) {
                    stream.video = gst_video::VideoInfo::from_caps(&caps).ok();
                }
                if stream.kind == Kind::Audio
                    && stream.handling != Some(Handling::Passthrough)
                    && let Ok(info) = gst_audio::AudioInfo::from_caps(&caps)
                {
                    stream.pcm = Some(PcmLayout {
                        rate: info.rate(),
                        bytes_per_frame: info.bpf() as usize,
                    });
                }
                Some(event)
            }
            gst::EventView::Gap(gap) => {
                if is_main {
                    let (start, duration) = gap.get();
                    if let Some(end) = stream
                        .segment
                        .as_ref()
                        .and_then(|s| s.to_running_time(start + duration.unwrap_or_default()))
                    {
                        rec.gate.main_gap(end.nseconds());
                        self.shared.changed.notify_all();
                    }
                }
                None
            }
            gst::EventView::Eos(_) => {
                if is_main {
                    rec.gate.main_eos();
                }
                self.shared.changed.notify_all();
                Some(event)
            }
            gst::EventView::FlushStart(_) => {
                stream.flushing = true;
                self.shared.changed.notify_all();
                Some(event)
            }
            gst::EventView::FlushStop(_) => {
                stream.flushing = false;
                Some(event)
            }
            _ => Some(event),
        }
    }

    /// Decides one buffer of stream `index`; returns it retimed (or blanked, or cut) or `None`
    /// to drop it.
    fn gate_buffer(&self, index: usize, buffer: gst::Buffer) -> Option<gst::Buffer> {
        let mut rec = lock(&self.shared.recording);
        let main = rec.main_stream();
        let stream = &mut rec.streams[index];
        stream.record.buffers_in += 1;
        let segment = stream.segment.clone()?;
        let Some(start) = buffer
            .pts()
            .and_then(|pts| segment.to_running_time(pts))
            .map(gst::ClockTime::nseconds)
        else {
            gst::warning!(
                CAT,
                imp = self,
                "stream {index}: dropping a buffer without timestamp or outside its segment"
            );
            return None;
        };
        let dts = buffer
            .dts()
            .and_then(|dts| segment.to_running_time(dts))
            .map(gst::ClockTime::nseconds);
        let duration = match (buffer.duration(), stream.pcm) {
            (Some(duration), _) => duration.nseconds(),
            (None, Some(pcm)) => pcm.duration_ns(buffer.size()),
            (None, None) => 0,
        };
        let (handling, pcm) = (stream.handling, stream.pcm);
        let video = stream.video.clone();
        let end = start + duration;
        if main == Some(index) {
            rec.main_end = rec.main_end.max(end);
        } else if rec.gate.is_main_eos() {
            rec.after_main_end = rec.after_main_end.max(end);
        }
        gst::trace!(
            CAT,
            imp = self,
            "stream {index}: buffer at running time {start}..{end}"
        );

        if main == Some(index) {
            let keyframe = handling != Some(Handling::Passthrough)
                || !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
            let was_started = rec.gate.origin().is_some();
            let (verdict, transition) = rec.gate.main(start..end, keyframe);
            self.shared.changed.notify_all();
            // Joining encoded video mid-GOP: ask for a keyframe once instead of waiting a GOP.
            let ask_keyframe = !was_started
                && rec.gate.origin().is_none()
                && rec.streams[index].record.buffers_in == 1;
            let output = match verdict {
                MainVerdict::Record { recording_time } => {
                    Some(retime(buffer, recording_time, start, dts))
                }
                MainVerdict::Mask { recording_time } if video.is_some() => {
                    black_frame(&buffer, video.as_ref().unwrap())
                        .map(|black| retime(black, recording_time, start, None))
                }
                MainVerdict::Mask { recording_time } if pcm.is_some() => {
                    let silent = gst::Buffer::from_mut_slice(vec![0u8; buffer.size()]);
                    Some(retime(
                        copy_times(silent, &buffer),
                        recording_time,
                        start,
                        None,
                    ))
                }
                _ => None,
            };
            if let Some(out) = &output {
                let out_end = out.pts().unwrap().nseconds() + duration;
                rec.streams[index]
                    .record
                    .note_output(out.pts().unwrap().nseconds(), out_end);
            }
            self.after_transition(rec, transition);
            if ask_keyframe {
                self.request_keyframe(index);
            }
            return output;
        }

        // A secondary stream follows the main stream's decisions.
        let (pieces, recording_time, transition) = loop {
            let stream = &rec.streams[index];
            if !rec.running || stream.flushing {
                return None;
            }
            let span = if duration == 0 {
                start..start + 1
            } else {
                start..end
            };
            match rec.gate.secondary(span) {
                (SecondaryVerdict::Wait, _) => {
                    rec = self
                        .shared
                        .changed
                        .wait(rec)
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                }
                (
                    SecondaryVerdict::Decided {
                        pieces,
                        recording_time,
                    },
                    transition,
                ) => {
                    break (pieces, recording_time, transition);
                }
            }
        };
        let mode = rec.gate.mode();
        let output = recording_time.and_then(|recording_time| match pcm {
            Some(pcm) => {
                let map = buffer.map_readable().ok()?;
                let data = match mode {
                    gate::PauseMode::Cut => pcm.cut(&map, start, &pieces),
                    gate::PauseMode::Mask => pcm.mask(&map, start, &pieces),
                };
                if data.is_empty() {
                    return None;
                }
                let out_duration = pcm.duration_ns(data.len());
                let mut out = gst::Buffer::from_mut_slice(data);
                {
                    let out = out.get_mut().unwrap();
                    out.set_pts(gst::ClockTime::from_nseconds(recording_time));
                    out.set_duration(gst::ClockTime::from_nseconds(out_duration));
                }
                Some(out)
            }
            None => {
                let span = start..end.max(start + 1);
                if pcm::keep_whole(&span, &pieces) {
                    Some(retime(buffer, recording_time, start, dts))
                } else if let (gate::PauseMode::Mask, Some(video)) = (mode, &video) {
                    black_frame(&buffer, video)
                        .map(|black| retime(black, recording_time, start, None))
                } else {
                    None
                }
            }
        });
        if let Some(out) = &output {
            let out_start = out.pts().unwrap().nseconds();
            let out_end = out_start + out.duration().map_or(0, gst::ClockTime::nseconds);
            rec.streams[index].record.note_output(out_start, out_end);
        }
        self.after_transition(rec, transition);
        output
    }

    /// Records a pause/resume in the manifest and on the bus (after releasing the lock: a
    /// bus sync handler may call back into the element).
    fn after_transition(&self, mut rec: MutexGuard<'_, Recording>, transition: Option<Transition>) {
        let started = rec.manifest.started_utc.is_none() && rec.gate.origin().is_some();
        if started {
            rec.manifest.started_utc = Some(now_utc());
        }
        let Some(transition) = transition else {
            if started {
                let result = rec.write_manifest(false);
                drop(rec);
                self.report_manifest_error(result);
            }
            return;
        };
        let wall_time = now_utc();
        let action = match transition.kind {
            TransitionKind::Paused => "pause",
            TransitionKind::Resumed => "resume",
        };
        rec.manifest.events.push(ManifestEvent {
            action,
            running_time_ns: transition.running_time,
            recording_time_ns: transition.recording_time,
            requested_running_time_ns: transition.requested_running_time,
            wall_time_utc: wall_time.clone(),
            reason: transition.reason.clone(),
        });
        let result = rec.write_manifest(false);
        drop(rec);
        self.report_manifest_error(result);
        gst::info!(
            CAT,
            imp = self,
            "{action} at running time {} (recording time {}): {}",
            gst::ClockTime::from_nseconds(transition.running_time),
            gst::ClockTime::from_nseconds(transition.recording_time),
            transition.reason
        );
        let name = match transition.kind {
            TransitionKind::Paused => "recordmux-paused",
            TransitionKind::Resumed => "recordmux-resumed",
        };
        let structure = gst::Structure::builder(name)
            .field(
                "running-time",
                gst::ClockTime::from_nseconds(transition.running_time),
            )
            .field(
                "recording-time",
                gst::ClockTime::from_nseconds(transition.recording_time),
            )
            .field(
                "requested-running-time",
                gst::ClockTime::from_nseconds(transition.requested_running_time),
            )
            .field("wall-time", wall_time)
            .field("reason", transition.reason)
            .build();
        let _ = self.obj().post_message(
            gst::message::Element::builder(structure)
                .src(&*self.obj())
                .build(),
        );
    }

    fn report_manifest_error(&self, result: Result<(), String>) {
        if let Err(err) = result {
            gst::element_imp_error!(self, gst::ResourceError::Write, ("{err}"));
        }
    }
}

/// Corrects the Opus sample entry of mp4mux 1.22 in the header buffer (see `crate::isobmff`).
fn fix_opus_header(info: &mut gst::PadProbeInfo) {
    let Some(buffer) = info.buffer_mut() else {
        return;
    };
    let needs_fix = buffer
        .map_readable()
        .is_ok_and(|map| map.windows(4).any(|w| w == b"dOps"));
    if needs_fix && let Ok(mut map) = buffer.make_mut().map_writable() {
        crate::isobmff::fix_opus_specific_box(&mut map);
    }
}

/// Applies the settings the muxer takes (again at each start: they may have changed).
fn configure_muxer(muxer: &gst::Element, settings: &Settings) {
    match settings.container {
        Container::Mp4 => {
            muxer.set_property("fragment-duration", settings.fragment_duration_ms);
            // Written front to back, never seeking back: it goes into an encrypting sink.
            muxer.set_property("streamable", true);
        }
        Container::Matroska | Container::Webm => {
            muxer.set_property("streamable", true);
            muxer.set_property(
                "min-cluster-duration",
                settings.fragment_duration_ms as i64 * 1_000_000,
            );
        }
    }
}

/// What a request pad takes, best first: raw in the branch's own format (no conversion),
/// then the formats recorded without re-encoding, then those decoded.
fn preferred_input_caps(kind: Kind) -> gst::Caps {
    let mut caps = match kind {
        Kind::Video => gst::Caps::builder("video/x-raw")
            .field("format", "I420")
            .build(),
        Kind::Audio => gst::Caps::builder("audio/x-raw")
            .field("format", "S16LE")
            .field("layout", "interleaved")
            .build(),
    };
    let template = RecordMux::pad_templates()
        .iter()
        .find(|template| template.name_template() == format!("{}_%u", kind.name()))
        .expect("pad template")
        .caps()
        .clone();
    caps.merge(template);
    caps
}

/// Finds the best decoder for caps the container cannot hold.
fn find_decoder(caps: &gst::Caps) -> Result<gst::Element, String> {
    let mut factories: Vec<gst::ElementFactory> = gst::ElementFactory::factories_with_type(
        gst::ElementFactoryType::DECODER,
        gst::Rank::MARGINAL,
    )
    .into_iter()
    .filter(|factory| factory.can_sink_all_caps(caps))
    .collect();
    factories.sort_by_key(|factory| std::cmp::Reverse(factory.rank()));
    let factory = factories
        .first()
        .ok_or_else(|| format!("no decoder for {caps} (the container cannot hold it as it is)"))?;
    factory.create().build().map_err(|err| err.to_string())
}

fn copy_times(mut out: gst::Buffer, from: &gst::Buffer) -> gst::Buffer {
    {
        let out = out.get_mut().unwrap();
        out.set_pts(from.pts());
        out.set_duration(from.duration());
    }
    out
}

/// Puts `buffer` at `recording_time`, moving its DTS by the same amount.
fn retime(
    mut buffer: gst::Buffer,
    recording_time: u64,
    start: u64,
    dts: Option<u64>,
) -> gst::Buffer {
    let buffer_mut = buffer.make_mut();
    buffer_mut.set_pts(gst::ClockTime::from_nseconds(recording_time));
    buffer_mut.set_dts(
        dts.map(|dts| gst::ClockTime::from_nseconds((dts + recording_time).saturating_sub(start))),
    );
    buffer
}

/// A black frame like `buffer` (the raw branch is locked to I420).
fn black_frame(buffer: &gst::Buffer, info: &gst_video::VideoInfo) -> Option<gst::Buffer> {
    let black = copy_times(gst::Buffer::with_size(info.size()).ok()?, buffer);
    let mut frame = gst_video::VideoFrame::from_buffer_writable(black, info).ok()?;
    let [y, u, v, _] = frame.planes_data_mut();
    pcm::fill_black_i420([y, u, v]);
    Some(frame.into_buffer())
}

impl ObjectImpl for RecordMux {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let string = |name: &str, nick: &str, blurb: &str| {
                glib::ParamSpecString::builder(name)
                    .nick(nick)
                    .blurb(blurb)
                    .mutable_ready()
                    .build()
            };
            vec![
                glib::ParamSpecBoolean::builder("recording")
                    .nick("Recording")
                    .blurb("Set false to pause (PCI: card data being spoken) and true to resume; all streams switch at the running time of the request (live pipelines: media captured from then on; otherwise the next video frame); encoded video resumes on a keyframe, which is requested upstream")
                    .default_value(true)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("pause-mode", PauseMode::Cut)
                    .nick("Pause mode")
                    .blurb("What happens to paused media: cut it out (no gap) or mask it (black video, silence; the timeline matches the call). Encoded input cannot be blanked without re-encoding: in mask mode its paused packets are left out, timestamps keep the gap")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("container", Container::Mp4)
                    .nick("Container")
                    .blurb("Output container, always written front to back so a crash leaves a playable file: fragmented MP4, Matroska or WebM")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("fragment-duration")
                    .nick("Fragment duration")
                    .blurb("Milliseconds per MP4 fragment / Matroska cluster: at most this much is lost in a crash")
                    .minimum(100)
                    .maximum(60_000)
                    .default_value(1000)
                    .mutable_ready()
                    .build(),
                string("video-encoder", "Video encoder", "gst-launch description of the encoder for raw video (default: x264enc tune=zerolatency ..., vp8enc for WebM)"),
                string("audio-encoder", "Audio encoder", "gst-launch description of the encoder for raw audio (default: opusenc)"),
                string("call-id", "Call ID", "Call identifier, written to the container tags and the manifest"),
                string("agent-id", "Agent ID", "Agent identifier, written to the container tags and the manifest"),
                string("customer-reference", "Customer reference", "Customer or case reference, written to the container tags and the manifest"),
                string("direction", "Direction", "Call direction (e.g. inbound, outbound), written to the container tags and the manifest"),
                string("queue", "Queue", "Queue or skill group, written to the container tags and the manifest"),
                glib::ParamSpecBoxed::builder::<gst::Structure>("extra-tags")
                    .nick("Extra tags")
                    .blurb("Free tags as a structure, e.g. \"tags,campaign=spring,language=de\"; written to the container tags and the manifest")
                    .mutable_ready()
                    .build(),
                string("manifest-location", "Manifest location", "Path of the JSON manifest (pauses, streams, SHA-256 of the output), rewritten atomically at start, at every pause/resume and at EOS; unset: only posted as a 'recordmux-manifest' element message at EOS"),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn signals() -> &'static [glib::subclass::Signal] {
        static SIGNALS: LazyLock<Vec<glib::subclass::Signal>> = LazyLock::new(|| {
            let signal = |name: &'static str, recording: bool| {
                glib::subclass::Signal::builder(name)
                    .param_types([String::static_type()])
                    .action()
                    .class_handler(move |args| {
                        let element = args[0].get::<super::RecordMux>().expect("signal emitter");
                        let reason = args[1]
                            .get::<Option<String>>()
                            .ok()
                            .flatten()
                            .unwrap_or_default();
                        element.imp().request(recording, &reason);
                        None
                    })
                    .build()
            };
            vec![signal("pause", false), signal("resume", true)]
        });
        SIGNALS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        if pspec.name() == "recording" {
            self.request(
                value.get().expect("type checked upstream"),
                "recording property",
            );
            return;
        }
        let mut settings = lock(&self.settings);
        let string = || {
            value
                .get::<Option<String>>()
                .expect("type checked upstream")
        };
        match pspec.name() {
            "pause-mode" => settings.pause_mode = value.get().expect("type checked upstream"),
            "container" => {
                if lock(&self.pads).muxer.is_some() {
                    gst::warning!(CAT, imp = self, "container cannot change once pads exist");
                } else {
                    settings.container = value.get().expect("type checked upstream");
                }
            }
            "fragment-duration" => {
                settings.fragment_duration_ms = value.get().expect("type checked upstream")
            }
            "video-encoder" => settings.video_encoder = string(),
            "audio-encoder" => settings.audio_encoder = string(),
            "call-id" => settings.call_id = string(),
            "agent-id" => settings.agent_id = string(),
            "customer-reference" => settings.customer_reference = string(),
            "direction" => settings.direction = string(),
            "queue" => settings.queue = string(),
            "extra-tags" => settings.extra_tags = value.get().expect("type checked upstream"),
            "manifest-location" => settings.manifest_location = string().map(PathBuf::from),
            other => unreachable!("unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let settings = lock(&self.settings);
        match pspec.name() {
            "recording" => lock(&self.want_recording).to_value(),
            "pause-mode" => settings.pause_mode.to_value(),
            "container" => settings.container.to_value(),
            "fragment-duration" => settings.fragment_duration_ms.to_value(),
            "video-encoder" => settings.video_encoder.to_value(),
            "audio-encoder" => settings.audio_encoder.to_value(),
            "call-id" => settings.call_id.to_value(),
            "agent-id" => settings.agent_id.to_value(),
            "customer-reference" => settings.customer_reference.to_value(),
            "direction" => settings.direction.to_value(),
            "queue" => settings.queue.to_value(),
            "extra-tags" => settings.extra_tags.to_value(),
            "manifest-location" => settings
                .manifest_location
                .as_ref()
                .map(|p| p.display().to_string())
                .to_value(),
            other => unreachable!("unknown property {other}"),
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        self.obj().add_pad(&self.srcpad).unwrap();
    }
}

impl GstObjectImpl for RecordMux {}

impl ElementImpl for RecordMux {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Call recording muxer",
                "Codec/Muxer",
                "Records audio+video calls into fragmented MP4 or Matroska with PCI pause/resume (cut or mask), A/V sync, call metadata and a JSON manifest",
                "gst-vcc developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let video = gst::Caps::builder_full()
                .structure(gst::Structure::new_empty("video/x-raw"))
                .structure(gst::Structure::new_empty("video/x-h264"))
                .structure(gst::Structure::new_empty("video/x-h265"))
                .structure(gst::Structure::new_empty("video/x-vp8"))
                .structure(gst::Structure::new_empty("video/x-vp9"))
                .build();
            let audio = gst::Caps::builder_full()
                .structure(gst::Structure::new_empty("audio/x-raw"))
                .structure(gst::Structure::new_empty("audio/x-opus"))
                .structure(
                    gst::Structure::builder("audio/mpeg")
                        .field("mpegversion", 4i32)
                        .build(),
                )
                .structure(gst::Structure::new_empty("audio/x-mulaw"))
                .structure(gst::Structure::new_empty("audio/x-alaw"))
                .build();
            let src = gst::Caps::builder_full()
                .structure(
                    gst::Structure::builder("video/quicktime")
                        .field("variant", "iso")
                        .build(),
                )
                .structure(gst::Structure::new_empty("video/x-matroska"))
                .structure(gst::Structure::new_empty("video/webm"))
                .build();
            vec![
                gst::PadTemplate::new(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &src,
                )
                .unwrap(),
                gst::PadTemplate::new(
                    "video_%u",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Request,
                    &video,
                )
                .unwrap(),
                gst::PadTemplate::new(
                    "audio_%u",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Request,
                    &audio,
                )
                .unwrap(),
            ]
        });
        TEMPLATES.as_ref()
    }

    fn request_new_pad(
        &self,
        templ: &gst::PadTemplate,
        _name: Option<&str>,
        _caps: Option<&gst::Caps>,
    ) -> Option<gst::Pad> {
        let kind = match templ.name_template().to_string().as_str() {
            "video_%u" => Kind::Video,
            "audio_%u" => Kind::Audio,
            _ => return None,
        };
        let mut pads = lock(&self.pads);
        let muxer = match self.ensure_muxer(&mut pads) {
            Ok(muxer) => muxer,
            Err(err) => {
                gst::element_imp_error!(self, gst::CoreError::MissingPlugin, ("{err}"));
                return None;
            }
        };
        let name = match kind {
            Kind::Video => {
                pads.next_video += 1;
                format!("video_{}", pads.next_video - 1)
            }
            Kind::Audio => {
                pads.next_audio += 1;
                format!("audio_{}", pads.next_audio - 1)
            }
        };
        let mux_pad = muxer.request_pad_simple(&format!("{}_%u", kind.name()))?;
        let ghost = gst::GhostPad::builder_from_template(templ)
            .name(name.as_str())
            .build();
        let index = {
            let mut rec = lock(&self.shared.recording);
            rec.streams.push(StreamState {
                kind,
                handling: None,
                segment: None,
                pcm: None,
                video: None,
                caps_locked: false,
                pad_caps: None,
                flushing: false,
                record: StreamRecord {
                    pad: name.clone(),
                    kind: kind.name(),
                    ..Default::default()
                },
            });
            rec.streams.len() - 1
        };
        let element = self.obj().downgrade();
        ghost.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
            let Some(gst::PadProbeData::Event(event)) = &info.data else {
                return gst::PadProbeReturn::Ok;
            };
            let gst::EventView::Caps(caps) = event.view() else {
                return gst::PadProbeReturn::Ok;
            };
            let Some(element) = element.upgrade() else {
                return gst::PadProbeReturn::Ok;
            };
            element.imp().on_input_caps(index, kind, caps.caps())
        });
        // Until the branch exists (at the first caps) nothing downstream answers caps queries:
        // say what the branch takes best, so upstream does not pick an odd raw format.
        ghost.add_probe(gst::PadProbeType::QUERY_DOWNSTREAM, move |pad, info| {
            let Some(query) = info.query_mut() else {
                return gst::PadProbeReturn::Ok;
            };
            let has_target = pad
                .downcast_ref::<gst::GhostPad>()
                .is_some_and(|ghost| ghost.target().is_some());
            if has_target {
                return gst::PadProbeReturn::Ok;
            }
            let preferred = preferred_input_caps(kind);
            match query.view_mut() {
                gst::QueryViewMut::Caps(caps) => {
                    let result = match caps.filter() {
                        Some(filter) => {
                            filter.intersect_with_mode(&preferred, gst::CapsIntersectMode::First)
                        }
                        None => preferred,
                    };
                    caps.set_result(&result);
                    gst::PadProbeReturn::Handled
                }
                gst::QueryViewMut::AcceptCaps(accept) => {
                    let accepted = accept.caps().can_intersect(&preferred);
                    accept.set_result(accepted);
                    gst::PadProbeReturn::Handled
                }
                _ => gst::PadProbeReturn::Ok,
            }
        });
        pads.streams.push(StreamPad {
            ghost: ghost.clone(),
            mux_pad,
            elements: Vec::new(),
            index,
        });
        drop(pads);
        ghost.set_active(true).ok();
        self.obj().add_pad(&ghost).ok()?;
        Some(ghost.upcast())
    }

    fn release_pad(&self, pad: &gst::Pad) {
        let stream = {
            let mut pads = lock(&self.pads);
            let Some(position) = pads
                .streams
                .iter()
                .position(|s| s.ghost.upcast_ref::<gst::Pad>() == pad)
            else {
                return;
            };
            pads.streams.remove(position)
        };
        let muxer = lock(&self.pads).muxer.clone();
        for element in &stream.elements {
            let _ = element.set_state(gst::State::Null);
            let _ = self.obj().remove(element);
        }
        if let Some(muxer) = muxer {
            muxer.release_request_pad(&stream.mux_pad);
        }
        {
            let mut rec = lock(&self.shared.recording);
            if rec.main == Some(stream.index) {
                rec.gate.main_eos();
            }
            self.shared.changed.notify_all();
        }
        let _ = stream.ghost.set_active(false);
        let _ = self.obj().remove_pad(&stream.ghost);
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        match transition {
            gst::StateChange::NullToReady => {
                let mut pads = lock(&self.pads);
                if let Err(err) = self.ensure_muxer(&mut pads) {
                    gst::element_imp_error!(self, gst::CoreError::MissingPlugin, ("{err}"));
                    return Err(gst::StateChangeError);
                }
            }
            gst::StateChange::ReadyToPaused => {
                let settings = lock(&self.settings).clone();
                let want = *lock(&self.want_recording);
                {
                    let mut rec = lock(&self.shared.recording);
                    let streams = std::mem::take(&mut rec.streams);
                    *rec = Recording::new(&settings, want);
                    rec.streams = streams
                        .into_iter()
                        .map(|s| StreamState {
                            segment: None,
                            flushing: false,
                            record: s.record.restarted(),
                            ..s
                        })
                        .collect();
                }
                if let Some(muxer) = lock(&self.pads).muxer.clone() {
                    configure_muxer(&muxer, &settings);
                }
                self.set_container_tags(&settings);
            }
            gst::StateChange::PausedToReady => {
                lock(&self.shared.recording).running = false;
                self.shared.changed.notify_all();
            }
            _ => (),
        }
        self.parent_change_state(transition)
    }
}

impl RecordMux {
    fn on_input_caps(&self, index: usize, kind: Kind, caps: &gst::CapsRef) -> gst::PadProbeReturn {
        {
            let mut rec = lock(&self.shared.recording);
            let stream = &mut rec.streams[index];
            if let Some(previous) = &stream.pad_caps {
                if previous.as_ref() != caps {
                    stream.record.caps_changes += 1;
                    stream.record.input_caps = caps.to_string();
                    stream.pad_caps = Some(caps.to_owned());
                    gst::info!(CAT, imp = self, "stream {index} caps change: {caps}");
                }
                return gst::PadProbeReturn::Ok;
            }
            stream.pad_caps = Some(caps.to_owned());
        }
        match self.build_branch(index, kind, &caps.to_owned()) {
            Ok(()) => gst::PadProbeReturn::Ok,
            Err(err) => {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Format,
                    (
                        "recordmux cannot record {} input {caps}: {err}",
                        kind.name()
                    )
                );
                gst::PadProbeReturn::Drop
            }
        }
    }

    /// Writes the call metadata as container tags (title, comment with the JSON metadata).
    fn set_container_tags(&self, settings: &Settings) {
        let Some(muxer) = lock(&self.pads).muxer.clone() else {
            return;
        };
        let Some(setter) = muxer.dynamic_cast_ref::<gst::TagSetter>() else {
            return;
        };
        let metadata = settings.metadata();
        let mut tags = gst::TagList::new();
        {
            let tags = tags.get_mut().unwrap();
            if let Some(call_id) = &metadata.call_id {
                tags.add::<gst::tags::Title>(
                    &format!("call {call_id}").as_str(),
                    gst::TagMergeMode::Replace,
                );
            }
            if let Some(agent_id) = &metadata.agent_id {
                tags.add::<gst::tags::Artist>(&agent_id.as_str(), gst::TagMergeMode::Replace);
            }
            let json = serde_json::to_string(&metadata).unwrap_or_default();
            tags.add::<gst::tags::Comment>(&json.as_str(), gst::TagMergeMode::Replace);
            tags.add::<gst::tags::Description>(&json.as_str(), gst::TagMergeMode::Replace);
        }
        setter.merge_tags(&tags, gst::TagMergeMode::Replace);
    }
}

impl BinImpl for RecordMux {}
