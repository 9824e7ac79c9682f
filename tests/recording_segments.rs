//! A long call recorded through recordmux and encryptedfilesink with segment rotation: one
//! encrypted, signed file per segment, each playable on its own, chained by their
//! signatures; `vcc-vault verify --chain` walks the chain and names what is missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use test_support::paths::{built, scratch, target_dir};
use test_support::probe;

fn vault(args: &[&str]) -> std::process::Output {
    Command::new(built("vcc-vault"))
        .args(args)
        .output()
        .unwrap()
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.to_string_lossy().ends_with(".mp4.age"))
        .collect();
    files.sort();
    files
}

/// Records `seconds` of synthetic call (fast, not live) split every `segment_s` seconds.
fn record(dir: &Path, keys: &Path, call: &str, seconds: u64, segment_s: u64) {
    let frames = seconds * 5;
    let output = Command::new("gst-launch-1.0")
        .args(
            format!(
                "recordmux name=rec call-id={call} max-segment-duration={} \
                 video-encoder=x264enc_speed-preset=ultrafast_key-int-max=100_bitrate=64 \
                 audio-encoder=opusenc_bitrate=16000_complexity=0_frame-size=60 \
                 manifest-location={dir}/{call}-%02d.json \
                 ! encryptedfilesink location={dir}/{call}-%02d.mp4.age recipients-file={keys}/recipient.txt \
                   signing-key={keys}/vcc.key manifest={dir}/{call}-%02d.json fsync-interval=0 \
                 videotestsrc num-buffers={frames} pattern=ball ! video/x-raw,width=160,height=120,framerate=5/1 ! rec.video_0 \
                 audiotestsrc num-buffers={frames} samplesperbuffer=1600 ! audio/x-raw,rate=8000,channels=1 ! rec.audio_0",
                segment_s * 1_000_000_000,
                dir = dir.display(),
                keys = keys.display()
            )
            .split_whitespace()
            // Encoder descriptions carry their spaces as underscores through the split.
            .map(|arg| {
                if arg.starts_with("video-encoder=") || arg.starts_with("audio-encoder=") {
                    arg.replace('_', " ")
                } else {
                    arg.to_string()
                }
            }),
        )
        .env("GST_PLUGIN_PATH", target_dir())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_two_hour_call_split_every_ten_minutes_gives_twelve_clean_chained_files() {
    let dir = scratch("two-hours");
    let keys = dir.join("keys");
    assert!(
        vault(&["keygen", "--out-dir", keys.to_str().unwrap()])
            .status
            .success()
    );
    record(&dir, &keys, "long", 2 * 3600, 600);
    let files = segments(&dir);
    assert_eq!(files.len(), 12, "{files:?}");
    for file in &files {
        let plain = file.with_extension("");
        let status = Command::new("age")
            .args(["-d", "-i"])
            .arg(keys.join("key.txt"))
            .arg("-o")
            .arg(&plain)
            .arg(file)
            .status()
            .unwrap();
        assert!(status.success());
        let frames = probe::decode_all(&plain);
        assert!(
            (2990..=3000).contains(&frames),
            "{}: {frames} frames",
            plain.display()
        );
        let spans = probe::packet_spans(&plain);
        assert!(spans["video"].0.abs() < 1e-3, "{spans:?}");
        assert!((spans["audio"].1 - 600.0).abs() < 0.2, "{spans:?}");
        std::fs::remove_file(plain).unwrap();
    }
    let key = keys.join("vcc.pub");
    let key = key.to_str().unwrap();
    let mut args = vec!["verify", "--key", key, "--chain"];
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    args.extend(names.iter().map(String::as_str));
    let manifests: Vec<String> = (0..12)
        .map(|index| {
            dir.join(format!("long-{index:02}.json"))
                .display()
                .to_string()
        })
        .collect();
    for manifest in &manifests {
        args.extend(["--manifest", manifest.as_str()]);
    }
    let output = vault(&args);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("12 segments"));
    // Segment 5 is missing.
    let mut missing: Vec<&str> = vec!["verify", "--key", key, "--chain"];
    missing.extend(
        names
            .iter()
            .enumerate()
            .filter(|(index, _)| *index != 5)
            .map(|(_, name)| name.as_str()),
    );
    let output = vault(&missing);
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(error.contains("segment 5 is missing"), "{error}");
    // Segments 3 and 4 swapped (renamed, with their signatures).
    let swap = |a: &Path, b: &Path| {
        let temporary = dir.join("swap");
        for (from, to) in [(a, temporary.as_path()), (b, a), (temporary.as_path(), b)] {
            std::fs::rename(from, to).unwrap();
            std::fs::rename(
                vault::sign::signature_path(from),
                vault::sign::signature_path(to),
            )
            .unwrap();
        }
    };
    swap(&files[3], &files[4]);
    let output = vault(&args[..4 + names.len()]);
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(
        error.contains("renamed") && error.contains("long-03.mp4.age"),
        "{error}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_segment_of_another_call_does_not_fit_the_chain() {
    let dir = scratch("chain-replaced");
    let keys = dir.join("keys");
    assert!(
        vault(&["keygen", "--out-dir", keys.to_str().unwrap()])
            .status
            .success()
    );
    record(&dir, &keys, "a", 30, 10);
    let other = dir.join("other");
    std::fs::create_dir_all(&other).unwrap();
    record(&other, &keys, "a", 30, 10);
    // Same call id and file name, same signing key: only the chain tells it apart.
    let a = segments(&dir);
    let b = segments(&other);
    std::fs::copy(&b[1], &a[1]).unwrap();
    std::fs::copy(
        vault::sign::signature_path(&b[1]),
        vault::sign::signature_path(&a[1]),
    )
    .unwrap();
    let key = keys.join("vcc.pub");
    let mut args = vec!["verify", "--key", key.to_str().unwrap(), "--chain"];
    let names: Vec<String> = a.iter().map(|f| f.display().to_string()).collect();
    args.extend(names.iter().map(String::as_str));
    let output = vault(&args);
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(
        error.contains("does not follow") && error.contains("a-01.mp4.age"),
        "{error}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
