use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct BackgroundFx(ObjectSubclass<imp::BackgroundFx>)
        @extends gst_video::VideoFilter, gst_base::BaseTransform, gst::Element, gst::Object;
}

/// The `effect` property's values.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum, Default)]
#[repr(u32)]
#[enum_type(name = "GstBackgroundFxEffect")]
pub enum Effect {
    #[enum_value(
        name = "None: pass the frame through (alpha-output still applies)",
        nick = "none"
    )]
    None = 0,
    #[default]
    #[enum_value(name = "Blur: blur the background", nick = "blur")]
    Blur = 1,
    #[enum_value(
        name = "Solid: replace the background with the color property",
        nick = "solid"
    )]
    Solid = 2,
    #[enum_value(
        name = "Picture: replace the background with the picture property",
        nick = "picture"
    )]
    Picture = 3,
}

/// The `picture-fit` property's values.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum, Default)]
#[repr(u32)]
#[enum_type(name = "GstBackgroundFxPictureFit")]
pub enum PictureFit {
    #[default]
    #[enum_value(name = "Cover: fill the frame, crop the overflow", nick = "cover")]
    Cover = 0,
    #[enum_value(
        name = "Contain: fit inside the frame, letterbox with color",
        nick = "contain"
    )]
    Contain = 1,
    #[enum_value(name = "Stretch: scale each axis to the frame", nick = "stretch")]
    Stretch = 2,
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "backgroundfx",
        gst::Rank::NONE,
        BackgroundFx::static_type(),
    )
}
