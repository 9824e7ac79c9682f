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

use crate::boxfilter::{BoxScratch, RowStream, box_mean, box_mean_rows};
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
    scratch: BoxScratch,
    /// Interleaved (a, b) per low-resolution pixel, after the final box mean.
    pub coefficients: Vec<f32>,
}

impl GuidedFilter {
    pub fn new(width: usize, height: usize) -> Self {
        GuidedFilter {
            width,
            height,
            scratch: BoxScratch::default(),
            coefficients: vec![0.0; 2 * width * height],
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
    ///
    /// The four moments (guide, mask, guide * mask, guide^2) are box-filtered as a stream:
    /// each moment row is made when the window reaches it and each mean row becomes
    /// coefficients at once, so the moments are never stored whole (4 maps that did not
    /// fit in L2 beside the model's tensors).
    pub fn compute(&mut self, guide: &[f32], mask: &[f32], radius: usize, epsilon: f32) {
        let (w, h) = (self.width, self.height);
        let mut moments = Moments {
            guide,
            mask,
            width: w,
            epsilon,
            coefficients: &mut self.coefficients,
        };
        box_mean_rows::<4>(w, h, radius, &mut self.scratch, &mut moments);
        box_mean::<2>(&mut self.coefficients, w, h, radius, &mut self.scratch);
    }

    /// Coefficients that give alpha 0 everywhere (fail closed: the whole frame is background).
    pub fn set_all_background(&mut self) {
        self.coefficients.fill(0.0);
    }
}

/// The guided filter's first box mean as a [`RowStream`]: moment rows in, coefficient rows
/// out (before their own box mean).
struct Moments<'a> {
    guide: &'a [f32],
    mask: &'a [f32],
    width: usize,
    epsilon: f32,
    coefficients: &'a mut [f32],
}

impl RowStream for Moments<'_> {
    fn input(&mut self, y: usize, row: &mut [f32]) {
        let guide = &self.guide[y * self.width..][..self.width];
        let mask = &self.mask[y * self.width..][..self.width];
        for ((m, &g), &p) in row.as_chunks_mut::<4>().0.iter_mut().zip(guide).zip(mask) {
            *m = [g, p, g * p, g * g];
        }
    }

    fn output(&mut self, y: usize, means: &[f32]) {
        let coefficients = &mut self.coefficients[2 * y * self.width..][..2 * self.width];
        // a = cov(I, p) / (var(I) + eps), b = mean(p) - a * mean(I).
        for (c, m) in coefficients
            .as_chunks_mut::<2>()
            .0
            .iter_mut()
            .zip(means.as_chunks::<4>().0)
        {
            let [mean_i, mean_p, mean_ip, mean_ii] = *m;
            let covariance = mean_ip - mean_i * mean_p;
            let variance = mean_ii - mean_i * mean_i;
            let a = covariance / (variance + self.epsilon);
            *c = [a, mean_p - a * mean_i];
        }
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

/// Upsampling geometry from the guided filter's resolution to the frame's, and the
/// per-frame buffers of the upsampling.
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
    /// Per low-resolution row: the runs of spans where a frame row evaluates the alpha
    /// with this row as its top or bottom neighbour (`(first span, end span, 1)`; the other
    /// runs of the split are dropped).
    needed: Vec<Vec<(usize, usize, u8)>>,
    /// Per low-resolution row, `a` then `b` interpolated along the frame's columns
    /// (`2 * width` values), written only where `needed`.
    horizontal: Vec<f32>,
    /// The states of the spans of the current and of the previous row pair.
    cells: [Vec<u8>; 2],
}

impl AlphaUpsampler {
    pub fn new(low_width: usize, low_height: usize, width: usize, height: usize) -> Self {
        let columns = LinearTable::new(low_width, width);
        let spans = columns.spans(low_width);
        let starts = (0..=low_width)
            .map(|j| columns.index.iter().filter(|&&i| (i as usize) < j).count())
            .collect();
        AlphaUpsampler {
            starts,
            columns,
            rows: LinearTable::new(low_height, height),
            low_width,
            spans,
            saturation: vec![UNSATURATED; low_width * low_height],
            runs: vec![Vec::new(); low_height],
            needed: vec![Vec::new(); low_height],
            horizontal: vec![0.0; 2 * width * low_height],
            cells: [vec![UNSATURATED; low_width], vec![UNSATURATED; low_width]],
        }
    }

