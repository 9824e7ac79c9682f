//! `vcc-vault`: keys, signature checks, decryption and crash recovery for gst-vcc recordings.
//!
//!   vcc-vault keygen --out-dir keys/          age identity + minisign signing key pair
//!   vcc-vault verify --key vcc.pub call.mp4.age
//!   vcc-vault decrypt --identity key.txt call.mp4.age -o call.mp4
//!   vcc-vault recover --identity key.txt call.mp4.age.partial -o call.mp4

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gstcryptfile::format::{self, Unlock, VaultError};

#[derive(Parser)]
#[command(
    version,
    about = "Keys, verification, decryption and recovery of gst-vcc recordings"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create an age identity (key.txt, recipient.txt) and a minisign signing key pair
    /// (vcc.key without password for the media server, vcc.pub for auditors).
    Keygen {
        #[arg(long, default_value = ".")]
        out_dir: PathBuf,
    },
    /// Check the minisign signature <file>.minisig with a public key.
    Verify {
        #[arg(long)]
        key: PathBuf,
        file: PathBuf,
    },
    /// Decrypt a complete recording; fails on any damage.
    Decrypt {
        #[arg(long)]
        identity: PathBuf,
        file: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Decrypt every intact chunk of a truncated (crashed) or damaged recording.
    Recover {
        #[arg(long)]
        identity: PathBuf,
        file: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
    },
}

fn create_new(path: &Path) -> Result<BufWriter<File>, String> {
    File::options()
        .write(true)
        .create_new(true)
        .open(path)
        .map(BufWriter::new)
        .map_err(|e| format!("cannot create '{}': {e}", path.display()))
}

/// Decrypts `file` into `output`. On damage, `keep_intact_part` keeps the authenticated
/// prefix with a warning (recovery); otherwise nothing is left and it is an error.
fn decrypt(
    identity: &Path,
    file: &Path,
    output: &Path,
    keep_intact_part: bool,
) -> Result<(), String> {
    let mut out = create_new(output)?;
    let recovery = format::recover(
        file,
        &Unlock::IdentityFile(identity.to_path_buf()),
        &mut out,
    )
    .map_err(|e: VaultError| e.to_string())?;
    out.flush().map_err(|e| e.to_string())?;
    drop(out);
    match recovery.damage {
        None => {
            eprintln!("decrypted {} bytes to {}", recovery.bytes, output.display());
            Ok(())
        }
        Some(damage) if keep_intact_part => {
            eprintln!(
                "warning: {damage}\nrecovered the first {} bytes to {}; the rest is lost",
                recovery.bytes,
                output.display()
            );
            Ok(())
        }
        Some(damage) => {
            let _ = std::fs::remove_file(output);
            Err(format!(
                "{damage}; nothing written (use `recover` to keep the intact part)"
            ))
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Keygen { out_dir } => {
            std::fs::create_dir_all(&out_dir).map_err(|e| e.to_string())?;
            let (identity, recipient) = format::generate_identity();
            let (secret, public) = format::generate_signing_keys()?;
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
        Command::Verify { key, file } => {
            format::verify_file(&file, &key).map_err(|e| e.to_string())?;
            println!("signature OK: {}", file.display());
            Ok(())
        }
        Command::Decrypt {
            identity,
            file,
            output,
        } => decrypt(&identity, &file, &output, false),
        Command::Recover {
            identity,
            file,
            output,
        } => decrypt(&identity, &file, &output, true),
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("vcc-vault: {message}");
            ExitCode::FAILURE
        }
    }
}
