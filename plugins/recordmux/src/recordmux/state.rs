//! What the streaming threads share: one [`State`] behind one mutex, with a condition variable
//! that wakes secondary streams waiting for the timeline. Each input is one [`Stream`]: its
//! pads and elements and its gate-side state together.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::time::Instant;

use gst::prelude::*;

use super::branch::{Handling, Kind, Recipe};
use super::settings::Settings;
use crate::gate::Gate;
use crate::manifest::{
    Manifest, ManifestEvent, OutputHasher, PausedSpan, SegmentRecord, StreamRecord,
};
use crate::pcm::PcmLayout;
use crate::rotation::{self, Rotation};
use crate::stream_mask::StreamMask;

/// A stream's end of a segment that is being prepared: its encoder (if any) linked to the
/// new muxer.
pub struct NextTail {
    pub elements: Vec<gst::Element>,
    /// Where the head's queue links to (the encoder, or the muxer pad).
    pub entry: gst::Pad,
    pub mux_pad: gst::Pad,
}

/// One input of the recording.
pub struct Stream {
    pub id: u32,
    pub kind: Kind,
    pub ghost: gst::GhostPad,
    /// This stream's pad on the muxer of the segment it records into.
    pub mux_pad: gst::Pad,
    /// The branch's head (decoder, normaliser, gate, queue), once its first caps arrived.
    pub elements: Vec<gst::Element>,
    /// The current segment's tail (encoder), if the stream is encoded here.
    pub tail: Vec<gst::Element>,
    /// The head's last pad (the queue's source), where segments switch.
    pub head_exit: Option<gst::Pad>,
    pub recipe: Option<Recipe>,
    /// The tails of prepared segments this stream has not switched to yet, by segment.
    pub next: BTreeMap<usize, NextTail>,
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
    /// The stream's EOS passed the gate.
    pub ended: bool,
    /// The stream's EOS left its head (the queue): no tail is made for it any more.
    pub ended_at_head: bool,
    /// Encoded video: delta frames are dropped until a keyframe.
    pub awaits_keyframe: bool,
    /// DTS of the last output buffer (kept non-decreasing).
    pub last_output_dts: Option<u64>,
    /// Encoded audio: end (output PTS + duration) of the last packet; the next one never
    /// starts before it.
    pub audio_end: Option<u64>,
    /// Running time of the last keyframe request sent upstream.
    pub last_keyframe_request: Option<u64>,
    /// End (running time) of the last buffer seen at the gate.
    pub position: u64,
    /// The segment this stream's output goes to.
    pub output_segment: usize,
    /// Decode time of the first output buffer of the segment, from its time 0 (ns).
    pub first_output: Option<u64>,
    /// Spans this stream alone is paused (masked) in.
    pub mask: StreamMask,
    /// Spans masked for DTMF tones.
    pub dtmf: StreamMask,
    /// Finds DTMF tones in the 8 kHz copy (`dtmf-mask`).
    pub tones: crate::dtmf::ToneTracker,
    /// The 8 kHz buffer dtmfdetect is working on (running time).
    pub detector_span: Option<std::ops::Range<u64>>,
    /// Digits dtmfdetect heard (how many, never which).
    pub dtmf_digits: u32,
    /// DTMF is masked on this stream: its gate waits for the tone tracker.
    pub dtmf_enabled: bool,
    /// How far the tone tracker has listened (running time), and whether to the end.
    pub detector_position: u64,
    pub detector_eos: bool,
    /// This stream in the segment being recorded.
    pub record: StreamRecord,
    /// This stream in the segments it finished (rotating recordings).
    pub finished_records: BTreeMap<usize, StreamRecord>,
}

impl Stream {
    pub fn new(id: u32, kind: Kind, name: &str, ghost: gst::GhostPad, mux_pad: gst::Pad) -> Self {
        Stream {
            id,
            kind,
            ghost,
            mux_pad,
            elements: Vec::new(),
            tail: Vec::new(),
            head_exit: None,
            recipe: None,
            next: BTreeMap::new(),
            handling: None,
            segment: None,
            pcm: None,
            video: None,
            caps_locked: false,
            pad_caps: None,
            flushing: false,
            ended: false,
            ended_at_head: false,
            awaits_keyframe: true,
            last_output_dts: None,
            audio_end: None,
            last_keyframe_request: None,
            position: 0,
            output_segment: 0,
            first_output: None,
            mask: StreamMask::default(),
            dtmf: StreamMask::default(),
            tones: crate::dtmf::ToneTracker::default(),
            detector_span: None,
            dtmf_digits: 0,
            dtmf_enabled: false,
            detector_position: 0,
            detector_eos: false,
            record: StreamRecord {
                pad: name.to_string(),
                kind: kind.name(),
                ..Default::default()
            },
            finished_records: BTreeMap::new(),
        }
    }

