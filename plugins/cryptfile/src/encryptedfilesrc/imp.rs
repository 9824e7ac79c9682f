//! GStreamer glue for `encryptedfilesrc`; the format lives in the `vault` crate.
//!
//! With `verify-key`, the signature is checked on the same open file that is then decrypted:
//! a file swapped for another after the check is never played.

use std::path::PathBuf;
use std::sync::{LazyLock, Mutex, MutexGuard};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;

use std::fs::File;
use std::io::BufReader;

use vault::keys::Unlock;
use vault::read::{self, PlainReader};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "encryptedfilesrc",
        gst::DebugColorFlags::empty(),
        Some("age-encrypted file source"),
    )
});

#[derive(Debug, Clone, Default)]
struct Settings {
    location: Option<PathBuf>,
    identity: Option<PathBuf>,
    passphrase: Option<String>,
    key_vault: Option<PathBuf>,
    verify_key: Option<PathBuf>,
}

struct Opened {
    location: PathBuf,
    reader: PlainReader,
    size: u64,
}

#[derive(Default)]
pub struct EncryptedFileSrc {
    settings: Mutex<Settings>,
    state: Mutex<Option<Opened>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[glib::object_subclass]
impl ObjectSubclass for EncryptedFileSrc {
    const NAME: &'static str = "GstEncryptedFileSrc";
    type Type = super::EncryptedFileSrc;
    type ParentType = gst_base::BaseSrc;
}

impl ObjectImpl for EncryptedFileSrc {
    fn constructed(&self) {
        self.parent_constructed();
        self.obj().set_format(gst::Format::Bytes);
    }

    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let ready = glib::ParamFlags::READWRITE | gst::PARAM_FLAG_MUTABLE_READY;
            vec![
                glib::ParamSpecString::builder("location")
                    .nick("Location")
                    .blurb("age-encrypted recording to read")
                    .flags(ready)
                    .build(),
                glib::ParamSpecString::builder("identity")
                    .nick("Identity")
                    .blurb("age identity file (as age-keygen writes) holding a key the recording was encrypted to")
                    .flags(ready)
                    .build(),
                glib::ParamSpecString::builder("passphrase")
                    .nick("Passphrase")
                    .blurb("Passphrase of a recording encrypted with one (tests and development only)")
                    .flags(ready)
                    .build(),
                glib::ParamSpecString::builder("key-vault")
                    .nick("Key vault")
                    .blurb("Key vault of a recording encrypted to its customer's key (encryptedfilesink key-vault): the customer's key is opened with identity; an erased key is an error that says so")
                    .flags(ready)
                    .build(),
                glib::ParamSpecString::builder("verify-key")
                    .nick("Verify key")
                    .blurb("minisign public key: refuse to play unless <location>.minisig is a valid signature by it, bound to this file's name, size and SHA-256")
                    .flags(ready)
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut settings = lock(&self.settings);
        let text = || {
            value
                .get::<Option<String>>()
                .expect("type checked upstream")
                .filter(|s| !s.is_empty())
        };
        match pspec.name() {
            "location" => settings.location = text().map(PathBuf::from),
            "identity" => settings.identity = text().map(PathBuf::from),
            "passphrase" => settings.passphrase = text(),
            "key-vault" => settings.key_vault = text().map(PathBuf::from),
            "verify-key" => settings.verify_key = text().map(PathBuf::from),
            other => unreachable!("unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let settings = lock(&self.settings);
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string()).to_value();
        match pspec.name() {
            "location" => path(&settings.location),
            "identity" => path(&settings.identity),
            "passphrase" => None::<String>.to_value(),
            "key-vault" => path(&settings.key_vault),
            "verify-key" => path(&settings.verify_key),
            other => unreachable!("unknown property {other}"),
        }
    }
}

impl GstObjectImpl for EncryptedFileSrc {}

impl ElementImpl for EncryptedFileSrc {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Encrypted file source",
                "Source/File",
                "Reads and decrypts an age-encrypted recording, with seeking; optionally checks its minisign signature first",
                "gst-vcc developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            vec![
                gst::PadTemplate::new(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &gst::Caps::new_any(),
                )
                .expect("valid template"),
            ]
        });
        PAD_TEMPLATES.as_ref()
    }
}

impl BaseSrcImpl for EncryptedFileSrc {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = lock(&self.settings).clone();
        let location = settings
            .location
            .clone()
            .ok_or_else(|| gst::error_msg!(gst::ResourceError::Settings, ("no location set")))?;
        let unlock = match (&settings.passphrase, &settings.identity) {
            (Some(passphrase), _) => Unlock::Passphrase(passphrase.clone()),
            (None, Some(identity)) => Unlock::IdentityFile(identity.clone()),
            (None, None) => {
                return Err(gst::error_msg!(
                    gst::ResourceError::Settings,
                    (
                        "no identity set: an age identity file is needed to decrypt '{}'",
                        location.display()
                    )
                ));
            }
        };
        let open_error =
            |e: vault::VaultError| gst::error_msg!(gst::ResourceError::OpenRead, ("{e}"));
        let unlock =
            vault::key_vault::unlock_recording(&location, unlock, settings.key_vault.as_deref())
                .map_err(open_error)?;
        let mut file = File::open(&location).map_err(|e| {
            gst::error_msg!(
                gst::ResourceError::OpenRead,
                ("cannot read recording '{}': {e}", location.display())
            )
        })?;
        if let Some(key) = &settings.verify_key {
            let binding =
                vault::sign::verify_open(&mut file, &location, key).map_err(open_error)?;
            gst::info!(
                CAT,
                imp = self,
                "signature of {} verified (call {}, SHA-256 {})",
                location.display(),
                binding.call_id.as_deref().unwrap_or("-"),
                binding.sha256
            );
        }
        // The very file descriptor that was verified.
        let mut reader =
            read::open_reader(BufReader::new(file), &location, &unlock).map_err(open_error)?;
        // The plaintext size comes from the file size; a truncated file makes this fail.
        let size = read::plaintext_size(&mut reader, &location).map_err(open_error)?;
        gst::info!(
            CAT,
            imp = self,
            "opened {} ({size} bytes of media)",
            location.display()
        );
        *lock(&self.state) = Some(Opened {
            location,
            reader,
            size,
        });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *lock(&self.state) = None;
        Ok(())
    }

    fn is_seekable(&self) -> bool {
        true
    }

    fn size(&self) -> Option<u64> {
        lock(&self.state).as_ref().map(|opened| opened.size)
    }

    fn fill(
        &self,
        offset: u64,
        length: u32,
        buffer: &mut gst::BufferRef,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let mut state = lock(&self.state);
        let Some(opened) = state.as_mut() else {
            return Err(gst::FlowError::Flushing);
        };
        if offset >= opened.size {
            return Err(gst::FlowError::Eos);
        }
        let wanted = (length as u64).min(opened.size - offset) as usize;
        let read = {
            let mut map = buffer.map_writable().map_err(|_| gst::FlowError::Error)?;
            read::read_at(
                &mut opened.reader,
                &opened.location,
                offset,
                &mut map[..wanted],
            )
        };
        match read {
            Ok(read) => {
                buffer.set_size(read);
                buffer.set_offset(offset);
                buffer.set_offset_end(offset + read as u64);
                Ok(gst::FlowSuccess::Ok)
            }
            Err(error) => {
                gst::element_imp_error!(self, gst::StreamError::Decrypt, ("{error}"));
                Err(gst::FlowError::Error)
            }
        }
    }
}
