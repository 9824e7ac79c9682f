//! From the model's coarse person probability to a crisp full-resolution alpha:
//!
//! 1. temporal smoothing at model resolution, weighted by uncertainty: confident pixels
//!    follow the new mask at once (no lag when the person moves), uncertain ones (hair,
//!    edges near 0.5) blend with the previous mask, which removes flicker on a still person;
//! 2. a guided filter (He et al.) at model resolution with the frame's luma as guide,
//!    giving per-pixel linear coefficients `alpha = a * luma + b`;
//! 3. the coefficients are upsampled bilinearly and applied to the full-resolution luma
//!    ("fast guided filter", He & Sun 2015): edges follow the real frame's edges at full
//!    resolution while all filtering happens on ~37k pixels;
//! 4. a threshold / edge-band curve tightens the soft edge without aliasing it.

use rayon::prelude::*;

use crate::boxfilter::{BoxScratch, box_mean};
use crate::resample::LinearTable;

/// Uncertainty-weighted exponential smoothing of the person mask.
#[derive(Debug, Default)]
pub struct TemporalFilter {
    previous: Vec<f32>,
}

impl TemporalFilter {
    pub fn reset(&mut self) {
        self.previous.clear();
    }

    /// `strength` 0 = no smoothing; 1 = uncertain pixels keep the previous value.
    /// Updates `mask` in place and remembers it.
    pub fn apply(&mut self, mask: &mut [f32], strength: f32) {
        if self.previous.len() != mask.len() {
            self.previous.clear();
            self.previous.extend_from_slice(mask);
            return;
        }
        let strength = strength.clamp(0.0, 1.0);
        for (current, previous) in mask.iter_mut().zip(self.previous.iter_mut()) {
            let confidence = (2.0 * *current - 1.0).abs();
            let follow = (1.0 - strength) + strength * confidence * confidence;
            *current = *previous + (*current - *previous) * follow;
            *previous = *current;
        }
    }
}

/// Guided filter at low resolution producing the coefficient maps `a` and `b`.
#[derive(Debug, Default)]
pub struct GuidedFilter {
    width: usize,
    height: usize,
    /// Per pixel (guide, mask, guide * mask, guide^2), box-filtered in one pass.
    moments: Vec<f32>,
    scratch: BoxScratch,
    /// Interleaved (a, b) per low-resolution pixel, after the final box mean.
    pub coefficients: Vec<f32>,
}

impl GuidedFilter {
    pub fn new(width: usize, height: usize) -> Self {
        let n = width * height;
        GuidedFilter {
            width,
            height,
            moments: vec![0.0; 4 * n],
            scratch: BoxScratch::default(),
            coefficients: vec![0.0; 2 * n],
        }
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn height(&self) -> usize {
        self.height
    }

    /// `guide` in [0, 1]; `mask` person probability. `epsilon` is the regularisation: larger
    /// follows the mask more, smaller follows the guide's edges more.
    pub fn compute(&mut self, guide: &[f32], mask: &[f32], radius: usize, epsilon: f32) {
        let (w, h) = (self.width, self.height);
        for ((m, &g), &p) in self.moments.chunks_exact_mut(4).zip(guide).zip(mask) {
            m.copy_from_slice(&[g, p, g * p, g * g]);
        }
        box_mean::<4>(&mut self.moments, w, h, radius, &mut self.scratch);
        // a = cov(I, p) / (var(I) + eps), b = mean(p) - a * mean(I).
        for (c, m) in self
            .coefficients
            .chunks_exact_mut(2)
            .zip(self.moments.chunks_exact(4))
        {
            let (mean_i, mean_p) = (m[0], m[1]);
            let covariance = m[2] - mean_i * mean_p;
            let variance = m[3] - mean_i * mean_i;
            let a = covariance / (variance + epsilon);
            c[0] = a;
            c[1] = mean_p - a * mean_i;
        }
        box_mean::<2>(&mut self.coefficients, w, h, radius, &mut self.scratch);
    }

    /// Coefficients that give alpha 0 everywhere (fail closed: the whole frame is background).
    pub fn set_all_background(&mut self) {
        self.coefficients.fill(0.0);
    }
}

/// Maps a refined alpha in [0, 1] to the final 8-bit alpha with a threshold and an edge
/// band (smoothstep over `[threshold - band/2, threshold + band/2]`), computed (no table:
/// the loops that call it vectorise).
#[derive(Debug, Clone)]
pub struct AlphaCurve {
    low: f32,
    /// 1 / band width.
    inverse_band: f32,
    /// Inputs below this map to 0, at or above `opaque_from` to 255.
    pub transparent_below: f32,
    pub opaque_from: f32,
}

/// The band of `edge-band=0`: narrower than any difference that matters in 8 bits.
const HARD_BAND: f32 = 1e-4;
/// 2^23: added to a float in [0, 2^23), rounds it to an integer held in the mantissa.
const ROUND_TO_UNIT: f32 = 8_388_608.0;

impl AlphaCurve {
    pub fn new(threshold: f32, band: f32) -> Self {
        let low = threshold - band / 2.0;
        let high = threshold + band / 2.0;
        // A hard edge is a band so narrow that no input falls inside it.
        let (low, high) = if high - low < HARD_BAND {
            (threshold - HARD_BAND / 2.0, threshold + HARD_BAND / 2.0)
        } else {
            (low, high)
        };
        AlphaCurve {
            low,
            inverse_band: 1.0 / (high - low),
            transparent_below: low,
            opaque_from: high,
        }
    }

