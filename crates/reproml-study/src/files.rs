//! The study's files: the corpus (`bugs collect`), the labels (`bugs
//! label`, JSON Lines, one decision a line, fsynced) and the artifact
//! builds' provenance (`artifact build`). Reading is parsing text the
//! caller read (the CLI bounds every file it reads); writing is here.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::artifact::Provenance;
use crate::{BugRecord, Label};

/// A study file that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file system refused.
    #[error("cannot {action} {path}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The content is not what this file should hold.
    #[error("{path}: {message}")]
    Content {
        /// The file.
        path: String,
        /// What is wrong, and what to do.
        message: String,
    },
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> FileError {
    let path = path.to_owned();
    move |source| FileError::Io {
        action,
        path,
        source,
    }
}

/// Parses a corpus written by `reproml bugs collect`, as JSON (an array)
/// or CSV (a header row of the columns it writes); `origin` names it in
/// errors.
pub fn parse_corpus(text: &str, origin: &str) -> Result<Vec<BugRecord>, FileError> {
    if text.trim_start().starts_with('[') {
        return serde_json::from_str(text).map_err(|e| FileError::Content {
            path: origin.to_owned(),
            message: format!(
                "not a corpus written by `reproml bugs collect --out FILE.json` ({e})"
            ),
        });
    }
    parse_corpus_csv(text, origin)
}

fn parse_corpus_csv(text: &str, origin: &str) -> Result<Vec<BugRecord>, FileError> {
    let content = |message: String| FileError::Content {
        path: origin.to_owned(),
        message,
    };
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader
        .headers()
        .map_err(|e| content(format!("not a CSV corpus ({e})")))?
        .clone();
    if header.iter().ne(CORPUS_COLUMNS) {
        return Err(content(format!(
            "not a corpus written by `reproml bugs collect --out FILE.csv`: the columns must be {}",
            CORPUS_COLUMNS.join(",")
        )));
    }
    let numbers = |field: &str, row: usize| -> Result<Vec<u32>, FileError> {
        field
            .split_whitespace()
            .map(|n| {
                n.parse()
                    .map_err(|_| content(format!("row {row}: {n:?} is not a PR or issue number")))
            })
            .collect()
    };
    let mut corpus = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let row = i + 2;
        let r = record.map_err(|e| content(format!("row {row}: {e}")))?;
        let field = |k: usize| r.get(k).unwrap_or_default().to_owned();
        corpus.push(BugRecord {
            id: field(0),
            framework: field(1),
            release: field(2),
            section: field(3),
            context: field(4),
            description: field(5),
            prs: numbers(&field(6), row)?,
            issues: numbers(&field(7), row)?,
            links: field(8).split_whitespace().map(str::to_owned).collect(),
            source: field(9),
            raw: field(10),
        });
    }
    Ok(corpus)
}

/// The columns of a corpus written as CSV.
const CORPUS_COLUMNS: [&str; 11] = [
    "id",
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
];

/// Writes a corpus as JSON (`.json`) or CSV (`.csv`, lists space-separated).
pub fn write_corpus(path: &Path, corpus: &[BugRecord]) -> Result<(), FileError> {
    let content = |message: String| FileError::Content {
        path: path.display().to_string(),
        message,
    };
    match path.extension().and_then(|e| e.to_str()) {
        Some("json") => {
            let json = serde_json::to_string_pretty(corpus).map_err(|e| content(e.to_string()))?;
            std::fs::write(path, json).map_err(io("write", path))
        }
        Some("csv") => {
            let mut w = csv_writer(path)?;
            let csv = |e: csv::Error| content(e.to_string());
            w.write_record(CORPUS_COLUMNS).map_err(csv)?;
            let join = |v: &[u32]| v.iter().map(u32::to_string).collect::<Vec<_>>().join(" ");
            for b in corpus {
                w.write_record([
                    b.id.as_str(),
                    &b.framework,
                    &b.release,
                    &b.section,
                    &b.context,
                    &b.description,
                    &join(&b.prs),
                    &join(&b.issues),
                    &b.links.join(" "),
                    &b.source,
                    &b.raw,
                ])
                .map_err(csv)?;
            }
            w.flush().map_err(io("write", path))
        }
        _ => Err(content("the corpus file must end in .csv or .json".into())),
    }
}

fn csv_writer(path: &Path) -> Result<csv::Writer<std::fs::File>, FileError> {
    let file = std::fs::File::create(path).map_err(io("write", path))?;
    Ok(csv::Writer::from_writer(file))
}

/// Parses a labels file (JSON Lines, blank lines ignored); `origin` names
/// it in errors.
pub fn parse_labels(text: &str, origin: &str) -> Result<Vec<Label>, FileError> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| FileError::Content {
                path: format!("{origin}:{}", i + 1),
                message: format!("not a label ({e})"),
            })
        })
        .collect()
}

/// Appends one decision to a labels file and syncs it to disk.
pub fn append_label(path: &Path, label: &Label) -> Result<(), FileError> {
    let line = serde_json::to_string(label).map_err(|e| FileError::Content {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io("open", path))?;
    writeln!(file, "{line}").map_err(io("write", path))?;
    file.sync_all().map_err(io("sync", path))
}

/// How many of the `selected` bugs have both sides built successfully in
/// `dir` (the folder of `reproml artifact build`, recipes named after bug
/// identifiers).
pub fn built_bugs(selected: &BTreeSet<String>, dir: &Path) -> usize {
    let ok = |bug: &str, side: &str| -> bool {
        std::fs::read_to_string(dir.join(bug).join(side).join("provenance.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<Provenance>(&t).ok())
            .is_some_and(|p| p.succeeded)
    };
    selected
        .iter()
        .filter(|b| ok(b, "buggy") && ok(b, "corrected"))
        .count()
}
