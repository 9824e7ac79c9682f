//! Fix-ups for the fragmented MP4 output of GStreamer 1.22's `mp4mux`. No GStreamer types.
//!
//! - It writes the fields of the Opus sample entry's `dOps` box little-endian (ISO/IEC
//!   14496-12 and the Opus-in-ISOBMFF spec say big-endian). ffmpeg then reads a pre-skip of
//!   14337 samples instead of 312 and drops the first 0.3 s of audio, shifting it against the
//!   video: [`fix_opus_specific_box`].
//! - In fragmented mode it starts every track's decode time (`tfdt`) at 0, whenever the
//!   track's first sample is: audio that starts 0.5 s after the video, or video whose first
//!   frame is shown after its decode time (B-frames), ends up out of sync by as much. The
//!   recorder knows where each track starts and adds it back: [`tracks`] reads the tracks of
//!   the `moov`, [`shift_decode_times`] moves a `moof`'s `tfdt`.

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

/// A track as the `moov` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Track {
    pub id: u32,
    /// Units per second of its times.
    pub timescale: u32,
    /// `vide`, `soun`...
    pub handler: [u8; 4],
}

/// The top-level or child boxes in `data`: (type, payload range, whole box range).
fn boxes(data: &[u8]) -> impl Iterator<Item = ([u8; 4], std::ops::Range<usize>)> + '_ {
    let mut offset = 0;
    std::iter::from_fn(move || {
        let header = data.get(offset..offset + 8)?;
        let size = u32::from_be_bytes(header[..4].try_into().unwrap()) as u64;
        let kind: [u8; 4] = header[4..8].try_into().unwrap();
        let (header_len, size) = match size {
            1 => (
                16,
                u64::from_be_bytes(data.get(offset + 8..offset + 16)?.try_into().unwrap()),
            ),
            0 => (8, (data.len() - offset) as u64),
            size => (8, size),
        };
        let end = offset.checked_add(usize::try_from(size).ok()?)?;
        if size < header_len as u64 || end > data.len() {
            return None;
        }
        let payload = offset + header_len..end;
        offset = end;
        Some((kind, payload))
    })
}

fn child<'a>(data: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    boxes(data)
        .find(|(k, _)| k == kind)
        .map(|(_, payload)| &data[payload])
}

/// The tracks of the `moov` box in `data` (a buffer of top-level boxes), in file order.
pub fn tracks(data: &[u8]) -> Option<Vec<Track>> {
    let moov = child(data, b"moov")?;
    let mut tracks = Vec::new();
    for (kind, payload) in boxes(moov) {
        if &kind != b"trak" {
            continue;
        }
        let trak = &moov[payload];
        let tkhd = child(trak, b"tkhd")?;
        let id_at = if tkhd.first() == Some(&1) { 20 } else { 12 };
        let id = u32::from_be_bytes(tkhd.get(id_at..id_at + 4)?.try_into().ok()?);
        let mdia = child(trak, b"mdia")?;
        let mdhd = child(mdia, b"mdhd")?;
        let scale_at = if mdhd.first() == Some(&1) { 20 } else { 12 };
        let timescale = u32::from_be_bytes(mdhd.get(scale_at..scale_at + 4)?.try_into().ok()?);
        let hdlr = child(mdia, b"hdlr")?;
        let handler = hdlr.get(8..12)?.try_into().ok()?;
        tracks.push(Track {
            id,
            timescale,
            handler,
        });
    }
    Some(tracks)
}

