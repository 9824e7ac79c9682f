//! GStreamer glue for `encryptedfilesink`; the format lives in the `vault` crate.
//!
//! A checkpoint thread makes the recording durable every `fsync-interval`: the chunk being
//! filled is written as the age file's final chunk and synced (see `vault::writer`), so a
//! crash loses at most that interval (plus what the muxer still held), whatever the bitrate.
//!
//! A `location` with a `%d` pattern (e.g. `call-%03d.mp4.age`) makes one file per segment of
//! a rotating recording: a downstream force-key-unit event (what recordmux sends between
//! segments, and multifilesink's `next-file=key-unit-event` takes) finishes and signs the
//! current file and starts the next; each file's signature names its segment and the
//! SHA-256 of the file before it, so a verifier walks the chain.
//!
//! With a signing key, every `checkpoint-interval` seconds the checkpoint thread also appends
//! a *signed checkpoint* to `<location>.checkpoints` (see `vault::checkpoint`): after a crash
//! `vcc-vault verify --partial` proves how much of the `.partial` file is authentic and
//! `vcc-vault recover --proven` cuts exactly there. A finished file's own signature replaces
//! its sidecar, which is then removed.
//!
//! Locks, in the order they may be taken: `settings`, then `state`, then `reporting`.
//! `checkpointer` (the thread's handle) is taken with no other lock held. The thread takes
//! `state`, and when a checkpoint fails, `reporting` before it releases `state`; it holds
//! `reporting` (alone) while it posts the error, and a streaming thread that finds the
//! recording failed takes `reporting` (with no other lock) before it returns an error flow,
//! so the element's error is on the bus before the muxer's "could not multiplex".

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard};

use std::time::{Duration, Instant};
use vault::checkpoint::{self, CheckpointRecord};
use vault::keys::Protection;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;

use vault::keys;
use vault::sign::{self, Binding};
use vault::writer::AgeWriter;
use vault::{VaultError, durable};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "encryptedfilesink",
        gst::DebugColorFlags::empty(),
        Some("age-encrypted, minisign-signed file sink"),
    )
});

const DEFAULT_FSYNC_INTERVAL_MS: u32 = 500;
const DEFAULT_CHECKPOINT_INTERVAL_S: u32 = 5;
/// Longest checkpoint interval accepted (an hour).
const MAX_CHECKPOINT_INTERVAL_S: u32 = 3600;

#[derive(Debug, Clone)]
struct Settings {
    location: Option<PathBuf>,
    recipients: String,
    recipients_file: Option<PathBuf>,
    passphrase: Option<String>,
    key_vault: Option<PathBuf>,
    customer_reference: Option<String>,
    signing_key: Option<PathBuf>,
    manifest: Option<PathBuf>,
    call_id: Option<String>,
    fsync_interval_ms: u32,
    checkpoint_interval_s: u32,
    overwrite: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            location: None,
            recipients: String::new(),
            recipients_file: None,
            passphrase: None,
            key_vault: None,
            customer_reference: None,
            signing_key: None,
            manifest: None,
            call_id: None,
            fsync_interval_ms: DEFAULT_FSYNC_INTERVAL_MS,
            checkpoint_interval_s: DEFAULT_CHECKPOINT_INTERVAL_S,
            overwrite: false,
        }
    }
}

/// What every file of a recording is made with.
#[derive(Clone)]
struct Target {
    /// The location, a pattern if the recording rotates.
    location: PathBuf,
    rotating: bool,
    protection: Protection,
    signing_key: Option<Arc<minisign::SecretKey>>,
    /// The manifest (a pattern when rotating).
    manifest: Option<PathBuf>,
    call_id: Option<String>,
    recipients: Vec<String>,
    overwrite: bool,
}

impl Target {
    fn file(&self, pattern: &Path, index: u64) -> PathBuf {
        if self.rotating {
            PathBuf::from(segment_name(&pattern.to_string_lossy(), index as usize))
        } else {
            pattern.to_path_buf()
        }
    }
}

struct Recording {
    target: Target,
    /// Segment index of a rotating recording.
    index: u64,
    /// SHA-256 of the previous segment's file.
    previous_sha256: Option<String>,
    location: PathBuf,
    partial: PathBuf,
    writer: AgeWriter,
    /// Set when a write or checkpoint failed: nothing more is accepted.
    failed: bool,
    /// Signed checkpoints: the sidecar, how many were made and when the last was.
    sidecar: PathBuf,
    signed_checkpoints: u64,
    last_signed: Option<Instant>,
    /// Running time of the end of the last buffer written.
    running_time: Option<gst::ClockTime>,
}

