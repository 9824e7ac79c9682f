//! Element tests with gst-check's Harness on real frames (carphone, from tests/data/parity).
//! Regions: "person" and "background" are where the reference runtime's mask for that frame
//! is confidently 1 or 0, eroded so that edge pixels are in neither.

use std::path::{Path, PathBuf};

use gst::glib;
use gst::prelude::*;
use gst_check::Harness;
use gst_video::prelude::*;
use gstbackgroundfx::layout::{PixelLayout, plane_size};

fn init() {
    use std::sync::Once;
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstbackgroundfx::plugin_register_static().unwrap();
    });
}

fn test_data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data")
        .join(name)
}

const FORMATS: [&str; 10] = [
    "RGBA", "BGRA", "ARGB", "ABGR", "RGBx", "BGRx", "xRGB", "xBGR", "I420", "NV12",
];

#[derive(Clone, Copy, PartialEq)]
enum Region {
    Person,
    Background,
    Edge,
}

/// A real frame (RGB) at `scale` times 256x144 with its known regions.
struct TestFrame {
    width: usize,
    height: usize,
    rgb: Vec<[u8; 3]>,
    regions: Vec<Region>,
}

fn test_frame(name: &str, scale: usize) -> TestFrame {
    let image = image::open(test_data(&format!("parity/{name}_256x144.png")))
        .unwrap()
        .to_rgb8();
    let mask = image::open(test_data(&format!("parity/{name}_256x144_landscape.png")))
        .unwrap()
        .to_luma16();
    let (w, h) = (256usize, 144usize);
    let confident = |x: usize, y: usize, person: bool| {
        let erosion = 6i64;
        (-erosion..=erosion).all(|dy| {
            (-erosion..=erosion).all(|dx| {
                let xx = (x as i64 + dx).clamp(0, w as i64 - 1) as u32;
                let yy = (y as i64 + dy).clamp(0, h as i64 - 1) as u32;
                let p = mask.get_pixel(xx, yy).0[0] as f32 / 65535.0;
                if person { p > 0.98 } else { p < 0.02 }
            })
        })
    };
    let mut frame = TestFrame {
        width: w * scale,
        height: h * scale,
        rgb: Vec::new(),
        regions: Vec::new(),
    };
    for y in 0..h * scale {
        for x in 0..w * scale {
            let (sx, sy) = (x / scale, y / scale);
            frame.rgb.push(image.get_pixel(sx as u32, sy as u32).0);
            frame.regions.push(if confident(sx, sy, true) {
                Region::Person
            } else if confident(sx, sy, false) {
                Region::Background
            } else {
                Region::Edge
            });
        }
    }
    let count = |r| frame.regions.iter().filter(|x| **x == r).count();
    assert!(count(Region::Person) > frame.rgb.len() / 10);
    assert!(count(Region::Background) > frame.rgb.len() / 20);
    frame
}

fn layout_of(format: &str) -> PixelLayout {
    let packed = |red, green, blue, alpha| PixelLayout::Packed {
        red,
        green,
        blue,
        alpha,
    };
    match format {
        "RGBA" => packed(0, 1, 2, Some(3)),
        "BGRA" => packed(2, 1, 0, Some(3)),
        "ARGB" => packed(1, 2, 3, Some(0)),
        "ABGR" => packed(3, 2, 1, Some(0)),
        "RGBx" => packed(0, 1, 2, None),
        "BGRx" => packed(2, 1, 0, None),
        "xRGB" => packed(1, 2, 3, None),
        "xBGR" => packed(3, 2, 1, None),
        "I420" => PixelLayout::I420,
        "NV12" => PixelLayout::Nv12,
        other => panic!("{other}"),
    }
}

fn caps(format: &str, width: usize, height: usize) -> gst::Caps {
    gst_video::VideoCapsBuilder::new()
        .format(format.parse::<gst_video::VideoFormat>().unwrap())
        .width(width as i32)
        .height(height as i32)
        .framerate(gst::Fraction::new(30, 1))
        .build()
}

