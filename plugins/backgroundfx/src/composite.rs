//! The in-place composite: `out = frame * alpha + background * (1 - alpha)` per plane,
//! where the background is a prepared plane of the same size (blurred frame, picture, or
//! a row of solid colour).
//!
//! The kernel works on chunks of 16 pixels: a chunk that is all person is skipped, all
//! background is copied, anything else is blended with fixed-size u16 arithmetic that the
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
    /// No replacement (only the alpha channel is written).
    Keep,
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
    let width = alpha.len();
    let full = width / CHUNK * CHUNK;
    for ((pixels, alpha), background) in row[..full * CHANNELS]
        .chunks_exact_mut(CHUNK * CHANNELS)
        .zip(alpha[..full].chunks_exact(CHUNK))
        .zip(background[..full * CHANNELS].chunks_exact(CHUNK * CHANNELS))
    {
        let alpha: &[u8; CHUNK] = alpha.try_into().expect("chunk of CHUNK");
        let packed = u128::from_ne_bytes(*alpha);
        if packed == u128::MAX {
            continue;
        }
        if packed == 0 {
            pixels.copy_from_slice(background);
            continue;
        }
        blend_chunk::<CHANNELS>(pixels, alpha, background);
    }
    let tail = row[full * CHANNELS..width * CHANNELS]
        .chunks_exact_mut(CHANNELS)
        .zip(background[full * CHANNELS..].chunks_exact(CHANNELS))
        .zip(&alpha[full..]);
    for ((pixel, background), &a) in tail {
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
                    PlaneBackground::Image(image) => Some(image.row(y)),
                    PlaneBackground::Row(row) => Some(row),
                    PlaneBackground::Keep => None,
                };
                if let Some(background_row) = background_row {
                    match channels {
                        4 => blend_row::<4>(row, alpha_row, background_row),
                        2 => blend_row::<2>(row, alpha_row, background_row),
                        _ => blend_row::<1>(row, alpha_row, background_row),
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
            for (i, (a, b)) in fast.iter().zip(&slow).enumerate() {
                assert!(
                    a.abs_diff(*b) <= 1,
                    "channels {channels} byte {i}: {a} vs {b}"
                );
            }
        }
    }
}
