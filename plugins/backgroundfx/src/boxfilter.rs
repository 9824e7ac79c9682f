//! The one box filter of the crate: the mean over a (2r+1)^2 window of interleaved f32
//! maps, windows clipped at the borders and normalised by the number of samples inside
//! (borders are not darkened). The guided filter streams its four moments through it (the
//! moment map is never stored) and filters its two coefficient maps in place; the blur
//! filters premultiplied colour + weight in place (where only ratios matter, so the
//! normalisation cancels).

/// Reusable buffers of the box filter, kept by the caller so that no frame allocates.
#[derive(Debug, Default, Clone)]
pub struct BoxScratch {
    /// The input rows in the window and the one entering it next (`2 * radius + 2` rows).
    ring: Vec<f32>,
    /// Column sums of the current window, one per value of a row.
    sums: Vec<f32>,
    /// The output row being made.
    row: Vec<f32>,
    /// `1 / samples` of each clipped window along a row, one per value of a row.
    inverse_columns: Vec<f32>,
    /// The same down a column, one per row.
    inverse_rows: Vec<f32>,
}

/// `1 / samples` of each clipped window along an axis of `len` samples, each repeated
/// `repeat` times.
fn inverse_counts(out: &mut Vec<f32>, len: usize, radius: usize, repeat: usize) {
    out.clear();
    for i in 0..len {
        let first = i.saturating_sub(radius);
        let last = (i + radius).min(len - 1);
        let inverse = 1.0 / (last - first + 1) as f32;
        out.extend(std::iter::repeat_n(inverse, repeat));
    }
}

/// Where a streamed box filter ([`box_mean_rows`]) takes its input rows from and gives its
/// output rows to. Both are asked for in order; the input runs `radius` rows ahead of the
/// output (input row `y + radius` is asked for before output row `y` is given).
pub trait RowStream {
    /// Writes input row `y` (`width * SLOTS` values).
    fn input(&mut self, y: usize, row: &mut [f32]);
    /// Takes output row `y`: the window means.
    fn output(&mut self, y: usize, row: &[f32]);
}

/// In place: every value becomes the mean of its window. `data` holds `width * height`
/// pixels of `SLOTS` interleaved values; `SLOTS` is a constant so that the loops unroll.
pub fn box_mean<const SLOTS: usize>(
    data: &mut [f32],
    width: usize,
    height: usize,
    radius: usize,
    scratch: &mut BoxScratch,
) {
    let row_len = width * SLOTS;
    assert!(data.len() >= row_len * height, "map too short");
    /// Rows from `data` and back into it: a row is overwritten only after the window has
    /// read it (the input runs ahead of the output).
    struct InPlace<'a> {
        data: &'a mut [f32],
        row_len: usize,
    }
    impl RowStream for InPlace<'_> {
        fn input(&mut self, y: usize, row: &mut [f32]) {
            row.copy_from_slice(&self.data[y * self.row_len..][..self.row_len]);
        }
        fn output(&mut self, y: usize, row: &[f32]) {
            self.data[y * self.row_len..][..self.row_len].copy_from_slice(row);
        }
    }
    let mut rows = InPlace { data, row_len };
    box_mean_rows::<SLOTS>(width, height, radius, scratch, &mut rows);
}

