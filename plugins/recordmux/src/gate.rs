//! The pause gate: decides, for every buffer of every stream, which part of it is recorded and
//! where it lands on the recording's timeline. No GStreamer types: times are nanoseconds of
//! running time.
//!
//! One stream is the *main* stream (the first video stream, else the first audio stream). A
//! pause or resume request takes effect at the start of the first main-stream buffer at or
//! after the request's running time (live pipelines: the clock's running time when it was
//! made, so media captured before a resume is never recorded however late the pipeline runs;
//! otherwise the next buffer). For encoded video a resume also waits for a keyframe. Every
//! stream switches at that same running time. The other streams follow the decisions the main stream has made: a secondary
//! buffer is decided once the main stream has passed its end ([`Gate::secondary`] says
//! [`SecondaryVerdict::Wait`] until then) and is split at the exact switch times, so audio and
//! video stay in sync after any number of pauses.
//!
//! Timelines:
//! - [`PauseMode::Cut`]: paused media is dropped and the recording time of an instant is the
//!   recorded duration before it, so the file has no gap.
//! - [`PauseMode::Mask`]: the recording time is the running time since the first main
//!   buffer; paused media is kept on the timeline but its content is blanked (black video,
//!   silent audio) by the caller.

use std::ops::Range;

/// What happens to paused media.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseMode {
    /// Paused media is dropped; the recording has no gap.
    Cut,
    /// Paused media is replaced by black video and silence; the recording keeps the call's
    /// timeline.
    Mask,
}

/// Whether recording stopped or started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransitionKind {
    Paused,
    Resumed,
}

/// A pause or resume as it took effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub kind: TransitionKind,
    /// Running time at which every stream switched.
    pub running_time: u64,
    /// Where that instant is in the recording.
    pub recording_time: u64,
    /// Running time at which the request was applied (a resume of encoded video waits for a
    /// keyframe, so `running_time` can be later).
    pub requested_running_time: u64,
    pub reason: String,
}

/// The decision for one main-stream buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MainVerdict {
    /// Record the buffer at this recording time.
    Record { recording_time: u64 },
    /// Keep the buffer on the timeline at this recording time but blank its content.
    Mask { recording_time: u64 },
    /// Drop the buffer.
    Drop,
}

/// A part of a secondary buffer, in running time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub span: Range<u64>,
    pub recorded: bool,
}

/// The decision for one secondary-stream buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecondaryVerdict {
    /// The main stream has not yet decided this span: ask again when it has advanced.
    Wait,
    /// The buffer split at every switch time. Parts before the recording began are left out.
    /// `recording_time` is where the first output sample goes: in cut mode the first recorded
    /// piece, in mask mode the first piece; `None` if nothing of the buffer is output.
    Decided {
        pieces: Vec<Piece>,
        recording_time: Option<u64>,
    },
}

/// The pause/resume state shared by all streams of one recording.
#[derive(Debug)]
pub struct Gate {
    mode: PauseMode,
    /// What the user asked for last.
    want_recording: bool,
    want_reason: String,
    /// Running time of the main buffer at which the current request was first seen.
    request_seen_at: Option<u64>,
    /// Running time the current request is for, if it was made at a known running time.
    request_at: Option<u64>,
    /// Whether recording is on now.
    recording: bool,
    /// Running time of recording time 0; set by the first main buffer that starts the
    /// recording (a keyframe, or any buffer while paused).
    origin: Option<u64>,
    /// Recorded spans, sorted and disjoint; the last one is open while recording.
    recorded: Vec<(u64, Option<u64>)>,
    /// End of the last main buffer seen.
    main_position: u64,
    main_eos: bool,
}

impl Gate {
    pub fn new(mode: PauseMode, recording: bool) -> Gate {
        Gate {
            mode,
            want_recording: recording,
            want_reason: String::new(),
            request_seen_at: None,
            request_at: None,
            recording: false,
            origin: None,
            recorded: Vec::new(),
            main_position: 0,
            main_eos: false,
        }
    }

    pub fn mode(&self) -> PauseMode {
        self.mode
    }

    /// Asks to pause (`false`) or resume (`true`) from running time `at` on (`None`: from the
    /// next main buffer on). Returns true if this changes what was asked before; a repeated
    /// request is ignored.
    pub fn request(&mut self, recording: bool, reason: &str, at: Option<u64>) -> bool {
        if self.want_recording == recording {
            return false;
        }
        self.want_recording = recording;
        self.want_reason = reason.to_string();
        self.request_seen_at = None;
        self.request_at = at;
        true
    }

