//! The output side: recordmux's source pad. Every byte the muxer produces passes here on its
//! way to the sink: the mp4mux 1.22 Opus sample-entry fix, the hash of what the sink
//! *accepted* (not of what was offered), the periodic manifest, and at EOS the final
//! manifest, which says `complete` only if the sink took every byte and the end of the
//! stream (a full disk under encryptedfilesink makes it say what happened instead).

use std::sync::atomic::Ordering;

use gst::prelude::*;
use gst::subclass::prelude::*;

use super::CAT;
use super::imp::{RecordMux, lock};
use super::state::{ManifestSnapshot, State, now_utc};
use crate::gate::{Transition, TransitionKind};
use crate::manifest::{self, ManifestEvent};

/// The recordmux element a proxy pad function runs for (the proxy pad's parent is the ghost
/// pad, whose parent is the element).
fn element_of(parent: Option<&gst::Object>) -> Option<super::RecordMux> {
    parent?.parent()?.downcast::<super::RecordMux>().ok()
}

impl RecordMux {
    /// The `src` ghost pad, whose internal pad sees what the muxer pushes and what the sink
    /// answers.
    pub(super) fn new_src_pad(template: &gst::PadTemplate) -> gst::GhostPad {
        gst::GhostPad::builder_from_template(template)
            .name("src")
            .proxy_pad_chain_function(|pad, parent, buffer| match element_of(parent) {
                Some(element) => element.imp().output_buffer(pad, parent, buffer),
                None => gst::ProxyPad::chain_default(pad, parent, buffer),
            })
            .proxy_pad_chain_list_function(|pad, parent, list| match element_of(parent) {
                Some(element) => element.imp().output_list(pad, parent, list),
                None => gst::ProxyPad::chain_list_default(pad, parent, list),
            })
            .proxy_pad_event_function(|pad, parent, event| match element_of(parent) {
                Some(element) => element.imp().output_event(pad, parent, event),
                None => gst::Pad::event_default(pad, parent, event),
            })
            .proxy_pad_query_function(|pad, parent, query| {
                // The muxer must not seek back to rewrite headers: the bytes as pushed are
                // the file (and what the manifest hashes), and an encrypting sink cannot
                // seek anyway.
                if let gst::QueryViewMut::Seeking(seeking) = query.view_mut() {
                    seeking.set(false, gst::format::Bytes::ZERO, gst::format::Bytes::NONE);
                    return true;
                }
                gst::Pad::query_default(pad, parent, query)
            })
            .event_function(|pad, parent, event| {
                if let gst::EventView::Latency(latency) = event.view()
                    && let Some(element) = parent.and_then(|p| p.downcast_ref::<super::RecordMux>())
                {
                    element.imp().lock_state().latency = latency.latency().nseconds();
                }
                gst::Pad::event_default(pad, parent, event)
            })
            .build()
    }

    fn output_buffer(
        &self,
        pad: &gst::ProxyPad,
        parent: Option<&gst::Object>,
        mut buffer: gst::Buffer,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        if self
            .header_buffers_left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
        {
            fix_opus_header(&mut buffer);
            self.read_tracks(&buffer);
        } else {
            self.shift_fragment(&mut buffer);
        }
        let result = gst::ProxyPad::chain_default(pad, parent, buffer.clone());
        self.after_output(std::slice::from_ref(&buffer), result);
        result
    }

    fn output_list(
        &self,
        pad: &gst::ProxyPad,
        parent: Option<&gst::Object>,
        list: gst::BufferList,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let buffers: Vec<gst::Buffer> = list.iter_owned().collect();
        let result = gst::ProxyPad::chain_list_default(pad, parent, list);
        self.after_output(&buffers, result);
        result
    }

    /// Hashes what the sink accepted, notes what it refused, rewrites the manifest now and
    /// then.
    fn after_output(
        &self,
        buffers: &[gst::Buffer],
        result: Result<gst::FlowSuccess, gst::FlowError>,
    ) {
        let mut state = self.lock_state();
        let mut snapshot = None;
        match result {
            Ok(_) => {
                for buffer in buffers {
                    if let Ok(map) = buffer.map_readable() {
                        state.output.hasher.update(&map);
                    }
                }
                let bytes = state.output.hasher.bytes();
                state.rotation.output_bytes(bytes);
            }
            Err(gst::FlowError::Flushing) => (),
            Err(error) if state.output.error.is_none() => {
                state.output.error = Some(format!(
                    "the sink refused data after {} bytes ({error:?}): the recording is incomplete",
                    state.output.hasher.bytes()
                ));
                snapshot = state.manifest_snapshot(false);
            }
            Err(_) => (),
        }
        if snapshot.is_none()
            && !state.output.finished
            && state.manifest_written_at.elapsed() >= state.manifest_interval
        {
            snapshot = state.manifest_snapshot(false);
        }
        drop(state);
        self.write_manifest(snapshot);
    }

