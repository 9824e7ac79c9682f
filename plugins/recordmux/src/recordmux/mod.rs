//! The `recordmux` element. `imp.rs` is the GObject glue (properties, pads, state changes);
//! the element's work is split by responsibility:
//! - `branch.rs`: what each input's branch is made of (a recipe from caps and settings) and
//!   its elements;
//! - `gate_path.rs`: the per-stream gate probe (main stream and secondaries), retiming;
//! - `output.rs`: the source pad (hashing what the sink accepted, manifests, messages);
//! - `state.rs`: what the streaming threads share, with one [`state::Stream`] per input;
//! - `settings.rs`: the settings and the enums shown by gst-inspect.
//!
//! The decisions themselves are plain Rust without GStreamer: `crate::gate`,
//! `crate::timeline`, `crate::pcm`, `crate::manifest`.

use std::sync::LazyLock;

use gst::glib;
use gst::prelude::*;

mod branch;
mod dtmf_path;
mod gate_path;
mod imp;
mod output;
mod pad;
mod segments;
mod settings;
mod state;

pub use pad::RecordMuxPad;
pub use settings::{Container, PauseMode, VideoPreset};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "recordmux",
        gst::DebugColorFlags::empty(),
        Some("call recording muxer with pause/resume"),
    )
});

glib::wrapper! {
    pub struct RecordMux(ObjectSubclass<imp::RecordMux>)
        @extends gst::Bin, gst::Element, gst::Object,
        @implements gst::ChildProxy;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "recordmux",
        gst::Rank::NONE,
        RecordMux::static_type(),
    )
}