impl Recording {
    /// Makes the recording durable and, with a signing key, signs how far it is.
    fn checkpoint(&mut self, sign: bool) -> Result<(), String> {
        let made = self.writer.checkpoint().map_err(|error| {
            format!(
                "cannot make '{}' durable: {error}; the {} bytes recorded up to the last checkpoint stay in it and `vcc-vault recover` reads them",
                self.partial.display(),
                self.writer.plaintext_bytes()
            )
        })?;
        let Some(key) = self.target.signing_key.clone().filter(|_| sign) else {
            return Ok(());
        };
        let file = self
            .location
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let call_id = self.target.call_id.clone().or_else(|| {
            let manifest = self.target.manifest.as_deref()?;
            manifest_call_id(&self.target.file(manifest, self.index))
        });
        let record = CheckpointRecord::new(
            &file,
            call_id,
            self.target.rotating.then_some(self.index),
            self.signed_checkpoints,
            self.running_time.map(gst::ClockTime::nseconds),
            &made,
            glib::DateTime::now_utc()
                .and_then(|now| now.format("%Y-%m-%dT%H:%M:%S.%fZ"))
                .map(|s| s.to_string())
                .unwrap_or_default(),
        );
        checkpoint::append(&self.sidecar, &record, &key).map_err(|error| {
            format!(
                "cannot sign a checkpoint of '{}': {error}",
                self.partial.display()
            )
        })?;
        self.signed_checkpoints += 1;
        self.last_signed = Some(Instant::now());
        Ok(())
    }
}

#[derive(Default)]
enum State {
    #[default]
    Stopped,
    Recording(Box<Recording>),
    Finished,
}

/// The checkpoint thread and how to stop it.
struct Checkpointer {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: std::thread::JoinHandle<()>,
}

#[derive(Default)]
pub struct EncryptedFileSink {
    settings: Mutex<Settings>,
    state: Arc<Mutex<State>>,
    checkpointer: Mutex<Option<Checkpointer>>,
    /// Held by the checkpoint thread while it posts the error of a failed checkpoint.
    reporting: Arc<Mutex<()>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The call id the manifest names, if it can be read.
fn manifest_call_id(manifest: &Path) -> Option<String> {
    let text = std::fs::read_to_string(manifest).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["call"]["call_id"].as_str().map(str::to_string)
}

/// The `%d` expansion multifilesink and recordmux use.
fn segment_name(pattern: &str, index: usize) -> String {
    let Some(at) = pattern.find('%') else {
        return pattern.to_string();
    };
    let rest = &pattern[at + 1..];
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    if !rest[digits..].starts_with('d') {
        return pattern.to_string();
    }
    let spec = &rest[..digits];
    let width: usize = spec.trim_start_matches('0').parse().unwrap_or(0);
    let number = if spec.starts_with('0') {
        format!("{index:0width$}")
    } else {
        format!("{index:width$}")
    };
    format!("{}{number}{}", &pattern[..at], &rest[digits + 1..])
}

impl EncryptedFileSink {
    /// Everything the settings say, checked before any file exists.
    fn target(&self, settings: &Settings) -> Result<Target, gst::ErrorMessage> {
        let settings_error =
            |message: String| gst::error_msg!(gst::ResourceError::Settings, ("{message}"));
        let location = settings
            .location
            .clone()
            .ok_or_else(|| settings_error("no location set".into()))?;
        let protection = match (&settings.passphrase, &settings.key_vault) {
            (Some(_), Some(_)) => {
                return Err(settings_error(
                    "a passphrase and a key vault exclude each other".into(),
                ));
            }
            (Some(passphrase), None) => Protection::Passphrase(passphrase.clone()),
            (None, vault) => {
                let recipients = keys::parse_recipients(
                    &settings.recipients,
                    settings.recipients_file.as_deref(),
                )
                .map_err(|e| settings_error(e.to_string()))?;
                match vault {
                    None => Protection::Recipients(recipients),
                    // The customer's own key, made on their first recording (its secret
                    // encrypted to the recipients): destroying it erases the recordings.
                    Some(vault) => {
                        let reference = settings.customer_reference.as_deref().ok_or_else(|| {
                            settings_error(
                                "key-vault needs customer-reference: the recording is encrypted to that customer's key".into(),
                            )
                        })?;
                        let key = vault::key_vault::KeyVault::open_or_create(vault)
                            .and_then(|vault| vault.key_for(reference, &recipients))
                            .map_err(|e| settings_error(e.to_string()))?;
                        gst::info!(CAT, imp = self, "encrypting to customer key {}", key.key_id);
                        Protection::Customer(key)
                    }
                }
            }
        };
        let signing_key = settings
            .signing_key
            .as_deref()
            .map(keys::load_signing_key)
            .transpose()
            .map_err(|e| settings_error(e.to_string()))?
            .map(Arc::new);
        let name = location.to_string_lossy();
        let rotating = segment_name(&name, 0) != segment_name(&name, 1);
        Ok(Target {
            recipients: protection.fingerprints(),
            protection,
            signing_key,
            manifest: settings.manifest.clone(),
            call_id: settings.call_id.clone(),
            rotating,
            location,
            overwrite: settings.overwrite,
        })
    }

