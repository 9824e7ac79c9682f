//! The gate path of every stream: a pad probe on the branch's normalised output asks
//! `crate::gate` what to do with each buffer and event, and retimes what is recorded. The
//! main stream decides; secondaries follow, waiting until the timeline is final over their
//! buffers (in a live pipeline that is at once, except while a resume of encoded video waits
//! for its keyframe or a segment split for its frame; a main stream late beyond
//! `main-stream-timeout` is not waited for).
//!
//! Each buffer becomes *parts* with a fate (keep, blank, drop): from the recording's pauses
//! (`crate::gate`), then the stream's own masks (a stream paused alone, DTMF tones:
//! `crate::stream_mask`), then split at segment boundaries (`crate::rotation`), before a
//! `recordmux-split` event that switches the stream to the next segment's muxer
//! (`segments.rs`).
//!
//! The probe never blocks on the muxer: serialized queries (allocation, drain) are answered
//! here, since the muxer only answers them once every stream has data, which a secondary
//! waiting for this stream cannot give (the deadlock of a live H.264 passthrough + raw audio
//! recording).

use std::cell::Cell;
use std::ops::Range;
use std::sync::MutexGuard;

use gst::prelude::*;
use gst::subclass::prelude::*;

use super::CAT;
use super::branch::Kind;
use super::imp::RecordMux;
use super::state::{State, Stream};
use crate::gate::{MainVerdict, PauseMode, SecondaryVerdict, Transition};
use crate::pcm::{self, Fate, Part};

/// Output timestamps start here, not at 0, so that a DTS before its PTS (B-frames) is still a
/// valid timestamp; the output segment starts here too, so recording time 0 is running time 0.
pub const OUTPUT_OFFSET: u64 = 1000 * 3600 * 1_000_000_000;

/// Encoded video waiting for a keyframe asks upstream for one at most this often.
const KEYFRAME_REQUEST_INTERVAL: u64 = 1_000_000_000;

/// Name of the event that moves a stream to the next segment.
pub const SPLIT_EVENT: &str = "recordmux-split";

thread_local! {
    /// Set while the gate probe pushes what it made: its own pushes pass it untouched.
    static PUSHING: Cell<bool> = const { Cell::new(false) };
}

/// A buffer's times at the gate, in running time.
#[derive(Debug, Clone, Copy)]
struct Times {
    start: u64,
    end: u64,
    /// PTS minus DTS (decode reordering), if the buffer has a DTS; 0 for audio.
    reorder: Option<i128>,
}

/// What the gate makes of a buffer, in order.
pub enum GateItem {
    Buffer(gst::Buffer),
    /// The stream moves to segment `index` (before its first output there).
    Split(usize),
}

fn split_event(index: usize) -> gst::Event {
    gst::event::CustomDownstream::builder(
        gst::Structure::builder(SPLIT_EVENT)
            .field("segment", index as u32)
            .build(),
    )
    .build()
}

impl RecordMux {
    /// The gate probe: every buffer, event and serialized query of stream `id` after
    /// normalisation (the source pad of `gate_element`); `filter` is the capsfilter locked to
    /// the first caps.
    pub(super) fn install_gate(&self, id: u32, gate_element: &gst::Element, filter: &gst::Element) {
        let pad = gate_element
            .static_pad("src")
            .expect("normalising element has a src pad");
        let element = self.obj().downgrade();
        let filter = filter.clone();
        pad.add_probe(
            gst::PadProbeType::BUFFER
                | gst::PadProbeType::BUFFER_LIST
                | gst::PadProbeType::EVENT_DOWNSTREAM
                | gst::PadProbeType::EVENT_FLUSH
                | gst::PadProbeType::QUERY_DOWNSTREAM,
            move |pad, info| {
                if PUSHING.get() {
                    return gst::PadProbeReturn::Ok;
                }
                let Some(element) = element.upgrade() else {
                    return gst::PadProbeReturn::Ok;
                };
                let imp = element.imp();
                if let Some(query) = info.query_mut() {
                    return imp.gate_query(query);
                }
                let items = match info.data.take() {
                    Some(gst::PadProbeData::Buffer(buffer)) => imp.gate_buffer(id, buffer),
                    Some(gst::PadProbeData::BufferList(list)) => list
                        .iter_owned()
                        .flat_map(|buffer| imp.gate_buffer(id, buffer))
                        .collect(),
                    Some(gst::PadProbeData::Event(event)) => {
                        return match imp.gate_event(id, event, &filter) {
                            Some(event) => {
                                info.data = Some(gst::PadProbeData::Event(event));
                                gst::PadProbeReturn::Ok
                            }
                            None => gst::PadProbeReturn::Handled,
                        };
                    }
                    other => {
                        info.data = other;
                        return gst::PadProbeReturn::Ok;
                    }
                };
                emit(pad, info, items)
            },
        );
    }

