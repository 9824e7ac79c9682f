//! Applying the gate's decisions to media payloads: cutting and silencing interleaved PCM at
//! sample precision, and black I420 frames. No GStreamer types.

use std::ops::Range;

use crate::timeline::Piece;

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

    /// The recorded pieces of `data` (which starts at running time `start`), concatenated.
    pub fn cut(&self, data: &[u8], start: u64, pieces: &[Piece]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len());
        for piece in pieces.iter().filter(|piece| piece.recorded) {
            out.extend_from_slice(&data[self.byte_range(start, &piece.span, data.len())]);
        }
        out
    }

    /// `data` from the first piece on, with the paused pieces silenced (signed PCM: zero is
    /// silence).
    pub fn mask(&self, data: &[u8], start: u64, pieces: &[Piece]) -> Vec<u8> {
        let Some(first) = pieces.first() else {
            return Vec::new();
        };
        let from = self.offset(start, first.span.start, data.len());
        let mut out = data[from..].to_vec();
        for piece in pieces.iter().filter(|piece| !piece.recorded) {
            let range = self.byte_range(start, &piece.span, data.len());
            out[range.start - from..range.end - from].fill(0);
        }
        out
    }
}

/// Whether a packet that cannot be split (encoded audio, a video frame) is kept: when its
/// middle is recorded.
pub fn keep_whole(span: &Range<u64>, pieces: &[Piece]) -> bool {
    let middle = span.start + (span.end - span.start) / 2;
    pieces
        .iter()
        .any(|piece| piece.recorded && piece.span.contains(&middle))
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

    fn piece(span: Range<u64>, recorded: bool) -> Piece {
        Piece { span, recorded }
    }

    // 1000 Hz mono 16-bit: one frame is 1 ms = 1_000_000 ns and 2 bytes.
    const LAYOUT: PcmLayout = PcmLayout {
        rate: 1000,
        bytes_per_frame: 2,
    };
    const MS: u64 = 1_000_000;

    #[test]
    fn cut_keeps_recorded_samples_only() {
        let data: Vec<u8> = (0..20).collect();
        let pieces = [
            piece(0..3 * MS, true),
            piece(3 * MS..7 * MS, false),
            piece(7 * MS..10 * MS, true),
        ];
        assert_eq!(
            LAYOUT.cut(&data, 0, &pieces),
            [0, 1, 2, 3, 4, 5, 14, 15, 16, 17, 18, 19]
        );
        assert_eq!(LAYOUT.duration_ns(12), 6 * MS);
    }

    #[test]
    fn mask_silences_paused_samples_and_drops_before_the_first_piece() {
        let data = vec![7u8; 20];
        let pieces = [piece(2 * MS..4 * MS, true), piece(4 * MS..10 * MS, false)];
        let out = LAYOUT.mask(&data, 0, &pieces);
        assert_eq!(out.len(), 16);
        assert_eq!(&out[..4], &[7, 7, 7, 7]);
        assert!(out[4..].iter().all(|&b| b == 0));
    }

    #[test]
    fn whole_packets_follow_their_middle() {
        let pieces = [piece(0..15, true), piece(15..20, false)];
        assert!(keep_whole(&(0..20), &pieces));
        let pieces = [piece(0..5, true), piece(5..20, false)];
        assert!(!keep_whole(&(0..20), &pieces));
    }
}
