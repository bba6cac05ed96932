//! `reproml bugs`: the study's data collection.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Subcommand, ValueEnum};
use reproml_runner::study::progress;
use reproml_study::files::{append_label, built_bugs, parse_corpus, parse_labels, write_corpus};
use reproml_study::{
    BugRecord, Decision, Label, NotesFormat, accepted, agreement, disagreements, number_corpus,
    parse_release_notes,
};

/// The formats `reproml bugs collect` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// Guess from the headings.
    Auto,
    /// A GitHub release body (PyTorch's style); needs --release.
    GithubRelease,
    /// A RELEASE.md with `# Release X.Y.Z` headings (TensorFlow's style).
    ReleaseMd,
    /// Keep a Changelog: `## [x.y.z]` then `### Fixed`.
    KeepAChangelog,
}

/// What `reproml bugs` can do.
#[derive(Debug, Subcommand)]
pub enum BugsCommand {
    /// Parse release notes into a corpus of bug fixes (CSV or JSON by the
    /// extension of --out) and print how many each release has.
    Collect {
        /// The framework the notes belong to (e.g. pytorch).
        #[arg(long)]
        framework: String,
        /// The release of a GitHub release body (the other formats name theirs).
        #[arg(long)]
        release: Option<String>,
        /// The notes' format.
        #[arg(long, value_enum, default_value = "auto")]
        format: FormatArg,
        /// Where to write the corpus: a .csv or .json file.
        #[arg(long)]
        out: PathBuf,
        /// Release-note files (Markdown).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Record one labeller's decision on one bug (appended to a JSON Lines
    /// file; a later decision of the same labeller replaces an earlier one).
    Label {
        /// The labels file (JSON Lines).
        #[arg(long, default_value = "labels.jsonl")]
        labels: PathBuf,
        /// The corpus, to check that the bug exists.
        #[arg(long)]
        corpus: Option<PathBuf>,
        /// Who decides.
        #[arg(long)]
        labeller: String,
        /// The bug's identifier (B0001, …).
        #[arg(long)]
        bug: String,
        /// reject:compilation-error, reject:crash, reject:user-code,
        /// constraint:cpu-only, constraint:no-application, accept:gradients,
        /// accept:math or accept:other.
        #[arg(long)]
        decision: Decision,
        /// Why.
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Print the funnel (collected → labelled → selected), the
    /// disagreements and the inter-rater agreement.
    Status {
        /// The corpus (JSON, from `bugs collect`).
        #[arg(long)]
        corpus: PathBuf,
        /// The labels file.
        #[arg(long, default_value = "labels.jsonl")]
        labels: PathBuf,
        /// Folder of `reproml artifact build` (recipes named after bug
        /// identifiers): counts the selected bugs with both sides built.
        #[arg(long)]
        artifacts: Option<PathBuf>,
        /// A study file whose [[bug]] ids are corpus identifiers: counts the
        /// bugs with every run of both variants recorded (needs --server or --db).
        #[arg(long)]
        study: Option<PathBuf>,
        /// URL of the study's server, with --study.
        #[arg(long, requires = "study", conflicts_with = "db")]
        server: Option<String>,
        /// The study's database (read through an embedded server), with --study.
        #[arg(long, requires = "study")]
        db: Option<PathBuf>,
    },
}

/// Study bugs with every run of both variants recorded.
fn analysed(study: &std::path::Path, server: &crate::connect::ServerArgs) -> Result<usize> {
    let origin = study.display().to_string();
    let study = crate::files::load_study(study)?;
    let connection = server.connect_existing()?;
    Ok(progress(&connection.client, &study, &origin)?
        .iter()
        .filter(|b| b.complete(study.runs))
        .count())
}

/// Largest release-notes, corpus or labels file read.
const MAX_NOTES_BYTES: u64 = 32 << 20;

fn read_corpus(path: &std::path::Path) -> Result<Vec<BugRecord>> {
    let text = crate::files::read_text_file(path, MAX_NOTES_BYTES, "corpus file")?;
    Ok(parse_corpus(&text, &path.display().to_string())?)
}

/// The labels so far; a labels file not written yet holds none.
fn read_labels(path: &std::path::Path) -> Result<Vec<Label>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = crate::files::read_text_file(path, MAX_NOTES_BYTES, "labels file")?;
    Ok(parse_labels(&text, &path.display().to_string())?)
}

/// Runs a `reproml bugs` subcommand.
pub fn run(cmd: BugsCommand) -> Result<()> {
    match cmd {
        BugsCommand::Collect {
            framework,
            release,
            format,
            out,
            files,
        } => collect(&framework, release.as_deref(), format, &out, &files),
        BugsCommand::Label {
            labels,
            corpus,
            labeller,
            bug,
            decision,
            comment,
        } => {
            if let Some(corpus) = corpus
                && !read_corpus(&corpus)?.iter().any(|b| b.id == bug)
            {
                bail!("{} has no bug {bug}", corpus.display());
            }
            let label = Label {
                bug,
                labeller,
                decision,
                comment,
            };
            append_label(&labels, &label)?;
            println!(
                "{} labelled {} as {}",
                label.labeller, label.bug, label.decision
            );
            Ok(())
        }
        BugsCommand::Status {
            corpus,
            labels,
            artifacts,
            study,
            server,
            db,
        } => {
            let corpus = read_corpus(&corpus)?;
            let labels = read_labels(&labels)?;
            let labelled: std::collections::BTreeSet<&str> =
                labels.iter().map(|l| l.bug.as_str()).collect();
            let selected = accepted(&labels);
            println!("collected  {:>5}", corpus.len());
            println!("labelled   {:>5}", labelled.len());
            println!(
                "selected   {:>5}   (accepted by every labeller: B_f)",
                selected.len()
            );
            if let Some(dir) = &artifacts {
                println!(
                    "built      {:>5}   (both sides built in {})",
                    built_bugs(&selected, dir),
                    dir.display()
                );
            }
            if let Some(study) = &study {
                if server.is_none() && db.is_none() {
                    bail!("--study needs --server URL or --db FILE to count the analysed bugs");
                }
                let server = crate::connect::ServerArgs {
                    server: server.clone(),
                    token_file: None,
                    embedded: server.is_none(),
                    db: db.clone().unwrap_or_default(),
                    master_seed: None,
                };
                println!(
                    "analysed   {:>5}   (every run of both variants recorded)",
                    analysed(study, &server)?
                );
            }
            let disputed = disagreements(&labels);
            if !disputed.is_empty() {
                println!("to discuss {:>5}   {}", disputed.len(), disputed.join(" "));
            }
            match agreement(&labels) {
                Some((2, k)) => {
                    println!("agreement  Cohen's κ = {k:.3} (2 labellers, bugs labelled by both)")
                }
                Some((n, k)) => {
                    println!("agreement  Fleiss' κ = {k:.3} ({n} labellers, bugs labelled by all)")
                }
                None => println!("agreement  — (needs two or more labellers on the same bugs)"),
            }
            Ok(())
        }
    }
}

fn collect(
    framework: &str,
    release: Option<&str>,
    format: FormatArg,
    out: &std::path::Path,
    files: &[PathBuf],
) -> Result<()> {
    if !matches!(
        out.extension().and_then(|e| e.to_str()),
        Some("csv" | "json")
    ) {
        bail!("--out must end in .csv or .json, got {}", out.display());
    }
    let mut corpus: Vec<BugRecord> = Vec::new();
    for file in files {
        let text = crate::files::read_text_file(file, MAX_NOTES_BYTES, "release-notes file")?;
        let format = match format {
            FormatArg::Auto => NotesFormat::detect(&text),
            FormatArg::GithubRelease => NotesFormat::GithubRelease,
            FormatArg::ReleaseMd => NotesFormat::ReleaseMd,
            FormatArg::KeepAChangelog => NotesFormat::KeepAChangelog,
        };
        corpus.extend(parse_release_notes(
            &text,
            &file.display().to_string(),
            framework,
            release,
            format,
        )?);
    }
    number_corpus(&mut corpus);
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for b in &corpus {
        *counts.entry(&b.release).or_default() += 1;
    }
    write_corpus(out, &corpus)?;
    for (release, n) in &counts {
        println!("{release}\t{n} bug fix(es)");
    }
    println!(
        "{} bug fixes in {} release(s) written to {}",
        corpus.len(),
        counts.len(),
        out.display()
    );
    Ok(())
}
