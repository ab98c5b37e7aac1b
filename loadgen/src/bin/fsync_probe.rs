//! Measures the disk's durable-write latency (write + fdatasync, as a SQLite WAL commit
//! does), the floor under every durable decision. Used by `scripts/bench` to state the ALLOW
//! latency target ("p99 ≤ 2 × fsync p99 + 1 ms") in this machine's own terms.
//!
//! Usage: `fsync_probe [DIR] [ITERATIONS]` (defaults: the current directory, 2000).

use std::{
    fs::OpenOptions,
    io::Write,
    time::{Duration, Instant},
};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| ".".into());
    let iterations: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(2000);
    let path = std::path::Path::new(&dir).join(".fsync_probe.tmp");
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&path)?;
    let page = [0x5a_u8; 4096];
    let mut samples: Vec<Duration> = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let start = Instant::now();
        file.write_all(&page)?;
        file.sync_data()?;
        samples.push(start.elapsed());
    }
    std::fs::remove_file(&path)?;
    samples.sort_unstable();
    let at = |q: f64| {
        let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[i].as_secs_f64() * 1e3
    };
    let total: Duration = samples.iter().sum();
    println!(
        "fsync_probe: {iterations} x (4 KiB write + fdatasync) in {dir}: {:.0}/s, p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms",
        iterations as f64 / total.as_secs_f64(),
        at(0.50),
        at(0.99),
        at(0.999)
    );
    Ok(())
}
