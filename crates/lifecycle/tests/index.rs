//! The search index: built from signed manifests only, customer references never in clear.

mod common;

use common::{Call, keys, recording};
use lifecycle::index::{HashKey, Index, Query};
use vault::keys::{Protection, Unlock};

fn query() -> Query {
    Query {
        limit: 100,
        ..Default::default()
    }
}

#[test]
fn signed_manifests_are_indexed_and_searched_without_customer_references_in_clear() {
    let dir = test_support::paths::scratch("lifecycle-index");
    let keys = keys(&dir);
    let calls = [
        (
            "c-1",
            "alice",
            "CUST-1001",
            "payments",
            "2026-11-30T09:00:00.000Z",
        ),
        (
            "c-2",
            "alice",
            "CUST-1002",
            "support",
            "2026-12-01T10:00:00.000Z",
        ),
        (
            "c-3",
            "bob",
            "CUST-1001",
            "payments",
            "2026-12-01T11:00:00.000Z",
        ),
        (
            "c-4",
            "bob",
            "CUST-1003",
            "payments",
            "2026-12-02T08:00:00.000Z",
        ),
    ];
    for (call_id, agent, customer, queue, started) in calls {
        let call = Call {
            call_id: call_id.into(),
            agent_id: agent.into(),
            customer_reference: customer.into(),
            queue: queue.into(),
            started_utc: started.into(),
        };
        recording(&keys, &call, 1000);
    }
    // A manifest edited after signing, and a recording's signature put beside a manifest.
    let tampered = dir.join("c-4.mp4.age.json");
    let text = std::fs::read_to_string(&tampered).unwrap();
    std::fs::write(&tampered, text.replace("bob", "eve")).unwrap();
    let impostor = dir.join("c-5.mp4.age.json");
    std::fs::copy(dir.join("c-1.mp4.age"), &impostor).unwrap();
    std::fs::copy(
        dir.join("c-1.mp4.age.minisig"),
        dir.join("c-5.mp4.age.json.minisig"),
    )
    .unwrap();

    let db = dir.join("index.sqlite");
    let hash_key = HashKey::load_or_create(&dir.join("index.key")).unwrap();
    let recipients = vault::keys::parse_recipients(&keys.recipient, None).unwrap();
    let seal_to = Protection::Recipients(recipients);
    let mut index = Index::open(&db).unwrap();
    let report = index
        .add_dir(&dir, "/recordings", &keys.public, &hash_key, Some(&seal_to))
        .unwrap();
    assert_eq!(report.indexed, 3, "{report:?}");
    let refused: Vec<&str> = report.refused.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(refused.len(), 2, "{report:?}");
    assert!(refused.iter().any(|m| m.ends_with("c-4.mp4.age.json")));
    assert!(refused.iter().any(|m| m.ends_with("c-5.mp4.age.json")));
    // Again: nothing new.
    let again = index
        .add_dir(&dir, "/recordings", &keys.public, &hash_key, Some(&seal_to))
        .unwrap();
    assert_eq!((again.indexed, again.unchanged), (0, 3));

    let ids = |query: Query| -> Vec<String> {
        index
            .search(&query, &hash_key)
            .unwrap()
            .into_iter()
            .map(|row| row.call_id)
            .collect()
    };
    assert_eq!(
        ids(Query {
            agent_id: Some("alice".into()),
            ..query()
        }),
        ["c-1", "c-2"]
    );
    assert_eq!(
        ids(Query {
            customer_reference: Some("CUST-1001".into()),
            ..query()
        }),
        ["c-1", "c-3"]
    );
    assert_eq!(
        ids(Query {
            queue: Some("payments".into()),
            from: Some("2026-12-01".into()),
            to: Some("2026-12-02".into()),
            ..query()
        }),
        ["c-3"]
    );
    assert!(
        ids(Query {
            customer_reference: Some("CUST-9".into()),
            ..query()
        })
        .is_empty()
    );
    // Another hash key finds nothing: the hashes are keyed.
    let other = HashKey::load_or_create(&dir.join("other.key")).unwrap();
    let rows = index
        .search(
            &Query {
                customer_reference: Some("CUST-1001".into()),
                ..query()
            },
            &other,
        )
        .unwrap();
    assert!(rows.is_empty());
    // The sealed reference opens with the organisation's identity.
    let row = &index
        .search(
            &Query {
                call_id: Some("c-2".into()),
                ..query()
            },
            &hash_key,
        )
        .unwrap()[0];
    assert_eq!(row.location, "/recordings");
    assert_eq!(row.recorded_duration_s, Some(315.0));
    let sealed = base64_decode(row.customer_sealed.as_ref().unwrap());
    let identities = Unlock::IdentityFile(dir.join("key.txt"))
        .identities()
        .unwrap();
    let decryptor = age::Decryptor::new(&sealed[..]).unwrap();
    let mut reader = decryptor
        .decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity))
        .unwrap();
    let mut customer = String::new();
    std::io::Read::read_to_string(&mut reader, &mut customer).unwrap();
    assert_eq!(customer, "CUST-1002");
    drop(index);
    // The index file alone holds no customer reference.
    let bytes = std::fs::read(&db).unwrap();
    assert!(
        !bytes.windows(5).any(|w| w == b"CUST-"),
        "a customer reference in clear"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}
