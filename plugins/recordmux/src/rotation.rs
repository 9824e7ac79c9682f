//! Segment rotation: where a long call's recording is split into files. No GStreamer types:
//! times are nanoseconds of running time.
//!
//! A segment ends when it reached `max_duration` of call time or `max_bytes` of output; the
//! next one starts at the main stream's next buffer from then on that can start a file (a
//! keyframe of encoded video; raw video is encoded afresh for each segment, so any frame).
//! Every stream splits at that same running time (audio at the sample), so A/V stay in sync
//! across files and the frames and samples of all segments add up to an unsplit recording.
//! While a split is due but not placed, the other streams wait for it past the earliest time
//! it can be at ([`Rotation::segment_of`] says `None`).

use std::ops::Range;

/// When a segment is full. `None`: no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Call time per segment (ns of running time).
    pub max_duration: Option<u64>,
    /// Output bytes per segment.
    pub max_bytes: Option<u64>,
}

impl Limits {
    pub fn rotates(&self) -> bool {
        self.max_duration.is_some() || self.max_bytes.is_some()
    }
}

#[derive(Debug)]
pub struct Rotation {
    limits: Limits,
    /// Running times where segments start; empty until the recording starts.
    starts: Vec<u64>,
    /// A split is due from this running time on (the byte limit was reached).
    due_from: Option<u64>,
    /// End of the last main-stream buffer.
    main_position: u64,
}

