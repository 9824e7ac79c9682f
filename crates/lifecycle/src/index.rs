//! A searchable index of recordings (SQLite), built from signed manifests only.
//!
//! A manifest whose signature fails, or that is not signed as a manifest, is refused and
//! reported. The customer reference, the one field that identifies a member of the public,
//! is never stored in clear: the index holds its keyed hash (HMAC-SHA256 with a key kept
//! apart from the index), so a search by reference works while the index file alone reveals
//! none, and, if recipients are given, the reference sealed with age for those who hold the
//! organisation's keys.

use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use rusqlite::{Connection, OptionalExtension, params};
use sha2::Sha256;

use crate::LifecycleError;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS recordings (
    recording_sha256 TEXT PRIMARY KEY,
    recording TEXT NOT NULL,
    manifest TEXT NOT NULL,
    location TEXT NOT NULL,
    call_id TEXT NOT NULL,
    agent_id TEXT,
    queue TEXT,
    direction TEXT,
    customer_hmac TEXT,
    customer_sealed TEXT,
    started_utc TEXT NOT NULL,
    ended_utc TEXT,
    recorded_duration_ns INTEGER,
    complete INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS by_start ON recordings (started_utc);
CREATE INDEX IF NOT EXISTS by_agent ON recordings (agent_id, started_utc);
CREATE INDEX IF NOT EXISTS by_queue ON recordings (queue, started_utc);
CREATE INDEX IF NOT EXISTS by_customer ON recordings (customer_hmac);
CREATE INDEX IF NOT EXISTS by_call ON recordings (call_id);
";

/// The key of the customer-reference hashes: 32 random bytes, hex, in a file of its own.
pub struct HashKey(Vec<u8>);

impl HashKey {
    /// Reads the key file, or creates it (mode 0600) if it does not exist yet.
    pub fn load_or_create(path: &Path) -> Result<HashKey, LifecycleError> {
        let io = |source| LifecycleError::Io {
            what: "index hash key",
            path: path.to_path_buf(),
            source,
        };
        if !path.exists() {
            let key: [u8; 32] = rand_bytes();
            let text: String = key.iter().map(|byte| format!("{byte:02x}")).collect();
            vault::durable::write_synced(path, format!("{text}\n").as_bytes())?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                    .map_err(io)?;
            }
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        let text = text.trim();
        let bytes: Option<Vec<u8>> = (text.len() == 64)
            .then(|| {
                (0..32)
                    .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok())
                    .collect()
            })
            .flatten();
        bytes.map(HashKey).ok_or_else(|| {
            LifecycleError::Key(format!(
                "index hash key '{}' is not 64 hex digits",
                path.display()
            ))
        })
    }

    /// Hex HMAC-SHA256 of a customer reference (trimmed: how agents type it varies).
    pub fn hash(&self, value: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key size");
        mac.update(value.trim().as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }
}

fn rand_bytes() -> [u8; 32] {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).expect("the OS has randomness");
    key
}

/// One indexed recording.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Row {
    pub call_id: String,
    pub agent_id: Option<String>,
    pub queue: Option<String>,
    pub direction: Option<String>,
    pub started_utc: String,
    pub ended_utc: Option<String>,
    pub recorded_duration_s: Option<f64>,
    pub complete: bool,
    pub recording: String,
    pub recording_sha256: String,
    /// Where the recording is: a local directory or `s3://bucket/prefix`.
    pub location: String,
    /// The customer reference sealed with age (base64 of the armored file), if recipients
    /// were given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_sealed: Option<String>,
}

/// What a search asks for; absent fields match anything.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub agent_id: Option<String>,
    pub queue: Option<String>,
    pub direction: Option<String>,
    pub customer_reference: Option<String>,
    pub call_id: Option<String>,
    /// Calls that started at or after (UTC, RFC 3339 or a date).
    pub from: Option<String>,
    /// Calls that started before.
    pub to: Option<String>,
    pub limit: usize,
}

/// What indexing did.
#[derive(Debug, Default, serde::Serialize)]
pub struct Report {
    pub indexed: usize,
    pub unchanged: usize,
    /// Manifests refused, with why.
    pub refused: Vec<(String, String)>,
}

pub struct Index {
    db: Connection,
    path: PathBuf,
}

impl Index {
    pub fn open(path: &Path) -> Result<Index, LifecycleError> {
        let db = Connection::open(path).map_err(|e| db_error(path, e))?;
        db.execute_batch(SCHEMA).map_err(|e| db_error(path, e))?;
        Ok(Index {
            db,
            path: path.to_path_buf(),
        })
    }

    fn error(&self, error: rusqlite::Error) -> LifecycleError {
        db_error(&self.path, error)
    }