    #[inline(always)]
    pub fn map(&self, value: f32) -> u8 {
        // max/min, not clamp: a NaN (from a broken model) becomes 0 instead of staying NaN.
        #[allow(clippy::manual_clamp)]
        let t = ((value - self.low) * self.inverse_band).max(0.0).min(1.0);
        let level = t * t * (3.0 - 2.0 * t) * 255.0;
        // Rounded by adding 2^23 (where a float's unit is 1) and reading the low mantissa
        // bits: a conversion the loops that call this vectorise, where `as u8` (saturating)
        // was compiled one pixel at a time. `level` is in [0, 255], so the bits are exact.
        ((level + ROUND_TO_UNIT).to_bits() & 0xff) as u8
    }
}

/// Upsampling geometry from the guided filter's resolution to the frame's.
#[derive(Debug, Clone, Default)]
pub struct AlphaUpsampler {
    columns: LinearTable,
    rows: LinearTable,
    low_width: usize,
    /// For each low-resolution column j, the full-resolution columns interpolated between
    /// j and j + 1 (left index == j).
    spans: Vec<std::ops::Range<usize>>,
    /// `starts[j]`: the first full-resolution column of span j or later (`starts[low_width]`
    /// = width), so a run of spans covers `starts[first]..starts[end]` even if some are empty.
    starts: Vec<usize>,
    /// Per low-resolution pixel: alpha saturated for any luma (0 or 255) or not (1).
    saturation: Vec<u8>,
    /// Per low-resolution row (with the next one below it): runs of consecutive spans that
    /// are all transparent, all opaque, or to be evaluated — (first span, end span, state).
    /// Rebuilt every frame into the same vectors.
    runs: Vec<Vec<(usize, usize, u8)>>,
}

impl AlphaUpsampler {
    pub fn new(low_width: usize, low_height: usize, width: usize, height: usize) -> Self {
        let columns = LinearTable::new(low_width, width);
        let mut spans = vec![0..0; low_width];
        for (x, &j) in columns.index.iter().enumerate() {
            let span = &mut spans[j as usize];
            if span.end == 0 {
                *span = x..x + 1;
            } else {
                span.end = x + 1;
            }
        }
        let starts = (0..=low_width)
            .map(|j| columns.index.iter().filter(|&&i| (i as usize) < j).count())
            .collect();
        AlphaUpsampler {
            starts,
            columns,
            rows: LinearTable::new(low_height, height),
            low_width,
            spans,
            saturation: Vec::with_capacity(low_width * low_height),
            runs: vec![Vec::new(); low_height],
        }
    }

