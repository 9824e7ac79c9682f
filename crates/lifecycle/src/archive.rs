//! Archiving a recording to a bucket (what is done with an archived call afterwards is in
//! [`crate::calls`]).
//!
//! Every object is uploaded with Content-MD5 (per part for multipart uploads), under Object
//! Lock retention from the policy, counted from the call's start (a rerun never extends it),
//! and read back (HEAD for the size, GET for our SHA-256) before the local copy may be
//! deleted. An interrupted multipart upload is resumed by a rerun: parts already in the
//! store whose MD5 matches the local bytes are kept, the rest uploaded, and the upload
//! completed; other open uploads of the same key are aborted. The local files are only ever
//! deleted after all four objects were verified.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    CompletedMultipartUpload, CompletedPart, ObjectLockMode, ObjectLockRetention,
    ObjectLockRetentionMode,
};
use base64::Engine;
use md5::{Digest as _, Md5};
use sha2::Sha256;

use crate::LifecycleError;
use crate::policy::{LockMode, Retention};
use crate::recording::LocalRecording;
use crate::store::{Store, store_error};

/// Default multipart part size (S3 allows 5 MiB to 5 GiB; files up to this size are one PUT).
pub const DEFAULT_PART_SIZE: u64 = 16 * 1024 * 1024;
/// User metadata that carries the object's SHA-256 (RGW ignores `x-amz-checksum-sha256`).
const SHA256_METADATA: &str = "sha256";

#[derive(Debug, Clone)]
pub struct Options {
    pub tenant: String,
    pub part_size: u64,
    pub delete_local: bool,
}

/// What the archiver is doing, for a progress bar or JSON lines.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Upload {
        key: String,
        bytes: u64,
    },
    Progress {
        key: String,
        done: u64,
        bytes: u64,
    },
    /// An interrupted multipart upload is continued: `parts_kept` of its parts matched.
    Resume {
        key: String,
        parts_kept: usize,
    },
    /// The object was already in the bucket with the same SHA-256.
    AlreadyArchived {
        key: String,
    },
    Verified {
        key: String,
        bytes: u64,
        sha256: String,
    },
    DeletedLocal {
        path: String,
    },
}

/// The outcome of one recording.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Archived {
    pub bucket: String,
    pub prefix: String,
    pub call_id: String,
    pub objects: Vec<String>,
    pub retention_mode: &'static str,
    pub retain_until_utc: String,
    pub deleted_local: bool,
}

/// Uploads and verifies the four files of `recording`; with `options.delete_local`, deletes
/// them afterwards.
pub async fn archive(
    store: &Store,
    recording: &LocalRecording,
    retention: Retention,
    options: &Options,
    on_event: &mut (dyn FnMut(Event) + Send),
) -> Result<Archived, LifecycleError> {
    let prefix = recording.prefix(&options.tenant)?;
    let retain_until =
        retain_until(&recording.started_utc, retention.retention_days).map_err(|message| {
            LifecycleError::Manifest {
                path: recording.manifest.clone(),
                message,
            }
        })?;
    let mut objects = Vec::new();
    for path in recording.files() {
        let key = format!("{prefix}{}", file_name(&path));
        // The recording was hashed when its signature was verified: what is uploaded and read
        // back must be those signed bytes (the sidecars are small, hashed here).
        let (bytes, sha256) = if path == recording.recording {
            (recording.bytes, recording.sha256.clone())
        } else {
            vault::sign::sha256_file(&path)?
        };
        let object = Object {
            store,
            key: &key,
            path: &path,
            bytes,
            sha256: &sha256,
        };
        object
            .upload(retention.mode, retain_until, options.part_size, on_event)
            .await?;
        object.verify().await?;
        object
            .ensure_retention(retention.mode, retain_until)
            .await?;
        on_event(Event::Verified {
            key: key.clone(),
            bytes,
            sha256,
        });
        objects.push(key);
    }
    if options.delete_local {
        for path in recording.files() {
            std::fs::remove_file(&path).map_err(|source| LifecycleError::Io {
                what: "archived local file (to delete it)",
                path: path.clone(),
                source,
            })?;
            on_event(Event::DeletedLocal {
                path: path.display().to_string(),
            });
        }
    }
    Ok(Archived {
        bucket: store.bucket.clone(),
        prefix,
        call_id: recording.call.call_id.clone(),
        objects,
        retention_mode: retention.mode.as_str(),
        retain_until_utc: retain_until
            .fmt(aws_sdk_s3::primitives::DateTimeFormat::DateTime)
            .unwrap_or_default(),
        deleted_local: options.delete_local,
    })
}

