//! A study file: the experiments of a study, one per selected bug, whose
//! sides (variants) differ only in the artifact. A bug study has the two
//! sides `buggy` and `corrected`; a release study names its own, e.g.
//! `sides = ["torch-1.13", "torch-2.15", "burn"]`, with the artifact of
//! each in `[bug.sides]`, and compares each with the reference (the first
//! side, or `reference`), or every pair (`comparisons = "all-pairs"`).
//!
//! ```toml
//! name = "calibration"
//! runs = 30
//!
//! [base]            # the experiment attributes every bug shares (no id)
//! model = "lenet5"
//! challenge = "digits"
//! epochs = 5
//!
//! [[bug]]
//! id = "momentum"
//! buggy = { kind = "builtin", fault = "momentum-ignored" }
//! corrected = { kind = "builtin" }
//! ```

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use reproml_core::fault::Fault;
use reproml_core::{ExperimentId, ExperimentSpec, VariantLabel};

/// `a, b, c` for error messages.
fn list<'a>(names: impl IntoIterator<Item = &'a VariantLabel>) -> String {
    names
        .into_iter()
        .map(VariantLabel::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The kinds of artifact a study can run today.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ArtifactSpec {
    /// ReproduceML's own engine, optionally with an injected fault.
    Builtin {
        /// The fault injected (checked when the study is read); none when absent.
        #[serde(default)]
        fault: Option<Fault>,
    },
    /// Any client, run as `sh -c COMMAND` with `{server}` (the server's
    /// URL), `{experiment}`, `{variant}` and `{runs}` (the missing runs, as
    /// a run selection such as `0-3,7`) substituted; the client fetches its
    /// data and posts its results itself.
    Command {
        /// The command line.
        command: String,
        /// Its environment.
        #[serde(default)]
        env: std::collections::BTreeMap<String, String>,
    },
    /// A Python environment with ReproduceML's Python client and PyTorch:
    /// its interpreter runs `python -m reproml.run` for the missing runs
    /// (`{ kind = "python", python = "venv-2.5/bin/python" }`).
    Python {
        /// The interpreter, e.g. a virtual environment's `bin/python`.
        python: String,
        /// PyTorch's thread count (the runner's `--threads`; default 1).
        /// Results depend on it, so it is part of the side.
        #[serde(default)]
        threads: Option<u32>,
        /// Environment variables for the interpreter.
        #[serde(default)]
        env: std::collections::BTreeMap<String, String>,
    },
}

impl ArtifactSpec {
    /// The command template a `python` side runs; `None` for other kinds.
    ///
    /// ```
    /// use reproml_study::ArtifactSpec;
    /// let side = ArtifactSpec::Python { python: "/opt/v 2/bin/python".into(), threads: Some(2), env: Default::default() };
    /// assert_eq!(
    ///     side.python_command().unwrap(),
    ///     "'/opt/v 2/bin/python' -m reproml.run --server {server} --experiment {experiment} \
    ///      --variant {variant} --runs {runs} --threads 2"
    /// );
    /// ```
    pub fn python_command(&self) -> Option<String> {
        match self {
            ArtifactSpec::Python {
                python, threads, ..
            } => Some(format!(
                "{} -m reproml.run --server {{server}} --experiment {{experiment}} \
                 --variant {{variant}} --runs {{runs}} --threads {}",
                crate::template::shell_quote(python),
                threads.unwrap_or(1)
            )),
            _ => None,
        }
    }
}

/// One bug of a study: the artifact of each side.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StudyBug {
    /// The bug's identifier (the experiment is `<study>-<id>`).
    pub id: String,
    /// The artifact of every side, by side name.
    pub sides: BTreeMap<VariantLabel, ArtifactSpec>,
}

impl StudyBug {
    /// The artifact of `side` (every bug has every side of its study).
    pub fn artifact(&self, side: &VariantLabel) -> Option<&ArtifactSpec> {
        self.sides.get(side)
    }
}

/// Which pairs of sides a study's report compares.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Comparisons {
    /// Every side against the reference.
    #[default]
    Reference,
    /// Every pair of sides.
    AllPairs,
}

