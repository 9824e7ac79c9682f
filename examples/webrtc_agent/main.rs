//! The agent side of WebRTC video calls, WHIP-style: a browser POSTs its SDP offer and gets
//! the answer; its camera goes through backgroundfx, is sent back to the same browser (the
//! agent's preview of what the customer sees) and recorded through recordmux, encrypted when
//! keys are given, with PCI pause/resume over an authenticated HTTP API:
//!
//!   VCC_AGENT_TOKEN=$(cat /run/secrets/agent-token) \
//!   cargo run --release --example webrtc_agent -- --port 8080 --output-dir recordings \
//!       --recipients-file keys/recipient.txt --signing-key keys/vcc.key
//!
//! | request (all but `GET /` need `Authorization: Bearer <token>`) | effect |
//! |---|---|
//! | `GET /` | an empty page: a browser origin for a WHIP client |
//! | `POST /calls` (SDP offer, `application/sdp`; optional `X-Call-Id`) | `201` with the SDP answer (non-trickle) and `Location: /calls/{id}`; `503` beyond `--max-calls` |
//! | `POST /calls/{id}/pause`, `/resume` (body: reason) | `200` once recordmux applied it (JSON with the running time), `202` if still queued |
//! | `GET /calls/{id}` | JSON: state, pauses, how it ended |
//! | `GET /calls` | active call ids |
//! | `DELETE /calls/{id}` | ends the call, finalises and signs the recording; JSON with the manifest |
//!
//! Each call records to `<output-dir>/<call id>.mp4[.age]` (+ `.json` manifest), never
//! overwriting. A call whose ICE/DTLS does not connect within `--connect-timeout`, or whose
//! media stops for `--inactivity-timeout`, ends by itself, its recording finalised.
//! See `examples/README.md` for deployment (TLS at a reverse proxy, token handling).

#[path = "../common/mod.rs"]
mod common;

mod calls;
mod http;
mod media;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;

#[derive(Parser, Clone)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// File holding the API's bearer token (at least 16 characters); or set VCC_AGENT_TOKEN.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Run without a token: only on a loopback address, for development.
    #[arg(long)]
    insecure_localhost: bool,
    /// Host header values to accept besides the bind address (e.g. agent.example.com:443
    /// behind a reverse proxy).
    #[arg(long)]
    allowed_host: Vec<String>,
    /// Browser origins allowed to call the API besides the agent's own (e.g.
    /// https://desk.example.com).
    #[arg(long)]
    allowed_origin: Vec<String>,
    /// Calls at once; more get 503.
    #[arg(long, default_value_t = 4)]
    max_calls: usize,
    /// Where each call's recording goes (created if missing).
    #[arg(long, default_value = "recordings")]
    output_dir: PathBuf,
    #[command(flatten)]
    protection: common::Protection,
    /// backgroundfx effect: blur, solid, picture, none.
    #[arg(long, default_value = "blur")]
    effect: String,
    /// recordmux pause-mode: cut or mask.
    #[arg(long, default_value = "cut")]
    pause_mode: String,
    /// recordmux video-preset: the recording's size for the whole call (passthrough, sd,
    /// hd, custom).
    #[arg(long, default_value = "sd")]
    video_preset: String,
    #[arg(long, default_value = "agent")]
    agent_id: String,
    /// webrtcbin's jitter buffer in ms (a LAN needs little; the Internet 100-200).
    #[arg(long, default_value_t = 50)]
    jitter_latency: u32,
    /// Seconds ICE and DTLS have to connect before the call is ended.
    #[arg(long, default_value_t = 15)]
    connect_timeout: u64,
    /// Seconds without media from the browser after which a call has ended.
    #[arg(long, default_value_t = 10)]
    inactivity_timeout: u64,
    /// Exit after the first call ended.
    #[arg(long)]
    once: bool,
}

type Error = Box<dyn std::error::Error + Send + Sync>;

