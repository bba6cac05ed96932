//! Serving a split, printed as figures (run: `cargo bench -p reproml-client --bench server`):
//! a CIFAR-10-sized split (50,000 × 3×32×32, generated) to one client on
//! loopback, verified, against a plain TCP copy of the same number of
//! bytes in the same run. Result ingestion has its own bench, `ingest`.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use reproml_client::Client;
use reproml_core::split::SplitName;
use reproml_core::{ExperimentSpec, RunIndex};
use reproml_data::{ImageShape, generate};
use reproml_server::{EmbeddedServer, Limits, ServerConfig};
use reproml_store::{DatasetRecord, Store};

fn write_cifar(dir: &std::path::Path) -> reproml_data::Dataset {
    let shape = ImageShape {
        channels: 3,
        height: 32,
        width: 32,
    };
    let data = generate(shape, 10, 60_000, 10_000, 1);
    let names = (1..=5)
        .map(|i| format!("data_batch_{i}.bin"))
        .chain(["test_batch.bin".to_string()]);
    for (b, name) in names.enumerate() {
        let mut bytes = Vec::with_capacity(10_000 * 3073);
        for i in b * 10_000..(b + 1) * 10_000 {
            bytes.push(data.labels[i]);
            bytes.extend_from_slice(data.image(i));
        }
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    reproml_data::read_cifar10_dir(dir).unwrap()
}

fn plain_tcp_copy(bytes: usize) -> Duration {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let sender = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let block = vec![7u8; 1 << 20];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(block.len());
            conn.write_all(&block[..n]).unwrap();
            left -= n;
        }
    });
    let started = Instant::now();
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    let mut received = Vec::with_capacity(bytes);
    conn.read_to_end(&mut received).unwrap();
    let elapsed = started.elapsed();
    assert_eq!(received.len(), bytes);
    sender.join().unwrap();
    elapsed
}

fn main() {
    let dir = std::env::temp_dir().join(format!("reproml-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("cifar")).unwrap();
    let db = dir.join("bench.db");

    eprintln!("generating a CIFAR-10-sized data set …");
    let data = write_cifar(&dir.join("cifar"));
    {
        let mut store = Store::open(&db, Some(1)).unwrap();
        store
            .register_dataset(&DatasetRecord {
                name: "cifar-bench".into(),
                format: reproml_data::DataFormat::Cifar10,
                path: dir.join("cifar").display().to_string(),
                digest: data.digest().iter().map(|b| format!("{b:02x}")).collect(),
                classes: 10,
                examples: data.len() as u32,
            })
            .unwrap();
    }
    let server = EmbeddedServer::start(ServerConfig {
        db: db.clone(),
        master_seed: Some(1),
        token: None,
        limits: Limits::default(),
        allow_delete: false,
        tls: None,
    })
    .unwrap();
    let client = Client::new(&server.url(), None);
    let spec = ExperimentSpec::from_toml(
        "id = \"bench\"\nmodel = \"vgg-x\"\nchallenge = \"cifar-bench\"\nepochs = 10\nruns = 2000\n[split]\nmethod = \"official\"\n",
        "bench",
    )
    .unwrap();
    let e = client.create_experiment(&spec).unwrap().0;
    let id = e.spec.id.clone();
    // Warm-up: loads the data set into the server's memory.
    let warm = client
        .split(&id, RunIndex::new(0), SplitName::Train, e.seeds[0])
        .unwrap();
    let split_bytes: usize = warm.len() * (5 + warm.header.shape.pixels());

    println!(
        "## Serving a {:.1} MB split to one client (loopback)",
        split_bytes as f64 / 1e6
    );
    let mut served = Vec::new();
    let mut plain = Vec::new();
    for round in 0..5 {
        let t = Instant::now();
        let s = client
            .split(
                &id,
                RunIndex::new(round + 1),
                SplitName::Train,
                e.seeds[round as usize + 1],
            )
            .unwrap();
        served.push(t.elapsed());
        assert_eq!(s.len(), 50_000);
        plain.push(plain_tcp_copy(split_bytes));
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (s, p) = (median(&mut served), median(&mut plain));
    let mbps = |d: Duration| split_bytes as f64 / 1e6 / d.as_secs_f64();
    println!(
        "split stream, verified by the client: {:>8.0} MB/s ({:.3} s, median of 5)",
        mbps(s),
        s.as_secs_f64()
    );
    println!(
        "plain TCP copy, same bytes:          {:>8.0} MB/s ({:.3} s, median of 5)",
        mbps(p),
        p.as_secs_f64()
    );
    println!(
        "ratio (split stream / plain copy):   {:>8.2}",
        p.as_secs_f64() / s.as_secs_f64()
    );

    drop(server);
    std::fs::remove_dir_all(&dir).unwrap();
}
