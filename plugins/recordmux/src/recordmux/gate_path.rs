//! The gate path of every stream: a pad probe on the branch's normalised output asks
//! `crate::gate` what to do with each buffer and event, and retimes what is recorded. The
//! main stream decides; secondaries follow, waiting until the timeline is final over their
//! buffers (in a live pipeline that is at once, except while a resume of encoded video waits
//! for its keyframe; a main stream late beyond `main-stream-timeout` is not waited for).
//!
//! The probe never blocks on the muxer: serialized queries (allocation, drain) are answered
//! here, since the muxer only answers them once every stream has data, which a secondary
//! waiting for this stream cannot give (the deadlock of a live H.264 passthrough + raw audio
//! recording).

use std::sync::MutexGuard;

use gst::prelude::*;
use gst::subclass::prelude::*;

use super::CAT;
use super::branch::Kind;
use super::imp::RecordMux;
use super::state::State;
use crate::gate::{MainVerdict, PauseMode, SecondaryVerdict, Transition};
use crate::pcm;

/// Output timestamps start here, not at 0, so that a DTS before its PTS (B-frames) is still a
/// valid timestamp; the output segment starts here too, so recording time 0 is running time 0.
pub const OUTPUT_OFFSET: u64 = 1000 * 3600 * 1_000_000_000;

/// Encoded video waiting for a keyframe asks upstream for one at most this often.
const KEYFRAME_REQUEST_INTERVAL: u64 = 1_000_000_000;

/// A buffer's times at the gate, in running time.
#[derive(Debug, Clone, Copy)]
struct Times {
    start: u64,
    end: u64,
    /// PTS minus DTS (decode reordering), if the buffer has a DTS.
    reorder: Option<i128>,
}

impl RecordMux {
    /// The gate probe: every buffer, event and serialized query of stream `id` after
    /// normalisation (the source pad of `filter`).
    pub(super) fn install_gate(&self, id: u32, filter: &gst::Element) {
        let pad = filter
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
            move |_, info| {
                let Some(element) = element.upgrade() else {
                    return gst::PadProbeReturn::Ok;
                };
                let imp = element.imp();
                if let Some(query) = info.query_mut() {
                    return imp.gate_query(query);
                }
                match info.data.take() {
                    Some(gst::PadProbeData::Buffer(buffer)) => match imp.gate_buffer(id, buffer) {
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
                                if let Some(buffer) = imp.gate_buffer(id, buffer) {
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
                        match imp.gate_event(id, event, &filter) {
                            Some(event) => {
                                info.data = Some(gst::PadProbeData::Event(event));
                                gst::PadProbeReturn::Ok
                            }
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
                if raw && !stream.caps_locked {
                    // Lock the branch to its first caps: later changes are converted.
                    filter.set_property("caps", &caps);
                    stream.caps_locked = true;
                }
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
                        let transitions = state.gate.take_transitions();
                        self.changed.notify_all();
                        self.after_transitions(state, transitions);
                    }
                }
                None
            }
            gst::EventView::Eos(_) => {
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
                Some(event)
            }
            _ => Some(event),
        }
    }

    /// Decides one buffer of stream `id`; returns it retimed (or blanked, or cut), or `None`
    /// to drop it.
    fn gate_buffer(&self, id: u32, buffer: gst::Buffer) -> Option<gst::Buffer> {
        self.learn_liveness(id);
        let mut state = self.lock_state();
        let main = state.main_stream();
        let stream = state.stream_mut(id)?;
        stream.record.buffers_in += 1;
        let segment = stream.segment.clone()?;
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
            return None;
        };
        let reorder = buffer
            .dts()
            .and_then(|dts| segment.to_running_time_full(dts))
            .map(|dts| start as i128 - signed_ns(dts));
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
    ) -> Option<gst::Buffer> {
        let stream = state.stream(id)?;
        let encoded_video = stream.is_encoded_video();
        // Known once the main stream's branch exists (other streams may start first).
        state.gate.set_main_needs_keyframes(encoded_video);
        let keyframe = !encoded_video || !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
        let started = state.gate.origin().is_some();
        let verdict = state.gate.main(times.start..times.end, keyframe);
        if !started && state.gate.origin().is_some() {
            // The first frame's decode delay (B-frames) delays every stream's output by as
            // much: fragmented MP4 has no edit list to hide it, and A/V must stay in sync.
            state.decode_delay = times.reorder.unwrap_or(0).clamp(0, 1_000_000_000) as u64;
        }
        let base = state.output_base();
        let transitions = state.gate.take_transitions();
        let wants_keyframe = encoded_video && !keyframe && state.gate.awaiting_keyframe();
        self.changed.notify_all();
        let stream = state.stream_mut(id)?;
        let output = match verdict {
            MainVerdict::Record { recording_time } => {
                Some(retime(buffer, base + recording_time, times.reorder, stream))
            }
            MainVerdict::Mask { recording_time } => blank(&buffer, stream)
                .map(|blank| retime(blank, base + recording_time, None, stream)),
            MainVerdict::Drop => None,
        };
        let ask_keyframe = wants_keyframe && stream.keyframe_request_due(times.start);
        note_output(stream, output.as_ref(), base);
        let ghost = stream.ghost.clone();
        self.after_transitions(state, transitions);
        if ask_keyframe {
            request_keyframe(&ghost);
        }
        output
    }

