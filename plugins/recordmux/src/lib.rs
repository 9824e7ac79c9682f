//! `recordmux`: a call recording muxer with PCI pause/resume.
//!
//! The decisions live in plain modules without GStreamer types: `gate` (which part of every
//! buffer is recorded, and where it goes on the recording's timeline), `pcm` (cutting and
//! silencing audio at sample precision, black frames), `manifest` (the JSON account of the
//! recording) and `isobmff` (a fix-up for mp4mux 1.22's Opus sample entry). `recordmux/imp.rs` is the glue: a bin that builds one branch per input stream
//! (passthrough for encoded media the container can hold, encode for raw media, decode and
//! encode otherwise) in front of a fragmented MP4 or Matroska/WebM muxer.

pub mod dtmf;
pub mod gate;
pub mod isobmff;
pub mod manifest;
pub mod pcm;
pub mod rotation;
pub mod stream_mask;
pub mod timeline;

mod recordmux;

pub use recordmux::{Container, PauseMode, RecordMux, RecordMuxPad, VideoPreset};

fn plugin_init(plugin: &gst::Plugin) -> Result<(), gst::glib::BoolError> {
    // Before any code built for the CPU extensions this build assumes can run.
    if let Some(message) = cpu::unsupported() {
        return Err(gst::glib::bool_error!("{message}"));
    }
    recordmux::register(plugin)
}

gst::plugin_define!(
    recordmux,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "MPL",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_REPOSITORY"),
    env!("BUILD_REL_DATE")
);
