//! GStreamer glue for `encryptedfilesink`; the format lives in `crate::format`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex, MutexGuard};
use std::time::Duration;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;

use crate::format::{self, Protection, SyncingFile, VaultError};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "encryptedfilesink",
        gst::DebugColorFlags::empty(),
        Some("age-encrypted, minisign-signed file sink"),
    )
});

#[derive(Debug, Clone)]
struct Settings {
    location: Option<PathBuf>,
    recipients: String,
    recipients_file: Option<PathBuf>,
    passphrase: Option<String>,
    signing_key: Option<PathBuf>,
    manifest: Option<PathBuf>,
    fsync_interval_ms: u32,
    overwrite: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            location: None,
            recipients: String::new(),
            recipients_file: None,
            passphrase: None,
            signing_key: None,
            manifest: None,
            fsync_interval_ms: 1000,
            overwrite: false,
        }
    }
}

struct Recording {
    location: PathBuf,
    partial: PathBuf,
    writer: age::stream::StreamWriter<SyncingFile>,
    signing_key: Option<minisign::SecretKey>,
    manifest: Option<PathBuf>,
    bytes: u64,
}

#[derive(Default)]
enum State {
    #[default]
    Stopped,
    Recording(Box<Recording>),
    Finished,
}

#[derive(Default)]
pub struct EncryptedFileSink {
    settings: Mutex<Settings>,
    state: Mutex<State>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn partial_path(location: &Path) -> PathBuf {
    let mut name = location.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

fn sync_directory(path: &Path) {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(dir) = File::open(dir)
    {
        let _ = dir.sync_all();
    }
}

impl EncryptedFileSink {
    fn open(&self, settings: &Settings) -> Result<Recording, gst::ErrorMessage> {
        let settings_error =
            |message: String| gst::error_msg!(gst::ResourceError::Settings, ("{message}"));
        let location = settings
            .location
            .clone()
            .ok_or_else(|| settings_error("no location set".into()))?;
        let protection = match &settings.passphrase {
            Some(passphrase) => Protection::Passphrase(passphrase.clone()),
            None => Protection::Recipients(
                format::parse_recipients(&settings.recipients, settings.recipients_file.as_deref())
                    .map_err(|e| settings_error(e.to_string()))?,
            ),
        };
        let signing_key = settings
            .signing_key
            .as_deref()
            .map(format::load_signing_key)
            .transpose()
            .map_err(|e| settings_error(e.to_string()))?;
        if location.exists() && !settings.overwrite {
            return Err(gst::error_msg!(
                gst::ResourceError::OpenWrite,
                (
                    "'{}' exists: refusing to overwrite a recording (set overwrite=true to replace it)",
                    location.display()
                )
            ));
        }
        let partial = partial_path(&location);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&partial)
            .map_err(|e| {
                let hint = if e.kind() == std::io::ErrorKind::AlreadyExists {
                    " (left by an interrupted recording: recover it with `vcc-vault recover` or remove it)"
                } else {
                    ""
                };
                gst::error_msg!(
                    gst::ResourceError::OpenWrite,
                    ("cannot create '{}': {e}{hint}", partial.display())
                )
            })?;
        let interval = (settings.fsync_interval_ms > 0)
            .then(|| Duration::from_millis(settings.fsync_interval_ms as u64));
        let writer = format::encrypt(&protection, SyncingFile::new(file, interval))
            .map_err(|e| settings_error(e.to_string()))?;
        gst::info!(CAT, imp = self, "recording to {}", partial.display());
        Ok(Recording {
            location,
            partial,
            writer,
            signing_key,
            manifest: settings.manifest.clone(),
            bytes: 0,
        })
    }

    /// Completes the age stream, makes it durable, renames it into place and signs it.
    fn finish(&self, recording: Recording) -> Result<(), VaultError> {
        let write_error = |source| VaultError::Write {
            path: recording.partial.clone(),
            source,
        };
        let file = recording.writer.finish().map_err(write_error)?;
        file.finish().map_err(write_error)?;
        std::fs::rename(&recording.partial, &recording.location).map_err(|source| {
            VaultError::Write {
                path: recording.location.clone(),
                source,
            }
        })?;
        sync_directory(&recording.location);
        if let Some(key) = &recording.signing_key {
            let name = recording
                .location
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let comment = format!("file:{name} plaintext-bytes:{}", recording.bytes);
            format::sign_file(&recording.location, key, &comment)?;
            if let Some(manifest) = &recording.manifest {
                format::sign_file(manifest, key, &format!("manifest-of:{name}"))?;
            }
        }
        gst::info!(
            CAT,
            imp = self,
            "finished {} ({} bytes of media)",
            recording.location.display(),
            recording.bytes
        );
        Ok(())
    }
}

#[glib::object_subclass]
impl ObjectSubclass for EncryptedFileSink {
    const NAME: &'static str = "GstEncryptedFileSink";
    type Type = super::EncryptedFileSink;
    type ParentType = gst_base::BaseSink;
}

impl ObjectImpl for EncryptedFileSink {
    fn constructed(&self) {
        self.parent_constructed();
        // A file sink writes as fast as data comes, like filesink.
        self.obj().set_sync(false);
    }

    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let ready = glib::ParamFlags::READWRITE | gst::PARAM_FLAG_MUTABLE_READY;
            vec![
                glib::ParamSpecString::builder("location")
                    .nick("Location")
                    .blurb("Recording to write (e.g. call.mp4.age); written as <location>.partial and renamed at EOS")
                    .flags(ready)
                    .build(),
                glib::ParamSpecString::builder("recipients")
                    .nick("Recipients")
                    .blurb("age X25519 public keys (age1...), separated by commas or spaces; every one can decrypt")
                    .flags(ready)
                    .build(),
                glib::ParamSpecString::builder("recipients-file")
                    .nick("Recipients file")
                    .blurb("File of age public keys, one per line, # comments (as age -R reads)")
                    .flags(ready)
                    .build(),
                glib::ParamSpecString::builder("passphrase")
                    .nick("Passphrase")
                    .blurb("Encrypt with an scrypt passphrase instead of recipients: for tests and development only")
                    .flags(ready)
                    .build(),
                glib::ParamSpecString::builder("signing-key")
                    .nick("Signing key")
                    .blurb("Unencrypted minisign secret key: at EOS, <location>.minisig (and the manifest's) are written")
                    .flags(ready)
                    .build(),
                glib::ParamSpecString::builder("manifest")
                    .nick("Manifest")
                    .blurb("A file written beside the recording (e.g. recordmux's JSON manifest) to sign too at EOS")
                    .flags(ready | gst::PARAM_FLAG_MUTABLE_PLAYING)
                    .build(),
                glib::ParamSpecUInt::builder("fsync-interval")
                    .nick("fsync interval")
                    .blurb("Milliseconds between fsyncs of the written data (0 = only at EOS); a crash loses at most this plus one 64 KiB chunk")
                    .default_value(1000)
                    .flags(ready)
                    .build(),
                glib::ParamSpecBoolean::builder("overwrite")
                    .nick("Overwrite")
                    .blurb("Replace an existing recording at location instead of failing")
                    .default_value(false)
                    .flags(ready)
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut settings = lock(&self.settings);
        let path = || {
            value
                .get::<Option<String>>()
                .expect("type checked upstream")
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
        };
        match pspec.name() {
            "location" => settings.location = path(),
            "recipients" => {
                settings.recipients = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .unwrap_or_default()
            }
            "recipients-file" => settings.recipients_file = path(),
            "passphrase" => {
                settings.passphrase = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .filter(|s| !s.is_empty())
            }
            "signing-key" => settings.signing_key = path(),
            "manifest" => {
                settings.manifest = path();
                // The manifest may be set late (recordmux writes it at EOS).
                if let State::Recording(recording) = &mut *lock(&self.state) {
                    recording.manifest = settings.manifest.clone();
                }
            }
            "fsync-interval" => settings.fsync_interval_ms = value.get().expect("type checked"),
            "overwrite" => settings.overwrite = value.get().expect("type checked"),
            other => unreachable!("unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let settings = lock(&self.settings);
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string()).to_value();
        match pspec.name() {
            "location" => path(&settings.location),
            "recipients" => settings.recipients.to_value(),
            "recipients-file" => path(&settings.recipients_file),
            // Never read secrets back.
            "passphrase" => None::<String>.to_value(),
            "signing-key" => path(&settings.signing_key),
            "manifest" => path(&settings.manifest),
            "fsync-interval" => settings.fsync_interval_ms.to_value(),
            "overwrite" => settings.overwrite.to_value(),
            other => unreachable!("unknown property {other}"),
        }
    }
}

impl GstObjectImpl for EncryptedFileSink {}

impl ElementImpl for EncryptedFileSink {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Encrypted file sink",
                "Sink/File",
                "Writes the stream to an age-encrypted file (X25519 recipients), atomically renamed and minisign-signed at EOS",
                "gst-vcc developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            vec![
                gst::PadTemplate::new(
                    "sink",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Always,
                    &gst::Caps::new_any(),
                )
                .expect("valid template"),
            ]
        });
        PAD_TEMPLATES.as_ref()
    }
}

