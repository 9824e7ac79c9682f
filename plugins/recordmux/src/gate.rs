//! The pause gate: decides, for every buffer of every stream, which part of it is recorded and
//! where it lands on the recording's timeline. No GStreamer types: times are nanoseconds of
//! running time.
//!
//! Every pause/resume request is queued and applied in order, each at its own running time,
//! however late the media arrives (a PCI pause followed by a resume while the pipeline lags
//! must still pause):
//! - a *timed* request (live pipelines: the clock's running time when it was made) switches
//!   at exactly that time, for every stream;
//! - an *untimed* request (a file, or before PLAYING) switches at the start of the next
//!   buffer of the *main* stream (the first video stream, else the first audio stream);
//! - a resume of encoded video waits for a keyframe of the main stream and switches there.
//!
//! The timeline is final up to a horizon: the main stream's position, and in a live pipeline
//! also the clock (a request made now cannot switch earlier). A secondary buffer is decided
//! once the horizon has passed its end ([`Gate::secondary`] says [`SecondaryVerdict::Wait`]
//! until then) and is split at the exact switch times; video frames are judged by their
//! timestamp (capture instant). Since every stream maps its media through the same timeline,
//! audio and video stay in sync after any number of pauses.
//!
//! Timelines:
//! - [`PauseMode::Cut`]: paused media is dropped and the recording time of an instant is the
//!   recorded duration before it, so the file has no gap.
//! - [`PauseMode::Mask`]: the recording time is the running time since the origin; paused
//!   media is kept on the timeline but its content is blanked (black video, silent audio) by
//!   the caller.

use std::collections::VecDeque;
use std::ops::Range;

pub use crate::timeline::Piece;
use crate::timeline::Timeline;

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
    /// Running time the request asked for (a resume of encoded video waits for a keyframe,
    /// so `running_time` can be later).
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

/// The decision for one secondary-stream buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecondaryVerdict {
    /// The timeline is not final over this span yet: ask again when the main stream has
    /// advanced (or the clock has).
    Wait,
    /// The buffer split at every switch time. Parts before the recording began are left out.
    /// `recording_time` is where the first output sample goes: in cut mode the first recorded
    /// piece, in mask mode the first piece; `None` if nothing of the buffer is output.
    Decided {
        pieces: Vec<Piece>,
        recording_time: Option<u64>,
    },
}

/// A pause or resume as asked for.
#[derive(Debug, Clone)]
struct Request {
    recording: bool,
    reason: String,
    /// Running time it is for; `None`: the next main-stream buffer.
    at: Option<u64>,
    /// Untimed: the main buffer at which it was first due (a resume of encoded video may
    /// switch later, at a keyframe).
    due_at: Option<u64>,
}

/// How the horizon moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Advance {
    /// To the start of a main-stream buffer.
    MainBuffer { keyframe: bool },
    /// To the end of a main-stream buffer: the next one starts there or later. Untimed
    /// requests wait for it.
    MainEnd,
    /// To the live clock's running time: no request can switch before it any more. Untimed
    /// requests wait for the next main buffer.
    Clock,
    /// The main stream has no data up to here and nobody waits for it: a gap, a stall, or
    /// its end. Untimed requests and resumes of encoded video switch at once.
    WithoutMain,
}

/// The pause/resume state shared by all streams of one recording.
#[derive(Debug)]
pub struct Gate {
    mode: PauseMode,
    /// Whether the recording starts recording (the `recording` property at start).
    initially: bool,
    /// Requests not yet applied, oldest first.
    pending: VecDeque<Request>,
    /// What the last request asked for.
    wanted: bool,
    /// Running time of recording time 0.
    origin: Option<u64>,
    timeline: Timeline,
    /// The timeline is final up to this running time.
    decided_until: u64,
    /// The main stream is encoded video: it starts and resumes on keyframes.
    main_keyframes: bool,
    /// Main-stream buffers are dropped until a keyframe (they could not be decoded).
    main_awaits_keyframe: bool,
    main_eos: bool,
    /// Transitions made and not yet taken by the caller.
    transitions: Vec<Transition>,
}

impl Gate {
    pub fn new(mode: PauseMode, recording: bool) -> Gate {
        Gate {
            mode,
            initially: recording,
            pending: VecDeque::new(),
            wanted: recording,
            origin: None,
            timeline: Timeline::default(),
            decided_until: 0,
            main_keyframes: false,
            main_awaits_keyframe: false,
            main_eos: false,
            transitions: Vec::new(),
        }
    }

