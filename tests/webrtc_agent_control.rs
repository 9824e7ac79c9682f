//! webrtc_agent's control API as an attacker and an unlucky operator meet it: a token, Host
//! and Origin checks, bounded requests that cannot stall a pause, a bounded number of tasks
//! for hundreds of idle connections, calls that never connect ending by themselves with a
//! finished recording and a freed slot, one recording per call. (The browser calls are in
//! e2e_webrtc.rs.)

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{ChildGuard, assert_signed, example, free_tcp_port, scratch, start_webrtc_agent};

const TOKEN: &str = "control-test-token-0123456789";

/// An agent on a free port with a token file, recording into `<dir>/calls`.
struct Agent {
    process: ChildGuard,
    port: u16,
    dir: PathBuf,
}

impl Agent {
    fn start(dir: &Path, extra: &[&str]) -> Agent {
        let (process, port) = start_webrtc_agent(dir, TOKEN, extra);
        Agent {
            process,
            port,
            dir: dir.to_path_buf(),
        }
    }

    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream
    }

    /// Sends `head` (request line and headers, without the blank line) and `body`; returns
    /// the status and the response body.
    fn raw(&self, head: &str, body: &[u8]) -> (u16, String) {
        let mut stream = self.connect();
        let head = format!(
            "{head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        read_response(&mut stream)
    }

    /// A request with the right Host and token.
    fn request(&self, method: &str, path: &str, headers: &[&str], body: &[u8]) -> (u16, String) {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {TOKEN}",
            self.port
        );
        for header in headers {
            head.push_str("\r\n");
            head.push_str(header);
        }
        self.raw(&head, body)
    }

    fn threads(&self) -> usize {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.process.0.id())).unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix("Threads:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }
}

/// Reads a whole HTTP/1.1 response (the server closes the connection).
fn read_response(stream: &mut TcpStream) -> (u16, String) {
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    (status, body)
}

