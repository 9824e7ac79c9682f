//! A SIP-style media gateway: receives RTP audio+video on UDP ports as a SIP media server
//! (FreeSWITCH, Asterisk, a B2BUA) sends them, applies backgroundfx to the video, forwards RTP
//! to the next hop and records the call through recordmux:
//!
//!   cargo run --release --example rtp_gateway -- --video-port 5004 --audio-port 5006 \
//!       --forward-video-port 5008 --forward-audio-port 5010 --output call.mp4 \
//!       [--recipients-file keys/recipient.txt --signing-key keys/vcc.key]
//!
//! In: H.264 (payload 96, packetization-mode 1) and PCMU (payload 0) or Opus (`--audio-codec
//! opus`, payload 111), plain RTP or SRTP (`--srtp-in-key`, the base64 key of the SDP's
//! `a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:<key>`; `--srtp-out-key` for the next hop).
//! Out: H.264 RTP with the effect, and the audio RTP relayed untouched;
//! both leave through a jitter buffer and are clocked out with the pipeline latency, so lip sync
//! is kept although the video takes longer.
//!
//! The ports listen on `--media-address` (default 127.0.0.1, never all interfaces unless
//! asked). Each port accepts only valid RTP of the call's payload types from the call's peer
//! (`--peer-address` from the SDP, else symmetric-RTP latching on the first valid source,
//! switching after `--relatch-after` s of its silence) and, for video, H.264 payloads a
//! depayloader takes (crates/rtp-guard); everything else is dropped and counted, never fatal.
//! With SRTP the check runs on authenticated packets only.
//!
//! Control on stdin, one command per line: `pause <reason>`, `resume [reason]`, `stop`. On
//! stdout, JSON lines: `{"event":"paused"|"resumed",...}` once recordmux applied a request
//! (with its running time), `{"event":"guard",...}` (counters) and `{"event":"manifest",...}`
//! at the end. The call ends on `stop`, Ctrl-C / SIGTERM or when no valid video RTP arrived
//! for `--idle-timeout` seconds (the SIP call hung up); the recording is always finalised,
//! also after a pipeline error.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use clap::Parser;
use gst::glib;
use gst::prelude::*;

#[derive(Parser)]
struct Args {
    /// Local address the RTP ports listen on (the media address of the SDP).
    #[arg(long, default_value = "127.0.0.1")]
    media_address: IpAddr,
    /// The peer's media address from its SDP (`c=` line): only RTP from there is accepted
    /// (port 0: any port). Without it, the first valid source is latched.
    #[arg(long)]
    peer_address: Option<SocketAddr>,
    /// Seconds of silence of the latched source after which another one may take over.
    #[arg(long, default_value_t = 2.0)]
    relatch_after: f64,
    #[arg(long, default_value_t = 5004)]
    video_port: u16,
    #[arg(long, default_value_t = 5006)]
    audio_port: u16,
    /// pcmu or opus.
    #[arg(long, default_value = "pcmu")]
    audio_codec: String,
    #[arg(long, default_value = "127.0.0.1")]
    forward_host: String,
    #[arg(long, default_value_t = 5008)]
    forward_video_port: u16,
    #[arg(long, default_value_t = 5010)]
    forward_audio_port: u16,
    /// backgroundfx effect: blur, solid, picture, none.
    #[arg(long, default_value = "blur")]
    effect: String,
    #[command(flatten)]
    recording: common::RecordingArgs,
    /// End the call after this many seconds without valid video RTP.
    #[arg(long, default_value_t = 5)]
    idle_timeout: u64,
    /// Jitter buffer latency in ms.
    #[arg(long, default_value_t = 100)]
    latency: u32,
    #[arg(long, default_value = "rtp-gateway-call")]
    call_id: String,
    /// SRTP master key+salt of the incoming streams (base64, AES_CM_128_HMAC_SHA1_80).
    #[arg(long)]
    srtp_in_key: Option<String>,
    /// SRTP master key+salt for the forwarded streams (base64, AES_CM_128_HMAC_SHA1_80).
    #[arg(long)]
    srtp_out_key: Option<String>,
    /// RTP payload type of RFC 4733 telephone events (DTMF) on the audio port: forwarded to
    /// the next hop, never recorded.
    #[arg(long, default_value_t = 101)]
    telephone_event_pt: u8,
}

