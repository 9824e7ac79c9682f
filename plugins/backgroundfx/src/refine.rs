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

/// Mean over a (2r+1)^2 window, windows clipped at the borders (normalised by the count
/// of pixels actually inside, so borders are not darkened).
fn box_mean(
    source: &[f32],
    out: &mut [f32],
    width: usize,
    height: usize,
    radius: usize,
    scratch: &mut [f32],
    sums: &mut [f32],
) {
    // Horizontal pass into scratch.
    for y in 0..height {
        let row = &source[y * width..(y + 1) * width];
        let dst = &mut scratch[y * width..(y + 1) * width];
        let mut sum: f32 = row[..radius.min(width - 1) + 1].iter().sum();
        let mut count = radius.min(width - 1) + 1;
        for x in 0..width {
            dst[x] = sum / count as f32;
            if x + radius + 1 < width {
                sum += row[x + radius + 1];
                count += 1;
            }
            if x >= radius {
                sum -= row[x - radius];
                count -= 1;
            }
        }
    }
    // Vertical pass, column sums kept for the whole row at once (cache friendly).
    let sums = &mut sums[..width];
    sums.fill(0.0);
    let first = radius.min(height - 1) + 1;
    for y in 0..first {
        for (s, v) in sums.iter_mut().zip(&scratch[y * width..(y + 1) * width]) {
            *s += v;
        }
    }
    let mut count = first;
    for y in 0..height {
        let inverse = 1.0 / count as f32;
        for (o, s) in out[y * width..(y + 1) * width].iter_mut().zip(sums.iter()) {
            *o = s * inverse;
        }
        if y + radius + 1 < height {
            let add = (y + radius + 1) * width;
            for (s, v) in sums.iter_mut().zip(&scratch[add..add + width]) {
                *s += v;
            }
            count += 1;
        }
        if y >= radius {
            let remove = (y - radius) * width;
            for (s, v) in sums.iter_mut().zip(&scratch[remove..remove + width]) {
                *s -= v;
            }
            count -= 1;
        }
    }
}

/// Guided filter at low resolution producing the coefficient maps `a` and `b`.
#[derive(Debug, Default)]
pub struct GuidedFilter {
    width: usize,
    height: usize,
    mean_guide: Vec<f32>,
    mean_mask: Vec<f32>,
    correlation: Vec<f32>,
    variance: Vec<f32>,
    product: Vec<f32>,
    scratch: Vec<f32>,
    column_sums: Vec<f32>,
    /// Interleaved (a, b) per low-resolution pixel, after the final box mean.
    pub coefficients: Vec<f32>,
}

