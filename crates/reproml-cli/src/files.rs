//! Reading the files users give: bounded, UTF-8, with errors that name
//! the file and say what to do.

use std::path::Path;

use anyhow::{Context, Result, bail};
use reproml_core::ExperimentSpec;
use reproml_study::Study;

/// Reads a UTF-8 text file of at most `max_bytes`; `what` names it in
/// errors ("spec file", "sample file"). The bound keeps a wrong path (a
/// data set, a device) from being read whole into memory.
pub fn read_text_file(path: &Path, max_bytes: u64, what: &str) -> Result<String> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot read {what} {}", path.display()))?
        .len();
    if size > max_bytes {
        bail!(
            "{} is {size} bytes; a {what} is at most {max_bytes} bytes — is this the right file?",
            path.display()
        );
    }
    std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {what} {} as UTF-8 text", path.display()))
}

/// Most bytes read from a spec file: a spec is a few hundred bytes, so
/// anything larger is the wrong file.
const MAX_SPEC_BYTES: u64 = 1 << 20;

/// Reads and validates a spec file; the error names the file and lines.
pub fn load_spec(file: &std::path::Path) -> Result<ExperimentSpec> {
    let source = read_text_file(file, MAX_SPEC_BYTES, "spec file")?;
    Ok(ExperimentSpec::from_toml(
        &source,
        &file.display().to_string(),
    )?)
}

/// Shortest token accepted: anything shorter is guessable.
const MIN_TOKEN_LEN: usize = 16;

/// Reads a token file: one line, at least [`MIN_TOKEN_LEN`] characters.
pub fn read_token(path: &std::path::Path) -> Result<String> {
    let text = read_text_file(path, 4096, "token file")?;
    let token = text.trim().to_owned();
    if token.len() < MIN_TOKEN_LEN || token.contains(char::is_whitespace) {
        bail!(
            "the token in {} must be one word of at least {MIN_TOKEN_LEN} characters (e.g. from `openssl rand -hex 32`)",
            path.display()
        );
    }
    Ok(token)
}

/// Reads a study file.
pub fn load_study(path: &Path) -> Result<Study> {
    let text = read_text_file(path, 1 << 20, "study file")?;
    Ok(Study::from_toml(&text, &path.display().to_string())?)
}

/// Largest release-notes, corpus or labels file read.
pub const MAX_NOTES_BYTES: u64 = 32 << 20;

/// Reads a corpus written by `bugs collect`, JSON or CSV.
pub fn read_corpus(path: &Path) -> Result<Vec<reproml_study::BugRecord>> {
    let text = read_text_file(path, MAX_NOTES_BYTES, "corpus file")?;
    Ok(reproml_study::files::parse_corpus(
        &text,
        &path.display().to_string(),
    )?)
}

/// The labels so far; a labels file not written yet holds none.
pub fn read_labels(path: &Path) -> Result<Vec<reproml_study::Label>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = read_text_file(path, MAX_NOTES_BYTES, "labels file")?;
    Ok(reproml_study::files::parse_labels(
        &text,
        &path.display().to_string(),
    )?)
}

/// B_f: the bugs of the corpus every labeller accepted.
pub fn selected_bugs(corpus: &Path, labels: &Path) -> Result<std::collections::BTreeSet<String>> {
    let corpus = read_corpus(corpus)?;
    let mut selected = reproml_study::accepted(&read_labels(labels)?);
    selected.retain(|id| corpus.iter().any(|b| &b.id == id));
    Ok(selected)
}

/// Checks that the database of a command that only reads exists: such a
/// command must never leave an empty database behind a typo.
pub fn existing_database(path: &Path) -> Result<()> {
    if !path.is_file() {
        bail!(
            "there is no database {}; give the right --db, or --server URL to read from a running server",
            path.display()
        );
    }
    Ok(())
}

/// The runs of a CSV export (`GET /v1/experiments/{id}/runs?format=csv`).
pub fn read_runs_csv(path: &Path) -> Result<Vec<reproml_api::runs_csv::RunSummary>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(reproml_api::runs_csv::read(
        std::io::BufReader::new(file),
        &path.display().to_string(),
    )?)
}
