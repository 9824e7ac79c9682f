//! The agent side of a WebRTC video call, WHIP-style: a browser POSTs its SDP offer and gets
//! the answer; its camera goes through backgroundfx, is sent back to the same browser (the
//! agent's preview of what the customer sees) and recorded through recordmux, encrypted when
//! keys are given, with PCI pause/resume over HTTP:
//!
//!   cargo run --release --example webrtc_agent -- --port 8080 --output call.mp4.age \
//!       --recipients-file keys/recipient.txt --signing-key keys/vcc.key
//!
//! | request | effect |
//! |---|---|
//! | `GET /` | an empty page: a browser origin for the WHIP client |
//! | `POST /whip` (SDP offer, `application/sdp`) | `201` with the SDP answer (non-trickle) |
//! | `POST /pause`, `POST /resume` (body: reason) | pause/resume the recording |
//! | `GET /status` | JSON: state, recording, pauses |
//! | `POST /stop` or `DELETE /whip/call` | ends the call, finalises the recording, returns its manifest |
//!
//! One call at a time; with `--once` the agent exits after it.

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use gst::glib;
use gst::prelude::*;
use gst_webrtc::{WebRTCICEGatheringState, WebRTCRTPTransceiverDirection, WebRTCSDPType};

#[derive(Parser, Clone)]
struct Args {
    #[arg(long, default_value_t = 8080)]
    port: u16,
    #[command(flatten)]
    recording: common::RecordingArgs,
    /// backgroundfx effect: blur, solid, picture, none.
    #[arg(long, default_value = "blur")]
    effect: String,
    /// recordmux pause-mode: cut or mask.
    #[arg(long, default_value = "cut")]
    pause_mode: String,
    #[arg(long, default_value = "webrtc-call")]
    call_id: String,
    #[arg(long, default_value = "agent")]
    agent_id: String,
    /// Exit after the first call ended.
    #[arg(long)]
    once: bool,
    /// Address to listen on (the control endpoints have no authentication: keep it local or
    /// behind the media server's own API).
    #[arg(long, default_value = "127.0.0.1")]
    bind: String,
}

type Error = Box<dyn std::error::Error + Send + Sync>;

/// What the bus said about the call.
#[derive(Default)]
struct CallStatus {
    error: Option<String>,
    recording_finished: bool,
    transitions: Vec<String>,
}

struct Call {
    pipeline: gst::Pipeline,
    recorder: gst::Element,
    status: Arc<(Mutex<CallStatus>, Condvar)>,
    manifest: PathBuf,
}

fn main() -> Result<(), Error> {
    let args = Args::parse();
    gst::init()?;
    gstvcc::register()?;
    let server = tiny_http::Server::http((args.bind.as_str(), args.port))?;
    eprintln!(
        "listening on http://{}:{}/ (POST /whip)",
        args.bind, args.port
    );
    let mut call: Option<Call> = None;
    for mut request in server.incoming_requests() {
        let mut body = String::new();
        let _ = request.as_reader().read_to_string(&mut body);
        let method = request.method().clone();
        let url = request.url().to_string();
        let (status, content_type, text) = match (&method, url.as_str()) {
            (tiny_http::Method::Get, "/") => (
                200,
                "text/html",
                "<!doctype html><title>gst-vcc agent</title>".to_string(),
            ),
            (tiny_http::Method::Post, "/whip") if call.is_some() => {
                (409, "text/plain", "a call is already running".to_string())
            }
            (tiny_http::Method::Post, "/whip") => match start_call(&args, &body) {
                Ok((new_call, answer)) => {
                    call = Some(new_call);
                    (201, "application/sdp", answer)
                }
                Err(err) => (400, "text/plain", format!("cannot answer: {err}")),
            },
            (tiny_http::Method::Post, "/pause" | "/resume") => match &call {
                Some(call) => {
                    let signal = &url[1..];
                    let reason = if body.is_empty() {
                        "agent request"
                    } else {
                        body.trim()
                    };
                    call.recorder.emit_by_name::<()>(signal, &[&reason]);
                    eprintln!("{signal}: {reason}");
                    (200, "application/json", status_json(call))
                }
                None => (404, "text/plain", "no call".to_string()),
            },
            (tiny_http::Method::Get, "/status") => match &call {
                Some(call) => (200, "application/json", status_json(call)),
                None => (200, "application/json", "{\"state\":\"idle\"}".to_string()),
            },
            (tiny_http::Method::Post, "/stop") | (tiny_http::Method::Delete, "/whip/call") => {
                match call.take() {
                    Some(ended) => match end_call(ended) {
                        Ok(manifest) => (200, "application/json", manifest),
                        Err(err) => (500, "text/plain", format!("recording failed: {err}")),
                    },
                    None => (404, "text/plain", "no call".to_string()),
                }
            }
            _ => (404, "text/plain", "not found".to_string()),
        };
        let mut response = tiny_http::Response::from_string(text.clone()).with_status_code(status);
        response.add_header(
            tiny_http::Header::from_bytes("Content-Type", content_type).expect("valid header"),
        );
        if status == 201 {
            response.add_header(
                tiny_http::Header::from_bytes("Location", "/whip/call").expect("valid header"),
            );
        }
        let _ = request.respond(response);
        let ended = status == 200 && (url == "/stop" || url == "/whip/call");
        if ended {
            println!("{text}");
            if args.once {
                break;
            }
        }
    }
    Ok(())
}

