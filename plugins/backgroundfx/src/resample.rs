//! Precomputed sampling tables: point-sampled box downscaling (frame -> model / work
//! resolution) and bilinear upscaling (low resolution -> frame). Tables are built once per
//! caps, so the per-frame loops only index.

use crate::layout::{FrameMut, PixelLayout, yuv_to_rgb_unit};

/// Downscaling by averaging a `taps` x `taps` grid of source samples per target pixel.
/// Cheaper than a full box filter (which touches every source pixel) and, with 2 taps,
/// free of visible aliasing at the model's resolution.
#[derive(Debug, Clone, Default)]
pub struct Downsampler {
    pub target_width: usize,
    pub target_height: usize,
    taps: usize,
    /// `target_width * taps` source column indices.
    columns: Vec<u32>,
    /// `target_height * taps` source row indices.
    rows: Vec<u32>,
}

fn sample_positions(source: usize, target: usize, taps: usize) -> Vec<u32> {
    let scale = source as f64 / target as f64;
    (0..target)
        .flat_map(|t| {
            (0..taps).map(move |k| {
                let position = (t as f64 + (k as f64 + 0.5) / taps as f64) * scale;
                (position as usize).min(source - 1) as u32
            })
        })
        .collect()
}

impl Downsampler {
    pub fn new(
        source_width: usize,
        source_height: usize,
        target_width: usize,
        target_height: usize,
    ) -> Self {
        let scale = (source_width as f64 / target_width as f64)
            .min(source_height as f64 / target_height as f64);
        let taps = if scale >= 1.5 { 2 } else { 1 };
        Downsampler {
            target_width,
            target_height,
            taps,
            columns: sample_positions(source_width, target_width, taps),
            rows: sample_positions(source_height, target_height, taps),
        }
    }

    fn row_samples(&self, target_y: usize) -> &[u32] {
        &self.rows[target_y * self.taps..(target_y + 1) * self.taps]
    }

    fn column_samples(&self, target_x: usize) -> &[u32] {
        &self.columns[target_x * self.taps..(target_x + 1) * self.taps]
    }

    /// Fills the model input (planar R, G, B in [0, 1]) and the guide (luma byte / 255, the
    /// same definition `luma_row` uses at full resolution) from a frame of any layout.
    pub fn model_input(&self, frame: &FrameMut, input: &mut [f32], guide: &mut [f32]) {
        let plane = self.target_width * self.target_height;
        let norm = 1.0 / (self.taps * self.taps) as f32;
        let (red_plane, rest) = input.split_at_mut(plane);
        let (green_plane, blue_plane) = rest.split_at_mut(plane);
        for ty in 0..self.target_height {
            for tx in 0..self.target_width {
                let mut sums = [0.0f32; 4]; // channel sums (RGB or YUV) and luma sum
                for &sy in self.row_samples(ty) {
                    for &sx in self.column_samples(tx) {
                        let sample = read_sample(frame, sx as usize, sy as usize);
                        for c in 0..4 {
                            sums[c] += sample[c];
                        }
                    }
                }
                let averaged = sums.map(|s| s * norm);
                let rgb = if frame.layout.is_yuv() {
                    yuv_to_rgb_unit(averaged[0], averaged[1], averaged[2])
                } else {
                    [
                        averaged[0] / 255.0,
                        averaged[1] / 255.0,
                        averaged[2] / 255.0,
                    ]
                };
                let i = ty * self.target_width + tx;
                red_plane[i] = rgb[0];
                green_plane[i] = rgb[1];
                blue_plane[i] = rgb[2];
                guide[i] = averaged[3] / 255.0;
            }
        }
    }

