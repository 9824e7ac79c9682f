//! Helpers the gst-vcc test crates share. A dev-dependency only: nothing here ships.
//!
//! - [`paths`]: the workspace, its fetched media, the build's target directory, scratch
//!   directories;
//! - [`process`]: child processes killed with their whole process group, free ports;
//! - [`probe`]: what ffprobe/ffmpeg say of a recording (packets, frames, luma, RMS, hashes);
//! - [`demux`]: a recording's Matroska streams as buffers, for exact checks;
//! - [`pipeline`]: real media decoded through GStreamer (frames for processing tests);
//! - [`rgw`]: a real S3 object store (Ceph RADOS Gateway) per test, stopped on drop.

pub mod demux;
pub mod paths;
pub mod pipeline;
pub mod probe;
pub mod process;
pub mod rgw;