    /// Answers the serialized queries at `pad` (the hold-back queue's input of a stream whose
    /// DTMF is masked): they would wait behind a buffer the gate holds for the detector,
    /// which waits for what comes after the query.
    pub(super) fn answer_serialized_queries(&self, pad: &gst::Pad) {
        let element = self.obj().downgrade();
        pad.add_probe(gst::PadProbeType::QUERY_DOWNSTREAM, move |_, info| {
            match (element.upgrade(), info.query_mut()) {
                (Some(element), Some(query)) => element.imp().gate_query(query),
                _ => gst::PadProbeReturn::Ok,
            }
        });
    }

    /// Answers the serialized queries that would wait for the muxer.
    fn gate_query(&self, query: &mut gst::QueryRef) -> gst::PadProbeReturn {
        match query.view_mut() {
            // No pool to offer: the muxer allocates nothing upstream.
            gst::QueryViewMut::Allocation(_) => gst::PadProbeReturn::Handled,
            // The muxer holds no upstream memory that a drain would return.
            gst::QueryViewMut::Drain(_) => gst::PadProbeReturn::Handled,
            _ => gst::PadProbeReturn::Ok,
        }
    }

    fn gate_event(&self, id: u32, event: gst::Event, filter: &gst::Element) -> Option<gst::Event> {
        let mut state = self.lock_state();
        let is_main = state.main_stream() == Some(id);
        let stream = state.stream_mut(id)?;
        match event.view() {
            gst::EventView::Segment(segment) => {
                match segment.segment().clone().downcast::<gst::ClockTime>() {
                    Ok(segment) => stream.segment = Some(segment),
                    Err(_) => {
                        drop(state);
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
                // Output times are recording times (running time = recording time).
                let mut output = gst::FormattedSegment::<gst::ClockTime>::new();
                output.set_start(gst::ClockTime::from_nseconds(OUTPUT_OFFSET));
                output.set_position(gst::ClockTime::from_nseconds(OUTPUT_OFFSET));
                output.set_time(gst::ClockTime::ZERO);
                Some(
                    gst::event::Segment::builder(&output)
                        .seqnum(event.seqnum())
                        .build(),
                )
            }
            gst::EventView::Caps(caps) => {
                let caps = caps.caps_owned();
                let raw = stream.handling != Some(super::branch::Handling::Passthrough);
                let lock = raw && !stream.caps_locked;
                stream.caps_locked |= lock;
                if raw && stream.kind == Kind::Video {
                    stream.video = gst_video::VideoInfo::from_caps(&caps).ok();
                }
                if raw
                    && stream.kind == Kind::Audio
                    && let Ok(info) = gst_audio::AudioInfo::from_caps(&caps)
                {
                    stream.pcm = Some(pcm::PcmLayout {
                        rate: info.rate(),
                        bytes_per_frame: info.bpf() as usize,
                    });
                }
                drop(state);
                if lock {
                    // The branch keeps its first caps: later changes are converted.
                    filter.set_property("caps", &caps);
                }
                Some(event)
            }
            gst::EventView::Gap(gap) => {
                if is_main {
                    let (start, duration) = gap.get();
                    let segment = stream.segment.clone();
                    let running = |t: gst::ClockTime| {
                        segment
                            .as_ref()
                            .and_then(|s| s.to_running_time(t))
                            .map(gst::ClockTime::nseconds)
                    };
                    if let (Some(from), Some(to)) = (
                        running(start),
                        running(start + duration.unwrap_or_default()),
                    ) {
                        stream.position = stream.position.max(to);
                        state.gate.main_gap(from, to);
                        if let Some(origin) = state.gate.origin() {
                            state.rotation.start(origin);
                        }
                        let transitions = state.gate.take_transitions();
                        self.changed.notify_all();
                        self.after_transitions(state, transitions);
                    }
                }
                None
            }
            gst::EventView::Eos(_) => {
                stream.ended = true;
                if is_main {
                    state.gate.main_eos();
                }
                self.changed.notify_all();
                Some(event)
            }
            gst::EventView::FlushStart(_) => {
                stream.flushing = true;
                self.changed.notify_all();
                Some(event)
            }
            gst::EventView::FlushStop(_) => {
                stream.flushing = false;
                stream.last_output_dts = None;
                stream.audio_end = None;
                Some(event)
            }
            _ => Some(event),
        }
    }

    /// Decides one buffer of stream `id`: what goes out (retimed, blanked, cut, split).
    fn gate_buffer(&self, id: u32, buffer: gst::Buffer) -> Vec<GateItem> {
        self.learn_liveness(id);
        let mut state = self.lock_state();
        let main = state.main_stream();
        let Some(stream) = state.stream_mut(id) else {
            return Vec::new();
        };
        stream.record.buffers_in += 1;
        let Some(segment) = stream.segment.clone() else {
            return Vec::new();
        };
        let Some(start) = buffer
            .pts()
            .and_then(|pts| segment.to_running_time(pts))
            .map(gst::ClockTime::nseconds)
        else {
            drop(state);
            gst::warning!(
                CAT,
                imp = self,
                "stream {id}: dropping a buffer without timestamp or outside its segment"
            );
            return Vec::new();
        };
        // Audio is never reordered (its DTS, when a parser or a jitter buffer left one, is no
        // decode time): it leaves the gate with DTS = PTS.
        let reorder = if stream.kind == Kind::Audio {
            Some(0)
        } else {
            buffer
                .dts()
                .and_then(|dts| segment.to_running_time_full(dts))
                .map(|dts| start as i128 - signed_ns(dts))
        };
        let duration = match (buffer.duration(), stream.pcm) {
            (Some(duration), _) => duration.nseconds(),
            (None, Some(pcm)) => pcm.duration_ns(buffer.size()),
            (None, None) => 0,
        };
        let times = Times {
            start,
            end: start + duration,
            reorder,
        };
        if stream.dtmf_enabled {
            // Nothing is recorded before the tone tracker has listened past it.
            let needed = times.end + crate::dtmf::LOOKAHEAD_NS;
            loop {
                let Some(stream) = state.stream(id) else {
                    return Vec::new();
                };
                if stream.detector_eos
                    || stream.detector_position >= needed
                    || stream.flushing
                    || !state.running
                {
                    break;
                }
                state = self
                    .changed
                    .wait_timeout(state, std::time::Duration::from_millis(50))
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .0;
            }
        }
        let Some(stream) = state.stream_mut(id) else {
            return Vec::new();
        };
        stream.position = stream.position.max(times.end);
        gst::trace!(
            CAT,
            imp = self,
            "stream {id}: buffer at running time {start}..{}",
            times.end
        );
        if main == Some(id) {
            self.main_buffer(state, id, buffer, times)
        } else {
            self.secondary_buffer(state, id, buffer, times)
        }
    }

    fn main_buffer(
        &self,
        mut state: MutexGuard<'_, State>,
        id: u32,
        buffer: gst::Buffer,
        times: Times,
    ) -> Vec<GateItem> {
        let Some(stream) = state.stream(id) else {
            return Vec::new();
        };
        let encoded_video = stream.is_encoded_video();
        // Known once the main stream's branch exists (other streams may start first).
        state.gate.set_main_needs_keyframes(encoded_video);
        let keyframe = !encoded_video || !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
        let started = state.gate.origin().is_some();
        let verdict = state.gate.main(times.start..times.end, keyframe);
        if !started && let Some(origin) = state.gate.origin() {
            // The first frame's decode delay (B-frames) delays every stream's output by as
            // much: fragmented MP4 has no edit list to hide it, and A/V must stay in sync.
            state.decode_delay = times.reorder.unwrap_or(0).clamp(0, 1_000_000_000) as u64;
            state.rotation.start(origin);
        }
        // A raw main stream is encoded afresh in each segment: any frame can start one.
        state
            .rotation
            .main(times.start..times.end.max(times.start + 1), keyframe);
        let transitions = state.gate.take_transitions();
        let wants_keyframe = encoded_video && !keyframe && state.gate.awaiting_keyframe();
        self.changed.notify_all();
        let fate = match verdict {
            MainVerdict::Record { .. } => Fate::Keep,
            MainVerdict::Mask { .. } => Fate::Blank,
            MainVerdict::Drop => Fate::Drop,
        };
        let parts = vec![Part {
            span: times.start..times.end.max(times.start + 1),
            fate,
        }];
        let (items, ask_keyframe) = self.render(&mut state, id, buffer, times, parts);
        let ghost = state.stream(id).map(|s| s.ghost.clone());
        let ask_keyframe = ask_keyframe
            || (wants_keyframe
                && state
                    .stream_mut(id)
                    .is_some_and(|s| s.keyframe_request_due(times.start)));
        self.after_transitions(state, transitions);
        if ask_keyframe && let Some(ghost) = ghost {
            request_keyframe(&ghost);
        }
        items
    }

    fn secondary_buffer<'a>(
        &'a self,
        mut state: MutexGuard<'a, State>,
        id: u32,
        buffer: gst::Buffer,
        times: Times,
    ) -> Vec<GateItem> {
        let span = times.start..times.end.max(times.start + 1);
        let pieces = loop {
            let Some(stream) = state.stream(id) else {
                return Vec::new();
            };
            if !state.running || stream.flushing {
                return Vec::new();
            }
            let now = state.now();
            let verdict = state.gate.secondary(span.clone(), now);
            if state.gate.is_main_eos() {
                // Nobody else places segment splits any more.
                state.rotation.main_gone(span.end);
            }
            let placed = state.rotation.split(span.clone()).is_some();
            match verdict {
                SecondaryVerdict::Decided { pieces, .. } if placed => break pieces,
                _ => match now {
                    Some(now) if now > span.end + state.latency + state.main_stream_timeout => {
                        // The main stream (a muted camera, a stalled decoder) is not waited
                        // for beyond what the pipeline's latency allows.
                        if !state.warned_main_stalled {
                            state.warned_main_stalled = true;
                            gst::warning!(
                                CAT,
                                imp = self,
                                "main stream is more than {} ms late: recording the other streams without waiting for it",
                                (state.latency + state.main_stream_timeout) / 1_000_000
                            );
                        }
                        state.gate.main_stalled(span.start, span.end);
                        if let Some(origin) = state.gate.origin() {
                            state.rotation.start(origin);
                        }
                        state.rotation.main_gone(span.end);
                        let transitions = state.gate.take_transitions();
                        self.changed.notify_all();
                        if !transitions.is_empty() {
                            self.after_transitions(state, transitions);
                            state = self.lock_state();
                        }
                    }
                    Some(_) => {
                        state = self
                            .changed
                            .wait_timeout(state, std::time::Duration::from_millis(20))
                            .unwrap_or_else(|poisoned| poisoned.into_inner())
                            .0;
                    }
                    None => {
                        state = self
                            .changed
                            .wait(state)
                            .unwrap_or_else(|poisoned| poisoned.into_inner());
                    }
                },
            }
        };
        let transitions = state.gate.take_transitions();
        let unrecorded = match state.gate.mode() {
            PauseMode::Cut => Fate::Drop,
            PauseMode::Mask => Fate::Blank,
        };
        let parts = pieces
            .into_iter()
            .map(|piece| Part {
                span: piece.span,
                fate: if piece.recorded {
                    Fate::Keep
                } else {
                    unrecorded
                },
            })
            .collect();
        let (items, ask_keyframe) = self.render(&mut state, id, buffer, times, parts);
        let ghost = state.stream(id).map(|s| s.ghost.clone());
        self.after_transitions(state, transitions);
        if ask_keyframe && let Some(ghost) = ghost {
            request_keyframe(&ghost);
        }
        items
    }

    /// Makes the output of a buffer from its parts: the stream's own masks applied, split at
    /// segment starts (each preceded by a split item when the stream enters it), retimed to
    /// its segment. Returns the items and whether to ask upstream for a keyframe.
    fn render(
        &self,
        state: &mut State,
        id: u32,
        buffer: gst::Buffer,
        times: Times,
        parts: Vec<Part>,
    ) -> (Vec<GateItem>, bool) {
        let span = times.start..times.end.max(times.start + 1);
        let segments = state
            .rotation
            .split(span.clone())
            .unwrap_or_else(|| vec![(span.clone(), state.rotation.current())]);
        let base = state.output_base();
        let segment_starts: Vec<u64> = segments
            .iter()
            .map(|(_, index)| state.segment_recording_start(*index))
            .collect();
        let origin = state.gate.origin().unwrap_or(0);
        let parts = {
            let Some(stream) = state.stream_mut(id) else {
                return (Vec::new(), false);
            };
            stream.mask.advance(&span);
            stream.dtmf.advance(&span);
            apply_masks(stream, parts)
        };
        // Where each part starts in the recording.
        let part_times: Vec<u64> = parts
            .iter()
            .map(|part| state.gate.recording_time(part.span.start))
            .collect();
        let pts_recording_time = state.gate.recording_time(times.start);
        let Some(stream) = state.stream_mut(id) else {
            return (Vec::new(), false);
        };
        let mut items = Vec::new();
        let mut ask_keyframe = false;
        match (stream.pcm, stream.kind) {
            (Some(pcm), _) => {
                let Ok(map) = buffer.map_readable() else {
                    return (items, false);
                };
                for ((segment_span, index), segment_start) in segments.iter().zip(&segment_starts) {
                    enter(stream, *index, &mut items);
                    let within: Vec<Part> = parts
                        .iter()
                        .filter_map(|part| clip(part, segment_span))
                        .collect();
                    let Some(first) = within.iter().find(|p| p.fate != Fate::Drop) else {
                        continue;
                    };
                    let data = pcm.render(&map, times.start, &within);
                    if data.is_empty() {
                        continue;
                    }
                    let at = parts
                        .iter()
                        .zip(&part_times)
                        .find(|(part, _)| part.span.contains(&first.span.start))
                        .map(|(part, rt)| rt + (first.span.start - part.span.start))
                        .unwrap_or(pts_recording_time);
                    let out_duration = pcm.duration_ns(data.len());
                    let mut out = gst::Buffer::from_mut_slice(data);
                    {
                        let out = out.get_mut().unwrap();
                        out.set_pts(gst::ClockTime::from_nseconds(
                            base + at.saturating_sub(*segment_start),
                        ));
                        out.set_duration(gst::ClockTime::from_nseconds(out_duration));
                    }
                    note_output(stream, &out, base);
                    items.push(GateItem::Buffer(out));
                }
            }
            // A video frame is an instant: its capture time decides.
            (None, Kind::Video) => {
                let (index, segment_start) = segment_at(&segments, &segment_starts, times.start);
                enter(stream, index, &mut items);
                let fate = fate_at(&parts, times.start);
                let keyframe = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
                let pts = base + pts_recording_time.saturating_sub(segment_start);
                let out = match fate {
                    _ if times.start < origin => None,
                    Fate::Keep if stream.is_encoded_video() => {
                        if stream.awaits_keyframe && !keyframe {
                            ask_keyframe = stream.keyframe_request_due(times.start);
                            None
                        } else {
                            stream.awaits_keyframe = false;
                            Some(retime(buffer, pts, times.reorder, stream))
                        }
                    }
                    Fate::Keep => Some(retime(buffer, pts, times.reorder, stream)),
                    Fate::Blank if !stream.is_encoded_video() => {
                        blank(&buffer, stream).map(|black| retime(black, pts, None, stream))
                    }
                    // Encoded video cannot be blanked without re-encoding: left out.
                    _ => {
                        stream.awaits_keyframe = true;
                        None
                    }
                };
                if let Some(out) = out {
                    note_output(stream, &out, base);
                    items.push(GateItem::Buffer(out));
                }
            }
            // Encoded audio packets cannot be split: their middle decides.
            (None, Kind::Audio) => {
                let middle = span.start + (span.end - span.start) / 2;
                let (index, segment_start) = segment_at(&segments, &segment_starts, middle);
                enter(stream, index, &mut items);
                if fate_at(&parts, middle) == Fate::Keep {
                    let first = parts
                        .iter()
                        .zip(&part_times)
                        .find(|(part, _)| part.fate == Fate::Keep)
                        .map(|(part, rt)| (part.span.start, *rt));
                    let at = match first {
                        Some((start, rt)) => rt.saturating_sub(start.saturating_sub(span.start)),
                        None => pts_recording_time,
                    };
                    // A starved RTP jitter buffer can stamp packets back in time (1.5 s seen
                    // with ten WebRTC calls on two cores): MP4 cannot show audio going back,
                    // and no speech is dropped, so the packet follows the one before.
                    let wanted = base + at.saturating_sub(segment_start);
                    let pts = wanted.max(stream.audio_end.unwrap_or(0));
                    if pts > wanted {
                        gst::debug!(
                            CAT,
                            imp = self,
                            "stream {id}: audio packet stamped {} ms before the previous one's end, put after it",
                            (pts - wanted) / 1_000_000
                        );
                    }
                    stream.audio_end = Some(pts + (times.end - times.start));
                    let out = retime(buffer, pts, times.reorder, stream);
                    note_output(stream, &out, base);
                    items.push(GateItem::Buffer(out));
                }
            }
        }
        (items, ask_keyframe)
    }

    /// Records pauses/resumes in the manifest and on the bus, after releasing the lock: a bus
    /// sync handler may call back into the element.
    pub(super) fn after_transitions(
        &self,
        mut state: MutexGuard<'_, State>,
        transitions: Vec<Transition>,
    ) {
        let started = state.manifest.started_utc.is_none() && state.gate.origin().is_some();
        if started {
            state.manifest.started_utc = Some(super::state::now_utc());
        }
        if transitions.is_empty() && !started {
            return;
        }
        let mut messages = Vec::new();
        for transition in transitions {
            messages.push(self.note_transition(&mut state, transition));
        }
        let snapshot = state.manifest_snapshot(false);
        drop(state);
        self.write_manifest(snapshot);
        for message in messages {
            let _ = self.obj().post_message(message);
        }
    }
}

/// Pushes all but the last item from the probe (past the probe itself), returns the last.
fn emit(
    pad: &gst::Pad,
    info: &mut gst::PadProbeInfo,
    mut items: Vec<GateItem>,
) -> gst::PadProbeReturn {
    let Some(last) = items.pop() else {
        return gst::PadProbeReturn::Handled;
    };
    if !items.is_empty() || matches!(last, GateItem::Split(_)) {
        PUSHING.set(true);
        for item in items {
            let pushed = match item {
                GateItem::Buffer(buffer) => pad.push(buffer).is_ok(),
                GateItem::Split(index) => pad.push_event(split_event(index)),
            };
            if !pushed {
                break;
            }
        }
        PUSHING.set(false);
    }
    match last {
        GateItem::Buffer(buffer) => {
            info.data = Some(gst::PadProbeData::Buffer(buffer));
            gst::PadProbeReturn::Ok
        }
        GateItem::Split(index) => {
            PUSHING.set(true);
            pad.push_event(split_event(index));
            PUSHING.set(false);
            gst::PadProbeReturn::Handled
        }
    }
}

/// A split item when the stream's output enters segment `index`.
fn enter(stream: &mut Stream, index: usize, items: &mut Vec<GateItem>) {
    if index > stream.output_segment {
        stream.enter_segment(index);
        items.push(GateItem::Split(index));
    }
}

/// The stream's own masks (paused alone, DTMF) blank what would be kept.
fn apply_masks(stream: &Stream, parts: Vec<Part>) -> Vec<Part> {
    let mut out: Vec<Part> = Vec::new();
    for part in parts {
        if part.fate != Fate::Keep {
            out.push(part);
            continue;
        }
        for masked in stream.mask.pieces(part.span.clone()) {
            for tone in stream.dtmf.pieces(masked.span.clone()) {
                let fate = if masked.recorded || tone.recorded {
                    Fate::Blank
                } else {
                    Fate::Keep
                };
                match out.last_mut() {
                    Some(last) if last.fate == fate && last.span.end == tone.span.start => {
                        last.span.end = tone.span.end
                    }
                    _ => out.push(Part {
                        span: tone.span,
                        fate,
                    }),
                }
            }
        }
    }
    out
}

fn clip(part: &Part, range: &Range<u64>) -> Option<Part> {
    let start = part.span.start.max(range.start);
    let end = part.span.end.min(range.end);
    (start < end).then_some(Part {
        span: start..end,
        fate: part.fate,
    })
}

fn fate_at(parts: &[Part], t: u64) -> Fate {
    parts
        .iter()
        .find(|part| part.span.contains(&t))
        .map_or(Fate::Drop, |part| part.fate)
}

/// The segment (index, recording-time start) instant `t` falls in.
fn segment_at(segments: &[(Range<u64>, usize)], starts: &[u64], t: u64) -> (usize, u64) {
    segments
        .iter()
        .zip(starts)
        .find(|((span, _), _)| span.contains(&t))
        .or_else(|| segments.iter().zip(starts).next_back())
        .map_or((0, 0), |((_, index), start)| (*index, *start))
}

impl Stream {
    /// Whether to ask upstream for a keyframe now (at most once a second of media).
    fn keyframe_request_due(&mut self, at: u64) -> bool {
        let due = self
            .last_keyframe_request
            .is_none_or(|last| at >= last + KEYFRAME_REQUEST_INTERVAL);
        if due {
            self.last_keyframe_request = Some(at);
        }
        due
    }
}

fn signed_ns(value: gst::Signed<gst::ClockTime>) -> i128 {
    match value {
        gst::Signed::Positive(t) => t.nseconds() as i128,
        gst::Signed::Negative(t) => -(t.nseconds() as i128),
    }
}

fn note_output(stream: &mut Stream, out: &gst::Buffer, base: u64) {
    if stream.first_output.is_none() {
        let decode = out
            .dts_or_pts()
            .map_or(OUTPUT_OFFSET, gst::ClockTime::nseconds);
        stream.first_output = Some(decode.saturating_sub(OUTPUT_OFFSET));
    }
    let start = out.pts().map_or(base, gst::ClockTime::nseconds) - base;
    let end = start + out.duration().map_or(0, gst::ClockTime::nseconds);
    stream.record.note_output(start, end);
}

/// Asks upstream of a stream for a keyframe (encoded video starts and resumes on one).
pub(super) fn request_keyframe(ghost: &gst::GhostPad) {
    gst::debug!(CAT, obj = ghost, "asking for a keyframe");
    let event = gst_video::UpstreamForceKeyUnitEvent::builder()
        .all_headers(true)
        .build();
    ghost.push_event(event);
}

/// Puts `buffer` at `pts`; its DTS keeps its distance to the PTS (B-frames), and stays
/// non-decreasing and not after the PTS.
fn retime(
    mut buffer: gst::Buffer,
    pts: u64,
    reorder: Option<i128>,
    stream: &mut Stream,
) -> gst::Buffer {
    let dts = reorder.map(|reorder| {
        let dts = (pts as i128 - reorder).clamp(0, pts as i128) as u64;
        dts.max(stream.last_output_dts.unwrap_or(0)).min(pts)
    });
    if dts.is_some() {
        stream.last_output_dts = dts;
    }
    let buffer_mut = buffer.make_mut();
    buffer_mut.set_pts(gst::ClockTime::from_nseconds(pts));
    buffer_mut.set_dts(dts.map(gst::ClockTime::from_nseconds));
    buffer
}

/// A black frame or silence like `buffer` (raw media only; encoded media cannot be blanked
/// without re-encoding).
fn blank(buffer: &gst::Buffer, stream: &Stream) -> Option<gst::Buffer> {
    if let Some(video) = &stream.video {
        let black = copy_times(gst::Buffer::with_size(video.size()).ok()?, buffer);
        let mut frame = gst_video::VideoFrame::from_buffer_writable(black, video).ok()?;
        let [y, u, v, _] = frame.planes_data_mut();
        pcm::fill_black_i420([y, u, v]);
        return Some(frame.into_buffer());
    }
    stream.pcm?;
    let silent = gst::Buffer::from_mut_slice(vec![0u8; buffer.size()]);
    Some(copy_times(silent, buffer))
}

fn copy_times(mut out: gst::Buffer, from: &gst::Buffer) -> gst::Buffer {
    {
        let out = out.get_mut().unwrap();
        out.set_pts(from.pts());
        out.set_duration(from.duration());
    }
    out
}