/// A parsed study file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Study {
    /// The study's name; prefixes its experiments.
    pub name: String,
    /// Runs per side (the paper recommends at least 30).
    pub runs: u32,
    /// Times a failed run is retried before it is reported.
    pub retries: u32,
    /// Attributes every experiment shares: an experiment spec without `id`
    /// and `runs`.
    pub base: toml::Table,
    /// The sides every bug has, in training order, the reference first.
    pub sides: Vec<VariantLabel>,
    /// Which pairs of sides the report compares.
    pub comparisons: Comparisons,
    /// The bugs.
    pub bugs: Vec<StudyBug>,
    /// How `study run --executor slurm` submits the runs (`[slurm]`).
    pub slurm: SlurmSettings,
}

/// A study's `[slurm]` table: what every job array of the study asks
/// Slurm for. Command-line flags override each.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmSettings {
    /// `--partition`.
    #[serde(default)]
    pub partition: Option<String>,
    /// `--time`, e.g. `02:00:00` (a task's limit: its runs must fit).
    #[serde(default)]
    pub time: Option<String>,
    /// `--gres`, e.g. `gpu:1`.
    #[serde(default)]
    pub gres: Option<String>,
    /// Runs each array task trains, one after the other (default 1).
    #[serde(default)]
    pub runs_per_task: Option<u32>,
    /// More `#SBATCH` lines, written as given (e.g. `"#SBATCH --mem=8G"`).
    #[serde(default)]
    pub extra: Vec<String>,
}

/// A study file as written: `buggy`/`corrected` are shorthand for two
/// entries of `[bug.sides]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StudyFile {
    name: String,
    #[serde(default = "default_runs")]
    runs: u32,
    #[serde(default = "default_retries")]
    retries: u32,
    base: toml::Table,
    #[serde(default)]
    sides: Option<Vec<String>>,
    #[serde(default)]
    reference: Option<String>,
    #[serde(default)]
    comparisons: Comparisons,
    #[serde(rename = "bug")]
    bugs: Vec<BugFile>,
    #[serde(default)]
    slurm: SlurmSettings,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BugFile {
    id: String,
    #[serde(default)]
    buggy: Option<ArtifactSpec>,
    #[serde(default)]
    corrected: Option<ArtifactSpec>,
    #[serde(default)]
    sides: BTreeMap<String, ArtifactSpec>,
}

fn default_runs() -> u32 {
    30
}

fn default_retries() -> u32 {
    2
}

/// Why a study file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StudyError {
    /// Not valid TOML or not a study.
    #[error("{origin}: {message}")]
    Syntax {
        /// The file.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// A bug's experiment spec is invalid.
    #[error("{origin}: bug {bug}: {message}")]
    Spec {
        /// The file.
        origin: String,
        /// The bug.
        bug: String,
        /// What is wrong.
        message: String,
    },
    /// Bugs of the labelled set B_f that the study gives no artifacts.
    #[error(
        "{origin}: {} selected by the labellers (B_f) but the study has no [[bug]] with that id: \
         add one per selected bug with its sides' artifacts",
        if bugs.len() == 1 { format!("{} is", bugs[0]) } else { format!("{} are", bugs.join(", ")) }
    )]
    Unplanned {
        /// The file.
        origin: String,
        /// The selected bugs without a `[[bug]]`.
        bugs: Vec<String>,
    },
}