    pub fn is_encoded_video(&self) -> bool {
        self.kind == Kind::Video && self.handling == Some(Handling::Passthrough)
    }

    /// Ready for a new run (READY -> PAUSED): the branch stays, times and counts restart.
    pub fn restart(&mut self) {
        self.segment = None;
        self.flushing = false;
        self.ended = false;
        self.ended_at_head = false;
        self.awaits_keyframe = true;
        self.last_output_dts = None;
        self.audio_end = None;
        self.last_keyframe_request = None;
        self.position = 0;
        self.output_segment = 0;
        self.first_output = None;
        self.record = self.record.restarted();
        self.finished_records.clear();
        self.mask = StreamMask::default();
        self.dtmf = StreamMask::default();
        self.tones = crate::dtmf::ToneTracker::default();
        self.detector_span = None;
        self.dtmf_digits = 0;
        self.detector_position = 0;
        self.detector_eos = false;
    }

    /// The stream's output moves on to segment `index`.
    pub fn enter_segment(&mut self, index: usize) {
        let fresh = self.record.restarted();
        let finished = std::mem::replace(&mut self.record, fresh);
        self.finished_records.insert(self.output_segment, finished);
        self.output_segment = index;
        self.first_output = None;
        self.last_output_dts = None;
        self.audio_end = None;
        if self.is_encoded_video() {
            // A file starts with a keyframe.
            self.awaits_keyframe = true;
        }
    }

    /// This stream's record for segment `index`.
    fn record_of(&self, index: usize) -> StreamRecord {
        match self.finished_records.get(&index) {
            Some(record) => record.clone(),
            None if index == self.output_segment => self.record.clone(),
            None => self.record.restarted(),
        }
    }
}

/// The pipeline clock while playing; in a live pipeline buffer running times are capture
/// times.
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

/// What became of the bytes the muxer produced, for the segment being output.
#[derive(Default)]
pub struct Output {
    /// What the sink accepted.
    pub hasher: OutputHasher,
    /// Why the sink refused data or the end of the stream.
    pub error: Option<String>,
    /// EOS went out (or failed to).
    pub finished: bool,
}

