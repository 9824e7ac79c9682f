//! GStreamer glue for `recordmux`: a bin with request pads `video_%u` / `audio_%u` and one
//! `src` pad. Each input gets a branch (`branch.rs`) built when its first caps arrive; its
//! buffers go through the gate path (`gate_path.rs`) into the muxer, whose output goes
//! through the output side (`output.rs`) to the sink.
//!
//! Locks, in the order they may be taken:
//! 1. `settings`: take a snapshot ([`RecordMux::settings_snapshot`]) and release it before
//!    taking `state`; never take `settings` while holding `state`.
//! 2. `state` (with the condition variable `changed`): everything the streaming threads
//!    share. While it is held, no GStreamer call that can call back into the element is
//!    made (posting messages, adding elements, state changes, pushing events): decide under
//!    the lock, act after it.
//!
//! `switching` (serialises preparing a segment, `segments.rs`) is taken before `state`,
//! never while holding it. `muxer` and `manifest_written` are leaf locks: taken with no
//! other lock held, and nothing else is locked while they are held.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Condvar, LazyLock, Mutex, MutexGuard};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use super::CAT;
use super::branch::{Branch, Kind, Recipe, Tail};
use super::settings::{
    Container, MAX_SEGMENT_DURATION, MIN_SEGMENT_BYTES, MIN_SEGMENT_DURATION, PauseMode, Settings,
    VideoPreset,
};
use super::state::{LiveClock, State, Stream};
use crate::manifest::{self, bounded};

pub struct RecordMux {
    settings: Mutex<Settings>,
    state: Mutex<State>,
    /// Signalled whenever the timeline moves, a stream ends, flushes or goes, or on shutdown.
    pub(super) changed: Condvar,
    /// The muxer whose output the source pad carries.
    pub(super) muxer: Mutex<Option<gst::Element>>,
    muxer_created: AtomicBool,
    /// Held while the next segment is prepared.
    pub(super) switching: Mutex<()>,
    /// Sequence number of the manifest snapshot written last.
    pub(super) manifest_written: Mutex<u64>,
    pub(super) manifest_error_posted: AtomicBool,
    /// MP4 header buffers still to check for the Opus sample-entry fix.
    pub(super) header_buffers_left: AtomicU32,
    pub(super) srcpad: gst::GhostPad,
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
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
        RecordMux {
            state: Mutex::new(State::new(&settings, true)),
            settings: Mutex::new(settings),
            changed: Condvar::new(),
            muxer: Mutex::new(None),
            muxer_created: AtomicBool::new(false),
            switching: Mutex::new(()),
            manifest_written: Mutex::new(0),
            manifest_error_posted: AtomicBool::new(false),
            header_buffers_left: AtomicU32::new(0),
            srcpad: Self::new_src_pad(&klass.pad_template("src").unwrap()),
        }
    }
}

impl RecordMux {
    pub(super) fn lock_state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    pub(super) fn settings_snapshot(&self) -> Settings {
        lock(&self.settings).clone()
    }

    /// Pauses (`false`) or resumes (`true`): in a live pipeline from the clock's running time
    /// now, otherwise from the main stream's next buffer. Every request is applied, in order.
    fn request(&self, recording: bool, reason: &str) {
        let (reason, cut) = bounded(reason, manifest::MAX_REASON_BYTES);
        if cut {
            gst::element_imp_warning!(
                self,
                gst::ResourceError::Settings,
                (
                    "pause/resume reason cut to {} bytes",
                    manifest::MAX_REASON_BYTES
                )
            );
        }
        self.learn_liveness_upstream();
        let mut state = self.lock_state();
        let at = state.now();
        let queued = state.gate.request(recording, &reason, at);
        self.changed.notify_all();
        // Encoded video resumes on a keyframe: ask for one now rather than wait a GOP.
        let keyframe_pads: Vec<gst::GhostPad> = state
            .streams
            .iter()
            .filter(|s| queued && recording && s.is_encoded_video())
            .map(|s| s.ghost.clone())
            .collect();
        drop(state);
        gst::info!(
            CAT,
            imp = self,
            "requested recording={recording} at {} ({reason}){}",
            at.map(gst::ClockTime::from_nseconds).display(),
            if queued { "" } else { ": already so, ignored" }
        );
        for pad in keyframe_pads {
            super::gate_path::request_keyframe(&pad);
        }
    }

