//! `vcc-vault`: keys, signature checks, decryption and crash recovery for gst-vcc recordings.
//!
//!   vcc-vault keygen --out-dir keys/          age identity + minisign signing key pair
//!   vcc-vault verify --key vcc.pub call.mp4.age [--manifest call.mp4.age.json]
//!   vcc-vault decrypt --identity key.txt call.mp4.age -o call.mp4
//!   vcc-vault recover --identity key.txt call.mp4.age.partial -o call.mp4
//!   vcc-vault verify --key vcc.pub --partial call.mp4.age.partial [--identity key.txt]
//!   vcc-vault recover --identity key.txt --proven --key vcc.pub call.mp4.age.partial -o call.mp4
//!   vcc-vault bucket-create --bucket recordings
//!   vcc-vault archive --bucket recordings --tenant acme --policy policy.toml --key vcc.pub *.age
//!   vcc-vault hold|release|delete --bucket recordings --tenant acme --call-id C
//!   vcc-vault index --db index.sqlite --hash-key index.key --key vcc.pub recordings/
//!   vcc-vault search --db index.sqlite --hash-key index.key --agent A --from 2026-12-01
//!   vcc-vault erase --customer REF --key-vault keys/ --db index.sqlite --hash-key index.key \
//!       --bucket recordings --tenant acme
//!   vcc-vault export call.mp4.age --identity key.txt --key vcc.pub --from 10 --to 70 \
//!       --redact 20-31.5 --format mp4 -o excerpt.mp4 --signing-key vcc.key
//!
//! The object-storage commands ([`archive`]) take the standard AWS configuration.

mod archive;
mod erase;
mod export;
mod search;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use vault::keys::{self, Unlock};
use vault::{checkpoint, durable, key_vault, read, sign};

