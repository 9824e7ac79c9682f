//! Pixel layouts the filter works on in place, described without GStreamer types.

use crate::plane::{Plane, PlaneMut};

/// How a frame's bytes are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelLayout {
    /// One plane, 4 bytes per pixel; byte offsets of red, green, blue and, if the format
    /// has a real alpha channel, alpha (RGBA, BGRA, ARGB, ABGR, RGBx, BGRx, xRGB, xBGR).
    Packed {
        red: usize,
        green: usize,
        blue: usize,
        alpha: Option<usize>,
    },
    /// Planar Y, U, V; chroma subsampled 2x2 (BT.601 limited range assumed for colours).
    I420,
    /// Y plane, then interleaved UV plane subsampled 2x2.
    Nv12,
}

/// Geometry of one plane of a layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlaneShape {
    /// Bytes (channels) per pixel in this plane.
    pub channels: usize,
    /// 1 for full resolution, 2 for 2x2 subsampled chroma.
    pub subsampling: usize,
}

impl PixelLayout {
    /// Bytes R, G, B, A.
    pub const RGBA: PixelLayout = PixelLayout::Packed {
        red: 0,
        green: 1,
        blue: 2,
        alpha: Some(3),
    };

    pub fn planes(&self) -> &'static [PlaneShape] {
        const PACKED: &[PlaneShape] = &[PlaneShape {
            channels: 4,
            subsampling: 1,
        }];
        const I420: &[PlaneShape] = &[
            PlaneShape {
                channels: 1,
                subsampling: 1,
            },
            PlaneShape {
                channels: 1,
                subsampling: 2,
            },
            PlaneShape {
                channels: 1,
                subsampling: 2,
            },
        ];
        const NV12: &[PlaneShape] = &[
            PlaneShape {
                channels: 1,
                subsampling: 1,
            },
            PlaneShape {
                channels: 2,
                subsampling: 2,
            },
        ];
        match self {
            PixelLayout::Packed { .. } => PACKED,
            PixelLayout::I420 => I420,
            PixelLayout::Nv12 => NV12,
        }
    }

    pub fn is_yuv(&self) -> bool {
        !matches!(self, PixelLayout::Packed { .. })
    }

    /// The bytes of each plane's pixel that represent an opaque colour given as RGB.
    /// Unused entries are zero.
    pub fn colour_values(&self, rgb: [u8; 3]) -> [[u8; 4]; 3] {
        match *self {
            PixelLayout::Packed {
                red,
                green,
                blue,
                alpha,
            } => {
                // Padding bytes (x) get 255 too, which is what videotestsrc writes.
                let mut pixel = [255u8; 4];
                pixel[red] = rgb[0];
                pixel[green] = rgb[1];
                pixel[blue] = rgb[2];
                if let Some(alpha) = alpha {
                    pixel[alpha] = 255;
                }
                [pixel, [0; 4], [0; 4]]
            }
            PixelLayout::I420 => {
                let [y, u, v] = rgb_to_yuv(rgb);
                [[y, 0, 0, 0], [u, 0, 0, 0], [v, 0, 0, 0]]
            }
            PixelLayout::Nv12 => {
                let [y, u, v] = rgb_to_yuv(rgb);
                [[y, 0, 0, 0], [u, v, 0, 0], [0; 4]]
            }
        }
    }
}

/// Plane size in pixels for a frame of `width` x `height`.
pub fn plane_size(shape: PlaneShape, width: usize, height: usize) -> (usize, usize) {
    (
        width.div_ceil(shape.subsampling),
        height.div_ceil(shape.subsampling),
    )
}

/// BT.601 limited-range RGB -> YCbCr, the colorimetry of SD and of most WebRTC video.
pub fn rgb_to_yuv([r, g, b]: [u8; 3]) -> [u8; 3] {
    let (r, g, b) = (r as f32, g as f32, b as f32);
    let y = 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0;
    let u = 128.0 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255.0;
    let v = 128.0 + (112.0 * r - 93.786 * g - 18.214 * b) / 255.0;
    [y, u, v].map(|c| c.round().clamp(0.0, 255.0) as u8)
}

/// BT.601 limited-range YCbCr -> RGB in [0, 1] (for the model input).
#[inline]
pub fn yuv_to_rgb_unit(y: f32, u: f32, v: f32) -> [f32; 3] {
    let y = (y - 16.0) * (1.0 / 219.0);
    let u = (u - 128.0) * (1.0 / 224.0);
    let v = (v - 128.0) * (1.0 / 224.0);
    [
        (y + 1.402 * v).clamp(0.0, 1.0),
        (y - 0.344_136 * u - 0.714_136 * v).clamp(0.0, 1.0),
        (y + 1.772 * u).clamp(0.0, 1.0),
    ]
}

/// A frame borrowed for in-place processing: up to three planes with their strides.
pub struct FrameMut<'a> {
    pub layout: PixelLayout,
    pub width: usize,
    pub height: usize,
    pub planes: [&'a mut [u8]; 3],
    pub strides: [usize; 3],
}

impl FrameMut<'_> {
    /// Plane `index` of the layout, read-only.
    pub fn plane(&self, index: usize) -> Plane<'_> {
        let shape = self.layout.planes()[index];
        let (width, height) = plane_size(shape, self.width, self.height);
        Plane {
            data: self.planes[index],
            stride: self.strides[index],
            width,
            height,
            channels: shape.channels,
        }
    }

    /// Plane `index` of the layout, writable.
    pub fn plane_mut(&mut self, index: usize) -> PlaneMut<'_> {
        let shape = self.layout.planes()[index];
        let (width, height) = plane_size(shape, self.width, self.height);
        PlaneMut {
            data: self.planes[index],
            stride: self.strides[index],
            width,
            height,
            channels: shape.channels,
        }
    }

    /// Checks that every plane the layout needs is large enough for its stride and size,
    /// so that the processing loops can index without further checks failing.
    pub fn validate(&self) -> Result<(), String> {
        for (index, shape) in self.layout.planes().iter().enumerate() {
            let (width, height) = plane_size(*shape, self.width, self.height);
            let stride = self.strides[index];
            if stride < width * shape.channels {
                return Err(format!(
                    "plane {index}: stride {stride} < row of {width} pixels"
                ));
            }
            let needed = stride * (height - 1) + width * shape.channels;
            if self.planes[index].len() < needed {
                return Err(format!(
                    "plane {index}: {} bytes, {needed} needed",
                    self.planes[index].len()
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuv_round_trip_is_close() {
        for rgb in [[0, 0, 0], [255, 255, 255], [200, 30, 90], [10, 220, 40]] {
            let [y, u, v] = rgb_to_yuv(rgb);
            let back = yuv_to_rgb_unit(y as f32, u as f32, v as f32);
            for c in 0..3 {
                assert!(
                    (back[c] * 255.0 - rgb[c] as f32).abs() < 3.0,
                    "{rgb:?} -> {back:?}"
                );
            }
        }
    }

    #[test]
    fn packed_colour_respects_channel_order() {
        let bgra = PixelLayout::Packed {
            red: 2,
            green: 1,
            blue: 0,
            alpha: Some(3),
        };
        assert_eq!(bgra.colour_values([1, 2, 3])[0], [3, 2, 1, 255]);
    }

    #[test]
    fn short_plane_is_rejected() {
        let mut data = vec![0u8; 10];
        let frame = FrameMut {
            layout: PixelLayout::I420,
            width: 4,
            height: 4,
            planes: [&mut data, &mut [], &mut []],
            strides: [4, 2, 2],
        };
        assert!(frame.validate().is_err());
    }
}