    /// Writes the full-resolution alpha (`width * height` bytes). `luma_span(y, columns, out)`
    /// writes the frame's luma bytes of row `y` at those columns.
    ///
    /// Most of a frame is certainly person or certainly background: where both
    /// low-resolution neighbour columns of both neighbour rows give a saturated alpha for
    /// any luma, the alpha of the whole span between them is known without evaluating it
    /// (alpha is a convex combination of the neighbours' `a * luma + b`), and is filled.
    pub fn render(
        &mut self,
        coefficients: &[f32],
        curve: &AlphaCurve,
        luma_span: impl Fn(usize, std::ops::Range<usize>, &mut [u8]) + Sync,
        alpha: &mut [u8],
    ) {
        let width = self.columns.len();
        let low_width = self.low_width;
        let pair_row = 2 * low_width;
        self.saturation.clear();
        self.saturation
            .extend(coefficients.chunks_exact(2).map(|pair| {
                let (a, b) = (pair[0], pair[1]);
                let (low, high) = (b + a.min(0.0), b + a.max(0.0));
                if high < curve.transparent_below {
                    SATURATED_TRANSPARENT
                } else if low >= curve.opaque_from {
                    SATURATED_OPAQUE
                } else {
                    UNSATURATED
                }
            }));
        // Runs once per low-resolution row pair, not per frame row (~5 frame rows share one
        // at 720p): most of a row is a few long runs filled with memset.
        let low_height = self.runs.len();
        for (top, runs) in self.runs.iter_mut().enumerate() {
            let bottom = (top + 1).min(low_height - 1);
            let state_of = |j: usize| {
                let (t, b) = (
                    self.saturation[top * low_width + j],
                    self.saturation[bottom * low_width + j],
                );
                if t == b { t } else { UNSATURATED }
            };
            runs.clear();
            let mut left = state_of(0);
            for j in 0..low_width {
                let right = state_of((j + 1).min(low_width - 1));
                let state = if left == right { left } else { UNSATURATED };
                match runs.last_mut() {
                    Some(run) if run.2 == state => run.1 = j + 1,
                    _ => runs.push((j, j + 1, state)),
                }
                left = right;
            }
        }
        let (spans, starts) = (&self.spans, &self.starts);
        let all_runs = &self.runs;
        let (rows, columns) = (&self.rows, &self.columns);
        alpha
            .par_chunks_mut(width)
            .with_min_len(16)
            .enumerate()
            .for_each_init(
                || RowBuffers::new(pair_row, width),
                |buffers, (y, out)| {
                    let top = rows.index[y] as usize;
                    let bottom = rows.next[y] as usize;
                    let mut blended = false;
                    for &(first, end, state) in &all_runs[top] {
                        let run = starts[first]..starts[end];
                        if state != UNSATURATED {
                            out[run].fill(state);
                            continue;
                        }
                        let RowBuffers { pairs, a, b, luma } = buffers;
                        if !blended {
                            rows.blend_rows(
                                y,
                                &coefficients[top * pair_row..(top + 1) * pair_row],
                                &coefficients[bottom * pair_row..(bottom + 1) * pair_row],
                                pairs,
                            );
                            blended = true;
                        }
                        // The coefficients along the run, span by span: within a span they
                        // are a linear blend of two neighbours (contiguous weights, no
                        // gather). Only these short loops follow the spans; the luma and the
                        // alpha are one call and one loop over the whole run.
                        for (j, span) in spans.iter().enumerate().take(end).skip(first) {
                            let right = (j + 1).min(low_width - 1);
                            let (a0, b0) = (pairs[2 * j], pairs[2 * j + 1]);
                            let (da, db) = (pairs[2 * right] - a0, pairs[2 * right + 1] - b0);
                            for ((a, b), &w) in a[span.clone()]
                                .iter_mut()
                                .zip(&mut b[span.clone()])
                                .zip(&columns.weight[span.clone()])
                            {
                                *a = a0 + da * w;
                                *b = b0 + db * w;
                            }
                        }
                        luma_span(y, run.clone(), &mut luma[run.clone()]);
                        for (((o, &a), &b), &l) in out[run.clone()]
                            .iter_mut()
                            .zip(&a[run.clone()])
                            .zip(&b[run.clone()])
                            .zip(&luma[run])
                        {
                            *o = curve.map(a * (l as f32 * (1.0 / 255.0)) + b);
                        }
                    }
                },
            );
    }
}

/// One rendering thread's rows: the coefficient pairs blended for its frame row, and the
/// coefficients and luma along the frame row (indexed by frame column).
struct RowBuffers {
    pairs: Vec<f32>,
    a: Vec<f32>,
    b: Vec<f32>,
    luma: Vec<u8>,
}

impl RowBuffers {
    fn new(pair_row: usize, width: usize) -> Self {
        RowBuffers {
            pairs: vec![0.0; pair_row],
            a: vec![0.0; width],
            b: vec![0.0; width],
            luma: vec![0; width],
        }
    }
}

const SATURATED_TRANSPARENT: u8 = 0;
const SATURATED_OPAQUE: u8 = 255;
const UNSATURATED: u8 = 1;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guided_filter_snaps_mask_edge_to_guide_edge() {
        // Guide: sharp vertical edge at x = 10; mask: blurry ramp around it.
        let (w, h) = (20, 8);
        let guide: Vec<f32> = (0..w * h)
            .map(|i| if i % w < 10 { 0.9 } else { 0.1 })
            .collect();
        let mask: Vec<f32> = (0..w * h)
            .map(|i| (1.0 - ((i % w) as f32 - 4.0) / 12.0).clamp(0.0, 1.0))
            .collect();
        let mut filter = GuidedFilter::new(w, h);
        filter.compute(&guide, &mask, 2, 1e-4);
        let alpha_at = |x: usize| {
            let i = 4 * w + x;
            filter.coefficients[2 * i] * guide[i] + filter.coefficients[2 * i + 1]
        };
        // The step across the guide edge is much sharper than the mask's own ramp.
        let jump = alpha_at(9) - alpha_at(10);
        let ramp = mask[4 * w + 9] - mask[4 * w + 10];
        assert!(jump > 2.5 * ramp, "jump {jump} ramp {ramp}");
    }