    /// Writes the full-resolution alpha (`width * height` bytes). `luma_span(y, columns, out)`
    /// writes the frame's luma bytes of row `y` at those columns.
    ///
    /// Most of a frame is certainly person or certainly background: where both
    /// low-resolution neighbour columns of both neighbour rows give a saturated alpha for
    /// any luma, the alpha of the whole span between them is known without evaluating it
    /// (alpha is a convex combination of the neighbours' `a * luma + b`), and is filled.
    /// Elsewhere the coefficients are interpolated along each low-resolution row once (not
    /// once per frame row: ~5 frame rows share a row pair at 720p), then between the two
    /// rows of each frame row, in one contiguous loop with the luma and the alpha curve.
    pub fn render(
        &mut self,
        coefficients: &[f32],
        curve: &AlphaCurve,
        luma_span: impl Fn(usize, std::ops::Range<usize>, &mut [u8]) + Sync,
        alpha: &mut [u8],
    ) {
        let width = self.columns.len();
        classify(coefficients, curve, &mut self.saturation);
        self.split_rows();
        let (spans, columns, low_width) = (&self.spans, &self.columns, self.low_width);
        let needed = &self.needed;
        self.horizontal
            .par_chunks_mut(2 * width)
            .with_min_len(8)
            .zip(coefficients.par_chunks(2 * low_width))
            .zip(needed.par_iter())
            .for_each(|((row, pairs), needed)| {
                let (a, b) = row.split_at_mut(width);
                for &(first, end, _) in needed {
                    // Within a span the coefficients are a linear blend of two neighbours
                    // (contiguous weights, no gather).
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
                }
            });
        let (starts, all_runs, rows) = (&self.starts, &self.runs, &self.rows);
        let horizontal = &self.horizontal;
        alpha
            .par_chunks_mut(width)
            .with_min_len(16)
            .enumerate()
            .for_each(|(y, out)| {
                let top = rows.index[y] as usize;
                let bottom = rows.next[y] as usize;
                let weight = rows.weight[y];
                let row = |r: usize| horizontal[2 * width * r..][..2 * width].split_at(width);
                let ((a_top, b_top), (a_bottom, b_bottom)) = (row(top), row(bottom));
                for &(first, end, state) in &all_runs[top] {
                    let run = starts[first]..starts[end];
                    if state != UNSATURATED {
                        out[run].fill(state);
                        continue;
                    }
                    // The luma goes where its alpha will be, and is replaced by it.
                    let out = &mut out[run.clone()];
                    luma_span(y, run.clone(), out);
                    for ((((o, &at), &ab), &bt), &bb) in out
                        .iter_mut()
                        .zip(&a_top[run.clone()])
                        .zip(&a_bottom[run.clone()])
                        .zip(&b_top[run.clone()])
                        .zip(&b_bottom[run])
                    {
                        let a = at + (ab - at) * weight;
                        let b = bt + (bb - bt) * weight;
                        *o = curve.map(a * (*o as f32 * (1.0 / 255.0)) + b);
                    }
                }
            });
    }