impl Study {
    /// Parses a study file; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, StudyError> {
        let syntax = |message: String| StudyError::Syntax {
            origin: origin.into(),
            message,
        };
        // The error's text names the line and column and shows the line.
        let file: StudyFile = toml::from_str(text).map_err(|e| syntax(e.to_string()))?;
        // The name prefixes experiment identifiers and names the report's
        // folder: an identifier, so never a path.
        if reproml_core::Name::new(file.name.as_str()).is_err() {
            return Err(syntax(format!(
                "name {:?} must be letters, digits, '.', '_', '-', starting with a letter or digit",
                file.name
            )));
        }
        if file.bugs.is_empty() {
            return Err(syntax("the study has no [[bug]]".into()));
        }
        for key in ["id", "runs"] {
            if file.base.contains_key(key) {
                return Err(syntax(format!(
                    "[base] must not set `{key}`: the study sets it for every bug"
                )));
            }
        }
        let label = |name: &str, what: &str| {
            VariantLabel::new(name).map_err(|e| syntax(format!("{what} {name:?}: {e}")))
        };
        let mut sides = match &file.sides {
            Some(names) => names
                .iter()
                .map(|n| label(n, "side"))
                .collect::<Result<Vec<_>, _>>()?,
            None => vec![label("buggy", "side")?, label("corrected", "side")?],
        };
        if sides.len() < 2 {
            return Err(syntax(format!(
                "`sides` needs at least two sides to compare; got {:?}",
                file.sides.unwrap_or_default()
            )));
        }
        let mut seen = BTreeSet::new();
        if let Some(twice) = sides.iter().find(|s| !seen.insert(*s)) {
            return Err(syntax(format!("side {twice} appears twice in `sides`")));
        }
        if let Some(reference) = &file.reference {
            let reference = label(reference, "reference")?;
            let Some(at) = sides.iter().position(|s| *s == reference) else {
                return Err(syntax(format!(
                    "reference {reference} is not one of the sides {}",
                    list(&sides)
                )));
            };
            let reference = sides.remove(at);
            sides.insert(0, reference);
        }
        let mut seen = BTreeSet::new();
        let mut bugs = Vec::new();
        for bug in file.bugs {
            if !seen.insert(bug.id.clone()) {
                return Err(syntax(format!("bug {} appears twice", bug.id)));
            }
            let fail = |message: String| StudyError::Spec {
                origin: origin.into(),
                bug: bug.id.clone(),
                message,
            };
            let mut artifacts = BTreeMap::new();
            for (name, artifact) in bug.sides {
                let side = VariantLabel::new(name.as_str())
                    .map_err(|e| fail(format!("side {name:?}: {e}")))?;
                artifacts.insert(side, artifact);
            }
            for (name, artifact) in [("buggy", bug.buggy), ("corrected", bug.corrected)] {
                if let Some(artifact) = artifact {
                    let side = label(name, "side")?;
                    if artifacts.insert(side, artifact).is_some() {
                        return Err(fail(format!(
                            "side {name} is given twice (as `{name} =` and in [bug.sides])"
                        )));
                    }
                }
            }
            let missing: Vec<&VariantLabel> = sides
                .iter()
                .filter(|s| !artifacts.contains_key(*s))
                .collect();
            let extra: Vec<&VariantLabel> =
                artifacts.keys().filter(|s| !sides.contains(s)).collect();
            if !missing.is_empty() || !extra.is_empty() {
                return Err(fail(format!(
                    "every bug needs an artifact for each side of the study ({}); {}{}",
                    list(&sides),
                    if missing.is_empty() {
                        String::new()
                    } else {
                        format!("missing: {}", list(missing.iter().copied()))
                    },
                    if extra.is_empty() {
                        String::new()
                    } else {
                        format!(
                            "{}not a side (add it to `sides`?): {}",
                            if missing.is_empty() { "" } else { "; " },
                            list(extra)
                        )
                    }
                )));
            }
            bugs.push(StudyBug {
                id: bug.id,
                sides: artifacts,
            });
        }
        let study = Study {
            name: file.name,
            runs: file.runs,
            retries: file.retries,
            base: file.base,
            sides,
            comparisons: file.comparisons,
            bugs,
            slurm: file.slurm,
        };
        for bug in &study.bugs {
            study.spec(bug, origin)?;
        }
        Ok(study)
    }

    /// Keeps only the bugs in `selected` (B_f: those every labeller
    /// accepted), so that a study runs exactly the labelled set; returns
    /// the identifiers of the study's bugs left out. Every selected bug
    /// needs a `[[bug]]` (its artifacts), or nothing is kept.
    ///
    /// ```
    /// use reproml_study::Study;
    /// let text = "name = \"s\"\nruns = 2\n[base]\nmodel = \"mlp\"\nchallenge = \"digits\"\nepochs = 1\n\
    ///     [[bug]]\nid = \"B0001\"\nbuggy = { kind = \"builtin\" }\ncorrected = { kind = \"builtin\" }\n\
    ///     [[bug]]\nid = \"B0002\"\nbuggy = { kind = \"builtin\" }\ncorrected = { kind = \"builtin\" }\n";
    /// let mut study = Study::from_toml(text, "s.toml").unwrap();
    /// let left_out = study.keep_selected(&["B0002".to_string()].into(), "s.toml").unwrap();
    /// assert_eq!(left_out, ["B0001"]);
    /// assert_eq!(study.bugs.len(), 1);
    /// assert!(study.keep_selected(&["B0009".to_string()].into(), "s.toml").is_err());
    /// ```
    pub fn keep_selected(
        &mut self,
        selected: &BTreeSet<String>,
        origin: &str,
    ) -> Result<Vec<String>, StudyError> {
        let unplanned: Vec<String> = selected
            .iter()
            .filter(|id| !self.bugs.iter().any(|b| &b.id == *id))
            .cloned()
            .collect();
        if !unplanned.is_empty() {
            return Err(StudyError::Unplanned {
                origin: origin.into(),
                bugs: unplanned,
            });
        }
        let (kept, left_out): (Vec<StudyBug>, Vec<StudyBug>) = std::mem::take(&mut self.bugs)
            .into_iter()
            .partition(|b| selected.contains(&b.id));
        if kept.is_empty() {
            return Err(StudyError::Syntax {
                origin: origin.into(),
                message: "no bug is selected (B_f is empty): label the corpus with `reproml bugs label` first".into(),
            });
        }
        self.bugs = kept;
        Ok(left_out.into_iter().map(|b| b.id).collect())
    }

    /// The reference side: every other side is compared with it.
    pub fn reference(&self) -> &VariantLabel {
        &self.sides[0]
    }

    /// The experiment of `bug`: the base attributes, its identifier and the run count.
    pub fn spec(&self, bug: &StudyBug, origin: &str) -> Result<ExperimentSpec, StudyError> {
        let fail = |message: String| StudyError::Spec {
            origin: origin.into(),
            bug: bug.id.clone(),
            message,
        };
        let id = ExperimentId::new(format!("{}-{}", self.name, bug.id))
            .map_err(|e| fail(e.to_string()))?;
        let mut table = self.base.clone();
        table.insert("id".into(), toml::Value::String(id.to_string()));
        table.insert("runs".into(), toml::Value::Integer(i64::from(self.runs)));
        let spec: ExperimentSpec = table
            .try_into()
            .map_err(|e: toml::de::Error| fail(format!("[base]: {}", e.to_string().trim())))?;
        spec.validate().map_err(|violations| {
            fail(
                violations
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        Ok(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STUDY: &str = "name = \"cal\"\nruns = 5\n[base]\nmodel = \"mlp\"\nchallenge = \"digits\"\nepochs = 2\n\
        [[bug]]\nid = \"m\"\nbuggy = { kind = \"builtin\", fault = \"momentum-ignored\" }\ncorrected = { kind = \"builtin\" }\n";

    #[test]
    fn a_study_expands_into_experiments_that_differ_only_in_identity() {
        let study = Study::from_toml(STUDY, "s.toml").unwrap();
        let spec = study.spec(&study.bugs[0], "s.toml").unwrap();
        assert_eq!(spec.id.as_str(), "cal-m");
        assert_eq!((spec.runs, spec.epochs), (5, 2));
        assert_eq!(study.retries, 2);
        assert_eq!(study.reference().as_str(), "buggy");
        assert_eq!(
            study.bugs[0].artifact(&"buggy".parse().unwrap()),
            Some(&ArtifactSpec::Builtin {
                fault: Some(Fault::MomentumIgnored)
            })
        );
    }

    #[test]
    fn a_study_says_what_its_slurm_jobs_ask_for() {
        assert_eq!(
            Study::from_toml(STUDY, "s.toml").unwrap().slurm,
            SlurmSettings::default()
        );
        let text = format!(
            "{STUDY}[slurm]\npartition = \"gpu\"\ngres = \"gpu:1\"\nruns_per_task = 3\nextra = [\"#SBATCH --mem=8G\"]\n"
        );
        let slurm = Study::from_toml(&text, "s.toml").unwrap().slurm;
        assert_eq!(slurm.partition.as_deref(), Some("gpu"));
        assert_eq!((slurm.runs_per_task, slurm.extra.len()), (Some(3), 1));
        let err = Study::from_toml(&format!("{STUDY}[slurm]\nqueue = \"gpu\"\n"), "s.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `queue`"), "{err}");
    }

    const RELEASES: &str = "name = \"rel\"\nruns = 4\nsides = [\"torch-1.13\", \"torch-2.15\", \"burn\"]\n\
        reference = \"torch-2.15\"\ncomparisons = \"all-pairs\"\n\
        [base]\nmodel = \"lenet5\"\nchallenge = \"digits\"\nepochs = 2\n\
        [[bug]]\nid = \"lenet\"\n[bug.sides]\n\
        \"torch-1.13\" = { kind = \"command\", command = \"python3 train.py\" }\n\
        \"torch-2.15\" = { kind = \"command\", command = \"venv/bin/python train.py\" }\n\
        burn = { kind = \"builtin\" }\n";

    #[test]
    fn a_release_study_names_its_sides_and_its_reference() {
        let study = Study::from_toml(RELEASES, "r.toml").unwrap();
        let names: Vec<&str> = study.sides.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            names,
            ["torch-2.15", "torch-1.13", "burn"],
            "reference first"
        );
        assert_eq!(study.comparisons, Comparisons::AllPairs);
        let burn = study.bugs[0].artifact(&"burn".parse().unwrap()).unwrap();
        assert_eq!(burn, &ArtifactSpec::Builtin { fault: None });
        let python = RELEASES.replace(
            "\"torch-2.15\" = { kind = \"command\", command = \"venv/bin/python train.py\" }",
            "\"torch-2.15\" = { kind = \"python\", python = \"venv/bin/python\", threads = 2 }",
        );
        let study = Study::from_toml(&python, "r.toml").unwrap();
        let side = study.bugs[0]
            .artifact(&"torch-2.15".parse().unwrap())
            .unwrap();
        assert!(
            side.python_command()
                .unwrap()
                .ends_with("--runs {runs} --threads 2")
        );
        let typo = python.replace("threads = 2", "thread = 2");
        assert!(Study::from_toml(&typo, "r").is_err());

        let missing = RELEASES.replace("burn = { kind = \"builtin\" }\n", "");
        let err = Study::from_toml(&missing, "r").unwrap_err().to_string();
        assert!(
            err.contains("bug lenet") && err.contains("missing: burn"),
            "{err}"
        );
        let extra = RELEASES.replace("burn = {", "jax = { kind = \"builtin\" }\nburn = {");
        let err = Study::from_toml(&extra, "r").unwrap_err().to_string();
        assert!(
            err.contains("not a side (add it to `sides`?): jax"),
            "{err}"
        );
        let bad_reference = RELEASES.replace("reference = \"torch-2.15\"", "reference = \"tf\"");
        let err = Study::from_toml(&bad_reference, "r")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("reference tf is not one of the sides"),
            "{err}"
        );
        let one = RELEASES.replace(
            "sides = [\"torch-1.13\", \"torch-2.15\", \"burn\"]",
            "sides = [\"burn\"]",
        );
        assert!(
            Study::from_toml(&one, "r")
                .unwrap_err()
                .to_string()
                .contains("at least two")
        );
        let bad_name = RELEASES.replace("\"burn\"]", "\"b/urn\"]");
        assert!(Study::from_toml(&bad_name, "r").is_err());
        // The shorthand and the table cannot both give a side.
        let both = STUDY.replace(
            "corrected = { kind = \"builtin\" }\n",
            "corrected = { kind = \"builtin\" }\n[bug.sides]\nbuggy = { kind = \"builtin\" }\n",
        );
        let err = Study::from_toml(&both, "s").unwrap_err().to_string();
        assert!(err.contains("side buggy is given twice"), "{err}");
    }

    #[test]
    fn bad_studies_are_explained() {
        let no_bugs =
            "name = \"x\"\nbug = []\n[base]\nmodel = \"mlp\"\nchallenge = \"digits\"\nepochs = 1\n";
        assert!(
            Study::from_toml(no_bugs, "s")
                .unwrap_err()
                .to_string()
                .contains("no [[bug]]")
        );
        let bad_base = STUDY.replace("epochs = 2", "epochs = 0");
        assert!(
            Study::from_toml(&bad_base, "s")
                .unwrap_err()
                .to_string()
                .contains("bug m")
        );
        let sets_id = STUDY.replace("epochs = 2", "epochs = 2\nid = \"nope\"");
        assert!(
            Study::from_toml(&sets_id, "s")
                .unwrap_err()
                .to_string()
                .contains("must not set `id`")
        );
        let unknown = STUDY.replace("kind = \"builtin\" }", "kind = \"docker\" }");
        assert!(Study::from_toml(&unknown, "s").is_err());
        let wrong_type = STUDY.replace("epochs = 2", "epochs = \"two\"");
        let err = Study::from_toml(&wrong_type, "s").unwrap_err().to_string();
        assert!(err.contains("epochs"), "{err}");
        let escape = STUDY.replace("name = \"cal\"", "name = \"../x\"");
        assert!(
            Study::from_toml(&escape, "s")
                .unwrap_err()
                .to_string()
                .contains("name \"../x\"")
        );
        let bad_fault = STUDY.replace("momentum-ignored", "gremlins");
        assert!(
            Study::from_toml(&bad_fault, "s")
                .unwrap_err()
                .to_string()
                .contains("unknown fault \"gremlins\"")
        );
    }
}
