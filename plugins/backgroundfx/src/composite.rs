//! Backgrounds (mask-weighted blur, solid colour, picture) and the in-place composite.

use rayon::prelude::*;

use crate::layout::{PixelLayout, PlaneShape, plane_size, rgb_to_yuv};
use crate::resample::LinearTable;

/// Background weight never reaches zero, so a pixel deep inside the person still gets a
/// defined (plain) blur; near an edge background pixels outweigh person pixels ~500:1.
const MIN_BACKGROUND_WEIGHT: f32 = 0.002;

/// Blur of the background only: `blur(colour * weight) / blur(weight)` with weight =
/// (1 - person)^2, so person pixels do not bleed into the blurred background (no halo).
///
/// `data` holds `channels + 1` interleaved values per pixel; the last is the weight on
/// input (set by the caller), and holds the blurred weight afterwards.
pub fn weighted_blur(
    data: &mut [f32],
    width: usize,
    height: usize,
    channels: usize,
    radius: usize,
    passes: usize,
    scratch: &mut Vec<f32>,
) {
    let slots = channels + 1;
    debug_assert!(matches!(slots, 2 | 3 | 5), "planes have 1, 2 or 4 channels");
    for pixel in data.chunks_exact_mut(slots) {
        let weight = pixel[channels].max(MIN_BACKGROUND_WEIGHT);
        pixel[channels] = weight;
        for value in &mut pixel[..channels] {
            *value *= weight;
        }
    }
    scratch.resize(data.len() + width * slots, 0.0);
    for _ in 0..passes {
        match slots {
            5 => box_sum_rows::<5>(data, width, height, radius, scratch),
            3 => box_sum_rows::<3>(data, width, height, radius, scratch),
            _ => box_sum_rows::<2>(data, width, height, radius, scratch),
        }
        box_sum_columns(data, width, height, slots, radius, scratch);
    }
    for pixel in data.chunks_exact_mut(slots) {
        let inverse = 1.0 / pixel[channels];
        for value in &mut pixel[..channels] {
            *value *= inverse;
        }
    }
}

/// Windowed sums along rows, scaled by 1/(2r+1); clipped windows at the borders. Only
/// ratios of these sums are used, so the border scaling cancels out.
/// `SLOTS` is a constant so that the per-slot loops unroll.
fn box_sum_rows<const SLOTS: usize>(
    data: &mut [f32],
    width: usize,
    height: usize,
    radius: usize,
    scratch: &mut [f32],
) {
    let slots = SLOTS;
    let scale = 1.0 / (2 * radius + 1) as f32;
    let row_len = width * slots;
    let mut sums = [0.0f32; SLOTS];
    for y in 0..height {
        let row = &mut data[y * row_len..(y + 1) * row_len];
        let out = &mut scratch[..row_len];
        sums.fill(0.0);
        for x in 0..=radius.min(width - 1) {
            for c in 0..slots {
                sums[c] += row[x * slots + c];
            }
        }
        for x in 0..width {
            for c in 0..slots {
                out[x * slots + c] = sums[c] * scale;
            }
            if x + radius + 1 < width {
                let add = (x + radius + 1) * slots;
                for c in 0..slots {
                    sums[c] += row[add + c];
                }
            }
            if x >= radius {
                let remove = (x - radius) * slots;
                for c in 0..slots {
                    sums[c] -= row[remove + c];
                }
            }
        }
        row.copy_from_slice(out);
    }
}

fn box_sum_columns(
    data: &mut [f32],
    width: usize,
    height: usize,
    slots: usize,
    radius: usize,
    scratch: &mut [f32],
) {
    let scale = 1.0 / (2 * radius + 1) as f32;
    let row_len = width * slots;
    // The output overwrites rows that later windows still subtract: read from a copy.
    let (source, sums) = scratch.split_at_mut(data.len());
    let sums = &mut sums[..row_len];
    source.copy_from_slice(data);
    sums.fill(0.0);
    for y in 0..=radius.min(height - 1) {
        for (s, v) in sums.iter_mut().zip(&source[y * row_len..(y + 1) * row_len]) {
            *s += v;
        }
    }
    for y in 0..height {
        for (o, s) in data[y * row_len..(y + 1) * row_len]
            .iter_mut()
            .zip(sums.iter())
        {
            *o = s * scale;
        }
        if y + radius + 1 < height {
            let add = (y + radius + 1) * row_len;
            for (s, v) in sums.iter_mut().zip(&source[add..add + row_len]) {
                *s += v;
            }
        }
        if y >= radius {
            let remove = (y - radius) * row_len;
            for (s, v) in sums.iter_mut().zip(&source[remove..remove + row_len]) {
                *s -= v;
            }
        }
    }
}