/// The 30-byte SRTP master key+salt (AES_CM_128_HMAC_SHA1_80) from its SDP base64 form.
fn srtp_key(base64_key: &str) -> Result<gst::Buffer, String> {
    use base64::Engine;
    let key = base64::engine::general_purpose::STANDARD
        .decode(base64_key.trim())
        .map_err(|err| format!("SRTP key is not base64: {err}"))?;
    if key.len() != 30 {
        return Err(format!(
            "SRTP key must be 30 bytes (16 key + 14 salt) for AES_CM_128_HMAC_SHA1_80, got {}",
            key.len()
        ));
    }
    Ok(gst::Buffer::from_slice(key))
}

fn hex(buffer: &gst::Buffer) -> String {
    buffer
        .map_readable()
        .unwrap()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn description(args: &Args) -> Result<String, String> {
    let manifest = args.recording.manifest().display().to_string();
    let sink = args.recording.sink();
    let customer = args.recording.customer_property();
    let (audio_caps, audio_depay) = audio_format(&args.audio_codec);
    let host = &args.forward_host;
    // SRTP in: srtpdec asks the application for each new SSRC's key (see main).
    let (protocol, decrypt_video, decrypt_audio) = match &args.srtp_in_key {
        Some(_) => (
            "application/x-srtp",
            "! srtpdec name=decrypt_video",
            "! srtpdec name=decrypt_audio",
        ),
        None => ("application/x-rtp", "", ""),
    };
    let encrypt = match &args.srtp_out_key {
        Some(key) => format!(
            "! srtpenc key={} rtp-cipher=aes-128-icm rtp-auth=hmac-sha1-80 \
             rtcp-cipher=aes-128-icm rtcp-auth=hmac-sha1-80",
            hex(&srtp_key(key)?)
        ),
        None => String::new(),
    };
    Ok(format!(
        "recordmux name=rec call-id=\"{call_id}\" {customer} direction=inbound manifest-location=\"{manifest}\" ! {sink} \
         udpsrc name=video_in address={address} port={video_port} \
           caps=\"{protocol},media=video,clock-rate=90000,encoding-name=H264,payload=96\" \
           {decrypt_video} ! rtpjitterbuffer name=video_jitter latency={latency} ! rtph264depay ! h264parse \
           ! avdec_h264 max-errors=-1 ! videoconvert \
           ! backgroundfx effect={effect} ! tee name=video \
         video. ! queue ! x264enc tune=zerolatency speed-preset=veryfast key-int-max=60 bitrate=1000 \
           ! h264parse config-interval=-1 ! rtph264pay pt=96 mtu=1200 \
           {encrypt} ! udpsink async=false host={host} port={forward_video_port} \
         video. ! queue ! rec.video_0 \
         udpsrc address={address} port={audio_port} caps=\"{protocol},{audio_caps}\" \
           {decrypt_audio} ! rtpjitterbuffer name=audio_jitter latency={latency} ! tee name=audio \
         audio. ! queue {encrypt} ! udpsink async=false host={host} port={forward_audio_port} \
         audio. ! queue name=record_audio ! {audio_depay} ! rec.audio_0",
        call_id = args.call_id,
        address = args.media_address,
        video_port = args.video_port,
        latency = args.latency,
        effect = args.effect,
        forward_video_port = args.forward_video_port,
        audio_port = args.audio_port,
        forward_audio_port = args.forward_audio_port,
    ))
}

/// RTP caps and depayloader of the call's audio codec, and its payload type and clock rate.
fn audio_format(codec: &str) -> (&'static str, &'static str) {
    match codec {
        "opus" => (
            "media=audio,clock-rate=48000,encoding-name=OPUS,payload=111",
            "rtpopusdepay",
        ),
        _ => (
            "media=audio,clock-rate=8000,encoding-name=PCMU,payload=0",
            "rtppcmudepay",
        ),
    }
}

fn audio_payload(codec: &str) -> (u8, i32) {
    match codec {
        "opus" => (111, 48000),
        _ => (0, 8000),
    }
}

/// Only the call's audio payload type reaches the recording: RFC 4733 telephone events (the
/// digits of a card number typed on the keypad) and anything else are dropped and counted.
fn record_only_audio(pipeline: &gst::Pipeline, audio_pt: u8, dropped: Arc<AtomicU64>) {
    let pad = pipeline
        .by_name("record_audio")
        .unwrap()
        .static_pad("sink")
        .unwrap();
    pad.add_probe(gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
        // The jitter buffer announces the telephone events' caps before them: the recording
        // keeps the call's audio caps.
        if let Some(gst::EventView::Caps(caps)) = info.event().map(|e| e.view()) {
            let audio = caps
                .caps()
                .structure(0)
                .and_then(|s| s.get::<i32>("payload").ok())
                .is_none_or(|pt| pt == audio_pt as i32);
            if audio {
                return gst::PadProbeReturn::Ok;
            }
            info.data = None;
            return gst::PadProbeReturn::Handled;
        }
        let Some(buffer) = info.buffer() else {
            return gst::PadProbeReturn::Ok;
        };
        let keep = gst_rtp::RTPBuffer::from_buffer_readable(buffer)
            .is_ok_and(|rtp| rtp.payload_type() == audio_pt);
        if keep {
            return gst::PadProbeReturn::Ok;
        }
        if dropped.fetch_add(1, Ordering::Relaxed) == 0 {
            eprintln!(
                "audio packets of another payload type (telephone events) are kept out of the recording"
            );
        }
        info.data = None;
        gst::PadProbeReturn::Handled
    });
}