    /// Starts file `index` of the recording.
    fn open(
        &self,
        target: &Target,
        index: u64,
        previous_sha256: Option<String>,
    ) -> Result<Recording, gst::ErrorMessage> {
        let location = target.file(&target.location, index);
        if location.exists() && !target.overwrite {
            return Err(gst::error_msg!(
                gst::ResourceError::OpenWrite,
                (
                    "'{}' exists: refusing to overwrite a recording (set overwrite=true to replace it)",
                    location.display()
                )
            ));
        }
        let partial = durable::with_suffix(&location, ".partial");
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
        let writer = match AgeWriter::create(file, &target.protection) {
            Ok(writer) => writer,
            Err(error) => {
                // Nothing was recorded: leave nothing that blocks the next start.
                let _ = std::fs::remove_file(&partial);
                return Err(gst::error_msg!(
                    gst::ResourceError::OpenWrite,
                    ("cannot start '{}': {error}", partial.display())
                ));
            }
        };
        // No partial existed, so a sidecar here is stale (its recording was recovered or
        // removed): it must not prove anything about this one.
        let sidecar = checkpoint::sidecar_path(&location);
        let _ = std::fs::remove_file(&sidecar);
        durable::sync_directory(&partial);
        gst::info!(CAT, imp = self, "recording to {}", partial.display());
        Ok(Recording {
            target: target.clone(),
            index,
            previous_sha256,
            location,
            partial,
            writer,
            failed: false,
            sidecar,
            signed_checkpoints: 0,
            last_signed: None,
            running_time: None,
        })
    }

    /// Completes the age stream, makes it durable, renames it into place and signs it (and
    /// the manifest, bound to the recording). Returns the file's SHA-256.
    fn finish(&self, recording: Recording) -> Result<String, VaultError> {
        let write_error = |source| VaultError::Write {
            path: recording.partial.clone(),
            source,
        };
        let (_file, finished) = recording.writer.finish().map_err(write_error)?;
        std::fs::rename(&recording.partial, &recording.location).map_err(|source| {
            VaultError::Write {
                path: recording.location.clone(),
                source,
            }
        })?;
        durable::sync_directory(&recording.location);
        let target = &recording.target;
        let signed_checkpoints = recording.signed_checkpoints > 0;
        let manifest = target
            .manifest
            .as_deref()
            .map(|manifest| target.file(manifest, recording.index));
        let segment = target.rotating.then_some(recording.index);
        if let Some(key) = &target.signing_key {
            let manifest_call = manifest.as_deref().and_then(manifest_call_id);
            if let (Some(set), Some(named)) = (&target.call_id, &manifest_call)
                && set != named
            {
                gst::warning!(
                    CAT,
                    imp = self,
                    "call-id '{set}' differs from the manifest's '{named}': signing with '{set}'"
                );
            }
            let call_id = target.call_id.clone().or(manifest_call);
            let signed = sign::sign_file(
                &recording.location,
                key,
                Binding {
                    call_id: call_id.clone(),
                    recipients: target.recipients.clone(),
                    segment,
                    previous_sha256: recording.previous_sha256.clone(),
                    ..Binding::new("recording")
                },
            )?;
            if let Some(manifest) = &manifest {
                sign::sign_file(
                    manifest,
                    key,
                    Binding {
                        call_id,
                        recipients: target.recipients.clone(),
                        recording: Some(signed.file.clone()),
                        recording_sha256: Some(signed.sha256.clone()),
                        segment,
                        ..Binding::new("manifest")
                    },
                )?;
            }
        }
        // The file's own signature now proves all of it.
        if signed_checkpoints && target.signing_key.is_some() {
            let _ = std::fs::remove_file(&recording.sidecar);
        }
        gst::info!(
            CAT,
            imp = self,
            "finished {} ({} bytes of media, SHA-256 {})",
            recording.location.display(),
            finished.plaintext_bytes,
            finished.sha256
        );
        Ok(finished.sha256)
    }

