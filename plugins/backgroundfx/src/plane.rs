//! One image plane (bytes with a stride) as the pixel code sees it, instead of
//! `y * stride + x` by hand; and the views `fast_image_resize` resizes from and into.

use fast_image_resize as fir;
use fir::pixels::{U8, U8x2, U8x4};

/// A read-only plane: `height` rows of `width` pixels of `channels` bytes, `stride` apart.
#[derive(Debug, Clone, Copy)]
pub struct Plane<'a> {
    pub data: &'a [u8],
    pub stride: usize,
    pub width: usize,
    pub height: usize,
    pub channels: usize,
}

/// A writable plane, same geometry as [`Plane`].
#[derive(Debug)]
pub struct PlaneMut<'a> {
    pub data: &'a mut [u8],
    pub stride: usize,
    pub width: usize,
    pub height: usize,
    pub channels: usize,
}

impl<'a> Plane<'a> {
    /// A contiguous plane (stride = width * channels). Panics if `data` is too short.
    pub fn packed(data: &'a [u8], width: usize, height: usize, channels: usize) -> Self {
        assert!(data.len() >= width * height * channels, "plane too short");
        Plane {
            data,
            stride: width * channels,
            width,
            height,
            channels,
        }
    }

    /// Row `y`: exactly `width * channels` bytes.
    #[inline]
    pub fn row(&self, y: usize) -> &'a [u8] {
        &self.data[y * self.stride..][..self.width * self.channels]
    }

    pub fn rows(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        (0..self.height).map(|y| self.row(y))
    }
}

impl<'a> PlaneMut<'a> {
    pub fn as_plane(&self) -> Plane<'_> {
        Plane {
            data: self.data,
            stride: self.stride,
            width: self.width,
            height: self.height,
            channels: self.channels,
        }
    }

    #[inline]
    pub fn row_mut(&mut self, y: usize) -> &mut [u8] {
        &mut self.data[y * self.stride..][..self.width * self.channels]
    }

    /// Rows as disjoint mutable slices of `width * channels` bytes (for `par_iter`).
    pub fn rows_mut(&mut self) -> impl Iterator<Item = &mut [u8]> {
        let row_len = self.width * self.channels;
        let used = self.stride * self.height.saturating_sub(1) + row_len;
        self.data[..used]
            .chunks_mut(self.stride.max(1))
            .map(move |row| &mut row[..row_len])
    }
}

/// An owned contiguous plane (work and background buffers), allocated once per caps.
#[derive(Debug, Clone, Default)]
pub struct OwnedPlane {
    pub data: Vec<u8>,
    pub width: usize,
    pub height: usize,
    pub channels: usize,
}

impl OwnedPlane {
    pub fn new(width: usize, height: usize, channels: usize) -> Self {
        OwnedPlane {
            data: vec![0; width * height * channels],
            width,
            height,
            channels,
        }
    }

    pub fn as_plane(&self) -> Plane<'_> {
        Plane::packed(&self.data, self.width, self.height, self.channels)
    }

    pub fn as_plane_mut(&mut self) -> PlaneMut<'_> {
        PlaneMut {
            stride: self.width * self.channels,
            data: &mut self.data,
            width: self.width,
            height: self.height,
            channels: self.channels,
        }
    }
}

/// What a `fast_image_resize` view reads its rows from.
trait RowSource: Sync + Send {
    fn plane(&self) -> Plane<'_>;
}

impl RowSource for Plane<'_> {
    fn plane(&self) -> Plane<'_> {
        *self
    }
}

impl RowSource for &mut PlaneMut<'_> {
    fn plane(&self) -> Plane<'_> {
        self.as_plane()
    }
}

/// A plane seen as a `fast_image_resize` image of pixel type `P` (a source from a
/// [`Plane`], a destination from a [`PlaneMut`]).
struct View<B, P> {
    plane: B,
    pixel: std::marker::PhantomData<P>,
}

