//! An archived call in the bucket: finding it, its manifests (for the index), legal hold, and
//! deletion (which the store refuses while a retention or a hold applies).

use std::path::Path;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::types::{ObjectLockLegalHold, ObjectLockLegalHoldStatus};

use crate::LifecycleError;
use crate::store::{Store, store_error};

/// The prefix of call `call_id` of `tenant` in the bucket (`<tenant>/yyyy/mm/dd/<call-id>/`);
/// a call not archived is an error that says so.
pub async fn find_call(
    store: &Store,
    tenant: &str,
    call_id: &str,
) -> Result<String, LifecycleError> {
    archived_call(store, tenant, call_id)
        .await?
        .ok_or_else(|| LifecycleError::Store {
            what: format!("s3://{}/{tenant}/", store.bucket),
            message: format!("no archived call {call_id:?}"),
        })
}

/// As [`find_call`], `None` for a call not archived.
pub async fn archived_call(
    store: &Store,
    tenant: &str,
    call_id: &str,
) -> Result<Option<String>, LifecycleError> {
    let tenant = crate::recording::key_component("tenant", tenant)?;
    let call_id = crate::recording::key_component("call id", call_id)?;
    let mut pages = store
        .client
        .list_objects_v2()
        .bucket(&store.bucket)
        .prefix(format!("{tenant}/"))
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page =
            page.map_err(|e| store_error(format!("list s3://{}/{tenant}/", store.bucket), e))?;
        for object in page.contents() {
            let key = object.key().unwrap_or_default();
            let parts: Vec<&str> = key.split('/').collect();
            if parts.len() == 6 && parts[4] == call_id {
                return Ok(Some(format!("{}/", parts[..5].join("/"))));
            }
        }
    }
    Ok(None)
}

/// The calls among `calls` (call id, index location) with an object under legal hold in the
/// bucket: a location `s3://<bucket>/<prefix>` is that prefix, any other (a local
/// directory) is looked up under `tenant`; a call not archived holds nothing.
pub async fn held_calls(
    store: &Store,
    tenant: &str,
    calls: &[(String, String)],
) -> Result<Vec<String>, LifecycleError> {
    let in_bucket = format!("s3://{}/", store.bucket);
    let mut held = Vec::new();
    for (call_id, location) in calls {
        let prefix = match location.strip_prefix(&in_bucket) {
            Some(prefix) => prefix.to_string(),
            None => match archived_call(store, tenant, call_id).await? {
                Some(prefix) => prefix,
                None => continue,
            },
        };
        if legal_hold(store, &prefix).await? {
            held.push(call_id.clone());
        }
    }
    Ok(held)
}

/// Downloads the manifests and their signatures of every call under `prefix` into
/// directories below `scratch`, one per call: (directory, `s3://bucket/<call prefix>`).
pub async fn fetch_manifests(
    store: &Store,
    prefix: &str,
    scratch: &Path,
) -> Result<Vec<(std::path::PathBuf, String)>, LifecycleError> {
    let mut calls: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    let mut pages = store
        .client
        .list_objects_v2()
        .bucket(&store.bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page =
            page.map_err(|e| store_error(format!("list s3://{}/{prefix}", store.bucket), e))?;
        for object in page.contents() {
            let key = object.key().unwrap_or_default();
            if (key.ends_with(".json") || key.ends_with(".json.minisig"))
                && let Some((call, _)) = key.rsplit_once('/')
            {
                calls
                    .entry(format!("{call}/"))
                    .or_default()
                    .push(key.to_string());
            }
        }
    }
    let mut fetched = Vec::new();
    for (number, (call, keys)) in calls.into_iter().enumerate() {
        let dir = scratch.join(number.to_string());
        std::fs::create_dir_all(&dir).map_err(|source| LifecycleError::Io {
            what: "scratch directory",
            path: dir.clone(),
            source,
        })?;
        for key in keys {
            let object = store
                .client
                .get_object()
                .bucket(&store.bucket)
                .key(&key)
                .send()
                .await
                .map_err(|e| store_error(format!("GET s3://{}/{key}", store.bucket), e))?;
            let bytes = object
                .body
                .collect()
                .await
                .map_err(|e| LifecycleError::Store {
                    what: format!("GET s3://{}/{key}", store.bucket),
                    message: e.to_string(),
                })?
                .into_bytes();
            let name = key.rsplit('/').next().unwrap_or_default();
            let path = dir.join(name);
            std::fs::write(&path, &bytes).map_err(|source| LifecycleError::Io {
                what: "downloaded manifest",
                path: path.clone(),
                source,
            })?;
        }
        fetched.push((dir, format!("s3://{}/{call}", store.bucket)));
    }
    Ok(fetched)
}