impl Rotation {
    pub fn new(limits: Limits) -> Rotation {
        Rotation {
            limits,
            starts: Vec::new(),
            due_from: None,
            main_position: 0,
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The recording starts at running time `origin` (segment 0).
    pub fn start(&mut self, origin: u64) {
        if self.starts.is_empty() {
            self.starts.push(origin);
            self.main_position = origin;
        }
    }

    /// Index of the segment being recorded.
    pub fn current(&self) -> usize {
        self.starts.len().saturating_sub(1)
    }

    /// Running time at which segment `index` starts.
    pub fn segment_start(&self, index: usize) -> Option<u64> {
        self.starts.get(index).copied()
    }

    /// Running time at which segment `index` ends, if it has ended.
    pub fn segment_end(&self, index: usize) -> Option<u64> {
        self.starts.get(index + 1).copied()
    }

    /// The earliest running time the next split can be at, if it is due or will be.
    fn earliest_split(&self) -> Option<u64> {
        let start = *self.starts.last()?;
        let by_duration = self.limits.max_duration.map(|max| start + max.max(1));
        match (by_duration, self.due_from) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The current segment's output reached `bytes`: if that is the limit, the next split is
    /// due from the main stream's position on.
    pub fn output_bytes(&mut self, bytes: u64) {
        if self.due_from.is_none()
            && !self.starts.is_empty()
            && self.limits.max_bytes.is_some_and(|max| bytes >= max.max(1))
        {
            self.due_from = Some(self.main_position);
        }
    }

    /// A main-stream buffer spanning `span` that can (`can_start`) or cannot start a file:
    /// returns the index of the segment it starts, if it starts one.
    pub fn main(&mut self, span: Range<u64>, can_start: bool) -> Option<usize> {
        if self.starts.is_empty() {
            return None;
        }
        let split = can_start
            && self.earliest_split().is_some_and(|from| span.start >= from)
            && span.start > *self.starts.last().expect("started");
        if split {
            self.starts.push(span.start);
            self.due_from = None;
        }
        self.main_position = self.main_position.max(span.end);
        split.then(|| self.current())
    }

    /// The main stream is too late to wait for, or ended: the splits due before `until` are
    /// placed where they are due (the main stream joins the new segment when it comes).
    pub fn main_gone(&mut self, until: u64) {
        while let Some(from) = self.earliest_split()
            && from < until
            && self.starts.last().is_some_and(|&last| from > last)
        {
            self.starts.push(from);
            self.due_from = None;
        }
    }

    /// Which segment running time `t` belongs to; `None` while it may belong to a segment
    /// whose start is not placed yet (wait for the main stream).
    pub fn segment_of(&self, t: u64) -> Option<usize> {
        if self.starts.is_empty() {
            return Some(0);
        }
        if self.earliest_split().is_some_and(|from| t >= from) {
            return None;
        }
        Some(
            self.starts
                .partition_point(|&start| start <= t)
                .saturating_sub(1),
        )
    }

    /// `span` split at segment starts: (part, segment). `None` if a part is undecided.
    pub fn split(&self, span: Range<u64>) -> Option<Vec<(Range<u64>, usize)>> {
        if span.end <= span.start {
            return self.segment_of(span.start).map(|index| vec![(span, index)]);
        }
        // The last instant of the span decides whether all of it is placed.
        self.segment_of(span.end - 1)?;
        let mut parts = Vec::new();
        let mut cursor = span.start;
        for (index, &start) in self.starts.iter().enumerate().skip(1) {
            if start <= cursor {
                continue;
            }
            if start >= span.end {
                break;
            }
            parts.push((cursor..start, self.segment_of(cursor).unwrap_or(index - 1)));
            cursor = start;
        }
        parts.push((cursor..span.end, self.segment_of(cursor)?));
        Some(parts)
    }
}

/// Expands a file name pattern with one `%d`, `%Nd` or `%0Nd` (as multifilesink and
/// splitmuxsink take) for segment `index`. A pattern without one gets `.NNN` before its
/// extension(s).
pub fn segment_name(pattern: &str, index: usize) -> String {
    if let Some(at) = pattern.find('%') {
        let rest = &pattern[at + 1..];
        let digits_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if rest[digits_end..].starts_with('d') {
            let spec = &rest[..digits_end];
            let width: usize = spec.trim_start_matches('0').parse().unwrap_or(0);
            let number = if spec.starts_with('0') {
                format!("{index:0width$}")
            } else {
                format!("{index:width$}")
            };
            return format!("{}{number}{}", &pattern[..at], &rest[digits_end + 1..]);
        }
    }
    let (directory, name) = match pattern.rfind('/') {
        Some(slash) => pattern.split_at(slash + 1),
        None => ("", pattern),
    };
    let (stem, extension) = match name.find('.') {
        Some(dot) if dot > 0 => name.split_at(dot),
        _ => (name, ""),
    };
    format!("{directory}{stem}.{index:03}{extension}")
}

/// Whether a file name has a segment pattern.
pub fn has_pattern(name: &str) -> bool {
    segment_name(name, 0) != segment_name(name, 1) && name.contains('%')
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;
    const FRAME: u64 = S / 25;

    #[test]
    fn splits_at_the_first_main_buffer_after_the_limit() {
        let mut rotation = Rotation::new(Limits {
            max_duration: Some(10 * S),
            max_bytes: None,
        });
        rotation.start(0);
        let mut splits = Vec::new();
        for i in 0..(35 * 25) {
            let start = i * FRAME;
            // Keyframes every 2 s (encoded main).
            if let Some(index) = rotation.main(start..start + FRAME, i % 50 == 0) {
                splits.push((index, start));
            }
        }
        assert_eq!(splits, vec![(1, 10 * S), (2, 20 * S), (3, 30 * S)]);
        assert_eq!(rotation.segment_of(9 * S), Some(0));
        assert_eq!(rotation.segment_of(25 * S), Some(2));
        assert_eq!(
            rotation.split(9 * S..11 * S).unwrap(),
            vec![(9 * S..10 * S, 0), (10 * S..11 * S, 1)]
        );
    }

    #[test]
    fn waits_for_a_keyframe_and_others_wait_for_the_split() {
        let mut rotation = Rotation::new(Limits {
            max_duration: Some(10 * S),
            max_bytes: None,
        });
        rotation.start(0);
        rotation.main(0..FRAME, true);
        // Audio past the limit cannot be placed until the video placed the split.
        assert_eq!(rotation.segment_of(10 * S + 1), None);
        assert!(rotation.split(9 * S..11 * S).is_none());
        assert_eq!(rotation.main(10 * S..10 * S + FRAME, false), None);
        assert_eq!(rotation.segment_of(10 * S + 1), None);
        assert_eq!(
            rotation.main(10 * S + FRAME..10 * S + 2 * FRAME, true),
            Some(1)
        );
        assert_eq!(rotation.segment_of(10 * S + 1), Some(0));
        assert_eq!(rotation.segment_of(10 * S + FRAME), Some(1));
    }

    #[test]
    fn a_byte_limit_splits_at_the_next_main_buffer() {
        let mut rotation = Rotation::new(Limits {
            max_duration: None,
            max_bytes: Some(1000),
        });
        rotation.start(0);
        rotation.main(0..FRAME, true);
        rotation.output_bytes(999);
        assert_eq!(rotation.main(FRAME..2 * FRAME, true), None);
        rotation.output_bytes(1000);
        assert_eq!(rotation.segment_of(2 * FRAME), None);
        assert_eq!(rotation.main(2 * FRAME..3 * FRAME, true), Some(1));
    }

    #[test]
    fn without_the_main_stream_splits_are_placed_where_due() {
        let mut rotation = Rotation::new(Limits {
            max_duration: Some(10 * S),
            max_bytes: None,
        });
        rotation.start(0);
        rotation.main_gone(9 * S);
        assert_eq!(rotation.current(), 0);
        rotation.main_gone(10 * S + 5);
        assert_eq!(rotation.segment_start(1), Some(10 * S));
        assert_eq!(rotation.segment_of(10 * S + 5), Some(1));
        assert_eq!(rotation.segment_of(10 * S - 1), Some(0));
    }

    #[test]
    fn segment_names_follow_printf_patterns() {
        assert_eq!(segment_name("call-%03d.mp4.age", 7), "call-007.mp4.age");
        assert_eq!(segment_name("call-%d.json", 12), "call-12.json");
        assert_eq!(
            segment_name("/rec/call.mp4.age", 2),
            "/rec/call.002.mp4.age"
        );
        assert_eq!(segment_name("call", 2), "call.002");
        assert!(has_pattern("a-%02d.mp4"));
        assert!(!has_pattern("a.mp4"));
    }
}