    /// A new segment starts (downstream force-key-unit): finish the current file, start the
    /// next.
    fn next_segment(&self, count: Option<u32>) -> Result<(), gst::ErrorMessage> {
        let mut state = lock(&self.state);
        let State::Recording(recording) = &mut *state else {
            return Ok(());
        };
        if !recording.target.rotating {
            gst::debug!(
                CAT,
                imp = self,
                "a new segment, but location has no %d: appending"
            );
            return Ok(());
        }
        if recording.failed {
            return Err(gst::error_msg!(
                gst::ResourceError::Write,
                (
                    "the recording failed before segment {}",
                    recording.index + 1
                )
            ));
        }
        let manifest = lock(&self.settings).manifest.clone();
        let mut finishing = match std::mem::replace(&mut *state, State::Finished) {
            State::Recording(recording) => *recording,
            _ => unreachable!("checked above"),
        };
        finishing.target.manifest = manifest.or(finishing.target.manifest);
        let target = finishing.target.clone();
        let index = count
            .map_or(finishing.index + 1, u64::from)
            .max(finishing.index + 1);
        let sha256 = self
            .finish(finishing)
            .map_err(|e| gst::error_msg!(gst::ResourceError::Write, ("{e}")))?;
        let next = self.open(&target, index, Some(sha256))?;
        *state = State::Recording(Box::new(next));
        Ok(())
    }

    /// Starts the thread that makes the recording durable every `interval` and signs a
    /// checkpoint every `sign_interval`.
    fn start_checkpointer(&self, interval: Duration, sign_interval: Option<Duration>) {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let state = self.state.clone();
        let reporting = self.reporting.clone();
        let element = self.obj().downgrade();
        let thread_stop = stop.clone();
        let thread = std::thread::Builder::new()
            .name("encryptedfilesink-checkpoint".into())
            .spawn(move || {
                let (stopped, wake) = &*thread_stop;
                let mut stopped_guard = lock(stopped);
                loop {
                    stopped_guard = wake
                        .wait_timeout(stopped_guard, interval)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                    if *stopped_guard {
                        return;
                    }
                    let (failure, _reporting) = {
                        let mut state = lock(&state);
                        match &mut *state {
                            State::Recording(recording)
                                if !recording.failed && recording.writer.is_dirty() =>
                            {
                                let sign = sign_interval.is_some_and(|every| {
                                    recording
                                        .last_signed
                                        .is_none_or(|last| last.elapsed() + interval / 2 >= every)
                                });
                                match recording.checkpoint(sign) {
                                    Ok(()) => (None, None),
                                    Err(message) => {
                                        recording.failed = true;
                                        (Some(message), Some(lock(&reporting)))
                                    }
                                }
                            }
                            _ => (None, None),
                        }
                    };
                    if let (Some(message), Some(element)) = (failure, element.upgrade()) {
                        gst::element_error!(element, gst::ResourceError::Write, ("{message}"));
                    }
                }
            })
            .expect("can start a thread");
        *lock(&self.checkpointer) = Some(Checkpointer { stop, thread });
    }

