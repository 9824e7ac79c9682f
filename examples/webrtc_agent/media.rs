//! One call's media: the pipeline for a browser's offer (webrtcbin answering it, the camera
//! through backgroundfx back to the browser and into recordmux), congestion control the
//! browser can ramp up with, and queues that drop frames instead of growing latency.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;
use gst_webrtc::{WebRTCICEGatheringState, WebRTCRTPTransceiverDirection, WebRTCSDPType};

use crate::Error;
pub use crate::common::Transition;

/// The RTP header extension of transport-wide congestion control: the browser stamps every
/// packet, webrtcbin's RTP session answers with feedback, and the browser's delay-based
/// estimator ramps up (without it Chrome stays at ~300 kbit/s, 320x180, for the whole call).
pub const TWCC_URI: &str =
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";

/// Where the browser's bandwidth estimate starts (kbit/s, Chrome's x-google-start-bitrate).
const START_BITRATE_KBPS: u32 = 2500;

/// How a call's media is set up.
#[derive(Clone)]
pub struct MediaConfig {
    pub effect: String,
    pub pause_mode: String,
    pub agent_id: String,
    /// webrtcbin's jitter buffer, ms.
    pub jitter_latency: u32,
    /// recordmux video-preset.
    pub video_preset: String,
    pub protection: crate::common::Protection,
}

/// What the bus said about the call.
#[derive(Default)]
pub struct BusStatus {
    pub error: Option<String>,
    pub recording_finished: bool,
    /// recordmux-paused / recordmux-resumed messages, in order.
    pub transitions: Vec<Transition>,
}

pub type SharedStatus = Arc<(Mutex<BusStatus>, Condvar)>;

/// A call's running pipeline.
pub struct Media {
    pub pipeline: gst::Pipeline,
    pub webrtc: gst::Element,
    pub recorder: gst::Element,
    pub status: SharedStatus,
    pub recording: PathBuf,
    pub manifest: PathBuf,
    /// Media from the browser and the connection, for the inactivity timeout.
    pub activity: Activity,
}

/// When the call last showed life: a media packet from the browser, or the connection.
#[derive(Clone)]
pub struct Activity {
    pub started: Instant,
    /// Milliseconds since `started` of the last media packet, or of the connection if it
    /// came later (0: neither yet).
    last_ms: Arc<AtomicU64>,
}

impl Activity {
    pub fn new(started: Instant) -> Activity {
        Activity {
            started,
            last_ms: Arc::default(),
        }
    }

    /// A media packet arrived (called from a streaming thread for every packet).
    pub fn note_media(&self) {
        let now = self.started.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(now, Ordering::Relaxed);
    }

    /// The connection counts as activity: the inactivity timeout runs from it when no media
    /// came yet (a call whose ICE took 9 s must not be ended 1 s later for the media it could
    /// not send before).
    pub fn note_connected(&self) {
        self.note_media();
    }

    /// Time since media last arrived or the call connected (since it started, if neither).
    pub fn idle(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }
}

/// Builds the call's pipeline for `offer` and returns it with the SDP answer.
pub fn start(
    config: &MediaConfig,
    call_id: &str,
    recording: &Path,
    offer: &str,
) -> Result<(Media, String), Error> {
    let offer = gst_sdp::SDPMessage::parse_buffer(offer.as_bytes())
        .map_err(|_| "the body is not an SDP offer")?;
    crate::common::check_free(recording)?;
    let manifest = crate::common::manifest_of(recording);
    let sink = config.protection.sink(recording, &manifest);
    let pipeline = gst::parse::launch(&format!(
        "webrtcbin name=webrtc bundle-policy=max-bundle latency={latency} \
         recordmux name=rec pause-mode={pause_mode} video-preset={preset} call-id=\"{call_id}\" \
           agent-id=\"{agent}\" direction=inbound manifest-location=\"{manifest}\" ! {sink}",
        latency = config.jitter_latency,
        pause_mode = config.pause_mode,
        preset = config.video_preset,
        agent = config.agent_id,
        manifest = manifest.display()
    ))?
    .downcast::<gst::Pipeline>()
    .unwrap();
    // The recording's sink is not the pipeline's only sink: have its EOS forwarded to us.
    pipeline.set_property("message-forward", true);
    let status: SharedStatus = Arc::default();
    watch_bus(&pipeline, status.clone());
    let media = Media {
        webrtc: pipeline.by_name("webrtc").unwrap(),
        recorder: pipeline.by_name("rec").unwrap(),
        pipeline,
        status,
        recording: recording.to_path_buf(),
        manifest,
        activity: Activity::new(Instant::now()),
    };
    match negotiate(config, offer, &media) {
        Ok(answer) => Ok((media, answer)),
        Err(err) => {
            let _ = media.pipeline.set_state(gst::State::Null);
            // Nothing was recorded: leave nothing behind.
            for path in [
                media.recording.clone(),
                PathBuf::from(format!("{}.partial", media.recording.display())),
                media.manifest.clone(),
            ] {
                let _ = std::fs::remove_file(path);
            }
            Err(err)
        }
    }
}

