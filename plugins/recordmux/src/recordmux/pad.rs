//! recordmux's request pads: ghost pads with a `recording` property that pauses (masks) this
//! stream alone, e.g. the customer's audio while the agent's goes on recording.

use std::sync::LazyLock;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

glib::wrapper! {
    pub struct RecordMuxPad(ObjectSubclass<imp::RecordMuxPad>)
        @extends gst::GhostPad, gst::ProxyPad, gst::Pad, gst::Object;
}

mod imp {
    use super::*;

    #[derive(Default)]
    pub struct RecordMuxPad;

    #[glib::object_subclass]
    impl ObjectSubclass for RecordMuxPad {
        const NAME: &'static str = "GstRecordMuxPad";
        type Type = super::RecordMuxPad;
        type ParentType = gst::GhostPad;
    }

    impl ObjectImpl for RecordMuxPad {
        fn properties() -> &'static [glib::ParamSpec] {
            static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
                vec![
                    glib::ParamSpecBoolean::builder("recording")
                        .nick("Recording")
                        .blurb("Set false to pause this stream alone (its media is masked: silence, black, left out if encoded; the others go on and stay in sync), true to resume; as the element's pause-stream/resume-stream signals")
                        .default_value(true)
                        .mutable_playing()
                        .build(),
                ]
            });
            PROPERTIES.as_ref()
        }

        fn set_property(&self, _id: usize, value: &glib::Value, _pspec: &glib::ParamSpec) {
            let recording: bool = value.get().expect("type checked upstream");
            let pad = self.obj();
            if let Some(element) = pad
                .parent()
                .and_then(|parent| parent.downcast::<crate::RecordMux>().ok())
            {
                element
                    .imp()
                    .request_stream(pad.name().as_str(), recording, "pad property");
            }
        }

        fn property(&self, _id: usize, _pspec: &glib::ParamSpec) -> glib::Value {
            let pad = self.obj();
            pad.parent()
                .and_then(|parent| parent.downcast::<crate::RecordMux>().ok())
                .and_then(|element| element.imp().stream_recording(pad.name().as_str()))
                .unwrap_or(true)
                .to_value()
        }
    }

    impl GstObjectImpl for RecordMuxPad {}
    impl PadImpl for RecordMuxPad {}
    impl ProxyPadImpl for RecordMuxPad {}
    impl GhostPadImpl for RecordMuxPad {}
}