/// The muxer of the next segment, prepared while the current one finishes.
pub struct NextMuxer {
    pub index: usize,
    pub muxer: gst::Element,
    /// Holds the new muxer's output until the current one has finished.
    pub block: (gst::Pad, gst::PadProbeId),
    /// The streams it has pads for, in order.
    pub streams: Vec<u32>,
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
    pub rotation: Rotation,
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
    /// Muxer pads of streams released while the muxer was streaming: ended with EOS and
    /// released once it stopped (matroskamux 1.22 crashes when a pad goes while it collects).
    pub retired_mux_pads: Vec<gst::Pad>,
    pub streams: Vec<Stream>,
    pub next_stream_id: u32,
    pub next_video: u32,
    pub next_audio: u32,
    /// Every pause and resume of the recording, in order.
    pub events: Vec<ManifestEvent>,
    pub manifest: Manifest,
    /// Manifest path (a pattern with `%d` when rotating).
    pub manifest_location: Option<PathBuf>,
    pub manifest_sequence: u64,
    pub manifest_written_at: Instant,
    /// The segment being output (what the manifest describes).
    pub output_segment: usize,
    /// SHA-256 of the previous segment's output.
    pub previous_output_sha256: Option<String>,
    /// Muxers of the segments after the one being output, oldest first.
    pub next_muxers: VecDeque<NextMuxer>,
    /// Tails of finished segments, by segment, removed once their muxer is.
    pub retired: Vec<(usize, gst::Element)>,
    pub output: Output,
    pub warned_main_stalled: bool,
    /// MP4 tracks (id, timescale, stream id) of the segment being output, from its header.
    pub tracks: Vec<(u32, u32, u32)>,
    /// The streams the segment being output has (`None`: all, the first segment).
    pub segment_streams: Option<Vec<u32>>,
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
            rotation: Rotation::new(settings.rotation_limits()),
            running: true,
            live: None,
            live_clock: None,
            latency: 0,
            main: None,
            retired_mux_pads: Vec::new(),
            streams: Vec::new(),
            next_stream_id: 0,
            next_video: 0,
            next_audio: 0,
            events: Vec::new(),
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
            output_segment: 0,
            previous_output_sha256: None,
            next_muxers: VecDeque::new(),
            retired: Vec::new(),
            output: Output::default(),
            warned_main_stalled: false,
            tracks: Vec::new(),
            segment_streams: None,
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
            stream.next.clear();
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
        }
        self.main
    }

    /// Output PTS of recording time 0.
    pub fn output_base(&self) -> u64 {
        super::gate_path::OUTPUT_OFFSET + self.decode_delay
    }

    /// Where segment `index` starts on the recording timeline: its files start there at 0.
    pub fn segment_recording_start(&self, index: usize) -> u64 {
        match (index, self.rotation.segment_start(index)) {
            (0, _) | (_, None) => 0,
            (_, Some(start)) => self.gate.recording_time(start),
        }
    }

    /// Matches the muxer's tracks to the streams: the n-th track of a kind is the n-th stream
    /// of that kind, in the order the pads were requested.
    pub fn match_tracks(&mut self, tracks: &[crate::isobmff::Track]) {
        let mut matched = Vec::new();
        for (handler, kind) in [(*b"vide", Kind::Video), (*b"soun", Kind::Audio)] {
            let streams = self.streams.iter().filter(|s| {
                s.kind == kind
                    && self
                        .segment_streams
                        .as_ref()
                        .is_none_or(|ids| ids.contains(&s.id))
            });
            let kind_tracks = tracks.iter().filter(|t| t.handler == handler);
            for (track, stream) in kind_tracks.zip(streams) {
                matched.push((track.id, track.timescale, stream.id));
            }
        }
        self.tracks = matched;
    }

    /// How far track `track_id`'s decode times must move (in its timescale): where its
    /// stream's first output in the segment is.
    pub fn track_start(&self, track_id: u32) -> u64 {
        self.tracks
            .iter()
            .find(|(id, _, _)| *id == track_id)
            .and_then(|&(_, timescale, stream)| {
                let stream = self.stream(stream)?;
                if stream.output_segment != self.output_segment {
                    return None;
                }
                let first = stream.first_output?;
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

    /// Where the manifest of the segment being output goes.
    fn manifest_path(&self) -> Option<PathBuf> {
        let location = self.manifest_location.as_ref()?;
        if !self.rotation.limits().rotates() {
            return Some(location.clone());
        }
        Some(PathBuf::from(rotation::segment_name(
            &location.to_string_lossy(),
            self.output_segment,
        )))
    }

    /// Brings the manifest up to date and serialises it for writing, if it has a location.
    pub fn manifest_snapshot(&mut self, complete: bool) -> Option<ManifestSnapshot> {
        self.refresh_manifest(complete);
        self.manifest_written_at = Instant::now();
        let path = self.manifest_path()?;
        self.manifest_sequence += 1;
        Some(ManifestSnapshot {
            sequence: self.manifest_sequence,
            path,
            json: self.manifest.to_json(),
            durable: self.output.finished || complete,
        })
    }

    /// The segment being output ends (its muxer finished) and the next one is prepared:
    /// the final manifest of the segment, the next muxer, and the elements done with.
    pub fn finish_segment(
        &mut self,
    ) -> Option<(Option<ManifestSnapshot>, NextMuxer, Vec<gst::Element>)> {
        let next = self.next_muxers.pop_front()?;
        let ended = self.output_segment;
        // Streams whose media never came have nothing to switch: they take the new pad.
        for stream in &mut self.streams {
            if stream.head_exit.is_none()
                && let Some(tail) = stream.next.remove(&next.index)
            {
                stream.mux_pad = tail.mux_pad;
            }
        }
        let (retired, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.retired)
            .into_iter()
            .partition(|(index, _)| *index <= ended);
        self.retired = kept;
        let snapshot = self.end_segment_manifest();
        self.segment_streams = Some(next.streams.clone());
        Some((
            snapshot,
            next,
            retired.into_iter().map(|(_, element)| element).collect(),
        ))
    }

    fn end_segment_manifest(&mut self) -> Option<ManifestSnapshot> {
        self.output.finished = true;
        let snapshot = self.manifest_snapshot(true);
        self.previous_output_sha256 = self.manifest.output.sha256.clone();
        self.output_segment += 1;
        self.output = Output::default();
        self.tracks.clear();
        self.manifest.ended_utc = None;
        self.manifest.started_utc = Some(now_utc());
        snapshot
    }

    fn refresh_manifest(&mut self, complete: bool) {
        let index = self.output_segment;
        let rotating = self.rotation.limits().rotates();
        let origin = self.gate.origin();
        let from = if rotating {
            self.rotation.segment_start(index).or(origin).unwrap_or(0)
        } else {
            origin.unwrap_or(0)
        };
        let until = match self.rotation.segment_end(index) {
            Some(end) if rotating => end,
            _ => self.position(),
        }
        .max(from);
        let manifest = &mut self.manifest;
        manifest.origin_running_time_ns = origin;
        manifest.recorded_duration_ns =
            self.gate.recorded_duration(until) - self.gate.recorded_duration(from);
        manifest.paused_spans = self
            .gate
            .paused_spans(until)
            .into_iter()
            .filter(|span| span.end > from)
            .map(|span| {
                let start = span.start.max(from);
                PausedSpan {
                    start_running_time_ns: start,
                    end_running_time_ns: span.end,
                    duration_ns: span.end - start,
                }
            })
            .collect();
        manifest.paused_duration_ns = manifest.paused_spans.iter().map(|s| s.duration_ns).sum();
        manifest.events = self
            .events
            .iter()
            .filter(|event| {
                !rotating
                    || (event.running_time_ns >= from
                        && (event.running_time_ns < until
                            || self.rotation.segment_end(index).is_none()))
            })
            .cloned()
            .collect();
        let open_end = self.rotation.segment_end(index).filter(|_| rotating);
        manifest.streams = self
            .streams
            .iter()
            .map(|stream| {
                let mut record = stream.record_of(index);
                record.masked_spans = masked_within(stream.mask.spans(), from, open_end);
                record.dtmf_masked_spans = masked_within(stream.dtmf.spans(), from, open_end);
                record
            })
            .collect();
        manifest.output.bytes = self.output.hasher.bytes();
        manifest.output.error = self.output.error.clone();
        manifest.complete = complete && self.output.error.is_none();
        manifest.updated_utc = Some(now_utc());
        manifest.output.sha256 = manifest.complete.then(|| self.output.hasher.hex_digest());
        if self.output.finished {
            manifest.ended_utc.get_or_insert_with(now_utc);
        }
        manifest.segment = rotating.then(|| SegmentRecord {
            index,
            start_running_time_ns: from,
            end_running_time_ns: self.rotation.segment_end(index),
            previous_output_sha256: self.previous_output_sha256.clone(),
        });
    }
}

/// The masked spans that overlap `from..until` (`until` `None`: open), clipped to it.
fn masked_within(
    spans: &[crate::stream_mask::MaskedSpan],
    from: u64,
    until: Option<u64>,
) -> Vec<crate::manifest::MaskedSpanRecord> {
    spans
        .iter()
        .filter(|span| span.end.is_none_or(|end| end > from))
        .filter(|span| until.is_none_or(|until| span.start < until))
        .map(|span| crate::manifest::MaskedSpanRecord {
            start_running_time_ns: span.start.max(from),
            end_running_time_ns: match (span.end, until) {
                (Some(end), Some(until)) => Some(end.min(until)),
                (None, Some(until)) => Some(until),
                (end, None) => end,
            },
            reason: span.reason.clone(),
        })
        .collect()
}

pub fn now_utc() -> String {
    gst::glib::DateTime::now_utc()
        .and_then(|now| {
            let seconds = now.format("%Y-%m-%dT%H:%M:%S")?;
            Ok(format!("{seconds}.{:03}Z", now.microsecond() / 1000))
        })
        .unwrap_or_default()
}
