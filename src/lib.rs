//! `gst-vcc`: every gst-vcc element in one crate, for media servers that link the elements
//! statically instead of loading plugins from `GST_PLUGIN_PATH`.
//!
//! ```no_run
//! gst::init().unwrap();
//! gstvcc::register().unwrap();
//! let _pipeline = gst::parse::launch("videotestsrc ! backgroundfx ! fakesink").unwrap();
//! ```

pub use gst;

/// Registers every element of every gst-vcc plugin with GStreamer (idempotent).
pub fn register() -> Result<(), gst::glib::BoolError> {
    gstbackgroundfx::plugin_register_static()?;
    gstcryptfile::plugin_register_static()?;
    gstrecordmux::plugin_register_static()?;
    Ok(())
}
