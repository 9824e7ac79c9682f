//! `index` and `search`: the SQLite index of signed manifests.

use std::path::PathBuf;

use clap::Args;
use lifecycle::index::{HashKey, Index, Query, Report};

#[derive(Args)]
pub struct IndexArgs {
    /// The index (SQLite), created if missing.
    #[arg(long)]
    db: PathBuf,
    /// Key of the customer-reference hashes (created if missing; keep it apart from the index).
    #[arg(long)]
    hash_key: PathBuf,
    /// The organisation's minisign public key: manifests whose signature fails are refused.
    #[arg(long)]
    key: PathBuf,
    /// Also keep the customer reference sealed (age) to these recipients.
    #[arg(long)]
    recipients_file: Option<PathBuf>,
    /// Directories of recordings and their manifests.
    dirs: Vec<PathBuf>,
    /// Index the archived calls of a bucket instead (with the object-storage flags).
    #[arg(long)]
    bucket: Option<String>,
    /// With --bucket: the prefix to list (a tenant, say `acme/`).
    #[arg(long, default_value = "")]
    prefix: String,
    /// S3 endpoint (default: AWS_ENDPOINT_URL).
    #[arg(long)]
    endpoint: Option<String>,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct SearchArgs {
    #[arg(long)]
    db: PathBuf,
    #[arg(long)]
    hash_key: PathBuf,
    #[arg(long)]
    agent: Option<String>,
    #[arg(long)]
    queue: Option<String>,
    #[arg(long)]
    direction: Option<String>,
    /// The customer reference (matched by its keyed hash: the index never holds it in clear).
    #[arg(long)]
    customer: Option<String>,
    #[arg(long)]
    call_id: Option<String>,
    /// Calls that started at or after (2026-12-01 or 2026-12-01T17:00:00Z).
    #[arg(long)]
    from: Option<String>,
    /// Calls that started before.
    #[arg(long)]
    to: Option<String>,
    #[arg(long, default_value_t = 1000)]
    limit: usize,
    #[arg(long)]
    json: bool,
}

impl IndexArgs {
    /// For the audit log.
    pub fn describe(&self) -> String {
        let mut sources: Vec<String> = self.dirs.iter().map(|d| d.display().to_string()).collect();
        if let Some(bucket) = &self.bucket {
            sources.push(format!("s3://{bucket}/{}", self.prefix));
        }
        format!("{} <- {}", self.db.display(), sources.join(" "))
    }
}

impl SearchArgs {
    /// For the audit log: the query (a customer reference only as "given", never in clear).
    pub fn describe(&self) -> String {
        let mut terms = Vec::new();
        for (name, value) in [
            ("agent", &self.agent),
            ("queue", &self.queue),
            ("direction", &self.direction),
            ("call_id", &self.call_id),
            ("from", &self.from),
            ("to", &self.to),
        ] {
            if let Some(value) = value {
                terms.push(format!("{name}={value}"));
            }
        }
        if self.customer.is_some() {
            terms.push("customer=(given)".into());
        }
        format!("{}: {}", self.db.display(), terms.join(" "))
    }
}

fn print_report(report: &Report, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string(report).expect("report serialises")
        );
        return;
    }
    println!(
        "indexed {} recordings ({} already indexed)",
        report.indexed, report.unchanged
    );
    for (manifest, why) in &report.refused {
        eprintln!("vcc-vault: refused {manifest}: {why}");
    }
}

pub fn index(args: IndexArgs) -> Result<(), String> {
    let key = HashKey::load_or_create(&args.hash_key).map_err(|e| e.to_string())?;
    let seal_to = args
        .recipients_file
        .as_deref()
        .map(|file| {
            vault::keys::parse_recipients("", Some(file)).map(vault::keys::Protection::Recipients)
        })
        .transpose()
        .map_err(|e| e.to_string())?;
    let mut index = Index::open(&args.db).map_err(|e| e.to_string())?;
    let mut total = Report::default();
    let mut add = |report: Report| {
        total.indexed += report.indexed;
        total.unchanged += report.unchanged;
        total.refused.extend(report.refused);
    };
    for dir in &args.dirs {
        let location = std::fs::canonicalize(dir)
            .map_err(|e| format!("cannot read '{}': {e}", dir.display()))?
            .display()
            .to_string();
        add(index
            .add_dir(dir, &location, &args.key, &key, seal_to.as_ref())
            .map_err(|e| e.to_string())?);
    }
    if let Some(bucket) = &args.bucket {
        let scratch = std::env::temp_dir().join(format!("vcc-vault-index-{}", std::process::id()));
        let fetched =
            super::archive::fetch_manifests(bucket, args.endpoint.clone(), &args.prefix, &scratch);
        let result = fetched.and_then(|calls| {
            for (dir, location) in calls {
                add(index
                    .add_dir(&dir, &location, &args.key, &key, seal_to.as_ref())
                    .map_err(|e| e.to_string())?);
            }
            Ok(())
        });
        let _ = std::fs::remove_dir_all(&scratch);
        result?;
    }
    print_report(&total, args.json);
    if total.refused.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} manifests refused (signature or content)",
            total.refused.len()
        ))
    }
}

pub fn search(args: SearchArgs) -> Result<(), String> {
    let key = HashKey::load_or_create(&args.hash_key).map_err(|e| e.to_string())?;
    if !args.db.exists() {
        return Err(format!(
            "no index '{}': build it with vcc-vault index",
            args.db.display()
        ));
    }
    let index = Index::open(&args.db).map_err(|e| e.to_string())?;
    let rows = index
        .search(
            &Query {
                agent_id: args.agent,
                queue: args.queue,
                direction: args.direction,
                customer_reference: args.customer,
                call_id: args.call_id,
                from: args.from,
                to: args.to,
                limit: args.limit,
            },
            &key,
        )
        .map_err(|e| e.to_string())?;
    if args.json {
        println!("{}", serde_json::to_string(&rows).expect("rows serialise"));
        return Ok(());
    }
    println!(
        "{:<20} {:<24} {:<12} {:<10} {:<9} {:>9}  location",
        "started (UTC)", "call id", "agent", "queue", "direction", "seconds"
    );
    for row in &rows {
        println!(
            "{:<20} {:<24} {:<12} {:<10} {:<9} {:>9}  {}/{}",
            row.started_utc,
            row.call_id,
            row.agent_id.as_deref().unwrap_or("-"),
            row.queue.as_deref().unwrap_or("-"),
            row.direction.as_deref().unwrap_or("-"),
            row.recorded_duration_s
                .map(|s| format!("{s:.1}"))
                .unwrap_or_else(|| "-".into()),
            row.location.trim_end_matches('/'),
            row.recording
        );
    }
    eprintln!("{} recordings", rows.len());
    Ok(())
}