/// How a picture is fitted to the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fit {
    /// Scale to fill the frame, cropping the overflow (centred).
    #[default]
    Cover,
    /// Scale to fit inside the frame; the rest is filled with the solid colour.
    Contain,
    /// Scale each axis independently to the frame size.
    Stretch,
}

/// A background picture converted to a frame's layout and size.
#[derive(Debug, Clone, Default)]
pub struct PreparedPicture {
    pub planes: [Vec<u8>; 3],
    pub strides: [usize; 3],
}

/// Scales `picture` (RGBA, straight alpha) per `fit` to `width` x `height`, composites its
/// transparency over `fill`, and converts it to `layout`.
pub fn prepare_picture(
    picture: &image::RgbaImage,
    fit: Fit,
    fill: [u8; 3],
    layout: PixelLayout,
    width: usize,
    height: usize,
) -> PreparedPicture {
    use image::imageops::{FilterType, overlay, resize};
    let (w, h) = (width as u32, height as u32);
    let (pw, ph) = (
        picture.width().max(1) as f64,
        picture.height().max(1) as f64,
    );
    let mut canvas =
        image::RgbaImage::from_pixel(w, h, image::Rgba([fill[0], fill[1], fill[2], 255]));
    let scaled = match fit {
        Fit::Stretch => resize(picture, w, h, FilterType::Triangle),
        Fit::Cover | Fit::Contain => {
            let scale = if fit == Fit::Cover {
                (width as f64 / pw).max(height as f64 / ph)
            } else {
                (width as f64 / pw).min(height as f64 / ph)
            };
            let sw = ((pw * scale).round() as u32).max(1);
            let sh = ((ph * scale).round() as u32).max(1);
            resize(picture, sw, sh, FilterType::Triangle)
        }
    };
    let x = (w as i64 - scaled.width() as i64) / 2;
    let y = (h as i64 - scaled.height() as i64) / 2;
    overlay(&mut canvas, &scaled, x, y);
    convert_rgba(&canvas, layout)
}

fn convert_rgba(canvas: &image::RgbaImage, layout: PixelLayout) -> PreparedPicture {
    let (width, height) = (canvas.width() as usize, canvas.height() as usize);
    let mut prepared = PreparedPicture::default();
    for (index, shape) in layout.planes().iter().enumerate() {
        let (pw, ph) = plane_size(*shape, width, height);
        prepared.strides[index] = pw * shape.channels;
        prepared.planes[index] = vec![0; pw * shape.channels * ph];
    }
    let rgb_at = |x: usize, y: usize| {
        let p = canvas
            .get_pixel(x.min(width - 1) as u32, y.min(height - 1) as u32)
            .0;
        [p[0], p[1], p[2]]
    };
    match layout {
        PixelLayout::Packed { .. } => {
            for y in 0..height {
                for x in 0..width {
                    let pixel = layout.colour_values(rgb_at(x, y))[0];
                    let at = y * prepared.strides[0] + x * 4;
                    prepared.planes[0][at..at + 4].copy_from_slice(&pixel);
                }
            }
        }
        PixelLayout::I420 | PixelLayout::Nv12 => {
            for y in 0..height {
                for x in 0..width {
                    prepared.planes[0][y * prepared.strides[0] + x] = rgb_to_yuv(rgb_at(x, y))[0];
                }
            }
            let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
            for cy in 0..ch {
                for cx in 0..cw {
                    let (mut u, mut v) = (0u32, 0u32);
                    for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                        let [_, pu, pv] = rgb_to_yuv(rgb_at(2 * cx + dx, 2 * cy + dy));
                        u += pu as u32;
                        v += pv as u32;
                    }
                    let (u, v) = (((u + 2) / 4) as u8, ((v + 2) / 4) as u8);
                    if layout == PixelLayout::I420 {
                        prepared.planes[1][cy * prepared.strides[1] + cx] = u;
                        prepared.planes[2][cy * prepared.strides[2] + cx] = v;
                    } else {
                        let at = cy * prepared.strides[1] + 2 * cx;
                        prepared.planes[1][at] = u;
                        prepared.planes[1][at + 1] = v;
                    }
                }
            }
        }
    }
    prepared
}