    fn stop_checkpointer(&self) {
        let checkpointer = lock(&self.checkpointer).take();
        if let Some(checkpointer) = checkpointer {
            let (stopped, wake) = &*checkpointer.stop;
            *lock(stopped) = true;
            wake.notify_all();
            let _ = checkpointer.thread.join();
        }
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
                    .blurb("File of age public keys, one per line, # comments (as age -R reads); an empty file is an error")
                    .flags(ready)
                    .build(),
                glib::ParamSpecString::builder("passphrase")
                    .nick("Passphrase")
                    .blurb("Encrypt with an scrypt passphrase instead of recipients: for tests and development only")
                    .flags(ready)
                    .build(),
                glib::ParamSpecString::builder("key-vault")
                    .nick("Key vault")
                    .blurb("Directory of per-customer keys (created if missing): the recording is encrypted only to its customer's key (needs customer-reference), whose secret the vault keeps encrypted to the recipients; `vcc-vault erase --customer` destroys it, and with it every copy of the customer's recordings (crypto-shredding)")
                    .flags(ready)
                    .build(),
                glib::ParamSpecString::builder("customer-reference")
                    .nick("Customer reference")
                    .blurb("The customer whose key encrypts the recording (with key-vault); the same reference as recordmux's customer-reference")
                    .flags(ready)
                    .build(),
                glib::ParamSpecString::builder("signing-key")
                    .nick("Signing key")
                    .blurb("Unencrypted minisign secret key: at EOS, <location>.minisig (and the manifest's) are written; their trusted comments bind file name, size, SHA-256, call id and recipients")
                    .flags(ready)
                    .build(),
                glib::ParamSpecString::builder("manifest")
                    .nick("Manifest")
                    .blurb("A file written beside the recording (e.g. recordmux's JSON manifest) to sign too at EOS, bound to the recording's SHA-256")
                    .flags(ready | gst::PARAM_FLAG_MUTABLE_PLAYING)
                    .build(),
                glib::ParamSpecString::builder("call-id")
                    .nick("Call ID")
                    .blurb("Call the recording belongs to, bound into its signature (default: the manifest's call id)")
                    .flags(ready)
                    .build(),
                glib::ParamSpecUInt::builder("fsync-interval")
                    .nick("fsync interval")
                    .blurb("Milliseconds between checkpoints: the data so far is written as a complete age file and synced (0 = only at EOS). A crash loses at most this (plus what the muxer still held), at any bitrate")
                    .default_value(DEFAULT_FSYNC_INTERVAL_MS)
                    .flags(ready)
                    .build(),
                glib::ParamSpecUInt::builder("checkpoint-interval")
                    .nick("Checkpoint interval")
                    .blurb("Seconds between signed checkpoints appended to <location>.checkpoints while recording (needs signing-key; 0 = none): after a crash `vcc-vault verify --partial` proves all but the last interval of the .partial file and `vcc-vault recover --proven` cuts there. Removed once the file is finished and signed")
                    .default_value(DEFAULT_CHECKPOINT_INTERVAL_S)
                    .maximum(MAX_CHECKPOINT_INTERVAL_S)
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
        let text = || {
            value
                .get::<Option<String>>()
                .expect("type checked upstream")
                .filter(|s| !s.is_empty())
        };
        let mut settings = lock(&self.settings);
        match pspec.name() {
            "location" => settings.location = text().map(PathBuf::from),
            "recipients" => settings.recipients = text().unwrap_or_default(),
            "recipients-file" => settings.recipients_file = text().map(PathBuf::from),
            "passphrase" => settings.passphrase = text(),
            "key-vault" => settings.key_vault = text().map(PathBuf::from),
            "customer-reference" => settings.customer_reference = text(),
            "signing-key" => settings.signing_key = text().map(PathBuf::from),
            "manifest" => {
                settings.manifest = text().map(PathBuf::from);
                // The manifest may be set late (recordmux writes it at EOS).
                let manifest = settings.manifest.clone();
                drop(settings);
                if let State::Recording(recording) = &mut *lock(&self.state) {
                    recording.target.manifest = manifest;
                }
            }
            "call-id" => settings.call_id = text(),
            "fsync-interval" => settings.fsync_interval_ms = value.get().expect("type checked"),
            "checkpoint-interval" => {
                settings.checkpoint_interval_s = value.get().expect("type checked")
            }
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
            "key-vault" => path(&settings.key_vault),
            "customer-reference" => settings.customer_reference.to_value(),
            "signing-key" => path(&settings.signing_key),
            "manifest" => path(&settings.manifest),
            "call-id" => settings.call_id.to_value(),
            "fsync-interval" => settings.fsync_interval_ms.to_value(),
            "checkpoint-interval" => settings.checkpoint_interval_s.to_value(),
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
                "Writes the stream to an age-encrypted file (X25519 recipients) that stays decryptable after a crash, atomically renamed and minisign-signed at EOS",
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
        let target = self.target(&settings)?;
        let recording = self.open(&target, 0, None)?;
        let sign_interval = (settings.checkpoint_interval_s > 0 && target.signing_key.is_some())
            .then(|| Duration::from_secs(settings.checkpoint_interval_s.into()));
        if settings.checkpoint_interval_s > 0 && target.signing_key.is_none() {
            gst::debug!(CAT, imp = self, "no signing-key: no signed checkpoints");
        }
        *lock(&self.state) = State::Recording(Box::new(recording));
        let fsync = (settings.fsync_interval_ms > 0)
            .then(|| Duration::from_millis(settings.fsync_interval_ms.into()));
        // Signed checkpoints are durable ones: the thread runs at the shorter interval.
        if let Some(interval) = match (fsync, sign_interval) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        } {
            self.start_checkpointer(interval, sign_interval);
        }
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        self.stop_checkpointer();
        if let State::Recording(mut recording) = std::mem::take(&mut *lock(&self.state)) {
            // No EOS: make what was written durable and prove it; the partial file decrypts
            // as it is.
            let synced = recording.failed || recording.checkpoint(true).is_ok();
            gst::warning!(
                CAT,
                imp = self,
                "stopped without EOS: '{}' kept unfinished ({} bytes{}); it decrypts with age, `vcc-vault recover` reads it",
                recording.partial.display(),
                recording.writer.plaintext_bytes(),
                if synced {
                    ""
                } else {
                    ", last checkpoint failed"
                }
            );
        }
        Ok(())
    }