/// The box mean of a map that is never stored whole: its rows are made by `rows.input` as
/// the window reaches them, and the means handed to `rows.output` row by row (the guided
/// filter makes its moment rows from the guide and the mask, and turns each mean row into
/// coefficients at once). `SLOTS` interleaved values per pixel.
///
/// One pass down the rows: the column sums of the window are kept for a whole row
/// (contiguous, vectorised), and each output value is the sum of `2 * radius + 1` shifted
/// column sums (vectorised too: no running sum along the row, whose dependency chain
/// would run one value at a time; see [`window_means`]). The cost grows with the radius;
/// this crate's radii are small (2 for the guided filter, about 3 for the blur). The
/// window's rows, the sums and the output row stay in L1 (2 * radius + 4 rows).
pub fn box_mean_rows<const SLOTS: usize>(
    width: usize,
    height: usize,
    radius: usize,
    scratch: &mut BoxScratch,
    rows: &mut impl RowStream,
) {
    if width == 0 || height == 0 {
        return;
    }
    let row_len = width * SLOTS;
    let BoxScratch {
        ring,
        sums,
        row,
        inverse_columns,
        inverse_rows,
    } = scratch;
    inverse_counts(inverse_columns, width, radius, SLOTS);
    inverse_counts(inverse_rows, height, radius, 1);
    let ring_rows = 2 * radius + 2;
    ring.resize(ring_rows * row_len, 0.0);
    row.resize(row_len, 0.0);
    sums.clear();
    sums.resize(row_len, 0.0);
    let slot = |y: usize| (y % ring_rows) * row_len..(y % ring_rows + 1) * row_len;
    for y in 0..(radius + 1).min(height) {
        let entering = &mut ring[slot(y)];
        rows.input(y, entering);
        for (s, v) in sums.iter_mut().zip(entering.iter()) {
            *s += v;
        }
    }
    for (y, &inverse_row) in inverse_rows.iter().enumerate() {
        window_means::<SLOTS>(sums, radius, inverse_columns, inverse_row, row);
        rows.output(y, row);
        // Slide the window down: the row below it enters, the top one leaves (one pass
        // over the sums when both happen; they are different slots of the ring).
        let entering = (y + radius + 1 < height).then_some(y + radius + 1);
        let leaving = (y >= radius).then(|| y - radius);
        if let Some(entering) = entering {
            rows.input(entering, &mut ring[slot(entering)]);
        }
        match (entering, leaving) {
            (Some(entering), Some(leaving)) => {
                let (entering, leaving) = (&ring[slot(entering)], &ring[slot(leaving)]);
                for ((s, v), u) in sums.iter_mut().zip(entering).zip(leaving) {
                    *s += v - u;
                }
            }
            (Some(entering), None) => {
                for (s, v) in sums.iter_mut().zip(&ring[slot(entering)]) {
                    *s += v;
                }
            }
            (None, Some(leaving)) => {
                for (s, v) in sums.iter_mut().zip(&ring[slot(leaving)]) {
                    *s -= v;
                }
            }
            (None, None) => {}
        }
    }
}

/// `row` = the clipped window sums of the column sums `sums` along the row, times the
/// inverse sample counts. The radii this crate uses are compiled each with the window as
/// a constant: one pass in which the compiler adds the shifted values in registers; any
/// other radius adds one shifted copy of the row at a time.
fn window_means<const SLOTS: usize>(
    sums: &[f32],
    radius: usize,
    inverse_columns: &[f32],
    inverse_row: f32,
    row: &mut [f32],
) {
    let width = row.len() / SLOTS;
    match radius {
        1 if width > 2 => window_means_of::<SLOTS, 1>(sums, inverse_columns, inverse_row, row),
        2 if width > 4 => window_means_of::<SLOTS, 2>(sums, inverse_columns, inverse_row, row),
        3 if width > 6 => window_means_of::<SLOTS, 3>(sums, inverse_columns, inverse_row, row),
        _ => {
            let row_len = row.len();
            row.copy_from_slice(sums);
            for k in 1..=radius.min(width - 1) {
                let shift = k * SLOTS;
                for (o, s) in row[..row_len - shift].iter_mut().zip(&sums[shift..]) {
                    *o += s;
                }
                for (o, s) in row[shift..].iter_mut().zip(&sums[..row_len - shift]) {
                    *o += s;
                }
            }
            for (o, inverse) in row.iter_mut().zip(inverse_columns) {
                *o *= inverse * inverse_row;
            }
        }
    }
}

/// Values per step of [`window_means_of`]: one AVX2 vector.
const LANES: usize = 8;