    /// What was asked last (the `recording` property).
    pub fn wants_recording(&self) -> bool {
        self.want_recording
    }

    /// Whether a resume is waiting for a keyframe of the main stream.
    pub fn awaiting_keyframe(&self) -> bool {
        self.want_recording && !self.recording
    }

    pub fn is_recording(&self) -> bool {
        self.recording
    }

    pub fn origin(&self) -> Option<u64> {
        self.origin
    }

    /// Decides one main-stream buffer spanning `span` (running time). `keyframe` is true for
    /// raw media and for encoded keyframes: recording only starts on one.
    pub fn main(&mut self, span: Range<u64>, keyframe: bool) -> (MainVerdict, Option<Transition>) {
        self.main_position = self.main_position.max(span.end).max(span.start);
        let transition = self.apply_request(span.start, keyframe);
        let verdict = match (self.recording, self.origin) {
            (true, _) => MainVerdict::Record {
                recording_time: self.recording_time(span.start),
            },
            (false, Some(origin)) if self.mode == PauseMode::Mask && span.start >= origin => {
                MainVerdict::Mask {
                    recording_time: span.start - origin,
                }
            }
            _ => MainVerdict::Drop,
        };
        (verdict, transition)
    }

    /// The main stream has no data up to `position` (a gap): secondaries may go on.
    pub fn main_gap(&mut self, position: u64) {
        self.main_position = self.main_position.max(position);
    }

    /// The main stream ended: secondaries no longer wait, and later requests take effect at
    /// the next secondary buffer.
    pub fn main_eos(&mut self) {
        self.main_eos = true;
    }

    pub fn is_main_eos(&self) -> bool {
        self.main_eos
    }

    /// Decides one secondary-stream buffer spanning `span`.
    pub fn secondary(&mut self, span: Range<u64>) -> (SecondaryVerdict, Option<Transition>) {
        let mut transition = None;
        if self.main_eos {
            // Nobody else decides any more: this stream applies requests itself.
            transition = self.apply_request(span.start, true);
        } else if self.origin.is_none() || self.main_position < span.end {
            return (SecondaryVerdict::Wait, None);
        }
        let Some(origin) = self.origin else {
            return (
                SecondaryVerdict::Decided {
                    pieces: Vec::new(),
                    recording_time: None,
                },
                transition,
            );
        };
        let pieces = self.split(span.start.max(origin)..span.end.max(origin));
        let recording_time = match self.mode {
            PauseMode::Cut => pieces
                .iter()
                .find(|piece| piece.recorded)
                .map(|piece| self.recording_time(piece.span.start)),
            PauseMode::Mask => pieces.first().map(|piece| piece.span.start - origin),
        };
        (
            SecondaryVerdict::Decided {
                pieces,
                recording_time,
            },
            transition,
        )
    }

    /// Where running time `t` lands in the recording.
    pub fn recording_time(&self, t: u64) -> u64 {
        let origin = self.origin.unwrap_or(t);
        match self.mode {
            PauseMode::Mask => t.saturating_sub(origin),
            PauseMode::Cut => self
                .recorded
                .iter()
                .take_while(|(start, _)| *start < t)
                .map(|&(start, end)| end.unwrap_or(u64::MAX).min(t) - start)
                .sum(),
        }
    }

    /// Total recorded duration up to running time `until`.
    pub fn recorded_duration(&self, until: u64) -> u64 {
        self.recorded
            .iter()
            .take_while(|(start, _)| *start < until)
            .map(|&(start, end)| end.unwrap_or(u64::MAX).min(until) - start)
            .sum()
    }

    /// The paused spans between the origin and `until`, in running time.
    pub fn paused_spans(&self, until: u64) -> Vec<Range<u64>> {
        let Some(origin) = self.origin else {
            return Vec::new();
        };
        let mut spans = Vec::new();
        let mut cursor = origin;
        for &(start, end) in &self.recorded {
            if start > cursor {
                spans.push(cursor..start.min(until));
            }
            cursor = end.unwrap_or(u64::MAX);
        }
        if cursor < until {
            spans.push(cursor..until);
        }
        spans.retain(|span| span.start < span.end);
        spans
    }