/// (key, version id) of every object version under `prefix`.
async fn versions(store: &Store, prefix: &str) -> Result<Vec<(String, String)>, LifecycleError> {
    let mut versions = Vec::new();
    let mut key_marker: Option<String> = None;
    let mut version_marker: Option<String> = None;
    loop {
        let page = store
            .client
            .list_object_versions()
            .bucket(&store.bucket)
            .prefix(prefix)
            .set_key_marker(key_marker.take())
            .set_version_id_marker(version_marker.take())
            .send()
            .await
            .map_err(|e| {
                store_error(
                    format!("list versions of s3://{}/{prefix}", store.bucket),
                    e,
                )
            })?;
        for version in page.versions() {
            if let (Some(key), Some(id)) = (version.key(), version.version_id()) {
                versions.push((key.to_string(), id.to_string()));
            }
        }
        if page.is_truncated() != Some(true) {
            return Ok(versions);
        }
        key_marker = page.next_key_marker().map(str::to_string);
        version_marker = page.next_version_id_marker().map(str::to_string);
    }
}

/// Sets (`on`) or releases the legal hold of every object version under `prefix`. Returns
/// the objects changed.
pub async fn set_legal_hold(
    store: &Store,
    prefix: &str,
    on: bool,
) -> Result<Vec<String>, LifecycleError> {
    let status = if on {
        ObjectLockLegalHoldStatus::On
    } else {
        ObjectLockLegalHoldStatus::Off
    };
    let mut changed = Vec::new();
    for (key, version) in versions(store, prefix).await? {
        store
            .client
            .put_object_legal_hold()
            .bucket(&store.bucket)
            .key(&key)
            .version_id(&version)
            .legal_hold(
                ObjectLockLegalHold::builder()
                    .status(status.clone())
                    .build(),
            )
            .send()
            .await
            .map_err(|e| store_error(format!("legal hold of s3://{}/{key}", store.bucket), e))?;
        changed.push(key);
    }
    Ok(changed)
}

/// Whether any object version under `prefix` is under legal hold.
pub async fn legal_hold(store: &Store, prefix: &str) -> Result<bool, LifecycleError> {
    for (key, version) in versions(store, prefix).await? {
        let hold = store
            .client
            .get_object_legal_hold()
            .bucket(&store.bucket)
            .key(&key)
            .version_id(&version)
            .send()
            .await;
        match hold {
            Ok(output) => {
                let on = output
                    .legal_hold()
                    .and_then(|hold| hold.status())
                    .is_some_and(|status| *status == ObjectLockLegalHoldStatus::On);
                if on {
                    return Ok(true);
                }
            }
            // No hold was ever set (RGW's code, then AWS's).
            Err(error)
                if error.code() == Some("ObjectLockConfigurationNotFoundError")
                    || error.code() == Some("NoSuchObjectLockConfiguration") => {}
            Err(error) => {
                return Err(store_error(
                    format!("legal hold of s3://{}/{key}", store.bucket),
                    error,
                ));
            }
        }
    }
    Ok(false)
}

/// Deletes every object version under `prefix`: the store refuses those under retention or
/// legal hold, and the first refusal is the error (naming the object).
pub async fn delete_call(store: &Store, prefix: &str) -> Result<Vec<String>, LifecycleError> {
    let mut deleted = Vec::new();
    for (key, version) in versions(store, prefix).await? {
        store
            .client
            .delete_object()
            .bucket(&store.bucket)
            .key(&key)
            .version_id(&version)
            .send()
            .await
            .map_err(|e| store_error(format!("delete s3://{}/{key}", store.bucket), e))?;
        deleted.push(key);
    }
    Ok(deleted)
}
