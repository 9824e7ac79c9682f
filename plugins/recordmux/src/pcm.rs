//! Applying the gate's decisions to media payloads: keeping, silencing and leaving out
//! interleaved PCM at sample precision, and black I420 frames. No GStreamer types.

use std::ops::Range;

/// What becomes of a part of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Recorded as it is.
    Keep,
    /// Kept on the timeline, content blanked (silence, black): a masked pause, a stream
    /// paused on its own, a DTMF tone.
    Blank,
    /// Left out (a cut pause, before the recording started).
    Drop,
}

/// A part of a buffer, in running time, and its fate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub span: Range<u64>,
    pub fate: Fate,
}

/// Interleaved PCM layout of one buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcmLayout {
    pub rate: u32,
    pub bytes_per_frame: usize,
}

impl PcmLayout {
    /// Duration in nanoseconds of `bytes` of audio.
    pub fn duration_ns(&self, bytes: usize) -> u64 {
        let frames = (bytes / self.bytes_per_frame) as u128;
        (frames * 1_000_000_000 / self.rate as u128) as u64
    }

    /// Byte offset of running time `t` in a buffer that starts at `start` and holds `bytes`.
    fn offset(&self, start: u64, t: u64, bytes: usize) -> usize {
        let frames = ((t.saturating_sub(start) as u128 * self.rate as u128 + 500_000_000)
            / 1_000_000_000) as usize;
        (frames * self.bytes_per_frame).min(bytes - bytes % self.bytes_per_frame)
    }

    fn byte_range(&self, start: u64, span: &Range<u64>, bytes: usize) -> Range<usize> {
        self.offset(start, span.start, bytes)..self.offset(start, span.end, bytes)
    }

    /// `data` (which starts at running time `start`) as `parts` say: kept parts as they are,
    /// blanked parts silent (signed PCM: zero is silence), dropped parts left out; parts in
    /// order.
    pub fn render(&self, data: &[u8], start: u64, parts: &[Part]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len());
        for part in parts {
            let range = self.byte_range(start, &part.span, data.len());
            match part.fate {
                Fate::Keep => out.extend_from_slice(&data[range]),
                Fate::Blank => out.resize(out.len() + range.len(), 0),
                Fate::Drop => (),
            }
        }
        out
    }
}

/// Fills I420 planes with black (Y 16, U/V 128, video range).
pub fn fill_black_i420(planes: [&mut [u8]; 3]) {
    let [y, u, v] = planes;
    y.fill(16);
    u.fill(128);
    v.fill(128);
}

#[cfg(test)]
mod tests {
    use super::*;

    // 1000 Hz mono 16-bit: one frame is 1 ms = 1_000_000 ns and 2 bytes.
    const LAYOUT: PcmLayout = PcmLayout {
        rate: 1000,
        bytes_per_frame: 2,
    };
    const MS: u64 = 1_000_000;

    #[test]
    fn render_keeps_blanks_and_drops_parts() {
        let data: Vec<u8> = (1..=20).collect();
        let parts = [
            Part {
                span: 0..2 * MS,
                fate: Fate::Keep,
            },
            Part {
                span: 2 * MS..4 * MS,
                fate: Fate::Blank,
            },
            Part {
                span: 4 * MS..6 * MS,
                fate: Fate::Drop,
            },
            Part {
                span: 6 * MS..10 * MS,
                fate: Fate::Keep,
            },
        ];
        assert_eq!(
            LAYOUT.render(&data, 0, &parts),
            [1, 2, 3, 4, 0, 0, 0, 0, 13, 14, 15, 16, 17, 18, 19, 20]
        );
    }
}
