//! `reproml bundle`: replication packages. `export` writes a study's (or
//! some experiments') records into one checksummed archive, `verify`
//! checks one and re-derives its report (and re-trains runs when asked),
//! `import` loads one into a database for browsing.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use reproml_bundle::{Bundle, Description, ExperimentRecord, ReportSettings};
use reproml_core::ExperimentId;
use reproml_core::fault::Fault;

use crate::connect::ServerArgs;
use crate::studies::Labelled;

/// What `reproml bundle` can do.
#[derive(Debug, Subcommand)]
pub enum BundleCommand {
    /// Write a replication package: specs, seeds, every run with its
    /// per-epoch digests and fingerprint, failure reports, data set
    /// digests, the report and the settings that made it, the study's files;
    /// a manifest holds every file's SHA-256.
    #[command(
        after_long_help = "Examples:\n  reproml bundle export --db demo/reproml.db --experiment demo-real-fault \\\n      --experiment demo-unused-op demo.tar.zst\n  reproml bundle export --server https://login01:7878 --ca-cert ca.pem \\\n      --study study.toml --corpus corpus.json --labels labels.jsonl study.tar.zst"
    )]
    Export(Box<ExportArgs>),
    /// Check a replication package: every file against the manifest, the
    /// records against each other, the report re-derived from the runs bit
    /// for bit; with --retrain K, K runs trained again and their digests
    /// compared bit for bit. Exit status 1 when anything differs.
    #[command(
        after_long_help = "Examples:\n  reproml bundle verify demo.tar.zst\n  reproml bundle verify demo.tar.zst --retrain 3 --json"
    )]
    Verify(VerifyArgs),
    /// Load a replication package into a database (experiments with their
    /// own seeds, runs with their recording times), to browse it with
    /// `reproml server --db FILE` or compare it.
    #[command(
        after_long_help = "Examples:\n  reproml bundle import demo.tar.zst --db browse.db && reproml server --db browse.db"
    )]
    Import(ImportArgs),
}

/// Arguments of `reproml bundle export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// An experiment to include (repeat for several).
    #[arg(long, required_unless_present = "study", conflicts_with = "study")]
    experiment: Vec<ExperimentId>,
    /// A study file: its experiments, the sides it compares, and the file
    /// itself (with --corpus and --labels, those too, and only B_f).
    #[arg(long)]
    study: Option<PathBuf>,
    #[command(flatten)]
    labelled: Labelled,
    /// The variants to compare in each experiment, the reference first
    /// (default: as `reproml compare` picks them). Not with --study.
    #[arg(long, value_delimiter = ',', conflicts_with = "study")]
    variants: Vec<String>,
    /// Put the registered data sets' files in too (with --db: read from
    /// where that database registered them), so that `verify --retrain`
    /// works elsewhere. Only where the data's licence allows passing it
    /// on; the built-in digits set ships with reproml and is not copied.
    #[arg(long, requires = "db")]
    with_data: bool,
    /// The archive to write, e.g. study.tar.zst.
    out: PathBuf,
}

/// Arguments of `reproml bundle verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The archive.
    bundle: PathBuf,
    /// Train this many runs again with this build's engine (spread evenly
    /// over the runs it can train: those of the built-in engine of this
    /// very build) and compare every epoch's digest bit for bit.
    #[arg(long, default_value_t = 0)]
    retrain: usize,
    /// Print the outcome as JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `reproml bundle import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The archive.
    bundle: PathBuf,
    /// The database to load it into (created if missing).
    #[arg(long, default_value = "reproml.db")]
    db: PathBuf,
}

/// Runs a `reproml bundle` subcommand.
pub fn run(cmd: BundleCommand) -> Result<()> {
    match cmd {
        BundleCommand::Export(args) => export(*args),
        BundleCommand::Verify(args) => verify(args),
        BundleCommand::Import(args) => import(args),
    }
}

fn note(line: std::fmt::Arguments<'_>) {
    if !crate::output::quiet() {
        eprintln!("{line}");
    }
}

