//! The object-storage commands: `bucket-create`, `archive`, `hold`, `release`, `delete`.
//!
//! Endpoint, region and credentials come from the standard AWS configuration
//! (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_PROFILE`, `~/.aws/*`); the flags override it.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use lifecycle::archive::{self, Event, Options};
use lifecycle::calls;
use lifecycle::policy::{Policy, Subject};
use lifecycle::recording::LocalRecording;
use lifecycle::store::{Connection, Store};

#[derive(Args)]
pub struct StoreArgs {
    /// The bucket (created with Object Lock: `vcc-vault bucket-create`).
    #[arg(long)]
    pub bucket: String,
    /// S3 endpoint, e.g. http://127.0.0.1:7480 (default: AWS_ENDPOINT_URL, else AWS).
    #[arg(long)]
    endpoint: Option<String>,
    /// Region (default: AWS_REGION / the profile's).
    #[arg(long)]
    region: Option<String>,
    /// AWS profile of ~/.aws/config (default: AWS_PROFILE).
    #[arg(long)]
    profile: Option<String>,
    /// Print JSON lines instead of text and progress bars.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct ArchiveArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The finished recordings (`.age`; their signatures and manifest beside them).
    #[arg(required = true)]
    recordings: Vec<PathBuf>,
    /// The organisation's minisign public key: recordings whose signatures fail are refused.
    #[arg(long)]
    key: PathBuf,
    /// Retention policy (TOML).
    #[arg(long)]
    policy: PathBuf,
    /// Tenant: the first component of the object keys.
    #[arg(long)]
    tenant: String,
    /// Delete the local files once all four objects were read back and match.
    #[arg(long)]
    delete_local: bool,
    /// Multipart part size in MiB (5-5120); files up to this size are one PUT.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(5..=5120))]
    part_size_mib: u64,
}

#[derive(Args)]
pub struct CallArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[arg(long)]
    tenant: String,
    #[arg(long)]
    call_id: String,
}

impl ArchiveArgs {
    /// For the audit log.
    pub fn describe(&self) -> String {
        format!(
            "s3://{}/{}/ <- {}",
            self.store.bucket,
            self.tenant,
            self.recordings
                .iter()
                .map(|path| path.display().to_string())
                .collect::<Vec<_>>()
                .join(" ")
        )
    }
}

impl CallArgs {
    /// For the audit log.
    pub fn describe(&self) -> String {
        format!(
            "s3://{}/{}/ call {}",
            self.store.bucket, self.tenant, self.call_id
        )
    }
}

pub fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the I/O runtime: {e}"))
}

pub async fn connect(args: &StoreArgs) -> Store {
    let connection = Connection {
        endpoint: args.endpoint.clone(),
        region: args.region.clone(),
        profile: args.profile.clone(),
        credentials: None,
    };
    Store::connect(&connection, &args.bucket).await
}

pub fn bucket_create(args: StoreArgs) -> Result<(), String> {
    runtime()?.block_on(async {
        let store = connect(&args).await;
        store
            .create_with_object_lock()
            .await
            .map_err(|e| e.to_string())?;
        if args.json {
            println!(
                "{}",
                serde_json::json!({"bucket": args.bucket, "object_lock": true})
            );
        } else {
            println!("created bucket {} with Object Lock", args.bucket);
        }
        Ok(())
    })
}

/// Shows events as a progress bar (terminal) or JSON lines (`--json`).
struct Reporter {
    json: bool,
    bar: Option<ProgressBar>,
}