    /// Indexes every `*.json` manifest (with its `.minisig`) in `dir`, checked with the
    /// organisation's public key; `location` says where the recordings are.
    pub fn add_dir(
        &mut self,
        dir: &Path,
        location: &str,
        public_key: &Path,
        key: &HashKey,
        seal_to: Option<&vault::keys::Protection>,
    ) -> Result<Report, LifecycleError> {
        let entries = std::fs::read_dir(dir).map_err(|source| LifecycleError::Io {
            what: "directory to index",
            path: dir.to_path_buf(),
            source,
        })?;
        let mut manifests: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
            .collect();
        manifests.sort();
        let mut report = Report::default();
        let transaction = self.db.transaction().map_err(|e| db_error(&self.path, e))?;
        for manifest in manifests {
            match read_signed_manifest(&manifest, public_key) {
                Ok((binding, json)) => {
                    let added = insert(
                        &transaction,
                        &binding,
                        &json,
                        &manifest,
                        location,
                        key,
                        seal_to,
                    )
                    .map_err(|e| db_error(&self.path, e))?;
                    if added {
                        report.indexed += 1;
                    } else {
                        report.unchanged += 1;
                    }
                }
                Err(error) => report
                    .refused
                    .push((manifest.display().to_string(), error.to_string())),
            }
        }
        transaction.commit().map_err(|e| db_error(&self.path, e))?;
        Ok(report)
    }

    pub fn search(&self, query: &Query, key: &HashKey) -> Result<Vec<Row>, LifecycleError> {
        let mut clauses = Vec::new();
        let mut values: Vec<String> = Vec::new();
        let mut add = |clause: &str, value: String| {
            values.push(value);
            clauses.push(format!("{clause} ?{}", values.len()));
        };
        if let Some(agent) = &query.agent_id {
            add("agent_id =", agent.clone());
        }
        if let Some(queue) = &query.queue {
            add("queue =", queue.clone());
        }
        if let Some(direction) = &query.direction {
            add("direction =", direction.clone());
        }
        if let Some(call) = &query.call_id {
            add("call_id =", call.clone());
        }
        if let Some(customer) = &query.customer_reference {
            add("customer_hmac =", key.hash(customer));
        }
        if let Some(from) = &query.from {
            add("started_utc >=", normalise_time(from)?);
        }
        if let Some(to) = &query.to {
            add("started_utc <", normalise_time(to)?);
        }
        let filter = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        let sql = format!(
            "SELECT call_id, agent_id, queue, direction, started_utc, ended_utc,
                    recorded_duration_ns, complete, recording, recording_sha256, location,
                    customer_sealed
             FROM recordings {filter} ORDER BY started_utc, call_id LIMIT {}",
            query.limit.max(1)
        );
        let mut statement = self.db.prepare(&sql).map_err(|e| self.error(e))?;
        let rows = statement
            .query_map(rusqlite::params_from_iter(values.iter()), |row| {
                Ok(Row {
                    call_id: row.get(0)?,
                    agent_id: row.get(1)?,
                    queue: row.get(2)?,
                    direction: row.get(3)?,
                    started_utc: row.get(4)?,
                    ended_utc: row.get(5)?,
                    recorded_duration_s: row.get::<_, Option<i64>>(6)?.map(|ns| ns as f64 / 1e9),
                    complete: row.get(7)?,
                    recording: row.get(8)?,
                    recording_sha256: row.get(9)?,
                    location: row.get(10)?,
                    customer_sealed: row.get(11)?,
                })
            })
            .map_err(|e| self.error(e))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.error(e))
    }

    pub fn count(&self) -> Result<u64, LifecycleError> {
        self.db
            .query_row("SELECT COUNT(*) FROM recordings", [], |row| row.get(0))
            .map_err(|e| self.error(e))
    }
}

fn db_error(path: &Path, error: rusqlite::Error) -> LifecycleError {
    LifecycleError::Store {
        what: format!("index '{}'", path.display()),
        message: error.to_string(),
    }
}

/// A time bound as the index stores times (`YYYY-MM-DDTHH:MM:SS`, UTC, compared as text).
fn normalise_time(text: &str) -> Result<String, LifecycleError> {
    use time::format_description::well_known::Rfc3339;
    let invalid = || {
        LifecycleError::Key(format!(
            "{text:?} is not a time: give 2026-12-01 or 2026-12-01T17:00:00Z"
        ))
    };
    if let Ok(at) = time::OffsetDateTime::parse(text, &Rfc3339) {
        let at = at.to_offset(time::UtcOffset::UTC);
        return Ok(format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            at.year(),
            u8::from(at.month()),
            at.day(),
            at.hour(),
            at.minute(),
            at.second()
        ));
    }
    let date = time::Date::parse(
        text,
        &time::macros::format_description!("[year]-[month]-[day]"),
    )
    .map_err(|_| invalid())?;
    Ok(format!("{date}T00:00:00"))
}