    /// Splits each row pair into runs of spans (`runs`), and marks for each low-resolution
    /// row the spans a frame row evaluates with it as a neighbour (`needed`: those of the
    /// pair it starts and of the pair above, where it is the bottom row).
    fn split_rows(&mut self) {
        let low_width = self.low_width;
        let low_height = self.runs.len();
        let [cells, above] = &mut self.cells;
        // No pair above the first row.
        above.fill(SATURATED_TRANSPARENT);
        for (top, (runs, needed)) in self.runs.iter_mut().zip(&mut self.needed).enumerate() {
            let bottom = (top + 1).min(low_height - 1);
            cell_states(
                &self.saturation[top * low_width..(top + 1) * low_width],
                &self.saturation[bottom * low_width..(bottom + 1) * low_width],
                cells,
            );
            run_lengths(cells, runs);
            // Cells to evaluate in either pair become 1, the others 0.
            for (above, &cell) in above.iter_mut().zip(cells.iter()) {
                *above = ((*above == UNSATURATED) | (cell == UNSATURATED)) as u8;
            }
            run_lengths(above, needed);
            needed.retain(|run| run.2 == 1);
            std::mem::swap(cells, above);
        }
    }
}

/// Per low-resolution pixel: whether its alpha is 0 for any luma (`SATURATED_TRANSPARENT`),
/// 255 for any luma (`SATURATED_OPAQUE`), or depends on the luma (`UNSATURATED`). Without
/// branches, so that the loop vectorises: the two tests cannot both hold (`low <= high`
/// and `transparent_below <= opaque_from`), and the sum maps them to 0, 255 and 1.
fn classify(coefficients: &[f32], curve: &AlphaCurve, saturation: &mut [u8]) {
    let (transparent_below, opaque_from) = (curve.transparent_below, curve.opaque_from);
    for (state, pair) in saturation.iter_mut().zip(coefficients.as_chunks::<2>().0) {
        let [a, b] = *pair;
        // A NaN compares false both ways: unsaturated, evaluated (and mapped to 0) per pixel.
        let transparent = (b + a.max(0.0) < transparent_below) as u8;
        let opaque = (b + a.min(0.0) >= opaque_from) as u8;
        *state = (1 - transparent) * UNSATURATED + opaque * (SATURATED_OPAQUE - UNSATURATED);
    }
}

// What `classify`'s arithmetic assumes of the states.
const _: () = assert!(SATURATED_TRANSPARENT == 0 && UNSATURATED == 1);

/// The state of each span between low-resolution columns `j` and `j + 1` of a row pair:
/// saturated only if all four corners agree. `top` and `bottom` are two rows of
/// [`classify`]'s states; the last span has its column twice.
fn cell_states(top: &[u8], bottom: &[u8], cells: &mut [u8]) {
    let agree = |x: u8, y: u8| if x == y { x } else { UNSATURATED };
    for ((cell, &t), &b) in cells.iter_mut().zip(top).zip(bottom) {
        *cell = agree(t, b);
    }
    let last = cells.len() - 1;
    for j in 0..last {
        cells[j] = agree(cells[j], cells[j + 1]);
    }
}

/// Splits `cells` into runs of equal state (first, end, state). Whole blocks of 16 cells
/// that continue the current run are taken at once, compared as one 128-bit word: most of
/// a row is one or two runs.
fn run_lengths(cells: &[u8], runs: &mut Vec<(usize, usize, u8)>) {
    const BLOCK: usize = 16;
    runs.clear();
    let mut start = 0;
    let mut state = cells[0];
    let mut j = 1;
    while j < cells.len() {
        if let Some(block) = cells.get(j..j + BLOCK)
            && u128::from_ne_bytes(block.try_into().expect("16 cells"))
                == u128::from_ne_bytes([state; BLOCK])
        {
            j += BLOCK;
            continue;
        }
        if cells[j] != state {
            runs.push((start, j, state));
            (start, state) = (j, cells[j]);
        }
        j += 1;
    }
    runs.push((start, cells.len(), state));
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

    #[test]
    fn guided_filter_matches_its_plain_definition() {
        use crate::boxfilter::box_mean_reference;
        let (w, h, radius, epsilon) = (37, 23, 2, 2e-3);
        let guide: Vec<f32> = (0..w * h)
            .map(|i| ((i * 37) % 101) as f32 / 100.0)
            .collect();
        let mask: Vec<f32> = (0..w * h)
            .map(|i| ((i % w) as f32 / w as f32 + ((i * 13) % 7) as f32 * 0.02).min(1.0))
            .collect();
        let mut filter = GuidedFilter::new(w, h);
        filter.compute(&guide, &mask, radius, epsilon);
        // Each map filtered on its own, in f64 sums, every window summed anew.
        let mean = |map: Vec<f32>| box_mean_reference(&map, w, h, 1, radius);
        let product = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(a, b)| a * b).collect();
        let (mean_i, mean_p) = (mean(guide.clone()), mean(mask.clone()));
        let (mean_ip, mean_ii) = (mean(product(&guide, &mask)), mean(product(&guide, &guide)));
        let a: Vec<f32> = (0..w * h)
            .map(|i| {
                let covariance = mean_ip[i] - mean_i[i] * mean_p[i];
                covariance / (mean_ii[i] - mean_i[i] * mean_i[i] + epsilon)
            })
            .collect();
        let b = (0..w * h).map(|i| mean_p[i] - a[i] * mean_i[i]).collect();
        let (a, b) = (mean(a), mean(b));
        for i in 0..w * h {
            let (fast_a, fast_b) = (filter.coefficients[2 * i], filter.coefficients[2 * i + 1]);
            assert!(
                (fast_a - a[i]).abs() < 1e-3,
                "a at {i}: {fast_a} vs {}",
                a[i]
            );
            assert!(
                (fast_b - b[i]).abs() < 1e-3,
                "b at {i}: {fast_b} vs {}",
                b[i]
            );
        }
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
                // Along each of the two rows first, then between them.
                let along =
                    |row: usize, k: usize| at(row, l, k) + (at(row, r, k) - at(row, l, k)) * wx;
                let between = |k: usize| along(t, k) + (along(b, k) - along(t, k)) * wy;
                let (a, offset) = (between(0), between(1));
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
        // Frame after frame with the blocks moving: the upsampler keeps buffers between
        // frames, and what an earlier frame left in them must never show.
        let low = (24, 12);
        let coefficients = |shift: usize| -> Vec<f32> {
            (0..low.0 * low.1)
                .flat_map(|i| {
                    let (x, y) = (i % low.0 + shift, i / low.0 + shift / 2);
                    match (x / 6 + y / 4) % 3 {
                        0 => [0.0, 0.0],
                        1 => [0.0, 1.0],
                        _ => [
                            ((i * 7) % 11) as f32 / 10.0 - 0.5,
                            ((i * 5) % 13) as f32 / 12.0,
                        ],
                    }
                })
                .collect()
        };
        let curve = AlphaCurve::new(0.5, 0.4);
        for size in [(101, 37), (20, 9)] {
            let luma: Vec<u8> = (0..size.0 * size.1).map(|i| (i * 37 % 256) as u8).collect();
            let mut upsampler = AlphaUpsampler::new(low.0, low.1, size.0, size.1);
            for shift in [0, 3, 7, 12] {
                let coefficients = coefficients(shift);
                let mut fast = vec![7u8; size.0 * size.1];
                upsampler.render(
                    &coefficients,
                    &curve,
                    |y, span, out| out.copy_from_slice(&luma[y * size.0..][span]),
                    &mut fast,
                );
                let slow = render_reference(&coefficients, low, size, &curve, &luma);
                assert_eq!(fast, slow, "{size:?}, shift {shift}");
            }
        }
    }

    #[test]
    fn run_lengths_match_a_cell_by_cell_split() {
        // Long runs (taken 16 cells at a time), short ones, and runs ending at a block's edge.
        let patterns: [&dyn Fn(usize) -> u8; 4] = [
            &|j| [0, 255, 1][j / 37 % 3],
            &|j| [0, 1][(j % 7 == 0) as usize],
            &|j| if (16..48).contains(&j) { 0 } else { 255 },
            &|_| 1,
        ];
        for pattern in patterns {
            for len in [1, 15, 16, 17, 33, 100] {
                let cells: Vec<u8> = (0..len).map(pattern).collect();
                let mut expected: Vec<(usize, usize, u8)> = Vec::new();
                for (j, &cell) in cells.iter().enumerate() {
                    match expected.last_mut() {
                        Some(run) if run.2 == cell => run.1 = j + 1,
                        _ => expected.push((j, j + 1, cell)),
                    }
                }
                let mut runs = Vec::new();
                run_lengths(&cells, &mut runs);
                assert_eq!(runs, expected, "{cells:?}");
            }
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
