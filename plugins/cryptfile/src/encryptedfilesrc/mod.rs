use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct EncryptedFileSrc(ObjectSubclass<imp::EncryptedFileSrc>)
        @extends gst_base::BaseSrc, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "encryptedfilesrc",
        gst::Rank::NONE,
        EncryptedFileSrc::static_type(),
    )
}
