//! What the streaming threads share: one [`State`] behind one mutex, with a condition variable
//! that wakes secondary streams waiting for the timeline. Each input is one [`Stream`]: its
//! pads and elements and its gate-side state together.

use std::path::PathBuf;

use gst::prelude::*;
use std::time::Instant;

use super::branch::{Handling, Kind};
use super::settings::Settings;
use crate::gate::Gate;
use crate::manifest::{Manifest, OutputHasher, PausedSpan, StreamRecord};
use crate::pcm::PcmLayout;

/// One input of the recording.
pub struct Stream {
    pub id: u32,
    pub kind: Kind,
    pub ghost: gst::GhostPad,
    pub mux_pad: gst::Pad,
    /// The branch, once its first caps arrived.
    pub elements: Vec<gst::Element>,
    pub handling: Option<Handling>,
    /// The input segment (at the gate).
    pub segment: Option<gst::FormattedSegment<gst::ClockTime>>,
    /// Layout of raw audio at the gate.
    pub pcm: Option<PcmLayout>,
    /// Layout of raw video at the gate (I420).
    pub video: Option<gst_video::VideoInfo>,
    /// Whether the branch's capsfilter is locked to its first caps.
    pub caps_locked: bool,
    /// Caps as they arrive on the request pad.
    pub pad_caps: Option<gst::Caps>,
    pub flushing: bool,
    /// Encoded video: delta frames are dropped until a keyframe.
    pub awaits_keyframe: bool,
    /// DTS of the last output buffer (kept non-decreasing).
    pub last_output_dts: Option<u64>,
    /// Running time of the last keyframe request sent upstream.
    pub last_keyframe_request: Option<u64>,
    /// End (running time) of the last buffer seen at the gate.
    pub position: u64,
    /// Decode time of the first output buffer, from the output's time 0 (ns).
    pub first_output: Option<u64>,
    pub record: StreamRecord,
}

impl Stream {
    pub fn new(id: u32, kind: Kind, name: &str, ghost: gst::GhostPad, mux_pad: gst::Pad) -> Self {
        Stream {
            id,
            kind,
            ghost,
            mux_pad,
            elements: Vec::new(),
            handling: None,
            segment: None,
            pcm: None,
            video: None,
            caps_locked: false,
            pad_caps: None,
            flushing: false,
            awaits_keyframe: true,
            last_output_dts: None,
            last_keyframe_request: None,
            position: 0,
            first_output: None,
            record: StreamRecord {
                pad: name.to_string(),
                kind: kind.name(),
                ..Default::default()
            },
        }
    }

    pub fn is_encoded_video(&self) -> bool {
        self.kind == Kind::Video && self.handling == Some(Handling::Passthrough)
    }

    /// Ready for a new run (READY -> PAUSED): the branch stays, times and counts restart.
    pub fn restart(&mut self) {
        self.segment = None;
        self.flushing = false;
        self.awaits_keyframe = true;
        self.last_output_dts = None;
        self.last_keyframe_request = None;
        self.position = 0;
        self.first_output = None;
        self.record = self.record.restarted();
    }
}

/// The pipeline clock, when the pipeline is live and playing: buffer running times are then
/// capture times.
#[derive(Clone)]
pub struct LiveClock {
    pub clock: gst::Clock,
    pub base_time: gst::ClockTime,
}

impl LiveClock {
    pub fn running_time(&self) -> u64 {
        self.clock.time().saturating_sub(self.base_time).nseconds()
    }
}

/// What became of the bytes the muxer produced.
#[derive(Default)]
pub struct Output {
    /// What the sink accepted.
    pub hasher: OutputHasher,
    /// Why the sink refused data or the end of the stream.
    pub error: Option<String>,
    /// EOS went out (or failed to).
    pub finished: bool,
}

/// A manifest to write, serialised under the state lock and written outside it.
pub struct ManifestSnapshot {
    pub sequence: u64,
    pub path: PathBuf,
    pub json: String,
    pub durable: bool,
}

/// Everything the streaming threads share, behind one mutex.
pub struct State {
    pub gate: Gate,
    /// False while shutting down: nobody may wait any more.
    pub running: bool,
    /// Whether the pipeline is live (`None`: not known yet).
    pub live: Option<bool>,
    /// Set while playing.
    pub live_clock: Option<LiveClock>,
    /// Latency the pipeline configured (LATENCY event), in ns.
    pub latency: u64,
    /// The stream that decides (see `crate::gate`).
    pub main: Option<u32>,
    pub streams: Vec<Stream>,
    pub next_stream_id: u32,
    pub next_video: u32,
    pub next_audio: u32,
    pub manifest: Manifest,
    pub manifest_location: Option<PathBuf>,
    pub manifest_sequence: u64,
    pub manifest_written_at: Instant,
    pub output: Output,
    pub warned_main_stalled: bool,
    /// MP4 tracks (id, timescale) of the streams, in stream order, once the header is out.
    pub tracks: Vec<(u32, u32, u32)>,
    /// Decode delay of the main stream's first frame (B-frames), added to every output PTS.
    pub decode_delay: u64,
    /// How late the main stream may be before the others go on without it (live), in ns.
    pub main_stream_timeout: u64,
    /// How often the manifest is rewritten while recording.
    pub manifest_interval: std::time::Duration,
}

