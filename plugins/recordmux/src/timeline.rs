//! A timeline of recorded spans in running time: which instants are recorded, and where each
//! lands in the recording. No GStreamer types: times are nanoseconds.
//!
//! Used by the gate for the whole recording, and per stream for spans masked on that stream
//! alone.

use std::ops::Range;

/// A part of a buffer, in running time, and whether it is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub span: Range<u64>,
    pub recorded: bool,
}

/// Sorted, disjoint recorded spans; the last one may be open (recording now).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timeline {
    spans: Vec<(u64, Option<u64>)>,
}

impl Timeline {
    /// Whether the last span is open.
    pub fn is_recording(&self) -> bool {
        self.spans.last().is_some_and(|(_, end)| end.is_none())
    }

    /// Opens a recorded span at `at` (no effect while recording). A span opened where the
    /// last one closed continues it.
    pub fn start(&mut self, at: u64) {
        if self.is_recording() {
            return;
        }
        match self.spans.last_mut() {
            Some((_, end)) if *end == Some(at) => *end = None,
            _ => self.spans.push((at, None)),
        }
    }

    /// Closes the open span at `at` (no effect while not recording). A span closed where it
    /// opened is removed.
    pub fn stop(&mut self, at: u64) {
        let Some((start, end)) = self.spans.last_mut() else {
            return;
        };
        if end.is_some() {
            return;
        }
        if at <= *start {
            self.spans.pop();
        } else {
            *end = Some(at);
        }
    }

    /// Whether instant `t` is recorded.
    pub fn contains(&self, t: u64) -> bool {
        let index = self.spans.partition_point(|&(start, _)| start <= t);
        index > 0 && self.spans[index - 1].1.is_none_or(|end| t < end)
    }

    /// Recorded time before running time `t`: where `t` lands in a recording that leaves
    /// out everything not recorded.
    pub fn recorded_before(&self, t: u64) -> u64 {
        self.spans
            .iter()
            .take_while(|(start, _)| *start < t)
            .map(|&(start, end)| end.unwrap_or(u64::MAX).min(t) - start)
            .sum()
    }

    /// The spans not recorded between `from` and `until`.
    pub fn gaps(&self, from: u64, until: u64) -> Vec<Range<u64>> {
        let mut gaps = Vec::new();
        let mut cursor = from;
        for &(start, end) in &self.spans {
            if start > cursor {
                gaps.push(cursor..start.min(until));
            }
            cursor = cursor.max(end.unwrap_or(u64::MAX));
        }
        if cursor < until {
            gaps.push(cursor..until);
        }
        gaps.retain(|gap| gap.start < gap.end);
        gaps
    }

    /// Splits `span` at every switch into recorded and unrecorded pieces.
    pub fn split(&self, span: Range<u64>) -> Vec<Piece> {
        let mut pieces: Vec<Piece> = Vec::new();
        let mut push = |span: Range<u64>, recorded: bool| {
            if span.start >= span.end {
                return;
            }
            match pieces.last_mut() {
                Some(last) if last.recorded == recorded && last.span.end == span.start => {
                    last.span.end = span.end
                }
                _ => pieces.push(Piece { span, recorded }),
            }
        };
        let mut cursor = span.start;
        let first = self
            .spans
            .partition_point(|&(_, end)| end.is_some_and(|end| end <= span.start));
        for &(start, end) in &self.spans[first..] {
            if start >= span.end {
                break;
            }
            let end = end.unwrap_or(u64::MAX);
            push(cursor..start.clamp(cursor, span.end), false);
            let recorded_end = end.min(span.end);
            push(start.max(cursor)..recorded_end, true);
            cursor = recorded_end.max(cursor);
        }
        push(cursor..span.end, false);
        pieces
    }

    /// Removes everything recorded in `mask` from the recorded pieces: the pieces of `self`
    /// that are also masked become unrecorded.
    pub fn subtract(pieces: Vec<Piece>, mask: &Timeline) -> Vec<Piece> {
        let mut out: Vec<Piece> = Vec::new();
        for piece in pieces {
            if !piece.recorded {
                push_merged(&mut out, piece);
                continue;
            }
            for part in mask.split(piece.span) {
                push_merged(
                    &mut out,
                    Piece {
                        span: part.span,
                        recorded: !part.recorded,
                    },
                );
            }
        }
        out
    }

    /// The closed and open spans, for reports.
    pub fn spans(&self) -> &[(u64, Option<u64>)] {
        &self.spans
    }
}

fn push_merged(pieces: &mut Vec<Piece>, piece: Piece) {
    match pieces.last_mut() {
        Some(last) if last.recorded == piece.recorded && last.span.end == piece.span.start => {
            last.span.end = piece.span.end
        }
        _ => pieces.push(piece),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(list: &[(Range<u64>, bool)]) -> Vec<Piece> {
        list.iter()
            .map(|(span, recorded)| Piece {
                span: span.clone(),
                recorded: *recorded,
            })
            .collect()
    }

    #[test]
    fn spans_open_close_and_merge() {
        let mut timeline = Timeline::default();
        timeline.start(10);
        timeline.stop(20);
        timeline.start(20);
        assert_eq!(
            timeline.spans(),
            &[(10, None)],
            "a zero-length pause merges"
        );
        timeline.stop(30);
        timeline.start(40);
        timeline.stop(40);
        assert_eq!(
            timeline.spans(),
            &[(10, Some(30))],
            "a zero-length span vanishes"
        );
        assert!(timeline.contains(10) && timeline.contains(29));
        assert!(!timeline.contains(30) && !timeline.contains(9));
        assert_eq!(timeline.recorded_before(25), 15);
        assert_eq!(timeline.gaps(0, 50), vec![0..10, 30..50]);
    }

    #[test]
    fn split_and_subtract() {
        let mut timeline = Timeline::default();
        timeline.start(0);
        timeline.stop(10);
        timeline.start(20);
        assert_eq!(
            timeline.split(5..25),
            pieces(&[(5..10, true), (10..20, false), (20..25, true)])
        );
        let mut mask = Timeline::default();
        mask.start(22);
        mask.stop(24);
        assert_eq!(
            Timeline::subtract(timeline.split(5..25), &mask),
            pieces(&[
                (5..10, true),
                (10..20, false),
                (20..22, true),
                (22..24, false),
                (24..25, true)
            ])
        );
    }
}