/// The audio jitter buffer lets telephone events through (to be relayed) with the call's
/// audio clock.
fn forward_telephone_events(pipeline: &gst::Pipeline, event_pt: u8, clock_rate: i32) {
    pipeline
        .by_name("audio_jitter")
        .unwrap()
        .connect("request-pt-map", false, move |values| {
            let pt = values[1].get::<u32>().ok()?;
            (pt == event_pt as u32).then(|| {
                gst::Caps::builder("application/x-rtp")
                    .field("media", "audio")
                    .field("clock-rate", clock_rate)
                    .field("encoding-name", "TELEPHONE-EVENT")
                    .field("payload", event_pt as i32)
                    .build()
                    .to_value()
            })
        });
}

/// One port's guard, shared with the streaming thread that checks its packets.
type SharedGuard = Arc<Mutex<rtp_guard::Guard>>;

fn lock(guard: &SharedGuard) -> std::sync::MutexGuard<'_, rtp_guard::Guard> {
    guard
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Checks every packet entering the jitter buffer `jitter` (after SRTP authentication):
/// refused packets are dropped and counted, never fatal (see crates/rtp-guard).
fn install_guard(pipeline: &gst::Pipeline, jitter: &str, kind: &'static str, guard: SharedGuard) {
    let pad = pipeline
        .by_name(jitter)
        .unwrap()
        .static_pad("sink")
        .unwrap();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let Some(buffer) = info.buffer() else {
            return gst::PadProbeReturn::Ok;
        };
        // udpsrc notes each datagram's sender; srtpdec keeps the note.
        let source = buffer
            .meta::<gst_net::NetAddressMeta>()
            .and_then(|meta| {
                meta.addr()
                    .downcast::<gst_net::gio::InetSocketAddress>()
                    .ok()
            })
            .map(SocketAddr::from)
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        // A buffer that cannot be read is checked as empty: refused as malformed, counted.
        let map = buffer.map_readable().ok();
        let (verdict, refused) = {
            let mut guard = lock(&guard);
            let verdict = guard.check(map.as_deref().unwrap_or(&[]), source, Instant::now());
            let refused = match verdict {
                rtp_guard::Verdict::Refuse(reason) => guard.counters().refused(reason),
                _ => 0,
            };
            (verdict, refused)
        };
        drop(map);
        match verdict {
            rtp_guard::Verdict::Accept => gst::PadProbeReturn::Ok,
            rtp_guard::Verdict::Latched { previous } => {
                match previous {
                    None => eprintln!("{kind}: latched to {source}"),
                    Some((address, ssrc)) => eprintln!(
                        "{kind}: {address} (SSRC {ssrc:#x}) was silent: switched to {source}"
                    ),
                }
                gst::PadProbeReturn::Ok
            }
            rtp_guard::Verdict::Refuse(reason) => {
                // The first of each kind, then every thousandth: a flood does not flood the log.
                if refused == 1 || refused % 1000 == 0 {
                    eprintln!(
                        "{kind}: dropped {refused} packet(s) ({}), e.g. from {source}",
                        reason.name()
                    );
                }
                info.data = None;
                gst::PadProbeReturn::Handled
            }
        }
    });
}