    /// Pauses (`false`) or resumes (`true`) the stream of pad `name` alone: its media is
    /// masked from the request's running time (live: the clock; otherwise where the main
    /// stream is, as for the recording's own pauses); the recording's timeline and the other
    /// streams go on. Returns false for an unknown pad.
    pub(super) fn request_stream(&self, name: &str, recording: bool, reason: &str) -> bool {
        let (reason, _) = bounded(reason, manifest::MAX_REASON_BYTES);
        self.learn_liveness_upstream();
        let mut state = self.lock_state();
        let main_position = state
            .main
            .and_then(|main| state.stream(main))
            .map(|main| main.position);
        let at = state.now().or(main_position);
        let Some(stream) = state
            .streams
            .iter_mut()
            .find(|stream| stream.ghost.name() == name)
        else {
            drop(state);
            gst::warning!(CAT, imp = self, "no pad '{name}' to pause or resume");
            return false;
        };
        let queued = stream.mask.request(!recording, &reason, at);
        drop(state);
        gst::info!(
            CAT,
            imp = self,
            "requested {name} recording={recording} at {} ({reason}){}",
            at.map(gst::ClockTime::from_nseconds).display(),
            if queued { "" } else { ": already so, ignored" }
        );
        true
    }

    /// What was last asked of the stream of pad `name` (the pad's `recording` property).
    pub(super) fn stream_recording(&self, name: &str) -> Option<bool> {
        self.lock_state()
            .streams
            .iter()
            .find(|stream| stream.ghost.name() == name)
            .map(|stream| !stream.mask.wants_masked())
    }

    /// Finds out whether the pipeline is live (buffer running times are capture times) by a
    /// latency query upstream of stream `id`, unless known. Called with no lock held.
    pub(super) fn learn_liveness(&self, id: u32) {
        let ghost = {
            let state = self.lock_state();
            if state.live.is_some() {
                return;
            }
            state.stream(id).map(|s| s.ghost.clone())
        };
        if let Some(ghost) = ghost {
            self.query_liveness(&[ghost.upcast()]);
        }
    }

    fn learn_liveness_upstream(&self) {
        if self.lock_state().live.is_none() {
            self.query_liveness(&self.obj().sink_pads());
        }
    }

    fn query_liveness(&self, pads: &[gst::Pad]) {
        let mut answered = None;
        for pad in pads {
            let mut query = gst::query::Latency::new();
            if pad.peer_query(&mut query) {
                answered = Some(answered.unwrap_or(false) || query.result().0);
            }
        }
        if let Some(live) = answered {
            gst::debug!(CAT, imp = self, "pipeline is live: {live}");
            self.lock_state().live = Some(live);
        }
    }

    /// A muxer for the settings, configured and tagged, not yet added.
    pub(super) fn make_muxer(
        &self,
        settings: &Settings,
        name: &str,
    ) -> Result<gst::Element, glib::BoolError> {
        let factory = settings.container.muxer_factory();
        let muxer = gst::ElementFactory::make(factory)
            .name(name)
            .build()
            .map_err(|_| {
                glib::bool_error!(
                    "element '{factory}' is missing (install gstreamer1.0-plugins-good)"
                )
            })?;
        configure_muxer(&muxer, settings);
        set_container_tags(&muxer, settings);
        Ok(muxer)
    }

    /// The muxer, created on first use.
    fn ensure_muxer(&self) -> Result<gst::Element, glib::BoolError> {
        let settings = self.settings_snapshot();
        let muxer = {
            let mut slot = lock(&self.muxer);
            if let Some(muxer) = &*slot {
                return Ok(muxer.clone());
            }
            let muxer = self.make_muxer(&settings, "muxer")?;
            *slot = Some(muxer.clone());
            self.muxer_created.store(true, Ordering::Relaxed);
            muxer
        };
        self.obj().add(&muxer)?;
        self.srcpad
            .set_target(Some(&muxer.static_pad("src").unwrap()))?;
        muxer.sync_state_with_parent()?;
        Ok(muxer)
    }