    /// Applies the last request at running time `at`, on a buffer that is or is not a
    /// keyframe.
    fn apply_request(&mut self, at: u64, keyframe: bool) -> Option<Transition> {
        if self.origin.is_none() && (keyframe || !self.want_recording) {
            self.origin = Some(at);
            if !self.want_recording {
                // Paused before the first buffer: the recording starts paused.
                self.request_seen_at.get_or_insert(at);
                return Some(self.transition(TransitionKind::Paused, at));
            }
        }
        let origin = self.origin?;
        if self.want_recording == self.recording || self.request_at.is_some_and(|t| at < t) {
            return None;
        }
        let seen_at = *self.request_seen_at.get_or_insert(at);
        let requested_at = self.request_at.unwrap_or(seen_at);
        let at = at.max(origin);
        if self.recording {
            if let Some((start, end)) = self.recorded.last_mut() {
                *end = Some(at.max(*start));
            }
            self.recording = false;
            let mut transition = self.transition(TransitionKind::Paused, at);
            transition.requested_running_time = requested_at;
            Some(transition)
        } else if keyframe {
            let first = self.recorded.is_empty() && at == origin;
            self.recorded.push((at, None));
            self.recording = true;
            if first {
                // Recording from the first buffer on is no resume.
                return None;
            }
            let mut transition = self.transition(TransitionKind::Resumed, at);
            transition.requested_running_time = requested_at;
            Some(transition)
        } else {
            None
        }
    }

    fn transition(&self, kind: TransitionKind, at: u64) -> Transition {
        Transition {
            kind,
            running_time: at,
            recording_time: self.recording_time(at),
            requested_running_time: at,
            reason: self.want_reason.clone(),
        }
    }