fn counters_json(guard: &SharedGuard) -> serde_json::Value {
    let guard = lock(guard);
    let counters = guard.counters();
    let mut refused = serde_json::Map::new();
    for reason in rtp_guard::Refusal::ALL {
        refused.insert(reason.name().into(), counters.refused(reason).into());
    }
    serde_json::json!({
        "accepted": counters.accepted,
        "latches": counters.latches,
        "refused": refused,
        "latched": guard.latched().map(|(address, ssrc)| format!("{address} ssrc={ssrc:#x}")),
    })
}

/// Reads `pause <reason>`, `resume [reason]` and `stop` lines from stdin. The end of stdin
/// is no command (a gateway run without a controller keeps going).
fn read_control(recorder: gst::Element) {
    std::thread::spawn(move || {
        for line in std::io::stdin().lines().map_while(Result::ok) {
            let line = line.trim();
            let (command, reason) = line.split_once(' ').unwrap_or((line, ""));
            match command {
                "pause" | "resume" => {
                    let resume = command == "resume";
                    if recorder.property::<bool>("recording") == resume {
                        let ack = serde_json::json!({ "event": "unchanged", "command": command });
                        println!("{ack}");
                        continue;
                    }
                    let reason = if reason.is_empty() {
                        "operator request"
                    } else {
                        reason
                    };
                    recorder.emit_by_name::<()>(command, &[&reason]);
                }
                "stop" => STOP_REQUESTED.store(true, Ordering::Relaxed),
                "" => (),
                other => {
                    let error = format!("unknown command '{other}' (pause <reason>, resume, stop)");
                    println!(
                        "{}",
                        serde_json::json!({ "event": "error", "error": error })
                    );
                }
            }
        }
    });
}

