//! Where DTMF tones are in an audio stream, so that in-band DTMF (a customer typing a card
//! number on the keypad) can be masked before it reaches the recording. No GStreamer types.
//!
//! GStreamer's `dtmfdetect` (spandsp) recognises digits but only says *that* one was heard,
//! not where the tone starts and ends; this tracker finds the spans: Goertzel filters at the
//! eight DTMF frequencies over 205-sample blocks of 8 kHz audio (the classic block for DTMF,
//! ~39 Hz bins), a block holding a tone when one row and one column frequency carry most of
//! its energy at a plausible twist. Spans are widened by a block on each side, so a tone's
//! ramp is covered too. The digits themselves are never kept.

use std::ops::Range;

/// The DTMF row and column frequencies (Hz).
const ROWS: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
const COLUMNS: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
/// Samples per analysis block at 8 kHz.
pub const BLOCK: usize = 205;
pub const RATE: u32 = 8000;
const BLOCK_NS: u64 = BLOCK as u64 * 1_000_000_000 / RATE as u64;
/// How far past a piece of audio the tracker must have listened before that piece can be
/// recorded: a tone starting at its very end is known after at most two more blocks.
pub const LOOKAHEAD_NS: u64 = 3 * BLOCK_NS;
/// Quieter than this (RMS of full scale) is no tone.
const MIN_LEVEL: f32 = 0.003;
/// Row and column together must hold this share of the block's energy.
const MIN_PURITY: f32 = 0.6;
/// Row/column power ratio within ±10 dB.
const MAX_TWIST: f32 = 10.0;

/// Goertzel power of `frequency` in `block` (normalised so a full-scale sine gives ~0.25).
fn goertzel(block: &[f32], frequency: f32) -> f32 {
    let omega = 2.0 * std::f32::consts::PI * frequency / RATE as f32;
    let coefficient = 2.0 * omega.cos();
    let (mut s1, mut s2) = (0.0f32, 0.0f32);
    for &x in block {
        let s0 = x + coefficient * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coefficient * s1 * s2;
    power / (block.len() * block.len()) as f32
}

/// Whether a block of 8 kHz samples (-1..1) holds a DTMF tone.
pub fn block_has_tone(block: &[f32]) -> bool {
    let energy = block.iter().map(|x| x * x).sum::<f32>() / block.len() as f32;
    if energy.sqrt() < MIN_LEVEL {
        return false;
    }
    let strongest = |frequencies: &[f32; 4]| {
        frequencies
            .iter()
            .map(|&f| goertzel(block, f))
            .fold(0.0f32, f32::max)
    };
    let row = strongest(&ROWS);
    let column = strongest(&COLUMNS);
    if row <= 0.0 || column <= 0.0 {
        return false;
    }
    let twist = row / column;
    // A sine of amplitude a has mean energy a²/2 and Goertzel power ~a²/4.
    let purity = 2.0 * (row + column) / energy;
    purity >= MIN_PURITY && (1.0 / MAX_TWIST..=MAX_TWIST).contains(&twist)
}

/// Follows one stream's audio (8 kHz mono) and says where tones are.
#[derive(Debug, Default)]
pub struct ToneTracker {
    block: Vec<f32>,
    /// Running time of the block's first sample.
    block_start: Option<u64>,
    /// Start of the tone being heard, if any.
    tone_start: Option<u64>,
}

impl ToneTracker {
    /// Feeds samples starting at running time `start`; returns the spans to mask now (a tone
    /// still going on is returned up to where it was heard, and again as it goes on).
    pub fn push(&mut self, samples: &[i16], start: u64) -> Vec<Range<u64>> {
        let mut spans = Vec::new();
        let sample_ns = 1_000_000_000 / RATE as u64;
        for (i, &sample) in samples.iter().enumerate() {
            if self.block.is_empty() {
                self.block_start = Some(start + i as u64 * sample_ns);
            }
            self.block.push(sample as f32 / 32768.0);
            if self.block.len() < BLOCK {
                continue;
            }
            let block_start = self.block_start.take().unwrap_or(start);
            let block_end = block_start + BLOCK_NS;
            if block_has_tone(&self.block) {
                // A block of margin before the first block that holds it.
                let tone_start = *self
                    .tone_start
                    .get_or_insert(block_start.saturating_sub(BLOCK_NS));
                spans.push(tone_start..block_end + BLOCK_NS);
            } else if let Some(tone_start) = self.tone_start.take() {
                spans.push(tone_start..block_end);
            }
            self.block.clear();
        }
        spans
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signal(parts: &[(f32, f32, f32)]) -> Vec<i16> {
        // (seconds, first frequency, second frequency; 0 = none)
        let mut out = Vec::new();
        for &(seconds, f1, f2) in parts {
            for _ in 0..(seconds * RATE as f32) as usize {
                let t = out.len() as f32 / RATE as f32;
                let mut v = 0.2 * (2.0 * std::f32::consts::PI * 440.0 * t).sin();
                if f1 > 0.0 {
                    v = 0.3
                        * ((2.0 * std::f32::consts::PI * f1 * t).sin()
                            + (2.0 * std::f32::consts::PI * f2 * t).sin())
                        / 2.0;
                }
                out.push((v * 32767.0) as i16);
            }
        }
        out
    }

    fn tones_in(samples: &[i16]) -> Vec<Range<u64>> {
        let mut tracker = ToneTracker::default();
        let mut spans: Vec<Range<u64>> = Vec::new();
        // In 20 ms buffers, as a stream comes.
        for (i, chunk) in samples.chunks(160).enumerate() {
            for span in tracker.push(chunk, i as u64 * 20_000_000) {
                match spans.last_mut() {
                    Some(last) if last.start == span.start => last.end = last.end.max(span.end),
                    _ => spans.push(span),
                }
            }
        }
        spans
    }

    #[test]
    fn finds_tones_and_not_speech() {
        let samples = signal(&[
            (1.0, 0.0, 0.0),
            (0.2, 770.0, 1336.0),
            (0.8, 0.0, 0.0),
            (0.3, 852.0, 1477.0),
            (1.0, 0.0, 0.0),
        ]);
        let spans = tones_in(&samples);
        assert_eq!(spans.len(), 2, "{spans:?}");
        let ms = |ns: u64| ns as f64 / 1e6;
        // Each span covers its tone, with at most a block or two of margin.
        assert!(
            ms(spans[0].start) <= 1000.0 && ms(spans[0].start) > 940.0,
            "{spans:?}"
        );
        assert!(
            ms(spans[0].end) >= 1200.0 && ms(spans[0].end) < 1260.0,
            "{spans:?}"
        );
        assert!(
            ms(spans[1].start) <= 2000.0 && ms(spans[1].end) >= 2300.0,
            "{spans:?}"
        );
    }

    #[test]
    fn a_single_frequency_or_silence_is_no_tone() {
        assert!(tones_in(&signal(&[(1.0, 0.0, 0.0)])).is_empty());
        assert!(!block_has_tone(&[0.0; BLOCK]));
        let single: Vec<f32> = (0..BLOCK)
            .map(|i| 0.5 * (2.0 * std::f32::consts::PI * 770.0 * i as f32 / 8000.0).sin())
            .collect();
        assert!(!block_has_tone(&single));
    }
}
