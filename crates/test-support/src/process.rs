//! Child processes that are always cleaned up, and free ports.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, UdpSocket};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A UDP port nobody uses right now.
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A TCP port nobody listens on right now.
pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process in its own process group, killed with everything it started (a browser,
/// say) when dropped, so a failing test leaves nothing behind.
pub struct ChildGuard(pub Child);

impl ChildGuard {
    pub fn spawn(command: &mut Command) -> ChildGuard {
        ChildGuard(
            command
                .process_group(0)
                .spawn()
                .unwrap_or_else(|err| panic!("{command:?}: {err}")),
        )
    }

    /// Echoes the child's stderr (piped) to ours and waits at most `limit` for a line starting
    /// with `prefix` (e.g. a server saying it listens).
    pub fn wait_for_stderr_line(&mut self, prefix: &'static str, limit: Duration) {
        let stderr = self.0.stderr.take().expect("stderr is piped");
        let (found, seen) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[child] {line}");
                if line.starts_with(prefix) {
                    let _ = found.send(());
                }
            }
        });
        seen.recv_timeout(limit)
            .unwrap_or_else(|_| panic!("no '{prefix}' line within {limit:?}"));
    }

    /// Waits at most `limit` for the process to exit by itself; returns its success.
    pub fn wait_for(&mut self, limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("process did not exit within {limit:?}");
    }

    /// Sends `signal` to the process (not its group).
    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: a plain syscall on the child this guard owns.
        unsafe { libc::kill(self.0.id() as libc::pid_t, signal) };
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        // Even if the child exited, what it started may live on in its group.
        // SAFETY: a plain syscall on the process group this guard created.
        unsafe { libc::killpg(self.0.id() as libc::pid_t, libc::SIGKILL) };
        let _ = self.0.wait();
    }
}
