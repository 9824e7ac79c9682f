//! The in-place composite: `out = frame * alpha + background * (1 - alpha)` per plane,
//! where the background is a prepared plane of the same size (picture), a row of solid
//! colour, or rows interpolated on the fly between two rows of a low-height plane (the
//! blurred background: its vertical upscale is never written out, and chunks that are all
//! person never compute it).
//!
//! The kernel works on chunks of 16 pixels: a chunk that is all person is skipped, all
//! background is filled, anything else is blended with fixed-size u16 arithmetic that the
//! compiler turns into SIMD (no per-pixel branch or table). `blend_row_reference` is the
//! plain definition the kernel is tested against.

use rayon::prelude::*;

use crate::plane::{Plane, PlaneMut};

/// Pixels per chunk of the blend kernel.
const CHUNK: usize = 16;

/// What replaces the background in one plane.
#[derive(Debug, Clone, Copy)]
pub enum PlaneBackground<'a> {
    /// A plane of the same size as the frame's plane.
    Image(Plane<'a>),
    /// One row repeated for every row (solid colour).
    Row(&'a [u8]),
    /// Row `y` blends rows `table[y].top` and `table[y].bottom` of `rows`, a low-height
    /// plane of the frame plane's width.
    Lerp {
        rows: Plane<'a>,
        table: &'a [RowLerp],
    },
    /// No replacement (only the alpha channel is written).
    Keep,
}

/// A full-resolution row as a blend of two low-resolution rows: `top + (bottom - top) *
/// weight / 256`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowLerp {
    pub top: u32,
    pub bottom: u32,
    /// 0..=256.
    pub weight: u16,
}

/// `(top * (256 - weight) + bottom * weight) / 256`, rounded; exact at both ends.
#[inline(always)]
pub fn lerp(top: u8, bottom: u8, weight: u16) -> u8 {
    ((top as u16 * (256 - weight) + bottom as u16 * weight + 128) >> 8) as u8
}

/// Where a row's background bytes come from.
#[derive(Clone, Copy)]
enum RowBackground<'a> {
    Bytes(&'a [u8]),
    Lerp(&'a [u8], &'a [u8], u16),
}

impl RowBackground<'_> {
    /// Writes the background bytes `offset..offset + out.len()` of the row into `out`.
    #[inline(always)]
    fn fill(&self, offset: usize, out: &mut [u8]) {
        match *self {
            RowBackground::Bytes(bytes) => out.copy_from_slice(&bytes[offset..offset + out.len()]),
            RowBackground::Lerp(top, bottom, weight) => {
                let top = &top[offset..offset + out.len()];
                let bottom = &bottom[offset..offset + out.len()];
                for ((o, &t), &b) in out.iter_mut().zip(top).zip(bottom) {
                    *o = lerp(t, b, weight);
                }
            }
        }
    }
}

/// `source * alpha + background * (255 - alpha)` over 255, rounded; exact at both ends.
#[inline(always)]
pub fn mix(source: u8, background: u8, alpha: u8) -> u8 {
    let (alpha, inverse) = (alpha as u16, 255 - alpha as u16);
    let value = source as u16 * alpha + background as u16 * inverse + 128;
    ((value + (value >> 8)) >> 8) as u8
}

#[inline(always)]
fn blend_chunk<const CHANNELS: usize>(pixels: &mut [u8], alpha: &[u8; CHUNK], background: &[u8]) {
    let pixels = &mut pixels[..CHUNK * CHANNELS];
    let background = &background[..CHUNK * CHANNELS];
    for i in 0..CHUNK * CHANNELS {
        pixels[i] = mix(pixels[i], background[i], alpha[i / CHANNELS]);
    }
}

/// One row: `row` and `background` hold `alpha.len()` pixels of `CHANNELS` bytes.
pub fn blend_row<const CHANNELS: usize>(row: &mut [u8], alpha: &[u8], background: &[u8]) {
    blend_row_from::<CHANNELS>(row, alpha, RowBackground::Bytes(background));
}