/// Packs the RGB frame into `format` (the element's own colour conversions are used for
/// YUV so that expected values are exact).
fn make_buffer(format: &str, frame: &TestFrame, pts: u64) -> gst::Buffer {
    let layout = layout_of(format);
    let info = gst_video::VideoInfo::from_caps(&caps(format, frame.width, frame.height)).unwrap();
    let mut buffer = gst::Buffer::with_size(info.size()).unwrap();
    {
        let buffer = buffer.get_mut().unwrap();
        buffer.set_pts(gst::ClockTime::from_mseconds(pts * 33));
        let mut video = gst_video::VideoFrameRef::from_buffer_ref_writable(buffer, &info).unwrap();
        for (index, shape) in layout.planes().iter().enumerate() {
            let stride = video.plane_stride()[index] as usize;
            let (pw, ph) = plane_size(*shape, frame.width, frame.height);
            let data = video.plane_data_mut(index as u32).unwrap();
            for y in 0..ph {
                for x in 0..pw {
                    let (fx, fy) = (x * shape.subsampling, y * shape.subsampling);
                    let rgb = frame.rgb[fy * frame.width + fx];
                    let values = layout.colour_values(rgb)[index];
                    let at = y * stride + x * shape.channels;
                    data[at..at + shape.channels].copy_from_slice(&values[..shape.channels]);
                }
            }
        }
    }
    buffer
}

/// For every plane byte of the output: (region of the pixel, input byte, output byte,
/// plane index, channel).
fn compare(
    format: &str,
    frame: &TestFrame,
    input: &gst::Buffer,
    output: &gst::Buffer,
) -> Vec<(Region, u8, u8, usize, usize)> {
    let layout = layout_of(format);
    let info = gst_video::VideoInfo::from_caps(&caps(format, frame.width, frame.height)).unwrap();
    let a = gst_video::VideoFrameRef::from_buffer_ref_readable(input.as_ref(), &info).unwrap();
    let b = gst_video::VideoFrameRef::from_buffer_ref_readable(output.as_ref(), &info).unwrap();
    let mut result = Vec::new();
    for (index, shape) in layout.planes().iter().enumerate() {
        let stride = a.plane_stride()[index] as usize;
        let (pw, ph) = plane_size(*shape, frame.width, frame.height);
        let (da, db) = (
            a.plane_data(index as u32).unwrap(),
            b.plane_data(index as u32).unwrap(),
        );
        for y in 0..ph {
            for x in 0..pw {
                let (fx, fy) = (x * shape.subsampling, y * shape.subsampling);
                let region = frame.regions[fy * frame.width + fx];
                for c in 0..shape.channels {
                    let at = y * stride + x * shape.channels + c;
                    result.push((region, da[at], db[at], index, c));
                }
            }
        }
    }
    result
}

/// A harness around a backgroundfx configured before it starts (a `model` set on a
/// running element is loaded in the background while the old one goes on).
fn harness(properties: &[(&str, &dyn ToValue)]) -> Harness {
    init();
    let element = gst::ElementFactory::make("backgroundfx").build().unwrap();
    for (name, value) in properties {
        let value = value.to_value();
        match value.get::<&str>() {
            // Enum properties are given by nick, as on a gst-launch line.
            Ok(nick)
                if element
                    .find_property(name)
                    .unwrap()
                    .value_type()
                    .is_a(glib::Type::ENUM) =>
            {
                element.set_property_from_str(name, nick)
            }
            _ => element.set_property_from_value(name, &value),
        }
    }
    let mut h = Harness::with_element(&element, Some("sink"), Some("src"));
    h.play();
    h
}

fn run_one(h: &mut Harness, format: &str, frame: &TestFrame) -> (gst::Buffer, gst::Buffer) {
    h.set_src_caps(caps(format, frame.width, frame.height));
    let input = make_buffer(format, frame, 0);
    let output = h.push_and_pull(input.clone()).unwrap();
    (input, output)
}

fn is_alpha_byte(layout: PixelLayout, plane: usize, channel: usize) -> bool {
    matches!(layout, PixelLayout::Packed { red, green, blue, .. }
        if plane == 0 && channel != red && channel != green && channel != blue)
}