fn status_json(call: &Call) -> String {
    let status = call.status.0.lock().unwrap();
    serde_json::json!({
        "state": "in-call",
        "recording": call.recorder.property::<bool>("recording"),
        "transitions": status.transitions,
        "error": status.error,
    })
    .to_string()
}

/// Builds the call's pipeline for this offer and returns it with the SDP answer.
fn start_call(args: &Args, offer: &str) -> Result<(Call, String), Error> {
    let offer = gst_sdp::SDPMessage::parse_buffer(offer.as_bytes())
        .map_err(|_| "the body is not an SDP offer")?;
    let manifest = args.recording.manifest();
    let sink = args.recording.sink();
    let pipeline = gst::parse::launch(&format!(
        "webrtcbin name=webrtc bundle-policy=max-bundle \
         recordmux name=rec pause-mode={} call-id=\"{}\" agent-id=\"{}\" direction=inbound \
           manifest-location=\"{}\" ! {sink}",
        args.pause_mode,
        args.call_id,
        args.agent_id,
        manifest.display()
    ))?
    .downcast::<gst::Pipeline>()
    .unwrap();
    // The recording's sink is not the pipeline's only sink: have its EOS forwarded to us.
    pipeline.set_property("message-forward", true);
    match negotiate(args, offer, &pipeline) {
        Ok((recorder, status, answer)) => Ok((
            Call {
                pipeline,
                recorder,
                status,
                manifest,
            },
            answer,
        )),
        Err(err) => {
            let _ = pipeline.set_state(gst::State::Null);
            Err(err)
        }
    }
}

type Negotiated = (gst::Element, Arc<(Mutex<CallStatus>, Condvar)>, String);