    /// Builds the branch of stream `id` at its first caps; later caps are counted.
    /// `Err`: the stream cannot be recorded (an error was posted) and its caps are dropped.
    fn on_input_caps(&self, id: u32, kind: Kind, caps: &gst::CapsRef) -> Result<(), ()> {
        {
            let mut state = self.lock_state();
            let Some(stream) = state.stream_mut(id) else {
                return Ok(());
            };
            if let Some(previous) = &stream.pad_caps {
                if previous.as_ref() != caps {
                    stream.record.caps_changes += 1;
                    stream.record.input_caps = caps.to_string();
                    stream.pad_caps = Some(caps.to_owned());
                    gst::info!(CAT, imp = self, "stream {id} caps change: {caps}");
                }
                return Ok(());
            }
            stream.pad_caps = Some(caps.to_owned());
        }
        match self.build_branch(id, kind, &caps.to_owned()) {
            Ok(()) => Ok(()),
            Err(err) => {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Format,
                    (
                        "recordmux cannot record {} input {caps}: {err}",
                        kind.name()
                    )
                );
                Err(())
            }
        }
    }

    fn build_branch(&self, id: u32, kind: Kind, caps: &gst::Caps) -> Result<(), String> {
        let settings = self.settings_snapshot();
        let recipe = Recipe::for_caps(kind, caps, &settings)?;
        let branch = Branch::build(&recipe)?;
        let tail = Tail::build(&recipe)?;
        let (ghost, mux_pad) = {
            let state = self.lock_state();
            let stream = state.stream(id).ok_or("pad was released")?;
            (stream.ghost.clone(), stream.mux_pad.clone())
        };
        let bin = self.obj();
        if let Some(detector) = branch.dtmf_chain.last() {
            // Named for its stream (before it has a parent: only then can it be named).
            detector.set_property("name", format!("recordmux-dtmf-{id}"));
        }
        for element in branch
            .elements
            .iter()
            .chain(&tail.elements)
            .chain(&branch.dtmf_chain)
        {
            bin.add(element).map_err(|err| err.to_string())?;
        }
        gst::Element::link_many(&branch.elements)
            .map_err(|err| format!("cannot link branch: {err}"))?;
        if let Some(first) = branch.dtmf_chain.first() {
            let tee = branch
                .elements
                .iter()
                .find(|e| e.factory().is_some_and(|f| f.name() == "tee"))
                .ok_or("no tee for the DTMF detector")?;
            tee.link(first)
                .map_err(|err| format!("cannot link the DTMF detector: {err}"))?;
            gst::Element::link_many(&branch.dtmf_chain)
                .map_err(|err| format!("cannot link the DTMF detector: {err}"))?;
            let detector = branch.dtmf_chain.last().expect("checked above");
            self.install_tone_tracker(id, detector);
            if let Some(hold_back) = branch.gate_element.static_pad("sink") {
                self.answer_serialized_queries(&hold_back);
            }
        }
        let head_exit = branch.exit();
        let branch_dtmf_chain_empty = branch.dtmf_chain.is_empty();
        let refused = |err: gst::PadLinkError| {
            format!(
                "the {} muxer refuses this stream: {err:?}",
                settings.container.nick()
            )
        };
        match (tail.entry(), tail.exit()) {
            (Some(entry), Some(exit)) => {
                head_exit
                    .link(&entry)
                    .map_err(|err| format!("cannot link the encoder: {err:?}"))?;
                exit.link(&mux_pad).map_err(refused)?;
            }
            _ => {
                head_exit.link(&mux_pad).map_err(refused)?;
            }
        }
        for element in tail
            .elements
            .iter()
            .chain(&branch.dtmf_chain)
            .chain(&branch.elements)
            .rev()
        {
            element
                .sync_state_with_parent()
                .map_err(|err| err.to_string())?;
        }
        self.install_gate(id, &branch.gate_element, &branch.caps_filter);
        self.install_caps_guard(id, &mux_pad);
        self.install_switch_probe(id, &head_exit);
        ghost
            .set_target(Some(&branch.elements[0].static_pad("sink").unwrap()))
            .map_err(|err| err.to_string())?;
        {
            let mut state = self.lock_state();
            if let Some(stream) = state.stream_mut(id) {
                stream.handling = Some(recipe.handling);
                stream.record.handling = recipe.handling.name();
                stream.record.input_caps = caps.to_string();
                stream.elements = branch.elements;
                stream.elements.extend(branch.dtmf_chain);
                stream.tail = tail.elements;
                stream.head_exit = Some(head_exit);
                stream.recipe = Some(recipe.clone());
                // A fixed size is kept whatever the input: nothing to lock to.
                stream.caps_locked |= recipe.has_fixed_size();
                stream.dtmf_enabled = !branch_dtmf_chain_empty;
            }
        }
        gst::info!(
            CAT,
            imp = self,
            "stream {id} ({}): {} {caps}",
            kind.name(),
            recipe.handling.name()
        );
        Ok(())
    }

    /// Ends stream `id` that never had media: it counts as ended at the gate and its muxer
    /// pad gets EOS (after the stream-start every stream begins with).
    fn end_stream_without_media(&self, id: u32) {
        let mux_pad = {
            let mut state = self.lock_state();
            let main = state.main_stream() == Some(id);
            let Some(stream) = state.stream_mut(id) else {
                return;
            };
            stream.ended = true;
            stream.ended_at_head = true;
            let mux_pad = stream.mux_pad.clone();
            if main {
                state.gate.main_eos();
            }
            mux_pad
        };
        self.changed.notify_all();
        gst::info!(CAT, imp = self, "stream {id} ended before any media");
        end_mux_pad(&mux_pad, id);
    }

    /// Keeps the muxer on its first caps: later changes (new codec data after a resolution
    /// change) are carried in band instead; the muxer would write a broken file otherwise.
    pub(super) fn install_caps_guard(&self, id: u32, mux_pad: &gst::Pad) {
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
                    let mut state = element.imp().lock_state();
                    if let Some(stream) = state.stream_mut(id) {
                        stream.record.recorded_codec = codec.unwrap_or_default();
                    }
                }
                return gst::PadProbeReturn::Ok;
            };
            if current.as_ref() == caps.caps() {
                return gst::PadProbeReturn::Ok;
            }
            gst::debug!(CAT, obj = pad, "keeping {current}, not {}", caps.caps());
            discard(info)
        });
    }

    /// A metadata text as set by the integrator, bounded with a warning.
    fn bounded_setting(&self, name: &str, value: Option<String>) -> Option<String> {
        value.map(|text| {
            let (text, cut) = bounded(&text, manifest::MAX_FIELD_BYTES);
            if cut {
                gst::element_imp_warning!(
                    self,
                    gst::ResourceError::Settings,
                    (
                        "{name} cut to {} bytes for the manifest and the container tags",
                        manifest::MAX_FIELD_BYTES
                    )
                );
            }
            text
        })
    }
}

