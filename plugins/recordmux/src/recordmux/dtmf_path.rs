//! In-band DTMF masking (`dtmf-mask`): a copy of each raw audio stream at 8 kHz mono goes
//! through GStreamer's `dtmfdetect` and `crate::dtmf`'s tone tracker before the stream
//! reaches its gate, which waits (behind a hold-back queue) until the tracker has listened
//! `crate::dtmf::LOOKAHEAD_NS` past each buffer. The tracker's spans, and a window around
//! each digit dtmfdetect heard, are masked on that stream (`crate::stream_mask`);
//! dtmfdetect's messages, which name the digit, are swallowed.

use gst::prelude::*;
use gst::subclass::prelude::*;

use super::CAT;
use super::imp::RecordMux;

/// Masked around the buffer in which dtmfdetect heard a digit, in case the tracker missed
/// the tone: before (the tone started earlier) and after.
const DIGIT_BEFORE: u64 = 150_000_000;
const DIGIT_AFTER: u64 = 100_000_000;

impl RecordMux {
    /// Follows the 8 kHz copy of stream `id` on its way into `detector`, and consumes what
    /// comes out of it.
    pub(super) fn install_tone_tracker(&self, id: u32, detector: &gst::Element) {
        let out = detector
            .static_pad("src")
            .expect("dtmfdetect has a src pad");
        out.add_probe(
            gst::PadProbeType::DATA_DOWNSTREAM | gst::PadProbeType::QUERY_DOWNSTREAM,
            |_, info| {
                if let Some(query) = info.query_mut() {
                    match query.view_mut() {
                        gst::QueryViewMut::Caps(caps) => {
                            let result = caps.filter_owned().unwrap_or_else(gst::Caps::new_any);
                            caps.set_result(&result);
                        }
                        gst::QueryViewMut::AcceptCaps(accept) => accept.set_result(true),
                        _ => (),
                    }
                    return gst::PadProbeReturn::Handled;
                }
                info.data = None;
                gst::PadProbeReturn::Handled
            },
        );
        let element = self.obj().downgrade();
        let pad = detector
            .static_pad("sink")
            .expect("dtmfdetect has a sink pad");
        {
            let element = element.clone();
            pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
                if let (Some(element), Some(gst::EventView::Eos(_))) =
                    (element.upgrade(), info.event().map(|e| e.view()))
                {
                    let imp = element.imp();
                    if let Some(stream) = imp.lock_state().stream_mut(id) {
                        stream.detector_eos = true;
                    }
                    imp.changed.notify_all();
                }
                gst::PadProbeReturn::Ok
            });
        }
        pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            let (Some(element), Some(buffer)) = (element.upgrade(), info.buffer()) else {
                return gst::PadProbeReturn::Ok;
            };
            let Some(start) = pad
                .sticky_event::<gst::event::Segment>(0)
                .and_then(|segment| {
                    let segment = segment.segment().downcast_ref::<gst::ClockTime>()?.clone();
                    segment.to_running_time(buffer.pts()?)
                })
                .map(gst::ClockTime::nseconds)
            else {
                return gst::PadProbeReturn::Ok;
            };
            let Ok(map) = buffer.map_readable() else {
                return gst::PadProbeReturn::Ok;
            };
            let samples: Vec<i16> = map
                .chunks_exact(2)
                .map(|pair| i16::from_le_bytes([pair[0], pair[1]]))
                .collect();
            let end = start + samples.len() as u64 * 1_000_000_000 / crate::dtmf::RATE as u64;
            element.imp().track_tones(id, &samples, start..end);
            gst::PadProbeReturn::Ok
        });
    }

    fn track_tones(&self, id: u32, samples: &[i16], span: std::ops::Range<u64>) {
        let mut state = self.lock_state();
        let Some(stream) = state.stream_mut(id) else {
            return;
        };
        stream.detector_span = Some(span.clone());
        stream.detector_position = stream.detector_position.max(span.end);
        for tone in stream.tones.push(samples, span.start) {
            // What already passed the gate cannot be masked any more: the manifest says
            // what was (a tone is found well within the hold-back).
            let from = tone.start.max(stream.position);
            stream.dtmf.add(from..tone.end, "dtmf tone");
        }
        drop(state);
        self.changed.notify_all();
    }

    /// dtmfdetect heard a digit in the buffer it just got: mask around it too.
    pub(super) fn digit_heard(&self, id: u32) {
        let mut state = self.lock_state();
        let Some(stream) = state.stream_mut(id) else {
            return;
        };
        let Some(span) = stream.detector_span.clone() else {
            return;
        };
        let masked =
            span.start.saturating_sub(DIGIT_BEFORE).max(stream.position)..span.end + DIGIT_AFTER;
        stream.dtmf.add(masked.clone(), "dtmf digit");
        stream.dtmf_digits += 1;
        let name = stream.ghost.name().to_string();
        drop(state);
        gst::info!(
            CAT,
            imp = self,
            "{name}: a DTMF digit masked (not recorded)"
        );
        let structure = gst::Structure::builder("recordmux-dtmf-masked")
            .field("pad", name)
            .field("start", gst::ClockTime::from_nseconds(masked.start))
            .field("end", gst::ClockTime::from_nseconds(masked.end))
            .build();
        let _ = self.obj().post_message(
            gst::message::Element::builder(structure)
                .src(&*self.obj())
                .build(),
        );
    }
}
