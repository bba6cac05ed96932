//! `reproml bugs`: the study's data collection.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Subcommand, ValueEnum};
use reproml_study::{BugRecord, NotesFormat, parse_release_notes};

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
}

/// Largest release-notes file read.
const MAX_NOTES_BYTES: u64 = 32 << 20;

/// Runs a `reproml bugs` subcommand.
pub fn run(cmd: BugsCommand) -> Result<()> {
    let BugsCommand::Collect {
        framework,
        release,
        format,
        out,
        files,
    } = cmd;
    let mut corpus: Vec<BugRecord> = Vec::new();
    for file in &files {
        let text = super::read_text_file(file, MAX_NOTES_BYTES, "release-notes file")?;
        let format = match format {
            FormatArg::Auto => NotesFormat::detect(&text),
            FormatArg::GithubRelease => NotesFormat::GithubRelease,
            FormatArg::ReleaseMd => NotesFormat::ReleaseMd,
            FormatArg::KeepAChangelog => NotesFormat::KeepAChangelog,
        };
        corpus.extend(parse_release_notes(
            &text,
            &file.display().to_string(),
            &framework,
            release.as_deref(),
            format,
        )?);
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for b in &corpus {
        *counts.entry(&b.release).or_default() += 1;
    }
    match out.extension().and_then(|e| e.to_str()) {
        Some("json") => std::fs::write(&out, serde_json::to_string_pretty(&corpus)?)
            .with_context(|| format!("cannot write {}", out.display()))?,
        Some("csv") => {
            let mut w = csv::Writer::from_path(&out)
                .with_context(|| format!("cannot write {}", out.display()))?;
            w.write_record([
                "framework",
                "release",
                "section",
                "context",
                "description",
                "prs",
                "issues",
                "links",
                "source",
                "raw",
            ])?;
            let join = |v: &[u32]| v.iter().map(u32::to_string).collect::<Vec<_>>().join(" ");
            for b in &corpus {
                w.write_record([
                    b.framework.as_str(),
                    &b.release,
                    &b.section,
                    &b.context,
                    &b.description,
                    &join(&b.prs),
                    &join(&b.issues),
                    &b.links.join(" "),
                    &b.source,
                    &b.raw,
                ])?;
            }
            w.flush()?;
        }
        _ => bail!("--out must end in .csv or .json, got {}", out.display()),
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
