//! Result ingestion, printed as figures (run: `cargo bench -p reproml-client --bench ingest`).
//!
//! 16 concurrent clients post 30-epoch results over loopback; every result
//! is durable (committed and fsynced) before its answer. Baseline, in the
//! same run and directory: the disk's own rate of `write` + `fdatasync`,
//! the ceiling of any store that spends one fsync per result.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::time::{Duration, Instant};

use reproml_client::Client;
use reproml_core::run::sample_result;
use reproml_core::{ExperimentSpec, RunIndex, VariantLabel};
use reproml_server::{EmbeddedServer, Limits, ServerConfig};

const CLIENTS: u32 = 16;
const PER_CLIENT: u32 = 150;
const EPOCHS: u32 = 30;

fn quantiles(mut v: Vec<Duration>) -> (Duration, Duration, Duration, Duration) {
    v.sort();
    let at = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)];
    (v[0], at(0.5), at(0.99), v[v.len() - 1])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `write` + `fdatasync` of a result-sized record, `n` times, in `dir`.
fn fsync_rate(dir: &std::path::Path, n: usize) -> (f64, Vec<Duration>) {
    let mut file = std::fs::File::create(dir.join("fsync-baseline")).unwrap();
    let record = vec![7u8; 8 << 10];
    let mut each = Vec::with_capacity(n);
    let started = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        file.write_all(&record).unwrap();
        file.sync_data().unwrap();
        each.push(t.elapsed());
    }
    (n as f64 / started.elapsed().as_secs_f64(), each)
}

fn ingest(url: &str, e: &reproml_client::Experiment, round: u32) -> (f64, Vec<Duration>) {
    let started = Instant::now();
    let handles: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let url = url.to_owned();
            let id = e.spec.id.clone();
            let seeds = e.seeds.clone();
            std::thread::spawn(move || {
                let client = Client::new(&url, None);
                let variant: VariantLabel = format!("r{round}c{c}").parse().unwrap();
                (0..PER_CLIENT)
                    .map(|i| {
                        let run = c * PER_CLIENT + i;
                        let result = sample_result(seeds[run as usize], 0.9, EPOCHS);
                        let t = Instant::now();
                        let newly = client
                            .post_result(&id, &variant, RunIndex::new(run), &result)
                            .unwrap();
                        assert!(newly);
                        t.elapsed()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let latencies: Vec<Duration> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    (
        latencies.len() as f64 / started.elapsed().as_secs_f64(),
        latencies,
    )
}

fn main() {
    let dir = std::env::temp_dir().join(format!("reproml-ingest-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    let (rate, each) = fsync_rate(&dir, 300);
    let (min, p50, p99, max) = quantiles(each);
    println!("## Baseline: write + fdatasync of 8 KiB, one at a time (300)");
    println!(
        "{rate:.0} fsyncs/s   min {:.2} ms   p50 {:.2} ms   p99 {:.2} ms   max {:.2} ms",
        ms(min),
        ms(p50),
        ms(p99),
        ms(max)
    );

    let server = EmbeddedServer::start(ServerConfig {
        db: dir.join("ingest.db"),
        master_seed: Some(1),
        token: None,
        limits: Limits::default(),
        allow_delete: false,
        tls: None,
    })
    .unwrap();
    let client = Client::new(&server.url(), None);
    let mut spec = ExperimentSpec::new(
        "ingest".parse().unwrap(),
        "mlp".parse().unwrap(),
        "digits".parse().unwrap(),
        EPOCHS,
    );
    spec.runs = CLIENTS * PER_CLIENT;
    let e = client.create_experiment(&spec).unwrap().0;

    println!();
    println!(
        "## {CLIENTS} clients posting {} results of {EPOCHS} epochs each round, every answer after its fsync",
        CLIENTS * PER_CLIENT
    );
    let mut rates = Vec::new();
    for round in 0..3 {
        let (rate, latencies) = ingest(&server.url(), &e, round);
        let (_, p50, p99, max) = quantiles(latencies);
        println!(
            "round {round}: {rate:>6.0} results/s   p50 {:.1} ms   p99 {:.1} ms   max {:.1} ms",
            ms(p50),
            ms(p99),
            ms(max)
        );
        rates.push(rate);
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "results/s min {:.0}, median {:.0}, max {:.0}; median / one-fsync-per-result ceiling: {:.2}",
        rates[0],
        rates[1],
        rates[2],
        rates[1] / rate
    );
    drop(server);
    std::fs::remove_dir_all(&dir).unwrap();
}