#[test]
fn solid_background_is_exact_and_person_untouched_in_every_format() {
    let frame = test_frame("carphone060", 2);
    for format in FORMATS {
        let mut h = harness(&[("effect", &"solid"), ("color", &0xff20_40c0u32)]);
        let (input, output) = run_one(&mut h, format, &frame);
        let layout = layout_of(format);
        let expected = layout.colour_values([0x20, 0x40, 0xc0]);
        let (mut background, mut person) = (0, 0);
        for (region, before, after, plane, channel) in compare(format, &frame, &input, &output) {
            match region {
                Region::Background => {
                    background += 1;
                    if !is_alpha_byte(layout, plane, channel) {
                        assert_eq!(after, expected[plane][channel], "{format} plane {plane}");
                    }
                }
                Region::Person => {
                    person += 1;
                    assert!(
                        (after as i32 - before as i32).abs() <= 2,
                        "{format}: person byte {before} -> {after}"
                    );
                }
                Region::Edge => {}
            }
        }
        assert!(background > 1000 && person > 1000, "{format}");
    }
}

#[test]
fn blur_changes_the_background_and_keeps_the_person() {
    let frame = test_frame("carphone000", 2);
    for format in ["RGBA", "I420", "NV12"] {
        let mut h = harness(&[("effect", &"blur"), ("blur-strength", &60u32)]);
        let (input, output) = run_one(&mut h, format, &frame);
        let (mut changed, mut background, mut person_error) = (0u64, 0u64, 0i32);
        for (region, before, after, _, _) in compare(format, &frame, &input, &output) {
            match region {
                Region::Background => {
                    background += 1;
                    changed += u64::from(before.abs_diff(after) > 2);
                }
                Region::Person => person_error = person_error.max(before.abs_diff(after) as i32),
                Region::Edge => {}
            }
        }
        // The carphone background (car window, seat) has texture: a real blur changes a
        // large share of its pixels.
        assert!(
            changed * 4 > background,
            "{format}: {changed} of {background} changed"
        );
        assert!(
            person_error <= 2,
            "{format}: person changed by {person_error}"
        );
    }
}