/// One row whose background is `lerp(top, bottom, weight)`, computed only where shown.
pub fn blend_row_lerp<const CHANNELS: usize>(
    row: &mut [u8],
    alpha: &[u8],
    top: &[u8],
    bottom: &[u8],
    weight: u16,
) {
    blend_row_from::<CHANNELS>(row, alpha, RowBackground::Lerp(top, bottom, weight));
}

#[inline(always)]
fn blend_row_from<const CHANNELS: usize>(row: &mut [u8], alpha: &[u8], background: RowBackground) {
    let width = alpha.len();
    let full = width / CHUNK * CHUNK;
    // The background of one chunk, when it is computed (4 bytes: the widest pixel).
    let mut shown = [0u8; CHUNK * 4];
    let shown = &mut shown[..CHUNK * CHANNELS];
    for (chunk, (pixels, alpha)) in row[..full * CHANNELS]
        .chunks_exact_mut(CHUNK * CHANNELS)
        .zip(alpha[..full].chunks_exact(CHUNK))
        .enumerate()
    {
        let alpha: &[u8; CHUNK] = alpha.try_into().expect("chunk of CHUNK");
        let packed = u128::from_ne_bytes(*alpha);
        if packed == u128::MAX {
            continue;
        }
        let offset = chunk * CHUNK * CHANNELS;
        if packed == 0 {
            background.fill(offset, pixels);
            continue;
        }
        match background {
            RowBackground::Bytes(bytes) => blend_chunk::<CHANNELS>(pixels, alpha, &bytes[offset..]),
            RowBackground::Lerp(..) => {
                background.fill(offset, shown);
                blend_chunk::<CHANNELS>(pixels, alpha, shown);
            }
        }
    }
    let tail = &mut row[full * CHANNELS..width * CHANNELS];
    let shown = &mut shown[..tail.len()];
    background.fill(full * CHANNELS, shown);
    for ((pixel, background), &a) in tail
        .chunks_exact_mut(CHANNELS)
        .zip(shown.chunks_exact(CHANNELS))
        .zip(&alpha[full..])
    {
        for (p, &b) in pixel.iter_mut().zip(background) {
            *p = mix(*p, b, a);
        }
    }
}

/// The plain per-pixel definition of [`blend_row`].
pub fn blend_row_reference(row: &mut [u8], channels: usize, alpha: &[u8], background: &[u8]) {
    for (x, &a) in alpha.iter().enumerate() {
        for c in 0..channels {
            let i = x * channels + c;
            let value =
                (row[i] as f32 * a as f32 + background[i] as f32 * (255 - a) as f32) / 255.0;
            row[i] = value.round() as u8;
        }
    }
}

