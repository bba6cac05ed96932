//! The store on real database files.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use reproml_core::run::sample_result;
use reproml_core::{ExperimentId, ExperimentSpec, RunIndex, Seed, VariantLabel};
use reproml_store::{DatasetRecord, Store, StoreError, Written};

fn temp_db(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("reproml-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("reproml.db")
}

fn spec(id: &str, epochs: u32) -> ExperimentSpec {
    ExperimentSpec::from_toml(
        &format!(
            "id = \"{id}\"\nmodel = \"mlp\"\nchallenge = \"digits\"\nepochs = {epochs}\nruns = 5\n"
        ),
        "test",
    )
    .unwrap()
}

#[test]
fn seeds_survive_reopening_and_losing_the_database() {
    let db = temp_db("seeds");
    let first = {
        let mut store = Store::open(&db, Some(42)).unwrap();
        store.create_experiment(&spec("e", 1)).unwrap().0.seeds
    };
    assert_eq!(first.len(), 5);
    let reopened = Store::open(&db, None).unwrap();
    assert_eq!(reopened.master_seed(), 42);
    assert_eq!(
        reopened
            .experiment(&ExperimentId::new("e").unwrap())
            .unwrap()
            .unwrap()
            .seeds,
        first
    );
    drop(reopened);
    std::fs::remove_dir_all(db.parent().unwrap()).unwrap();
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let mut fresh = Store::open(&db, Some(42)).unwrap();
    assert_eq!(
        fresh.create_experiment(&spec("e", 1)).unwrap().0.seeds,
        first,
        "derived, not random"
    );
    std::fs::remove_dir_all(db.parent().unwrap()).unwrap();
}

#[test]
fn a_new_database_draws_a_master_seed_and_keeps_it() {
    let db = temp_db("master");
    let drawn = Store::open(&db, None).unwrap().master_seed();
    assert_eq!(Store::open(&db, None).unwrap().master_seed(), drawn);
    let err = Store::open(&db, Some(drawn ^ 1)).unwrap_err();
    assert!(
        matches!(err, StoreError::MasterSeedMismatch { .. }),
        "{err}"
    );
    std::fs::remove_dir_all(db.parent().unwrap()).unwrap();
}

#[test]
fn creating_an_experiment_is_idempotent_and_conflicts_name_the_difference() {
    let db = temp_db("idem");
    let mut store = Store::open(&db, Some(1)).unwrap();
    assert_eq!(
        store.create_experiment(&spec("e", 2)).unwrap().1,
        Written::Created
    );
    assert_eq!(
        store.create_experiment(&spec("e", 2)).unwrap().1,
        Written::Existing
    );
    let err = store.create_experiment(&spec("e", 3)).unwrap_err();
    match err {
        StoreError::ExperimentConflict { differences, .. } => {
            assert_eq!(differences, ["epochs: 2 → 3"])
        }
        other => panic!("{other}"),
    }
    assert_eq!(store.experiments().unwrap().len(), 1);
    std::fs::remove_dir_all(db.parent().unwrap()).unwrap();
}

#[test]
fn results_are_idempotent_and_never_overwritten() {
    let db = temp_db("runs");
    let mut store = Store::open(&db, Some(1)).unwrap();
    store.create_experiment(&spec("e", 1)).unwrap();
    let id = ExperimentId::new("e").unwrap();
    let buggy = VariantLabel::new("buggy").unwrap();
    let fixed = VariantLabel::new("corrected").unwrap();
    assert_eq!(
        store
            .record_run(
                &id,
                &buggy,
                RunIndex::new(0),
                &sample_result(Seed::new(9), 0.9, 1)
            )
            .unwrap()
            .1,
        Written::Created
    );
    assert_eq!(
        store
            .record_run(
                &id,
                &buggy,
                RunIndex::new(0),
                &sample_result(Seed::new(9), 0.9, 1)
            )
            .unwrap()
            .1,
        Written::Existing
    );
    assert!(matches!(
        store.record_run(&id, &buggy, RunIndex::new(0), &sample_result(Seed::new(9), 0.8, 1)),
        Err(StoreError::ResultConflict { run, .. }) if run.get() == 0
    ));
    store
        .record_run(
            &id,
            &fixed,
            RunIndex::new(0),
            &sample_result(Seed::new(9), 0.7, 1),
        )
        .unwrap();
    store
        .record_run(
            &id,
            &buggy,
            RunIndex::new(1),
            &sample_result(Seed::new(10), 0.6, 1),
        )
        .unwrap();
    let all = store.runs(&id, None).unwrap();
    assert_eq!(
        all.iter()
            .map(|r| (r.variant.as_str(), r.run.get()))
            .collect::<Vec<_>>(),
        [("buggy", 0), ("buggy", 1), ("corrected", 0)]
    );
    assert_eq!(store.runs(&id, Some(&fixed)).unwrap().len(), 1);
    assert_eq!(
        store
            .run(&id, &buggy, RunIndex::new(0))
            .unwrap()
            .unwrap()
            .result
            .metrics
            .accuracy,
        0.9
    );
    std::fs::remove_dir_all(db.parent().unwrap()).unwrap();
}

#[test]
fn data_sets_register_and_re_register() {
    let db = temp_db("data");
    let mut store = Store::open(&db, Some(1)).unwrap();
    let mut record = DatasetRecord {
        name: "mnist".into(),
        format: reproml_data::DataFormat::Idx,
        path: "/data/mnist".into(),
        digest: "ab".repeat(32),
        classes: 10,
        examples: 70_000,
    };
    store.register_dataset(&record).unwrap();
    record.path = "/elsewhere".into();
    store.register_dataset(&record).unwrap();
    assert_eq!(store.dataset("mnist").unwrap(), Some(record));
    assert_eq!(store.datasets().unwrap().len(), 1);
    assert_eq!(store.dataset("cifar10").unwrap(), None);
    std::fs::remove_dir_all(db.parent().unwrap()).unwrap();
}

#[test]
fn a_database_from_a_newer_version_is_refused() {
    let db = temp_db("newer");
    drop(Store::open(&db, Some(1)).unwrap());
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let err = Store::open(&db, None).unwrap_err();
    assert!(err.to_string().contains("schema version 99"), "{err}");
    std::fs::remove_dir_all(db.parent().unwrap()).unwrap();
}

#[test]
fn a_variant_keeps_the_artifact_of_its_first_run() {
    let dir = std::env::temp_dir().join(format!("reproml-store-artifact-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut store = Store::open(&dir.join("a.db"), Some(1)).unwrap();
    let spec = ExperimentSpec::from_toml(
        "id = \"a\"\nmodel = \"mlp\"\nchallenge = \"digits\"\nepochs = 1\nruns = 3\n",
        "t",
    )
    .unwrap();
    let (e, _) = store.create_experiment(&spec).unwrap();
    let buggy = VariantLabel::new("buggy").unwrap();
    let faulty = |run: u32, fault: &str| {
        let mut r = sample_result(e.seeds[run as usize], 0.5, 1);
        r.artifact.details.insert("fault".into(), fault.into());
        r
    };
    assert_eq!(store.variant_artifact(&e.spec.id, &buggy).unwrap(), None);
    store
        .record_run(
            &e.spec.id,
            &buggy,
            RunIndex::new(0),
            &faulty(0, "momentum-ignored"),
        )
        .unwrap();
    store
        .record_run(
            &e.spec.id,
            &buggy,
            RunIndex::new(1),
            &faulty(1, "momentum-ignored"),
        )
        .unwrap();
    let err = store
        .record_run(&e.spec.id, &buggy, RunIndex::new(2), &faulty(2, "none"))
        .unwrap_err();
    assert!(matches!(err, StoreError::ArtifactConflict { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("fault=momentum-ignored") && text.contains("fault=none"),
        "{text}"
    );
    assert_eq!(store.runs(&e.spec.id, Some(&buggy)).unwrap().len(), 2);
    // Another variant may have another artifact.
    let corrected = VariantLabel::new("corrected").unwrap();
    store
        .record_run(&e.spec.id, &corrected, RunIndex::new(2), &faulty(2, "none"))
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_version_1_database_gets_its_variants_artifacts_from_its_first_results() {
    let db = temp_db("migrate");
    let id: ExperimentId = "e".parse().unwrap();
    let variant: VariantLabel = "v".parse().unwrap();
    let e = {
        let mut store = Store::open(&db, Some(3)).unwrap();
        let (e, _) = store.create_experiment(&spec("e", 1)).unwrap();
        store
            .record_run(
                &id,
                &variant,
                RunIndex::new(0),
                &sample_result(e.seeds[0], 0.5, 1),
            )
            .unwrap();
        e
    };
    // What version 1 of the schema was: the same, without `variants`.
    let raw = rusqlite::Connection::open(&db).unwrap();
    raw.execute_batch("DROP TABLE variants; DROP TABLE failures; PRAGMA user_version = 1;")
        .unwrap();
    drop(raw);
    let mut store = Store::open(&db, Some(3)).unwrap();
    let artifact = sample_result(e.seeds[0], 0.5, 1).artifact;
    assert_eq!(
        store.variant_artifact(&id, &variant).unwrap(),
        Some(artifact)
    );
    let mut other = sample_result(e.seeds[1], 0.5, 1);
    other.artifact.name = "another-build".into();
    assert!(matches!(
        store.record_run(&id, &variant, RunIndex::new(1), &other),
        Err(StoreError::ArtifactConflict { .. })
    ));
    // Its fixed fingerprint entries were not kept then: the next result
    // fixes them, and the one after must match.
    let at_threads = |run: usize, threads: &str| {
        let mut r = sample_result(e.seeds[run], 0.5, 1);
        r.fingerprint.insert("threads".into(), threads.into());
        r.fingerprint.insert("fixed".into(), "threads".into());
        r
    };
    store
        .record_run(&id, &variant, RunIndex::new(1), &at_threads(1, "1"))
        .unwrap();
    assert!(matches!(
        store.record_run(&id, &variant, RunIndex::new(2), &at_threads(2, "2")),
        Err(StoreError::FingerprintConflict { .. })
    ));
}

#[test]
fn a_group_commits_its_writes_together_and_a_refused_one_leaves_no_trace() {
    let db = temp_db("group");
    let mut store = Store::open(&db, Some(3)).unwrap();
    let (e, _) = store.create_experiment(&spec("g", 1)).unwrap();
    let id = e.spec.id.clone();
    let variant: VariantLabel = "v".parse().unwrap();
    let mut foreign = sample_result(e.seeds[1], 0.5, 1);
    foreign.artifact.name = "another-build".into();
    store.begin_group().unwrap();
    let first = store.isolated(|s| {
        s.record_run(
            &id,
            &variant,
            RunIndex::new(0),
            &sample_result(e.seeds[0], 0.5, 1),
        )
    });
    let refused = store.isolated(|s| s.record_run(&id, &variant, RunIndex::new(1), &foreign));
    let third = store.isolated(|s| {
        s.record_run(
            &id,
            &variant,
            RunIndex::new(2),
            &sample_result(e.seeds[2], 0.7, 1),
        )
    });
    assert!(first.is_ok() && third.is_ok());
    assert!(matches!(refused, Err(StoreError::ArtifactConflict { .. })));
    // Not visible to another connection before the commit...
    let reader = Store::open_reader(&db).unwrap();
    assert!(reader.runs(&id, None).unwrap().is_empty());
    store.commit_group().unwrap();
    // ...and exactly the two accepted writes after it.
    let runs: Vec<u32> = reader
        .runs(&id, None)
        .unwrap()
        .iter()
        .map(|r| r.run.get())
        .collect();
    assert_eq!(runs, [0, 2]);
}

#[test]
fn a_variant_s_runs_share_the_fingerprint_entries_their_results_depend_on() {
    let db = temp_db("fixed");
    let mut store = Store::open(&db, Some(3)).unwrap();
    let (e, _) = store.create_experiment(&spec("f", 1)).unwrap();
    let id = e.spec.id.clone();
    let variant: VariantLabel = "torch".parse().unwrap();
    let at_threads = |run: usize, threads: &str| {
        let mut r = sample_result(e.seeds[run], 0.5, 1);
        r.fingerprint.insert("threads".into(), threads.into());
        r.fingerprint
            .insert("fixed".into(), "backend,threads".into());
        r
    };
    store
        .record_run(&id, &variant, RunIndex::new(0), &at_threads(0, "1"))
        .unwrap();
    store
        .record_run(&id, &variant, RunIndex::new(1), &at_threads(1, "1"))
        .unwrap();
    let err = store
        .record_run(&id, &variant, RunIndex::new(2), &at_threads(2, "2"))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("threads: the variant's runs have 1, this result 2"),
        "{err}"
    );
    // Leaving the list out is a difference too: the results' dependence
    // cannot be dropped halfway through a variant.
    let mut unlisted = at_threads(2, "1");
    unlisted.fingerprint.remove("fixed");
    assert!(matches!(
        store.record_run(&id, &variant, RunIndex::new(2), &unlisted),
        Err(StoreError::FingerprintConflict { .. })
    ));
    // Entries not listed may vary (the machine's name, the date).
    let mut other_host = at_threads(2, "1");
    other_host
        .fingerprint
        .insert("hostname".into(), "elsewhere".into());
    store
        .record_run(&id, &variant, RunIndex::new(2), &other_host)
        .unwrap();
}

/// The change count moves with every write, whoever makes it, and only
/// then: the server's ETag rests on it.
#[test]
fn every_change_from_any_connection_moves_the_change_count() {
    let db = temp_db("changes");
    let mut writer = Store::open(&db, Some(1)).unwrap();
    let watcher = Store::open(&db, None).unwrap(); // as another process would
    let start = watcher.changes().unwrap();
    writer.create_experiment(&spec("e", 1)).unwrap();
    let created = watcher.changes().unwrap();
    assert!(created > start);
    let (id, v) = (
        ExperimentId::new("e").unwrap(),
        VariantLabel::new("v").unwrap(),
    );
    let result = sample_result(Seed::new(9), 0.9, 1);
    writer
        .record_run(&id, &v, RunIndex::new(0), &result)
        .unwrap();
    let recorded = watcher.changes().unwrap();
    assert!(recorded > created);
    // The same result again writes nothing.
    writer
        .record_run(&id, &v, RunIndex::new(0), &result)
        .unwrap();
    assert_eq!(watcher.changes().unwrap(), recorded);
    assert_eq!(writer.progress().unwrap()[0].recorded, 1);
    writer.delete_variant(&id, &v).unwrap();
    assert!(watcher.changes().unwrap() > recorded);
    assert!(writer.progress().unwrap().is_empty());
    std::fs::remove_dir_all(db.parent().unwrap()).unwrap();
}

#[test]
fn failures_are_counted_per_run_shown_in_progress_and_deleted_with_their_variant() {
    let db = temp_db("failures");
    let mut store = Store::open(&db, Some(1)).unwrap();
    let e = store.create_experiment(&spec("e", 1)).unwrap().0;
    let id = e.spec.id.clone();
    let (buggy, fixed) = (
        VariantLabel::new("buggy").unwrap(),
        VariantLabel::new("fixed").unwrap(),
    );
    let before = store.changes().unwrap();
    // A side whose runs only fail is listed, with no artifact yet.
    store
        .record_failure(&id, &buggy, RunIndex::new(2), "out of memory")
        .unwrap();
    let inserted = store.changes().unwrap();
    assert!(inserted > before);
    // Within the same second: the second report is still the latest.
    let again = store
        .record_failure(&id, &buggy, RunIndex::new(2), "checksum mismatch")
        .unwrap();
    assert_eq!((again.reports, again.recorded), (2, false));
    assert_eq!(again.last_error, "checksum mismatch");
    assert!(
        store.changes().unwrap() > inserted,
        "an update moves the ETag too"
    );
    let progress = store.progress().unwrap();
    assert_eq!(progress.len(), 1);
    let p = &progress[0];
    assert_eq!((p.recorded, p.failing, p.failure_reports), (0, 1, 2));
    assert_eq!(p.last_error.as_deref(), Some("checksum mismatch"));
    assert!(p.artifact.is_none() && p.first_recorded_at.is_none());

    // Run 2 succeeds on a retry: no longer failing, its reports still counted.
    let seed = e.run_seed(RunIndex::new(2)).unwrap();
    store
        .record_run(&id, &buggy, RunIndex::new(2), &sample_result(seed, 0.9, 1))
        .unwrap();
    store
        .record_failure(&id, &fixed, RunIndex::new(0), "killed")
        .unwrap();
    store
        .record_failure(&id, &buggy, RunIndex::new(3), "killed by the OOM killer")
        .unwrap();
    store
        .record_failure(
            &id,
            &buggy,
            RunIndex::new(2),
            "a late report of the recorded run",
        )
        .unwrap();
    let progress = store.progress().unwrap();
    let p = &progress[0];
    assert_eq!((p.recorded, p.failing, p.failure_reports), (1, 1, 4));
    assert_eq!(
        p.last_error.as_deref(),
        Some("killed by the OOM killer"),
        "a run still failing comes before a later report of a recorded one"
    );
    assert_eq!(store.failing_runs(&id).unwrap(), 3);
    assert!(p.artifact.is_some() && p.last_recorded_at.is_some());
    assert_eq!(
        (progress[1].variant.as_str(), progress[1].failing),
        ("fixed", 1)
    );
    let all = store.failures(&id, None).unwrap();
    assert_eq!(all.len(), 3);
    assert!(all[0].recorded && !all[1].recorded && !all[2].recorded);

    // Deleting a variant that only failed finds it; deleting the
    // experiment takes the rest.
    assert_eq!(store.delete_variant(&id, &fixed).unwrap(), Some(0));
    assert_eq!(store.failures(&id, None).unwrap().len(), 2);
    store.delete_experiment(&id).unwrap();
    assert!(store.failures(&id, None).unwrap().is_empty());
    assert!(store.progress().unwrap().is_empty());
    std::fs::remove_dir_all(db.parent().unwrap()).unwrap();
}