    pub fn mode(&self) -> PauseMode {
        self.mode
    }

    /// The main stream is encoded video (starts and resumes on keyframes).
    pub fn set_main_needs_keyframes(&mut self, needs_keyframes: bool) {
        self.main_keyframes = needs_keyframes;
    }

    /// Asks to pause (`false`) or resume (`true`) from running time `at` on (`None`: from the
    /// next main buffer on). Returns false for a request that repeats what was asked last
    /// (it is ignored).
    pub fn request(&mut self, recording: bool, reason: &str, at: Option<u64>) -> bool {
        if self.wanted == recording {
            return false;
        }
        self.wanted = recording;
        self.pending.push_back(Request {
            recording,
            reason: reason.to_string(),
            at,
            due_at: None,
        });
        true
    }

    /// What was asked last (the `recording` property).
    pub fn wants_recording(&self) -> bool {
        self.wanted
    }

    /// Requests not applied yet.
    pub fn pending_requests(&self) -> usize {
        self.pending.len()
    }

    /// Whether the next request to apply is a resume that waits for a main keyframe.
    pub fn awaiting_keyframe(&self) -> bool {
        self.main_keyframes
            && !self.main_eos
            && (self.main_awaits_keyframe
                || self
                    .pending
                    .front()
                    .is_some_and(|r| r.recording && !self.timeline.is_recording()))
    }

    pub fn is_recording(&self) -> bool {
        self.timeline.is_recording()
    }

    pub fn origin(&self) -> Option<u64> {
        self.origin
    }

    /// The running time up to which the timeline is final.
    pub fn decided_until(&self) -> u64 {
        self.decided_until
    }

    pub fn is_main_eos(&self) -> bool {
        self.main_eos
    }

    /// The pauses and resumes that took effect since the last call, in order.
    pub fn take_transitions(&mut self) -> Vec<Transition> {
        std::mem::take(&mut self.transitions)
    }

    /// Decides one main-stream buffer spanning `span` (running time). `keyframe` is false
    /// for an encoded delta frame: encoded video starts and resumes only on a keyframe.
    pub fn main(&mut self, span: Range<u64>, keyframe: bool) -> MainVerdict {
        let keyframe = keyframe || !self.main_keyframes;
        if self.origin.is_none() {
            if !keyframe {
                return MainVerdict::Drop;
            }
            self.start(span.start, true);
        }
        if span.start >= self.decided_until {
            self.advance(span.start, Advance::MainBuffer { keyframe });
        }
        let verdict = self.main_verdict(span.start, keyframe);
        self.advance(span.end, Advance::MainEnd);
        verdict
    }

    /// The main stream has no data from `from` to `to` (a gap event).
    pub fn main_gap(&mut self, from: u64, to: u64) {
        if self.origin.is_none() {
            self.start(from, false);
        }
        self.advance(to, Advance::WithoutMain);
    }

    /// The main stream is late beyond what the caller tolerates: decide up to `to` without
    /// it (starting the recording at `start_at` if it has not started). Its late buffers are
    /// judged by the timeline; encoded video joins at its next keyframe.
    pub fn main_stalled(&mut self, start_at: u64, to: u64) {
        if self.origin.is_none() {
            self.start(start_at, false);
        }
        self.advance(to, Advance::WithoutMain);
    }

    /// The main stream ended: secondaries no longer wait, and later requests take effect at
    /// the next secondary buffer.
    pub fn main_eos(&mut self) {
        self.main_eos = true;
    }

    /// Decides one secondary-stream buffer spanning `span`. `now` is the live clock's running
    /// time (requests can only switch after it), `None` in a non-live pipeline.
    pub fn secondary(&mut self, span: Range<u64>, now: Option<u64>) -> SecondaryVerdict {
        if self.main_eos {
            if self.origin.is_none() {
                self.start(span.start, false);
            }
            self.advance(span.start, Advance::WithoutMain);
            self.advance(span.end, Advance::WithoutMain);
        } else if let Some(now) = now {
            self.advance(now, Advance::Clock);
        }
        let Some(origin) = self.origin else {
            return SecondaryVerdict::Wait;
        };
        if span.end > self.decided_until {
            return SecondaryVerdict::Wait;
        }
        let pieces = self
            .timeline
            .split(span.start.max(origin)..span.end.max(origin));
        let recording_time = match self.mode {
            PauseMode::Cut => pieces
                .iter()
                .find(|piece| piece.recorded)
                .map(|piece| self.recording_time(piece.span.start)),
            PauseMode::Mask => pieces.first().map(|piece| piece.span.start - origin),
        };
        SecondaryVerdict::Decided {
            pieces,
            recording_time,
        }
    }