#[test]
fn picture_is_placed_per_fit_mode() {
    // 100x100 picture: left half red, right half blue, on a 512x288 frame.
    let dir = std::env::temp_dir().join(format!("backgroundfx-picture-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("halves.png");
    image::RgbImage::from_fn(100, 100, |x, _| {
        if x < 50 {
            image::Rgb([255, 0, 0])
        } else {
            image::Rgb([0, 0, 255])
        }
    })
    .save(&path)
    .unwrap();
    let frame = test_frame("carphone060", 2);
    let expected_colour = |fit: &str, x: usize| -> [u8; 3] {
        match fit {
            // cover: 512x512 centred, left half red up to x = 256
            "cover" | "stretch" => {
                if x < 256 {
                    [255, 0, 0]
                } else {
                    [0, 0, 255]
                }
            }
            // contain: 288x288 centred at x 112..400, letterbox colour outside
            "contain" => {
                if !(112..400).contains(&x) {
                    [0, 255, 0]
                } else if x < 256 {
                    [255, 0, 0]
                } else {
                    [0, 0, 255]
                }
            }
            _ => unreachable!(),
        }
    };
    for fit in ["cover", "contain", "stretch"] {
        let mut h = harness(&[
            ("effect", &"picture"),
            ("picture", &path.to_str().unwrap()),
            ("picture-fit", &fit),
            ("color", &0xff00_ff00u32),
        ]);
        let (_, output) = run_one(&mut h, "RGBx", &frame);
        let map = output.map_readable().unwrap();
        let mut checked = 0;
        for y in 0..frame.height {
            for x in 0..frame.width {
                // Skip the resampling seams of the picture itself.
                let near_seam = [112usize, 256, 400].iter().any(|s| x.abs_diff(*s) < 8);
                if frame.regions[y * frame.width + x] != Region::Background || near_seam {
                    continue;
                }
                let at = (y * frame.width + x) * 4;
                assert_eq!(
                    &map[at..at + 3],
                    &expected_colour(fit, x),
                    "{fit} at {x},{y}"
                );
                checked += 1;
            }
        }
        assert!(checked > 1000, "{fit}: {checked}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn properties_change_mid_stream_without_restart() {
    let frame = test_frame("carphone060", 1);
    let mut h = harness(&[("effect", &"blur")]);
    h.set_src_caps(caps("RGBA", frame.width, frame.height));
    let element = h.element().unwrap();
    let input = make_buffer("RGBA", &frame, 0);
    let blurred = h.push_and_pull(input.clone()).unwrap();
    element.set_property_from_str("effect", "solid");
    element.set_property("color", 0xff00_0000u32);
    let solid = h.push_and_pull(input.clone()).unwrap();
    element.set_property_from_str("effect", "none");
    let untouched = h.push_and_pull(input.clone()).unwrap();
    let background_pixels = |buffer: &gst::Buffer| -> Vec<[u8; 3]> {
        let map = buffer.map_readable().unwrap();
        (0..frame.rgb.len())
            .filter(|i| frame.regions[*i] == Region::Background)
            .map(|i| [map[4 * i], map[4 * i + 1], map[4 * i + 2]])
            .collect()
    };
    assert!(background_pixels(&solid).iter().all(|p| *p == [0, 0, 0]));
    assert_ne!(background_pixels(&blurred), background_pixels(&input));
    assert_eq!(
        untouched.map_readable().unwrap().as_slice(),
        input.map_readable().unwrap().as_slice()
    );
}

/// Automatic inference on a still picture runs the model once per max-inference-interval
/// frames, a changed picture at once; the `stats` property counts it all.
#[test]
fn automatic_inference_runs_the_model_when_the_picture_changes() {
    let still = test_frame("carphone000", 1);
    let other = test_frame("astronaut", 1);
    let mut h = harness(&[
        ("effect", &"solid"),
        ("inference-interval", &0u32),
        ("max-inference-interval", &5u32),
    ]);
    h.set_src_caps(caps("RGBA", still.width, still.height));
    let stats = |h: &Harness| -> (u64, u64) {
        let stats = h.element().unwrap().property::<gst::Structure>("stats");
        (
            stats.get::<u64>("inferences").unwrap(),
            stats.get::<u64>("reused-masks").unwrap(),
        )
    };
    for i in 0..7 {
        h.push_and_pull(make_buffer("RGBA", &still, i)).unwrap();
    }
    // Frame 0 and frame 5 (the fifth reuse is not allowed).
    assert_eq!(stats(&h), (2, 5));
    h.push_and_pull(make_buffer("RGBA", &other, 7)).unwrap();
    assert_eq!(stats(&h), (3, 5));
    let stats = h.element().unwrap().property::<gst::Structure>("stats");
    assert_eq!(stats.get::<u64>("frames").unwrap(), 8);
    for stage in [
        "model-input-ms",
        "inference-ms",
        "refine-ms",
        "composite-ms",
    ] {
        assert!(stats.get::<f64>(stage).unwrap() > 0.0, "{stage}: {stats}");
    }
}

#[test]
fn still_person_does_not_flicker() {
    let frame = test_frame("carphone000", 1);
    for interval in [1u32, 3, 0] {
        let mut h = harness(&[("effect", &"solid"), ("inference-interval", &interval)]);
        h.set_src_caps(caps("RGBA", frame.width, frame.height));
        let outputs: Vec<Vec<u8>> = (0..6)
            .map(|i| {
                let buffer = h.push_and_pull(make_buffer("RGBA", &frame, i)).unwrap();
                buffer.map_readable().unwrap().to_vec()
            })
            .collect();
        for output in &outputs[1..] {
            let differing = output
                .iter()
                .zip(&outputs[0])
                .filter(|(a, b)| a.abs_diff(**b) > 2)
                .count();
            assert!(
                differing < output.len() / 1000,
                "interval {interval}: {differing} bytes flicker"
            );
        }
    }
}

#[test]
fn caps_change_mid_stream_is_handled() {
    let big = test_frame("carphone060", 2);
    let small = test_frame("carphone060", 1);
    let mut h = harness(&[("effect", &"solid"), ("color", &0xff00_0000u32)]);
    for (format, frame) in [
        ("I420", &big),
        ("I420", &small),
        ("RGBA", &small),
        ("NV12", &big),
    ] {
        let (input, output) = run_one(&mut h, format, frame);
        assert_eq!(output.size(), input.size(), "{format}");
        let expected = layout_of(format).colour_values([0, 0, 0]);
        for (region, _, after, plane, channel) in compare(format, frame, &input, &output) {
            if region == Region::Background && !is_alpha_byte(layout_of(format), plane, channel) {
                assert_eq!(after, expected[plane][channel]);
            }
        }
    }
}

#[test]
fn alpha_output_makes_the_background_transparent() {
    let frame = test_frame("carphone060", 1);
    let mut h = harness(&[("effect", &"none"), ("alpha-output", &true)]);
    let (input, output) = run_one(&mut h, "BGRA", &frame);
    for (region, before, after, _, channel) in compare("BGRA", &frame, &input, &output) {
        match (region, channel) {
            (Region::Person, 3) => assert_eq!(after, 255),
            (Region::Background, 3) => assert_eq!(after, 0),
            (Region::Edge, _) => {}
            _ => assert_eq!(after, before, "colour untouched with effect=none"),
        }
    }
}

fn broken_model() -> PathBuf {
    let path =
        std::env::temp_dir().join(format!("backgroundfx-broken-{}.onnx", std::process::id()));
    let bytes =
        std::fs::read(test_data("../../models/selfie_segmentation_landscape.onnx")).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 3]).unwrap();
    path
}

#[test]
fn broken_model_warns_and_never_shows_the_room() {
    init();
    let model = broken_model();
    let frame = test_frame("carphone060", 1);
    let element = gst::ElementFactory::make("backgroundfx")
        .property("model", model.to_str().unwrap())
        .property_from_str("effect", "solid")
        .property("color", 0xff00_0000u32)
        .build()
        .unwrap();
    let bus = gst::Bus::new();
    element.set_bus(Some(&bus));
    let mut h = Harness::with_element(&element, Some("sink"), Some("src"));
    h.play();
    let (input, output) = run_one(&mut h, "RGBx", &frame);
    let messages: Vec<gst::Message> = bus.iter().collect();
    assert!(
        !messages
            .iter()
            .any(|m| m.type_() == gst::MessageType::Error),
        "a degraded-but-safe stream is no error"
    );
    let warning = messages
        .iter()
        .find_map(|m| match m.view() {
            gst::MessageView::Warning(warning) => Some(warning.error().to_string()),
            _ => None,
        })
        .expect("a warning is posted");
    assert!(warning.contains(model.to_str().unwrap()), "{warning}");
    assert!(warning.contains("fail-closed"), "{warning}");
    let notice = messages
        .iter()
        .find_map(|m| match m.view() {
            gst::MessageView::Element(element) => element
                .structure()
                .filter(|s| s.name() == "backgroundfx-model-unavailable")
                .map(|s| s.to_owned()),
            _ => None,
        })
        .expect("an element message says the model is unavailable");
    assert!(notice.get::<bool>("fail-closed").unwrap());
    // Every pixel, person included, is replaced.
    for (_, _, after, _, channel) in compare("RGBx", &frame, &input, &output) {
        if channel != 3 {
            assert_eq!(after, 0);
        }
    }
    std::fs::remove_file(model).ok();
}

/// Found: with a missing model, a non-live pipeline never ended (an ERROR was posted during
/// preroll while the element went on).
#[test]
fn a_missing_model_does_not_hang_a_file_pipeline() {
    init();
    for fail_closed in [true, false] {
        let pipeline = gst::parse::launch(&format!(
            "videotestsrc num-buffers=30 ! video/x-raw,width=160,height=120 \
             ! backgroundfx model=/missing.onnx fail-closed={fail_closed} ! fakesink"
        ))
        .unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        let message = pipeline
            .bus()
            .unwrap()
            .timed_pop_filtered(
                gst::ClockTime::from_seconds(30),
                &[gst::MessageType::Eos, gst::MessageType::Error],
            )
            .expect("the pipeline ends");
        assert_eq!(message.type_(), gst::MessageType::Eos, "{message:?}");
        pipeline.set_state(gst::State::Null).unwrap();
    }
}

/// A `model` changed while streaming is loaded off the streaming thread: the frame that
/// notices the change still gets the old model's mask, later frames the new model's
/// outcome (here: broken, frames pass through as fail-closed=false asks).
#[test]
fn a_model_changed_while_playing_loads_in_the_background() {
    let frame = test_frame("carphone060", 1);
    let mut h = harness(&[("fail-closed", &false), ("effect", &"solid")]);
    let (input, output) = run_one(&mut h, "RGBA", &frame);
    assert_ne!(
        input.map_readable().unwrap().as_slice(),
        output.map_readable().unwrap().as_slice()
    );
    let model = broken_model();
    h.element()
        .unwrap()
        .set_property("model", model.to_str().unwrap());
    let (input, output) = run_one(&mut h, "RGBA", &frame);
    assert_ne!(
        input.map_readable().unwrap().as_slice(),
        output.map_readable().unwrap().as_slice(),
        "the old model goes on while the new one loads"
    );
    let passed_through = (0..200).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(10));
        let (input, output) = run_one(&mut h, "RGBA", &frame);
        input.map_readable().unwrap().as_slice() == output.map_readable().unwrap().as_slice()
    });
    assert!(passed_through, "the broken model replaced the old one");
    std::fs::remove_file(model).ok();
}