/// Answers `offer` with `pipeline`'s webrtcbin and wires media in and out.
fn negotiate(
    args: &Args,
    offer: gst_sdp::SDPMessage,
    pipeline: &gst::Pipeline,
) -> Result<Negotiated, Error> {
    let webrtc = pipeline.by_name("webrtc").unwrap();
    let recorder = pipeline.by_name("rec").unwrap();

    // Pick what to send back and record from the offer.
    let mut video = None;
    let mut has_audio = false;
    for (index, media) in offer.medias().enumerate() {
        match media.media() {
            Some("video") if video.is_none() => video = Some((index, pick_video_codec(media)?)),
            Some("audio") => has_audio = true,
            _ => (),
        }
    }
    let (video_index, (video_caps, send_description)) = video.ok_or("the offer has no video")?;
    // Request the recorder's pads before any data flows: video is its main stream.
    let record_video = recorder.request_pad_simple("video_%u").unwrap();
    let record_audio = has_audio.then(|| recorder.request_pad_simple("audio_%u").unwrap());

    let status = Arc::new((Mutex::new(CallStatus::default()), Condvar::new()));
    watch_bus(pipeline, status.clone());
    pipeline.set_state(gst::State::Playing)?;

    // Send the processed camera back on the offer's video m-line: a send pad named after the
    // m-line makes webrtcbin create the transceiver for exactly that m-line.
    let template = webrtc.pad_template("sink_%u").unwrap();
    let webrtc_sink = webrtc
        .request_pad(
            &template,
            Some(&format!("sink_{video_index}")),
            Some(&video_caps),
        )
        .ok_or("webrtcbin refused a send pad")?;
    let transceiver = webrtc_sink.property::<gst_webrtc::WebRTCRTPTransceiver>("transceiver");
    transceiver.set_property("direction", WebRTCRTPTransceiverDirection::Sendrecv);
    transceiver.set_property("codec-preferences", &video_caps);
    let sender = gst::parse::bin_from_description(&send_description, true)?;
    sender.set_property("name", "to_peer");
    pipeline.add(&sender)?;
    sender.static_pad("src").unwrap().link(&webrtc_sink)?;
    sender.sync_state_with_parent()?;

    let description = gst_webrtc::WebRTCSessionDescription::new(WebRTCSDPType::Offer, offer);
    let promise = gst::Promise::new();
    webrtc.emit_by_name::<()>("set-remote-description", &[&description, &promise]);
    promise.wait();
    if let Some(error) = promise_error(&promise) {
        return Err(format!("the offer was refused: {error}").into());
    }

    // Media from the browser: video -> backgroundfx -> (peer, recorder); audio -> recorder.
    let effect = args.effect.clone();
    let pipeline_weak = pipeline.downgrade();
    webrtc.connect_pad_added(move |_, pad| {
        let Some(pipeline) = pipeline_weak.upgrade() else {
            return;
        };
        if let Err(err) = link_incoming(
            &pipeline,
            pad,
            &effect,
            &record_video,
            record_audio.as_ref(),
        ) {
            gst::element_error!(
                pipeline,
                gst::StreamError::Failed,
                ("cannot handle incoming stream: {err}")
            );
        }
    });

    let promise = gst::Promise::new();
    webrtc.emit_by_name::<()>("create-answer", &[&None::<gst::Structure>, &promise]);
    promise.wait();
    let answer = promise
        .get_reply()
        .and_then(|reply| reply.value("answer").ok())
        .and_then(|answer| answer.get::<gst_webrtc::WebRTCSessionDescription>().ok())
        .ok_or("webrtcbin made no answer")?;
    let promise = gst::Promise::new();
    webrtc.emit_by_name::<()>("set-local-description", &[&answer, &promise]);
    promise.wait();
    if let Some(error) = promise_error(&promise) {
        return Err(format!("our answer was refused: {error}").into());
    }
    // Non-trickle, as WHIP without PATCH: answer once all candidates are gathered.
    let start = Instant::now();
    while webrtc.property::<WebRTCICEGatheringState>("ice-gathering-state")
        != WebRTCICEGatheringState::Complete
    {
        if start.elapsed() > Duration::from_secs(10) {
            return Err("ICE gathering did not complete".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let local = webrtc.property::<gst_webrtc::WebRTCSessionDescription>("local-description");
    let answer = local.sdp().as_text()?;
    eprintln!(
        "call started: answered an offer with {} m-lines",
        local.sdp().medias_len()
    );
    Ok((recorder, status, answer))
}

/// The error a webrtcbin promise was answered with, if any.
fn promise_error(promise: &gst::Promise) -> Option<String> {
    let reply = promise.get_reply()?;
    let error = reply.value("error").ok()?;
    Some(
        error
            .get::<glib::Error>()
            .map(|error| error.to_string())
            .unwrap_or_else(|_| format!("{error:?}")),
    )
}

/// The video codec to use from an offered m-line (VP8, else H.264 packetization-mode 1):
/// its RTP caps and the encoder/payloader chain that sends our processed video back.
fn pick_video_codec(media: &gst_sdp::SDPMediaRef) -> Result<(gst::Caps, String), Error> {
    let mut h264 = None;
    for format in media.formats() {
        let Ok(payload) = format.parse::<i32>() else {
            continue;
        };
        let Some(mut caps) = media.caps_from_media(payload) else {
            continue;
        };
        caps.make_mut()
            .structure_mut(0)
            .unwrap()
            .set_name("application/x-rtp");
        let structure = caps.structure(0).unwrap();
        let name = structure.get::<String>("encoding-name").unwrap_or_default();
        if name == "VP8" {
            return Ok((
                caps,
                format!(
                    "queue ! videoconvert ! vp8enc deadline=1 cpu-used=8 keyframe-max-dist=60 \
                     target-bitrate=800000 error-resilient=default ! rtpvp8pay pt={payload} mtu=1200"
                ),
            ));
        }
        if name == "H264"
            && structure
                .get::<String>("packetization-mode")
                .ok()
                .as_deref()
                == Some("1")
            && h264.is_none()
        {
            h264 = Some((
                caps.clone(),
                format!(
                    "queue ! videoconvert ! x264enc tune=zerolatency speed-preset=ultrafast \
                     key-int-max=60 bitrate=800 ! video/x-h264,profile=constrained-baseline \
                     ! rtph264pay pt={payload} mtu=1200 config-interval=-1 aggregate-mode=zero-latency"
                ),
            ));
        }
    }
    h264.ok_or_else(|| "the offer has neither VP8 nor H.264 (packetization-mode 1)".into())
}

/// Links a stream arriving from the browser: video is decoded, gets the effect and goes to
/// both the sender back to the peer and the recorder; audio (Opus) goes to the recorder as is.
fn link_incoming(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    effect: &str,
    record_video: &gst::Pad,
    record_audio: Option<&gst::Pad>,
) -> Result<(), Error> {
    let caps = pad.current_caps().ok_or("incoming pad without caps")?;
    let structure = caps.structure(0).ok_or("empty caps")?;
    let media = structure.get::<String>("media")?;
    let encoding = structure.get::<String>("encoding-name")?;
    let decode = match encoding.as_str() {
        "VP8" => "rtpvp8depay name=depay ! vp8dec",
        "H264" => "rtph264depay name=depay ! h264parse ! avdec_h264",
        "OPUS" => "rtpopusdepay name=depay",
        other => return Err(format!("unsupported {media} codec {other}").into()),
    };
    let (description, target) = match (media.as_str(), record_audio) {
        ("video", _) => (
            format!("{decode} ! videoconvert ! backgroundfx effect={effect} ! tee name=processed"),
            record_video,
        ),
        ("audio", Some(record_audio)) => (decode.to_string(), record_audio),
        _ => return Ok(()),
    };
    let bin = gst::parse::bin_from_description(&description, false)?;
    // Named so that ending the call can drain it (see end_call).
    bin.set_property("name", format!("incoming_{media}"));
    let depay = bin.by_name("depay").unwrap();
    bin.add_pad(&gst::GhostPad::with_target(
        &depay.static_pad("sink").unwrap(),
    )?)?;
    let to_recorder = match bin.by_name("processed") {
        Some(tee) => {
            let to_peer =
                gst::GhostPad::builder_with_target(&tee.request_pad_simple("src_%u").unwrap())?
                    .name("to_peer")
                    .build();
            bin.add_pad(&to_peer)?;
            tee.request_pad_simple("src_%u").unwrap()
        }
        None => depay.static_pad("src").unwrap(),
    };
    bin.add_pad(
        &gst::GhostPad::builder_with_target(&to_recorder)?
            .name("to_recorder")
            .build(),
    )?;
    let queue = gst::ElementFactory::make("queue").build()?;
    pipeline.add_many([bin.upcast_ref::<gst::Element>(), &queue])?;
    bin.static_pad("to_recorder")
        .unwrap()
        .link(&queue.static_pad("sink").unwrap())?;
    queue.static_pad("src").unwrap().link(target)?;
    if let Some(to_peer) = bin.static_pad("to_peer") {
        let sender = pipeline.by_name("to_peer").ok_or("no sender")?;
        to_peer.link(&sender.static_pad("sink").unwrap())?;
    }
    queue.sync_state_with_parent()?;
    bin.sync_state_with_parent()?;
    pad.link(&bin.static_pad("sink").unwrap())?;
    eprintln!("receiving {media} ({encoding})");
    Ok(())
}

/// Collects errors, pause/resume messages and the recording sink's EOS.
fn watch_bus(pipeline: &gst::Pipeline, status: Arc<(Mutex<CallStatus>, Condvar)>) {
    let bus = pipeline.bus().unwrap();
    bus.set_sync_handler(move |_, message| {
        let (lock, changed) = &*status;
        let mut status = lock.lock().unwrap();
        match message.view() {
            gst::MessageView::Error(err) => {
                status
                    .error
                    .get_or_insert(format!("{} ({:?})", err.error(), err.debug()));
            }
            gst::MessageView::Element(element) => {
                let structure = element.structure().unwrap();
                match structure.name().as_str() {
                    "recordmux-paused" | "recordmux-resumed" => {
                        status.transitions.push(structure.to_string())
                    }
                    "GstBinForwarded" => {
                        if let Ok(inner) = structure.get::<gst::Message>("message")
                            && inner.type_() == gst::MessageType::Eos
                            && inner.src().is_some_and(|src| src.name() == "recording")
                        {
                            status.recording_finished = true;
                        }
                    }
                    _ => (),
                }
            }
            _ => (),
        }
        changed.notify_all();
        gst::BusSyncReply::Drop
    });
}

/// Ends the call: EOS into each incoming branch, so what is still being processed drains
/// into the recording and audio and video end together; wait for the file to be finalised and
/// return the manifest.
fn end_call(call: Call) -> Result<String, Error> {
    for (media, recorder_pad) in [("video", "video_0"), ("audio", "audio_0")] {
        let entry = call
            .pipeline
            .by_name(&format!("incoming_{media}"))
            .and_then(|branch| branch.static_pad("sink"))
            // A stream that never arrived: end the recorder's pad itself.
            .or_else(|| call.recorder.static_pad(recorder_pad));
        if let Some(entry) = entry {
            entry.send_event(gst::event::Eos::new());
        }
    }
    let (lock, changed) = &*call.status;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut status = lock.lock().unwrap();
    while !status.recording_finished && status.error.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        status = changed.wait_timeout(status, left).unwrap().0;
    }
    let result = match (&status.error, status.recording_finished) {
        (Some(error), _) => Err(error.clone().into()),
        (None, false) => Err("the recording did not finish in time".into()),
        (None, true) => Ok(std::fs::read_to_string(&call.manifest)?),
    };
    drop(status);
    call.pipeline.set_state(gst::State::Null)?;
    eprintln!("call ended");
    result
}