/// Composites one plane in place. `alpha` is the frame's full-resolution person alpha;
/// a plane subsampled by `subsampling` reads every `subsampling`-th alpha. If `alpha_byte`
/// is set (packed layouts with an alpha channel), that byte of each pixel receives the alpha.
pub fn composite_plane(
    plane: &mut PlaneMut,
    subsampling: usize,
    alpha: Plane,
    background: PlaneBackground,
    alpha_byte: Option<usize>,
) {
    let (width, channels) = (plane.width, plane.channels);
    let stride = plane.stride;
    let used = stride * (plane.height - 1) + width * channels;
    plane.data[..used]
        .par_chunks_mut(stride)
        .with_min_len(16)
        .enumerate()
        .for_each_init(
            || vec![0u8; if subsampling == 1 { 0 } else { width }],
            |subsampled, (y, row)| {
                let row = &mut row[..width * channels];
                let full_row = alpha.row((y * subsampling).min(alpha.height - 1));
                let alpha_row: &[u8] = if subsampling == 1 {
                    &full_row[..width]
                } else {
                    for (x, a) in subsampled.iter_mut().enumerate() {
                        *a = full_row[(x * subsampling).min(alpha.width - 1)];
                    }
                    subsampled
                };
                let background_row = match background {
                    PlaneBackground::Image(image) => Some(RowBackground::Bytes(image.row(y))),
                    PlaneBackground::Row(row) => Some(RowBackground::Bytes(row)),
                    PlaneBackground::Lerp { rows, table } => {
                        let RowLerp {
                            top,
                            bottom,
                            weight,
                        } = table[y];
                        Some(RowBackground::Lerp(
                            rows.row(top as usize),
                            rows.row(bottom as usize),
                            weight,
                        ))
                    }
                    PlaneBackground::Keep => None,
                };
                if let Some(background_row) = background_row {
                    match channels {
                        4 => blend_row_from::<4>(row, alpha_row, background_row),
                        2 => blend_row_from::<2>(row, alpha_row, background_row),
                        _ => blend_row_from::<1>(row, alpha_row, background_row),
                    }
                }
                if let Some(alpha_index) = alpha_byte {
                    for (pixel, &a) in row.chunks_exact_mut(channels).zip(alpha_row) {
                        pixel[alpha_index] = a;
                    }
                }
            },
        );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_hits_both_ends_exactly() {
        for source in [0u8, 17, 255] {
            for background in [0u8, 99, 255] {
                assert_eq!(mix(source, background, 255), source);
                assert_eq!(mix(source, background, 0), background);
            }
        }
    }

    fn assert_within_one(fast: &[u8], slow: &[u8], what: &str) {
        for (i, (a, b)) in fast.iter().zip(slow).enumerate() {
            assert!(a.abs_diff(*b) <= 1, "{what} byte {i}: {a} vs {b}");
        }
    }

    #[test]
    fn blend_row_matches_the_reference() {
        // Chunks all person, all background, mixed, and a tail shorter than a chunk.
        let width = 5 * CHUNK + 7;
        let alpha: Vec<u8> = (0..width)
            .map(|x| match x / CHUNK {
                0 => 255,
                1 => 0,
                _ => ((x * 53) % 256) as u8,
            })
            .collect();
        for channels in [1usize, 2, 4] {
            let frame: Vec<u8> = (0..width * channels)
                .map(|i| (i * 31 % 256) as u8)
                .collect();
            let background: Vec<u8> = (0..width * channels)
                .map(|i| (i * 17 % 256) as u8)
                .collect();
            let mut fast = frame.clone();
            match channels {
                4 => blend_row::<4>(&mut fast, &alpha, &background),
                2 => blend_row::<2>(&mut fast, &alpha, &background),
                _ => blend_row::<1>(&mut fast, &alpha, &background),
            }
            let mut slow = frame.clone();
            blend_row_reference(&mut slow, channels, &alpha, &background);
            assert_within_one(&fast, &slow, &format!("channels {channels}"));
            // The same background as a blend of two rows, computed on the fly.
            let bottom: Vec<u8> = (0..width * channels).map(|i| (i * 7 % 256) as u8).collect();
            for weight in [0u16, 1, 77, 128, 255, 256] {
                let lerped: Vec<u8> = background
                    .iter()
                    .zip(&bottom)
                    .map(|(&t, &b)| {
                        let exact = t as f32 + (b as f32 - t as f32) * weight as f32 / 256.0;
                        exact.round() as u8
                    })
                    .collect();
                let mut fast = frame.clone();
                match channels {
                    4 => blend_row_lerp::<4>(&mut fast, &alpha, &background, &bottom, weight),
                    2 => blend_row_lerp::<2>(&mut fast, &alpha, &background, &bottom, weight),
                    _ => blend_row_lerp::<1>(&mut fast, &alpha, &background, &bottom, weight),
                }
                let mut slow = frame.clone();
                blend_row_reference(&mut slow, channels, &alpha, &lerped);
                assert_within_one(&fast, &slow, &format!("lerp {weight}, channels {channels}"));
            }
        }
    }

    #[test]
    fn lerp_hits_both_rows_exactly() {
        for (top, bottom) in [(0u8, 255u8), (255, 0), (17, 200)] {
            assert_eq!(lerp(top, bottom, 0), top);
            assert_eq!(lerp(top, bottom, 256), bottom);
        }
    }
}
