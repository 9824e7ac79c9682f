//! Segment switching of a rotating recording (the decisions are `crate::rotation`): each
//! segment has its own muxer and, for streams encoded here, its own encoder, so every file is
//! complete and playable on its own and starts with a keyframe.
//!
//! 1. The gate path sends a `recordmux-split` event down a stream before its first media of
//!    segment k. When it reaches the queue at the end of the stream's head, the next
//!    segment's muxer and tails are prepared (once, by the first stream to arrive; the new
//!    muxer's output is held back), the stream's old tail gets EOS, and the queue is linked
//!    to the new tail.
//! 2. Once every stream ended segment k-1, its muxer finishes: the output side
//!    (`output.rs`) writes that segment's manifest, tells the sink a new file starts (a
//!    downstream force-key-unit event, as `multifilesink next-file=key-unit-event` and
//!    `encryptedfilesink` with a `%d` location take it), points the source pad at the new
//!    muxer, lets it go, and removes the old muxer and tails.
//!
//! Locks: `switching` (serialises preparation) is taken before `state`, never while holding
//! it; no GStreamer call is made under `state`.

use gst::prelude::*;
use gst::subclass::prelude::*;

use super::CAT;
use super::branch::{Kind, Tail};
use super::gate_path::SPLIT_EVENT;
use super::imp::{RecordMux, lock};
use super::state::{NextMuxer, NextTail};

