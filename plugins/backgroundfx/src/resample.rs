//! Bilinear upscaling tables (low resolution maps -> frame), built once per caps so that
//! the per-frame loops only index. Frame downscaling is `fast_image_resize`'s (`plane.rs`).

/// Integer luma of an RGB pixel (BT.601 weights), the guide image of the mask refinement.
#[inline]
pub fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((77 * r as u32 + 150 * g as u32 + 29 * b as u32 + 128) >> 8) as u8
}

/// Luma of a row of 4-byte pixels whose red, green and blue bytes are at `order`
/// (`pixels` holds at least `4 * out.len()` bytes). The four orders of the packed formats
/// are compiled each with constant offsets and read each pixel as one 32-bit lane whose
/// bytes are shifted out (the loop vectorises; byte by byte it was gathered one pixel at a
/// time); any other order takes a plain loop with offsets read at run time.
pub fn luma_row(pixels: &[u8], order: [usize; 3], out: &mut [u8]) {
    match order {
        [0, 1, 2] => luma_row_of::<0, 1, 2>(pixels, out),
        [2, 1, 0] => luma_row_of::<2, 1, 0>(pixels, out),
        [1, 2, 3] => luma_row_of::<1, 2, 3>(pixels, out),
        [3, 2, 1] => luma_row_of::<3, 2, 1>(pixels, out),
        [r, g, b] => {
            for (o, p) in out.iter_mut().zip(pixels.as_chunks::<4>().0) {
                *o = luma(p[r], p[g], p[b]);
            }
        }
    }
}

fn luma_row_of<const R: usize, const G: usize, const B: usize>(pixels: &[u8], out: &mut [u8]) {
    let byte = |pixel: u32, index: usize| (pixel >> (8 * index)) as u8;
    for (o, p) in out.iter_mut().zip(pixels.as_chunks::<4>().0) {
        let pixel = u32::from_le_bytes(*p);
        *o = luma(byte(pixel, R), byte(pixel, G), byte(pixel, B));
    }
}

/// Bilinear upscaling tables along one axis (half-pixel centres).
#[derive(Debug, Clone, Default)]
pub struct LinearTable {
    /// Left/top source index; the right/bottom one is `min(index + 1, len - 1)`.
    pub index: Vec<u32>,
    pub next: Vec<u32>,
    /// Weight of the next sample, in [0, 1].
    pub weight: Vec<f32>,
}