#[test]
fn broken_model_without_fail_closed_passes_frames_through() {
    init();
    let model = broken_model();
    let frame = test_frame("carphone060", 1);
    let mut h = harness(&[
        ("model", &model.to_str().unwrap()),
        ("fail-closed", &false),
        ("effect", &"solid"),
    ]);
    let (input, output) = run_one(&mut h, "RGBA", &frame);
    assert_eq!(
        input.map_readable().unwrap().as_slice(),
        output.map_readable().unwrap().as_slice()
    );
    std::fs::remove_file(model).ok();
}

#[test]
fn unreadable_picture_fails_the_state_change_with_its_name() {
    init();
    let element = gst::ElementFactory::make("backgroundfx")
        .property_from_str("effect", "picture")
        .property("picture", "/nonexistent/beach.jpg")
        .build()
        .unwrap();
    let bus = gst::Bus::new();
    element.set_bus(Some(&bus));
    assert!(element.set_state(gst::State::Paused).is_err());
    let message = bus.pop_filtered(&[gst::MessageType::Error]).unwrap();
    let gst::MessageView::Error(error) = message.view() else {
        unreachable!()
    };
    let text = error.error().to_string();
    assert!(
        text.contains("cannot read picture '/nonexistent/beach.jpg'"),
        "{text}"
    );
    element.set_state(gst::State::Null).unwrap();
}