/// The manifest, if its signature verifies and it is signed as a manifest of a recording.
fn read_signed_manifest(
    manifest: &Path,
    public_key: &Path,
) -> Result<(vault::sign::Binding, serde_json::Value), LifecycleError> {
    let binding = vault::sign::verify_file(manifest, public_key)?;
    let invalid = |message: &str| LifecycleError::Manifest {
        path: manifest.to_path_buf(),
        message: message.to_string(),
    };
    if binding.kind != "manifest" || binding.recording.is_none() {
        return Err(invalid("it is not signed as the manifest of a recording"));
    }
    let bytes = std::fs::read(manifest).map_err(|source| LifecycleError::Io {
        what: "manifest",
        path: manifest.to_path_buf(),
        source,
    })?;
    let json: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| invalid(&e.to_string()))?;
    if json["started_utc"].as_str().is_none() || json["call"]["call_id"].as_str().is_none() {
        return Err(invalid("it has no call.call_id or started_utc"));
    }
    Ok((binding, json))
}

/// Inserts or replaces one recording; false if it was indexed already with this manifest.
fn insert(
    db: &Connection,
    binding: &vault::sign::Binding,
    json: &serde_json::Value,
    manifest: &Path,
    location: &str,
    key: &HashKey,
    seal_to: Option<&vault::keys::Protection>,
) -> rusqlite::Result<bool> {
    let sha256 = binding.recording_sha256.clone().unwrap_or_default();
    let manifest_name = manifest
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let known: Option<String> = db
        .query_row(
            "SELECT manifest FROM recordings WHERE recording_sha256 = ?1 AND location = ?2",
            params![sha256, location],
            |row| row.get(0),
        )
        .optional()?;
    if known.as_deref() == Some(manifest_name.as_str()) {
        return Ok(false);
    }
    let call = &json["call"];
    let text = |value: &serde_json::Value| {
        value
            .as_str()
            .filter(|text| !text.is_empty())
            .map(str::to_string)
    };
    let customer = text(&call["customer_reference"]);
    let sealed = match (&customer, seal_to) {
        (Some(customer), Some(protection)) => seal(customer, protection),
        _ => None,
    };
    let started = text(&json["started_utc"]).unwrap_or_default();
    db.execute(
        "INSERT OR REPLACE INTO recordings
         (recording_sha256, recording, manifest, location, call_id, agent_id, queue, direction,
          customer_hmac, customer_sealed, started_utc, ended_utc, recorded_duration_ns, complete)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        params![
            sha256,
            binding.recording.clone().unwrap_or_default(),
            manifest_name,
            location,
            text(&call["call_id"]).unwrap_or_default(),
            text(&call["agent_id"]),
            text(&call["queue"]),
            text(&call["direction"]),
            customer.as_deref().map(|customer| key.hash(customer)),
            sealed,
            started.get(..19).unwrap_or(&started),
            text(&json["ended_utc"]),
            json["recorded_duration_ns"].as_i64(),
            json["complete"].as_bool().unwrap_or(false),
        ],
    )?;
    Ok(true)
}

/// `value` encrypted with age to `protection`'s recipients, base64.
fn seal(value: &str, protection: &vault::keys::Protection) -> Option<String> {
    use base64::Engine;
    use std::io::Write;
    let recipients = protection.age_recipients().ok()?;
    let encryptor =
        age::Encryptor::with_recipients(recipients.iter().map(|r| r.as_ref() as _)).ok()?;
    let mut sealed = Vec::new();
    let mut writer = encryptor.wrap_output(&mut sealed).ok()?;
    writer.write_all(value.as_bytes()).ok()?;
    writer.finish().ok()?;
    Some(base64::engine::general_purpose::STANDARD.encode(sealed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_normalise_to_the_index_form() {
        assert_eq!(normalise_time("2026-12-01").unwrap(), "2026-12-01T00:00:00");
        assert_eq!(
            normalise_time("2026-12-01T18:30:00+01:00").unwrap(),
            "2026-12-01T17:30:00"
        );
        assert!(normalise_time("yesterday").is_err());
    }

    #[test]
    fn customer_hashes_depend_on_the_key() {
        let dir = std::env::temp_dir().join(format!("lifecycle-hashkey-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = HashKey::load_or_create(&dir.join("a.key")).unwrap();
        let b = HashKey::load_or_create(&dir.join("b.key")).unwrap();
        let again = HashKey::load_or_create(&dir.join("a.key")).unwrap();
        assert_eq!(a.hash("CUST-1"), again.hash(" CUST-1 "));
        assert_ne!(a.hash("CUST-1"), b.hash("CUST-1"));
        assert!(!a.hash("CUST-1").contains("CUST"));
        std::fs::write(dir.join("bad.key"), "zz").unwrap();
        assert!(HashKey::load_or_create(&dir.join("bad.key")).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