impl RecordMux {
    /// The probe at the end of stream `id`'s head (the queue's source pad).
    pub(super) fn install_switch_probe(&self, id: u32, pad: &gst::Pad) {
        let element = self.obj().downgrade();
        pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |pad, info| {
            let Some(element) = element.upgrade() else {
                return gst::PadProbeReturn::Ok;
            };
            let Some(event) = info.event() else {
                return gst::PadProbeReturn::Ok;
            };
            match event.view() {
                gst::EventView::CustomDownstream(custom) => {
                    let Some(index) = custom
                        .structure()
                        .filter(|s| s.name() == SPLIT_EVENT)
                        .and_then(|s| s.get::<u32>("segment").ok())
                    else {
                        return gst::PadProbeReturn::Ok;
                    };
                    element.imp().switch_stream(id, index as usize, pad);
                    info.data = None;
                    gst::PadProbeReturn::Handled
                }
                gst::EventView::Eos(_) => {
                    element.imp().end_prepared_tails(id);
                    gst::PadProbeReturn::Ok
                }
                gst::EventView::FlushStop(_) => {
                    if let Some(stream) = element.imp().lock_state().stream_mut(id) {
                        stream.ended_at_head = false;
                    }
                    gst::PadProbeReturn::Ok
                }
                _ => gst::PadProbeReturn::Ok,
            }
        });
    }

    /// Moves stream `id` to segment `index`: its old tail ends, its head feeds the new one.
    fn switch_stream(&self, id: u32, index: usize, head_exit: &gst::Pad) {
        if let Err(err) = self.prepare_segment(index) {
            gst::element_imp_error!(
                self,
                gst::CoreError::Failed,
                ("cannot start segment {index} of the recording: {err}")
            );
            return;
        }
        let Some(next) = self
            .lock_state()
            .stream_mut(id)
            .and_then(|stream| stream.next.remove(&index))
        else {
            return;
        };
        if let Some(old_entry) = head_exit.peer() {
            // The old segment's muxer gets this stream's end.
            old_entry.send_event(gst::event::Eos::new());
            let _ = head_exit.unlink(&old_entry);
        }
        if let Err(err) = head_exit.link(&next.entry) {
            gst::element_imp_error!(
                self,
                gst::CoreError::Negotiation,
                ("cannot link stream {id} to segment {index}: {err:?}")
            );
            return;
        }
        let mut state = self.lock_state();
        let current = state.output_segment;
        if let Some(stream) = state.stream_mut(id) {
            stream.mux_pad = next.mux_pad;
            let old_tail = std::mem::replace(&mut stream.tail, next.elements);
            state
                .retired
                .extend(old_tail.into_iter().map(|element| (index - 1, element)));
        }
        gst::debug!(
            CAT,
            imp = self,
            "stream {id} records into segment {index} (output at {current})"
        );
    }

    /// A stream ended: the segments prepared for it and not reached get its end too.
    fn end_prepared_tails(&self, id: u32) {
        let entries: Vec<gst::Pad> = self
            .lock_state()
            .stream_mut(id)
            .map(|stream| {
                stream.ended_at_head = true;
                std::mem::take(&mut stream.next)
                    .into_values()
                    .map(|next| next.entry)
                    .collect()
            })
            .unwrap_or_default();
        for entry in entries {
            entry.send_event(gst::event::Eos::new());
        }
    }

    /// Creates the muxer and tails of segment `index` unless done already.
    fn prepare_segment(&self, index: usize) -> Result<(), String> {
        let settings = self.settings_snapshot();
        let _preparing = lock(&self.switching);
        let streams: Vec<(u32, Kind, Option<super::branch::Recipe>)> = {
            let state = self.lock_state();
            if state.next_muxers.iter().any(|next| next.index == index)
                || index <= state.output_segment
            {
                return Ok(());
            }
            state
                .streams
                .iter()
                // The gate runs ahead of the queue: what matters is whether the stream's end
                // has left the head.
                .filter(|stream| !stream.ended_at_head)
                .map(|stream| (stream.id, stream.kind, stream.recipe.clone()))
                .collect()
        };
        let muxer = self
            .make_muxer(&settings, &format!("muxer{index}"))
            .map_err(|err| err.to_string())?;
        let bin = self.obj();
        bin.add(&muxer).map_err(|err| err.to_string())?;
        let src = muxer.static_pad("src").expect("muxers have a src pad");
        // Held back until the segment before has finished.
        let block = src
            .add_probe(gst::PadProbeType::BLOCK_DOWNSTREAM, |_, _| {
                gst::PadProbeReturn::Ok
            })
            .ok_or("cannot hold the new muxer back")?;
        let mut tails = Vec::new();
        for (id, kind, recipe) in streams {
            let mux_pad = muxer
                .request_pad_simple(&format!("{}_%u", kind.name()))
                .ok_or_else(|| format!("the muxer gives no {} pad", kind.name()))?;
            self.install_caps_guard(id, &mux_pad);
            let tail = match &recipe {
                Some(recipe) => Tail::build(recipe)?,
                None => Tail {
                    elements: Vec::new(),
                },
            };
            for element in &tail.elements {
                bin.add(element).map_err(|err| err.to_string())?;
            }
            if let Some(exit) = tail.exit() {
                exit.link(&mux_pad)
                    .map_err(|err| format!("the muxer refuses stream {id}: {err:?}"))?;
            }
            for element in &tail.elements {
                element
                    .sync_state_with_parent()
                    .map_err(|err| err.to_string())?;
            }
            let entry = tail.entry().unwrap_or_else(|| mux_pad.clone());
            tails.push((
                id,
                NextTail {
                    elements: tail.elements,
                    entry,
                    mux_pad,
                },
            ));
        }
        muxer
            .sync_state_with_parent()
            .map_err(|err| err.to_string())?;
        let mut ended = Vec::new();
        {
            let mut state = self.lock_state();
            state.next_muxers.push_back(NextMuxer {
                index,
                muxer,
                block: (src, block),
                streams: tails.iter().map(|(id, _)| *id).collect(),
            });
            for (id, next) in tails {
                let Some(stream) = state.stream_mut(id) else {
                    continue;
                };
                // The stream's end may have left the head since the list was taken (and
                // `end_prepared_tails` found no tail of this segment): it ends here, or the
                // segment's muxer waits for it forever (the long-call pipeline hung so in CI).
                if stream.ended_at_head {
                    ended.push((id, next.entry));
                } else {
                    stream.next.insert(index, next);
                }
            }
        }
        for (id, entry) in ended {
            gst::debug!(
                CAT,
                imp = self,
                "stream {id} ended while segment {index} was prepared"
            );
            entry.send_event(gst::event::Eos::new());
        }
        gst::info!(CAT, imp = self, "prepared segment {index}");
        Ok(())
    }

    /// The current segment's muxer finished and the next one is prepared: make it the output.
    /// Called from the old muxer's streaming thread, which must not stop itself: the hand-over
    /// runs asynchronously.
    pub(super) fn hand_over(&self, next: NextMuxer, retired: Vec<gst::Element>) {
        let old = lock(&self.muxer).replace(next.muxer.clone());
        self.obj().call_async(move |element| {
            let imp = element.imp();
            let src = next.muxer.static_pad("src").expect("muxers have a src pad");
            if let Err(err) = imp.srcpad.set_target(Some(&src)) {
                gst::element_error!(
                    element,
                    gst::CoreError::Failed,
                    ("cannot output segment {}: {err}", next.index)
                );
            }
            next.block.0.remove_probe(next.block.1);
            for done in old.into_iter().chain(retired) {
                let _ = done.set_state(gst::State::Null);
                let _ = element.remove(&done);
            }
            gst::info!(CAT, obj = element, "recording segment {}", next.index);
        });
    }
}