/// The call's start plus `days`.
fn retain_until(started_utc: &str, days: u32) -> Result<DateTime, String> {
    let started =
        time::OffsetDateTime::parse(started_utc, &time::format_description::well_known::Rfc3339)
            .map_err(|e| format!("started_utc {started_utc:?}: {e}"))?;
    let until = started + time::Duration::days(i64::from(days));
    Ok(DateTime::from_secs(until.unix_timestamp()))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn lock_mode(mode: LockMode) -> ObjectLockMode {
    match mode {
        LockMode::Governance => ObjectLockMode::Governance,
        LockMode::Compliance => ObjectLockMode::Compliance,
    }
}

fn md5_base64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Md5::digest(data))
}

/// S3's ETag of a part: the quoted hex MD5.
fn md5_etag(data: &[u8]) -> String {
    let hex: String = Md5::digest(data)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("\"{hex}\"")
}

/// One local file and its object.
struct Object<'a> {
    store: &'a Store,
    key: &'a str,
    path: &'a Path,
    bytes: u64,
    sha256: &'a str,
}

impl Object<'_> {
    fn what(&self, request: &str) -> String {
        format!("{request} s3://{}/{}", self.store.bucket, self.key)
    }

    fn read(&self, offset: u64, length: u64) -> Result<Vec<u8>, LifecycleError> {
        let io = |source| LifecycleError::Io {
            what: "file to archive",
            path: self.path.to_path_buf(),
            source,
        };
        let mut file = std::fs::File::open(self.path).map_err(io)?;
        file.seek(SeekFrom::Start(offset)).map_err(io)?;
        let mut data = vec![0; length as usize];
        file.read_exact(&mut data).map_err(io)?;
        Ok(data)
    }

    /// The SHA-256 the object in the bucket says it has, if it exists.
    async fn existing_sha256(&self) -> Result<Option<String>, LifecycleError> {
        match self
            .store
            .client
            .head_object()
            .bucket(&self.store.bucket)
            .key(self.key)
            .send()
            .await
        {
            Ok(head) => Ok(Some(
                head.metadata()
                    .and_then(|metadata| metadata.get(SHA256_METADATA))
                    .cloned()
                    .unwrap_or_default(),
            )),
            Err(error) if error.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(None),
            Err(error) => Err(store_error(self.what("HEAD"), error)),
        }
    }

    async fn upload(
        &self,
        mode: LockMode,
        retain_until: DateTime,
        part_size: u64,
        on_event: &mut (dyn FnMut(Event) + Send),
    ) -> Result<(), LifecycleError> {
        match self.existing_sha256().await? {
            Some(sha256) if sha256 == self.sha256 => {
                on_event(Event::AlreadyArchived {
                    key: self.key.to_string(),
                });
                return Ok(());
            }
            Some(other) => {
                return Err(LifecycleError::Mismatch {
                    bucket: self.store.bucket.clone(),
                    key: self.key.to_string(),
                    message: format!(
                        "another object is archived there (SHA-256 {other:?}, this file's is \
                         {}): refusing to add a version of a different recording",
                        self.sha256
                    ),
                });
            }
            None => (),
        }
        on_event(Event::Upload {
            key: self.key.to_string(),
            bytes: self.bytes,
        });
        if self.bytes <= part_size {
            let data = self.read(0, self.bytes)?;
            self.store
                .client
                .put_object()
                .bucket(&self.store.bucket)
                .key(self.key)
                .content_md5(md5_base64(&data))
                .metadata(SHA256_METADATA, self.sha256)
                .object_lock_mode(lock_mode(mode))
                .object_lock_retain_until_date(retain_until)
                .body(ByteStream::from(data))
                .send()
                .await
                .map_err(|e| store_error(self.what("PUT"), e))?;
        } else {
            self.upload_multipart(mode, retain_until, part_size, on_event)
                .await?;
        }
        on_event(Event::Progress {
            key: self.key.to_string(),
            done: self.bytes,
            bytes: self.bytes,
        });
        Ok(())
    }

    /// The open multipart uploads of this key, oldest first.
    async fn open_uploads(&self) -> Result<Vec<String>, LifecycleError> {
        let mut uploads = Vec::new();
        let (mut key_marker, mut id_marker): (Option<String>, Option<String>) = (None, None);
        loop {
            let page = self
                .store
                .client
                .list_multipart_uploads()
                .bucket(&self.store.bucket)
                .prefix(self.key)
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(id_marker.take())
                .send()
                .await
                .map_err(|e| store_error(self.what("list multipart uploads of"), e))?;
            for upload in page.uploads() {
                if upload.key() == Some(self.key)
                    && let Some(id) = upload.upload_id()
                {
                    uploads.push((upload.initiated().copied(), id.to_string()));
                }
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_string);
            id_marker = page.next_upload_id_marker().map(str::to_string);
        }
        uploads.sort_by_key(|(initiated, _)| initiated.map(|at| (at.secs(), at.subsec_nanos())));
        Ok(uploads.into_iter().map(|(_, id)| id).collect())
    }

    /// Part number -> ETag of the parts an open upload holds.
    async fn uploaded_parts(
        &self,
        upload_id: &str,
    ) -> Result<std::collections::HashMap<i32, (String, i64)>, LifecycleError> {
        let mut parts = std::collections::HashMap::new();
        let mut pages = self
            .store
            .client
            .list_parts()
            .bucket(&self.store.bucket)
            .key(self.key)
            .upload_id(upload_id)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| store_error(self.what("list parts of"), e))?;
            for part in page.parts() {
                if let (Some(number), Some(etag)) = (part.part_number(), part.e_tag()) {
                    parts.insert(number, (etag.to_string(), part.size().unwrap_or(-1)));
                }
            }
        }
        Ok(parts)
    }

    async fn upload_multipart(
        &self,
        mode: LockMode,
        retain_until: DateTime,
        part_size: u64,
        on_event: &mut (dyn FnMut(Event) + Send),
    ) -> Result<(), LifecycleError> {
        let client = &self.store.client;
        let mut open = self.open_uploads().await?;
        // Continue the newest interrupted upload; abort the others.
        let resumed = open.pop();
        for stale in open {
            client
                .abort_multipart_upload()
                .bucket(&self.store.bucket)
                .key(self.key)
                .upload_id(&stale)
                .send()
                .await
                .map_err(|e| store_error(self.what("abort an old multipart upload of"), e))?;
        }
        let (upload_id, mut existing) = match resumed {
            Some(id) => {
                let parts = self.uploaded_parts(&id).await?;
                (id, parts)
            }
            None => {
                let created = client
                    .create_multipart_upload()
                    .bucket(&self.store.bucket)
                    .key(self.key)
                    .metadata(SHA256_METADATA, self.sha256)
                    .object_lock_mode(lock_mode(mode))
                    .object_lock_retain_until_date(retain_until)
                    .send()
                    .await
                    .map_err(|e| store_error(self.what("start multipart upload of"), e))?;
                let id = created.upload_id().unwrap_or_default().to_string();
                (id, Default::default())
            }
        };
        let count = self.bytes.div_ceil(part_size);
        let mut completed = Vec::new();
        let mut kept = 0;
        for index in 0..count {
            let number = index as i32 + 1;
            let offset = index * part_size;
            let data = self.read(offset, part_size.min(self.bytes - offset))?;
            let etag = md5_etag(&data);
            let reusable = existing
                .remove(&number)
                .is_some_and(|(tag, size)| tag == etag && size == data.len() as i64);
            if reusable {
                kept += 1;
            } else {
                client
                    .upload_part()
                    .bucket(&self.store.bucket)
                    .key(self.key)
                    .upload_id(&upload_id)
                    .part_number(number)
                    .content_md5(md5_base64(&data))
                    .body(ByteStream::from(data.clone()))
                    .send()
                    .await
                    .map_err(|e| store_error(self.what(&format!("upload part {number} of")), e))?;
            }
            completed.push(
                CompletedPart::builder()
                    .part_number(number)
                    .e_tag(etag)
                    .build(),
            );
            on_event(Event::Progress {
                key: self.key.to_string(),
                done: offset + data.len() as u64,
                bytes: self.bytes,
            });
        }
        if kept > 0 {
            on_event(Event::Resume {
                key: self.key.to_string(),
                parts_kept: kept,
            });
        }
        client
            .complete_multipart_upload()
            .bucket(&self.store.bucket)
            .key(self.key)
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(completed))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| store_error(self.what("complete multipart upload of"), e))?;
        Ok(())
    }

    /// Makes sure the object's retention is at least `mode` until `until`, and reads it back.
    /// (RGW 16 ignores the Object Lock headers of CreateMultipartUpload: the retention is
    /// set on the completed object, and never shortened.)
    async fn ensure_retention(
        &self,
        mode: LockMode,
        until: DateTime,
    ) -> Result<(), LifecycleError> {
        let current = || async {
            match self
                .store
                .client
                .get_object_retention()
                .bucket(&self.store.bucket)
                .key(self.key)
                .send()
                .await
            {
                Ok(output) => Ok(output.retention().and_then(|retention| {
                    Some((retention.mode()?.clone(), *retention.retain_until_date()?))
                })),
                Err(error)
                    if error.code() == Some("ObjectLockConfigurationNotFoundError")
                        || error.code() == Some("NoSuchObjectLockConfiguration") =>
                {
                    Ok(None)
                }
                Err(error) => Err(store_error(self.what("get retention of"), error)),
            }
        };
        let wanted = ObjectLockRetentionMode::from(mode.as_str());
        let sufficient = |found: &Option<(ObjectLockRetentionMode, DateTime)>| {
            found.as_ref().is_some_and(|(found_mode, found_until)| {
                found_until.secs() >= until.secs()
                    && (*found_mode == wanted || *found_mode == ObjectLockRetentionMode::Compliance)
            })
        };
        if sufficient(&current().await?) {
            return Ok(());
        }
        self.store
            .client
            .put_object_retention()
            .bucket(&self.store.bucket)
            .key(self.key)
            .retention(
                ObjectLockRetention::builder()
                    .mode(wanted.clone())
                    .retain_until_date(until)
                    .build(),
            )
            .content_md5(md5_base64(b""))
            .send()
            .await
            .map_err(|e| store_error(self.what("set retention of"), e))?;
        let found = current().await?;
        if !sufficient(&found) {
            return Err(LifecycleError::Mismatch {
                bucket: self.store.bucket.clone(),
                key: self.key.to_string(),
                message: format!("the store did not keep the retention set: it says {found:?}"),
            });
        }
        Ok(())
    }

    /// Reads the object back: its size (HEAD) and its SHA-256 (GET) must be the local file's.
    async fn verify(&self) -> Result<(), LifecycleError> {
        let mismatch = |message: String| LifecycleError::Mismatch {
            bucket: self.store.bucket.clone(),
            key: self.key.to_string(),
            message,
        };
        let head = self
            .store
            .client
            .head_object()
            .bucket(&self.store.bucket)
            .key(self.key)
            .send()
            .await
            .map_err(|e| store_error(self.what("HEAD"), e))?;
        let size = head.content_length().unwrap_or(-1);
        if size != self.bytes as i64 {
            return Err(mismatch(format!(
                "{size} bytes in the store, {} in the local file",
                self.bytes
            )));
        }
        let object = self
            .store
            .client
            .get_object()
            .bucket(&self.store.bucket)
            .key(self.key)
            .send()
            .await
            .map_err(|e| store_error(self.what("GET"), e))?;
        let mut body = object.body;
        let mut hasher = Sha256::new();
        let mut read = 0u64;
        while let Some(bytes) = body.try_next().await.map_err(|e| LifecycleError::Store {
            what: self.what("GET"),
            message: e.to_string(),
        })? {
            read += bytes.len() as u64;
            hasher.update(&bytes);
        }
        let sha256: String = hasher
            .finalize()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        if read != self.bytes || sha256 != self.sha256 {
            return Err(mismatch(format!(
                "read back {read} bytes with SHA-256 {sha256}, the local file has {} bytes with {}",
                self.bytes, self.sha256
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_counts_from_the_call() {
        let until = retain_until("2026-12-01T17:58:45.123Z", 10).unwrap();
        assert_eq!(
            until
                .fmt(aws_sdk_s3::primitives::DateTimeFormat::DateTime)
                .unwrap(),
            "2026-12-11T17:58:45Z"
        );
        assert!(retain_until("yesterday", 10).is_err());
    }

    #[test]
    fn part_etags_are_quoted_hex_md5() {
        assert_eq!(md5_etag(b""), "\"d41d8cd98f00b204e9800998ecf8427e\"");
        assert_eq!(md5_base64(b""), "1B2M2Y8AsgTpgAmY7PhCfg==");
    }
}
