//! The S3 connection, configured like every AWS tool: endpoint, region and credentials from
//! the standard AWS configuration (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID` /
//! `AWS_SECRET_ACCESS_KEY`, `AWS_PROFILE`, `~/.aws/config` and `credentials`), each
//! overridable by a flag.
//!
//! Works with AWS S3 and S3-compatible stores (verified with Ceph RADOS Gateway 16): checksums
//! only when an operation requires them (RGW rejects the SDK's default aws-chunked uploads
//! with trailing checksums, and ignores `x-amz-checksum-sha256`: integrity is checked with
//! Content-MD5 per request and our own SHA-256 read back), path-style addressing when an
//! endpoint is given (`127.0.0.1` has no bucket subdomains).

use aws_config::BehaviorVersion;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{Credentials, Region, RequestChecksumCalculation};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::types::{ObjectLockConfiguration, ObjectLockEnabled};
use aws_smithy_runtime_api::http::Response as HttpResponse;

use crate::LifecycleError;

/// Overrides of the standard AWS configuration (flags of `vcc-vault`).
#[derive(Debug, Clone, Default)]
pub struct Connection {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub profile: Option<String>,
    /// Access key id and secret.
    pub credentials: Option<(String, String)>,
}

/// One bucket of one object store.
#[derive(Clone)]
pub struct Store {
    pub(crate) client: Client,
    pub bucket: String,
}

impl Store {
    pub async fn connect(connection: &Connection, bucket: &str) -> Store {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(profile) = &connection.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(region) = &connection.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(endpoint) = &connection.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        if let Some((id, secret)) = &connection.credentials {
            loader = loader.credentials_provider(Credentials::new(
                id.clone(),
                secret.clone(),
                None,
                None,
                "vcc-vault flags",
            ));
        }
        let shared = loader.load().await;
        let mut config = aws_sdk_s3::config::Builder::from(&shared)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(
                aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired,
            );
        // A custom endpoint (an on-premises store) rarely has bucket subdomains.
        if shared.endpoint_url().is_some() {
            config = config.force_path_style(true);
        }
        if shared.region().is_none() {
            // S3-compatible stores take any region; AWS needs the right one (an error names it).
            config = config.region(Region::new("us-east-1"));
        }
        Store {
            client: Client::from_conf(config.build()),
            bucket: bucket.to_string(),
        }
    }

    /// The SDK client, for what this crate does not wrap.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Refuses a bucket without Object Lock: retention and legal hold would silently not
    /// apply.
    pub async fn require_object_lock(&self) -> Result<(), LifecycleError> {
        let what = || format!("bucket {}", self.bucket);
        match self
            .client
            .get_object_lock_configuration()
            .bucket(&self.bucket)
            .send()
            .await
        {
            Ok(output) => {
                let enabled = output
                    .object_lock_configuration()
                    .and_then(|config| config.object_lock_enabled())
                    .is_some_and(|enabled| enabled.as_str() == "Enabled");
                if enabled {
                    Ok(())
                } else {
                    Err(no_object_lock(&self.bucket))
                }
            }
            Err(error) if error.code() == Some("ObjectLockConfigurationNotFoundError") => {
                Err(no_object_lock(&self.bucket))
            }
            Err(error) => Err(store_error(what(), error)),
        }
    }

    /// Creates the bucket with Object Lock enabled (and so versioning), as archives need.
    /// Each object gets its retention from the policy; the bucket has no default retention.
    pub async fn create_with_object_lock(&self) -> Result<(), LifecycleError> {
        let what = || format!("create bucket {}", self.bucket);
        self.client
            .create_bucket()
            .bucket(&self.bucket)
            .object_lock_enabled_for_bucket(true)
            .send()
            .await
            .map_err(|e| store_error(what(), e))?;
        // RGW answers GetObjectLockConfiguration with "not found" until one is set, even for
        // a bucket created with Object Lock (AWS says "Enabled").
        self.client
            .put_object_lock_configuration()
            .bucket(&self.bucket)
            .object_lock_configuration(
                ObjectLockConfiguration::builder()
                    .object_lock_enabled(ObjectLockEnabled::Enabled)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| store_error(what(), e))?;
        Ok(())
    }
}

fn no_object_lock(bucket: &str) -> LifecycleError {
    LifecycleError::Store {
        what: format!("bucket {bucket}"),
        message: "it has no Object Lock, so retention and legal hold cannot be enforced: \
                  create it with Object Lock enabled (vcc-vault bucket-create)"
            .to_string(),
    }
}

/// An SDK error with everything it knows (code, message, HTTP status, the I/O error below a
/// dispatch failure): the SDK's own `Display` says only "service error".
pub(crate) fn store_error<E>(what: String, error: SdkError<E, HttpResponse>) -> LifecycleError
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    let status = error
        .raw_response()
        .map(|response| response.status().as_u16());
    let message = match (error.code(), error.message(), status) {
        (Some(code), Some(message), _) if !message.is_empty() => format!("{code}: {message}"),
        (Some(code), _, _) => code.to_string(),
        // HEAD answers carry no body, so no code.
        (None, _, Some(403)) => {
            "HTTP 403: access denied (wrong credentials, or no permission on this bucket)".into()
        }
        (None, _, Some(404)) => "HTTP 404: no such bucket or object".into(),
        (None, _, Some(status)) => format!("HTTP {status}"),
        (None, _, None) => DisplayErrorContext(&error).to_string(),
    };
    LifecycleError::Store { what, message }
}