/// The offer's RTP caps for `payload` with the m-line's attributes (rtcp-fb, extmap) of
/// which only the transport-wide-cc header extension is kept: what we answer and receive.
fn caps_with_twcc(media: &gst_sdp::SDPMediaRef, payload: i32) -> Option<gst::Caps> {
    let mut caps = media.caps_from_media(payload)?;
    let mut attributes = gst::Caps::new_empty_simple("application/x-unknown");
    media.attributes_to_caps(attributes.make_mut()).ok()?;
    let structure = caps.make_mut().structure_mut(0)?;
    structure.set_name("application/x-rtp");
    if let Some(all) = attributes.structure(0) {
        for (name, value) in all.iter() {
            let uri = value.get::<String>().ok();
            if name.starts_with("extmap-") && uri.as_deref().is_some_and(|uri| uri == TWCC_URI) {
                structure.set_value(name, value.clone());
            }
        }
    }
    Some(caps)
}

/// Answers `offer` with the call's webrtcbin and wires media in and out.
fn negotiate(
    config: &MediaConfig,
    offer: gst_sdp::SDPMessage,
    media: &Media,
) -> Result<String, Error> {
    let (pipeline, webrtc, recorder) = (&media.pipeline, &media.webrtc, &media.recorder);

    // Pick what to send back and record from the offer.
    let mut video = None;
    let mut audio = None;
    for (index, m) in offer.medias().enumerate() {
        match m.media() {
            Some("video") if video.is_none() => video = Some((index, pick_video_codec(m)?)),
            Some("audio") if audio.is_none() => audio = Some((index, pick_audio_caps(m)?)),
            _ => (),
        }
    }
    let (video_index, (video_caps, send_description)) = video.ok_or("the offer has no video")?;
    // Request the recorder's pads before any data flows: video is its main stream.
    let record_video = recorder.request_pad_simple("video_%u").unwrap();
    let record_audio = audio
        .is_some()
        .then(|| recorder.request_pad_simple("audio_%u").unwrap());

    pipeline.set_state(gst::State::Playing)?;

    // Send the processed camera back on the offer's video m-line: a send pad named after the
    // m-line makes webrtcbin create the transceiver for exactly that m-line.
    let template = webrtc.pad_template("sink_%u").unwrap();
    // Our SSRC is announced in the answer (a=ssrc with msid): a browser whose offer has video
    // first drops packets of an unannounced SSRC (its BUNDLE demuxer cannot place them).
    let send_ssrc: u32 = rand::random::<u32>() | 1;
    let mut send_caps = video_caps.clone();
    if let Some(structure) = send_caps.make_mut().structure_mut(0) {
        let extensions: Vec<String> = structure
            .fields()
            .filter(|name| name.starts_with("extmap-"))
            .map(|name| name.to_string())
            .collect();
        for name in extensions {
            structure.remove_field(name.as_str());
        }
        structure.set("ssrc", send_ssrc);
    }
    let webrtc_sink = webrtc
        .request_pad(
            &template,
            Some(&format!("sink_{video_index}")),
            Some(&send_caps),
        )
        .ok_or("webrtcbin refused a send pad")?;
    let transceiver = webrtc_sink.property::<gst_webrtc::WebRTCRTPTransceiver>("transceiver");
    transceiver.set_property("direction", WebRTCRTPTransceiverDirection::Sendrecv);
    let mut preferences = video_caps.clone();
    {
        let structure = preferences.make_mut().structure_mut(0).unwrap();
        structure.set("ssrc", send_ssrc);
    }
    transceiver.set_property("codec-preferences", &preferences);
    // Audio is received only; its transceiver carries the header extension too.
    if let Some((_, audio_caps)) = &audio {
        let _ = webrtc.emit_by_name::<gst_webrtc::WebRTCRTPTransceiver>(
            "add-transceiver",
            &[&WebRTCRTPTransceiverDirection::Recvonly, audio_caps],
        );
    }
    let sender = gst::parse::bin_from_description(&send_description, true)?;
    sender.set_property("name", "to_peer");
    sender
        .by_name("pay")
        .unwrap()
        .set_property("ssrc", send_ssrc);
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
    let effect = config.effect.clone();
    let pipeline_weak = pipeline.downgrade();
    let activity = media.activity.clone();
    webrtc.connect_pad_added(move |_, pad| {
        let Some(pipeline) = pipeline_weak.upgrade() else {
            return;
        };
        // Every packet from the browser counts as activity (see the inactivity timeout).
        let activity = activity.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            activity.note_media();
            gst::PadProbeReturn::Ok
        });
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
    let mut answer = local.sdp().to_owned();
    if let Some(media) = answer.media_mut(video_index as u32) {
        start_bitrate_hint(media);
    }
    Ok(answer.as_text()?)
}