    fn secondary_buffer<'a>(
        &'a self,
        mut state: MutexGuard<'a, State>,
        id: u32,
        buffer: gst::Buffer,
        times: Times,
    ) -> Option<gst::Buffer> {
        let span = if times.end > times.start {
            times.start..times.end
        } else {
            times.start..times.start + 1
        };
        let (pieces, recording_time) = loop {
            let stream = state.stream(id)?;
            if !state.running || stream.flushing {
                return None;
            }
            let now = state.now();
            match state.gate.secondary(span.clone(), now) {
                SecondaryVerdict::Decided {
                    pieces,
                    recording_time,
                } => break (pieces, recording_time),
                SecondaryVerdict::Wait => match now {
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
        let mode = state.gate.mode();
        let base = state.output_base();
        let pts_output = base + state.gate.recording_time(times.start);
        let origin = state.gate.origin().unwrap_or(0);
        let stream = state.stream_mut(id)?;
        let output = match (stream.pcm, stream.kind) {
            (Some(pcm), _) => recording_time.and_then(|recording_time| {
                let map = buffer.map_readable().ok()?;
                let data = match mode {
                    PauseMode::Cut => pcm.cut(&map, times.start, &pieces),
                    PauseMode::Mask => pcm.mask(&map, times.start, &pieces),
                };
                if data.is_empty() {
                    return None;
                }
                let out_duration = pcm.duration_ns(data.len());
                let mut out = gst::Buffer::from_mut_slice(data);
                {
                    let out = out.get_mut().unwrap();
                    out.set_pts(gst::ClockTime::from_nseconds(base + recording_time));
                    out.set_duration(gst::ClockTime::from_nseconds(out_duration));
                }
                Some(out)
            }),
            // A video frame is an instant: recorded if its capture time is.
            (None, Kind::Video) => {
                let recorded = pieces
                    .iter()
                    .any(|piece| piece.recorded && piece.span.contains(&times.start));
                let keyframe = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
                if times.start < origin {
                    None
                } else if recorded && stream.is_encoded_video() {
                    if stream.awaits_keyframe && !keyframe {
                        if stream.keyframe_request_due(times.start) {
                            request_keyframe(&stream.ghost);
                        }
                        None
                    } else {
                        stream.awaits_keyframe = false;
                        Some(retime(buffer, pts_output, times.reorder, stream))
                    }
                } else if recorded {
                    Some(retime(buffer, pts_output, times.reorder, stream))
                } else {
                    stream.awaits_keyframe = true;
                    match mode {
                        PauseMode::Mask if !stream.is_encoded_video() => blank(&buffer, stream)
                            .map(|blank| retime(blank, pts_output, None, stream)),
                        _ => None,
                    }
                }
            }
            // Encoded audio packets cannot be split: kept when their middle is recorded.
            (None, Kind::Audio) => {
                let span = times.start..times.end.max(times.start + 1);
                match recording_time {
                    Some(recording_time) if pcm::keep_whole(&span, &pieces) => {
                        Some(retime(buffer, base + recording_time, times.reorder, stream))
                    }
                    _ => None,
                }
            }
        };
        note_output(stream, output.as_ref(), base);
        self.after_transitions(state, transitions);
        output
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

impl super::state::Stream {
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

fn note_output(stream: &mut super::state::Stream, output: Option<&gst::Buffer>, base: u64) {
    if let Some(out) = output {
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
}

/// Asks upstream of a stream for a keyframe (encoded video starts and resumes on one).
pub(super) fn request_keyframe(ghost: &gst::GhostPad) {
    gst::debug!(CAT, obj = ghost, "asking for a keyframe");
    let event = gst_video::UpstreamForceKeyUnitEvent::builder()
        .all_headers(true)
        .build();
    ghost.push_event(event);
}

/// Puts `buffer` at `pts`; its DTS keeps its distance to the PTS (B-frames), and
/// stays non-decreasing and not after the PTS.
fn retime(
    mut buffer: gst::Buffer,
    pts: u64,
    reorder: Option<i128>,
    stream: &mut super::state::Stream,
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
fn blank(buffer: &gst::Buffer, stream: &super::state::Stream) -> Option<gst::Buffer> {
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
