//! `backgroundfx`: person segmentation and background blur / replacement for video calls.
//!
//! The processing lives in plain modules (`segmenter` and its `depthwise_layout`, `model_input`, `refine`, `blur`,
//! `picture`, `composite`, `processor`, on the `plane` type and the one `boxfilter`); `backgroundfx/imp.rs` is the GStreamer glue.

pub mod blur;
pub mod boxfilter;
pub mod composite;
pub mod depthwise_layout;
pub mod layout;
pub mod model_input;
pub mod picture;
pub mod plane;
pub mod processor;
pub mod refine;
pub mod resample;
pub mod segmenter;

mod backgroundfx;

pub use backgroundfx::{BackgroundFx, Effect, PictureFit};

fn plugin_init(plugin: &gst::Plugin) -> Result<(), gst::glib::BoolError> {
    // Before any code built for the CPU extensions this build assumes can run.
    if let Some(message) = cpu::unsupported() {
        return Err(gst::glib::bool_error!("{message}"));
    }
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