/// `n` and `word`, plural when `n` is not 1.
fn count(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

fn export(args: ExportArgs) -> Result<()> {
    let connection = args.server.connect_existing()?;
    let client = &connection.client;
    let mut settings = ReportSettings::default();
    let mut extra = Vec::new();
    let mut ids: Vec<String> = args.experiment.iter().map(ToString::to_string).collect();
    if let Some(path) = &args.study {
        let study = args.labelled.load(path)?;
        let origin = path.display().to_string();
        ids = study
            .bugs
            .iter()
            .map(|bug| study.spec(bug, &origin).map(|s| s.id.to_string()))
            .collect::<Result<_, _>>()?;
        let (mut rows, _) = reproml_runner::results::recorded_rows(client, &ids, None)?;
        let (variants_of, uncompared) = crate::studies::compared_sides(&study, &ids, &mut rows);
        for line in &uncompared {
            note(format_args!("warning: {line}"));
        }
        ids.retain(|id| variants_of.contains_key(id));
        if ids.is_empty() {
            bail!(
                "no experiment of the study has runs of the reference and another side to compare"
            );
        }
        settings.variants_of = variants_of;
        settings.all_pairs = study.comparisons == reproml_study::Comparisons::AllPairs;
        let mut add = |name: &str, file: &std::path::Path| -> Result<()> {
            let bytes =
                std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
            extra.push((format!("study/{name}"), bytes));
            Ok(())
        };
        add("study.toml", path)?;
        if let Some(corpus) = &args.labelled.corpus {
            let name = if corpus.extension().is_some_and(|e| e == "csv") {
                "corpus.csv"
            } else {
                "corpus.json"
            };
            add(name, corpus)?;
            add("labels.jsonl", &args.labelled.labels)?;
        }
    } else if !args.variants.is_empty() {
        settings.variants_of = ids
            .iter()
            .map(|id| (id.clone(), args.variants.clone()))
            .collect();
    }
    let mut records = Vec::new();
    let mut used = BTreeMap::new();
    for id in &ids {
        let id: ExperimentId = id.parse().map_err(anyhow::Error::msg)?;
        let experiment = client.experiment(&id)?;
        let runs = client.runs(&id, None)?;
        let failures = client.failures(&id)?;
        let digests: std::collections::BTreeSet<&str> = runs
            .iter()
            .filter_map(|r| r.result.fingerprint.get("dataset").map(String::as_str))
            .collect();
        used.insert(
            id.to_string(),
            serde_json::json!({ "challenge": experiment.spec.challenge, "dataset_digests": digests }),
        );
        records.push(ExperimentRecord {
            experiment,
            runs,
            failures,
        });
    }
    let mut included = BTreeMap::new();
    if args.with_data {
        let db = args
            .server
            .db
            .as_deref()
            .unwrap_or(std::path::Path::new("reproml.db"));
        let store = reproml_store::Store::open_reader(db)
            .with_context(|| format!("cannot read {}", db.display()))?;
        let challenges: std::collections::BTreeSet<String> = records
            .iter()
            .map(|r| r.experiment.spec.challenge.to_string())
            .collect();
        for name in challenges {
            let Some(record) = store.dataset(&name)? else {
                continue; // built in
            };
            let mut names = Vec::new();
            for (file, bytes) in data_files(std::path::Path::new(&record.path))? {
                extra.push((format!("data/{name}/{file}"), bytes));
                names.push(file);
            }
            included.insert(
                name,
                serde_json::json!({
                    "format": record.format.as_str(), "digest": record.digest,
                    "classes": record.classes, "examples": record.examples, "files": names,
                }),
            );
        }
    }
    let datasets = serde_json::json!({
        "server": client.datasets()?, "used": used, "included": included,
    });
    // The latest recording time, not now: the same records give the
    // same bytes.
    let created_at = records
        .iter()
        .flat_map(|r| &r.runs)
        .map(|r| r.recorded_at.clone())
        .max()
        .unwrap_or_else(crate::output::now);
    let source = match &args.server.db {
        Some(db) => format!("database {}", db.display()),
        None if args.server.embedded => "database reproml.db".to_owned(),
        None => client.base().to_owned(),
    };
    let description = Description {
        tool: format!("reproml {}", env!("CARGO_PKG_VERSION")),
        created_at,
        source,
        experiments: ids,
        settings,
        study_files: extra.iter().map(|(p, _)| p.clone()).collect(),
    };
    let bundle = reproml_bundle::assemble(&description, &records, &datasets, extra)?;
    bundle.write(&args.out)?;
    let runs: usize = records.iter().map(|r| r.runs.len()).sum();
    note(format_args!(
        "wrote {}: {}, {}, {} (check it: reproml bundle verify {})",
        args.out.display(),
        count(records.len(), "experiment"),
        count(runs, "run"),
        count(bundle.paths().count() + 1, "file"),
        args.out.display()
    ));
    Ok(())
}

/// The files of a registered data set: the file itself, or the plain
/// files of its folder (not recursive), by name.
fn data_files(path: &std::path::Path) -> Result<Vec<(String, Vec<u8>)>> {
    let read = |file: &std::path::Path| -> Result<(String, Vec<u8>)> {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bytes =
            std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        Ok((name, bytes))
    };
    if path.is_file() {
        return Ok(vec![read(path)?]);
    }
    let mut files = Vec::new();
    for entry in
        std::fs::read_dir(path).with_context(|| format!("cannot read {}", path.display()))?
    {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            files.push(read(&entry.path())?);
        }
    }
    files.sort();
    Ok(files)
}

