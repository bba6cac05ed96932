//! Training benchmarks, printed as figures (run:
//! `cargo bench -p reproml-runner --bench train`).
//!
//! 1. Throughput (images/s) of one epoch, batch 64: LeNet-5 on 1×28×28 and
//!    VGG-X on 3×32×32 generated images, with 1 and 2 kernel threads (each
//!    in a child process, since the thread pool is set once per process).
//! 2. Harness overhead: a run through the whole harness (seed and splits
//!    from a server, every checksum verified, normalisation, training,
//!    result posted) against the bare training loop on the same data.
//! 3. Parallel runs: wall time of 4 runs with 2 jobs against 1 job, through
//!    the runner's worker pool.
#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use reproml_client::{Client, Experiment};
use reproml_core::split::SplitName;
use reproml_core::{ExperimentSpec, RunIndex, Seed, SplitSeed, VariantLabel};
use reproml_data::serve::{DatasetFacts, encode_split, served_split};
use reproml_data::wire::{self, decode};
use reproml_data::{ImageShape, generate};
use reproml_runner::run::train_run;
use reproml_runner::{VariantPlan, train_variant};
use reproml_server::{EmbeddedServer, Limits, ServerConfig};
use reproml_train::{Fault, ModelRegistry, PreparedSplit, RunSettings, train, with_threads};

fn spec(text: &str) -> ExperimentSpec {
    ExperimentSpec::from_toml(text, "bench").unwrap()
}

/// Prepared train and test splits of a generated data set, as served.
fn generated_splits(
    shape: ImageShape,
    train_n: u32,
    spec: &ExperimentSpec,
    seed: Seed,
) -> (PreparedSplit, PreparedSplit) {
    let data = generate(shape, 10, train_n + 64, 64, 1);
    let prepare = |name| {
        let (header, indices) = served_split(
            &data,
            &DatasetFacts::of(&data),
            spec,
            (SplitSeed::from_first(seed), seed),
            RunIndex::new(0),
            name,
        )
        .unwrap();
        PreparedSplit::new(&decode(&encode_split(&data, &header, &indices, wire::CURRENT)).unwrap())
    };
    (prepare(SplitName::Train), prepare(SplitName::Test))
}

fn throughput_child(model: &str, threads: usize) {
    let (shape, n) = match model {
        "lenet5" => (
            ImageShape {
                channels: 1,
                height: 28,
                width: 28,
            },
            4096,
        ),
        _ => (
            ImageShape {
                channels: 3,
                height: 32,
                width: 32,
            },
            512,
        ),
    };
    let s = spec(&format!(
        "id = \"b\"\nmodel = \"{model}\"\nchallenge = \"generated\"\nepochs = 1\nruns = 1\n[split]\nmethod = \"official\"\n"
    ));
    let (train_split, test_split) = generated_splits(shape, n, &s, Seed::new(7));
    let network = ModelRegistry::default().build(model, shape, 10).unwrap();
    let settings = RunSettings {
        spec: &s,
        seed: Seed::new(7),
        classes: 10,
        fault: Fault::None,
    };
    // The epoch's own time (steps, digest, evaluation), as the PyTorch
    // side times it: not the parameters' initialisation, which the PyTorch
    // side does before its clock starts (seconds in Python for VGG-X).
    let mut secs = 0.0;
    with_threads(threads, || {
        train(&network, &train_split, &test_split, &settings, &mut |p| {
            secs = p.seconds;
        })
        .unwrap()
    });
    println!("{:.1} {:.2}", f64::from(n) / secs, secs);
}

/// One run through the whole harness, as `reproml run` does it: the
/// runner's own `train_run` (seed, verified splits, training), then the
/// result posted.
fn harness_run(client: &Client, experiment: &Experiment, variant: &VariantLabel, run: RunIndex) {
    let trained = train_run(client, experiment, run, &Fault::None, &mut |_| {}).unwrap();
    client
        .post_result(&experiment.spec.id, variant, run, &trained.result)
        .unwrap();
}

fn start_server(name: &str) -> (EmbeddedServer, std::path::PathBuf) {
    let dir =
        std::env::temp_dir().join(format!("reproml-train-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let server = EmbeddedServer::start(ServerConfig {
        db: dir.join("b.db"),
        master_seed: Some(3),
        token: None,
        limits: Limits::default(),
        allow_delete: false,
        tls: None,
    })
    .unwrap();
    (server, dir)
}

const DIGITS_LENET: &str =
    "id = \"bench\"\nmodel = \"lenet5\"\nchallenge = \"digits\"\nepochs = 5\nruns = 8\n";