    /// Where running time `t` lands in the recording.
    pub fn recording_time(&self, t: u64) -> u64 {
        let origin = self.origin.unwrap_or(t);
        match self.mode {
            PauseMode::Mask => t.saturating_sub(origin),
            PauseMode::Cut => self.timeline.recorded_before(t),
        }
    }

    /// Total recorded duration up to running time `until`.
    pub fn recorded_duration(&self, until: u64) -> u64 {
        self.timeline.recorded_before(until)
    }

    /// The paused spans between the origin and `until`, in running time.
    pub fn paused_spans(&self, until: u64) -> Vec<Range<u64>> {
        match self.origin {
            Some(origin) => self.timeline.gaps(origin, until),
            None => Vec::new(),
        }
    }

    /// Starts the recording at `at`. Requests made before (untimed, or timed before `at`)
    /// are folded into its initial state. `by_main_keyframe`: started by a main buffer that
    /// can be decoded on its own.
    fn start(&mut self, at: u64, by_main_keyframe: bool) {
        self.origin = Some(at);
        self.decided_until = at;
        self.main_awaits_keyframe = self.main_keyframes && !by_main_keyframe;
        let mut recording = self.initially;
        let mut reason = String::new();
        let mut requested = at;
        while self
            .pending
            .front()
            .is_some_and(|r| r.at.is_none_or(|t| t <= at))
        {
            let request = self.pending.pop_front().expect("checked");
            recording = request.recording;
            reason = request.reason;
            requested = request.at.unwrap_or(at);
        }
        if recording {
            self.timeline.start(at);
        } else {
            // The recording starts paused: say so, and why.
            self.transitions.push(Transition {
                kind: TransitionKind::Paused,
                running_time: at,
                recording_time: 0,
                // A pause asked for before the first buffer says when it was asked.
                requested_running_time: requested,
                reason,
            });
        }
    }

    /// Moves the horizon to `to`, applying the requests due on the way, in order.
    fn advance(&mut self, to: u64, how: Advance) {
        if self.origin.is_none() {
            return;
        }
        while let Some(head) = self.pending.front_mut() {
            let at = match (head.at, how) {
                (Some(at), _) => at.max(self.decided_until),
                (None, Advance::MainBuffer { .. } | Advance::WithoutMain) => {
                    *head.due_at.get_or_insert(to.max(self.decided_until))
                }
                (None, Advance::MainEnd | Advance::Clock) => break,
            };
            if at > to {
                break;
            }
            let mut switch = at;
            let resumes_encoded_video = head.recording
                && !self.timeline.is_recording()
                && self.main_keyframes
                && !self.main_eos;
            if resumes_encoded_video {
                match how {
                    // The keyframe starts at `to`, at or after the requested time.
                    Advance::MainBuffer { keyframe: true } => switch = to,
                    // Nobody waits for the video: resume now, it joins at its next keyframe.
                    Advance::WithoutMain => self.main_awaits_keyframe = true,
                    // The switch is at the next keyframe: not before the main stream's next
                    // buffer, which starts at `to` or later.
                    Advance::MainBuffer { keyframe: false } | Advance::MainEnd => {
                        self.decided_until = self.decided_until.max(to);
                        return;
                    }
                    // A keyframe may still come with any time after the request.
                    Advance::Clock => {
                        self.decided_until = self.decided_until.max(at);
                        return;
                    }
                }
            }
            let request = self.pending.pop_front().expect("checked above");
            self.apply(request, switch);
            self.decided_until = switch;
        }
        self.decided_until = self.decided_until.max(to);
    }

    fn apply(&mut self, request: Request, at: u64) {
        if request.recording == self.timeline.is_recording() {
            return;
        }
        let kind = if request.recording {
            self.timeline.start(at);
            TransitionKind::Resumed
        } else {
            self.timeline.stop(at);
            TransitionKind::Paused
        };
        self.transitions.push(Transition {
            kind,
            running_time: at,
            recording_time: self.recording_time(at),
            requested_running_time: request.at.or(request.due_at).unwrap_or(at),
            reason: request.reason,
        });
    }