/// A data set the bundle carries, as `datasets.json` lists it.
#[derive(Debug, serde::Deserialize)]
struct IncludedData {
    format: String,
    digest: String,
    classes: u32,
    examples: u32,
    files: Vec<String>,
}

/// Unpacks the bundle's data sets into `dir` and checks each one's digest
/// against the one recorded; the records to register them under.
fn unpack_data(
    bundle: &Bundle,
    dir: &std::path::Path,
) -> Result<Vec<reproml_store::DatasetRecord>> {
    let datasets: serde_json::Value = bundle.json("datasets.json")?;
    let included: BTreeMap<String, IncludedData> =
        serde_json::from_value(datasets["included"].clone()).unwrap_or_default();
    let mut records = Vec::new();
    for (name, data) in included {
        let format: reproml_data::DataFormat = data.format.parse().map_err(anyhow::Error::msg)?;
        let folder = dir.join(&name);
        std::fs::create_dir_all(&folder)?;
        for file in &data.files {
            let path = format!("data/{name}/{file}");
            let bytes = bundle
                .get(&path)
                .with_context(|| format!("{path}: listed in datasets.json, missing"))?;
            std::fs::write(folder.join(file), bytes)?;
        }
        let root = if format == reproml_data::DataFormat::DigitsCsv {
            folder.join(data.files.first().map_or("", String::as_str))
        } else {
            folder.clone()
        };
        let loaded = reproml_data::load(format, &root)
            .with_context(|| format!("data/{name}: cannot be read as {}", data.format))?;
        let digest = reproml_data::serve::DatasetFacts::of(&loaded).digest;
        if digest != data.digest {
            bail!(
                "data/{name}: its digest is {digest}, but the bundle recorded {}",
                data.digest
            );
        }
        records.push(reproml_store::DatasetRecord {
            name,
            format,
            path: root.display().to_string(),
            digest,
            classes: data.classes,
            examples: data.examples,
        });
    }
    Ok(records)
}

/// One re-trained run, as `verify --json` prints it.
#[derive(Debug, Clone, serde::Serialize)]
struct Retrained {
    experiment: String,
    variant: String,
    run: u32,
    epochs: usize,
    identical: bool,
    /// The first epoch whose digest differs.
    first_difference: Option<u32>,
}

#[derive(serde::Serialize)]
struct VerifyOutcome {
    bundle: String,
    files: usize,
    experiments: usize,
    runs: usize,
    comparisons: usize,
    retrained: Vec<Retrained>,
    /// Runs asked for but not re-trainable by this build.
    skipped: Vec<String>,
}