impl GuidedFilter {
    pub fn new(width: usize, height: usize) -> Self {
        let n = width * height;
        GuidedFilter {
            width,
            height,
            mean_guide: vec![0.0; n],
            mean_mask: vec![0.0; n],
            correlation: vec![0.0; n],
            variance: vec![0.0; n],
            product: vec![0.0; n],
            scratch: vec![0.0; n],
            column_sums: vec![0.0; width],
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
        box_mean(
            guide,
            &mut self.mean_guide,
            w,
            h,
            radius,
            &mut self.scratch,
            &mut self.column_sums,
        );
        box_mean(
            mask,
            &mut self.mean_mask,
            w,
            h,
            radius,
            &mut self.scratch,
            &mut self.column_sums,
        );
        for ((p, g), m) in self.product.iter_mut().zip(guide).zip(mask) {
            *p = g * m;
        }
        box_mean(
            &self.product,
            &mut self.correlation,
            w,
            h,
            radius,
            &mut self.scratch,
            &mut self.column_sums,
        );
        for (p, g) in self.product.iter_mut().zip(guide) {
            *p = g * g;
        }
        box_mean(
            &self.product,
            &mut self.variance,
            w,
            h,
            radius,
            &mut self.scratch,
            &mut self.column_sums,
        );
        // a = cov(I, p) / (var(I) + eps), b = mean(p) - a * mean(I); reuse buffers.
        for i in 0..w * h {
            let mean_i = self.mean_guide[i];
            let covariance = self.correlation[i] - mean_i * self.mean_mask[i];
            let variance = self.variance[i] - mean_i * mean_i;
            let a = covariance / (variance + epsilon);
            self.correlation[i] = a;
            self.variance[i] = self.mean_mask[i] - a * mean_i;
        }
        box_mean(
            &self.correlation,
            &mut self.product,
            w,
            h,
            radius,
            &mut self.scratch,
            &mut self.column_sums,
        );
        box_mean(
            &self.variance,
            &mut self.mean_guide,
            w,
            h,
            radius,
            &mut self.scratch,
            &mut self.column_sums,
        );
        for i in 0..w * h {
            self.coefficients[2 * i] = self.product[i];
            self.coefficients[2 * i + 1] = self.mean_guide[i];
        }
    }

    /// Coefficients that give alpha 0 everywhere (fail closed: the whole frame is background).
    pub fn set_all_background(&mut self) {
        self.coefficients.fill(0.0);
    }
}

/// Maps a refined alpha in [0, 1] to the final 8-bit alpha with a threshold and an edge
/// band (smoothstep over `[threshold - band/2, threshold + band/2]`).
#[derive(Debug, Clone)]
pub struct AlphaCurve {
    table: Vec<u8>,
    /// Inputs at or below this map to 0, at or above `opaque_from` to 255.
    transparent_up_to: f32,
    opaque_from: f32,
}

const CURVE_STEPS: usize = 1024;

impl AlphaCurve {
    pub fn new(threshold: f32, band: f32) -> Self {
        let low = threshold - band / 2.0;
        let high = threshold + band / 2.0;
        let table = (0..CURVE_STEPS)
            .map(|i| {
                let x = i as f32 / (CURVE_STEPS - 1) as f32;
                let t = if high - low < 1e-4 {
                    if x >= threshold { 1.0 } else { 0.0 }
                } else {
                    ((x - low) / (high - low)).clamp(0.0, 1.0)
                };
                let smooth = t * t * (3.0 - 2.0 * t);
                (smooth * 255.0).round() as u8
            })
            .collect::<Vec<u8>>();
        let step = 1.0 / (CURVE_STEPS - 1) as f32;
        let zeros = table.iter().take_while(|v| **v == 0).count();
        let full = table.iter().rev().take_while(|v| **v == 255).count();
        AlphaCurve {
            // Any input truncating to an index < zeros maps to 0.
            transparent_up_to: if zeros == 0 {
                -1.0
            } else {
                zeros as f32 * step - 1e-6
            },
            opaque_from: if full == 0 {
                2.0
            } else {
                (CURVE_STEPS - full) as f32 * step + 1e-6
            },
            table,
        }
    }

    #[inline]
    pub fn map(&self, value: f32) -> u8 {
        let index = (value * (CURVE_STEPS - 1) as f32).clamp(0.0, (CURVE_STEPS - 1) as f32);
        self.table[index as usize]
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
    /// Per low-resolution pixel: alpha saturated for any luma (0 or 255) or not (1).
    saturation: Vec<u8>,
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
        AlphaUpsampler {
            columns,
            rows: LinearTable::new(low_height, height),
            low_width,
            spans,
            saturation: Vec::with_capacity(low_width * low_height),
        }
    }

