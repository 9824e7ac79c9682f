//! The one box filter of the crate: the mean over a (2r+1)^2 window of interleaved f32
//! maps, windows clipped at the borders and normalised by the number of samples inside
//! (borders are not darkened). The guided filter uses it on single maps, the blur on
//! premultiplied colour + weight (where only ratios matter, so the normalisation cancels).

/// Reusable buffers of [`box_mean`], kept by the caller so that no frame allocates.
#[derive(Debug, Default, Clone)]
pub struct BoxScratch {
    copy: Vec<f32>,
    row: Vec<f32>,
    inverse_counts: Vec<f32>,
}

/// `1 / samples` of each clipped window along an axis of `len` samples.
fn inverse_counts(out: &mut Vec<f32>, len: usize, radius: usize) {
    out.clear();
    out.extend((0..len).map(|i| {
        let first = i.saturating_sub(radius);
        let last = (i + radius).min(len - 1);
        1.0 / (last - first + 1) as f32
    }));
}

/// In place: every value becomes the mean of its window. `data` holds `width * height`
/// pixels of `SLOTS` interleaved values; `SLOTS` is a constant so that the per-slot loops
/// unroll and the column pass vectorises.
pub fn box_mean<const SLOTS: usize>(
    data: &mut [f32],
    width: usize,
    height: usize,
    radius: usize,
    scratch: &mut BoxScratch,
) {
    let row_len = width * SLOTS;
    assert!(data.len() >= row_len * height, "map too short");
    if width == 0 || height == 0 {
        return;
    }
    // Along rows: running sums, the window leaves the left and enters on the right.
    inverse_counts(&mut scratch.inverse_counts, width, radius);
    scratch.row.resize(row_len, 0.0);
    for row in data[..row_len * height].chunks_exact_mut(row_len) {
        let out = &mut scratch.row;
        let mut sums = [0.0f32; SLOTS];
        for x in 0..=radius.min(width - 1) {
            for c in 0..SLOTS {
                sums[c] += row[x * SLOTS + c];
            }
        }
        for x in 0..width {
            let inverse = scratch.inverse_counts[x];
            for c in 0..SLOTS {
                out[x * SLOTS + c] = sums[c] * inverse;
            }
            if x + radius + 1 < width {
                let add = (x + radius + 1) * SLOTS;
                for c in 0..SLOTS {
                    sums[c] += row[add + c];
                }
            }
            if x >= radius {
                let remove = (x - radius) * SLOTS;
                for c in 0..SLOTS {
                    sums[c] -= row[remove + c];
                }
            }
        }
        row.copy_from_slice(out);
    }
    // Along columns: one running sum per value of a whole row at once (contiguous, so the
    // loops vectorise). The output overwrites rows later windows still subtract: read a copy.
    inverse_counts(&mut scratch.inverse_counts, height, radius);
    scratch.copy.clear();
    scratch.copy.extend_from_slice(&data[..row_len * height]);
    let source = &scratch.copy;
    let sums = &mut scratch.row;
    sums.fill(0.0);
    for y in 0..=radius.min(height - 1) {
        for (s, v) in sums.iter_mut().zip(&source[y * row_len..][..row_len]) {
            *s += v;
        }
    }
    for y in 0..height {
        let inverse = scratch.inverse_counts[y];
        for (o, s) in data[y * row_len..][..row_len].iter_mut().zip(sums.iter()) {
            *o = s * inverse;
        }
        if y + radius + 1 < height {
            let add = &source[(y + radius + 1) * row_len..][..row_len];
            for (s, v) in sums.iter_mut().zip(add) {
                *s += v;
            }
        }
        if y >= radius {
            let remove = &source[(y - radius) * row_len..][..row_len];
            for (s, v) in sums.iter_mut().zip(remove) {
                *s -= v;
            }
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
        for (width, height) in [(11, 6), (1, 5), (7, 1), (3, 3)] {
            for radius in [0, 1, 2, 5] {
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
