use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct EncryptedFileSink(ObjectSubclass<imp::EncryptedFileSink>)
        @extends gst_base::BaseSink, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "encryptedfilesink",
        gst::Rank::NONE,
        EncryptedFileSink::static_type(),
    )
}