    fn output_event(
        &self,
        pad: &gst::ProxyPad,
        parent: Option<&gst::Object>,
        event: gst::Event,
    ) -> bool {
        match event.view() {
            gst::EventView::Segment(segment) => {
                let segment = segment.segment();
                if segment.format() == gst::Format::Bytes && segment.start().value() > 0 {
                    gst::warning!(
                        CAT,
                        imp = self,
                        "muxer seeks in its output: the manifest hash covers the bytes as pushed"
                    );
                }
                gst::Pad::event_default(pad, parent, event)
            }
            gst::EventView::Eos(_) => self.output_eos(pad, parent, event),
            _ => gst::Pad::event_default(pad, parent, event),
        }
    }

    /// The final manifest is written and posted before the EOS goes to the sink (which signs
    /// it while finishing); if the sink then fails to finish, the manifest is rewritten and
    /// posted again to say so.
    fn output_eos(
        &self,
        pad: &gst::ProxyPad,
        parent: Option<&gst::Object>,
        event: gst::Event,
    ) -> bool {
        if self.end_segment() {
            return true;
        }
        let snapshot = {
            let mut state = self.lock_state();
            if state.output.finished {
                None
            } else {
                state.output.finished = true;
                Some(state.manifest_snapshot(true))
            }
        };
        let Some(snapshot) = snapshot else {
            return gst::Pad::event_default(pad, parent, event);
        };
        self.write_manifest(snapshot);
        self.post_manifest();
        let accepted = gst::Pad::event_default(pad, parent, event);
        // Refused while shutting down is no failure: the sink had the EOS.
        let flushing = |pad: &gst::Pad| pad.pad_flags().contains(gst::PadFlags::FLUSHING);
        let shutting_down = !self.lock_state().running
            || flushing(self.srcpad.upcast_ref())
            || self.srcpad.peer().is_none_or(|peer| flushing(&peer));
        if !accepted && !shutting_down {
            let snapshot = {
                let mut state = self.lock_state();
                state.output.error.get_or_insert_with(|| {
                    "the sink did not finish the recording (see its error message)".to_string()
                });
                state.manifest_snapshot(false)
            };
            self.write_manifest(snapshot);
            self.post_manifest();
        }
        accepted
    }

    /// The pipeline stopped (PAUSED to READY) before the end of the stream reached the sink:
    /// an error elsewhere (the sink's own checkpoint failing on a full disk stops the
    /// pipeline before any buffer is refused) or an application stopping without EOS. The
    /// manifest then says so, durably, instead of keeping its last periodic state.
    pub(super) fn stopped_unfinished(&self) {
        let snapshot = {
            let mut state = self.lock_state();
            if state.output.finished || state.output.hasher.bytes() == 0 {
                return;
            }
            state.output.finished = true;
            state.output.error.get_or_insert_with(|| {
                "the recording did not finish: the pipeline stopped before the end of the \
                 stream reached the sink (see the pipeline's error messages)"
                    .to_string()
            });
            state.manifest_snapshot(false).map(|mut snapshot| {
                snapshot.durable = true;
                snapshot
            })
        };
        gst::warning!(
            CAT,
            imp = self,
            "stopped before the end of the stream: the manifest says the recording is incomplete"
        );
        self.write_manifest(snapshot);
        self.post_manifest();
    }

    /// The muxer's EOS ends a segment of a rotating recording when the next segment is
    /// prepared: its manifest is final, the sink is told a new file starts, and the next
    /// muxer becomes the output. Returns whether it was so.
    fn end_segment(&self) -> bool {
        let (snapshot, next, retired, index) = {
            let mut state = self.lock_state();
            if state
                .next_muxers
                .front()
                .is_none_or(|next| next.index != state.output_segment + 1)
            {
                return false;
            }
            let index = state.output_segment;
            let Some((snapshot, next, retired)) = state.finish_segment() else {
                return false;
            };
            (snapshot, next, retired, index)
        };
        let location = snapshot.as_ref().map(|s| s.path.clone());
        let json = snapshot.as_ref().map(|s| s.json.clone());
        self.write_manifest(snapshot);
        if let Some(json) = json {
            self.post_manifest_json(json, location, Some(index));
        }
        gst::info!(
            CAT,
            imp = self,
            "segment {index} finished, segment {} starts",
            next.index
        );
        // As multifilesink's next-file=key-unit-event and encryptedfilesink take it.
        let new_file = gst_video::DownstreamForceKeyUnitEvent::builder()
            .all_headers(true)
            .count(next.index as u32)
            .build();
        self.srcpad.push_event(new_file);
        let header_buffers =
            if self.settings_snapshot().container == super::settings::Container::Mp4 {
                4
            } else {
                0
            };
        self.header_buffers_left
            .store(header_buffers, Ordering::Relaxed);
        self.hand_over(next, retired);
        true
    }

