//! Right to be forgotten on write-once storage, end to end: calls recorded (record_call
//! example: recordmux + encryptedfilesink with a key vault) each to its customer's own key,
//! archived under retention to a real Ceph RGW and indexed from the bucket; `vcc-vault erase`
//! is refused while a call of the customer is under legal hold, then destroys the key: the
//! recordings stay in the bucket, and decryption and export say "key erased".

mod common;

use std::path::Path;

use common::vault_cli::{json_lines, record, vcc_vault, write_audit_keys};
use common::*;
use test_support::rgw::Rgw;

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn an_erased_customer_cannot_be_decrypted_while_their_archived_calls_stay() {
    let rgw = Rgw::start("vault-erase");
    let dir = scratch("vault-erase");
    write_keys(&dir);
    write_audit_keys(&dir);
    let vault = dir.join("key-vault");
    let vault_arg = vault.to_str().unwrap();
    let with_customer = |customer: &'static str| ["--customer", customer, "--key-vault", vault_arg];
    let forgotten = record(&dir, "erase-call-1", &with_customer("CUST-FORGET"));
    let forgotten_again = record(&dir, "erase-call-2", &with_customer("CUST-FORGET"));
    let kept = record(&dir, "erase-call-3", &with_customer("CUST-KEEP"));
    let path = |p: &Path| p.to_str().unwrap().to_string();
    let identity = path(&dir.join("key.txt"));
    let decrypt = |recording: &Path, vault: Option<&str>, output: &str| {
        let output = path(&dir.join(output));
        let mut args = vec!["decrypt", "--identity", &identity];
        if let Some(vault) = vault {
            args.extend(["--key-vault", vault]);
        }
        let recording = path(recording);
        args.extend([recording.as_str(), "-o", output.as_str()]);
        vcc_vault(&rgw, &dir, &args)
    };

    // Encrypted to the customer's key alone: the organisation's key needs the vault.
    let refused = decrypt(&forgotten, None, "no-vault.mp4");
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("--key-vault"), "{refused:?}");
    let decrypted = decrypt(&forgotten, Some(vault_arg), "before.mp4");
    assert!(decrypted.status.success(), "{decrypted:?}");
    assert!(
        decoded_frames(&dir.join("before.mp4")) > 60,
        "a playable call"
    );

    // Archived under retention, indexed from the bucket.
    let policy = dir.join("policy.toml");
    std::fs::write(
        &policy,
        "[default]\nretention_days = 7\nmode = \"governance\"\n",
    )
    .unwrap();
    let key = path(&dir.join("vcc.pub"));
    let store = ["--bucket", "erasure", "--json"];
    let created = vcc_vault(&rgw, &dir, &[&["bucket-create"][..], &store].concat());
    assert!(created.status.success(), "{created:?}");
    let (policy, recordings) = (
        path(&policy),
        [path(&forgotten), path(&forgotten_again), path(&kept)],
    );
    let mut args = vec![
        "archive", "--tenant", "acme", "--policy", &policy, "--key", &key,
    ];
    args.extend(store);
    args.extend(recordings.iter().map(String::as_str));
    let archived = vcc_vault(&rgw, &dir, &args);
    assert!(archived.status.success(), "{archived:?}");
    let (db, hash_key) = (
        path(&dir.join("index.sqlite")),
        path(&dir.join("index.key")),
    );
    let index = || {
        let index = vcc_vault(
            &rgw,
            &dir,
            &[
                "index",
                "--db",
                &db,
                "--hash-key",
                &hash_key,
                "--key",
                &key,
                "--bucket",
                "erasure",
                "--prefix",
                "acme/",
                "--json",
            ],
        );
        assert!(index.status.success(), "{index:?}");
        json_lines(&index)[0].clone()
    };
    assert_eq!(index()["indexed"], 3);

    let erase = || {
        vcc_vault(
            &rgw,
            &dir,
            &[
                &[
                    "erase",
                    "--customer",
                    "CUST-FORGET",
                    "--key-vault",
                    vault_arg,
                    "--db",
                    &db,
                    "--hash-key",
                    &hash_key,
                    "--tenant",
                    "acme",
                ][..],
                &store,
            ]
            .concat(),
        )
    };
    // One of the customer's calls under legal hold: nothing is erased.
    let call = ["--tenant", "acme", "--call-id", "erase-call-2"];
    let held = vcc_vault(&rgw, &dir, &[&["hold"][..], &store, &call].concat());
    assert!(held.status.success(), "{held:?}");
    let refused = erase();
    assert!(!refused.status.success());
    let text = stderr(&refused);
    assert!(
        text.contains("legal hold") && text.contains("erase-call-2"),
        "{text}"
    );
    assert!(
        decrypt(&forgotten, Some(vault_arg), "held.mp4")
            .status
            .success()
    );

    // Released: the key is destroyed.
    let released = vcc_vault(&rgw, &dir, &[&["release"][..], &store, &call].concat());
    assert!(released.status.success(), "{released:?}");
    let erased = erase();
    assert!(erased.status.success(), "{erased:?}");
    let report = &json_lines(&erased)[0];
    let mut calls: Vec<&str> = report["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    calls.sort();
    assert_eq!(calls, ["erase-call-1", "erase-call-2"], "{report}");
    for recording in [&forgotten, &forgotten_again] {
        let refused = decrypt(recording, Some(vault_arg), "after.mp4");
        assert!(!refused.status.success());
        let text = stderr(&refused);
        assert!(text.contains("key erased"), "{text}");
        assert!(!dir.join("after.mp4").exists(), "nothing written");
    }
    let export = vcc_vault(
        &rgw,
        &dir,
        &[
            "export",
            &path(&forgotten),
            "--identity",
            &identity,
            "--key-vault",
            vault_arg,
            "--key",
            &key,
            "--format",
            "mp4",
            "-o",
            &path(&dir.join("export.mp4")),
        ],
    );
    assert!(!export.status.success());
    assert!(stderr(&export).contains("key erased"), "{export:?}");
    // A second erasure has nothing left to destroy.
    let again = erase();
    assert!(!again.status.success());
    assert!(stderr(&again).contains("holds no key"), "{again:?}");

    // The archived objects are all still there (retention), manifests signed and intact;
    // the other customer's call still decrypts.
    let report = index();
    assert_eq!(report["unchanged"], 3, "{report}");
    assert!(decrypt(&kept, Some(vault_arg), "kept.mp4").status.success());
    // The erasure is in the audit log, which verifies.
    let audit = vcc_vault(
        &rgw,
        &dir,
        &[
            "audit",
            "verify",
            &path(&dir.join("audit.jsonl")),
            "--key",
            &path(&dir.join("audit.pub")),
        ],
    );
    assert!(audit.status.success(), "{audit:?}");
    let log = std::fs::read_to_string(dir.join("audit.jsonl")).unwrap();
    assert!(log.contains("\"erase\""), "{log}");
    assert!(
        !log.contains("CUST-FORGET"),
        "no customer reference in the clear"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
