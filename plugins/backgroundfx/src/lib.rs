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
