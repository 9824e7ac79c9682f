//! Background pictures: scaled per fit mode, their transparency composited over the fill
//! colour, and converted to the frame's layout once per picture and caps.

use crate::layout::{PixelLayout, plane_size, rgb_to_yuv};
use crate::plane::OwnedPlane;

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
    /// One per plane of the layout.
    pub planes: Vec<OwnedPlane>,
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
    let mut planes: Vec<OwnedPlane> = layout
        .planes()
        .iter()
        .map(|shape| {
            let (pw, ph) = plane_size(*shape, width, height);
            OwnedPlane::new(pw, ph, shape.channels)
        })
        .collect();
    let rgb_at = |x: usize, y: usize| {
        let p = canvas
            .get_pixel(x.min(width - 1) as u32, y.min(height - 1) as u32)
            .0;
        [p[0], p[1], p[2]]
    };
    match layout {
        PixelLayout::Packed { .. } => {
            let mut plane = planes[0].as_plane_mut();
            for y in 0..height {
                for (x, pixel) in plane.row_mut(y).chunks_exact_mut(4).enumerate() {
                    pixel.copy_from_slice(&layout.colour_values(rgb_at(x, y))[0]);
                }
            }
        }
        PixelLayout::I420 | PixelLayout::Nv12 => {
            let mut luma = planes[0].as_plane_mut();
            for y in 0..height {
                for (x, value) in luma.row_mut(y).iter_mut().enumerate() {
                    *value = rgb_to_yuv(rgb_at(x, y))[0];
                }
            }
            let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
            let mut chroma = vec![[0u8; 2]; cw * ch];
            for cy in 0..ch {
                for cx in 0..cw {
                    let (mut u, mut v) = (0u32, 0u32);
                    for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                        let [_, pu, pv] = rgb_to_yuv(rgb_at(2 * cx + dx, 2 * cy + dy));
                        u += pu as u32;
                        v += pv as u32;
                    }
                    chroma[cy * cw + cx] = [((u + 2) / 4) as u8, ((v + 2) / 4) as u8];
                }
            }
            if layout == PixelLayout::I420 {
                for (i, [u, v]) in chroma.into_iter().enumerate() {
                    planes[1].data[i] = u;
                    planes[2].data[i] = v;
                }
            } else {
                for (pair, uv) in planes[1].data.chunks_exact_mut(2).zip(chroma) {
                    pair.copy_from_slice(&uv);
                }
            }
        }
    }
    PreparedPicture { planes }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let at =
            |x: usize, y: usize| &prepared.planes[0].data[y * 160 + x * 4..y * 160 + x * 4 + 3];
        assert_eq!(at(20, 10), &[200, 0, 0]);
        assert_eq!(at(2, 10), &[0, 0, 255]);
        let covered = prepare_picture(&picture, Fit::Cover, [0, 0, 255], layout, 40, 20);
        assert_eq!(
            &covered.planes[0].data[10 * 160 + 8..10 * 160 + 11],
            &[200, 0, 0]
        );
    }
}
