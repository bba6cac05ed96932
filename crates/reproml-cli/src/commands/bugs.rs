//! `reproml bugs`: the study's data collection.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Subcommand, ValueEnum};
use reproml_runner::study::progress;
use reproml_study::files::{append_label, built_bugs, write_corpus};

use crate::files::{read_corpus, read_labels};
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
    #[command(
        after_long_help = "Examples:\n  reproml bugs collect --framework pytorch --release v1.5.1 \\\n      examples/release-notes/pytorch-1.5.1.md --out corpus.json\n  reproml bugs collect --framework tensorflow \\\n      examples/release-notes/tensorflow-RELEASE.md --out tf.csv --json"
    )]
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
        /// Print the per-release counts as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Record one labeller's decision on one bug (appended to a JSON Lines
    /// file; a later decision of the same labeller replaces an earlier one).
    #[command(
        after_long_help = "Examples:\n  reproml bugs label --corpus corpus.json --labeller ana --bug B0001 \\\n      --decision accept:gradients --comment \"wrong conv2d grad\"\n  reproml bugs label --corpus corpus.json --labeller ben --bug B0003 --decision reject:crash"
    )]
    Label {
        /// The labels file (JSON Lines).
        #[arg(long, default_value = "labels.jsonl")]
        labels: PathBuf,
        /// The corpus (JSON or CSV, from `bugs collect`): only its bugs can
        /// be labelled.
        #[arg(long)]
        corpus: PathBuf,
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
    #[command(
        after_long_help = "Examples:\n  reproml bugs status --corpus corpus.json\n  reproml bugs status --corpus corpus.json --study study.toml --db study.db --json"
    )]
    Status {
        /// The corpus (JSON or CSV, from `bugs collect`).
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
        /// Where the study's runs are, with --study: --server URL (or
        /// $REPROML_SERVER) or --db FILE.
        #[command(flatten)]
        server: crate::connect::ServerArgs,
        /// Print the funnel as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// The funnel of `bugs status`, as `--json` prints it.
#[derive(serde::Serialize)]
struct Funnel {
    collected: usize,
    labelled: usize,
    /// B_f: accepted by every labeller.
    selected: Vec<String>,
    /// Selected bugs with both sides built (with --artifacts).
    built: Option<usize>,
    /// Selected bugs of the study with every run of every side recorded
    /// (with --study).
    analysed: Option<usize>,
    /// Study bugs that are not in B_f, so not counted as analysed.
    study_bugs_not_selected: Vec<String>,
    to_discuss: Vec<String>,
    /// (labellers, Cohen's or Fleiss' κ).
    agreement: Option<(usize, f64)>,
}

/// Selected study bugs with every run of every side recorded, and the
/// study's bugs that are not selected (not counted: the funnel narrows).
fn analysed(
    study: &std::path::Path,
    server: &crate::connect::ServerArgs,
    selected: &std::collections::BTreeSet<String>,
) -> Result<(usize, Vec<String>)> {
    let origin = study.display().to_string();
    let study = crate::files::load_study(study)?;
    let connection = server.connect_existing()?;
    let progress = progress(&connection.client, &study, &origin)?;
    let mut analysed = 0;
    let mut not_selected = Vec::new();
    for (bug, progress) in study.bugs.iter().zip(&progress) {
        if !selected.contains(&bug.id) {
            not_selected.push(bug.id.clone());
        } else if progress.complete(study.runs) {
            analysed += 1;
        }
    }
    Ok((analysed, not_selected))
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
            json,
        } => collect(&framework, release.as_deref(), format, &out, &files, json),
        BugsCommand::Label {
            labels,
            corpus,
            labeller,
            bug,
            decision,
            comment,
        } => {
            if !read_corpus(&corpus)?.iter().any(|b| b.id == bug) {
                bail!(
                    "{} has no bug {bug}; `reproml bugs status --corpus {}` shows how many it has",
                    corpus.display(),
                    corpus.display()
                );
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
            json,
        } => {
            let corpus = read_corpus(&corpus)?;
            let labels = read_labels(&labels)?;
            // Labels of bugs the corpus does not hold (another corpus's,
            // or written by hand) are left out of every count.
            let in_corpus = |id: &str| corpus.iter().any(|b| b.id == id);
            let unknown: std::collections::BTreeSet<&str> = labels
                .iter()
                .map(|l| l.bug.as_str())
                .filter(|id| !in_corpus(id))
                .collect();
            if !unknown.is_empty() {
                eprintln!(
                    "warning: labels of bugs not in the corpus are left out: {}",
                    unknown.into_iter().collect::<Vec<_>>().join(" ")
                );
            }
            let labels: Vec<Label> = labels.into_iter().filter(|l| in_corpus(&l.bug)).collect();
            let labelled: std::collections::BTreeSet<&str> =
                labels.iter().map(|l| l.bug.as_str()).collect();
            let selected = accepted(&labels);
            let built = artifacts.as_deref().map(|dir| built_bugs(&selected, dir));
            let (analysed, not_selected) = match &study {
                Some(study) => {
                    let (n, not_selected) = analysed(study, &server, &selected)?;
                    (Some(n), not_selected)
                }
                None => (None, Vec::new()),
            };
            let funnel = Funnel {
                collected: corpus.len(),
                labelled: labelled.len(),
                selected: selected.into_iter().collect(),
                built,
                analysed,
                study_bugs_not_selected: not_selected,
                to_discuss: disagreements(&labels),
                agreement: agreement(&labels),
            };
            if json {
                return crate::output::print_json(&funnel);
            }
            print_funnel(&funnel, artifacts.as_deref());
            Ok(())
        }
    }
}

