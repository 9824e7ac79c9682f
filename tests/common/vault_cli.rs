//! Running `vcc-vault` against a Ceph RGW, and recording calls for it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use test_support::rgw::Rgw;

/// Runs vcc-vault against `rgw`, auditing into `<dir>/audit.jsonl` (with `<dir>/audit.key`).
pub fn vcc_vault(rgw: &Rgw, dir: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(test_support::paths::built("vcc-vault"));
    command
        .args(args)
        .env("VCC_AUDIT_LOG", dir.join("audit.jsonl"))
        .env("VCC_AUDIT_KEY", dir.join("audit.key"));
    for (name, value) in rgw.aws_env() {
        command.env(name, value);
    }
    command.output().unwrap()
}

pub fn json_lines(output: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}")))
        .collect()
}

/// Records a 3 s call `call_id` with the record_call example, encrypted to the keys of `dir`
/// (and signed), with `extra` arguments; returns the recording.
pub fn record(dir: &Path, call_id: &str, extra: &[&str]) -> PathBuf {
    let output = dir.join(format!("{call_id}.mp4.age"));
    let status = Command::new(super::example("record_call"))
        .args(["--seconds", "3", "--effect", "none", "--call-id", call_id])
        .args(super::key_args(dir))
        .args(extra)
        .arg("--output")
        .arg(&output)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    output
}

/// Writes the audit signing key pair `<dir>/audit.key` and `<dir>/audit.pub`.
pub fn write_audit_keys(dir: &Path) {
    let (secret, public) = vault::keys::generate_signing_keys().unwrap();
    std::fs::write(dir.join("audit.key"), secret).unwrap();
    std::fs::write(dir.join("audit.pub"), public).unwrap();
}
