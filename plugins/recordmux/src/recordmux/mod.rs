use gst::glib;
use gst::prelude::*;

mod imp;

pub use imp::{Container, PauseMode};

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