/// What replaces the background in one plane.
pub enum PlaneBackground<'a> {
    /// Low-resolution blurred plane (`channels + 1` slots per pixel), upsampled bilinearly.
    Blurred {
        work: &'a [f32],
        work_width: usize,
        columns: &'a LinearTable,
        rows: &'a LinearTable,
    },
    /// The same bytes for every pixel.
    Solid([u8; 4]),
    /// A full-size prepared plane.
    Image { data: &'a [u8], stride: usize },
    /// No replacement (only the alpha channel is written).
    Keep,
}

/// Copies a pixel's bytes; fixed-size copies for the common widths so that no per-pixel
/// `memcpy` call is made.
#[inline(always)]
fn set_pixel(pixel: &mut [u8], values: &[u8]) {
    match (pixel.len(), values.len()) {
        (4, 4) => {
            let values: [u8; 4] = values.try_into().expect("length checked");
            pixel.copy_from_slice(&values);
        }
        (1, 1) => pixel[0] = values[0],
        (2, 2) => {
            pixel[0] = values[0];
            pixel[1] = values[1];
        }
        _ => pixel.copy_from_slice(values),
    }
}

#[inline]
fn mix(source: u8, background: u32, alpha: u32) -> u8 {
    let value = source as u32 * alpha + background * (255 - alpha) + 128;
    ((value + (value >> 8)) >> 8) as u8
}

/// One row of the blurred-background composite; `CHANNELS` is a constant so that the
/// per-channel loops unroll (this is the hottest loop of the blur effect).
#[inline(always)]
fn blend_blurred_row<const CHANNELS: usize>(
    row: &mut [u8],
    alpha_row: &[u8],
    work_row: &[f32],
    columns: &LinearTable,
) {
    let slots = CHANNELS + 1;
    let table = columns.index.iter().zip(&columns.next).zip(&columns.weight);
    for ((pixel, &a), ((&left, &right), &w)) in
        row.chunks_exact_mut(CHANNELS).zip(alpha_row).zip(table)
    {
        if a == 255 {
            continue;
        }
        let left: &[f32; CHANNELS] = work_row[left as usize * slots..][..CHANNELS]
            .try_into()
            .expect("slice of CHANNELS");
        let right: &[f32; CHANNELS] = work_row[right as usize * slots..][..CHANNELS]
            .try_into()
            .expect("slice of CHANNELS");
        for c in 0..CHANNELS {
            let background = left[c] + (right[c] - left[c]) * w;
            pixel[c] = mix(pixel[c], (background + 0.5) as u32, a as u32);
        }
    }
}

