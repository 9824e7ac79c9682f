//! Records a call from a file or test sources through backgroundfx into recordmux, with a
//! scripted PCI pause/resume, and prints the recording's manifest:
//!
//!   cargo run --release --example record_call -- --input media/carphone.mp4 --audio tone \
//!       --pause-at 1.5 --resume-at 2.5 --output call.mp4
//!   cargo run --release --example record_call -- --seconds 10 --pause-at 3 --resume-at 5 \
//!       --mode mask --recipients-file keys/recipient.txt --signing-key keys/vcc.key --output call.mp4.age
//!
//! The pause/resume times are media times of the video entering recordmux: the signals are
//! emitted from a pad probe, exactly as an application would on a DTMF or IVR event.

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use clap::Parser;
use gst::prelude::*;

#[derive(Parser)]
struct Args {
    /// Media file with video (and audio, see --audio); default: 320x240 test sources.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Audio: `file` (the input's), `tone` (a test tone, for clips without audio) or `none`.
    #[arg(long, default_value = "file")]
    audio: String,
    /// Length of the test sources in seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u32,
    /// Media time (s) at which to pause.
    #[arg(long)]
    pause_at: Option<f64>,
    /// Media time (s) at which to resume.
    #[arg(long)]
    resume_at: Option<f64>,
    /// recordmux pause-mode: cut or mask.
    #[arg(long, default_value = "cut")]
    mode: String,
    /// backgroundfx effect: blur, solid, picture, none.
    #[arg(long, default_value = "blur")]
    effect: String,
    #[command(flatten)]
    recording: common::RecordingArgs,
    #[arg(long, default_value = "example-call")]
    call_id: String,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    gst::init()?;
    gstvcc::register()?;

    let manifest = args.recording.manifest();
    let sink = args.recording.sink();
    let (video, audio) = match &args.input {
        Some(input) => (
            format!(
                "filesrc location=\"{}\" ! decodebin name=input input. ! video/x-raw ! queue ! videoconvert",
                input.display()
            ),
            "input. ! audio/x-raw ! queue ! audioconvert".to_string(),
        ),
        None => (
            format!(
                "videotestsrc num-buffers={} pattern=smpte horizontal-speed=2 ! video/x-raw,width=320,height=240,framerate=30/1",
                args.seconds * 30
            ),
            format!(
                "audiotestsrc num-buffers={} samplesperbuffer=960 ! audio/x-raw,rate=48000",
                args.seconds * 50
            ),
        ),
    };
    let audio = match (args.audio.as_str(), args.input.is_some()) {
        ("none", _) => String::new(),
        ("tone", true) => format!(
            "audiotestsrc num-buffers={} samplesperbuffer=960 ! audio/x-raw,rate=48000 ! rec.audio_0",
            args.seconds * 50
        ),
        _ => format!("{audio} ! rec.audio_0"),
    };
    let description = format!(
        "recordmux name=rec pause-mode={} call-id=\"{}\" {} manifest-location=\"{}\" ! {sink} \
         {video} ! backgroundfx effect={} ! rec.video_0 {audio}",
        args.mode,
        args.call_id,
        args.recording.customer_property(),
        manifest.display(),
        args.effect
    );
    let pipeline = gst::parse::launch(&description)?
        .downcast::<gst::Pipeline>()
        .unwrap();
    let rec = pipeline.by_name("rec").unwrap();

    // The script: (media time, recording wanted), applied when the video reaches that time.
    let mut script: Vec<(gst::ClockTime, bool)> = [(args.pause_at, false), (args.resume_at, true)]
        .into_iter()
        .filter_map(|(at, recording)| Some((gst::ClockTime::from_seconds_f64(at?), recording)))
        .collect();
    script.sort();
    let script = Arc::new(Mutex::new(script));
    let video_pad = rec.static_pad("video_0").unwrap();
    let recorder = rec.clone();
    video_pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let Some(pts) = info.buffer().and_then(|buffer| buffer.pts()) else {
            return gst::PadProbeReturn::Ok;
        };
        let Some(segment) = pad.sticky_event::<gst::event::Segment>(0) else {
            return gst::PadProbeReturn::Ok;
        };
        let Some(time) = segment
            .segment()
            .downcast_ref::<gst::ClockTime>()
            .and_then(|segment| segment.to_running_time(pts))
        else {
            return gst::PadProbeReturn::Ok;
        };
        let mut script = script.lock().unwrap();
        while script.first().is_some_and(|(at, _)| *at <= time) {
            let (at, recording) = script.remove(0);
            let (signal, reason) = if recording {
                ("resume", format!("scripted resume at {at}"))
            } else {
                ("pause", format!("scripted pause at {at}"))
            };
            eprintln!("{signal} at {time}");
            recorder.emit_by_name::<()>(signal, &[&reason]);
        }
        gst::PadProbeReturn::Ok
    });

    pipeline.set_state(gst::State::Playing)?;
    let bus = pipeline.bus().unwrap();
    let mut result = Ok(());
    for message in bus.iter_timed(gst::ClockTime::NONE) {
        match message.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(err) => {
                result = Err(format!("{} ({:?})", err.error(), err.debug()).into());
                break;
            }
            gst::MessageView::Element(element) => {
                let structure = element.structure().unwrap();
                if structure.name() == "recordmux-manifest" {
                    println!("{}", structure.get::<String>("manifest")?);
                }
            }
            _ => (),
        }
    }
    pipeline.set_state(gst::State::Null)?;
    eprintln!(
        "recording: {} (manifest {})",
        args.recording.output.display(),
        manifest.display()
    );
    result
}