fn print_funnel(funnel: &Funnel, artifacts: Option<&std::path::Path>) {
    println!("collected  {:>5}", funnel.collected);
    println!("labelled   {:>5}", funnel.labelled);
    println!(
        "selected   {:>5}   (accepted by every labeller: B_f)",
        funnel.selected.len()
    );
    if let (Some(built), Some(dir)) = (funnel.built, artifacts) {
        println!(
            "built      {built:>5}   (both sides built in {})",
            dir.display()
        );
    }
    if let Some(analysed) = funnel.analysed {
        println!("analysed   {analysed:>5}   (every run of every side recorded)");
    }
    if !funnel.study_bugs_not_selected.is_empty() {
        eprintln!(
            "warning: the study's bugs {} are not in B_f (not in the corpus, or not accepted by \
             every labeller), so they are not counted as analysed",
            funnel.study_bugs_not_selected.join(" ")
        );
    }
    if !funnel.to_discuss.is_empty() {
        println!(
            "to discuss {:>5}   {}",
            funnel.to_discuss.len(),
            funnel.to_discuss.join(" ")
        );
    }
    match funnel.agreement {
        Some((2, k)) => {
            println!("agreement  Cohen's κ = {k:.3} (2 labellers, bugs labelled by both)")
        }
        Some((n, k)) => {
            println!("agreement  Fleiss' κ = {k:.3} ({n} labellers, bugs labelled by all)")
        }
        None => println!("agreement  — (needs two or more labellers on the same bugs)"),
    }
}

fn collect(
    framework: &str,
    release: Option<&str>,
    format: FormatArg,
    out: &std::path::Path,
    files: &[PathBuf],
    json: bool,
) -> Result<()> {
    if !matches!(
        out.extension().and_then(|e| e.to_str()),
        Some("csv" | "json")
    ) {
        bail!("--out must end in .csv or .json, got {}", out.display());
    }
    let mut corpus: Vec<BugRecord> = Vec::new();
    for file in files {
        let text = crate::files::read_text_file(
            file,
            crate::files::MAX_NOTES_BYTES,
            "release-notes file",
        )?;
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
    if json {
        return crate::output::print_json(&serde_json::json!({
            "bugs": corpus.len(),
            "per_release": counts,
            "out": out,
        }));
    }
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
