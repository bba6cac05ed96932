//! What the commands that read a study share: which of its bugs are
//! selected (B_f) and which of its sides can be compared.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

/// The labelled set a study's bugs come from.
#[derive(Debug, Args)]
pub(crate) struct Labelled {
    /// Run only the study's bugs in B_f, the corpus's bugs every labeller
    /// accepted (`bugs status` shows it); every bug of B_f needs a [[bug]]
    /// with its artifacts in the study file.
    #[arg(long)]
    pub(crate) corpus: Option<PathBuf>,
    /// The labels file, with --corpus.
    #[arg(long, default_value = "labels.jsonl", requires = "corpus")]
    pub(crate) labels: PathBuf,
}

impl Labelled {
    /// The study file, restricted to B_f when a corpus is given.
    pub(crate) fn load(&self, path: &std::path::Path) -> Result<reproml_study::Study> {
        let mut study = crate::files::load_study(path)?;
        if let Some(corpus) = &self.corpus {
            let selected = crate::files::selected_bugs(corpus, &self.labels)?;
            let left_out = study.keep_selected(&selected, &path.display().to_string())?;
            if !left_out.is_empty() && !crate::output::quiet() {
                eprintln!(
                    "not in B_f, left out: {} ({} of {} bugs selected)",
                    left_out.join(" "),
                    study.bugs.len(),
                    study.bugs.len() + left_out.len()
                );
            }
        }
        Ok(study)
    }
}

/// The sides of each of the study's experiments `ids` that can be
/// compared (those with runs, the reference first), and a line for each
/// experiment that lacks some; `rows` loses the experiments that cannot
/// be compared at all (no reference, or no other side).
pub(crate) fn compared_sides(
    study: &reproml_study::Study,
    ids: &[String],
    rows: &mut Vec<reproml_report::RunSummary>,
) -> (std::collections::BTreeMap<String, Vec<String>>, Vec<String>) {
    // A side whose every run failed has nothing to compare: compare the
    // sides that have runs, and say which are missing.
    let mut variants_of = std::collections::BTreeMap::new();
    let mut uncompared = Vec::new();
    for id in ids {
        let present: Vec<String> = study
            .sides
            .iter()
            .filter(|side| {
                rows.iter()
                    .any(|r| r.experiment.as_str() == id && r.variant == **side)
            })
            .map(ToString::to_string)
            .collect();
        if present.len() < study.sides.len() {
            uncompared.push(format!(
                "{id} has no runs of {}",
                study
                    .sides
                    .iter()
                    .filter(|s| !present.contains(&s.to_string()))
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if present.len() >= 2 && present[0] == study.reference().as_str() {
            variants_of.insert(id.clone(), present);
        } else {
            rows.retain(|r| r.experiment.as_str() != id);
        }
    }
    (variants_of, uncompared)
}
