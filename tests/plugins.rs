//! Workspace-level checks: the umbrella crate registers every element statically, and the
//! built plugin libraries load from GST_PLUGIN_PATH like any other GStreamer plugin.

use std::path::PathBuf;
use std::process::Command;

use gst::prelude::*;

/// Every element of the workspace with the plugin library that provides it.
const ELEMENTS: &[(&str, &str)] = &[
    ("libgstbackgroundfx.so", "backgroundfx"),
    ("libgstcryptfile.so", "encryptedfilesink"),
    ("libgstcryptfile.so", "encryptedfilesrc"),
    ("libgstrecordmux.so", "recordmux"),
];

/// `target/<profile>/`, where cargo puts the plugins' cdylibs.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

#[test]
fn umbrella_registers_every_element() {
    gst::init().unwrap();
    gstvcc::register().unwrap();
    for (_, name) in ELEMENTS {
        assert!(
            gst::ElementFactory::find(name).is_some(),
            "{name} not registered"
        );
    }
    let pipeline = gst::parse::launch(
        "videotestsrc num-buffers=5 pattern=ball ! video/x-raw,width=320,height=180 ! backgroundfx ! fakesink",
    )
    .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let message = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(60),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("pipeline finishes");
    assert_eq!(message.type_(), gst::MessageType::Eos, "{message:?}");
    pipeline.set_state(gst::State::Null).unwrap();
}

#[test]
fn plugins_load_from_gst_plugin_path() {
    let target = target_dir();
    let registry =
        std::env::temp_dir().join(format!("gst-vcc-registry-{}.bin", std::process::id()));
    for (plugin, element) in ELEMENTS {
        assert!(
            target.join(plugin).exists(),
            "{plugin} not built in {}: run `cargo build --workspace` first",
            target.display()
        );
        let output = Command::new("gst-inspect-1.0")
            .arg(element)
            .env("GST_PLUGIN_PATH", &target)
            .env("GST_REGISTRY", &registry)
            .output()
            .expect("gst-inspect-1.0 runs (package gstreamer1.0-tools)");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            text.contains(&format!(
                "Filename                 {}",
                target.join(plugin).display()
            )),
            "{text}"
        );
    }
    std::fs::remove_file(registry).ok();
}
