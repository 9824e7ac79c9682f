//! From a frame of any layout to the model's input (planar RGB in [0, 1]) and the guide of
//! the mask refinement (luma / 255), both at the model's resolution: each plane is
//! area-downscaled (`fast_image_resize`, as OpenCV's INTER_AREA) and then converted.

use fast_image_resize as fir;

use crate::layout::{FrameMut, PixelLayout, yuv_to_rgb_unit};
use crate::plane::{self, OwnedPlane};
use crate::resample::luma_row;

/// The frame's planes at model resolution, allocated once per caps.
pub struct ModelInput {
    layout: PixelLayout,
    width: usize,
    height: usize,
    /// One per plane of the layout, each `width` x `height` with the plane's channels.
    planes: Vec<OwnedPlane>,
    /// The luma of a packed frame at model resolution, before it becomes the guide.
    luma: Vec<u8>,
}

impl ModelInput {
    pub fn new(layout: PixelLayout, width: usize, height: usize) -> Self {
        let planes = layout
            .planes()
            .iter()
            .map(|shape| OwnedPlane::new(width, height, shape.channels))
            .collect();
        ModelInput {
            layout,
            width,
            height,
            planes,
            luma: vec![0; width * height],
        }
    }

    /// The last sampled frame's planes at model resolution, one per plane of the layout.
    pub fn planes(&self) -> &[OwnedPlane] {
        &self.planes
    }

    /// Downscales the frame and writes the guide (`width * height` values).
    pub fn sample(&mut self, resizer: &mut fir::Resizer, frame: &FrameMut, guide: &mut [f32]) {
        for (index, plane) in self.planes.iter_mut().enumerate() {
            plane::resize(
                resizer,
                frame.plane(index),
                &mut plane.as_plane_mut(),
                plane::AREA,
            );
        }
        let scale = 1.0 / 255.0;
        match self.layout {
            PixelLayout::Packed {
                red, green, blue, ..
            } => {
                luma_row(&self.planes[0].data, [red, green, blue], &mut self.luma);
                for (g, &y) in guide.iter_mut().zip(&self.luma) {
                    *g = y as f32 * scale;
                }
            }
            PixelLayout::I420 | PixelLayout::Nv12 => {
                for (g, &y) in guide.iter_mut().zip(&self.planes[0].data) {
                    *g = y as f32 * scale;
                }
            }
        }
    }

    /// Writes the last sampled frame as the model input: R plane, G plane, B plane.
    pub fn fill(&self, input: &mut [f32]) {
        let n = self.width * self.height;
        let (red, rest) = input[..3 * n].split_at_mut(n);
        let (green, blue) = rest.split_at_mut(n);
        let scale = 1.0 / 255.0;
        match self.layout {
            PixelLayout::Packed {
                red: r,
                green: g,
                blue: b,
                ..
            } => {
                // Offsets masked to the pixel: no bounds check in the loop.
                let (r, g, b) = (r & 3, g & 3, b & 3);
                for (i, pixel) in self.planes[0].data.as_chunks::<4>().0.iter().enumerate() {
                    red[i] = pixel[r] as f32 * scale;
                    green[i] = pixel[g] as f32 * scale;
                    blue[i] = pixel[b] as f32 * scale;
                }
            }
            PixelLayout::I420 | PixelLayout::Nv12 => {
                let y = &self.planes[0].data;
                let chroma = |i: usize| -> (u8, u8) {
                    if self.layout == PixelLayout::I420 {
                        (self.planes[1].data[i], self.planes[2].data[i])
                    } else {
                        (self.planes[1].data[2 * i], self.planes[1].data[2 * i + 1])
                    }
                };
                for i in 0..n {
                    let (u, v) = chroma(i);
                    let [r, g, b] = yuv_to_rgb_unit(y[i] as f32, u as f32, v as f32);
                    red[i] = r;
                    green[i] = g;
                    blue[i] = b;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grey_frame_gives_a_grey_input_in_every_layout() {
        let (width, height) = (40, 30);
        let bgra = PixelLayout::Packed {
            red: 2,
            green: 1,
            blue: 0,
            alpha: Some(3),
        };
        for layout in [
            PixelLayout::RGBA,
            bgra,
            PixelLayout::I420,
            PixelLayout::Nv12,
        ] {
            let (mut p0, mut p1, mut p2) = match layout {
                PixelLayout::Packed { .. } => (vec![128u8; width * height * 4], vec![], vec![]),
                _ => (
                    vec![128u8; width * height],
                    vec![128u8; width * height / 2],
                    vec![128u8; width * height / 4],
                ),
            };
            let strides = match layout {
                PixelLayout::Packed { .. } => [width * 4, 0, 0],
                PixelLayout::I420 => [width, width / 2, width / 2],
                PixelLayout::Nv12 => [width, width, 0],
            };
            let frame = FrameMut {
                layout,
                width,
                height,
                planes: [&mut p0, &mut p1, &mut p2],
                strides,
            };
            let mut sampler = ModelInput::new(layout, 16, 9);
            let mut guide = vec![0.0; 16 * 9];
            sampler.sample(&mut fir::Resizer::new(), &frame, &mut guide);
            let mut input = vec![0.0; 3 * 16 * 9];
            sampler.fill(&mut input);
            let expected = if layout.is_yuv() {
                (128.0 - 16.0) / 219.0
            } else {
                128.0 / 255.0
            };
            assert!(
                input.iter().all(|v| (v - expected).abs() < 1e-2),
                "{layout:?}"
            );
            assert!(guide.iter().all(|v| (v - 128.0 / 255.0).abs() < 1e-2));
        }
    }
}
