//! `vcc-vault erase --customer REF`: the right to be forgotten on write-once storage. The
//! customer's key is destroyed in the key vault (crypto-shredding), unless one of their
//! calls is under legal hold; their recordings stay in the archive, under retention, and can
//! no longer be decrypted by anyone.

use std::path::PathBuf;

use clap::Args;
use lifecycle::calls;
use lifecycle::index::{HashKey, Index, Query};
use vault::key_vault::KeyVault;

use crate::archive::{StoreArgs, connect, runtime};

#[derive(Args)]
pub struct EraseArgs {
    /// The customer reference (as recordmux's and encryptedfilesink's customer-reference).
    #[arg(long)]
    customer: String,
    /// The key vault the recordings were made with (encryptedfilesink key-vault).
    #[arg(long)]
    key_vault: PathBuf,
    /// The search index (kept current with `vcc-vault index`): it finds the customer's calls
    /// whose legal holds are checked.
    #[arg(long)]
    db: PathBuf,
    /// The index's hash key.
    #[arg(long)]
    hash_key: PathBuf,
    /// The tenant the calls are archived under.
    #[arg(long)]
    tenant: String,
    #[command(flatten)]
    store: StoreArgs,
}

impl EraseArgs {
    /// For the audit log: the customer as the vault names it (no reference in the clear).
    pub fn describe(&self) -> String {
        let customer = KeyVault::open(&self.key_vault)
            .map(|vault| vault.customer_id(&self.customer))
            .unwrap_or_else(|_| "?".into());
        format!(
            "customer {customer} of key vault {}",
            self.key_vault.display()
        )
    }
}

fn utc_now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("formats")
}

pub fn erase(args: EraseArgs) -> Result<(), String> {
    let vault = KeyVault::open(&args.key_vault).map_err(|e| e.to_string())?;
    let Some(key) = vault
        .customer_key(&args.customer)
        .map_err(|e| e.to_string())?
    else {
        return Err(format!(
            "the key vault '{}' holds no key of this customer (erased already, or another \
             reference?): nothing erased",
            args.key_vault.display()
        ));
    };
    if !args.db.exists() {
        return Err(format!(
            "no index '{}': the customer's calls cannot be checked for legal holds (build it \
             with vcc-vault index); nothing erased",
            args.db.display()
        ));
    }
    let hash_key = HashKey::load_or_create(&args.hash_key).map_err(|e| e.to_string())?;
    let rows = Index::open(&args.db)
        .and_then(|index| {
            index.search(
                &Query {
                    customer_reference: Some(args.customer.clone()),
                    limit: i64::MAX as usize,
                    ..Query::default()
                },
                &hash_key,
            )
        })
        .map_err(|e| e.to_string())?;
    let calls: Vec<(String, String)> = rows
        .iter()
        .map(|row| (row.call_id.clone(), row.location.clone()))
        .collect();
    let held = runtime()?.block_on(async {
        let store = connect(&args.store).await;
        calls::held_calls(&store, &args.tenant, &calls)
            .await
            .map_err(|e| format!("{e}; the legal holds could not be checked, nothing erased"))
    })?;
    if !held.is_empty() {
        return Err(format!(
            "not erased: call(s) {} of this customer are under legal hold (release them first)",
            held.join(", ")
        ));
    }
    let erased_utc = utc_now();
    vault
        .erase(&args.customer, &erased_utc)
        .map_err(|e| format!("{e}; run erase again to finish it"))?;
    let call_ids: Vec<&str> = rows.iter().map(|row| row.call_id.as_str()).collect();
    if args.store.json {
        println!(
            "{}",
            serde_json::json!({"erased_key_id": key.key_id, "erased_utc": erased_utc, "calls": call_ids})
        );
    } else {
        println!(
            "erased customer key {} ({} indexed call(s): {}); their recordings stay archived \
             and can no longer be decrypted",
            key.key_id,
            call_ids.len(),
            if call_ids.is_empty() {
                "-".to_string()
            } else {
                call_ids.join(", ")
            }
        );
    }
    Ok(())
}