/// A browser-like SDP offer (VP8 video sendrecv, Opus audio sendonly) without candidates:
/// ICE can never connect.
fn unreachable_offer() -> String {
    let fingerprint = (0..32)
        .map(|i| format!("{:02X}", i * 7 % 256))
        .collect::<Vec<_>>()
        .join(":");
    let media = |kind: &str, mid: u32, payload: &str, rtpmap: &str, direction: &str| {
        format!(
            "m={kind} 9 UDP/TLS/RTP/SAVPF {payload}\r\n\
             c=IN IP4 0.0.0.0\r\n\
             a=ice-ufrag:Zq3x\r\n\
             a=ice-pwd:7nW0pEw9xN4bQ1rS2tU3vV4w\r\n\
             a=fingerprint:sha-256 {fingerprint}\r\n\
             a=setup:actpass\r\n\
             a=mid:{mid}\r\n\
             a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n\
             a={direction}\r\n\
             a=rtcp-mux\r\n\
             a=rtpmap:{payload} {rtpmap}\r\n\
             a=rtcp-fb:{payload} transport-cc\r\n\
             a=ssrc:{ssrc} cname:unreachable\r\n",
            ssrc = 1000 + mid
        )
    };
    format!(
        "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
         a=group:BUNDLE 0 1\r\n{}{}",
        media("video", 0, "96", "VP8/90000", "sendrecv"),
        media("audio", 1, "111", "opus/48000/2", "sendonly")
    )
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[test]
fn agent_refuses_to_start_without_a_token() {
    let dir = scratch("agent-no-token");
    for (args, expected) in [
        (vec![], "no API token"),
        (
            vec!["--insecure-localhost", "--bind", "0.0.0.0"],
            "loopback",
        ),
    ] {
        let output = Command::new(example("webrtc_agent"))
            .args(["--port", &free_tcp_port().to_string()])
            .arg("--output-dir")
            .arg(dir.join("calls"))
            .args(&args)
            .env_remove("VCC_AGENT_TOKEN")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} started");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    std::fs::write(dir.join("short"), "tooshort").unwrap();
    let output = Command::new(example("webrtc_agent"))
        .arg("--token-file")
        .arg(dir.join("short"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("at least 16"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn control_needs_the_token_the_host_and_the_origin() {
    let dir = scratch("agent-access");
    let agent = Agent::start(&dir, &[]);
    let port = agent.port;
    let host = format!("Host: 127.0.0.1:{port}");
    // No token, a wrong one, one that is only a prefix.
    for authorization in [
        "",
        "\r\nAuthorization: Bearer wrong-token-0123456789",
        "\r\nAuthorization: Bearer control-test",
    ] {
        let (status, _) = agent.raw(
            &format!("GET /calls HTTP/1.1\r\n{host}{authorization}"),
            b"",
        );
        assert_eq!(status, 401, "{authorization:?}");
        let (status, _) = agent.raw(
            &format!("POST /calls/x/pause HTTP/1.1\r\n{host}{authorization}"),
            b"r",
        );
        assert_eq!(status, 401, "{authorization:?}");
    }
    assert_eq!(agent.request("GET", "/calls", &[], b"").0, 200);
    // A DNS-rebinding page reaches us under its own name.
    let (status, body) = agent.raw(
        &format!(
            "GET /calls HTTP/1.1\r\nHost: attacker.example:{port}\r\nAuthorization: Bearer {TOKEN}"
        ),
        b"",
    );
    assert_eq!(status, 421, "{body}");
    // A page of another site in the agent's own browser.
    let (status, body) = agent.request(
        "POST",
        "/calls",
        &[
            "Origin: http://attacker.example",
            "Content-Type: application/sdp",
        ],
        b"v=0",
    );
    assert_eq!(status, 403, "{body}");
    // The agent's own origin is fine.
    let origin = format!("Origin: http://127.0.0.1:{port}");
    assert_eq!(agent.request("GET", "/calls", &[&origin], b"").0, 200);
    // Unknown calls, bad ids.
    assert_eq!(agent.request("POST", "/calls/nope/pause", &[], b"").0, 404);
    assert_eq!(agent.request("DELETE", "/calls/..%2Fetc", &[], b"").0, 404);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_control_connection_carries_one_request_and_says_so() {
    // A client that keeps its connection for the next request (as HTTP/1.1 clients do) had
    // it closed by the server's header timeout while it sent a pause on it: the pause was
    // lost ("other side closed", ten concurrent calls). The agent answers one request per
    // connection, says so, and closes at once.
    let dir = scratch("agent-one-request");
    let agent = Agent::start(&dir, &[]);
    let mut stream = agent.connect();
    write!(
        stream,
        "GET /calls HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {TOKEN}\r\n\r\n",
        agent.port
    )
    .unwrap();
    let start = Instant::now();
    let mut response = Vec::new();
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let ended = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).to_lowercase();
    assert!(text.starts_with("http/1.1 200"), "{text}");
    assert!(text.contains("\r\nconnection: close\r\n"), "{text}");
    assert!(
        ended.is_ok() && start.elapsed() < Duration::from_secs(2),
        "the connection stayed open ({ended:?} after {:?})",
        start.elapsed()
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn no_client_can_stall_the_control_api() {
    let dir = scratch("agent-stall");
    let agent = Agent::start(&dir, &[]);
    let threads_before = agent.threads();
    // Requests that promise a body and never send it: 100 kB is refused from the header
    // alone, 1 kB is waited for (at most the body timeout).
    let promise = |length: usize| {
        let mut stream = agent.connect();
        write!(
            stream,
            "POST /calls/x/pause HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: {length}\r\n\r\n",
            agent.port
        )
        .unwrap();
        stream
    };
    let (status, body) = read_response(&mut promise(100_000));
    assert_eq!(status, 413, "{body}");
    let mut slow = promise(1000);
    let slow_since = Instant::now();
    // 500 connections that send nothing, and 50 that send half a request line.
    let idle: Vec<TcpStream> = (0..500).map(|_| agent.connect()).collect();
    let half: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut stream = agent.connect();
            stream.write_all(b"GET /cal").unwrap();
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    // Others are still served at once.
    let start = Instant::now();
    assert_eq!(agent.request("GET", "/calls", &[], b"").0, 200);
    let answered = start.elapsed();
    assert!(
        answered < Duration::from_secs(2),
        "answered after {answered:?}"
    );
    let threads = agent.threads();
    assert!(
        threads < threads_before + 8,
        "{threads} threads for 551 connections (before: {threads_before})"
    );
    // A 100 MB body is refused from its header, without reading it.
    let mut big = agent.connect();
    write!(
        big,
        "POST /calls HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/sdp\r\nContent-Length: 100000000\r\nConnection: close\r\n\r\n",
        agent.port
    )
    .unwrap();
    big.write_all(&[b'x'; 64 * 1024]).unwrap();
    let start = Instant::now();
    let (status, body) = read_response(&mut big);
    assert_eq!(status, 413, "{body}");
    assert!(start.elapsed() < Duration::from_secs(5));
    // A 1 MiB header line.
    let mut huge = agent.connect();
    let _ = write!(huge, "GET /calls HTTP/1.1\r\nX-Fill: ");
    let filler = vec![b'a'; 1 << 20];
    let _ = huge.write_all(&filler);
    let _ = huge.write_all(b"\r\n\r\n");
    let (status, _) = read_response(&mut huge);
    assert_eq!(status, 431);
    // The stalled body gets a 408 within the body timeout, the idle ones are closed.
    let (status, body) = read_response(&mut slow);
    assert_eq!(status, 408, "{body}");
    let waited = slow_since.elapsed();
    assert!(waited < Duration::from_secs(15), "{waited:?}");
    let mut closed = 0;
    for mut stream in idle.into_iter().chain(half) {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buffer = [0; 256];
        if stream.read(&mut buffer).is_ok() {
            closed += 1;
        }
    }
    assert_eq!(closed, 550, "idle connections were not closed");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_call_that_never_connects_ends_by_itself_and_frees_its_slot() {
    let dir = scratch("agent-unreachable");
    let agent = Agent::start(&dir, &["--max-calls", "1", "--connect-timeout", "3"]);
    let offer = unreachable_offer();
    let sdp = ["Content-Type: application/sdp"];
    let start = Instant::now();
    let (status, answer) = agent.request("POST", "/calls", &sdp, offer.as_bytes());
    assert_eq!(status, 201, "{answer}");
    assert!(
        answer.contains("a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc"),
        "{answer}"
    );
    let calls = json(&agent.request("GET", "/calls", &[], b"").1);
    let first = calls["active"][0].as_str().unwrap().to_string();
    // The only slot is taken: a clear 503.
    let (status, body) = agent.request("POST", "/calls", &sdp, offer.as_bytes());
    assert_eq!(status, 503, "{body}");
    // The call ends by itself after the connect timeout, its recording finished and signed.
    let summary = loop {
        let (status, body) = agent.request("GET", &format!("/calls/{first}"), &[], b"");
        assert_eq!(status, 200, "{body}");
        let summary = json(&body);
        if summary["state"] == "ended" {
            break summary;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{summary}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        summary["ended_because"]
            .as_str()
            .unwrap()
            .contains("did not connect"),
        "{summary}"
    );
    assert_eq!(summary["finished"], true, "{summary}");
    assert_eq!(summary["manifest"]["complete"], true, "{summary}");
    let recording = PathBuf::from(summary["recording"].as_str().unwrap());
    verify_signed(&agent.dir, &recording);
    // The slot is free again; an id in use (or used) is refused; the next call records to
    // its own file.
    let (status, _) = agent.request(
        "POST",
        "/calls",
        &[sdp[0], &format!("X-Call-Id: {first}")],
        offer.as_bytes(),
    );
    assert_eq!(status, 409);
    let (status, answer) = agent.request(
        "POST",
        "/calls",
        &[sdp[0], "X-Call-Id: second-call"],
        offer.as_bytes(),
    );
    assert_eq!(status, 201, "{answer}");
    let (status, body) = agent.request("DELETE", "/calls/second-call", &[], b"");
    assert_eq!(status, 200, "{body}");
    let second = json(&body);
    assert_eq!(second["finished"], true, "{second}");
    let second_recording = PathBuf::from(second["recording"].as_str().unwrap());
    assert_ne!(recording, second_recording);
    verify_signed(&agent.dir, &second_recording);
    verify_signed(&agent.dir, &recording);
    let leftovers: Vec<_> = std::fs::read_dir(agent.dir.join("calls"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().to_string())
        .filter(|name| name.ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// The recording and its manifest carry valid minisign signatures.
fn verify_signed(dir: &Path, recording: &Path) {
    let manifest = PathBuf::from(format!("{}.json", recording.display()));
    for file in [recording, manifest.as_path()] {
        assert_signed(&dir.join("vcc.pub"), file);
    }
}
