//! Serving a split, printed as figures (run: `cargo bench -p reproml-client --bench server`):
//! a CIFAR-10-sized split (50,000 × 3×32×32, generated) to one client on
//! loopback, verified, against a plain TCP copy of the same number of
//! bytes in the same run: into memory a client already used (its later
//! splits; the copy into fixed buffers) and into new memory (a new
//! client's first split; the copy into memory allocated for it); then the same splits through a data cache (the
//! data set fetched once, each run's split as indices only), where a new
//! process's first split is timed in new processes against the least work
//! that reads every byte of the cache entry (also in a new process).
//! Result ingestion has its own bench, `ingest`.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use std::sync::Arc;

use reproml_client::{Client, DataCache};
use reproml_core::split::SplitName;
use reproml_core::{ExperimentSpec, RunIndex};
use reproml_data::{ImageShape, generate, wire};
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

/// The physical limit on this machine: `bytes` over a loopback TCP
/// connection from a fixed buffer into `into`, timed from the connection
/// to the last byte. With a fixed, already touched buffer there is no
/// allocation or page fault inside the timing; with `None`, the bytes land
/// in memory allocated inside it, as they must for a client that keeps
/// what it receives.
fn plain_tcp_copy(bytes: usize, into: Option<&mut [u8]>) -> Duration {
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
    let kept = match into {
        Some(fixed) => {
            conn.read_exact(&mut fixed[..bytes]).unwrap();
            None
        }
        None => {
            let mut fresh = Vec::with_capacity(bytes);
            conn.take(bytes as u64).read_to_end(&mut fresh).unwrap();
            assert_eq!(fresh.len(), bytes);
            Some(fresh)
        }
    };
    let elapsed = started.elapsed();
    drop(kept);
    sender.join().unwrap();
    elapsed
}

/// Version 2 of the same split (SHA-256 checksums), fetched and verified
/// as the client did before version 3: what version 3 replaced.
fn split_v2(url: &str) -> Duration {
    let t = Instant::now();
    let mut response = ureq::get(url)
        .header("Accept", wire::Version::V2.media_type())
        .call()
        .unwrap();
    let split = wire::decode_from(&mut response.body_mut().as_reader()).unwrap();
    let elapsed = t.elapsed();
    assert_eq!((split.version, split.len()), (wire::Version::V2, 50_000));
    elapsed
}

/// `min / median / max` of some timings, in milliseconds.
fn spread(times: &mut [Duration]) -> (f64, f64, f64) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    (
        ms(times[0]),
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1]),
    )
}

/// In a new process: the first split of `run` through the cache in
/// `cache_dir` (the entry opened and checked), printed in milliseconds.
fn open_child(cache_dir: &str, url: &str, run: u32) {
    let cache = Arc::new(DataCache::new(cache_dir, 1 << 40));
    let client = Client::new(url, None).with_data_cache(Arc::clone(&cache));
    let experiment = client.experiments().unwrap().remove(0);
    let run = RunIndex::new(run);
    let seed = experiment.seeds[run.get() as usize];
    let t = Instant::now();
    let split = client
        .split(&experiment.spec.id, run, SplitName::Train, seed)
        .unwrap();
    let elapsed = t.elapsed();
    assert_eq!(split.len(), 50_000);
    assert_eq!((cache.stats().opened, cache.stats().fetched), (1, 0));
    println!("{}", elapsed.as_secs_f64() * 1e3);
}

/// In a new process: the physical limit of any check of an entry, reading
/// every byte of `path` once on every core (mapped, as the cache does),
/// printed in milliseconds.
fn read_child(path: &str) {
    use rayon::prelude::*;
    let t = Instant::now();
    let file = std::fs::File::open(path).unwrap();
    // SAFETY: the benchmark's own file, which nothing writes meanwhile.
    #[allow(unsafe_code)]
    let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
    let folded = map
        .par_chunks(1 << 20)
        .map(|c| {
            // Whole words, which the compiler folds with vector loads;
            // the entry's length is a multiple of 8 bytes or nearly so.
            c.chunks_exact(8)
                .map(|w| u64::from_le_bytes(w.try_into().unwrap()))
                .fold(0, |a, b| a ^ b)
        })
        .reduce(|| 0, |a, b| a ^ b);
    let elapsed = t.elapsed();
    std::hint::black_box(folded);
    println!("{}", elapsed.as_secs_f64() * 1e3);
}