#[derive(Parser)]
#[command(
    version,
    about = "Keys, verification, decryption and recovery of gst-vcc recordings"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Append-only, hash-chained, signed audit log: every decrypt, recover, archive, hold,
    /// release, delete, erase, index, search and export is written to it before it runs (and
    /// refused if it cannot be). Deployments set VCC_AUDIT_LOG and VCC_AUDIT_KEY for every operator.
    #[arg(long, global = true, env = "VCC_AUDIT_LOG", requires = "audit_key")]
    audit_log: Option<PathBuf>,
    /// The minisign secret key that signs audit entries (kept apart from those audited).
    #[arg(long, global = true, env = "VCC_AUDIT_KEY")]
    audit_key: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Create an age identity (key.txt, recipient.txt) and a minisign signing key pair
    /// (vcc.key without password for the media server, vcc.pub for auditors).
    Keygen {
        #[arg(long, default_value = ".")]
        out_dir: PathBuf,
    },
    /// Check the minisign signature <file>.minisig with a public key, and what it binds (the
    /// file's name, size, SHA-256); with --manifest, also that the manifest's own signature
    /// binds it to this recording.
    Verify {
        #[arg(long)]
        key: PathBuf,
        /// The recording (with --chain: every segment of a rotating recording).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The recording's manifest (with --chain: one per segment, any order).
        #[arg(long)]
        manifest: Vec<PathBuf>,
        /// The files are the segments of one rotating recording: check the chain (each
        /// segment once, in order, each naming the one before).
        #[arg(long)]
        chain: bool,
        /// The file is a crashed recording's `.partial`: prove how much of it is authentic
        /// with the signed checkpoints beside it (`<recording>.checkpoints`).
        #[arg(long, conflicts_with_all = ["chain", "manifest"])]
        partial: bool,
        /// With --partial: an age identity, to prove the chunk that was being filled too
        /// (without it only the completed 64 KiB chunks are proven).
        #[arg(long, requires = "partial")]
        identity: Option<PathBuf>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Decrypt a complete recording; fails on any damage and then writes nothing.
    Decrypt {
        #[arg(long)]
        identity: PathBuf,
        /// The key vault of recordings encrypted to their customer's key (opened with
        /// --identity); an erased key is an error that says so.
        #[arg(long)]
        key_vault: Option<PathBuf>,
        file: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Decrypt every intact chunk of a cut (crashed) or damaged recording; damaged chunks
    /// are reported and left as zeros so that what follows keeps its place. Fails if nothing
    /// could be recovered.
    Recover {
        #[arg(long)]
        identity: PathBuf,
        /// As for decrypt.
        #[arg(long)]
        key_vault: Option<PathBuf>,
        file: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
        /// Keep exactly what the signed checkpoints prove (needs --key): nothing after the
        /// last signed checkpoint, refused if the file was modified inside it.
        #[arg(long, requires = "key")]
        proven: bool,
        /// The minisign public key the checkpoints are signed with.
        #[arg(long)]
        key: Option<PathBuf>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Create a bucket with S3 Object Lock (and so versioning) for archives.
    BucketCreate(archive::StoreArgs),
    /// Upload finished recordings (ciphertext, manifest, their signatures) under
    /// <tenant>/yyyy/mm/dd/<call-id>/ with Object Lock retention from the policy, read each
    /// object back, and with --delete-local delete the local copy. A rerun completes an
    /// interrupted upload.
    Archive(archive::ArchiveArgs),
    /// Put an archived call under legal hold (no deletion, whatever its retention).
    Hold(archive::CallArgs),
    /// Release an archived call's legal hold.
    Release(archive::CallArgs),
    /// Delete an archived call's objects: the store refuses while retention or a hold applies.
    Delete(archive::CallArgs),
    /// Build or update the search index (SQLite) from signed manifests, in directories or a
    /// bucket; manifests whose signature fails are refused.
    Index(search::IndexArgs),
    /// Search the index by agent, queue, direction, customer reference, call id and time.
    Search(search::SearchArgs),
    /// Erase a customer's recordings (right to be forgotten): destroy their key in the key
    /// vault unless one of their calls is under legal hold. The archived objects stay (retention)
    /// and can no longer be decrypted by anyone.
    Erase(erase::EraseArgs),
    /// Decrypt a recording, cut it to --from/--to, blank --redact spans (black video,
    /// silence), write MP4, WebM or WAV with a signed export manifest citing the source.
    Export(export::ExportArgs),
    /// The audit log: `vcc-vault audit verify LOG --key audit.pub`.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
}

#[derive(Subcommand)]
enum AuditAction {
    /// Check the audit log: every line's signature, the sequence, the hash chain and the head.
    Verify {
        /// The audit log.
        log: PathBuf,
        /// The public key of the audit signing key.
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

/// An audit entry: action, target, details.
type Audited = (&'static str, String, Vec<(&'static str, String)>);

/// What the audit log records of a command, if anything.
fn audited(command: &Command) -> Option<Audited> {
    let path = |path: &Path| path.display().to_string();
    match command {
        Command::Decrypt {
            file,
            output,
            identity,
            ..
        } => Some((
            "decrypt",
            path(file),
            vec![("output", path(output)), ("identity", path(identity))],
        )),
        Command::Recover {
            file,
            output,
            identity,
            ..
        } => Some((
            "recover",
            path(file),
            vec![("output", path(output)), ("identity", path(identity))],
        )),
        Command::Archive(args) => Some(("archive", args.describe(), vec![])),
        Command::Hold(args) => Some(("hold", args.describe(), vec![])),
        Command::Release(args) => Some(("release", args.describe(), vec![])),
        Command::Delete(args) => Some(("delete", args.describe(), vec![])),
        Command::Index(args) => Some(("index", args.describe(), vec![])),
        Command::Search(args) => Some(("search", args.describe(), vec![])),
        Command::Export(args) => Some(("export", args.describe(), vec![])),
        Command::Erase(args) => Some(("erase", args.describe(), vec![])),
        _ => None,
    }
}

fn create_new(path: &Path) -> Result<BufWriter<File>, String> {
    File::options()
        .write(true)
        .create_new(true)
        .open(path)
        .map(BufWriter::new)
        .map_err(|e| format!("cannot create '{}': {e}", path.display()))
}

/// What the signed checkpoints of a crashed recording prove; an error if they prove nothing
/// or the file was modified.
fn prove(file: &Path, key: &Path, unlock: Option<&Unlock>) -> Result<checkpoint::Proof, String> {
    let proof = checkpoint::verify_partial(file, key, unlock).map_err(|e| e.to_string())?;
    if !proof.modified.is_empty() {
        return Err(format!(
            "'{}' was MODIFIED after it was checkpointed: {}",
            file.display(),
            proof.modified.join("; ")
        ));
    }
    if proof.checkpoint.is_none() {
        return Err(format!(
            "no signed checkpoint of '{}' matches it{}",
            file.display(),
            if proof.forged_lines > 0 {
                format!(" ({} lines fail their signature)", proof.forged_lines)
            } else {
                String::new()
            }
        ));
    }
    Ok(proof)
}

fn verify_partial(
    key: &Path,
    file: &Path,
    identity: Option<&Path>,
    json: bool,
) -> Result<(), String> {
    let unlock = identity.map(|i| Unlock::IdentityFile(i.to_path_buf()));
    let proof = prove(file, key, unlock.as_ref())?;
    let record = proof.checkpoint.as_ref().expect("prove checks");
    if json {
        println!("{}", serde_json::json!({"file": file, "proof": proof}));
        return Ok(());
    }
    println!(
        "checkpoint OK: {} proven authentic up to checkpoint {} ({} UTC{}): {} of its {} media bytes{}{}",
        file.display(),
        record.sequence,
        record.wall_time_utc,
        record
            .running_time_ns
            .map(|ns| format!(", running time {:.3} s", ns as f64 / 1e9))
            .unwrap_or_default(),
        proof.proven_plaintext_bytes,
        record.plaintext_bytes,
        if proof.tail_proven || record.tail_plaintext_bytes == 0 {
            String::new()
        } else {
            " (give --identity to prove the chunk being filled)".to_string()
        },
        if proof.forged_lines > 0 {
            format!(
                "; {} checkpoint lines fail their signature",
                proof.forged_lines
            )
        } else {
            String::new()
        }
    );
    Ok(())
}

fn recover(
    unlock: Unlock,
    file: &Path,
    output: &Path,
    proven_by: Option<&Path>,
    json: bool,
) -> Result<(), String> {
    if output.exists() {
        return Err(format!(
            "'{}' exists; remove it or choose another output",
            output.display()
        ));
    }
    let proof = proven_by
        .map(|key| prove(file, key, Some(&unlock)))
        .transpose()?;
    let temporary = durable::with_suffix(output, ".part");
    let mut out = create_new(&temporary)?;
    let result = read::recover(
        file,
        &unlock,
        &mut out,
        proof.as_ref().map(|p| p.proven_plaintext_bytes),
    )
    .map_err(|e| e.to_string())
    .and_then(|recovery| {
        out.flush().map_err(|e| e.to_string())?;
        Ok(recovery)
    });
    drop(out);
    let recovery = match result {
        Ok(recovery) if recovery.recovered_bytes > 0 => recovery,
        Ok(recovery) => {
            let _ = std::fs::remove_file(&temporary);
            return Err(format!(
                "nothing could be recovered from '{}' ({})",
                file.display(),
                if recovery.holes.is_empty() {
                    "it holds no media".to_string()
                } else {
                    recovery.describe_holes()
                }
            ));
        }
        Err(error) => {
            let _ = std::fs::remove_file(&temporary);
            return Err(error);
        }
    };
    std::fs::rename(&temporary, output)
        .map_err(|e| format!("cannot write '{}': {e}", output.display()))?;
    if json {
        println!(
            "{}",
            serde_json::json!({"file": file, "output": output, "recovery": recovery, "proof": proof})
        );
    } else if let Some(proof) = &proof {
        eprintln!(
            "recovered the {} bytes proven by checkpoint {} to {}{}",
            recovery.written_bytes,
            proof.checkpoint.as_ref().map_or(0, |c| c.sequence),
            output.display(),
            if recovery.holes.is_empty() {
                String::new()
            } else {
                format!(" (damaged: {})", recovery.describe_holes())
            }
        );
    } else if recovery.holes.is_empty() {
        eprintln!(
            "recovered all {} bytes to {}",
            recovery.recovered_bytes,
            output.display()
        );
    } else {
        eprintln!(
            "warning: {} damaged or missing: {}\nrecovered {} bytes to {}{}",
            if recovery.complete {
                "parts"
            } else {
                "the end and parts"
            },
            recovery.describe_holes(),
            recovery.recovered_bytes,
            output.display(),
            if recovery.written_bytes > recovery.recovered_bytes {
                " (holes inside are zero-filled)"
            } else {
                ""
            }
        );
    }
    Ok(())
}

fn verify(key: &Path, files: &[PathBuf], manifests: &[PathBuf], chain: bool) -> Result<(), String> {
    if !chain {
        let [file] = files else {
            return Err("give one recording (or --chain with all segments)".into());
        };
        let binding = match manifests {
            [] => sign::verify_file(file, key),
            [manifest] => sign::verify_manifest(manifest, file, key),
            _ => return Err("give one manifest for one recording".into()),
        }
        .map_err(|e| e.to_string())?;
        println!(
            "signature OK: {}{} (call {}, SHA-256 {})",
            file.display(),
            manifests
                .first()
                .map(|m| format!(" and its manifest {}", m.display()))
                .unwrap_or_default(),
            binding.call_id.as_deref().unwrap_or("-"),
            binding
                .recording_sha256
                .as_deref()
                .unwrap_or(&binding.sha256)
        );
        return Ok(());
    }
    let bindings = sign::verify_chain(files, key).map_err(|e| e.to_string())?;
    for manifest in manifests {
        let binding = sign::verify_file(manifest, key).map_err(|e| e.to_string())?;
        let recording = binding
            .recording
            .as_deref()
            .and_then(|name| {
                files
                    .iter()
                    .find(|f| f.file_name().is_some_and(|n| n == name))
            })
            .ok_or_else(|| {
                format!(
                    "manifest '{}' describes '{}', which is not among the segments",
                    manifest.display(),
                    binding.recording.as_deref().unwrap_or("?")
                )
            })?;
        sign::verify_manifest(manifest, recording, key).map_err(|e| e.to_string())?;
    }
    println!(
        "chain OK: {} segments of call {} ({} manifests)",
        bindings.len(),
        bindings
            .first()
            .and_then(|b| b.call_id.as_deref())
            .unwrap_or("-"),
        manifests.len()
    );
    Ok(())
}

fn run(cli: Cli) -> Result<(), String> {
    if let (Some(log), Some(key)) = (&cli.audit_log, &cli.audit_key)
        && let Some((action, target, details)) = audited(&cli.command)
    {
        lifecycle::audit::AuditLog::open(log, key)
            .and_then(|audit| audit.append(action, &target, &details))
            .map_err(|e| format!("not done, the audit log refused the entry: {e}"))?;
    }
    match cli.command {
        Command::Audit {
            action: AuditAction::Verify { log, key, json },
        } => {
            let result = lifecycle::audit::verify(&log, &key).map_err(|e| e.to_string())?;
            if json {
                println!("{}", serde_json::to_string(&result).expect("serialises"));
            } else if result.problems.is_empty() {
                println!(
                    "audit log OK: {} entries, chain and signatures intact",
                    result.lines
                );
            }
            if result.problems.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "audit log '{}' has been tampered with:\n  {}",
                    log.display(),
                    result.problems.join("\n  ")
                ))
            }
        }
        Command::BucketCreate(args) => archive::bucket_create(args),
        Command::Archive(args) => archive::archive(args),
        Command::Hold(args) => archive::hold(args, true),
        Command::Release(args) => archive::hold(args, false),
        Command::Delete(args) => archive::delete(args),
        Command::Index(args) => search::index(args),
        Command::Search(args) => search::search(args),
        Command::Export(args) => export::export(args),
        Command::Erase(args) => erase::erase(args),
        Command::Keygen { out_dir } => {
            std::fs::create_dir_all(&out_dir).map_err(|e| e.to_string())?;
            let (identity, recipient) = keys::generate_identity();
            let (secret, public) = keys::generate_signing_keys()?;
            for (name, content) in [
                ("key.txt", identity),
                ("recipient.txt", format!("{recipient}\n")),
                ("vcc.key", secret),
                ("vcc.pub", public),
            ] {
                let path = out_dir.join(name);
                let mut file = create_new(&path)?;
                file.write_all(content.as_bytes())
                    .and_then(|_| file.flush())
                    .map_err(|e| format!("cannot write '{}': {e}", path.display()))?;
                println!("{}", path.display());
            }
            Ok(())
        }
        Command::Verify {
            key,
            files,
            manifest,
            chain,
            partial,
            identity,
            json,
        } => {
            if partial {
                let [file] = &files[..] else {
                    return Err("give one .partial recording with --partial".into());
                };
                verify_partial(&key, file, identity.as_deref(), json)
            } else {
                verify(&key, &files, &manifest, chain)
            }
        }
        Command::Decrypt {
            identity,
            key_vault,
            file,
            output,
        } => {
            let unlock = key_vault::unlock_recording(
                &file,
                Unlock::IdentityFile(identity),
                key_vault.as_deref(),
            )
            .map_err(|e| format!("{e}; nothing written"))?;
            let bytes = read::decrypt_to(&file, &unlock, &output).map_err(|e| {
                format!("{e}; nothing written (use `recover` to keep the intact part)")
            })?;
            eprintln!("decrypted {bytes} bytes to {}", output.display());
            Ok(())
        }
        Command::Recover {
            identity,
            key_vault,
            file,
            output,
            proven,
            key,
            json,
        } => recover(
            key_vault::unlock_recording(
                &file,
                Unlock::IdentityFile(identity),
                key_vault.as_deref(),
            )
            .map_err(|e| e.to_string())?,
            &file,
            &output,
            key.as_deref().filter(|_| proven),
            json,
        ),
    }
}

fn main() -> ExitCode {
    if let Some(message) = cpu::unsupported() {
        eprintln!("vcc-vault: {message}");
        return ExitCode::FAILURE;
    }
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("vcc-vault: {message}");
            ExitCode::FAILURE
        }
    }
}
