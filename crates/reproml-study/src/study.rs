//! A study file: the experiments of a study, one per selected bug, whose
//! `buggy` and `corrected` variants differ only in the artifact.
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

use serde::{Deserialize, Serialize};

use reproml_core::fault::Fault;
use reproml_core::{ExperimentId, ExperimentSpec};

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
    /// `A-B` or a comma-separated list) substituted; the client fetches its
    /// data and posts its results itself.
    Command {
        /// The command line.
        command: String,
        /// Its environment.
        #[serde(default)]
        env: std::collections::BTreeMap<String, String>,
    },
}

/// One bug of a study.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudyBug {
    /// The bug's identifier (the experiment is `<study>-<id>`).
    pub id: String,
    /// The artifact with the bug.
    pub buggy: ArtifactSpec,
    /// The artifact with the fix.
    pub corrected: ArtifactSpec,
}

/// A parsed study file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Study {
    /// The study's name; prefixes its experiments.
    pub name: String,
    /// Runs per variant (the paper recommends at least 30).
    #[serde(default = "default_runs")]
    pub runs: u32,
    /// Times a failed run is retried before it is reported.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Attributes every experiment shares: an experiment spec without `id`
    /// and `runs`.
    pub base: toml::Table,
    /// The bugs.
    #[serde(rename = "bug")]
    pub bugs: Vec<StudyBug>,
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
}

impl Study {
    /// Parses a study file; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, StudyError> {
        let study: Study = toml::from_str(text).map_err(|e| StudyError::Syntax {
            origin: origin.into(),
            message: e.message().to_owned(),
        })?;
        // The name prefixes experiment identifiers and names the report's
        // folder: an identifier, so never a path.
        if reproml_core::Name::new(study.name.as_str()).is_err() {
            return Err(StudyError::Syntax {
                origin: origin.into(),
                message: format!(
                    "name {:?} must be letters, digits, '.', '_', '-', starting with a letter or digit",
                    study.name
                ),
            });
        }
        if study.bugs.is_empty() {
            return Err(StudyError::Syntax {
                origin: origin.into(),
                message: "the study has no [[bug]]".into(),
            });
        }
        for key in ["id", "runs"] {
            if study.base.contains_key(key) {
                return Err(StudyError::Syntax {
                    origin: origin.into(),
                    message: format!(
                        "[base] must not set `{key}`: the study sets it for every bug"
                    ),
                });
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for bug in &study.bugs {
            if !seen.insert(&bug.id) {
                return Err(StudyError::Syntax {
                    origin: origin.into(),
                    message: format!("bug {} appears twice", bug.id),
                });
            }
            study.spec(bug, origin)?;
        }
        Ok(study)
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
        assert_eq!(
            study.bugs[0].buggy,
            ArtifactSpec::Builtin {
                fault: Some(Fault::MomentumIgnored)
            }
        );
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
