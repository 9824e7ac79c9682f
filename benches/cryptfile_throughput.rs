//! Throughput of encryptedfilesink against filesink on the same data, in one run, as JSON:
//! raw throughput (MB/s) and the sink's overhead at a recording bitrate (CPU time per
//! second of a 4 Mbit/s call).
//!
//!   cargo bench --bench cryptfile_throughput -- [--megabytes N]

mod common;

fn run(description: &str) -> f64 {
    common::play_to_eos(&gst::parse::launch(description).unwrap())
}

fn main() {
    gst::init().unwrap();
    gstvcc::register().unwrap();
    let args: Vec<String> = std::env::args().collect();
    let mut megabytes: u64 = if args.iter().any(|a| a == "--bench") {
        512
    } else {
        16
    };
    if let Some(i) = args.iter().position(|a| a == "--megabytes") {
        megabytes = args[i + 1].parse().expect("--megabytes N");
    }
    let dir = std::env::temp_dir().join(format!("cryptfile-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (identity, recipient) = vault::keys::generate_identity();
    drop(identity);
    let block = 64 * 1024u64;
    let buffers = megabytes * 1024 * 1024 / block;
    // fakesrc with filltype=random is costly itself: generate once into a file, then read it.
    let source = dir.join("source.bin");
    run(&format!(
        "fakesrc num-buffers={buffers} sizetype=fixed sizemax={block} filltype=random ! filesink location={}",
        source.display()
    ));
    let mut plain_runs = Vec::new();
    let mut encrypted_runs = Vec::new();
    for round in 0..3 {
        let plain = dir.join(format!("plain{round}.bin"));
        let encrypted = dir.join(format!("enc{round}.age"));
        plain_runs.push(run(&format!(
            "filesrc location={} blocksize={block} ! filesink location={}",
            source.display(),
            plain.display()
        )));
        encrypted_runs.push(run(&format!(
            "filesrc location={} blocksize={block} ! encryptedfilesink location={} recipients={recipient} fsync-interval=1000",
            source.display(),
            encrypted.display()
        )));
        std::fs::remove_file(plain).ok();
        std::fs::remove_file(encrypted).ok();
    }
    let best = |runs: &[f64]| runs.iter().cloned().fold(f64::MAX, f64::min);
    let (plain, encrypted) = (best(&plain_runs), best(&encrypted_runs));
    let bytes = (buffers * block) as f64;
    let megabytes_per_second = |seconds: f64| bytes / seconds / 1e6;
    // Extra time per byte, scaled to one second of a 4 Mbit/s recording.
    let extra_per_call_second = (encrypted - plain).max(0.0) / bytes * 4e6 / 8.0;
    let report = serde_json::json!({
        "benchmark": "cryptfile_throughput",
        "bytes": bytes as u64,
        "filesink_mb_per_s": (megabytes_per_second(plain) * 10.0).round() / 10.0,
        "encryptedfilesink_mb_per_s": (megabytes_per_second(encrypted) * 10.0).round() / 10.0,
        "encrypted_over_plain_time_ratio": ((encrypted / plain) * 1000.0).round() / 1000.0,
        "extra_cpu_share_at_4_mbit_s_percent": (extra_per_call_second * 100.0 * 10000.0).round() / 10000.0,
    });
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
    std::fs::remove_dir_all(&dir).ok();
}