/// Tells Chrome where to start its bandwidth estimate for our video (`x-google-start-bitrate`
/// in the answer's fmtp, as Janus and mediasoup do): from its default 300 kbit/s the camera
/// starts at 320x180 and needs 15-30 s to reach 720p on a LAN. Other browsers ignore it.
fn start_bitrate_hint(media: &mut gst_sdp::SDPMediaRef) {
    let Some(payload) = media.format(0).map(str::to_string) else {
        return;
    };
    let hint = format!("x-google-start-bitrate={START_BITRATE_KBPS}");
    let existing = media.attributes().position(|attribute| {
        attribute.key() == "fmtp"
            && attribute
                .value()
                .is_some_and(|value| value.split(' ').next() == Some(payload.as_str()))
    });
    match existing {
        Some(index) => {
            let value = media
                .attribute(index as u32)
                .and_then(|a| a.value())
                .unwrap_or_default();
            let value = format!("{value};{hint}");
            let _ = media.replace_attribute(
                index as u32,
                gst_sdp::SDPAttribute::new("fmtp", Some(&value)),
            );
        }
        None => media.add_attribute("fmtp", Some(&format!("{payload} {hint}"))),
    }
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

/// Opus from an offered audio m-line, with the header extension.
fn pick_audio_caps(media: &gst_sdp::SDPMediaRef) -> Result<gst::Caps, Error> {
    for format in media.formats() {
        let Ok(payload) = format.parse::<i32>() else {
            continue;
        };
        if let Some(caps) = caps_with_twcc(media, payload)
            && caps
                .structure(0)
                .and_then(|s| s.get::<String>("encoding-name").ok())
                .is_some_and(|name| name.eq_ignore_ascii_case("OPUS"))
        {
            return Ok(caps);
        }
    }
    Err("the offer's audio has no Opus".into())
}

/// The video codec to use from an offered m-line (VP8, else H.264 packetization-mode 1):
/// its RTP caps and the encoder/payloader chain that sends our processed video back. The
/// queue in front drops frames when the encoder cannot keep up: the preview stays live.
fn pick_video_codec(media: &gst_sdp::SDPMediaRef) -> Result<(gst::Caps, String), Error> {
    let mut h264 = None;
    let queue = "queue leaky=downstream max-size-buffers=1 max-size-bytes=0 max-size-time=0";
    for format in media.formats() {
        let Ok(payload) = format.parse::<i32>() else {
            continue;
        };
        let Some(caps) = caps_with_twcc(media, payload) else {
            continue;
        };
        let structure = caps.structure(0).unwrap();
        let name = structure.get::<String>("encoding-name").unwrap_or_default();
        if name == "VP8" {
            return Ok((
                caps.clone(),
                format!(
                    "{queue} ! videoconvert ! vp8enc deadline=1 cpu-used=8 keyframe-max-dist=60 \
                     target-bitrate=1500000 threads=2 error-resilient=default \
                     ! rtpvp8pay name=pay pt={payload} mtu=1200"
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
                    "{queue} ! videoconvert ! x264enc tune=zerolatency speed-preset=ultrafast \
                     key-int-max=60 bitrate=1500 ! video/x-h264,profile=constrained-baseline \
                     ! rtph264pay name=pay pt={payload} mtu=1200 config-interval=-1 aggregate-mode=zero-latency"
                ),
            ));
        }
    }
    h264.ok_or_else(|| "the offer has neither VP8 nor H.264 (packetization-mode 1)".into())
}

/// Links a stream arriving from the browser: video is decoded, gets the effect and goes to
/// both the sender back to the peer and the recorder; audio (Opus) goes to the recorder as is.
/// Video passes leaky queues: when the machine cannot keep up, frames are dropped (the newest
/// kept) instead of queued, so the preview's latency stays bounded.
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
        "VP8" => "rtpvp8depay name=depay ! vp8dec threads=2",
        "H264" => "rtph264depay name=depay ! h264parse ! avdec_h264",
        "OPUS" => "rtpopusdepay name=depay",
        other => return Err(format!("unsupported {media} codec {other}").into()),
    };
    let (description, target, to_recorder_queue) = match (media.as_str(), record_audio) {
        ("video", _) => (
            format!(
                "{decode} ! queue leaky=downstream max-size-buffers=1 max-size-bytes=0 max-size-time=0 \
                 ! videoconvert ! backgroundfx effect={effect} ! tee name=processed"
            ),
            record_video,
            // The recording's encoder may fall behind too: at most a second is queued.
            "queue leaky=downstream max-size-buffers=0 max-size-bytes=0 max-size-time=1000000000",
        ),
        ("audio", Some(record_audio)) => (decode.to_string(), record_audio, "queue"),
        _ => return Ok(()),
    };
    let bin = gst::parse::bin_from_description(&description, false)?;
    // Named so that ending the call can drain it (see calls.rs).
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
    let queue = gst::parse::bin_from_description(to_recorder_queue, true)?;
    pipeline.add_many([bin.upcast_ref::<gst::Element>(), queue.upcast_ref()])?;
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
    Ok(())
}

