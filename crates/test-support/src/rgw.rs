//! A real S3 object store for tests: a single-node Ceph RADOS Gateway started by
//! `scripts/rgw.sh` (Debian's packages, installed by `scripts/install-deps.sh`), on free
//! ports, in its own directory, stopped (every daemon, by PID) when dropped, also when the
//! test fails. Its directory is in RAM (`/dev/shm`) where there is one, like the OSD's data:
//! Ceph's monitor refuses to start on a nearly full disk (seen in CI after a cold build).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::paths::{scratch, scratch_in, workspace};
use crate::process::free_tcp_port;

pub struct Rgw {
    dir: PathBuf,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    pub access_key: &'static str,
    pub secret_key: &'static str,
}

impl Rgw {
    /// Starts one; panics with the script's output if it cannot.
    pub fn start(name: &str) -> Rgw {
        let name = format!("rgw-{name}");
        let dir = scratch_in(Path::new("/dev/shm"), &name).unwrap_or_else(|_| scratch(&name));
        Rgw::start_in(dir).unwrap_or_else(|output| {
            panic!("scripts/rgw.sh start failed (scripts/install-deps.sh installs Ceph):\n{output}")
        })
    }

    /// Starts one with its files in `dir` (removed when it is dropped); the error is the
    /// script's output. Whatever it started is stopped by PID also when it fails.
    pub fn start_in(dir: PathBuf) -> Result<Rgw, String> {
        let port = free_tcp_port();
        let rgw = Rgw {
            dir,
            endpoint: format!("http://127.0.0.1:{port}"),
            access_key: "testkey",
            secret_key: "testsecret",
        };
        let output = rgw
            .script("start")
            .env("RGW_PORT", port.to_string())
            .env("MON_PORT", free_tcp_port().to_string())
            .output()
            .expect("scripts/rgw.sh runs");
        if !output.status.success() {
            return Err(format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        Ok(rgw)
    }

    fn script(&self, action: &str) -> Command {
        let mut command = Command::new(workspace().join("scripts/rgw.sh"));
        command.arg(action).env("CEPH_DIR", self.dir.join("ceph"));
        command
    }

    /// The environment an AWS tool needs to reach this store.
    pub fn aws_env(&self) -> [(&'static str, String); 4] {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", self.access_key.to_string()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_key.to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
        ]
    }
}

impl Drop for Rgw {
    fn drop(&mut self) {
        let _ = self.script("stop").status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