fn verify(args: VerifyArgs) -> Result<()> {
    let bundle = Bundle::read(&args.bundle)?;
    let (verified, records) = reproml_bundle::verify(&bundle)?;
    note(format_args!(
        "{}: {} match the manifest;\n  {} and {} hold together;\n  the report ({}) re-derives bit for bit",
        args.bundle.display(),
        count(verified.files + 1, "file"),
        count(verified.experiments, "experiment"),
        count(verified.runs, "run"),
        count(verified.comparisons, "comparison")
    ));
    let dir = private_dir()?;
    let checked = (|| -> Result<_> {
        let data = unpack_data(&bundle, &dir.join("data"))?;
        if !data.is_empty() {
            note(format_args!(
                "the bundle's data sets ({}) match their recorded digests",
                data.iter()
                    .map(|d| d.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if args.retrain > 0 {
            retrain(&records, args.retrain, &data, &dir)
        } else {
            Ok((Vec::new(), Vec::new()))
        }
    })();
    let _ = std::fs::remove_dir_all(&dir);
    let (retrained, skipped) = checked?;
    let differing: Vec<&Retrained> = retrained.iter().filter(|r| !r.identical).collect();
    if args.json {
        crate::output::print_json(&VerifyOutcome {
            bundle: args.bundle.display().to_string(),
            files: verified.files + 1,
            experiments: verified.experiments,
            runs: verified.runs,
            comparisons: verified.comparisons,
            retrained: retrained.clone(),
            skipped: skipped.clone(),
        })?;
    } else {
        for r in &retrained {
            match r.first_difference {
                None => println!(
                    "{} / {} run {}: re-trained, {} epoch digests bit-identical",
                    r.experiment, r.variant, r.run, r.epochs
                ),
                Some(epoch) => println!(
                    "{} / {} run {}: re-trained, DIFFERS from epoch {epoch}",
                    r.experiment, r.variant, r.run
                ),
            }
        }
        println!("verified: {}", args.bundle.display());
    }
    for line in &skipped {
        note(format_args!("not re-trained: {line}"));
    }
    if !differing.is_empty() {
        bail!(
            "{} of {} re-trained runs differ from the bundle's digests",
            differing.len(),
            retrained.len()
        );
    }
    if args.retrain > 0 && retrained.len() < args.retrain {
        bail!(
            "{} runs asked for, {} could be re-trained by this build (see above)",
            args.retrain,
            retrained.len()
        );
    }
    Ok(())
}

/// Trains `count` of the records' runs again (evenly spread over those
/// this build's engine made) on a server loaded with the bundle's
/// experiments, and compares every epoch's digest.
fn retrain(
    records: &[ExperimentRecord],
    count: usize,
    data: &[reproml_store::DatasetRecord],
    dir: &std::path::Path,
) -> Result<(Vec<Retrained>, Vec<String>)> {
    let mut eligible = Vec::new();
    let mut skipped = Vec::new();
    for record in records {
        let model = record.experiment.spec.model.as_str();
        for run in &record.runs {
            let artifact = &run.result.artifact;
            let fault: Option<Fault> = artifact.details.get("fault").and_then(|f| f.parse().ok());
            match fault {
                Some(fault) if reproml_train::builtin_artifact(model, &fault) == *artifact => {
                    eligible.push((record, run, fault));
                }
                _ => {
                    // A GPU's runs are not bit-repeatable by promise, so a
                    // retraining on the CPU could never match them.
                    let why = if run
                        .result
                        .fingerprint
                        .get("deterministic")
                        .map(String::as_str)
                        == Some("false")
                    {
                        "trained on an engine that is not bit-repeatable (deterministic: false)"
                    } else {
                        "not this build's engine"
                    };
                    let line = format!(
                        "{} / {}: trained by {} ({why})",
                        run.experiment, run.variant, artifact.name
                    );
                    if !skipped.contains(&line) {
                        skipped.push(line);
                    }
                }
            }
        }
    }
    let picked: Vec<_> = (0..count.min(eligible.len()))
        .map(|i| &eligible[i * eligible.len() / count.min(eligible.len())])
        .collect();
    if picked.is_empty() {
        return Ok((Vec::new(), skipped));
    }
    let db = dir.join("retrain.db");
    {
        let mut store = reproml_store::Store::open(&db, None)?;
        for record in data {
            store.register_dataset(record)?;
        }
        for (record, _, _) in &picked {
            store.import_experiment(&record.experiment)?;
        }
    }
    let mut failed_to_train = Vec::new();
    let outcome = (|| -> Result<Vec<Retrained>> {
        let connection = ServerArgs::embedded(db.clone(), None).connect()?;
        let mut out = Vec::new();
        for (record, run, fault) in &picked {
            note(format_args!(
                "re-training {} / {} run {} …",
                run.experiment, run.variant, run.run
            ));
            let trained = match reproml_runner::run::train_run(
                &connection.client,
                &record.experiment,
                run.run,
                fault,
                &mut |_| {},
            ) {
                Ok(trained) => trained,
                Err(e) => {
                    // Most often a data set this machine lacks: say so and
                    // go on with the others.
                    failed_to_train.push(format!(
                        "{} / {} run {}: {}",
                        run.experiment,
                        run.variant,
                        run.run,
                        reproml_runner::describe(&e)
                    ));
                    continue;
                }
            };
            let first_difference = run
                .result
                .epochs
                .iter()
                .zip(&trained.result.epochs)
                .find(|(a, b)| a.digest != b.digest)
                .map(|(a, _)| a.epoch)
                .or_else(|| {
                    // One training stopped early: the first epoch it lacks.
                    (run.result.epochs.len() != trained.result.epochs.len()).then(|| {
                        run.result.epochs.len().min(trained.result.epochs.len()) as u32 + 1
                    })
                });
            out.push(Retrained {
                experiment: run.experiment.to_string(),
                variant: run.variant.to_string(),
                run: run.run.get(),
                epochs: trained.result.epochs.len(),
                identical: first_difference.is_none(),
                first_difference,
            });
        }
        Ok(out)
    })();
    skipped.extend(failed_to_train);
    Ok((outcome?, skipped))
}

/// A new folder only this user can enter, for the re-training database.
fn private_dir() -> Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let base = std::env::temp_dir();
    for attempt in 0..100u32 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = base.join(format!(
            "reproml-retrain-{}-{nanos}-{attempt}",
            std::process::id()
        ));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).context("cannot create a folder for re-training"),
        }
    }
    bail!(
        "cannot create a folder for re-training in {}",
        base.display()
    )
}

