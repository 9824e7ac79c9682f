//! End-to-end tests of encryptedfilesink / encryptedfilesrc / vcc-vault against the standard
//! tools (Debian's `age` and `minisign`), on real encoded media, including tampering,
//! truncation, wrong keys and a recorder killed with SIGKILL.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use gst::prelude::*;

fn init() {
    use std::sync::Once;
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstcryptfile::plugin_register_static().unwrap();
    });
}

struct Workspace {
    dir: PathBuf,
}

impl Workspace {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("cryptfile-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let status = Command::new(test_support::paths::built("vcc-vault"))
            .args(["keygen", "--out-dir"])
            .arg(dir.join("keys"))
            .output()
            .unwrap();
        assert!(status.status.success());
        Workspace { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn key(&self, name: &str) -> String {
        self.dir.join("keys").join(name).display().to_string()
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `vcc-vault <command> --identity <key.txt> <file> -o <output>`.
fn vault(ws: &Workspace, command: &str, file: &Path, output: &Path) -> std::process::Output {
    Command::new(test_support::paths::built("vcc-vault"))
        .args([command, "--identity", &ws.key("key.txt")])
        .arg(file)
        .arg("-o")
        .arg(output)
        .output()
        .unwrap()
}

/// Runs a pipeline to EOS or error; returns the error text, if any.
fn run(description: &str) -> Result<(), String> {
    init();
    let pipeline = gst::parse::launch(description).map_err(|e| e.to_string())?;
    let bus = pipeline.bus().unwrap();
    let result = match pipeline.set_state(gst::State::Playing) {
        Err(_) => {
            let message =
                bus.timed_pop_filtered(gst::ClockTime::from_seconds(5), &[gst::MessageType::Error]);
            Err(message
                .map(|m| match m.view() {
                    gst::MessageView::Error(e) => e.error().to_string(),
                    _ => unreachable!(),
                })
                .unwrap_or_else(|| "state change failed".into()))
        }
        Ok(_) => {
            let message = bus
                .timed_pop_filtered(
                    gst::ClockTime::from_seconds(60),
                    &[gst::MessageType::Eos, gst::MessageType::Error],
                )
                .expect("pipeline ends");
            match message.view() {
                gst::MessageView::Eos(_) => Ok(()),
                gst::MessageView::Error(e) => Err(e.error().to_string()),
                _ => unreachable!(),
            }
        }
    };
    pipeline.set_state(gst::State::Null).unwrap();
    result
}

/// Records `frames` frames of H.264 in MP4 through encryptedfilesink.
fn record(ws: &Workspace, name: &str, frames: u32, extra: &str) -> PathBuf {
    let location = ws.path(name);
    run(&format!(
        "videotestsrc num-buffers={frames} pattern=snow ! video/x-raw,width=320,height=240,framerate=30/1 \
         ! x264enc key-int-max=30 ! mp4mux ! encryptedfilesink location={} recipients-file={} \
         signing-key={} {extra}",
        location.display(),
        ws.key("recipient.txt"),
        ws.key("vcc.key")
    ))
    .unwrap();
    location
}

fn ffprobe_frames(path: &Path) -> u64 {
    let output = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
        ])
        .args(["stream=nb_read_frames", "-of", "default=nw=1:nk=1"])
        .arg(path)
        .output()
        .expect("ffprobe (package ffmpeg)");
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// Plays an encrypted MP4 through encryptedfilesrc ! qtdemux (which seeks to find the moov
/// atom at the end) and counts decoded frames.
fn play(ws: &Workspace, location: &Path, extra: &str) -> Result<u64, String> {
    init();
    let pipeline = gst::parse::launch(&format!(
        "encryptedfilesrc location={} identity={} {extra} ! qtdemux ! h264parse ! avdec_h264 ! fakesink name=out sync=false",
        location.display(),
        ws.key("key.txt")
    ))
    .map_err(|e| e.to_string())?
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sink = pipeline.by_name("out").unwrap();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = count.clone();
    let pad = sink.static_pad("sink").unwrap();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        gst::PadProbeReturn::Ok
    });
    let bus = pipeline.bus().unwrap();
    let _ = pipeline.set_state(gst::State::Playing);
    let message = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(60),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("pipeline ends");
    pipeline.set_state(gst::State::Null).unwrap();
    match message.view() {
        gst::MessageView::Eos(_) => Ok(count.load(std::sync::atomic::Ordering::SeqCst)),
        gst::MessageView::Error(e) => Err(e.error().to_string()),
        _ => unreachable!(),
    }
}

#[test]
fn recording_decrypts_with_age_and_verifies_with_minisign() {
    let ws = Workspace::new("agecli");
    let location = record(&ws, "call.mp4.age", 60, "");
    assert!(!ws.path("call.mp4.age.partial").exists(), "renamed at EOS");
    let plain = ws.path("call.mp4");
    let status = Command::new("age")
        .args(["-d", "-i", &ws.key("key.txt"), "-o"])
        .arg(&plain)
        .arg(&location)
        .status()
        .expect("age (package age)");
    assert!(status.success());
    assert_eq!(ffprobe_frames(&plain), 60);
    let output = Command::new("minisign")
        .args(["-V", "-p", &ws.key("vcc.pub"), "-m"])
        .arg(&location)
        .output()
        .expect("minisign (package minisign)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The trusted comment binds the signature to the file.
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("\"file\":\"call.mp4.age\""),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[test]
fn checkpoints_are_signed_while_recording_and_removed_once_finished() {
    let ws = Workspace::new("sidecar");
    let location = ws.path("live.mp4.age");
    let sidecar = ws.path("live.mp4.age.checkpoints");
    // Watch for the sidecar while a live 2 s recording checkpoints every second.
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (seen, done, sidecar) = (seen.clone(), done.clone(), sidecar.clone());
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                if std::fs::metadata(&sidecar).is_ok_and(|m| m.len() > 0) {
                    seen.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        })
    };
    let result = run(&format!(
        "videotestsrc is-live=true num-buffers=60 ! video/x-raw,width=320,height=240,framerate=30/1 \
         ! x264enc tune=zerolatency key-int-max=30 ! mp4mux fragment-duration=500 \
         ! encryptedfilesink location={} recipients-file={} signing-key={} checkpoint-interval=1",
        location.display(),
        ws.key("recipient.txt"),
        ws.key("vcc.key")
    ));
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    watcher.join().unwrap();
    result.unwrap();
    assert!(
        seen.load(std::sync::atomic::Ordering::SeqCst),
        "no signed checkpoint while recording"
    );
    assert!(location.exists());
    assert!(
        !sidecar.exists(),
        "the final signature replaces the checkpoints"
    );
}

#[test]
fn file_encrypted_by_age_cli_plays_with_seeking() {
    let ws = Workspace::new("agesrc");
    let plain = ws.path("clip.mp4");
    run(&format!(
        "videotestsrc num-buffers=45 ! video/x-raw,width=320,height=240 ! x264enc ! mp4mux ! filesink location={}",
        plain.display()
    ))
    .unwrap();
    let recipient = std::fs::read_to_string(ws.key("recipient.txt")).unwrap();
    let encrypted = ws.path("clip.mp4.age");
    let status = Command::new("age")
        .args(["-r", recipient.trim(), "-o"])
        .arg(&encrypted)
        .arg(&plain)
        .status()
        .unwrap();
    assert!(status.success());
    // mp4mux (not fragmented) writes the moov atom last: qtdemux must seek to play it.
    assert_eq!(play(&ws, &encrypted, "").unwrap(), 45);
}

#[test]
fn signature_is_checked_before_playing() {
    let ws = Workspace::new("verify");
    let location = record(&ws, "call.mp4.age", 30, "");
    let verify = format!("verify-key={}", ws.key("vcc.pub"));
    assert_eq!(play(&ws, &location, &verify).unwrap(), 30);
    // A forged recording (encrypted to our public key by anyone) has no valid signature.
    let mut bytes = std::fs::read(&location).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    std::fs::write(&location, bytes).unwrap();
    let error = play(&ws, &location, &verify).unwrap_err();
    assert!(error.contains("signature check"), "{error}");
}

#[test]
fn tampering_is_reported_with_its_place() {
    let ws = Workspace::new("tamper");
    let location = record(&ws, "call.mp4.age", 150, "");
    let original = std::fs::read(&location).unwrap();
    assert!(
        original.len() > 3 * 65_552,
        "needs several chunks: {}",
        original.len()
    );
    let cases = [
        ("header", 40usize, "header"),
        ("middle chunk", original.len() / 2, "fails authentication"),
        ("last chunk", original.len() - 10, "last chunk"),
    ];
    for (what, offset, expected) in cases {
        let mut bytes = original.clone();
        bytes[offset] ^= 1;
        std::fs::write(&location, &bytes).unwrap();
        let error = play(&ws, &location, "").unwrap_err();
        assert!(error.contains(expected), "{what}: {error}");
        if what != "header" {
            assert!(error.contains("chunk "), "{what}: {error}");
        }
    }
}

#[test]
fn wrong_key_is_a_clear_error() {
    let ws = Workspace::new("wrongkey");
    let location = record(&ws, "call.mp4.age", 10, "");
    let other = Workspace::new("otherkey");
    let error = play(&other, &location, "").unwrap_err();
    assert!(error.starts_with("wrong key"), "{error}");
}

#[test]
fn truncated_recording_errors_and_recovers_its_prefix() {
    let ws = Workspace::new("truncate");
    // Fragmented MP4: every complete fragment of a prefix is playable.
    let location = record(&ws, "call.mp4.age", 150, "");
    let bytes = std::fs::read(&location).unwrap();
    std::fs::write(&location, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let error = play(&ws, &location, "").unwrap_err();
    assert!(error.contains("truncated"), "{error}");
    let recovered = ws.path("recovered.mp4");
    let output = vault(&ws, "recover", &location, &recovered);
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("warning") && stderr.contains("recovered "),
        "{stderr}"
    );
    let plain_prefix = std::fs::read(&recovered).unwrap();
    assert!(plain_prefix.len() as u64 >= (bytes.len() as u64 * 2 / 3) / 65_552 * 65_536 - 65_536);
    // `decrypt` refuses damaged files and writes nothing.
    let refused = vault(&ws, "decrypt", &location, &ws.path("refused.mp4"));
    assert!(!refused.status.success());
    assert!(!ws.path("refused.mp4").exists());
}

#[test]
fn recorder_killed_with_sigkill_leaves_a_recoverable_recording() {
    let ws = Workspace::new("sigkill");
    let plugin_dir = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    assert!(
        plugin_dir.join("libgstcryptfile.so").exists(),
        "build the workspace first"
    );
    let location = ws.path("live.mp4.age");
    let mut child = Command::new("gst-launch-1.0")
        // Noise: a high bitrate, so several 64 KiB chunks reach the disk within a second.
        .args(["-q", "videotestsrc", "is-live=true", "pattern=snow", "!"])
        .args([
            "video/x-raw,width=320,height=240,framerate=30/1",
            "!",
            "x264enc",
            "tune=zerolatency",
        ])
        .args([
            "key-int-max=15",
            "!",
            "mp4mux",
            "fragment-duration=500",
            "streamable=true",
            "!",
        ])
        .arg("encryptedfilesink")
        .arg(format!("location={}", location.display()))
        .arg(format!("recipients-file={}", ws.key("recipient.txt")))
        .arg("fsync-interval=100")
        .env("GST_PLUGIN_PATH", &plugin_dir)
        .spawn()
        .expect("gst-launch-1.0");
    let partial = ws.path("live.mp4.age.partial");
    // Record until a few chunks are on disk, bounded in time.
    for _ in 0..300 {
        std::thread::sleep(Duration::from_millis(100));
        if std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0) > 4 * 65_552 {
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        !location.exists(),
        "never renamed: the recording did not finish"
    );
    let recovered = ws.path("recovered.mp4");
    let output = vault(&ws, "recover", &partial, &recovered);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let frames = ffprobe_frames(&recovered);
    assert!(frames >= 15, "recovered fragments decode: {frames} frames");
    // A new recording refuses to clobber the interrupted one.
    let error = run(&format!(
        "videotestsrc num-buffers=1 ! encryptedfilesink location={} recipients-file={}",
        location.display(),
        ws.key("recipient.txt")
    ))
    .unwrap_err();
    assert!(error.contains("interrupted recording"), "{error}");
}

#[test]
fn existing_recording_is_not_overwritten_unless_asked() {
    let ws = Workspace::new("overwrite");
    let location = record(&ws, "call.mp4.age", 5, "");
    let before = std::fs::read(&location).unwrap();
    let pipeline = |extra: &str| {
        run(&format!(
            "videotestsrc num-buffers=5 ! encryptedfilesink location={} recipients-file={} {extra}",
            location.display(),
            ws.key("recipient.txt")
        ))
    };
    let error = pipeline("").unwrap_err();
    assert!(error.contains("refusing to overwrite"), "{error}");
    assert_eq!(std::fs::read(&location).unwrap(), before);
    pipeline("overwrite=true").unwrap();
    assert_ne!(std::fs::read(&location).unwrap(), before);
}

#[test]
fn bad_settings_are_clear_errors() {
    let ws = Workspace::new("settings");
    let location = ws.path("x.age");
    let error = run(&format!(
        "videotestsrc num-buffers=1 ! encryptedfilesink location={} recipients=age1nope",
        location.display()
    ))
    .unwrap_err();
    assert!(error.contains("malformed age public key"), "{error}");
    let error = run(&format!(
        "videotestsrc num-buffers=1 ! encryptedfilesink location={}",
        location.display()
    ))
    .unwrap_err();
    assert!(error.contains("no recipients"), "{error}");
    assert!(!location.exists());
}

#[test]
fn a_key_vault_recording_plays_through_the_vault_until_its_key_is_erased() {
    let ws = Workspace::new("key-vault");
    let vault = ws.path("key-vault");
    let with_vault = format!("key-vault={} customer-reference=CUST-1", vault.display());
    let location = record(&ws, "customer.mp4.age", 20, &with_vault);
    // The organisation's identity alone opens nothing: the key is the customer's.
    let error = play(&ws, &location, "").unwrap_err();
    assert!(error.contains("key-vault"), "{error}");
    let opened = format!("key-vault={}", vault.display());
    assert_eq!(play(&ws, &location, &opened).unwrap(), 20);
    // A second recording of the customer uses the same key; the vault holds it sealed.
    record(&ws, "customer-2.mp4.age", 5, &with_vault);
    let keys: Vec<_> = std::fs::read_dir(vault.join("keys")).unwrap().collect();
    assert_eq!(keys.len(), 1);

    vault::key_vault::KeyVault::open(&vault)
        .unwrap()
        .erase("CUST-1", "2026-12-01T10:00:00Z")
        .unwrap()
        .expect("the customer had a key");
    let error = play(&ws, &location, &opened).unwrap_err();
    assert!(error.contains("key erased"), "{error}");

    // A vault needs the customer, and excludes a passphrase.
    let error = run(&format!(
        "videotestsrc num-buffers=1 ! encryptedfilesink location={} recipients-file={} key-vault={}",
        ws.path("none.age").display(),
        ws.key("recipient.txt"),
        vault.display()
    ))
    .unwrap_err();
    assert!(error.contains("needs customer-reference"), "{error}");
    let error = run(&format!(
        "videotestsrc num-buffers=1 ! encryptedfilesink location={} passphrase=x {with_vault}",
        ws.path("none.age").display()
    ))
    .unwrap_err();
    assert!(error.contains("exclude each other"), "{error}");
    assert!(!ws.path("none.age").exists());
}

#[test]
fn passphrase_round_trip_for_development() {
    let ws = Workspace::new("passphrase");
    let location = ws.path("dev.mp4.age");
    run(&format!(
        "videotestsrc num-buffers=20 ! x264enc ! mp4mux ! encryptedfilesink location={} passphrase=dev-only",
        location.display()
    ))
    .unwrap();
    assert_eq!(play(&ws, &location, "passphrase=dev-only").unwrap(), 20);
}

/// A full disk: needs root to mount a 512 KiB tmpfs (CI runs as root). Elsewhere the test
/// says so and returns.
#[test]
fn full_disk_is_a_clear_error_and_keeps_what_was_written() {
    let ws = Workspace::new("fulldisk");
    let mount_point = ws.path("tiny");
    std::fs::create_dir_all(&mount_point).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=512k", "tmpfs"])
        .arg(&mount_point)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: cannot mount a tmpfs here (not root)");
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mount_point.clone());
    let location = mount_point.join("call.mp4.age");
    let error = run(&format!(
        "videotestsrc num-buffers=300 pattern=snow ! video/x-raw,width=320,height=240 ! x264enc \
         ! mp4mux fragment-duration=200 streamable=true \
         ! encryptedfilesink location={} recipients-file={}",
        location.display(),
        ws.key("recipient.txt")
    ))
    .unwrap_err();
    let partial = mount_point.join("call.mp4.age.partial");
    assert!(error.contains("No space left on device"), "{error}");
    assert!(error.contains(&partial.display().to_string()), "{error}");
    assert!(!location.exists());
    let recovered = ws.path("recovered.mp4");
    let output = vault(&ws, "recover", &partial, &recovered);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        ffprobe_frames(&recovered) > 0,
        "the part written before the disk filled decodes"
    );
}

