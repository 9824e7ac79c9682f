//! The search index at contact-center scale, as JSON: indexing 10,000 signed manifests
//! (every signature checked) and answering searches, against what one does without an index
//! (read and parse every manifest for each search, as `jq` over the directory would).
//!
//!   cargo bench -p gst-vcc-lifecycle --bench index        (10,000 manifests; 500 as a test)

use std::path::Path;
use std::time::Instant;

use lifecycle::index::{HashKey, Index, Query};
use vault::sign::{self, Binding};

const AGENTS: usize = 200;
const QUEUES: [&str; 5] = ["payments", "support", "sales", "claims", "billing"];

fn manifest(i: usize) -> serde_json::Value {
    let day = 1 + i % 28;
    let hour = 8 + (i / 28) % 10;
    serde_json::json!({
        "format": "gst-vcc-recording/1",
        "call": {"call_id": format!("call-{i:06}"), "agent_id": format!("agent-{:03}", i % AGENTS),
                 "customer_reference": format!("CUST-{:05}", i % 3000),
                 "queue": QUEUES[i % QUEUES.len()], "direction": if i.is_multiple_of(3) { "outbound" } else { "inbound" },
                 "tags": {}},
        "started_utc": format!("2026-11-{day:02}T{hour:02}:{:02}:00.000Z", i % 60),
        "ended_utc": format!("2026-11-{day:02}T{hour:02}:{:02}:30.000Z", i % 60),
        "recorded_duration_ns": 240_000_000_000u64 + i as u64,
        "complete": true,
        "events": [], "paused_spans": [], "streams": [],
    })
}

fn write_manifests(dir: &Path, count: usize, key: &minisign::SecretKey) {
    for i in 0..count {
        let path = dir.join(format!("call-{i:06}.mp4.age.json"));
        std::fs::write(&path, serde_json::to_vec_pretty(&manifest(i)).unwrap()).unwrap();
        sign::sign_file(
            &path,
            key,
            Binding {
                call_id: Some(format!("call-{i:06}")),
                recording: Some(format!("call-{i:06}.mp4.age")),
                recording_sha256: Some(format!("{i:064x}")),
                ..Binding::new("manifest")
            },
        )
        .unwrap();
    }
}

/// Without an index: read and parse every manifest, keep the matches.
fn scan(dir: &Path, matches: &dyn Fn(&serde_json::Value) -> bool) -> usize {
    let mut found = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "json") {
            let json: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            if matches(&json) {
                found += 1;
            }
        }
    }
    found
}

/// What the scan keeps of a manifest.
type Matcher = dyn Fn(&serde_json::Value) -> bool;

fn median_ms(runs: usize, mut run: impl FnMut() -> usize) -> (f64, usize) {
    let mut times = Vec::new();
    let mut found = 0;
    for _ in 0..runs {
        let start = Instant::now();
        found = run();
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], found)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let count = if full { 10_000 } else { 500 };
    let dir = std::env::temp_dir().join(format!("lifecycle-index-bench-{}", std::process::id()));
    let manifests = dir.join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    let (secret, public) = vault::keys::generate_signing_keys().unwrap();
    std::fs::write(dir.join("vcc.key"), secret).unwrap();
    std::fs::write(dir.join("vcc.pub"), public).unwrap();
    let key = vault::keys::load_signing_key(&dir.join("vcc.key")).unwrap();
    write_manifests(&manifests, count, &key);
    let hash_key = HashKey::load_or_create(&dir.join("index.key")).unwrap();
    let mut index = Index::open(&dir.join("index.sqlite")).unwrap();
    let start = Instant::now();
    let report = index
        .add_dir(
            &manifests,
            "/recordings",
            &dir.join("vcc.pub"),
            &hash_key,
            None,
        )
        .unwrap();
    let index_s = start.elapsed().as_secs_f64();
    assert_eq!(report.indexed, count);
    assert!(report.refused.is_empty());

    let runs = if full { 21 } else { 3 };
    let searches: Vec<(&str, Query, Box<Matcher>)> = vec![
        (
            "agent_and_day",
            Query {
                agent_id: Some("agent-042".into()),
                from: Some("2026-11-10".into()),
                to: Some("2026-11-20".into()),
                limit: 1000,
                ..Default::default()
            },
            Box::new(|m| {
                let started = m["started_utc"].as_str().unwrap();
                m["call"]["agent_id"] == "agent-042"
                    && ("2026-11-10".."2026-11-20").contains(&started)
            }),
        ),
        (
            "customer",
            Query {
                customer_reference: Some("CUST-00042".into()),
                limit: 1000,
                ..Default::default()
            },
            Box::new(|m| m["call"]["customer_reference"] == "CUST-00042"),
        ),
        (
            "queue_and_week",
            Query {
                queue: Some("payments".into()),
                from: Some("2026-11-01".into()),
                to: Some("2026-11-08".into()),
                limit: 10_000,
                ..Default::default()
            },
            Box::new(|m| {
                let started = m["started_utc"].as_str().unwrap();
                m["call"]["queue"] == "payments" && started < "2026-11-08"
            }),
        ),
    ];
    let mut results = Vec::new();
    for (name, query, matches) in &searches {
        let (indexed_ms, found) = median_ms(runs, || index.search(query, &hash_key).unwrap().len());
        let (scan_ms, scanned) = median_ms(runs.min(5), || scan(&manifests, matches.as_ref()));
        assert_eq!(found, scanned, "{name}: index and scan disagree");
        results.push(serde_json::json!({
            "search": name, "matches": found, "index_ms": indexed_ms, "scan_ms": scan_ms,
            "speedup_vs_scan": scan_ms / indexed_ms,
            "target_ms": 100.0, "target_met": indexed_ms < 100.0,
        }));
    }
    let output = serde_json::json!({
        "bench": "vault-index",
        "manifests": count,
        "index_seconds": index_s,
        "index_manifests_per_second": count as f64 / index_s,
        "note": "indexing verifies every manifest's minisign signature; the peer (scan) reads and parses every manifest per search, as jq over the directory would",
        "searches": results,
    });
    println!("{}", serde_json::to_string_pretty(&output).unwrap());
    std::fs::remove_dir_all(dir).unwrap();
}
