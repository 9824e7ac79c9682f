//! What the examples share: where and how the call is recorded.

use std::path::PathBuf;

/// Recording options: a plain file, or encrypted (and signed) with encryptedfilesink.
#[derive(clap::Args, Clone)]
pub struct RecordingArgs {
    /// Recording (fragmented MP4); its JSON manifest is written to <output>.json.
    #[arg(long, default_value = "call.mp4")]
    pub output: PathBuf,
    /// age recipients file: encrypt the recording with encryptedfilesink.
    #[arg(long)]
    pub recipients_file: Option<PathBuf>,
    /// minisign secret key: sign recording and manifest (with --recipients-file).
    #[arg(long)]
    pub signing_key: Option<PathBuf>,
}

impl RecordingArgs {
    /// The manifest recordmux writes beside the recording.
    pub fn manifest(&self) -> PathBuf {
        PathBuf::from(format!("{}.json", self.output.display()))
    }

    /// gst-launch description of the sink that writes the recording, named `recording`. It
    /// does not preroll: in a live call a sink that waits for its first buffer in PAUSED holds
    /// every other branch of the pipeline until the recording has data, which may depend on
    /// those branches.
    pub fn sink(&self) -> String {
        match &self.recipients_file {
            Some(recipients) => format!(
                "encryptedfilesink name=recording async=false overwrite=true location=\"{}\" \
                 recipients-file=\"{}\" manifest=\"{}\" {}",
                self.output.display(),
                recipients.display(),
                self.manifest().display(),
                self.signing_key
                    .as_ref()
                    .map(|key| format!("signing-key=\"{}\"", key.display()))
                    .unwrap_or_default()
            ),
            None => format!(
                "filesink name=recording async=false location=\"{}\"",
                self.output.display()
            ),
        }
    }
}
