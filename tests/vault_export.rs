//! `vcc-vault export` of a real recording (record_call through recordmux and
//! encryptedfilesink): cut to a range, a span redacted, measured in the output (luma, RMS),
//! and a signed export manifest citing the source.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;
use test_support::probe::{audio_rms, luma_at, packet_spans};

fn vcc_vault(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(test_support::paths::built("vcc-vault"))
        .args(args)
        .output()
        .unwrap()
}

fn export(
    dir: &Path,
    recording: &Path,
    format: &str,
    extra: &[&str],
) -> (Output, std::path::PathBuf) {
    let output = dir.join(format!("excerpt.{format}"));
    let mut args: Vec<std::ffi::OsString> = vec!["export".into(), recording.into()];
    args.extend(["--identity".into(), dir.join("key.txt").into()]);
    args.extend(["--key".into(), dir.join("vcc.pub").into()]);
    args.extend(["--signing-key".into(), dir.join("vcc.key").into()]);
    args.extend([
        "--format".into(),
        format.into(),
        "-o".into(),
        output.clone().into(),
    ]);
    args.extend(extra.iter().map(|a| a.into()));
    let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    (vcc_vault(&refs), output)
}

#[test]
fn an_export_is_cut_redacted_and_signed() {
    let dir = scratch("vault-export");
    write_keys(&dir);
    let recording = dir.join("call.mp4.age");
    let status = Command::new(example("record_call"))
        .args([
            "--seconds",
            "6",
            "--effect",
            "none",
            "--call-id",
            "call-export",
        ])
        .args(key_args(&dir))
        .arg("--output")
        .arg(&recording)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let cut = ["--from", "1", "--to", "5", "--redact", "2-3"];
    let (result, mp4) = export(&dir, &recording, "mp4", &cut);
    assert!(result.status.success(), "{result:?}");
    // 4 s long; recording 2-3 s is output 1-2 s: black and silent, the rest not.
    let spans = packet_spans(&mp4);
    assert!((spans["video"].1 - 4.0).abs() < 0.2, "{spans:?}");
    assert!(luma_at(&mp4, 1.5) < 20.0, "redacted video is not black");
    for at in [0.5, 2.5, 3.5] {
        assert!(luma_at(&mp4, at) > 40.0, "video at {at} s is dark");
    }
    assert!(
        audio_rms(&mp4, 1.1, 1.9) < 0.001,
        "redacted audio is not silent"
    );
    assert!(audio_rms(&mp4, 0.2, 0.8) > 0.05);
    assert!(audio_rms(&mp4, 2.2, 3.8) > 0.05);
    // The export manifest cites the source and the redaction; both are signed.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("excerpt.mp4.json")).unwrap()).unwrap();
    assert_eq!(manifest["source"]["call_id"], "call-export");
    assert_eq!(manifest["source"]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(manifest["redactions"][0]["start_s"], 2.0);
    assert_eq!(
        manifest["output"]["sha256"],
        test_support::probe::sha256_of(&mp4)
    );
    assert_signed(&dir.join("vcc.pub"), &mp4);
    assert_signed(&dir.join("vcc.pub"), &dir.join("excerpt.mp4.json"));

    // WAV: the voice only, same cut and redaction.
    let (result, wav) = export(&dir, &recording, "wav", &cut);
    assert!(result.status.success(), "{result:?}");
    assert!(audio_rms(&wav, 1.1, 1.9) < 0.001);
    assert!(audio_rms(&wav, 0.2, 0.8) > 0.05);

    // Never overwritten; a wrong identity is named and leaves nothing behind.
    let (again, _) = export(&dir, &recording, "mp4", &cut);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));
    std::fs::write(dir.join("key.txt"), vault::keys::generate_identity().0).unwrap();
    let (wrong, webm) = export(&dir, &recording, "webm", &cut);
    assert!(!wrong.status.success());
    let text = String::from_utf8_lossy(&wrong.stderr);
    assert!(text.contains("call.mp4.age"), "{text}");
    assert!(!webm.exists() && !dir.join("excerpt.webm.partial").exists());
    std::fs::remove_dir_all(dir).unwrap();
}
