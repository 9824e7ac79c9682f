//! `vcc-vault` archives a real recording (made by the record_call example through recordmux
//! and encryptedfilesink) to a real Ceph RADOS Gateway, and the store enforces what the
//! policy says: retention, legal hold.

mod common;

use std::path::Path;

use common::vault_cli::{json_lines, record, vcc_vault, write_audit_keys};
use common::*;
use test_support::rgw::Rgw;

#[test]
fn a_recorded_call_is_archived_held_and_cannot_be_deleted() {
    let rgw = Rgw::start("vault-archive");
    let dir = scratch("vault-archive");
    write_keys(&dir);
    write_audit_keys(&dir);
    let recording = record(&dir, "call-e2e-1", &[]);
    let policy = dir.join("policy.toml");
    std::fs::write(
        &policy,
        "[default]\nretention_days = 7\nmode = \"compliance\"\n",
    )
    .unwrap();
    let (key, policy) = (dir.join("vcc.pub"), policy.to_str().unwrap().to_string());
    let store = ["--bucket", "recordings", "--json"];
    let created = vcc_vault(&rgw, &dir, &[&["bucket-create"][..], &store].concat());
    assert!(created.status.success(), "{created:?}");
    let archive = |extra: &[&str]| {
        let mut args = vec!["archive", "--tenant", "acme", "--policy", &policy];
        args.extend(["--key", key.to_str().unwrap()]);
        args.extend(store);
        args.extend(extra);
        args.push(recording.to_str().unwrap());
        vcc_vault(&rgw, &dir, &args)
    };
    let output = archive(&["--delete-local"]);
    assert!(output.status.success(), "{output:?}");
    let events = json_lines(&output);
    let archived = events.iter().find(|e| e["event"] == "archived").unwrap();
    let prefix = archived["result"]["prefix"].as_str().unwrap();
    assert!(
        prefix.starts_with("acme/20") && prefix.ends_with("/call-e2e-1/"),
        "{prefix}"
    );
    assert_eq!(archived["result"]["retention_mode"], "COMPLIANCE");
    let verified = events.iter().filter(|e| e["event"] == "verified").count();
    assert_eq!(verified, 4, "{events:?}");
    assert!(!recording.exists(), "--delete-local after verification");
    // Gone locally: a rerun names the missing file and fails.
    let output = archive(&[]);
    assert!(!output.status.success());
    assert!(json_lines(&output).iter().any(|e| e["event"] == "failed"));

    let call = ["--tenant", "acme", "--call-id", "call-e2e-1"];
    let held = vcc_vault(&rgw, &dir, &[&["hold"][..], &store, &call].concat());
    assert!(held.status.success(), "{held:?}");
    assert_eq!(json_lines(&held)[0]["objects"].as_array().unwrap().len(), 4);
    let refused = vcc_vault(&rgw, &dir, &[&["delete"][..], &store, &call].concat());
    assert!(!refused.status.success());
    let text = String::from_utf8_lossy(&refused.stderr);
    assert!(text.contains("under legal hold"), "{text}");
    let released = vcc_vault(&rgw, &dir, &[&["release"][..], &store, &call].concat());
    assert!(released.status.success(), "{released:?}");
    // Released, still under COMPLIANCE retention: the store itself refuses.
    let refused = vcc_vault(&rgw, &dir, &[&["delete"][..], &store, &call].concat());
    assert!(!refused.status.success());
    let text = String::from_utf8_lossy(&refused.stderr);
    assert!(
        text.contains("AccessDenied") && text.contains("retention has not expired"),
        "{text}"
    );
    // A bucket without Object Lock is refused before anything is uploaded.
    let recording = record(&dir, "call-e2e-2", &[]);
    let output = vcc_vault(
        &rgw,
        &dir,
        &[
            "archive",
            "--bucket",
            "no-such-bucket",
            "--tenant",
            "acme",
            "--policy",
            &policy,
            "--key",
            key.to_str().unwrap(),
            recording.to_str().unwrap(),
        ],
    );
    assert!(!output.status.success());
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(text.contains("no-such-bucket"), "{text}");
    assert!(recording.exists());

    // The bucket's signed manifests indexed, then searched.
    let db = dir.join("index.sqlite");
    let (db, hash_key) = (db.to_str().unwrap(), dir.join("index.key"));
    let hash_key = hash_key.to_str().unwrap();
    let index = vcc_vault(
        &rgw,
        &dir,
        &[
            "index",
            "--db",
            db,
            "--hash-key",
            hash_key,
            "--key",
            key.to_str().unwrap(),
            "--bucket",
            "recordings",
            "--prefix",
            "acme/",
            "--json",
        ],
    );
    assert!(index.status.success(), "{index:?}");
    assert_eq!(json_lines(&index)[0]["indexed"], 1);
    let search = vcc_vault(
        &rgw,
        &dir,
        &[
            "search",
            "--db",
            db,
            "--hash-key",
            hash_key,
            "--call-id",
            "call-e2e-1",
            "--json",
        ],
    );
    assert!(search.status.success(), "{search:?}");
    let rows = &json_lines(&search)[0];
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
    assert_eq!(rows[0]["location"], format!("s3://recordings/{prefix}"));

    // Every access was audited; the log verifies, and an edit is found.
    let log = dir.join("audit.jsonl");
    let audit_public = dir.join("audit.pub");
    let verify = |log: &Path| {
        vcc_vault(
            &rgw,
            &dir,
            &[
                "audit",
                "verify",
                log.to_str().unwrap(),
                "--key",
                audit_public.to_str().unwrap(),
            ],
        )
    };
    let ok = verify(&log);
    assert!(ok.status.success(), "{ok:?}");
    let text = std::fs::read_to_string(&log).unwrap();
    let actions: Vec<String> = text
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()["action"].to_string())
        .collect();
    assert_eq!(
        actions,
        [
            "archive", "archive", "hold", "delete", "release", "delete", "archive", "index",
            "search"
        ]
        .map(|a| format!("\"{a}\"")),
    );
    std::fs::write(&log, text.replacen("\"release\"", "\"search\"", 1)).unwrap();
    let tampered = verify(&log);
    assert!(!tampered.status.success());
    let text = String::from_utf8_lossy(&tampered.stderr);
    assert!(
        text.contains("line 5: its signature does not verify"),
        "{text}"
    );
    drop(rgw);
    std::fs::remove_dir_all(dir).unwrap();
}