    /// Posts the manifest as a `recordmux-manifest` element message.
    fn post_manifest(&self) {
        let (json, location, segment) = {
            let state = self.lock_state();
            (
                state.manifest.to_json(),
                state.manifest_location.clone(),
                state.manifest.segment.as_ref().map(|s| s.index),
            )
        };
        self.post_manifest_json(json, location, segment);
    }

    fn post_manifest_json(
        &self,
        json: String,
        location: Option<std::path::PathBuf>,
        segment: Option<usize>,
    ) {
        let mut structure = gst::Structure::builder("recordmux-manifest").field("manifest", json);
        if let Some(location) = location {
            structure = structure.field("location", location.display().to_string());
        }
        if let Some(segment) = segment {
            structure = structure.field("segment", segment as u32);
        }
        let _ = self.obj().post_message(
            gst::message::Element::builder(structure.build())
                .src(&*self.obj())
                .build(),
        );
    }

    /// Writes a manifest snapshot unless a newer one was written already. Called with no
    /// lock held.
    pub(super) fn write_manifest(&self, snapshot: Option<ManifestSnapshot>) {
        let Some(snapshot) = snapshot else {
            return;
        };
        let mut written = lock(&self.manifest_written);
        if snapshot.sequence <= *written {
            return;
        }
        match manifest::write_atomically(&snapshot.path, &snapshot.json, snapshot.durable) {
            Ok(()) => *written = snapshot.sequence,
            Err(err) => {
                drop(written);
                if !self.manifest_error_posted.swap(true, Ordering::Relaxed) {
                    gst::element_imp_error!(
                        self,
                        gst::ResourceError::Write,
                        ("cannot write manifest '{}': {err}", snapshot.path.display())
                    );
                }
            }
        }
    }

    /// Notes a pause/resume in the manifest and makes its bus message.
    pub(super) fn note_transition(
        &self,
        state: &mut State,
        transition: Transition,
    ) -> gst::Message {
        let wall_time = now_utc();
        let action = match transition.kind {
            TransitionKind::Paused => "pause",
            TransitionKind::Resumed => "resume",
        };
        state.events.push(ManifestEvent {
            action,
            running_time_ns: transition.running_time,
            recording_time_ns: transition.recording_time,
            requested_running_time_ns: transition.requested_running_time,
            wall_time_utc: wall_time.clone(),
            reason: transition.reason.clone(),
        });
        gst::info!(
            CAT,
            imp = self,
            "{action} at running time {} (recording time {}, requested {}): {}",
            gst::ClockTime::from_nseconds(transition.running_time),
            gst::ClockTime::from_nseconds(transition.recording_time),
            gst::ClockTime::from_nseconds(transition.requested_running_time),
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
        gst::message::Element::builder(structure)
            .src(&*self.obj())
            .build()
    }
}

impl RecordMux {
    /// Learns the MP4 tracks from the header.
    fn read_tracks(&self, buffer: &gst::Buffer) {
        let Ok(map) = buffer.map_readable() else {
            return;
        };
        if let Some(tracks) = crate::isobmff::tracks(&map) {
            self.lock_state().match_tracks(&tracks);
        }
    }

    /// Puts a fragment's decode times where its track really starts (see `crate::isobmff`).
    fn shift_fragment(&self, buffer: &mut gst::Buffer) {
        let is_moof = buffer
            .map_readable()
            .is_ok_and(|map| map.get(4..8) == Some(b"moof"));
        if !is_moof {
            return;
        }
        let starts: Vec<(u32, u64)> = {
            let state = self.lock_state();
            state
                .tracks
                .iter()
                .map(|&(id, _, _)| (id, state.track_start(id)))
                .collect()
        };
        if starts.iter().all(|(_, start)| *start == 0) {
            return;
        }
        if let Ok(mut map) = buffer.make_mut().map_writable() {
            crate::isobmff::shift_decode_times(&mut map, |id| {
                starts
                    .iter()
                    .find(|(track, _)| *track == id)
                    .map_or(0, |(_, start)| *start)
            });
        }
    }
}

/// Corrects the Opus sample entry of mp4mux 1.22 in a header buffer (see `crate::isobmff`).
fn fix_opus_header(buffer: &mut gst::Buffer) {
    let needs_fix = buffer
        .map_readable()
        .is_ok_and(|map| map.windows(4).any(|w| w == b"dOps"));
    if needs_fix && let Ok(mut map) = buffer.make_mut().map_writable() {
        crate::isobmff::fix_opus_specific_box(&mut map);
    }
}