fn import(args: ImportArgs) -> Result<()> {
    let bundle = Bundle::read(&args.bundle)?;
    let (verified, records) = reproml_bundle::verify(&bundle)?;
    let mut store = reproml_store::Store::open(&args.db, None)
        .with_context(|| format!("cannot open {}", args.db.display()))?;
    // All or nothing: a conflict half-way leaves the database as it was.
    // Importing the same bundle again changes nothing.
    store.begin_group()?;
    let imported = store.isolated(|store| -> Result<()> {
        for record in &records {
            let id = &record.experiment.spec.id;
            store.import_experiment(&record.experiment)?;
            for run in &record.runs {
                store.record_run_at(
                    id,
                    &run.variant,
                    run.run,
                    &run.result,
                    run.recorded_at.clone(),
                )?;
            }
            for failure in &record.failures {
                store.import_failure(failure)?;
            }
        }
        Ok(())
    });
    match imported {
        Ok(()) => store.commit_group()?,
        Err(e) => {
            let _ = store.commit_group(); // the savepoint undid every write
            return Err(e.context(format!("nothing was imported into {}", args.db.display())));
        }
    }
    note(format_args!(
        "imported {} and {} into {} (browse them: reproml server --db {})",
        count(verified.experiments, "experiment"),
        count(verified.runs, "run"),
        args.db.display(),
        args.db.display()
    ));
    Ok(())
}