static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int) {
    STOP_REQUESTED.store(true, Ordering::Relaxed);
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    gst::init()?;
    gstvcc::register()?;
    let pipeline = gst::parse::launch(&description(&args)?)?
        .downcast::<gst::Pipeline>()
        .unwrap();
    if let Some(key) = &args.srtp_in_key {
        let key = srtp_key(key)?;
        for name in ["decrypt_video", "decrypt_audio"] {
            let key = key.clone();
            pipeline
                .by_name(name)
                .unwrap()
                .connect("request-key", false, move |_| {
                    Some(
                        gst::Caps::builder("application/x-srtp")
                            .field("srtp-key", &key)
                            .field("srtp-cipher", "aes-128-icm")
                            .field("srtp-auth", "hmac-sha1-80")
                            .field("srtcp-cipher", "aes-128-icm")
                            .field("srtcp-auth", "hmac-sha1-80")
                            .build()
                            .to_value(),
                    )
                });
        }
    }
    let (audio_pt, clock_rate) = audio_payload(&args.audio_codec);
    let telephone_events_dropped = Arc::new(AtomicU64::new(0));
    record_only_audio(&pipeline, audio_pt, telephone_events_dropped.clone());
    forward_telephone_events(&pipeline, args.telephone_event_pt, clock_rate);
    let main_loop = glib::MainLoop::new(None, false);
    let failure: Rc<RefCell<Option<String>>> = Rc::default();

    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { libc::signal(signal, on_stop_signal as *const () as libc::sighandler_t) };
    }
    let relatch_after = Duration::from_secs_f64(args.relatch_after.max(0.0));
    let guard = |payload_types: Vec<u8>, codec| -> SharedGuard {
        Arc::new(Mutex::new(rtp_guard::Guard::new(rtp_guard::Policy {
            payload_types,
            codec,
            expected: args.peer_address,
            relatch_after,
        })))
    };
    let video_guard = guard(vec![96], rtp_guard::Codec::H264);
    let audio_guard = guard(
        vec![audio_pt, args.telephone_event_pt],
        rtp_guard::Codec::Audio { max: 1500 },
    );
    install_guard(&pipeline, "video_jitter", "video", video_guard.clone());
    install_guard(&pipeline, "audio_jitter", "audio", audio_guard.clone());
    let recorder = pipeline.by_name("rec").unwrap();
    read_control(recorder.clone());

    // Ending: EOS from the sources drains everything into the recording; a branch that does
    // not drain within 5 s (after an error) is cut by EOS straight into the recorder.
    let ending: Rc<Cell<Option<Instant>>> = Rc::default();
    let end_call = {
        let pipeline = pipeline.downgrade();
        let ending = ending.clone();
        move |why: &str| {
            if ending.get().is_some() {
                return;
            }
            eprintln!("{why}: finalising the recording");
            ending.set(Some(Instant::now()));
            if let Some(pipeline) = pipeline.upgrade() {
                pipeline.send_event(gst::event::Eos::new());
            }
        }
    };
    let idle_timeout = Duration::from_secs(args.idle_timeout);
    {
        let end_call = end_call.clone();
        let ending = ending.clone();
        let recorder = recorder.clone();
        let main_loop = main_loop.clone();
        let video_guard = video_guard.clone();
        let mut cut = false;
        glib::timeout_add_local(Duration::from_millis(250), move || {
            if STOP_REQUESTED.swap(false, Ordering::Relaxed) {
                end_call("stop requested");
            }
            // Only valid video counts as the call going on (garbage cannot keep it alive);
            // the timeout starts with the call's video.
            let last = lock(&video_guard).last_accepted();
            if last.is_some_and(|last| last.elapsed() > idle_timeout) {
                end_call("no valid video RTP for a while: the call ended");
            }
            if let Some(since) = ending.get() {
                if since.elapsed() > Duration::from_secs(5) && !cut {
                    cut = true;
                    eprintln!(
                        "the pipeline did not drain: ending the recording's streams directly"
                    );
                    for pad in recorder.sink_pads() {
                        pad.send_event(gst::event::Eos::new());
                    }
                }
                if since.elapsed() > Duration::from_secs(15) {
                    eprintln!("the recording did not finish in 15 s");
                    main_loop.quit();
                }
            }
            glib::ControlFlow::Continue
        });
    }
    let bus = pipeline.bus().unwrap();
    let _watch = {
        let main_loop = main_loop.clone();
        let failure = failure.clone();
        bus.add_watch_local(move |_, message| {
            match message.view() {
                gst::MessageView::Eos(_) => main_loop.quit(),
                gst::MessageView::Error(err) => {
                    let text = format!("{} ({:?})", err.error(), err.debug());
                    eprintln!("error: {text}");
                    failure.borrow_mut().get_or_insert(text);
                    // The call cannot go on; its recording is still finished and signed.
                    end_call("pipeline error");
                }
                gst::MessageView::Element(element) => {
                    let structure = element.structure().unwrap();
                    if let Some(transition) = common::Transition::from_message(structure) {
                        let event = if transition.paused {
                            "paused"
                        } else {
                            "resumed"
                        };
                        let mut line = serde_json::to_value(&transition).unwrap_or_default();
                        line["event"] = event.into();
                        println!("{line}");
                    }
                    if structure.name() == "recordmux-manifest" {
                        let manifest = structure.get::<String>("manifest").unwrap_or_default();
                        let manifest: serde_json::Value =
                            serde_json::from_str(&manifest).unwrap_or_default();
                        let line = serde_json::json!({ "event": "manifest", "manifest": manifest });
                        println!("{line}");
                    }
                }
                _ => (),
            }
            glib::ControlFlow::Continue
        })?
    };
    pipeline.set_state(gst::State::Playing)?;
    eprintln!(
        "listening: video RTP on {}, audio RTP on {}; forwarding to {}:{}/{}",
        args.video_port,
        args.audio_port,
        args.forward_host,
        args.forward_video_port,
        args.forward_audio_port
    );
    main_loop.run();
    pipeline.set_state(gst::State::Null)?;
    eprintln!(
        "kept {} packets of other payload types (telephone events) out of the recording",
        telephone_events_dropped.load(Ordering::Relaxed)
    );
    println!(
        "{}",
        serde_json::json!({
            "event": "guard",
            "video": counters_json(&video_guard),
            "audio": counters_json(&audio_guard),
        })
    );
    match failure.borrow_mut().take() {
        Some(error) => Err(error.into()),
        None => {
            eprintln!("recording: {}", args.recording.output.display());
            Ok(())
        }
    }
}