/// [`window_means`] for radius `R` on a row wider than the window.
fn window_means_of<const SLOTS: usize, const R: usize>(
    sums: &[f32],
    inverse_columns: &[f32],
    inverse_row: f32,
    row: &mut [f32],
) {
    let row_len = row.len();
    let reach = R * SLOTS;
    // Away from the ends every window is whole: the shifted values at constant offsets,
    // eight at a time (fixed-size arrays: one bounds check per eight values, and the lanes
    // become one vector operation).
    let inner = row_len - 2 * reach;
    let scale = |i: usize| inverse_columns[reach + i] * inverse_row;
    let out = &mut row[reach..reach + inner];
    let lanes = inner / LANES * LANES;
    for (chunk, o) in out[..lanes]
        .as_chunks_mut::<LANES>()
        .0
        .iter_mut()
        .enumerate()
    {
        let i = chunk * LANES;
        // One bounds check per chunk: the 2R+1 shifted loads are at constant offsets.
        let window = &sums[i..i + 2 * reach + LANES];
        let mut sum = [0.0f32; LANES];
        for k in 0..=2 * R {
            let shifted = &window[k * SLOTS..k * SLOTS + LANES];
            for (s, v) in sum.iter_mut().zip(shifted) {
                *s += v;
            }
        }
        let inverse: &[f32; LANES] = inverse_columns[reach + i..][..LANES].try_into().unwrap();
        for ((o, s), inverse) in o.iter_mut().zip(sum).zip(inverse) {
            *o = s * (inverse * inverse_row);
        }
    }
    for i in lanes..inner {
        let sum: f32 = (0..=2 * R).map(|k| sums[i + k * SLOTS]).sum();
        out[i] = sum * scale(i);
    }
    // The R pixels at each end, whose windows are clipped.
    let width = row_len / SLOTS;
    for x in (0..R).chain(width - R..width) {
        let (first, end) = (x.saturating_sub(R), (x + R + 1).min(width));
        for c in 0..SLOTS {
            let sum: f32 = (first..end).map(|xx| sums[xx * SLOTS + c]).sum();
            let i = x * SLOTS + c;
            row[i] = sum * (inverse_columns[i] * inverse_row);
        }
    }
}

/// The plain definition [`box_mean`] is tested against: every window summed anew.
pub fn box_mean_reference(
    data: &[f32],
    width: usize,
    height: usize,
    slots: usize,
    radius: usize,
) -> Vec<f32> {
    let mut out = vec![0.0; width * height * slots];
    for y in 0..height {
        for x in 0..width {
            for c in 0..slots {
                let (mut sum, mut count) = (0.0f64, 0);
                for yy in y.saturating_sub(radius)..(y + radius + 1).min(height) {
                    for xx in x.saturating_sub(radius)..(x + radius + 1).min(width) {
                        sum += data[(yy * width + xx) * slots + c] as f64;
                        count += 1;
                    }
                }
                out[(y * width + x) * slots + c] = (sum / count as f64) as f32;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(len: usize) -> Vec<f32> {
        (0..len).map(|i| ((i * 37) % 17) as f32 * 0.25).collect()
    }

    #[test]
    fn matches_the_reference_for_every_slot_count_and_radius() {
        let mut scratch = BoxScratch::default();
        for (width, height) in [(11, 6), (1, 5), (7, 1), (3, 3), (40, 9)] {
            for radius in [0, 1, 2, 3, 5] {
                let source = pattern(width * height * 5);
                let mut one = source[..width * height].to_vec();
                box_mean::<1>(&mut one, width, height, radius, &mut scratch);
                let mut five = source.clone();
                box_mean::<5>(&mut five, width, height, radius, &mut scratch);
                for (fast, slow) in [
                    (one, box_mean_reference(&source, width, height, 1, radius)),
                    (five, box_mean_reference(&source, width, height, 5, radius)),
                ] {
                    for (a, b) in fast.iter().zip(&slow) {
                        assert!((a - b).abs() < 1e-4, "{width}x{height} r{radius}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_constant_stays_constant_including_borders() {
        let mut data = vec![0.3f32; 9 * 7 * 2];
        box_mean::<2>(&mut data, 9, 7, 3, &mut BoxScratch::default());
        assert!(data.iter().all(|v| (v - 0.3).abs() < 1e-6));
    }
}
