//! `cryptfile`: recordings encrypted at rest with age and signed with minisign.
//!
//! The format is the `vault` crate (no GStreamer); `encryptedfilesink/imp.rs` and
//! `encryptedfilesrc/imp.rs` are glue.

mod encryptedfilesink;
mod encryptedfilesrc;

pub use encryptedfilesink::EncryptedFileSink;
pub use encryptedfilesrc::EncryptedFileSrc;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), gst::glib::BoolError> {
    // Before any code built for the CPU extensions this build assumes can run.
    if let Some(message) = cpu::unsupported() {
        return Err(gst::glib::bool_error!("{message}"));
    }
    encryptedfilesink::register(plugin)?;
    encryptedfilesrc::register(plugin)
}

gst::plugin_define!(
    cryptfile,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "MPL",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_REPOSITORY"),
    env!("BUILD_REL_DATE")
);