fn parallel_child(jobs: u32) {
    let (server, dir) = start_server(&format!("parallel{jobs}"));
    let client = Client::new(&server.url(), None);
    let s = spec(DIGITS_LENET);
    let experiment = client.create_experiment(&s).unwrap().0;
    let variant: VariantLabel = "v".parse().unwrap();
    // The runner's own pool, as `reproml run --jobs N --threads 1` uses it.
    let plan = VariantPlan {
        experiment: &experiment,
        variant: &variant,
        runs: reproml_core::selection::RunSelection::first(4),
        jobs,
        threads: 1,
        fault: &Fault::None,
    };
    let start = Instant::now();
    let outcome = train_variant(&client, &plan, &reproml_runner::quiet()).unwrap();
    println!("{:.3}", start.elapsed().as_secs_f64());
    assert_eq!(outcome.recorded.len(), 4);
    drop(server);
    std::fs::remove_dir_all(dir).unwrap();
}

fn child(args: &[&str]) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn main() {
    // SAFETY: the first statement of `main`; no other thread exists yet.
    #[allow(unsafe_code)]
    unsafe {
        reproml_train::allocator::keep_freed_memory();
    }
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--throughput-child") {
        return throughput_child(&args[i + 1], args[i + 2].parse().unwrap());
    }
    if let Some(i) = args.iter().position(|a| a == "--parallel-child") {
        return parallel_child(args[i + 1].parse().unwrap());
    }

    println!("## Training throughput, one epoch, batch 64 (generated images)");
    println!("| model | input | kernel threads | images/s | epoch time |");
    println!("|---|---|---|---|---|");
    for (model, input, n) in [("lenet5", "1×28×28", 4096), ("vgg-x", "3×32×32", 512)] {
        for threads in ["1", "2"] {
            let line = child(&["--throughput-child", model, threads]);
            let mut parts = line.split_whitespace();
            let (ips, secs) = (parts.next().unwrap(), parts.next().unwrap());
            println!("| {model} | {input} ({n} images) | {threads} | {ips} | {secs} s |");
        }
    }

    println!("\n## Harness overhead: LeNet-5 on digits, 5 epochs, 8 runs, 1 kernel thread");
    let (server, dir) = start_server("overhead");
    let client = Client::new(&server.url(), None);
    let s = spec(DIGITS_LENET);
    let experiment = client.create_experiment(&s).unwrap().0;
    let id = experiment.spec.id.clone();
    let (mut bare, mut harness) = (Duration::ZERO, Duration::ZERO);
    for run in RunIndex::first(8) {
        // Bare loop: the same run's data, fetched and prepared beforehand.
        // The order alternates so that neither side always runs warm.
        let seed = client.seed(&id, run).unwrap().seed;
        let train_split =
            PreparedSplit::new(&client.split(&id, run, SplitName::Train, seed).unwrap());
        let test_split =
            PreparedSplit::new(&client.split(&id, run, SplitName::Test, seed).unwrap());
        let network = ModelRegistry::default()
            .build(
                "lenet5",
                ImageShape {
                    channels: 1,
                    height: 8,
                    width: 8,
                },
                10,
            )
            .unwrap();
        let settings = RunSettings {
            spec: &s,
            seed,
            classes: 10,
            fault: Fault::None,
        };
        let time_bare = || {
            let t = Instant::now();
            with_threads(1, || {
                train(&network, &train_split, &test_split, &settings, &mut |_| {}).unwrap()
            });
            t.elapsed()
        };
        let time_harness = || {
            let t = Instant::now();
            with_threads(1, || {
                harness_run(&client, &experiment, &"v".parse().unwrap(), run)
            });
            t.elapsed()
        };
        if run.get() % 2 == 0 {
            bare += time_bare();
            harness += time_harness();
        } else {
            harness += time_harness();
            bare += time_bare();
        }
    }
    println!(
        "bare training loop: {:.3} s   whole harness: {:.3} s   overhead: {:+.2} %",
        bare.as_secs_f64(),
        harness.as_secs_f64(),
        (harness.as_secs_f64() / bare.as_secs_f64() - 1.0) * 100.0
    );
    drop(server);
    std::fs::remove_dir_all(dir).unwrap();

    println!("\n## Parallel runs: 4 runs of LeNet-5 on digits, 5 epochs, 1 kernel thread per run");
    let one: f64 = child(&["--parallel-child", "1"]).parse().unwrap();
    let two: f64 = child(&["--parallel-child", "2"]).parse().unwrap();
    println!(
        "--jobs 1: {one:.3} s   --jobs 2: {two:.3} s   speed-up: {:.2}×",
        one / two
    );
}