    /// The verdict on a main buffer captured at `pts`, by the timeline.
    fn main_verdict(&mut self, pts: u64, keyframe: bool) -> MainVerdict {
        let origin = self.origin.expect("started");
        if pts >= origin && self.timeline.contains(pts) {
            if self.main_keyframes {
                if self.main_awaits_keyframe && !keyframe {
                    return MainVerdict::Drop;
                }
                self.main_awaits_keyframe = false;
            }
            return MainVerdict::Record {
                recording_time: self.recording_time(pts),
            };
        }
        if self.main_keyframes {
            // What follows a dropped frame in decode order cannot be decoded until a
            // keyframe; encoded media cannot be blanked either.
            self.main_awaits_keyframe = true;
            return MainVerdict::Drop;
        }
        match self.mode {
            PauseMode::Mask if pts >= origin => MainVerdict::Mask {
                recording_time: pts - origin,
            },
            _ => MainVerdict::Drop,
        }
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
                gate.main(i * FRAME..(i + 1) * FRAME, true)
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
        gate.main(FRAME..2 * FRAME, true);
        let paused = gate.take_transitions().pop().unwrap();
        assert_eq!(paused.kind, TransitionKind::Paused);
        assert_eq!(paused.running_time, FRAME);
        assert_eq!(paused.recording_time, FRAME);
        assert_eq!(paused.reason, "card number");
        gate.request(true, "done", None);
        gate.main(2 * FRAME..3 * FRAME, true);
        let resumed = gate.take_transitions().pop().unwrap();
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
        gate.set_main_needs_keyframes(true);
        // Joining mid-GOP: nothing is recorded before the first keyframe.
        assert_eq!(gate.main(0..FRAME, false), MainVerdict::Drop);
        assert_eq!(gate.origin(), None);
        assert!(matches!(
            gate.main(FRAME..2 * FRAME, true),
            MainVerdict::Record { recording_time: 0 }
        ));
        gate.request(false, "", None);
        gate.main(2 * FRAME..3 * FRAME, false);
        gate.request(true, "", None);
        assert!(gate.awaiting_keyframe());
        assert_eq!(gate.main(3 * FRAME..4 * FRAME, false), MainVerdict::Drop);
        // Secondaries are decided up to the next main buffer, not beyond: the switch is at
        // a keyframe not seen yet.
        assert_eq!(gate.decided_until(), 4 * FRAME);
        assert_eq!(
            gate.secondary(4 * FRAME..4 * FRAME + 10, None),
            SecondaryVerdict::Wait
        );
        let verdict = gate.main(4 * FRAME..5 * FRAME, true);
        assert_eq!(
            verdict,
            MainVerdict::Record {
                recording_time: FRAME
            }
        );
        let transitions = gate.take_transitions();
        let resumed = transitions.last().unwrap();
        assert_eq!(resumed.running_time, 4 * FRAME);
        assert_eq!(resumed.requested_running_time, 3 * FRAME);
    }