    fn render(&self, buffer: &gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let mut state = lock(&self.state);
        let State::Recording(recording) = &mut *state else {
            drop(state);
            gst::element_imp_error!(
                self,
                gst::CoreError::Failed,
                ("not recording (data after EOS?)")
            );
            return Err(gst::FlowError::Error);
        };
        if recording.failed {
            drop(state);
            // A failed checkpoint's error may still be on its way to the bus.
            drop(lock(&self.reporting));
            return Err(gst::FlowError::Error);
        }
        let map = buffer.map_readable().map_err(|_| {
            gst::element_imp_error!(self, gst::CoreError::Failed, ("cannot map buffer"));
            gst::FlowError::Error
        })?;
        // A muxer's output is a byte stream whose buffers carry the running time of the
        // samples they hold; a time segment is converted.
        if let Some(pts) = buffer.pts() {
            let end = pts + buffer.duration().unwrap_or(gst::ClockTime::ZERO);
            let segment = self.obj().segment();
            let running = match segment.downcast_ref::<gst::ClockTime>() {
                Some(segment) => segment.to_running_time(end),
                None => Some(end),
            };
            recording.running_time = recording.running_time.max(running);
        }
        if let Err(error) = recording.writer.write(&map) {
            recording.failed = true;
            let (partial, bytes) = (
                recording.partial.display().to_string(),
                recording.writer.plaintext_bytes(),
            );
            drop(state);
            gst::element_imp_error!(
                self,
                gst::ResourceError::Write,
                ("write to '{partial}' failed: {error}; the recording up to the last checkpoint stays in that file ({bytes} bytes given) and `vcc-vault recover` reads it")
            );
            return Err(gst::FlowError::Error);
        }
        Ok(gst::FlowSuccess::Ok)
    }

    fn event(&self, event: gst::Event) -> bool {
        if let Ok(new_file) = gst_video::DownstreamForceKeyUnitEvent::parse(&event) {
            if let Err(error) = self.next_segment(Some(new_file.count)) {
                self.post_error_message(error);
                return false;
            }
            return self.parent_event(event);
        }
        if let gst::EventView::Eos(_) = event.view() {
            self.stop_checkpointer();
            let state = std::mem::replace(&mut *lock(&self.state), State::Finished);
            if let State::Recording(recording) = state {
                if recording.failed {
                    drop(lock(&self.reporting));
                    return false;
                }
                let manifest = lock(&self.settings).manifest.clone();
                let mut recording = *recording;
                recording.target.manifest = manifest.or(recording.target.manifest);
                if let Err(error) = self.finish(recording) {
                    gst::element_imp_error!(self, gst::ResourceError::Write, ("{error}"));
                    return false;
                }
            }
        }
        self.parent_event(event)
    }
}