impl State {
    pub fn new(settings: &Settings, recording: bool) -> State {
        State {
            gate: Gate::new(settings.pause_mode.gate_mode(), recording),
            running: true,
            live: None,
            live_clock: None,
            latency: 0,
            main: None,
            streams: Vec::new(),
            next_stream_id: 0,
            next_video: 0,
            next_audio: 0,
            manifest: Manifest {
                format: Manifest::FORMAT,
                call: settings.metadata(),
                pause_mode: settings.pause_mode.nick(),
                output: crate::manifest::OutputRecord {
                    container: settings.container.nick().to_string(),
                    ..Default::default()
                },
                ..Default::default()
            },
            manifest_location: settings.manifest_location.clone(),
            manifest_sequence: 0,
            manifest_written_at: Instant::now(),
            output: Output::default(),
            warned_main_stalled: false,
            tracks: Vec::new(),
            decode_delay: 0,
            main_stream_timeout: settings.main_stream_timeout_ms as u64 * 1_000_000,
            manifest_interval: std::time::Duration::from_millis(
                settings.manifest_interval_ms as u64,
            ),
        }
    }

    /// A fresh run with the same streams and pad numbering (READY -> PAUSED).
    pub fn restarted(&mut self, settings: &Settings, recording: bool) {
        let mut fresh = State::new(settings, recording);
        fresh.streams = std::mem::take(&mut self.streams);
        for stream in &mut fresh.streams {
            stream.restart();
        }
        fresh.next_stream_id = self.next_stream_id;
        fresh.next_video = self.next_video;
        fresh.next_audio = self.next_audio;
        fresh.live = self.live;
        *self = fresh;
    }

    pub fn stream(&self, id: u32) -> Option<&Stream> {
        self.streams.iter().find(|s| s.id == id)
    }

    pub fn stream_mut(&mut self, id: u32) -> Option<&mut Stream> {
        self.streams.iter_mut().find(|s| s.id == id)
    }

    /// The main stream: the first video stream, else the first audio stream. Chosen once,
    /// when the first buffer of any stream reaches the gate.
    pub fn main_stream(&mut self) -> Option<u32> {
        if self.main.is_none() {
            self.main = self
                .streams
                .iter()
                .find(|s| s.kind == Kind::Video)
                .or_else(|| self.streams.iter().find(|s| s.kind == Kind::Audio))
                .map(|s| s.id);
            if let Some(main) = self.main {
                let encoded = self.stream(main).is_some_and(Stream::is_encoded_video);
                self.gate.set_main_needs_keyframes(encoded);
            }
        }
        self.main
    }

    /// Output PTS of recording time 0.
    pub fn output_base(&self) -> u64 {
        super::gate_path::OUTPUT_OFFSET + self.decode_delay
    }

    /// Matches the muxer's tracks to the streams: the n-th track of a kind is the n-th stream
    /// of that kind, in the order the pads were requested.
    pub fn match_tracks(&mut self, tracks: &[crate::isobmff::Track]) {
        let mut matched = Vec::new();
        for (handler, kind) in [(*b"vide", Kind::Video), (*b"soun", Kind::Audio)] {
            let streams = self.streams.iter().filter(|s| s.kind == kind);
            let kind_tracks = tracks.iter().filter(|t| t.handler == handler);
            for (track, stream) in kind_tracks.zip(streams) {
                matched.push((track.id, track.timescale, stream.id));
            }
        }
        self.tracks = matched;
    }

    /// How far track `track_id`'s decode times must move (in its timescale): where its
    /// stream's first output is.
    pub fn track_start(&self, track_id: u32) -> u64 {
        self.tracks
            .iter()
            .find(|(id, _, _)| *id == track_id)
            .and_then(|&(_, timescale, stream)| {
                let first = self.stream(stream)?.first_output?;
                Some((first as u128 * timescale as u128 / 1_000_000_000) as u64)
            })
            .unwrap_or(0)
    }

    /// The live clock's running time, if live and playing.
    pub fn now(&self) -> Option<u64> {
        if self.live != Some(true) {
            return None;
        }
        self.live_clock.as_ref().map(LiveClock::running_time)
    }

    /// How far the streams got (running time).
    pub fn position(&self) -> u64 {
        self.streams.iter().map(|s| s.position).max().unwrap_or(0)
    }

    /// Brings the manifest up to date and serialises it for writing, if it has a location.
    pub fn manifest_snapshot(&mut self, complete: bool) -> Option<ManifestSnapshot> {
        self.refresh_manifest(complete);
        self.manifest_written_at = Instant::now();
        let path = self.manifest_location.clone()?;
        self.manifest_sequence += 1;
        Some(ManifestSnapshot {
            sequence: self.manifest_sequence,
            path,
            json: self.manifest.to_json(),
            durable: self.output.finished || complete,
        })
    }

    fn refresh_manifest(&mut self, complete: bool) {
        let until = self.position();
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
        manifest.output.bytes = self.output.hasher.bytes();
        manifest.output.error = self.output.error.clone();
        manifest.complete = complete && self.output.error.is_none();
        manifest.updated_utc = Some(now_utc());
        if manifest.complete {
            manifest.output.sha256 = Some(self.output.hasher.hex_digest());
        }
        if self.output.finished {
            manifest.ended_utc.get_or_insert_with(now_utc);
        }
    }
}

pub fn now_utc() -> String {
    gst::glib::DateTime::now_utc()
        .and_then(|now| {
            let seconds = now.format("%Y-%m-%dT%H:%M:%S")?;
            Ok(format!("{seconds}.{:03}Z", now.microsecond() / 1000))
        })
        .unwrap_or_default()
}