    /// The plain definition of `AlphaUpsampler::render`: every pixel evaluated.
    fn render_reference(
        coefficients: &[f32],
        low: (usize, usize),
        size: (usize, usize),
        curve: &AlphaCurve,
        luma: &[u8],
    ) -> Vec<u8> {
        let (columns, rows) = (
            LinearTable::new(low.0, size.0),
            LinearTable::new(low.1, size.1),
        );
        let at = |row: usize, column: usize, k: usize| coefficients[(row * low.0 + column) * 2 + k];
        let mut out = vec![0; size.0 * size.1];
        for y in 0..size.1 {
            for x in 0..size.0 {
                let (t, b, wy) = (
                    rows.index[y] as usize,
                    rows.next[y] as usize,
                    rows.weight[y],
                );
                let (l, r, wx) = (
                    columns.index[x] as usize,
                    columns.next[x] as usize,
                    columns.weight[x],
                );
                let pair = |column: usize, k: usize| {
                    at(t, column, k) + (at(b, column, k) - at(t, column, k)) * wy
                };
                let a = pair(l, 0) + (pair(r, 0) - pair(l, 0)) * wx;
                let offset = pair(l, 1) + (pair(r, 1) - pair(l, 1)) * wx;
                out[y * size.0 + x] =
                    curve.map(a * (luma[y * size.0 + x] as f32 * (1.0 / 255.0)) + offset);
            }
        }
        out
    }

    #[test]
    fn alpha_upsampler_matches_the_reference() {
        // Blocks of certain background, certain person and edges, on a textured frame,
        // upscaled by a non-integer factor and (second size) to fewer columns than the map.
        let low = (24, 12);
        let coefficients: Vec<f32> = (0..low.0 * low.1)
            .flat_map(|i| {
                let (x, y) = (i % low.0, i / low.0);
                match (x / 6 + y / 4) % 3 {
                    0 => [0.0, 0.0],
                    1 => [0.0, 1.0],
                    _ => [
                        ((i * 7) % 11) as f32 / 10.0 - 0.5,
                        ((i * 5) % 13) as f32 / 12.0,
                    ],
                }
            })
            .collect();
        let curve = AlphaCurve::new(0.5, 0.4);
        for size in [(101, 37), (20, 9)] {
            let luma: Vec<u8> = (0..size.0 * size.1).map(|i| (i * 37 % 256) as u8).collect();
            let mut upsampler = AlphaUpsampler::new(low.0, low.1, size.0, size.1);
            let mut fast = vec![7u8; size.0 * size.1];
            upsampler.render(
                &coefficients,
                &curve,
                |y, span, out| out.copy_from_slice(&luma[y * size.0..][span]),
                &mut fast,
            );
            let slow = render_reference(&coefficients, low, size, &curve, &luma);
            assert_eq!(fast, slow, "{size:?}");
        }
    }

    #[test]
    fn temporal_filter_keeps_confident_changes_and_damps_uncertain_ones() {
        let mut filter = TemporalFilter::default();
        let mut first = vec![0.0, 0.5];
        filter.apply(&mut first, 0.8);
        let mut second = vec![1.0, 0.6];
        filter.apply(&mut second, 0.8);
        assert!(
            (second[0] - 1.0).abs() < 1e-6,
            "confident change follows at once"
        );
        assert!(
            second[1] < 0.53,
            "uncertain flicker is damped: {}",
            second[1]
        );
    }

    #[test]
    fn alpha_curve_is_monotonic_with_hard_ends() {
        let curve = AlphaCurve::new(0.5, 0.3);
        assert_eq!(curve.map(0.0), 0);
        assert_eq!(curve.map(0.2), 0);
        assert_eq!(curve.map(0.8), 255);
        assert_eq!(curve.map(1.5), 255);
        assert_eq!(curve.map(f32::NAN), 0, "a broken model's NaN is background");
        let mut last = 0;
        for i in 0..=100 {
            let v = curve.map(i as f32 / 100.0);
            assert!(v >= last);
            last = v;
        }
        let hard = AlphaCurve::new(0.5, 0.0);
        assert_eq!(hard.map(0.4999), 0);
        assert_eq!(hard.map(0.5001), 255);
    }
}