/// Collects errors, pause/resume messages and the recording sink's EOS.
fn watch_bus(pipeline: &gst::Pipeline, status: SharedStatus) {
    let bus = pipeline.bus().unwrap();
    bus.set_sync_handler(move |_, message| {
        let (lock, changed) = &*status;
        let mut status = lock.lock().unwrap_or_else(|p| p.into_inner());
        match message.view() {
            gst::MessageView::Error(err) => {
                status
                    .error
                    .get_or_insert(format!("{} ({:?})", err.error(), err.debug()));
            }
            gst::MessageView::Element(element) => {
                let structure = element.structure().unwrap();
                if let Some(transition) = Transition::from_message(structure) {
                    status.transitions.push(transition);
                }
                if structure.name() == "GstBinForwarded"
                    && let Ok(inner) = structure.get::<gst::Message>("message")
                    && inner.type_() == gst::MessageType::Eos
                    && inner.src().is_some_and(|src| src.name() == "recording")
                {
                    status.recording_finished = true;
                }
            }
            _ => (),
        }
        changed.notify_all();
        gst::BusSyncReply::Drop
    });
}

/// Ends the call's media: EOS into each incoming branch, so what is still being processed
/// drains into the recording and every stream ends at the same time; waits for the file to be
/// finalised. A branch that does not drain in time is cut: EOS goes straight into the
/// recorder, so the recording is always finished (never left as a `.partial`).
pub fn end(media: &Media) -> Result<(), String> {
    let entries = |direct: bool| {
        [("video", "video_0"), ("audio", "audio_0")]
            .into_iter()
            .filter_map(|(kind, recorder_pad)| {
                let branch = media
                    .pipeline
                    .by_name(&format!("incoming_{kind}"))
                    .and_then(|branch| branch.static_pad("sink"));
                match (direct, branch) {
                    (false, Some(branch)) => Some(branch),
                    // A stream that never arrived, or one that did not drain.
                    _ => media.recorder.static_pad(recorder_pad),
                }
            })
            .collect::<Vec<_>>()
    };
    for entry in entries(false) {
        entry.send_event(gst::event::Eos::new());
    }
    let wait = |limit: Duration| {
        let (lock, changed) = &*media.status;
        let deadline = Instant::now() + limit;
        let mut status = lock.lock().unwrap_or_else(|p| p.into_inner());
        while !status.recording_finished && status.error.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            status = changed
                .wait_timeout(status, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        (status.recording_finished, status.error.clone())
    };
    let (mut finished, mut error) = wait(Duration::from_secs(10));
    if !finished && error.is_none() {
        eprintln!("a branch did not drain in 10 s: ending the recording's streams directly");
        for entry in entries(true) {
            entry.send_event(gst::event::Eos::new());
        }
        (finished, error) = wait(Duration::from_secs(10));
    }
    let _ = media.pipeline.set_state(gst::State::Null);
    match (error, finished) {
        (Some(error), _) => Err(error),
        (None, false) => Err("the recording did not finish in time".into()),
        (None, true) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An activity that started `ago` before now.
    fn started_ago(ago: Duration) -> Activity {
        Activity::new(Instant::now() - ago)
    }

    /// The activity counts as just now (not idle for the time since it started).
    fn assert_just_active(activity: &Activity) {
        let idle = activity.idle();
        assert!(idle < Duration::from_secs(1), "{idle:?}");
    }

    #[test]
    fn idle_counts_from_the_start_until_something_happens() {
        let activity = started_ago(Duration::from_secs(9));
        assert!(activity.idle() >= Duration::from_secs(9));
    }

    #[test]
    fn a_slow_connection_restarts_the_idle_time() {
        // ICE took 9 s: the call is not idle for 9 s the moment it connects.
        let activity = started_ago(Duration::from_secs(9));
        activity.note_connected();
        assert_just_active(&activity);
    }

    #[test]
    fn media_keeps_the_call_active() {
        let activity = started_ago(Duration::from_secs(20));
        activity.note_media();
        assert_just_active(&activity);
    }
}
