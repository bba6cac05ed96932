//! The runner against a real server in this process: what a variant's
//! training records, the events front ends draw, resumption, and the
//! plans it refuses.
#![allow(clippy::unwrap_used)]

use std::sync::Mutex;

use reproml_client::{Client, Experiment};
use reproml_core::fault::Fault;
use reproml_core::split::SubsetLimits;
use reproml_core::{ExperimentSpec, RunIndex, VariantLabel};
use reproml_runner::{Event, RunnerError, VariantPlan, train_variant};
use reproml_server::{EmbeddedServer, Limits, ServerConfig};

struct Fixture {
    server: EmbeddedServer,
    dir: std::path::PathBuf,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn fixture(name: &str) -> Fixture {
    let dir = std::env::temp_dir().join(format!("reproml-runner-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let server = EmbeddedServer::start(ServerConfig {
        db: dir.join("r.db"),
        master_seed: Some(5),
        token: None,
        limits: Limits::default(),
        allow_delete: false,
        tls: None,
    })
    .unwrap();
    Fixture { server, dir }
}

/// A small, fast experiment: an MLP on 200 digits, 1 epoch, 4 runs.
fn experiment(client: &Client) -> Experiment {
    let mut spec = ExperimentSpec::new(
        "small".parse().unwrap(),
        "mlp".parse().unwrap(),
        "digits".parse().unwrap(),
        1,
    );
    spec.runs = 4;
    spec.subset = SubsetLimits {
        train: Some(200),
        test: Some(50),
        validation: None,
    };
    client.create_experiment(&spec).unwrap().0
}

fn runs(range: std::ops::Range<u32>) -> reproml_core::selection::RunSelection {
    reproml_core::selection::RunSelection::from_indices(range)
}

#[test]
fn a_variant_is_trained_recorded_and_resumed_with_its_events() {
    let f = fixture("train");
    let client = Client::new(&f.server.url(), None);
    let e = experiment(&client);
    let variant: VariantLabel = "corrected".parse().unwrap();
    let plan = VariantPlan {
        experiment: &e,
        variant: &variant,
        runs: runs(0..3),
        jobs: 2,
        threads: 1,
        fault: &Fault::None,
    };
    let events = Mutex::new(Vec::new());
    let outcome =
        train_variant(&client, &plan, &|e: Event| events.lock().unwrap().push(e)).unwrap();
    assert_eq!(outcome.recorded, [0, 1, 2].map(RunIndex::new));
    assert!(outcome.failed.is_empty() && outcome.skipped == 0);
    assert_eq!(client.runs(&e.spec.id, Some(&variant)).unwrap().len(), 3);

    let events = events.into_inner().unwrap();
    assert!(matches!(
        events.first(),
        Some(Event::VariantStarted { todo: 3, .. })
    ));
    assert!(
        matches!(events.last(), Some(Event::VariantFinished { failed, .. }) if failed.is_empty())
    );
    for run in [0, 1, 2].map(RunIndex::new) {
        // Each run starts, finishes its epoch, and is recorded, in that order.
        let at =
            |want: fn(&Event, RunIndex) -> bool| events.iter().position(|e| want(e, run)).unwrap();
        let started = at(|e, r| matches!(e, Event::RunStarted { run, .. } if *run == r));
        let epoch = at(|e, r| matches!(e, Event::EpochFinished { run, .. } if *run == r));
        let recorded =
            at(|e, r| matches!(e, Event::RunRecorded { run, newly: true, .. } if *run == r));
        assert!(started < epoch && epoch < recorded, "run {run}: {events:?}");
    }
    let workers_done = events
        .iter()
        .filter(|e| matches!(e, Event::WorkerFinished { .. }))
        .count();
    assert_eq!(workers_done, 2);

    // Again with one more run: the three recorded ones are skipped.
    let events = Mutex::new(Vec::new());
    let plan = VariantPlan {
        runs: runs(0..4),
        ..plan
    };
    let outcome =
        train_variant(&client, &plan, &|e: Event| events.lock().unwrap().push(e)).unwrap();
    assert_eq!(
        (outcome.skipped, outcome.recorded),
        (3, vec![RunIndex::new(3)])
    );
    let events = events.into_inner().unwrap();
    assert!(matches!(
        events.first(),
        Some(Event::Skipped { runs: 3, .. })
    ));
}

#[test]
fn impossible_plans_are_refused_before_training() {
    let f = fixture("refuse");
    let client = Client::new(&f.server.url(), None);
    let e = experiment(&client);
    let variant: VariantLabel = "v".parse().unwrap();
    let plan = VariantPlan {
        experiment: &e,
        variant: &variant,
        runs: runs(2..9),
        jobs: 1,
        threads: 1,
        fault: &Fault::None,
    };
    let quiet = reproml_runner::quiet();
    assert!(matches!(
        train_variant(&client, &plan, &quiet),
        Err(RunnerError::RunsOutOfRange { runs: 4, .. })
    ));
    let no_workers = VariantPlan {
        runs: runs(0..1),
        jobs: 0,
        ..plan
    };
    assert!(matches!(
        train_variant(&client, &no_workers, &quiet),
        Err(RunnerError::NoWorkers)
    ));
    assert!(client.runs(&e.spec.id, None).unwrap().is_empty());
}

#[test]
fn a_missing_experiment_asks_for_its_spec() {
    let f = fixture("missing");
    let client = Client::new(&f.server.url(), None);
    let id = "nowhere".parse().unwrap();
    let err = reproml_runner::run::experiment(&client, &id, None).unwrap_err();
    assert!(matches!(err, RunnerError::ExperimentMissing(_)), "{err}");
    let spec = ExperimentSpec::new(
        "other".parse().unwrap(),
        "mlp".parse().unwrap(),
        "digits".parse().unwrap(),
        1,
    );
    let err =
        reproml_runner::run::experiment(&client, &id, Some((&spec, "other.toml"))).unwrap_err();
    assert_eq!(
        err.to_string(),
        "other.toml describes experiment other, not nowhere"
    );
}

#[test]
fn a_variant_is_never_trained_by_a_second_artifact() {
    let f = fixture("artifact");
    let client = Client::new(&f.server.url(), None);
    let e = experiment(&client);
    let variant: VariantLabel = "buggy".parse().unwrap();
    let faulty: Fault = "momentum-ignored".parse().unwrap();
    let plan = VariantPlan {
        experiment: &e,
        variant: &variant,
        runs: runs(0..1),
        jobs: 1,
        threads: 1,
        fault: &faulty,
    };
    let quiet = reproml_runner::quiet();
    train_variant(&client, &plan, &quiet).unwrap();
    // The rest of the variant without the fault: refused before training.
    let clean = VariantPlan {
        runs: runs(1..4),
        fault: &Fault::None,
        ..plan
    };
    let err = train_variant(&client, &clean, &quiet).unwrap_err();
    assert!(matches!(err, RunnerError::ArtifactConflict { .. }), "{err}");
    assert!(err.to_string().contains("--variant buggy-2"), "{err}");
    assert_eq!(client.runs(&e.spec.id, Some(&variant)).unwrap().len(), 1);
    // With the variant's own fault it goes on.
    let same = VariantPlan {
        runs: runs(1..2),
        ..plan
    };
    assert_eq!(
        train_variant(&client, &same, &quiet)
            .unwrap()
            .recorded
            .len(),
        1
    );
}