/// Runs this benchmark's binary with `args` and reads the milliseconds it
/// prints.
fn child(args: &[&str]) -> Duration {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ms: f64 = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    Duration::from_secs_f64(ms / 1e3)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--open-child") => return open_child(&args[2], &args[3], args[4].parse().unwrap()),
        Some("--read-child") => return read_child(&args[2]),
        _ => {}
    }
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
        "## Serving a {:.1} MB split to one client (loopback), 7 rounds",
        split_bytes as f64 / 1e6
    );
    // Written once here, so that no page of it is first touched inside a timing.
    let mut buffer = vec![0xa5u8; split_bytes];
    let (mut served, mut plain, mut plain_fresh) = (Vec::new(), Vec::new(), Vec::new());
    let (mut served_fresh, mut served_v2) = (Vec::new(), Vec::new());
    // The training split of `run` through `client`, timed; dropped after.
    let timed_split = |client: &Client, run: RunIndex| {
        let t = Instant::now();
        let s = client
            .split(&id, run, SplitName::Train, e.seeds[run.get() as usize])
            .unwrap();
        let elapsed = t.elapsed();
        assert_eq!(s.len(), 50_000);
        elapsed
    };
    // The client's first split lands in new memory; later ones in the
    // memory of splits it dropped, as a runner's do run after run.
    timed_split(&client, RunIndex::new(1));
    for round in 0..7u32 {
        let run = RunIndex::new(round + 1);
        served.push(timed_split(&client, run));
        served_fresh.push(timed_split(&Client::new(&server.url(), None), run));
        plain.push(plain_tcp_copy(split_bytes, Some(&mut buffer)));
        plain_fresh.push(plain_tcp_copy(split_bytes, None));
        served_v2.push(split_v2(&format!(
            "{}/v1/experiments/{id}/runs/{run}/data/train?seed={}",
            server.url(),
            e.seeds[run.get() as usize]
        )));
    }
    let (s, p, f, v2) = (
        spread(&mut served),
        spread(&mut plain),
        spread(&mut plain_fresh),
        spread(&mut served_v2),
    );
    let sf = spread(&mut served_fresh);
    let mbps = |ms: f64| split_bytes as f64 / 1e3 / ms;
    println!("| | min | median | max | median MB/s |");
    println!("|---|---|---|---|---|");
    println!(
        "| split stream, verified by the client (version 3, XXH3-128), into the memory of a dropped split | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} |",
        s.0,
        s.1,
        s.2,
        mbps(s.1)
    );
    println!(
        "| the same, a new client's first split (into new memory) | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} |",
        sf.0,
        sf.1,
        sf.2,
        mbps(sf.1)
    );
    println!(
        "| the same, version 2 (SHA-256), into new memory as clients read it before | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} |",
        v2.0,
        v2.1,
        v2.2,
        mbps(v2.1)
    );
    println!(
        "| plain TCP copy, same bytes, fixed buffers | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} |",
        p.0,
        p.1,
        p.2,
        mbps(p.1)
    );
    println!(
        "| plain TCP copy, same bytes, into memory allocated for them | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} |",
        f.0,
        f.1,
        f.2,
        mbps(f.1)
    );
    println!(
        "ratio (plain copy, fixed buffers / split stream into a dropped split's memory, medians): {:.2}",
        p.1 / s.1
    );
    println!(
        "ratio (plain copy into new memory / a new client's first split, medians): {:.2}",
        f.1 / sf.1
    );

    println!("\n## The same splits through a data cache");
    let cache_dir = dir.join("cache");
    let first_process = Arc::new(DataCache::new(&cache_dir, 1 << 40));
    let cached = Client::new(&server.url(), None).with_data_cache(Arc::clone(&first_process));
    let seed = |run: RunIndex| e.seeds[run.get() as usize];
    let t = Instant::now();
    let first = cached
        .split(
            &id,
            RunIndex::new(100),
            SplitName::Train,
            seed(RunIndex::new(100)),
        )
        .unwrap();
    let first_run = t.elapsed();
    assert_eq!(first.len(), 50_000);
    let mut later = Vec::new();
    for run in (101..116).map(RunIndex::new) {
        let t = Instant::now();
        let s = cached.split(&id, run, SplitName::Train, seed(run)).unwrap();
        later.push(t.elapsed());
        assert_eq!(s.len(), 50_000);
    }
    // New processes: the entry opened from disk and checked, against the
    // least that any check costs (every byte read), alternately.
    let entry = cache_dir
        .join("datasets")
        .join(&first.header.dataset_digest);
    let (mut opened, mut read) = (Vec::new(), Vec::new());
    for round in 0..5u32 {
        let run = (200 + round).to_string();
        opened.push(child(&[
            "--open-child",
            cache_dir.to_str().unwrap(),
            &server.url(),
            &run,
        ]));
        read.push(child(&["--read-child", entry.to_str().unwrap()]));
    }
    let (l, o, r) = (spread(&mut later), spread(&mut opened), spread(&mut read));
    println!("| a run's training split | min | median | max |");
    println!("|---|---|---|---|");
    println!(
        "| first run on the machine (data set fetched, verified, written) | {:.0} ms | | |",
        first_run.as_secs_f64() * 1e3
    );
    println!(
        "| each later run of a process (indices only, 15 runs) | {:.1} ms | {:.1} ms | {:.1} ms |",
        l.0, l.1, l.2
    );
    println!(
        "| first run of a new process (entry mapped and checked, 5 processes) | {:.0} ms | {:.0} ms | {:.0} ms |",
        o.0, o.1, o.2
    );
    println!(
        "| baseline: every byte of the entry read once, all cores (5 processes) | {:.0} ms | {:.0} ms | {:.0} ms |",
        r.0, r.1, r.2
    );
    println!(
        "ratio (first run of a new process / reading every byte, medians): {:.2}",
        o.1 / r.1
    );

    drop(server);
    std::fs::remove_dir_all(&dir).unwrap();
}