    #[test]
    fn delta_frames_after_a_dropped_frame_are_dropped_until_a_keyframe() {
        // B-frames: decode order I0 P3 B1 B2 | P6 B4 B5; a pause at 5 drops P6, so B4 (shown
        // before the pause, but predicted from P6) is dropped as well.
        let mut gate = Gate::new(PauseMode::Cut, true);
        gate.set_main_needs_keyframes(true);
        let frame = |i: u64| i * FRAME..(i + 1) * FRAME;
        assert!(matches!(
            gate.main(frame(0), true),
            MainVerdict::Record { .. }
        ));
        gate.request(false, "", Some(5 * FRAME));
        for (i, expected_recorded) in [(3, true), (1, true), (2, true), (6, false), (4, false)] {
            let verdict = gate.main(frame(i), false);
            assert_eq!(
                matches!(verdict, MainVerdict::Record { .. }),
                expected_recorded,
                "frame {i}: {verdict:?}"
            );
        }
        assert_eq!(gate.paused_spans(7 * FRAME), vec![5 * FRAME..7 * FRAME]);
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
                MainVerdict::Record { .. }
            ));
        }
        assert_eq!(gate.main(10 * FRAME..11 * FRAME, true), MainVerdict::Drop);
        assert_eq!(gate.take_transitions()[0].running_time, 10 * FRAME);
        gate.request(true, "done", Some(15 * FRAME));
        // Frames captured before the resume stay out, even though they arrive after it.
        for i in 11..15 {
            assert_eq!(
                gate.main(i * FRAME..(i + 1) * FRAME, true),
                MainVerdict::Drop
            );
        }
        assert!(matches!(
            gate.main(15 * FRAME..16 * FRAME, true),
            MainVerdict::Record { .. }
        ));
        let resumed = gate.take_transitions().pop().unwrap();
        assert_eq!(resumed.running_time, 15 * FRAME);
        assert_eq!(resumed.requested_running_time, 15 * FRAME);
        assert_eq!(gate.paused_spans(16 * FRAME), vec![10 * FRAME..15 * FRAME]);
    }

    #[test]
    fn a_pause_and_resume_made_while_the_media_lags_are_both_applied() {
        // Upstream lags 500 ms; the agent pauses at 1000 ms and resumes at 1300 ms of running
        // time, both before any media of that time has arrived.
        const MS: u64 = 1_000_000;
        let mut gate = Gate::new(PauseMode::Cut, true);
        let frame = 33 * MS;
        let mut t = 0;
        while t < 600 * MS {
            gate.main(t..t + frame, true);
            t += frame;
        }
        assert!(gate.request(false, "card number", Some(1000 * MS)));
        assert!(gate.request(true, "card done", Some(1300 * MS)));
        let mut recorded_frames = Vec::new();
        while t < 2000 * MS {
            if let MainVerdict::Record { .. } = gate.main(t..t + frame, true) {
                recorded_frames.push(t);
            }
            t += frame;
        }
        assert!(
            recorded_frames
                .iter()
                .all(|&pts| !(1000 * MS..1300 * MS).contains(&pts)),
            "{recorded_frames:?}"
        );
        let transitions = gate.take_transitions();
        assert_eq!(transitions.len(), 2);
        assert_eq!(transitions[0].running_time, 1000 * MS);
        assert_eq!(transitions[1].running_time, 1300 * MS);
        assert_eq!(gate.paused_spans(2000 * MS), vec![1000 * MS..1300 * MS]);
        // Audio captured in the pause is cut at exactly those times.
        let (pieces, _) = recorded(gate.secondary(990 * MS..1310 * MS, Some(2000 * MS)));
        assert_eq!(
            pieces,
            vec![
                (990 * MS..1000 * MS, true),
                (1000 * MS..1300 * MS, false),
                (1300 * MS..1310 * MS, true)
            ]
        );
    }

    #[test]
    fn live_secondaries_follow_the_clock_not_the_main_stream() {
        let mut gate = Gate::new(PauseMode::Cut, true);
        gate.main(0..FRAME, true);
        // Audio far ahead of the video: in a live pipeline the clock says nothing can change
        // before 200, so the audio need not wait.
        assert_eq!(gate.secondary(100..120, None), SecondaryVerdict::Wait);
        let (pieces, time) = recorded(gate.secondary(100..120, Some(200)));
        assert_eq!((pieces, time), (vec![(100..120, true)], Some(100)));
    }

    #[test]
    fn a_stalled_main_stream_does_not_hold_the_others() {
        let mut gate = Gate::new(PauseMode::Cut, true);
        gate.set_main_needs_keyframes(true);
        assert_eq!(gate.secondary(0..20, Some(20)), SecondaryVerdict::Wait);
        // Video never came: the caller gives up waiting.
        gate.main_stalled(0, 20);
        let (pieces, _) = recorded(gate.secondary(0..20, Some(20)));
        assert_eq!(pieces, vec![(0..20, true)]);
        // The video joins at its first keyframe.
        assert_eq!(gate.main(30..40, false), MainVerdict::Drop);
        assert!(matches!(
            gate.main(40..50, true),
            MainVerdict::Record { .. }
        ));
    }

    #[test]
    fn paused_before_the_first_buffer() {
        let mut gate = Gate::new(PauseMode::Cut, false);
        assert_eq!(gate.main(100..100 + FRAME, true), MainVerdict::Drop);
        assert_eq!(gate.take_transitions()[0].kind, TransitionKind::Paused);
        gate.request(true, "", None);
        let verdict = gate.main(100 + FRAME..100 + 2 * FRAME, true);
        assert_eq!(verdict, MainVerdict::Record { recording_time: 0 });
        assert_eq!(gate.take_transitions()[0].kind, TransitionKind::Resumed);
    }

    #[test]
    fn a_pause_asked_before_the_first_buffer_keeps_its_request_time() {
        let mut gate = Gate::new(PauseMode::Cut, true);
        gate.request(false, "card", Some(50));
        gate.request(true, "done", Some(150));
        assert_eq!(gate.main(100..100 + FRAME, true), MainVerdict::Drop);
        let paused = gate.take_transitions();
        assert_eq!(paused.len(), 1);
        assert_eq!(paused[0].kind, TransitionKind::Paused);
        assert_eq!(paused[0].running_time, 100);
        assert_eq!(paused[0].requested_running_time, 50);
        assert_eq!(paused[0].reason, "card");
        assert_eq!(
            gate.main(150..150 + FRAME, true),
            MainVerdict::Record { recording_time: 0 }
        );
        let resumed = gate.take_transitions();
        assert_eq!(resumed[0].kind, TransitionKind::Resumed);
        assert_eq!(resumed[0].running_time, 150);
        assert_eq!(gate.paused_spans(200), vec![100..150]);
    }

    #[test]
    fn secondary_waits_for_the_main_stream_then_splits_at_switches() {
        let mut gate = Gate::new(PauseMode::Cut, true);
        assert_eq!(gate.secondary(0..20, None), SecondaryVerdict::Wait);
        gate.main(0..FRAME, true);
        assert_eq!(gate.secondary(20..60, None), SecondaryVerdict::Wait);
        gate.request(false, "", None);
        gate.main(FRAME..2 * FRAME, true);
        let (pieces, recording_time) = recorded(gate.secondary(20..60, None));
        assert_eq!(pieces, vec![(20..40, true), (40..60, false)]);
        assert_eq!(recording_time, Some(20));
        gate.request(true, "", None);
        gate.main(2 * FRAME..3 * FRAME, true);
        let (pieces, recording_time) = recorded(gate.secondary(60..100, None));
        assert_eq!(pieces, vec![(60..80, false), (80..100, true)]);
        assert_eq!(recording_time, Some(FRAME), "resumes right after the pause");
    }

    #[test]
    fn secondary_before_the_origin_is_left_out() {
        let mut gate = Gate::new(PauseMode::Mask, true);
        gate.main(50..90, true);
        let (pieces, recording_time) = recorded(gate.secondary(30..70, None));
        assert_eq!(pieces, vec![(50..70, true)]);
        assert_eq!(recording_time, Some(0));
    }

    #[test]
    fn mask_mode_secondary_keeps_paused_pieces_on_the_timeline() {
        let mut gate = Gate::new(PauseMode::Mask, true);
        gate.main(0..FRAME, true);
        gate.request(false, "", None);
        gate.main(FRAME..2 * FRAME, true);
        let (pieces, recording_time) = recorded(gate.secondary(30..50, None));
        assert_eq!(pieces, vec![(30..40, true), (40..50, false)]);
        assert_eq!(recording_time, Some(30));
    }

    #[test]
    fn eos_while_paused_and_requests_after_main_eos() {
        let mut gate = Gate::new(PauseMode::Cut, true);
        run_main(&mut gate, 4, &[2]);
        gate.main_eos();
        let (pieces, _) = recorded(gate.secondary(100..200, None));
        assert_eq!(pieces, vec![(100..200, false)]);
        gate.take_transitions();
        gate.request(true, "after video ended", None);
        let verdict = gate.secondary(200..220, None);
        assert_eq!(gate.take_transitions()[0].running_time, 200);
        assert_eq!(recorded(verdict).0, vec![(200..220, true)]);
    }

    #[test]
    fn gaps_in_the_main_stream_let_secondaries_go_on() {
        let mut gate = Gate::new(PauseMode::Cut, true);
        gate.main(0..FRAME, true);
        gate.main_gap(FRAME, 10 * FRAME);
        let (pieces, _) = recorded(gate.secondary(5 * FRAME..6 * FRAME, None));
        assert_eq!(pieces, vec![(5 * FRAME..6 * FRAME, true)]);
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
                let (pieces, time) = recorded(gate.secondary(start..start + 30, None));
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
            let mut distinct = toggles.clone();
            distinct.dedup();
            assert_eq!(gate.take_transitions().len(), distinct.len());
        }
    }
}
