//! Masks on one stream: spans of a single stream blanked while the others record (the
//! customer's audio paused while the agent's goes on, a screen share hidden, a DTMF tone).
//! No GStreamer types: times are nanoseconds of running time.
//!
//! A mask never changes the recording's timeline (it is not a cut: cutting one stream would
//! shift it against the others), so masking is the natural mode for one stream. Requests are
//! queued and applied in order, each at its own running time (timed, live) or at the
//! stream's next buffer (untimed); a request repeating the last one is ignored.

use std::collections::VecDeque;
use std::ops::Range;

use crate::timeline::{Piece, Timeline};

#[derive(Debug, Clone)]
struct Request {
    masked: bool,
    reason: String,
    at: Option<u64>,
}

/// A span of a stream that was masked, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskedSpan {
    pub start: u64,
    /// `None` while still masked.
    pub end: Option<u64>,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct StreamMask {
    timeline: Timeline,
    pending: VecDeque<Request>,
    /// What the last request asked.
    wanted: bool,
    spans: Vec<MaskedSpan>,
    /// Where the stream got to: requests cannot switch before it.
    position: u64,
}

impl StreamMask {
    /// Asks to mask (`true`) or unmask from running time `at` (`None`: the stream's next
    /// buffer). Returns false for a request that repeats the last one.
    pub fn request(&mut self, masked: bool, reason: &str, at: Option<u64>) -> bool {
        if self.wanted == masked {
            return false;
        }
        self.wanted = masked;
        self.pending.push_back(Request {
            masked,
            reason: reason.to_string(),
            at,
        });
        true
    }

    pub fn wants_masked(&self) -> bool {
        self.wanted
    }

    /// Masks `span` right away (a detected DTMF tone): no request queue. Overlapping and
    /// touching spans become one.
    pub fn add(&mut self, span: Range<u64>, reason: &str) {
        if span.start >= span.end {
            return;
        }
        let mut merged = MaskedSpan {
            start: span.start,
            end: Some(span.end),
            reason: reason.to_string(),
        };
        let mut kept = Vec::with_capacity(self.spans.len() + 1);
        for existing in std::mem::take(&mut self.spans) {
            let overlaps = existing.start <= merged.end.unwrap_or(u64::MAX)
                && existing.end.is_none_or(|end| end >= merged.start);
            if overlaps {
                merged.start = merged.start.min(existing.start);
                merged.end = match (merged.end, existing.end) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    _ => None,
                };
                if existing.start <= merged.start {
                    merged.reason = existing.reason;
                }
            } else {
                kept.push(existing);
            }
        }
        kept.push(merged);
        kept.sort_by_key(|span| span.start);
        self.spans = kept;
        self.rebuild();
    }

    fn rebuild(&mut self) {
        let mut timeline = Timeline::default();
        let mut spans = self.spans.clone();
        spans.sort_by_key(|span| span.start);
        for span in &spans {
            timeline.start(span.start);
            if let Some(end) = span.end {
                timeline.stop(end);
            }
        }
        self.timeline = timeline;
    }

    /// Applies the requests due for a buffer spanning `span` of this stream.
    pub fn advance(&mut self, span: &Range<u64>) {
        self.position = self.position.max(span.start);
        while let Some(head) = self.pending.front() {
            let at = head
                .at
                .unwrap_or(span.start)
                .max(self.position.min(span.start));
            if at > span.end {
                break;
            }
            let request = self.pending.pop_front().expect("checked");
            if request.masked {
                self.timeline.start(at);
                self.spans.push(MaskedSpan {
                    start: at,
                    end: None,
                    reason: request.reason,
                });
            } else {
                self.timeline.stop(at);
                if let Some(open) = self.spans.iter_mut().rev().find(|s| s.end.is_none()) {
                    open.end = Some(at.max(open.start));
                }
            }
        }
        self.position = self.position.max(span.end);
    }

    /// `span` split into masked (`recorded: true` means masked) and unmasked pieces.
    pub fn pieces(&self, span: Range<u64>) -> Vec<Piece> {
        self.timeline.split(span)
    }

    /// Whether instant `t` is masked.
    pub fn contains(&self, t: u64) -> bool {
        self.timeline.contains(t)
    }

    /// The masked spans so far, in order.
    pub fn spans(&self) -> &[MaskedSpan] {
        &self.spans
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_mask_and_unmask_at_their_times() {
        let mut mask = StreamMask::default();
        assert!(mask.request(true, "customer reads card", Some(100)));
        assert!(!mask.request(true, "again", Some(110)));
        assert!(mask.request(false, "done", Some(300)));
        mask.advance(&(0..50));
        assert!(!mask.contains(60));
        mask.advance(&(50..400));
        let pieces = mask.pieces(50..400);
        assert_eq!(
            pieces
                .iter()
                .map(|p| (p.span.clone(), p.recorded))
                .collect::<Vec<_>>(),
            vec![(50..100, false), (100..300, true), (300..400, false)]
        );
        assert_eq!(
            mask.spans(),
            &[MaskedSpan {
                start: 100,
                end: Some(300),
                reason: "customer reads card".into()
            }]
        );
    }

    #[test]
    fn untimed_requests_apply_at_the_next_buffer() {
        let mut mask = StreamMask::default();
        mask.advance(&(0..20));
        mask.request(true, "", None);
        mask.advance(&(20..40));
        assert!(mask.contains(20));
        assert!(!mask.contains(19));
    }

    #[test]
    fn added_spans_merge_when_they_touch_or_overlap() {
        let mut mask = StreamMask::default();
        mask.add(10..20, "dtmf");
        mask.add(20..30, "dtmf");
        mask.add(50..60, "dtmf");
        assert_eq!(mask.spans().len(), 2);
        assert!(mask.contains(25) && !mask.contains(40) && mask.contains(55));
        // A wider span over both.
        mask.add(5..55, "digit");
        assert_eq!(mask.spans().len(), 1);
        assert_eq!((mask.spans()[0].start, mask.spans()[0].end), (5, Some(60)));
    }
}