/// Composites one plane in place: `out = source * alpha + background * (1 - alpha)`, where
/// alpha is the full-resolution person alpha (`frame_width` bytes per row), sampled at
/// this plane's resolution. If `alpha_byte` is set (packed layouts with an alpha
/// channel), that byte receives the person alpha.
#[allow(clippy::too_many_arguments)]
pub fn composite_plane(
    plane: &mut [u8],
    stride: usize,
    shape: PlaneShape,
    frame_width: usize,
    frame_height: usize,
    alpha: &[u8],
    background: &PlaneBackground,
    alpha_byte: Option<usize>,
) {
    let (width, height) = plane_size(shape, frame_width, frame_height);
    let channels = shape.channels;
    let step = shape.subsampling;
    let slots = channels + 1;
    let row_buffer_len = match background {
        PlaneBackground::Blurred { work_width, .. } => work_width * slots,
        _ => 0,
    };
    plane[..stride * (height - 1) + width * channels]
        .par_chunks_mut(stride)
        .with_min_len(16)
        .enumerate()
        .for_each_init(
            || (vec![0.0f32; row_buffer_len], vec![0u8; width]),
            |(work_row, subsampled_alpha), (y, row)| {
                let row = &mut row[..width * channels];
                let full_row =
                    &alpha[(y * step).min(frame_height - 1) * frame_width..][..frame_width];
                let alpha_row: &[u8] = if step == 1 {
                    full_row
                } else {
                    for (x, a) in subsampled_alpha.iter_mut().enumerate() {
                        *a = full_row[(x * step).min(frame_width - 1)];
                    }
                    subsampled_alpha
                };
                let pixels = row.chunks_exact_mut(channels).zip(alpha_row);
                match background {
                    PlaneBackground::Blurred {
                        work,
                        columns,
                        rows,
                        ..
                    } => {
                        let top = rows.index[y] as usize * row_buffer_len;
                        let bottom = rows.next[y] as usize * row_buffer_len;
                        rows.blend_rows(
                            y,
                            &work[top..top + row_buffer_len],
                            &work[bottom..bottom + row_buffer_len],
                            work_row,
                        );
                        match channels {
                            4 => blend_blurred_row::<4>(row, alpha_row, work_row, columns),
                            2 => blend_blurred_row::<2>(row, alpha_row, work_row, columns),
                            _ => blend_blurred_row::<1>(row, alpha_row, work_row, columns),
                        }
                    }
                    PlaneBackground::Solid(values) => {
                        let values = &values[..channels];
                        for (pixel, &a) in pixels {
                            match a {
                                255 => {}
                                0 => set_pixel(pixel, values),
                                _ => {
                                    for (p, v) in pixel.iter_mut().zip(values) {
                                        *p = mix(*p, *v as u32, a as u32);
                                    }
                                }
                            }
                        }
                    }
                    PlaneBackground::Image { data, stride } => {
                        let image_row =
                            data[y * stride..][..width * channels].chunks_exact(channels);
                        for ((pixel, &a), values) in pixels.zip(image_row) {
                            match a {
                                255 => {}
                                0 => set_pixel(pixel, values),
                                _ => {
                                    for (p, v) in pixel.iter_mut().zip(values) {
                                        *p = mix(*p, *v as u32, a as u32);
                                    }
                                }
                            }
                        }
                    }
                    PlaneBackground::Keep => {}
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
            for background in [0u32, 99, 255] {
                assert_eq!(mix(source, background, 255), source);
                assert_eq!(mix(source, background, 0) as u32, background);
            }
        }
    }

    #[test]
    fn weighted_blur_does_not_bleed_person_into_background() {
        // Left half background (value 10, weight 1), right half person (value 250, weight 0).
        let (w, h) = (20, 4);
        let mut data = Vec::new();
        for _ in 0..h {
            for x in 0..w {
                if x < 10 {
                    data.extend([10.0, 1.0]);
                } else {
                    data.extend([250.0, 0.0]);
                }
            }
        }
        let mut scratch = Vec::new();
        weighted_blur(&mut data, w, h, 1, 4, 3, &mut scratch);
        for y in 0..h {
            for x in 0..10 {
                let value = data[(y * w + x) * 2];
                assert!((value - 10.0).abs() < 2.0, "x={x}: {value} has a halo");
            }
        }
    }

    #[test]
    fn weighted_blur_of_a_uniform_background_blurs() {
        let (w, h) = (16, 16);
        let mut data = Vec::new();
        for y in 0..h {
            for x in 0..w {
                data.extend([if (x + y) % 2 == 0 { 0.0 } else { 200.0 }, 1.0]);
            }
        }
        let mut scratch = Vec::new();
        weighted_blur(&mut data, w, h, 1, 3, 3, &mut scratch);
        let centre = data[(8 * w + 8) * 2];
        assert!(
            (centre - 100.0).abs() < 5.0,
            "checkerboard averages out: {centre}"
        );
    }

    #[test]
    fn contain_letterboxes_with_the_fill_colour() {
        let picture = image::RgbaImage::from_pixel(10, 10, image::Rgba([200, 0, 0, 255]));
        let layout = PixelLayout::Packed {
            red: 0,
            green: 1,
            blue: 2,
            alpha: None,
        };
        let prepared = prepare_picture(&picture, Fit::Contain, [0, 0, 255], layout, 40, 20);
        let at = |x: usize, y: usize| &prepared.planes[0][y * 160 + x * 4..y * 160 + x * 4 + 3];
        assert_eq!(at(20, 10), &[200, 0, 0]);
        assert_eq!(at(2, 10), &[0, 0, 255]);
        let covered = prepare_picture(&picture, Fit::Cover, [0, 0, 255], layout, 40, 20);
        assert_eq!(
            &covered.planes[0][10 * 160 + 8..10 * 160 + 11],
            &[200, 0, 0]
        );
    }
}
