//! A fix-up for MP4 output of GStreamer 1.22's `mp4mux`, which writes the fields of the Opus
//! sample entry's `dOps` box little-endian (ISO/IEC 14496-12 and the Opus-in-ISOBMFF spec
//! say big-endian). ffmpeg then reads a pre-skip of 14337 samples instead of 312 and drops
//! the first 0.3 s of audio, shifting it against the video. No GStreamer types.

/// Sample rates an Opus stream can declare as its input rate.
const PLAUSIBLE_RATES: [u32; 9] = [8000, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 96000];

/// Byte-swaps the `dOps` fields in `data` if they were written little-endian (recognised by
/// the input sample rate reading as a plausible rate only when taken little-endian). Returns
/// whether anything was changed; output of a fixed muxer is left alone.
pub fn fix_opus_specific_box(data: &mut [u8]) -> bool {
    let Some(at) = data.windows(4).position(|w| w == b"dOps") else {
        return false;
    };
    // type(4) version(1) channels(1) pre_skip(2) input_rate(4) gain(2) family(1)
    let fields = at + 4;
    if data.len() < fields + 11 || data[fields] != 0 {
        return false;
    }
    let rate = &data[fields + 4..fields + 8];
    let big = u32::from_be_bytes(rate.try_into().unwrap());
    let little = u32::from_le_bytes(rate.try_into().unwrap());
    if PLAUSIBLE_RATES.contains(&big) || !PLAUSIBLE_RATES.contains(&little) {
        return false;
    }
    data[fields + 2..fields + 4].reverse();
    data[fields + 4..fields + 8].reverse();
    data[fields + 8..fields + 10].reverse();
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swaps_little_endian_fields() {
        // As written by mp4mux 1.22: pre-skip 312, rate 48000, little-endian.
        let mut data =
            b"....\x00\x00\x00\x13dOps\x00\x01\x38\x01\x80\xbb\x00\x00\x00\x00\x00....".to_vec();
        assert!(fix_opus_specific_box(&mut data));
        // "...." size(4) "dOps" version(1) channels(1): pre-skip at 14, input rate at 16.
        assert_eq!(u16::from_be_bytes([data[14], data[15]]), 312);
        assert_eq!(u32::from_be_bytes(data[16..20].try_into().unwrap()), 48000);
        // A second pass (or a fixed muxer) changes nothing.
        assert!(!fix_opus_specific_box(&mut data));
    }

    #[test]
    fn ignores_data_without_the_box() {
        let mut data = b"moov....trak....".to_vec();
        assert!(!fix_opus_specific_box(&mut data));
    }
}