fn token(args: &Args) -> Result<Option<Vec<u8>>, Error> {
    let token = match (&args.token_file, std::env::var("VCC_AGENT_TOKEN")) {
        (Some(path), _) => std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the token file '{}': {e}", path.display()))?,
        (None, Ok(token)) => token,
        (None, Err(_)) if args.insecure_localhost => {
            if !args.bind.is_loopback() {
                return Err("--insecure-localhost needs a loopback --bind address".into());
            }
            eprintln!("warning: the control API has no token (--insecure-localhost)");
            return Ok(None);
        }
        (None, Err(_)) => {
            return Err("no API token: give --token-file or VCC_AGENT_TOKEN (or --insecure-localhost for development)".into());
        }
    };
    let token = token.trim();
    if token.len() < 16 {
        return Err("the API token must be at least 16 characters".into());
    }
    Ok(Some(token.as_bytes().to_vec()))
}

fn access(args: &Args, token: Option<Vec<u8>>) -> http::Access {
    let port = args.port;
    let mut hosts = vec![match args.bind {
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
        v4 => format!("{v4}:{port}"),
    }];
    if args.bind.is_loopback() || args.bind.is_unspecified() {
        hosts.extend([
            format!("127.0.0.1:{port}"),
            format!("localhost:{port}"),
            format!("[::1]:{port}"),
        ]);
    }
    hosts.extend(args.allowed_host.iter().cloned());
    let mut origins: Vec<String> = hosts.iter().map(|h| format!("http://{h}")).collect();
    origins.extend(args.allowed_origin.iter().cloned());
    http::Access {
        token: token.map(Arc::new),
        hosts: Arc::new(hosts),
        origins: Arc::new(origins),
    }
}

fn main() -> Result<(), Error> {
    let args = Args::parse();
    let token = token(&args)?;
    gst::init()?;
    gstvcc::register()?;
    std::fs::create_dir_all(&args.output_dir).map_err(|e| {
        format!(
            "cannot create the output directory '{}': {e}",
            args.output_dir.display()
        )
    })?;
    let registry = Arc::new(calls::Registry::new(
        media::MediaConfig {
            effect: args.effect.clone(),
            pause_mode: args.pause_mode.clone(),
            agent_id: args.agent_id.clone(),
            jitter_latency: args.jitter_latency,
            video_preset: args.video_preset.clone(),
            protection: args.protection.clone(),
        },
        calls::Limits {
            max_calls: args.max_calls.max(1),
            connect_timeout: Duration::from_secs(args.connect_timeout),
            inactivity_timeout: Duration::from_secs(args.inactivity_timeout),
            apply_timeout: Duration::from_secs(5),
        },
        args.output_dir.clone(),
    ));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(64)
        .enable_all()
        .build()?;
    runtime.block_on(run(args.clone(), registry.clone(), access(&args, token)))
}

async fn run(
    args: Args,
    registry: Arc<calls::Registry>,
    access: http::Access,
) -> Result<(), Error> {
    let address = SocketAddr::new(args.bind, args.port);
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| format!("cannot listen on {address}: {e}"))?;
    let ended = Arc::new(tokio::sync::Notify::new());
    let router = http::router(registry.clone(), access, ended.clone());
    tokio::spawn(http::serve(listener, router, http::connection_limit()));
    eprintln!("listening on http://{address}/ (POST /calls)");

    // Calls that end by themselves: checked four times a second.
    {
        let registry = registry.clone();
        let ended = ended.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                let check = registry.clone();
                let due = tokio::task::spawn_blocking(move || check.due_to_end())
                    .await
                    .unwrap_or_default();
                for (id, why) in due {
                    let registry = registry.clone();
                    let ended = ended.clone();
                    tokio::task::spawn_blocking(move || {
                        let _ = registry.end(&id, &why);
                        ended.notify_one();
                    });
                }
            }
        });
    }

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
            _ = ended.notified(), if args.once => {
                // Wait until no call is left ending.
                if registry.active_ids().is_empty() {
                    break;
                }
            }
        }
    }
    // Every call still running is finalised before the agent exits.
    let ids = registry.active_ids();
    if !ids.is_empty() {
        eprintln!("stopping: finalising {} call(s)", ids.len());
    }
    let endings: Vec<_> = ids
        .into_iter()
        .map(|id| {
            let registry = registry.clone();
            tokio::task::spawn_blocking(move || registry.end(&id, "the agent stopped"))
        })
        .collect();
    for ending in endings {
        let _ = ending.await;
    }
    Ok(())
}