impl LinearTable {
    pub fn new(source: usize, target: usize) -> Self {
        let scale = source as f32 / target as f32;
        let mut table = LinearTable::default();
        for t in 0..target {
            let position = ((t as f32 + 0.5) * scale - 0.5).clamp(0.0, (source - 1) as f32);
            let index = position.floor() as usize;
            table.index.push(index as u32);
            table.next.push((index + 1).min(source - 1) as u32);
            table.weight.push(position - index as f32);
        }
        table
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// For each of the `source` samples j, the target samples interpolated between j and
    /// j + 1 (those whose left index is j; empty for a j no target sample starts from).
    pub fn spans(&self, source: usize) -> Vec<std::ops::Range<usize>> {
        let mut spans = vec![0..0; source];
        for (t, &j) in self.index.iter().enumerate() {
            let span = &mut spans[j as usize];
            if span.end == 0 {
                *span = t..t + 1;
            } else {
                span.end = t + 1;
            }
        }
        spans
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Interpolates the rows `top` and `bottom` (each `channels` interleaved f32 per
    /// pixel) at this table's row `t` into `out`.
    #[inline]
    pub fn blend_rows(&self, t: usize, top: &[f32], bottom: &[f32], out: &mut [f32]) {
        let w = self.weight[t];
        for ((o, a), b) in out.iter_mut().zip(top).zip(bottom) {
            *o = a + (b - a) * w;
        }
    }
}

/// Pixels the row upscaler interpolates per step.
const LANES: usize = 8;

/// Bilinear upscaling of byte rows along the row (half-pixel centres, 8-bit weights), with
/// its table built once. `fast_image_resize` does this too, but computes its coefficients
/// anew on every call: for the blurred background (a few dozen rows) that was more than
/// the interpolation itself (0.05 of 0.09 ms at 720p on one core).
#[derive(Debug, Clone, Default)]
pub struct RowUpscaler {
    /// Per source pixel j: the target pixels interpolated between j and j + 1.
    spans: Vec<std::ops::Range<usize>>,
    /// Per target pixel: the weight of the right neighbour, 0..=256.
    weights: Vec<u16>,
}

impl RowUpscaler {
    pub fn new(source: usize, target: usize) -> Self {
        let table = LinearTable::new(source, target);
        RowUpscaler {
            spans: table.spans(source),
            weights: table
                .weight
                .iter()
                .map(|w| (w * 256.0).round() as u16)
                .collect(),
        }
    }

    /// Upscales one row of `CHANNELS`-byte pixels (`source.len() / CHANNELS` must be the
    /// table's source width, `out.len() / CHANNELS` its target width).
    pub fn upscale<const CHANNELS: usize>(&self, source: &[u8], out: &mut [u8]) {
        let (pixels, _) = source.as_chunks::<CHANNELS>();
        let (targets, _) = out.as_chunks_mut::<CHANNELS>();
        let last = pixels.len() - 1;
        let len = targets.len();
        for (j, span) in self.spans.iter().enumerate() {
            let (left, right) = (pixels[j], pixels[(j + 1).min(last)]);
            let mut start = span.start;
            // Whole blocks of LANES pixels (a fixed-size loop that vectorises); pixels past
            // the span's end are written with this span's pair too and then overwritten by
            // the spans after it, which cover every later pixel in order.
            while start < span.end && start + LANES <= len {
                let block: &mut [[u8; CHANNELS]; LANES] =
                    (&mut targets[start..start + LANES]).try_into().unwrap();
                let weights: &[u16; LANES] = self.weights[start..start + LANES].try_into().unwrap();
                lerp_pixels(block, weights, left, right);
                start += LANES;
            }
            // The row's last pixels, one by one.
            if start < span.end {
                let weights = &self.weights[start..span.end];
                lerp_pixels(&mut targets[start..span.end], weights, left, right);
            }
        }
    }
}

/// `targets[i]` = `left` and `right` mixed by `weights[i]`, channel by channel (inlined: with
/// arrays of a fixed length the loop is unrolled and vectorised).
#[inline(always)]
fn lerp_pixels<const CHANNELS: usize>(
    targets: &mut [[u8; CHANNELS]],
    weights: &[u16],
    left: [u8; CHANNELS],
    right: [u8; CHANNELS],
) {
    for (target, &weight) in targets.iter_mut().zip(weights) {
        for c in 0..CHANNELS {
            target[c] = crate::composite::lerp(left[c], right[c], weight);
        }
    }
}

/// Bilinear resampling of a single-channel map between two fixed sizes, with its tables
/// and row buffer built once.
#[derive(Debug, Clone, Default)]
pub struct MapResizer {
    source_width: usize,
    columns: LinearTable,
    rows: LinearTable,
    row: Vec<f32>,
}

impl MapResizer {
    pub fn new(
        source_width: usize,
        source_height: usize,
        target_width: usize,
        target_height: usize,
    ) -> Self {
        MapResizer {
            source_width,
            columns: LinearTable::new(source_width, target_width),
            rows: LinearTable::new(source_height, target_height),
            row: vec![0.0; source_width],
        }
    }

    pub fn resize(&mut self, source: &[f32], out: &mut [f32]) {
        let (source_width, target_width) = (self.source_width, self.columns.len());
        for ty in 0..self.rows.len() {
            let top = self.rows.index[ty] as usize * source_width;
            let bottom = self.rows.next[ty] as usize * source_width;
            self.rows.blend_rows(
                ty,
                &source[top..top + source_width],
                &source[bottom..bottom + source_width],
                &mut self.row,
            );
            for tx in 0..target_width {
                let a = self.row[self.columns.index[tx] as usize];
                let b = self.row[self.columns.next[tx] as usize];
                out[ty * target_width + tx] = a + (b - a) * self.columns.weight[tx];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luma_row_reads_each_channel_order() {
        let pixels: Vec<u8> = (0..40).map(|i| (i * 37 % 256) as u8).collect();
        for order in [[0, 1, 2], [2, 1, 0], [1, 2, 3], [3, 2, 1], [0, 2, 1]] {
            let mut out = [0u8; 10];
            luma_row(&pixels, order, &mut out);
            for (x, &value) in out.iter().enumerate() {
                let p = &pixels[4 * x..];
                assert_eq!(
                    value,
                    luma(p[order[0]], p[order[1]], p[order[2]]),
                    "{order:?}"
                );
            }
        }
    }

    #[test]
    fn linear_table_hits_centres_exactly_when_sizes_match() {
        let table = LinearTable::new(8, 8);
        for t in 0..8 {
            assert_eq!(table.index[t] as usize, t);
            assert!(table.weight[t].abs() < 1e-6);
        }
    }

    /// The plain definition of [`RowUpscaler::upscale`]: every target pixel interpolated
    /// in floating point from the table.
    fn upscale_reference(source: &[u8], channels: usize, target: usize) -> Vec<u8> {
        let table = LinearTable::new(source.len() / channels, target);
        let mut out = vec![0; target * channels];
        for x in 0..target {
            let (left, right) = (table.index[x] as usize, table.next[x] as usize);
            for c in 0..channels {
                let (l, r) = (source[left * channels + c], source[right * channels + c]);
                let value = l as f32 + (r as f32 - l as f32) * table.weight[x];
                out[x * channels + c] = value.round() as u8;
            }
        }
        out
    }

    #[test]
    fn row_upscaler_matches_the_reference_and_fast_image_resize() {
        use crate::plane::{self, OwnedPlane, Plane};
        for (source_width, target) in [(107, 640), (107, 1280), (27, 320), (1, 5), (5, 5)] {
            let source: Vec<u8> = (0..source_width * 4)
                .map(|i| (i * 73 % 256) as u8)
                .collect();
            let upscaler = RowUpscaler::new(source_width, target);
            let mut fast = vec![0; target * 4];
            upscaler.upscale::<4>(&source, &mut fast);
            let slow = upscale_reference(&source, 4, target);
            let worst = fast.iter().zip(&slow).map(|(a, b)| a.abs_diff(*b)).max();
            assert!(worst <= Some(1), "{source_width} -> {target}: {worst:?}");
            // What it replaced, within a level of rounding.
            let mut resized = OwnedPlane::new(target, 1, 4);
            plane::resize(
                &mut fast_image_resize::Resizer::new(),
                Plane::packed(&source, source_width, 1, 4),
                &mut resized.as_plane_mut(),
                plane::BILINEAR,
            );
            let worst = fast
                .iter()
                .zip(&resized.data)
                .map(|(a, b)| a.abs_diff(*b))
                .max();
            assert!(
                worst <= Some(1),
                "{source_width} -> {target} vs fir: {worst:?}"
            );
            let mut single = vec![0; target];
            let first: Vec<u8> = source.iter().step_by(4).copied().collect();
            upscaler.upscale::<1>(&first, &mut single);
            let single_reference = upscale_reference(&first, 1, target);
            assert!(
                single
                    .iter()
                    .zip(&single_reference)
                    .all(|(a, b)| a.abs_diff(*b) <= 1)
            );
        }
    }

    #[test]
    fn map_resizer_of_a_constant_is_constant() {
        let source = vec![0.25f32; 6 * 4];
        let mut out = vec![0.0; 20 * 10];
        MapResizer::new(6, 4, 20, 10).resize(&source, &mut out);
        assert!(out.iter().all(|v| (v - 0.25).abs() < 1e-6));
    }
}