/// Writes the call metadata as container tags (title, comment with the JSON metadata).
fn set_container_tags(muxer: &gst::Element, settings: &Settings) {
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

/// Ends a muxer pad with EOS, after the stream-start and segment every stream begins with if
/// it never had them.
fn end_mux_pad(mux_pad: &gst::Pad, id: u32) {
    if mux_pad.sticky_event::<gst::event::StreamStart>(0).is_none() {
        mux_pad.send_event(gst::event::StreamStart::new(&format!(
            "recordmux-{id}-empty"
        )));
        mux_pad.send_event(gst::event::Segment::new(&gst::FormattedSegment::<
            gst::ClockTime,
        >::new()));
    }
    if mux_pad.sticky_event::<gst::event::Eos>(0).is_none() {
        mux_pad.send_event(gst::event::Eos::new());
    }
}

/// Sets `buffer`'s DTS to its PTS (if they differ).
fn decode_at_presentation(buffer: &mut gst::Buffer) {
    if buffer.dts().is_some() && buffer.dts() != buffer.pts() {
        let pts = buffer.pts();
        buffer.make_mut().set_dts(pts);
    }
}

/// Drops the event or buffer of a probe (taken and `Handled`: returning `Drop` for an event
/// makes GStreamer 1.22 unref it twice through gstreamer-rs).
fn discard(info: &mut gst::PadProbeInfo) -> gst::PadProbeReturn {
    info.data = None;
    gst::PadProbeReturn::Handled
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
                    .blurb("Set false to pause (PCI: card data being spoken) and true to resume. Every request is applied, in order: in a live pipeline at the clock's running time of the request (media captured from then on), however late the media arrives; otherwise at the main stream's next buffer. Encoded video resumes on a keyframe, which is requested upstream")
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
                    .blurb("Output container, always written front to back so a crash leaves a playable file: fragmented MP4, Matroska or WebM. Fixed once a pad was requested")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("fragment-duration")
                    .nick("Fragment duration")
                    .blurb("Milliseconds per MP4 fragment / Matroska cluster: at most this much is lost in a crash")
                    .minimum(100)
                    .maximum(60_000)
                    .default_value(super::settings::DEFAULT_FRAGMENT_DURATION_MS)
                    .mutable_ready()
                    .build(),
                string("video-encoder", "Video encoder", "gst-launch description of the encoder for raw video (default: x264enc tune=zerolatency ..., vp8enc for WebM)"),
                string("audio-encoder", "Audio encoder", "gst-launch description of the encoder for raw audio (default: opusenc)"),
                string("call-id", "Call ID", "Call identifier, written to the container tags and the manifest (at most 1024 bytes)"),
                string("agent-id", "Agent ID", "Agent identifier, written to the container tags and the manifest (at most 1024 bytes)"),
                string("customer-reference", "Customer reference", "Customer or case reference, written to the container tags and the manifest (at most 1024 bytes)"),
                string("direction", "Direction", "Call direction (e.g. inbound, outbound), written to the container tags and the manifest"),
                string("queue", "Queue", "Queue or skill group, written to the container tags and the manifest"),
                glib::ParamSpecBoxed::builder::<gst::Structure>("extra-tags")
                    .nick("Extra tags")
                    .blurb("Free tags as a structure, e.g. \"tags,campaign=spring,language=de\"; written to the container tags and the manifest (at most 64 tags of 1024 bytes)")
                    .mutable_ready()
                    .build(),
                string("manifest-location", "Manifest location", "Path of the JSON manifest (pauses, streams, SHA-256 of the output the sink accepted), rewritten atomically at start, at every pause/resume, every manifest-interval and at EOS; unset: only posted as a 'recordmux-manifest' element message at EOS"),
                glib::ParamSpecUInt::builder("manifest-interval")
                    .nick("Manifest interval")
                    .blurb("Milliseconds between rewrites of the manifest while recording, so that after a crash it says how much was recorded")
                    .minimum(200)
                    .maximum(60_000)
                    .default_value(super::settings::DEFAULT_MANIFEST_INTERVAL_MS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("video-preset", VideoPreset::Passthrough)
                    .nick("Video preset")
                    .blurb("Size and bitrate video is recorded at for the whole call: passthrough (encoded video as it comes, raw at its first size), sd (640x360, 800 kbit/s), hd (1280x720, 2000 kbit/s), custom (video-width x video-height at video-bitrate). With a preset, a call that starts small while the browser ramps up is still recorded at the preset's size (letterboxed), encoded video is decoded and encoded again")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("video-width")
                    .nick("Video width")
                    .blurb("Width of the custom video preset")
                    .minimum(16)
                    .maximum(7680)
                    .default_value(1280)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("video-height")
                    .nick("Video height")
                    .blurb("Height of the custom video preset")
                    .minimum(16)
                    .maximum(4320)
                    .default_value(720)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("video-bitrate")
                    .nick("Video bitrate")
                    .blurb("kbit/s of the custom video preset (with the default encoder)")
                    .minimum(16)
                    .maximum(50_000)
                    .default_value(2000)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("dtmf-mask")
                    .nick("DTMF mask")
                    .blurb("Mask in-band DTMF tones (a customer typing card digits on the keypad) in every audio stream: found by GStreamer's dtmfdetect and a tone tracker on the audio before it is recorded (which then waits for them), masked spans in the manifest; the digits are never recorded nor posted. Encoded audio is decoded for it")
                    .default_value(false)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt64::builder("max-segment-duration")
                    .nick("Maximum segment duration")
                    .blurb("Split a long call into files of at most this much call time (ns, 0 = one file), at the main stream's next keyframe; each file is complete and playable, with its own manifest chained to the previous one. Needs %d in the sink's location (encryptedfilesink, multifilesink next-file=key-unit-event) and in manifest-location. Clamped to 1 s..24 h")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt64::builder("max-segment-bytes")
                    .nick("Maximum segment bytes")
                    .blurb("Split into files of at most about this many bytes (0 = no limit; at least 64 KiB): the split comes at the main stream's next keyframe after the limit")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("main-stream-timeout")
                    .nick("Main stream timeout")
                    .blurb("Live pipelines: milliseconds (beyond the pipeline latency) the other streams wait for a late main stream (the first video: a muted camera, a stalled decoder) before they are recorded without it")
                    .minimum(100)
                    .maximum(60_000)
                    .default_value(super::settings::DEFAULT_MAIN_STREAM_TIMEOUT_MS)
                    .mutable_ready()
                    .build(),
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
            let stream_signal = |name: &'static str, recording: bool| {
                glib::subclass::Signal::builder(name)
                    .param_types([String::static_type(), String::static_type()])
                    .return_type::<bool>()
                    .action()
                    .class_handler(move |args| {
                        let element = args[0].get::<super::RecordMux>().expect("signal emitter");
                        let pad = args[1]
                            .get::<Option<String>>()
                            .ok()
                            .flatten()
                            .unwrap_or_default();
                        let reason = args[2]
                            .get::<Option<String>>()
                            .ok()
                            .flatten()
                            .unwrap_or_default();
                        Some(
                            element
                                .imp()
                                .request_stream(&pad, recording, &reason)
                                .to_value(),
                        )
                    })
                    .build()
            };
            vec![
                signal("pause", false),
                signal("resume", true),
                stream_signal("pause-stream", false),
                stream_signal("resume-stream", true),
            ]
        });
        SIGNALS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let string = || {
            value
                .get::<Option<String>>()
                .expect("type checked upstream")
                .filter(|s| !s.is_empty())
        };
        let name = pspec.name();
        if name == "recording" {
            self.request(
                value.get().expect("type checked upstream"),
                "recording property",
            );
            return;
        }
        // Bounded (and warned about) before the settings are locked.
        let text = match name {
            "call-id" | "agent-id" | "customer-reference" | "direction" | "queue" => {
                self.bounded_setting(name, string())
            }
            _ => None,
        };
        let mut settings = lock(&self.settings);
        match name {
            "pause-mode" => settings.pause_mode = value.get().expect("type checked upstream"),
            "container" => {
                if self.muxer_created.load(Ordering::Relaxed) {
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
            "call-id" => settings.call_id = text,
            "agent-id" => settings.agent_id = text,
            "customer-reference" => settings.customer_reference = text,
            "direction" => settings.direction = text,
            "queue" => settings.queue = text,
            "extra-tags" => {
                settings.extra_tags = value.get().expect("type checked upstream");
                if settings.tags_were_cut() {
                    drop(settings);
                    gst::element_imp_warning!(
                        self,
                        gst::ResourceError::Settings,
                        (
                            "extra-tags: only {} tags of at most {} bytes are kept",
                            manifest::MAX_TAGS,
                            manifest::MAX_FIELD_BYTES
                        )
                    );
                }
            }
            "manifest-location" => {
                settings.manifest_location = string().map(std::path::PathBuf::from)
            }
            "manifest-interval" => {
                settings.manifest_interval_ms = value.get().expect("type checked upstream")
            }
            "main-stream-timeout" => {
                settings.main_stream_timeout_ms = value.get().expect("type checked upstream")
            }
            "video-preset" => settings.video_preset = value.get().expect("type checked upstream"),
            "dtmf-mask" => settings.dtmf_mask = value.get().expect("type checked upstream"),
            "video-width" => settings.video_width = value.get().expect("type checked upstream"),
            "video-height" => settings.video_height = value.get().expect("type checked upstream"),
            "video-bitrate" => settings.video_kbps = value.get().expect("type checked upstream"),
            "max-segment-duration" => {
                let wanted: u64 = value.get().expect("type checked upstream");
                let clamped = match wanted {
                    0 => 0,
                    w => w.clamp(MIN_SEGMENT_DURATION, MAX_SEGMENT_DURATION),
                };
                settings.max_segment_duration = clamped;
                drop(settings);
                if clamped != wanted {
                    gst::element_imp_warning!(
                        self,
                        gst::ResourceError::Settings,
                        (
                            "max-segment-duration {:.3} s is outside 1 s..24 h: using {:.0} s",
                            wanted as f64 / 1e9,
                            clamped as f64 / 1e9
                        )
                    );
                }
            }
            "max-segment-bytes" => {
                let wanted: u64 = value.get().expect("type checked upstream");
                let clamped = match wanted {
                    0 => 0,
                    w => w.max(MIN_SEGMENT_BYTES),
                };
                settings.max_segment_bytes = clamped;
                drop(settings);
                if clamped != wanted {
                    gst::element_imp_warning!(
                        self,
                        gst::ResourceError::Settings,
                        ("max-segment-bytes {wanted} is too small for a file: using {clamped}")
                    );
                }
            }
            other => unreachable!("unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        if pspec.name() == "recording" {
            return self.lock_state().gate.wants_recording().to_value();
        }
        let settings = lock(&self.settings);
        match pspec.name() {
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
            "manifest-interval" => settings.manifest_interval_ms.to_value(),
            "main-stream-timeout" => settings.main_stream_timeout_ms.to_value(),
            "max-segment-duration" => settings.max_segment_duration.to_value(),
            "video-preset" => settings.video_preset.to_value(),
            "dtmf-mask" => settings.dtmf_mask.to_value(),
            "video-width" => settings.video_width.to_value(),
            "video-height" => settings.video_height.to_value(),
            "video-bitrate" => settings.video_kbps.to_value(),
            "max-segment-bytes" => settings.max_segment_bytes.to_value(),
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
                gst::PadTemplate::with_gtype(
                    "video_%u",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Request,
                    &video,
                    super::pad::RecordMuxPad::static_type(),
                )
                .unwrap(),
                gst::PadTemplate::with_gtype(
                    "audio_%u",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Request,
                    &audio,
                    super::pad::RecordMuxPad::static_type(),
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
        let muxer = match self.ensure_muxer() {
            Ok(muxer) => muxer,
            Err(err) => {
                gst::element_imp_error!(self, gst::CoreError::MissingPlugin, ("{err}"));
                return None;
            }
        };
        let mux_pad = muxer.request_pad_simple(&format!("{}_%u", kind.name()))?;
        let (id, name) = {
            let mut state = self.lock_state();
            let id = state.next_stream_id;
            state.next_stream_id += 1;
            let number = match kind {
                Kind::Video => &mut state.next_video,
                Kind::Audio => &mut state.next_audio,
            };
            *number += 1;
            (id, format!("{}_{}", kind.name(), *number - 1))
        };
        let ghost = gst::PadBuilder::<super::pad::RecordMuxPad>::from_template(templ)
            .name(name.as_str())
            .build()
            .upcast::<gst::GhostPad>();
        let element = self.obj().downgrade();
        ghost.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |pad, info| {
            let Some(gst::PadProbeData::Event(event)) = &info.data else {
                return gst::PadProbeReturn::Ok;
            };
            let Some(element) = element.upgrade() else {
                return gst::PadProbeReturn::Ok;
            };
            match event.view() {
                gst::EventView::Caps(caps) => {
                    match element.imp().on_input_caps(id, kind, caps.caps()) {
                        Ok(()) => gst::PadProbeReturn::Ok,
                        Err(()) => discard(info),
                    }
                }
                // EOS before any caps (a call that ended before its media came): there is
                // no branch to carry it, the stream ends at the muxer directly.
                gst::EventView::Eos(_)
                    if pad
                        .downcast_ref::<gst::GhostPad>()
                        .is_some_and(|ghost| ghost.target().is_none()) =>
                {
                    element.imp().end_stream_without_media(id);
                    discard(info)
                }
                _ => gst::PadProbeReturn::Ok,
            }
        });
        if kind == Kind::Audio {
            // Audio has no decode order: its DTS, when it has one, is the arrival time an RTP
            // jitter buffer stamped. Kept, it moved the parser's timestamps and became
            // composition offsets of up to 1.4 s (ten starved WebRTC calls): the audio out of
            // sync with the video and with holes in the file.
            ghost.add_probe(
                gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
                |_, info| {
                    match &mut info.data {
                        Some(gst::PadProbeData::Buffer(buffer)) => decode_at_presentation(buffer),
                        Some(gst::PadProbeData::BufferList(list)) => {
                            list.make_mut().foreach_mut(|mut buffer, _| {
                                decode_at_presentation(&mut buffer);
                                std::ops::ControlFlow::Continue(Some(buffer))
                            });
                        }
                        _ => (),
                    }
                    gst::PadProbeReturn::Ok
                },
            );
        }
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
        self.lock_state()
            .streams
            .push(Stream::new(id, kind, &name, ghost.clone(), mux_pad));
        ghost.set_active(true).ok();
        self.obj().add_pad(&ghost).ok()?;
        Some(ghost.upcast())
    }

    fn release_pad(&self, pad: &gst::Pad) {
        let stream = {
            let mut state = self.lock_state();
            let Some(position) = state
                .streams
                .iter()
                .position(|s| s.ghost.upcast_ref::<gst::Pad>() == pad)
            else {
                return;
            };
            let stream = state.streams.remove(position);
            if state.main == Some(stream.id) {
                state.gate.main_eos();
            }
            self.changed.notify_all();
            stream
        };
        for element in &stream.elements {
            let _ = element.set_state(gst::State::Null);
            let _ = self.obj().remove(element);
        }
        // The pad's own muxer: a stream that ended early keeps a pad on an older segment's.
        // A streaming muxer must not lose a pad (matroskamux 1.22 crashes): the stream ends
        // there with EOS and the pad goes when the muxer stops.
        if let Some(muxer) = stream.mux_pad.parent_element() {
            if muxer.current_state() > gst::State::Ready {
                end_mux_pad(&stream.mux_pad, stream.id);
                self.lock_state()
                    .retired_mux_pads
                    .push(stream.mux_pad.clone());
            } else {
                muxer.release_request_pad(&stream.mux_pad);
            }
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
                if let Err(err) = self.ensure_muxer() {
                    gst::element_imp_error!(self, gst::CoreError::MissingPlugin, ("{err}"));
                    return Err(gst::StateChangeError);
                }
            }
            gst::StateChange::ReadyToPaused => {
                let settings = self.settings_snapshot();
                {
                    let mut state = self.lock_state();
                    let want = state.gate.wants_recording();
                    state.restarted(&settings, want);
                }
                *lock(&self.manifest_written) = 0;
                self.manifest_error_posted.store(false, Ordering::Relaxed);
                let header_buffers = if settings.container == Container::Mp4 {
                    4
                } else {
                    0
                };
                self.header_buffers_left
                    .store(header_buffers, Ordering::Relaxed);
                if let Some(muxer) = lock(&self.muxer).clone() {
                    configure_muxer(&muxer, &settings);
                    set_container_tags(&muxer, &settings);
                }
            }
            gst::StateChange::PausedToPlaying => {
                let element = self.obj();
                if let (Some(clock), Some(base_time)) = (element.clock(), element.base_time()) {
                    self.lock_state().live_clock = Some(LiveClock { clock, base_time });
                }
            }
            gst::StateChange::PlayingToPaused => {
                self.lock_state().live_clock = None;
            }
            gst::StateChange::PausedToReady => {
                let held: Vec<gst::Pad> = {
                    let mut state = self.lock_state();
                    state.running = false;
                    state
                        .next_muxers
                        .iter()
                        .map(|next| next.block.0.clone())
                        .collect()
                };
                self.changed.notify_all();
                // A prepared segment's muxer can be pushing into its held-back source pad,
                // holding its own stream lock, which the muxer's stop waits for: stopping the
                // pipeline mid-rotation hung. Deactivated, the pad lets the push return.
                for pad in held {
                    let _ = pad.set_active(false);
                }
            }
            _ => (),
        }
        let result = self.parent_change_state(transition);
        if transition == gst::StateChange::PausedToReady {
            // No streaming thread runs any more: the manifest's last word is consistent.
            self.stopped_unfinished();
            // The muxers stopped: pads of released streams can go now.
            let retired = std::mem::take(&mut self.lock_state().retired_mux_pads);
            for pad in retired {
                if let Some(muxer) = pad.parent_element() {
                    muxer.release_request_pad(&pad);
                }
            }
        }
        result
    }
}

impl BinImpl for RecordMux {
    fn handle_message(&self, message: gst::Message) {
        // dtmfdetect says which digit it heard: that must never leave the recorder.
        if let gst::MessageView::Element(element) = message.view()
            && element
                .structure()
                .is_some_and(|s| s.name() == "dtmf-event")
            && let Some(id) = message
                .src()
                .and_then(|src| {
                    src.name()
                        .strip_prefix("recordmux-dtmf-")
                        .map(str::to_string)
                })
                .and_then(|id| id.parse::<u32>().ok())
        {
            self.digit_heard(id);
            return;
        }
        self.parent_handle_message(message)
    }
}