    /// Downscales one plane (of `channels` bytes per pixel) into interleaved f32 with one
    /// extra slot per pixel left for the caller (the blur weight).
    pub fn plane_with_weight_slot(
        &self,
        plane: &[u8],
        stride: usize,
        channels: usize,
        out: &mut [f32],
    ) {
        let norm = 1.0 / (self.taps * self.taps) as f32;
        let slots = channels + 1;
        for ty in 0..self.target_height {
            for tx in 0..self.target_width {
                let base = (ty * self.target_width + tx) * slots;
                let pixel = &mut out[base..base + channels];
                pixel.fill(0.0);
                for &sy in self.row_samples(ty) {
                    let row = &plane[sy as usize * stride..];
                    for &sx in self.column_samples(tx) {
                        let at = sx as usize * channels;
                        for (c, value) in pixel.iter_mut().enumerate() {
                            *value += row[at + c] as f32;
                        }
                    }
                }
                for value in pixel.iter_mut() {
                    *value *= norm;
                }
            }
        }
    }
}

/// Channel values at one full-resolution pixel: [R, G, B, luma] for packed layouts,
/// [Y, U, V, Y] for YUV layouts (all 0..255).
#[inline]
fn read_sample(frame: &FrameMut, x: usize, y: usize) -> [f32; 4] {
    match frame.layout {
        PixelLayout::Packed {
            red, green, blue, ..
        } => {
            let at = y * frame.strides[0] + x * 4;
            let pixel = &frame.planes[0][at..at + 4];
            let (r, g, b) = (pixel[red], pixel[green], pixel[blue]);
            [r as f32, g as f32, b as f32, luma(r, g, b) as f32]
        }
        PixelLayout::I420 => {
            let luma = frame.planes[0][y * frame.strides[0] + x] as f32;
            let u = frame.planes[1][(y / 2) * frame.strides[1] + x / 2] as f32;
            let v = frame.planes[2][(y / 2) * frame.strides[2] + x / 2] as f32;
            [luma, u, v, luma]
        }
        PixelLayout::Nv12 => {
            let luma = frame.planes[0][y * frame.strides[0] + x] as f32;
            let at = (y / 2) * frame.strides[1] + (x / 2) * 2;
            let uv = &frame.planes[1][at..at + 2];
            [luma, uv[0] as f32, uv[1] as f32, luma]
        }
    }
}

/// Integer luma of an RGB pixel (BT.601 weights), the guide image of the mask refinement.
#[inline]
pub fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((77 * r as u32 + 150 * g as u32 + 29 * b as u32 + 128) >> 8) as u8
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
    fn linear_table_hits_centres_exactly_when_sizes_match() {
        let table = LinearTable::new(8, 8);
        for t in 0..8 {
            assert_eq!(table.index[t] as usize, t);
            assert!(table.weight[t].abs() < 1e-6);
        }
    }

    #[test]
    fn map_resizer_of_a_constant_is_constant() {
        let source = vec![0.25f32; 6 * 4];
        let mut out = vec![0.0; 20 * 10];
        MapResizer::new(6, 4, 20, 10).resize(&source, &mut out);
        assert!(out.iter().all(|v| (v - 0.25).abs() < 1e-6));
    }

    #[test]
    fn model_input_of_a_grey_rgba_frame() {
        let (width, height) = (40, 30);
        let mut data = vec![128u8; width * height * 4];
        let frame = FrameMut {
            layout: PixelLayout::RGBA,
            width,
            height,
            planes: [&mut data, &mut [], &mut []],
            strides: [width * 4, 0, 0],
        };
        let sampler = Downsampler::new(width, height, 16, 9);
        let mut input = vec![0.0; 3 * 16 * 9];
        let mut guide = vec![0.0; 16 * 9];
        sampler.model_input(&frame, &mut input, &mut guide);
        assert!(input.iter().all(|v| (v - 128.0 / 255.0).abs() < 1e-6));
        assert!(guide.iter().all(|v| (v - 128.0 / 255.0).abs() < 1e-2));
    }

    #[test]
    fn sample_positions_stay_inside_the_source() {
        for (source, target) in [(1, 1), (3, 7), (1920, 256), (255, 256)] {
            let positions = sample_positions(source, target, 2);
            assert!(positions.iter().all(|&p| (p as usize) < source));
        }
    }
}