#[test]
fn absurd_values_are_clamped() {
    init();
    let element = gst::ElementFactory::make("backgroundfx")
        .property("blur-strength", 100_000u32)
        .property("inference-interval", 1000u32)
        .property("max-inference-interval", 0u32)
        .property("threshold", 7.0f32)
        .build()
        .unwrap();
    assert_eq!(element.property::<u32>("blur-strength"), 100);
    assert_eq!(element.property::<u32>("inference-interval"), 30);
    assert_eq!(element.property::<u32>("max-inference-interval"), 1);
    assert_eq!(element.property::<f32>("threshold"), 1.0);
}

#[test]
fn unreadable_picture_while_playing_warns_once_and_keeps_the_old_one() {
    init();
    let dir = std::env::temp_dir().join(format!("backgroundfx-swap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("red.png");
    image::RgbImage::from_pixel(8, 8, image::Rgb([255, 0, 0]))
        .save(&path)
        .unwrap();
    let frame = test_frame("carphone060", 1);
    let mut h = Harness::new("backgroundfx");
    let element = h.element().unwrap();
    let bus = gst::Bus::new();
    element.set_bus(Some(&bus));
    element.set_property_from_str("effect", "picture");
    element.set_property("picture", path.to_str().unwrap());
    h.play();
    let (_, first) = run_one(&mut h, "RGBA", &frame);
    element.set_property("picture", "/nonexistent/new-background.png");
    let outputs: Vec<gst::Buffer> = (1..4)
        .map(|i| h.push_and_pull(make_buffer("RGBA", &frame, i)).unwrap())
        .collect();
    let warnings: Vec<String> = bus
        .iter_filtered(&[gst::MessageType::Warning])
        .map(|m| match m.view() {
            gst::MessageView::Warning(w) => w.error().to_string(),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("cannot read picture '/nonexistent/new-background.png'"));
    let background = |buffer: &gst::Buffer| -> Vec<u8> {
        let map = buffer.map_readable().unwrap();
        (0..frame.rgb.len())
            .filter(|i| frame.regions[*i] == Region::Background)
            .flat_map(|i| map[4 * i..4 * i + 3].to_vec())
            .collect()
    };
    for output in &outputs {
        assert_eq!(background(output), background(&first));
    }
    assert!(background(&first).chunks(3).all(|p| p == [255, 0, 0]));
    std::fs::remove_dir_all(&dir).ok();
}