/// Adds `shift(track_id)` (in the track's timescale) to the decode time of every track
/// fragment of the `moof` box(es) in `data`. Returns how many were moved; a fragment whose
/// 32-bit time would overflow is left as it is.
pub fn shift_decode_times(data: &mut [u8], shift: impl Fn(u32) -> u64) -> usize {
    let mut moved = 0;
    let moofs: Vec<_> = boxes(data)
        .filter(|(kind, _)| kind == b"moof")
        .map(|(_, payload)| payload)
        .collect();
    for moof in moofs {
        let trafs: Vec<_> = boxes(&data[moof.clone()])
            .filter(|(kind, _)| kind == b"traf")
            .map(|(_, payload)| payload.start + moof.start..payload.end + moof.start)
            .collect();
        for traf in trafs {
            let children: Vec<_> = boxes(&data[traf.clone()])
                .map(|(kind, payload)| (kind, payload.start + traf.start..payload.end + traf.start))
                .collect();
            let Some(track_id) = children
                .iter()
                .find(|(kind, _)| kind == b"tfhd")
                .and_then(|(_, payload)| data.get(payload.start + 4..payload.start + 8))
                .map(|id| u32::from_be_bytes(id.try_into().unwrap()))
            else {
                continue;
            };
            let Some((_, tfdt)) = children.iter().find(|(kind, _)| kind == b"tfdt") else {
                continue;
            };
            let offset = shift(track_id);
            if offset == 0 {
                continue;
            }
            let value = &mut data[tfdt.start + 4..tfdt.end];
            match value.len() {
                8 => {
                    let time = u64::from_be_bytes((&*value).try_into().unwrap());
                    value.copy_from_slice(&time.saturating_add(offset).to_be_bytes());
                    moved += 1;
                }
                4 => {
                    let time = u32::from_be_bytes((&*value).try_into().unwrap()) as u64;
                    if let Ok(shifted) = u32::try_from(time + offset) {
                        value.copy_from_slice(&shifted.to_be_bytes());
                        moved += 1;
                    }
                }
                _ => (),
            }
        }
    }
    moved
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mp4_box(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut out = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(payload);
        out
    }

    fn trak(id: u32, timescale: u32, handler: &[u8; 4]) -> Vec<u8> {
        let mut tkhd = vec![0u8; 12];
        tkhd.extend_from_slice(&id.to_be_bytes());
        tkhd.extend_from_slice(&[0u8; 64]);
        let mut mdhd = vec![0u8; 12];
        mdhd.extend_from_slice(&timescale.to_be_bytes());
        mdhd.extend_from_slice(&[0u8; 8]);
        let mut hdlr = vec![0u8; 8];
        hdlr.extend_from_slice(handler);
        hdlr.extend_from_slice(&[0u8; 13]);
        let mdia = [mp4_box(b"mdhd", &mdhd), mp4_box(b"hdlr", &hdlr)].concat();
        mp4_box(
            b"trak",
            &[mp4_box(b"tkhd", &tkhd), mp4_box(b"mdia", &mdia)].concat(),
        )
    }

    fn moof(track_id: u32, tfdt_version: u8, time: u64) -> Vec<u8> {
        let mut tfhd = vec![0u8; 4];
        tfhd.extend_from_slice(&track_id.to_be_bytes());
        let mut tfdt = vec![tfdt_version, 0, 0, 0];
        if tfdt_version == 1 {
            tfdt.extend_from_slice(&time.to_be_bytes());
        } else {
            tfdt.extend_from_slice(&(time as u32).to_be_bytes());
        }
        let traf = [
            mp4_box(b"tfhd", &tfhd),
            mp4_box(b"tfdt", &tfdt),
            mp4_box(b"trun", &[0u8; 8]),
        ]
        .concat();
        mp4_box(
            b"moof",
            &[mp4_box(b"mfhd", &[0u8; 8]), mp4_box(b"traf", &traf)].concat(),
        )
    }

    #[test]
    fn reads_the_tracks_of_the_moov() {
        let moov = mp4_box(
            b"moov",
            &[trak(1, 90000, b"vide"), trak(2, 48000, b"soun")].concat(),
        );
        let data = [mp4_box(b"ftyp", b"iso6"), moov].concat();
        let tracks = tracks(&data).unwrap();
        assert_eq!(
            tracks,
            vec![
                Track {
                    id: 1,
                    timescale: 90000,
                    handler: *b"vide"
                },
                Track {
                    id: 2,
                    timescale: 48000,
                    handler: *b"soun"
                }
            ]
        );
    }

    #[test]
    fn shifts_decode_times_of_the_named_track_only() {
        let mut data = [moof(2, 0, 3000), moof(1, 1, 5), mp4_box(b"mdat", b"xx")].concat();
        let moved = shift_decode_times(&mut data, |id| if id == 2 { 24000 } else { 0 });
        assert_eq!(moved, 1);
        let check = data.clone();
        assert_eq!(shift_decode_times(&mut data, |_| 0), 0);
        assert_eq!(data, check);
        // The audio fragment's time is now 27000.
        let at = check.windows(4).position(|w| w == b"tfdt").unwrap() + 8;
        assert_eq!(
            u32::from_be_bytes(check[at..at + 4].try_into().unwrap()),
            27000
        );
        // A 32-bit time that would overflow stays.
        let mut data = moof(1, 0, u32::MAX as u64 - 1);
        assert_eq!(shift_decode_times(&mut data, |_| 10), 0);
    }

    #[test]
    fn truncated_boxes_are_ignored() {
        let mut data = moof(1, 1, 5);
        data.truncate(30);
        assert_eq!(shift_decode_times(&mut data, |_| 10), 0);
        assert!(tracks(&data).is_none());
    }

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