impl BaseSinkImpl for EncryptedFileSink {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = lock(&self.settings).clone();
        let recording = self.open(&settings)?;
        *lock(&self.state) = State::Recording(Box::new(recording));
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        if let State::Recording(recording) = std::mem::take(&mut *lock(&self.state)) {
            // No EOS: leave the partial file as it is; every complete chunk in it decrypts.
            gst::warning!(
                CAT,
                imp = self,
                "stopped without EOS: '{}' kept unfinished ({} bytes); `vcc-vault recover` reads it",
                recording.partial.display(),
                recording.bytes
            );
        }
        Ok(())
    }

    fn render(&self, buffer: &gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let mut state = lock(&self.state);
        let State::Recording(recording) = &mut *state else {
            gst::element_imp_error!(
                self,
                gst::CoreError::Failed,
                ("not recording (data after EOS?)")
            );
            return Err(gst::FlowError::Error);
        };
        let map = buffer.map_readable().map_err(|_| {
            gst::element_imp_error!(self, gst::CoreError::Failed, ("cannot map buffer"));
            gst::FlowError::Error
        })?;
        if let Err(error) = recording.writer.write_all(&map) {
            gst::element_imp_error!(
                self,
                gst::ResourceError::Write,
                (
                    "write to '{}' failed: {error}; the {} bytes recorded so far stay in that file and `vcc-vault recover` reads them",
                    recording.partial.display(),
                    recording.bytes
                )
            );
            return Err(gst::FlowError::Error);
        }
        recording.bytes += map.len() as u64;
        Ok(gst::FlowSuccess::Ok)
    }

    fn event(&self, event: gst::Event) -> bool {
        if let gst::EventView::Eos(_) = event.view() {
            let state = std::mem::replace(&mut *lock(&self.state), State::Finished);
            if let State::Recording(recording) = state {
                let manifest = lock(&self.settings).manifest.clone();
                let mut recording = *recording;
                recording.manifest = manifest.or(recording.manifest);
                if let Err(error) = self.finish(recording) {
                    gst::element_imp_error!(self, gst::ResourceError::Write, ("{error}"));
                    return false;
                }
            }
        }
        self.parent_event(event)
    }
}