// SAFETY: every row handed out holds exactly `width` pixels (`Plane::row`), as the trait
// requires; the data stays borrowed for the view's lifetime.
unsafe impl<B: RowSource, P> fir::ImageView for View<B, P>
where
    P: fir::pixels::InnerPixel + bytemuck::Pod,
{
    type Pixel = P;

    fn width(&self) -> u32 {
        self.plane.plane().width as u32
    }

    fn height(&self) -> u32 {
        self.plane.plane().height as u32
    }

    fn iter_rows(&self, start_row: u32) -> impl Iterator<Item = &[P]> {
        let plane = self.plane.plane();
        (start_row as usize..plane.height).map(move |y| bytemuck::cast_slice(plane.row(y)))
    }
}

// SAFETY: as for `ImageView`; the rows are disjoint mutable slices of exactly `width` pixels.
unsafe impl<P> fir::ImageViewMut for View<&mut PlaneMut<'_>, P>
where
    P: fir::pixels::InnerPixel + bytemuck::Pod,
{
    fn iter_rows_mut(&mut self, start_row: u32) -> impl Iterator<Item = &mut [P]> {
        self.plane
            .rows_mut()
            .skip(start_row as usize)
            .map(bytemuck::cast_slice_mut)
    }
}

/// Resizes `source` into `destination` (same channel count: 1, 2 or 4 bytes per pixel).
/// `fast_image_resize` picks SSE4.1/AVX2/NEON code for the machine.
pub fn resize(
    resizer: &mut fir::Resizer,
    source: Plane,
    destination: &mut PlaneMut,
    algorithm: fir::ResizeAlg,
) {
    assert_eq!(
        source.channels, destination.channels,
        "channel counts differ"
    );
    let options = fir::ResizeOptions::new()
        .resize_alg(algorithm)
        .use_alpha(false);
    fn typed<P: fir::PixelTrait + bytemuck::Pod>(
        resizer: &mut fir::Resizer,
        source: Plane,
        destination: &mut PlaneMut,
        options: &fir::ResizeOptions,
    ) {
        let source = View::<_, P> {
            plane: source,
            pixel: std::marker::PhantomData,
        };
        let mut destination = View::<_, P> {
            plane: destination,
            pixel: std::marker::PhantomData,
        };
        // Sizes are non-zero and the pixel types match: the resizer has nothing to refuse.
        resizer
            .resize_typed(&source, &mut destination, options)
            .expect("resize of valid planes");
    }
    match source.channels {
        1 => typed::<U8>(resizer, source, destination, &options),
        2 => typed::<U8x2>(resizer, source, destination, &options),
        4 => typed::<U8x4>(resizer, source, destination, &options),
        other => panic!("planes have 1, 2 or 4 channels, not {other}"),
    }
}

/// Area-averaging downscale (what OpenCV calls INTER_AREA).
pub const AREA: fir::ResizeAlg = fir::ResizeAlg::Convolution(fir::FilterType::Box);
/// Bilinear interpolation: what the crate's own upscalers (`resample`) are tested against.
pub const BILINEAR: fir::ResizeAlg = fir::ResizeAlg::Interpolation(fir::FilterType::Bilinear);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_honours_the_source_stride() {
        // 4x2 single-channel plane inside rows of 6 bytes; the padding must not be read.
        let data = [10, 10, 10, 10, 99, 99, 20, 20, 20, 20, 99, 99];
        let source = Plane {
            data: &data,
            stride: 6,
            width: 4,
            height: 2,
            channels: 1,
        };
        let mut out = OwnedPlane::new(2, 1, 1);
        resize(
            &mut fir::Resizer::new(),
            source,
            &mut out.as_plane_mut(),
            AREA,
        );
        assert_eq!(out.data, [15, 15]);
    }

    #[test]
    fn rows_mut_stops_at_the_last_row_without_its_padding() {
        let mut data = vec![0u8; 6 * 2 + 4];
        let mut plane = PlaneMut {
            data: &mut data,
            stride: 6,
            width: 4,
            height: 3,
            channels: 1,
        };
        let rows: Vec<usize> = plane.rows_mut().map(|row| row.len()).collect();
        assert_eq!(rows, [4, 4, 4]);
    }
}