impl Reporter {
    fn new(json: bool) -> Reporter {
        let bar = (!json && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg:40!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
                )
                .expect("template is valid")
                .progress_chars("=> "),
            );
            bar
        });
        Reporter { json, bar }
    }

    fn event(&self, event: Event) {
        if self.json {
            println!(
                "{}",
                serde_json::to_string(&event).expect("events serialise")
            );
            return;
        }
        match (&self.bar, event) {
            (Some(bar), Event::Upload { key, bytes }) => {
                bar.reset();
                bar.set_length(bytes);
                bar.set_message(key);
            }
            (Some(bar), Event::Progress { done, .. }) => bar.set_position(done),
            (Some(bar), event) => bar.println(describe(&event)),
            (None, Event::Progress { .. } | Event::Upload { .. }) => (),
            (None, event) => eprintln!("{}", describe(&event)),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn describe(event: &Event) -> String {
    match event {
        Event::Upload { key, bytes } => format!("uploading {key} ({bytes} bytes)"),
        Event::Progress { key, done, bytes } => format!("{key}: {done}/{bytes}"),
        Event::Resume { key, parts_kept } => {
            format!("resuming the interrupted upload of {key}: {parts_kept} parts kept")
        }
        Event::AlreadyArchived { key } => format!("already archived: {key}"),
        Event::Verified { key, bytes, .. } => format!("verified {key} ({bytes} bytes, SHA-256)"),
        Event::DeletedLocal { path } => format!("deleted local {path}"),
    }
}

pub fn archive(args: ArchiveArgs) -> Result<(), String> {
    let policy = Policy::load(&args.policy).map_err(|e| e.to_string())?;
    let options = Options {
        tenant: args.tenant.clone(),
        part_size: args.part_size_mib * 1024 * 1024,
        delete_local: args.delete_local,
    };
    let reporter = Reporter::new(args.store.json);
    let failures = runtime()?.block_on(async {
        let store = connect(&args.store).await;
        store.require_object_lock().await.map_err(|e| e.to_string())?;
        let mut failures = 0;
        for path in &args.recordings {
            let result = async {
                let recording = LocalRecording::open(path, &args.key)?;
                let retention = policy.retention_for(&Subject {
                    tenant: &args.tenant,
                    queue: recording.call.queue.as_deref(),
                    direction: recording.call.direction.as_deref(),
                });
                archive::archive(&store, &recording, retention, &options, &mut |event| {
                    reporter.event(event)
                })
                .await
            }
            .await;
            match result {
                Ok(archived) if args.store.json => println!(
                    "{}",
                    serde_json::json!({"event": "archived", "recording": path, "result": archived})
                ),
                Ok(archived) => println!(
                    "archived {} to s3://{}/{} ({} until {}){}",
                    path.display(),
                    archived.bucket,
                    archived.prefix,
                    archived.retention_mode,
                    archived.retain_until_utc,
                    if archived.deleted_local {
                        ", local copy deleted"
                    } else {
                        ""
                    }
                ),
                Err(error) => {
                    failures += 1;
                    if args.store.json {
                        println!(
                            "{}",
                            serde_json::json!({"event": "failed", "recording": path, "error": error.to_string()})
                        );
                    } else {
                        reporter.finish();
                        eprintln!("vcc-vault: {}: {error} (the local copy is kept)", path.display());
                    }
                }
            }
        }
        Ok::<_, String>(failures)
    })?;
    reporter.finish();
    match failures {
        0 => Ok(()),
        n => Err(format!(
            "{n} of {} recordings not archived (the local copies are kept; a rerun completes them)",
            args.recordings.len()
        )),
    }
}

/// `hold` (on = true) and `release`.
pub fn hold(args: CallArgs, on: bool) -> Result<(), String> {
    runtime()?.block_on(async {
        let store = connect(&args.store).await;
        let prefix = calls::find_call(&store, &args.tenant, &args.call_id)
            .await
            .map_err(|e| e.to_string())?;
        let objects = calls::set_legal_hold(&store, &prefix, on)
            .await
            .map_err(|e| e.to_string())?;
        if args.store.json {
            println!(
                "{}",
                serde_json::json!({"call_id": args.call_id, "prefix": prefix, "legal_hold": on, "objects": objects})
            );
        } else {
            println!(
                "legal hold {} for call {} ({} objects under s3://{}/{prefix})",
                if on { "ON" } else { "released" },
                args.call_id,
                objects.len(),
                args.store.bucket
            );
        }
        Ok(())
    })
}

/// Deletes an archived call: refused by the store under retention or legal hold.
pub fn delete(args: CallArgs) -> Result<(), String> {
    runtime()?.block_on(async {
        let store = connect(&args.store).await;
        let prefix = calls::find_call(&store, &args.tenant, &args.call_id)
            .await
            .map_err(|e| e.to_string())?;
        if calls::legal_hold(&store, &prefix)
            .await
            .map_err(|e| e.to_string())?
        {
            return Err(format!(
                "call {} is under legal hold: release it first",
                args.call_id
            ));
        }
        let deleted = calls::delete_call(&store, &prefix).await.map_err(|e| {
            let text = e.to_string();
            if text.contains("AccessDenied") {
                format!("{text} (the store refuses: the call's retention has not expired)")
            } else {
                text
            }
        })?;
        println!(
            "{}",
            serde_json::json!({"call_id": args.call_id, "deleted": deleted})
        );
        Ok(())
    })
}

/// The manifests of the calls under `prefix` of `bucket`, downloaded below `scratch` (for
/// `index --bucket`).
pub fn fetch_manifests(
    bucket: &str,
    endpoint: Option<String>,
    prefix: &str,
    scratch: &std::path::Path,
) -> Result<Vec<(PathBuf, String)>, String> {
    runtime()?.block_on(async {
        let args = StoreArgs {
            bucket: bucket.to_string(),
            endpoint,
            region: None,
            profile: None,
            json: false,
        };
        let store = connect(&args).await;
        calls::fetch_manifests(&store, prefix, scratch)
            .await
            .map_err(|e| e.to_string())
    })
}