    /// Splits `span` at every switch time into recorded and paused pieces.
    fn split(&self, span: Range<u64>) -> Vec<Piece> {
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
            .recorded
            .partition_point(|&(_, end)| end.is_some_and(|end| end <= span.start));
        for &(start, end) in &self.recorded[first..] {
            if start >= span.end {
                break;
            }
            let end = end.unwrap_or(u64::MAX);
            push(cursor..start.clamp(cursor, span.end), false);
            let recorded_start = start.max(cursor);
            let recorded_end = end.min(span.end);
            push(recorded_start..recorded_end, true);
            cursor = recorded_end.max(cursor);
        }
        push(cursor..span.end, false);
        pieces
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: u64 = 40;

    fn recorded(verdict: SecondaryVerdict) -> (Vec<(Range<u64>, bool)>, Option<u64>) {
        match verdict {
            SecondaryVerdict::Wait => panic!("unexpected wait"),
            SecondaryVerdict::Decided {
                pieces,
                recording_time,
            } => (
                pieces
                    .into_iter()
                    .map(|piece| (piece.span, piece.recorded))
                    .collect(),
                recording_time,
            ),
        }
    }

    /// Drives the main stream over `frames` frames, pausing/resuming before the frames listed.
    fn run_main(gate: &mut Gate, frames: u64, toggles: &[u64]) -> Vec<MainVerdict> {
        (0..frames)
            .map(|i| {
                if toggles.contains(&i) {
                    let want = !gate.wants_recording();
                    gate.request(want, "scripted", None);
                }
                gate.main(i * FRAME..(i + 1) * FRAME, true).0
            })
            .collect()
    }

    #[test]
    fn cut_mode_closes_the_gap() {
        let mut gate = Gate::new(PauseMode::Cut, true);
        let verdicts = run_main(&mut gate, 10, &[3, 6]);
        assert_eq!(
            verdicts[2],
            MainVerdict::Record {
                recording_time: 2 * FRAME
            }
        );
        assert_eq!(verdicts[3], MainVerdict::Drop);
        assert_eq!(verdicts[5], MainVerdict::Drop);
        assert_eq!(
            verdicts[6],
            MainVerdict::Record {
                recording_time: 3 * FRAME
            }
        );
        assert_eq!(gate.recorded_duration(10 * FRAME), 7 * FRAME);
        assert_eq!(gate.paused_spans(10 * FRAME), vec![3 * FRAME..6 * FRAME]);
    }

    #[test]
    fn mask_mode_keeps_the_timeline() {
        let mut gate = Gate::new(PauseMode::Mask, true);
        let verdicts = run_main(&mut gate, 10, &[3, 6]);
        assert_eq!(
            verdicts[4],
            MainVerdict::Mask {
                recording_time: 4 * FRAME
            }
        );
        assert_eq!(
            verdicts[6],
            MainVerdict::Record {
                recording_time: 6 * FRAME
            }
        );
        assert_eq!(gate.recorded_duration(10 * FRAME), 7 * FRAME);
    }

    #[test]
    fn transitions_carry_times_and_reason() {
        let mut gate = Gate::new(PauseMode::Cut, true);
        gate.main(0..FRAME, true);
        gate.request(false, "card number", None);
        let (_, paused) = gate.main(FRAME..2 * FRAME, true);
        let paused = paused.unwrap();
        assert_eq!(paused.kind, TransitionKind::Paused);
        assert_eq!(paused.running_time, FRAME);
        assert_eq!(paused.recording_time, FRAME);
        assert_eq!(paused.reason, "card number");
        gate.request(true, "done", None);
        let (_, resumed) = gate.main(2 * FRAME..3 * FRAME, true);
        let resumed = resumed.unwrap();
        assert_eq!(resumed.kind, TransitionKind::Resumed);
        assert_eq!(resumed.running_time, 2 * FRAME);
        assert_eq!(resumed.recording_time, FRAME);
        assert!(
            !gate.request(true, "again", None),
            "a repeated request is ignored"
        );
    }

    #[test]
    fn encoded_resume_waits_for_a_keyframe() {
        let mut gate = Gate::new(PauseMode::Cut, true);
        // Joining mid-GOP: nothing is recorded before the first keyframe.
        assert_eq!(gate.main(0..FRAME, false).0, MainVerdict::Drop);
        assert_eq!(gate.origin(), None);
        assert!(matches!(
            gate.main(FRAME..2 * FRAME, true).0,
            MainVerdict::Record { recording_time: 0 }
        ));
        gate.request(false, "", None);
        gate.main(2 * FRAME..3 * FRAME, false);
        gate.request(true, "", None);
        assert!(gate.awaiting_keyframe());
        assert_eq!(gate.main(3 * FRAME..4 * FRAME, false).0, MainVerdict::Drop);
        let (verdict, transition) = gate.main(4 * FRAME..5 * FRAME, true);
        assert_eq!(
            verdict,
            MainVerdict::Record {
                recording_time: FRAME
            }
        );
        let transition = transition.unwrap();
        assert_eq!(transition.running_time, 4 * FRAME);
        assert_eq!(transition.requested_running_time, 3 * FRAME);
    }

    #[test]
    fn timed_requests_switch_at_their_running_time_however_late_the_media() {
        // A live pipeline running 3 frames behind: the request is for running time 10 frames,
        // made while the frames arriving are still from before it.
        let mut gate = Gate::new(PauseMode::Cut, true);
        run_main(&mut gate, 7, &[]);
        gate.request(false, "card number", Some(10 * FRAME));
        for i in 7..10 {
            assert!(matches!(
                gate.main(i * FRAME..(i + 1) * FRAME, true),
                (MainVerdict::Record { .. }, None)
            ));
        }
        let (verdict, paused) = gate.main(10 * FRAME..11 * FRAME, true);
        assert_eq!(verdict, MainVerdict::Drop);
        assert_eq!(paused.unwrap().running_time, 10 * FRAME);
        gate.request(true, "done", Some(15 * FRAME));
        // Frames captured before the resume stay out, even though they arrive after it.
        for i in 11..15 {
            assert_eq!(
                gate.main(i * FRAME..(i + 1) * FRAME, true).0,
                MainVerdict::Drop
            );
        }
        let (verdict, resumed) = gate.main(15 * FRAME..16 * FRAME, true);
        assert!(matches!(verdict, MainVerdict::Record { .. }));
        let resumed = resumed.unwrap();
        assert_eq!(resumed.running_time, 15 * FRAME);
        assert_eq!(resumed.requested_running_time, 15 * FRAME);
        assert_eq!(gate.paused_spans(16 * FRAME), vec![10 * FRAME..15 * FRAME]);
    }

    #[test]
    fn paused_before_the_first_buffer() {
        let mut gate = Gate::new(PauseMode::Cut, false);
        let (verdict, transition) = gate.main(100..100 + FRAME, true);
        assert_eq!(verdict, MainVerdict::Drop);
        assert_eq!(transition.unwrap().kind, TransitionKind::Paused);
        gate.request(true, "", None);
        let (verdict, transition) = gate.main(100 + FRAME..100 + 2 * FRAME, true);
        assert_eq!(verdict, MainVerdict::Record { recording_time: 0 });
        assert_eq!(transition.unwrap().kind, TransitionKind::Resumed);
    }

    #[test]
    fn secondary_waits_for_the_main_stream_then_splits_at_switches() {
        let mut gate = Gate::new(PauseMode::Cut, true);
        assert_eq!(gate.secondary(0..20).0, SecondaryVerdict::Wait);
        gate.main(0..FRAME, true);
        assert_eq!(gate.secondary(20..60).0, SecondaryVerdict::Wait);
        gate.request(false, "", None);
        gate.main(FRAME..2 * FRAME, true);
        let (pieces, recording_time) = recorded(gate.secondary(20..60).0);
        assert_eq!(pieces, vec![(20..40, true), (40..60, false)]);
        assert_eq!(recording_time, Some(20));
        gate.request(true, "", None);
        gate.main(2 * FRAME..3 * FRAME, true);
        let (pieces, recording_time) = recorded(gate.secondary(60..100).0);
        assert_eq!(pieces, vec![(60..80, false), (80..100, true)]);
        assert_eq!(recording_time, Some(FRAME), "resumes right after the pause");
    }

    #[test]
    fn secondary_before_the_origin_is_left_out() {
        let mut gate = Gate::new(PauseMode::Mask, true);
        gate.main(50..90, true);
        let (pieces, recording_time) = recorded(gate.secondary(30..70).0);
        assert_eq!(pieces, vec![(50..70, true)]);
        assert_eq!(recording_time, Some(0));
    }

    #[test]
    fn mask_mode_secondary_keeps_paused_pieces_on_the_timeline() {
        let mut gate = Gate::new(PauseMode::Mask, true);
        gate.main(0..FRAME, true);
        gate.request(false, "", None);
        gate.main(FRAME..2 * FRAME, true);
        let (pieces, recording_time) = recorded(gate.secondary(30..50).0);
        assert_eq!(pieces, vec![(30..40, true), (40..50, false)]);
        assert_eq!(recording_time, Some(30));
    }

    #[test]
    fn eos_while_paused_and_requests_after_main_eos() {
        let mut gate = Gate::new(PauseMode::Cut, true);
        run_main(&mut gate, 4, &[2]);
        gate.main_eos();
        let (pieces, _) = recorded(gate.secondary(100..200).0);
        assert_eq!(pieces, vec![(100..200, false)]);
        gate.request(true, "after video ended", None);
        let (verdict, transition) = gate.secondary(200..220);
        assert_eq!(transition.unwrap().running_time, 200);
        assert_eq!(recorded(verdict).0, vec![(200..220, true)]);
    }

    #[test]
    fn a_thousand_toggles_keep_secondary_and_main_durations_equal() {
        for mode in [PauseMode::Cut, PauseMode::Mask] {
            let mut gate = Gate::new(mode, true);
            let toggles: Vec<u64> = (1..=1000).map(|i| i * 2 + i % 3).collect();
            let frames = 2100;
            let verdicts = run_main(&mut gate, frames, &toggles);
            let main_kept = verdicts
                .iter()
                .filter(|v| matches!(v, MainVerdict::Record { .. }))
                .count() as u64
                * FRAME;
            gate.main_eos();
            // Audio in 30-unit packets, which never line up with the 40-unit frames.
            let mut audio_kept = 0;
            let mut last_time = None;
            for start in (0..frames * FRAME).step_by(30) {
                let (pieces, time) = recorded(gate.secondary(start..start + 30).0);
                let kept: u64 = pieces
                    .iter()
                    .filter(|(_, recorded)| *recorded)
                    .map(|(span, _)| span.end - span.start)
                    .sum();
                if mode == PauseMode::Cut && kept > 0 {
                    // Cut mode output is contiguous: each buffer starts where the last ended.
                    if let Some(expected) = last_time {
                        assert_eq!(time, Some(expected));
                    }
                    last_time = Some(time.unwrap() + kept);
                }
                audio_kept += kept;
            }
            assert_eq!(audio_kept, main_kept, "{mode:?}");
            assert_eq!(gate.recorded_duration(frames * FRAME), main_kept);
        }
    }
}
