//! What the examples share: where and how a call is recorded.

// Each example uses some of these.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// One recording at a fixed path (an example that records one call per process).
#[derive(clap::Args, Clone)]
pub struct RecordingArgs {
    /// Recording (fragmented MP4); its JSON manifest is written to <output>.json. Never
    /// overwritten.
    #[arg(long, default_value = "call.mp4")]
    pub output: PathBuf,
    #[command(flatten)]
    pub protection: Protection,
    /// The call's customer reference (recordmux customer-reference; with --key-vault, whose
    /// key the recording is encrypted to).
    #[arg(long)]
    pub customer: Option<String>,
    /// Key vault (with --recipients-file): the recording is encrypted only to the customer's
    /// own key, kept there encrypted to the recipients; `vcc-vault erase` destroys it.
    #[arg(long, requires_all = ["recipients_file", "customer"])]
    pub key_vault: Option<PathBuf>,
}

impl RecordingArgs {
    pub fn manifest(&self) -> PathBuf {
        manifest_of(&self.output)
    }

    /// recordmux's `customer-reference=...` property, if a customer was given.
    pub fn customer_property(&self) -> String {
        self.customer
            .as_ref()
            .map(|customer| format!("customer-reference=\"{customer}\""))
            .unwrap_or_default()
    }

    pub fn sink(&self) -> String {
        let sink = self.protection.sink(&self.output, &self.manifest());
        match (&self.key_vault, &self.customer) {
            (Some(vault), Some(customer)) => format!(
                "{sink} key-vault=\"{}\" customer-reference=\"{customer}\"",
                vault.display()
            ),
            _ => sink,
        }
    }
}

/// How recordings are protected: a plain file, or encrypted (and signed) with
/// encryptedfilesink.
#[derive(clap::Args, Clone)]
pub struct Protection {
    /// age recipients file: encrypt the recording with encryptedfilesink.
    #[arg(long)]
    pub recipients_file: Option<PathBuf>,
    /// minisign secret key: sign recording and manifest (with --recipients-file).
    #[arg(long)]
    pub signing_key: Option<PathBuf>,
}

impl Protection {
    /// The file name suffix of a recording: `.mp4`, or `.mp4.age` when encrypted.
    pub fn extension(&self) -> &'static str {
        if self.recipients_file.is_some() {
            "mp4.age"
        } else {
            "mp4"
        }
    }

    /// gst-launch description of the sink that writes `location`, named `recording`. It never
    /// overwrites an existing recording. It does not preroll: in a live call a sink that
    /// waits for its first buffer in PAUSED holds every other branch of the pipeline until
    /// the recording has data, which may depend on those branches.
    pub fn sink(&self, location: &Path, manifest: &Path) -> String {
        match &self.recipients_file {
            Some(recipients) => format!(
                "encryptedfilesink name=recording async=false location=\"{}\" \
                 recipients-file=\"{}\" manifest=\"{}\" {}",
                location.display(),
                recipients.display(),
                manifest.display(),
                self.signing_key
                    .as_ref()
                    .map(|key| format!("signing-key=\"{}\"", key.display()))
                    .unwrap_or_default()
            ),
            None => format!(
                "filesink name=recording async=false location=\"{}\"",
                location.display()
            ),
        }
    }
}

/// The manifest recordmux writes beside a recording.
pub fn manifest_of(recording: &Path) -> PathBuf {
    PathBuf::from(format!("{}.json", recording.display()))
}

/// Refuses to record over an existing recording (or what a crash left of one).
pub fn check_free(recording: &Path) -> Result<(), String> {
    let partial = PathBuf::from(format!("{}.partial", recording.display()));
    for path in [recording, &partial, &manifest_of(recording)] {
        if path.exists() {
            return Err(format!(
                "'{}' exists: refusing to overwrite a recording",
                path.display()
            ));
        }
    }
    Ok(())
}

/// A pause or resume recordmux applied (its `recordmux-paused` / `recordmux-resumed` element
/// message): what an example acknowledges to whoever asked for it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Transition {
    pub paused: bool,
    pub running_time_ns: Option<u64>,
    pub requested_running_time_ns: Option<u64>,
    pub reason: String,
}

impl Transition {
    /// The transition an element message announces, if it is one.
    pub fn from_message(structure: &gst::StructureRef) -> Option<Transition> {
        let paused = match structure.name().as_str() {
            "recordmux-paused" => true,
            "recordmux-resumed" => false,
            _ => return None,
        };
        let time = |field: &str| {
            structure
                .get::<gst::ClockTime>(field)
                .ok()
                .map(gst::ClockTime::nseconds)
        };
        Some(Transition {
            paused,
            running_time_ns: time("running-time"),
            requested_running_time_ns: time("requested-running-time"),
            reason: structure.get::<String>("reason").unwrap_or_default(),
        })
    }
}