    /// Writes the full-resolution alpha (`width * height` bytes). `luma_at(y, x)` reads the
    /// frame's luma byte at a pixel.
    ///
    /// Most of a frame is certainly person or certainly background: where both
    /// low-resolution neighbour columns of both neighbour rows give a saturated alpha for
    /// any luma, the alpha of the whole span between them is known without evaluating it
    /// (alpha is a convex combination of the neighbours' `a * luma + b`), and is filled.
    pub fn render(
        &mut self,
        coefficients: &[f32],
        curve: &AlphaCurve,
        luma_at: impl Fn(usize, usize) -> u8 + Sync,
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
                if high <= curve.transparent_up_to {
                    SATURATED_TRANSPARENT
                } else if low >= curve.opaque_from {
                    SATURATED_OPAQUE
                } else {
                    UNSATURATED
                }
            }));
        let saturation = &self.saturation;
        let spans = &self.spans;
        let (rows, columns) = (&self.rows, &self.columns);
        alpha
            .par_chunks_mut(width)
            .with_min_len(16)
            .enumerate()
            .for_each_init(
                || (vec![0.0f32; pair_row], vec![0u8; low_width]),
                |(pairs, row_state), (y, out)| {
                    let top = rows.index[y] as usize;
                    let bottom = rows.next[y] as usize;
                    for (j, state) in row_state.iter_mut().enumerate() {
                        let (t, b) = (
                            saturation[top * low_width + j],
                            saturation[bottom * low_width + j],
                        );
                        *state = if t == b { t } else { UNSATURATED };
                    }
                    rows.blend_rows(
                        y,
                        &coefficients[top * pair_row..(top + 1) * pair_row],
                        &coefficients[bottom * pair_row..(bottom + 1) * pair_row],
                        pairs,
                    );
                    for (j, span) in spans.iter().enumerate() {
                        let left_state = row_state[j];
                        let right_state = row_state[(j + 1).min(low_width - 1)];
                        if left_state != UNSATURATED && left_state == right_state {
                            out[span.clone()].fill(left_state);
                            continue;
                        }
                        for x in span.clone() {
                            let (left, right) =
                                (2 * columns.index[x] as usize, 2 * columns.next[x] as usize);
                            let w = columns.weight[x];
                            let a = pairs[left] + (pairs[right] - pairs[left]) * w;
                            let b = pairs[left + 1] + (pairs[right + 1] - pairs[left + 1]) * w;
                            let luma = luma_at(y, x) as f32 * (1.0 / 255.0);
                            out[x] = curve.map(a * luma + b);
                        }
                    }
                },
            );
    }
}

const SATURATED_TRANSPARENT: u8 = 0;
const SATURATED_OPAQUE: u8 = 255;
const UNSATURATED: u8 = 1;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_mean_of_constant_is_constant_including_borders() {
        let (w, h) = (9, 7);
        let source = vec![0.3f32; w * h];
        let mut out = vec![0.0; w * h];
        let mut scratch = vec![0.0; w * h];
        box_mean(&source, &mut out, w, h, 3, &mut scratch, &mut vec![0.0; w]);
        assert!(out.iter().all(|v| (v - 0.3).abs() < 1e-6));
    }

    #[test]
    fn box_mean_matches_brute_force() {
        let (w, h, r) = (11, 6, 2);
        let source: Vec<f32> = (0..w * h).map(|i| ((i * 37) % 17) as f32).collect();
        let mut out = vec![0.0; w * h];
        let mut scratch = vec![0.0; w * h];
        box_mean(&source, &mut out, w, h, r, &mut scratch, &mut vec![0.0; w]);
        for y in 0..h {
            for x in 0..w {
                let (mut sum, mut count) = (0.0, 0);
                for yy in y.saturating_sub(r)..(y + r + 1).min(h) {
                    for xx in x.saturating_sub(r)..(x + r + 1).min(w) {
                        sum += source[yy * w + xx];
                        count += 1;
                    }
                }
                assert!((out[y * w + x] - sum / count as f32).abs() < 1e-4);
            }
        }
    }

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
        let mut last = 0;
        for i in 0..=100 {
            let v = curve.map(i as f32 / 100.0);
            assert!(v >= last);
            last = v;
        }
        let hard = AlphaCurve::new(0.5, 0.0);
        assert_eq!(hard.map(0.49), 0);
        assert_eq!(hard.map(0.51), 255);
    }
}
