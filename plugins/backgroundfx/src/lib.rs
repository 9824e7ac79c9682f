//! `backgroundfx`: person segmentation and background blur / replacement for video calls.
//!
//! The processing lives in plain modules (`segmenter`, `resample`, `refine`, `composite`,
//! `processor`); `backgroundfx/imp.rs` is the GStreamer glue.

pub mod composite;
pub mod layout;
pub mod processor;
pub mod refine;
pub mod resample;
pub mod segmenter;

mod backgroundfx;

pub use backgroundfx::{BackgroundFx, Effect, PictureFit};

fn plugin_init(plugin: &gst::Plugin) -> Result<(), gst::glib::BoolError> {
    backgroundfx::register(plugin)
}

gst::plugin_define!(
    backgroundfx,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "MPL",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_REPOSITORY"),
    env!("BUILD_REL_DATE")
);