/// Runs `vcc-vault` with arbitrary arguments.
fn vault_cli(args: &[&str]) -> std::process::Output {
    Command::new(test_support::paths::built("vcc-vault"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn recovery_skips_a_damaged_chunk_and_keeps_everything_after_it() {
    // Found: recover stopped at the first damaged chunk and kept 44 % of the recording.
    let ws = Workspace::new("skip-hole");
    let location = record(&ws, "call.mp4.age", 150, "");
    let mut bytes = std::fs::read(&location).unwrap();
    let flip = bytes.len() / 3;
    bytes[flip] ^= 1;
    std::fs::write(&location, &bytes).unwrap();
    let recovered = ws.path("recovered.mp4");
    let output = vault_cli(&[
        "recover",
        "--identity",
        &ws.key("key.txt"),
        location.to_str().unwrap(),
        "-o",
        recovered.to_str().unwrap(),
        "--json",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let recovery = &report["recovery"];
    assert_eq!(recovery["holes"].as_array().unwrap().len(), 1, "{report}");
    assert_eq!(recovery["complete"], true);
    let total = bytes.len() as f64;
    let kept = recovery["recovered_bytes"].as_u64().unwrap() as f64;
    assert!(kept / total > 0.9, "kept only {kept} of {total} bytes");
}

#[test]
fn recovering_nothing_is_a_failure() {
    let ws = Workspace::new("recover-nothing");
    // A recording that never got past its header.
    let location = ws.path("empty.mp4.age");
    run(&format!(
        "fakesrc num-buffers=0 ! encryptedfilesink location={} recipients-file={}",
        location.display(),
        ws.key("recipient.txt")
    ))
    .unwrap();
    let output = vault(&ws, "recover", &location, &ws.path("out.mp4"));
    assert!(
        !output.status.success(),
        "exit status says nothing was recovered"
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("nothing could be recovered"));
    assert!(!ws.path("out.mp4").exists());
}

#[test]
fn a_failed_decrypt_leaves_nothing_that_blocks_a_retry() {
    let ws = Workspace::new("decrypt-retry");
    let location = record(&ws, "call.mp4.age", 10, "");
    let original = std::fs::read(&location).unwrap();
    let mut broken = original.clone();
    broken[3] ^= 0x20; // in "age-encryption.org/v1"
    std::fs::write(&location, &broken).unwrap();
    let output_path = ws.path("call.mp4");
    let failed = vault(&ws, "decrypt", &location, &output_path);
    assert!(!failed.status.success());
    assert!(
        !output_path.exists(),
        "no empty output after a header error"
    );
    std::fs::write(&location, &original).unwrap();
    let retried = vault(&ws, "decrypt", &location, &output_path);
    assert!(
        retried.status.success(),
        "{}",
        String::from_utf8_lossy(&retried.stderr)
    );
}

#[test]
fn an_empty_recipients_file_leaves_no_partial_behind() {
    let ws = Workspace::new("empty-recipients");
    let recipients = ws.path("nobody.txt");
    std::fs::write(&recipients, "# nobody yet\n").unwrap();
    let location = ws.path("call.mp4.age");
    let error = run(&format!(
        "videotestsrc num-buffers=1 ! encryptedfilesink location={} recipients-file={}",
        location.display(),
        recipients.display()
    ))
    .unwrap_err();
    assert!(error.contains("holds no recipient"), "{error}");
    assert!(!ws.path("call.mp4.age.partial").exists());
    // The next start, with keys, is not blocked.
    run(&format!(
        "videotestsrc num-buffers=1 ! encryptedfilesink location={} recipients-file={}",
        location.display(),
        ws.key("recipient.txt")
    ))
    .unwrap();
}

#[test]
fn an_identity_given_as_recipients_is_never_echoed() {
    let ws = Workspace::new("identity-as-recipient");
    let location = ws.path("call.mp4.age");
    let error = run(&format!(
        "videotestsrc num-buffers=1 ! encryptedfilesink location={} recipients-file={}",
        location.display(),
        ws.key("key.txt")
    ))
    .unwrap_err();
    let identity = std::fs::read_to_string(ws.key("key.txt")).unwrap();
    let secret = identity
        .lines()
        .find(|line| line.starts_with("AGE-SECRET-KEY-"))
        .unwrap();
    assert!(!error.contains(&secret[15..30]), "{error}");
    assert!(error.contains("SECRET key"), "{error}");
}

#[test]
fn a_file_swapped_after_the_signature_check_is_never_played() {
    // Found: verify-key checked the signature and then opened the file again; a file
    // swapped in between was played (7 of 30). A forged recording (encrypted to our key by
    // anyone, not signed) is renamed over the genuine one, back and forth, while it plays.
    let ws = Workspace::new("swap-race");
    let genuine = record(&ws, "call.mp4.age", 30, "");
    let genuine_copy = ws.path("genuine.copy");
    std::fs::copy(&genuine, &genuine_copy).unwrap();
    let forged = record(&ws, "forged.mp4.age", 90, "");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let (stop, genuine, genuine_copy, forged) = (
            stop.clone(),
            genuine.clone(),
            genuine_copy.clone(),
            forged.clone(),
        );
        std::thread::spawn(move || {
            let staging = genuine.with_extension("staging");
            let mut flip = false;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let source = if flip { &forged } else { &genuine_copy };
                std::fs::copy(source, &staging).unwrap();
                std::fs::rename(&staging, &genuine).unwrap();
                flip = !flip;
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let verify = format!("verify-key={}", ws.key("vcc.pub"));
    let mut played_genuine = 0;
    for _ in 0..30 {
        match play(&ws, &genuine, &verify) {
            Ok(frames) => {
                assert_eq!(frames, 30, "a forged recording was played");
                played_genuine += 1;
            }
            Err(error) => assert!(
                error.contains("signature") || error.contains("cannot read"),
                "{error}"
            ),
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    swapper.join().unwrap();
    eprintln!("played the genuine recording {played_genuine} of 30 times, never the forged one");
}

#[test]
fn a_renamed_recording_or_a_swapped_manifest_does_not_verify() {
    let ws = Workspace::new("bindings");
    let key = ws.key("vcc.key");
    let record_with_manifest = |name: &str, call: &str| {
        let location = ws.path(name);
        let manifest = ws.path(&format!("{name}.json"));
        std::fs::write(
            &manifest,
            format!("{{\"call\":{{\"call_id\":\"{call}\"}}}}\n"),
        )
        .unwrap();
        run(&format!(
            "videotestsrc num-buffers=10 ! x264enc ! mp4mux ! encryptedfilesink location={} \
             recipients-file={} signing-key={key} manifest={}",
            location.display(),
            ws.key("recipient.txt"),
            manifest.display()
        ))
        .unwrap();
        (location, manifest)
    };
    let (a, a_manifest) = record_with_manifest("call-a.mp4.age", "A");
    let (b, b_manifest) = record_with_manifest("call-b.mp4.age", "B");
    let public = ws.key("vcc.pub");
    let verify = |file: &Path, manifest: Option<&Path>| {
        let mut args = vec!["verify", "--key", &public, file.to_str().unwrap()];
        if let Some(manifest) = manifest {
            args.extend(["--manifest", manifest.to_str().unwrap()]);
        }
        vault_cli(&args)
    };
    assert!(verify(&a, Some(&a_manifest)).status.success());
    assert!(verify(&b, Some(&b_manifest)).status.success());
    // B's manifest (with its valid signature) next to recording A.
    let swapped = verify(&a, Some(&b_manifest));
    assert!(!swapped.status.success());
    assert!(String::from_utf8_lossy(&swapped.stderr).contains("another recording"));
    // Recording A renamed to C, together with its signature.
    let c = ws.path("call-c.mp4.age");
    std::fs::rename(&a, &c).unwrap();
    std::fs::rename(
        vault::sign::signature_path(&a),
        vault::sign::signature_path(&c),
    )
    .unwrap();
    let renamed = verify(&c, None);
    assert!(!renamed.status.success());
    assert!(String::from_utf8_lossy(&renamed.stderr).contains("renamed"));
    let error = play(&ws, &c, &format!("verify-key={public}")).unwrap_err();
    assert!(error.contains("renamed"), "{error}");
    // The signature names the call and the recipients.
    let comment = std::fs::read_to_string(vault::sign::signature_path(&b)).unwrap();
    assert!(comment.contains("\"call_id\":\"B\"") && comment.contains("\"recipients\""));
}
