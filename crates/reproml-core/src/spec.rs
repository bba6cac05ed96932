//! The experiment spec: the attributes of the paper's Table II (identifier,
//! model, challenge, epochs) plus everything else that changes what a run
//! computes (batch sizes, optimiser, number of runs, seed policy, split,
//! subsets). Written as TOML by users, sent as JSON over the protocol.
//!
//! Defaults follow the paper's training procedure: SGD with lr 0.01 and
//! momentum 0.5, batch 64, test batch 1000; 30 runs (the paper's
//! recommended minimum).
//!
//! ```
//! use reproml_core::spec::ExperimentSpec;
//! let spec = ExperimentSpec::from_toml(r#"
//!     id = "demo"
//!     model = "lenet5"
//!     challenge = "digits"
//!     epochs = 5
//! "#, "demo.toml").unwrap();
//! assert_eq!(spec.optimizer.lr, 0.01);
//! assert_eq!(spec.batch.train, 64);
//! ```

use std::fmt;
use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::id::{ExperimentId, ModelName, Name};
use crate::seed::SeedPolicy;
use crate::split::{SplitFractions, SubsetLimits};

/// Most epochs a spec may ask for.
pub const MAX_EPOCHS: u32 = 10_000;
/// Most runs a spec may ask for.
pub const MAX_RUNS: u32 = 10_000;
/// Largest training batch.
pub const MAX_TRAIN_BATCH: u32 = 65_536;
/// Largest evaluation batch.
pub const MAX_TEST_BATCH: u32 = 1_000_000;
/// Largest learning rate accepted (anything above is a typo, not a choice).
pub const MAX_LEARNING_RATE: f64 = 10.0;
/// Longest free-text description, in bytes.
pub const MAX_DESCRIPTION_LEN: usize = 4096;

/// The attributes of an experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentSpec {
    /// The user-given identifier (the paper's "bug identifier").
    pub id: ExperimentId,
    /// Free text for people: what the experiment is about.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Model trained by every run (`lenet5`, `vgg-x`, …, or `custom:NAME`).
    pub model: ModelName,
    /// Data set with its split (`digits`, `fashion-mnist`, …).
    pub challenge: Name,
    /// Passes over the training split in each run.
    pub epochs: u32,
    /// Runs per variant.
    #[serde(default = "default_runs")]
    pub runs: u32,
    /// How runs get their seeds.
    #[serde(default)]
    pub seed_policy: SeedPolicy,
    /// Batch sizes.
    #[serde(default)]
    pub batch: BatchSizes,
    /// Optimiser and its hyper-parameters.
    #[serde(default)]
    pub optimizer: Optimizer,
    /// How the challenge's examples are split.
    #[serde(default)]
    pub split: SplitRule,
    /// Optional caps on split sizes, for quick runs.
    #[serde(default, skip_serializing_if = "SubsetLimits::is_none")]
    pub subset: SubsetLimits,
}

fn default_runs() -> u32 {
    30
}

/// Batch sizes for training and evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchSizes {
    /// Examples per optimiser step.
    #[serde(default = "default_train_batch")]
    pub train: u32,
    /// Examples per evaluation batch (does not change results, only memory).
    #[serde(default = "default_test_batch")]
    pub test: u32,
}

fn default_train_batch() -> u32 {
    64
}

fn default_test_batch() -> u32 {
    1000
}

impl Default for BatchSizes {
    fn default() -> Self {
        Self {
            train: default_train_batch(),
            test: default_test_batch(),
        }
    }
}

/// The optimisers a spec can name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerKind {
    /// Stochastic gradient descent with PyTorch's momentum semantics
    /// (dampening 0, no Nesterov).
    #[default]
    Sgd,
}

/// Optimiser settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Optimizer {
    /// Which optimiser.
    #[serde(default)]
    pub kind: OptimizerKind,
    /// Learning rate, in (0, 10].
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// Momentum, in [0, 1).
    #[serde(default = "default_momentum")]
    pub momentum: f64,
    /// L2 weight decay, in [0, 1).
    #[serde(default)]
    pub weight_decay: f64,
}

fn default_lr() -> f64 {
    0.01
}

fn default_momentum() -> f64 {
    0.5
}

impl Default for Optimizer {
    fn default() -> Self {
        Self {
            kind: OptimizerKind::Sgd,
            lr: default_lr(),
            momentum: default_momentum(),
            weight_decay: 0.0,
        }
    }
}

/// How a challenge's examples become train/test(/validation) splits.
///
/// Written flat in TOML (`[split] method = "fractions"`, `train = 0.8`, …);
/// `method` defaults to `fractions` and each fraction to its default.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "kebab-case", try_from = "RawSplitRule")]
pub enum SplitRule {
    /// Pool every example and split by fractions with the split seed.
    Fractions(SplitFractions),
    /// The challenge's own train and test files, as published.
    Official,
}

/// How a split rule is written: flat, every key optional.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSplitRule {
    #[serde(default)]
    method: SplitMethod,
    train: Option<f64>,
    test: Option<f64>,
    validation: Option<f64>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum SplitMethod {
    #[default]
    Fractions,
    Official,
}

impl TryFrom<RawSplitRule> for SplitRule {
    type Error = String;

    fn try_from(raw: RawSplitRule) -> Result<Self, Self::Error> {
        let defaults = SplitFractions::default();
        match raw.method {
            SplitMethod::Fractions => Ok(SplitRule::Fractions(SplitFractions {
                train: raw.train.unwrap_or(defaults.train),
                test: raw.test.unwrap_or(defaults.test),
                validation: raw.validation.unwrap_or(defaults.validation),
            })),
            SplitMethod::Official if raw.train.or(raw.test).or(raw.validation).is_some() => Err(
                "method \"official\" uses the challenge's own files: remove train, test and validation, or use method \"fractions\"".into(),
            ),
            SplitMethod::Official => Ok(SplitRule::Official),
        }
    }
}

impl Default for SplitRule {
    fn default() -> Self {
        SplitRule::Fractions(SplitFractions::default())
    }
}

impl SplitRule {
    /// The fractions, for a fraction split.
    pub fn fractions(&self) -> Option<SplitFractions> {
        match *self {
            SplitRule::Fractions(f) => Some(f),
            SplitRule::Official => None,
        }
    }
}

/// Models this tool's engines train: the Rust engine all of them, the
/// Python client `mlp`, `lenet5` and `vgg-x` (`reproml-train`'s registry
/// is tested to hold exactly these).
pub const BUILTIN_MODELS: &[&str] = &["mlp", "lenet5", "vgg-x", "vgg11", "alexnet"];
/// Data sets every server knows without an import.
pub const BUILTIN_CHALLENGES: &[&str] = &["digits", "fashion-mnist"];

impl ExperimentSpec {
    /// Checks that the model is one the engines know (or `custom:NAME`)
    /// and the challenge built in or among `registered` data sets: an
    /// experiment no engine can train is refused when it is created, not
    /// found out run by run.
    pub fn check_names(&self, registered: &[&str]) -> Result<(), Vec<Violation>> {
        let mut problems = Vec::new();
        if !self.model.is_custom() && !BUILTIN_MODELS.contains(&self.model.as_str()) {
            problems.push(Violation {
                key: "model".into(),
                message: format!(
                    "{:?} is not a model this tool knows ({}); write a model only your own client trains as \"custom:NAME\"",
                    self.model.as_str(),
                    BUILTIN_MODELS.join(", ")
                ),
            });
        }
        let challenge = self.challenge.as_str();
        if !BUILTIN_CHALLENGES.contains(&challenge) && !registered.contains(&challenge) {
            problems.push(Violation {
                key: "challenge".into(),
                message: format!(
                    "{challenge:?} is neither built in ({}) nor an imported data set{}; import it first with `reproml data import`",
                    BUILTIN_CHALLENGES.join(", "),
                    if registered.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", registered.join(", "))
                    }
                ),
            });
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

/// One thing wrong with a spec's values, named by its dotted key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Dotted key path, e.g. `optimizer.momentum`.
    pub key: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.key, self.message)
    }
}

impl ExperimentSpec {
    /// A spec with the paper's defaults for everything but what names the
    /// experiment; change the public fields to build others as values.
    ///
    /// ```
    /// use reproml_core::ExperimentSpec;
    /// let mut spec = ExperimentSpec::new("demo".parse().unwrap(), "lenet5".parse().unwrap(), "digits".parse().unwrap(), 8);
    /// spec.runs = 20;
    /// assert!(spec.validate().is_ok());
    /// assert_eq!(spec.optimizer.lr, 0.01);
    /// ```
    pub fn new(id: ExperimentId, model: ModelName, challenge: Name, epochs: u32) -> Self {
        Self {
            id,
            description: String::new(),
            model,
            challenge,
            epochs,
            runs: default_runs(),
            seed_policy: SeedPolicy::default(),
            batch: BatchSizes::default(),
            optimizer: Optimizer::default(),
            split: SplitRule::default(),
            subset: SubsetLimits::default(),
        }
    }

    /// Checks every value against its allowed range and returns all the
    /// problems at once (a user fixes a file in one go, not one error per try).
    pub fn validate(&self) -> Result<(), Vec<Violation>> {
        let mut problems = Vec::new();
        let mut check = |ok: bool, key: &str, message: String| {
            if !ok {
                problems.push(Violation {
                    key: key.to_owned(),
                    message,
                });
            }
        };
        check(
            self.description.len() <= MAX_DESCRIPTION_LEN,
            "description",
            format!(
                "is {} bytes long; at most {MAX_DESCRIPTION_LEN} are allowed",
                self.description.len()
            ),
        );
        check(
            (1..=MAX_EPOCHS).contains(&self.epochs),
            "epochs",
            format!("must be between 1 and {MAX_EPOCHS}, got {}", self.epochs),
        );
        check(
            (1..=MAX_RUNS).contains(&self.runs),
            "runs",
            format!("must be between 1 and {MAX_RUNS}, got {}", self.runs),
        );
        check(
            (1..=MAX_TRAIN_BATCH).contains(&self.batch.train),
            "batch.train",
            format!(
                "must be between 1 and {MAX_TRAIN_BATCH}, got {}",
                self.batch.train
            ),
        );
        check(
            (1..=MAX_TEST_BATCH).contains(&self.batch.test),
            "batch.test",
            format!(
                "must be between 1 and {MAX_TEST_BATCH}, got {}",
                self.batch.test
            ),
        );
        let o = &self.optimizer;
        check(
            o.lr.is_finite() && o.lr > 0.0 && o.lr <= MAX_LEARNING_RATE,
            "optimizer.lr",
            format!(
                "must be above 0 and at most {MAX_LEARNING_RATE}, got {:?}",
                o.lr
            ),
        );
        check(
            o.momentum.is_finite() && (0.0..1.0).contains(&o.momentum),
            "optimizer.momentum",
            format!("must be in [0, 1), got {:?}", o.momentum),
        );
        check(
            o.weight_decay.is_finite() && (0.0..1.0).contains(&o.weight_decay),
            "optimizer.weight_decay",
            format!("must be in [0, 1), got {:?}", o.weight_decay),
        );
        if let Some(f) = self.split.fractions() {
            for (key, message) in f.violations() {
                let key = if key.is_empty() {
                    "split".to_owned()
                } else {
                    format!("split.{key}")
                };
                check(false, &key, message);
            }
        }
        for (key, cap) in [
            ("subset.train", self.subset.train),
            ("subset.test", self.subset.test),
            ("subset.validation", self.subset.validation),
        ] {
            check(
                cap != Some(0),
                key,
                "must be at least 1 (leave it out to use the whole split)".into(),
            );
        }
        if matches!(self.split, SplitRule::Official) {
            check(
                self.subset.validation.is_none(),
                "subset.validation",
                "an official split has no validation part; remove this key".into(),
            );
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// Parses and validates a spec written in TOML. `origin` names the
    /// source (usually the file path) in error messages.
    pub fn from_toml(source: &str, origin: &str) -> Result<Self, SpecError> {
        let at = |offset: usize, key: Option<String>, message: String| SpecProblem {
            position: Position::of_offset(source, offset),
            key,
            message,
        };
        let keys = match KeyIndex::parse(source) {
            Ok(keys) => keys,
            Err(e) => {
                let offset = e.span().map_or(0, |s| s.start);
                return Err(SpecError::new(
                    origin,
                    vec![at(offset, None, e.message().to_owned())],
                ));
            }
        };
        let spec: ExperimentSpec = match toml::from_str(source) {
            Ok(spec) => spec,
            Err(e) => {
                let span = e.span().unwrap_or(0..0);
                let key = keys.key_at(&span).map(str::to_owned);
                return Err(SpecError::new(
                    origin,
                    vec![at(span.start, key, e.message().to_owned())],
                ));
            }
        };
        spec.validate().map_err(|violations| {
            let problems = violations
                .into_iter()
                .map(|v| {
                    let offset = keys.value_offset(&v.key).unwrap_or(0);
                    at(offset, Some(v.key), v.message)
                })
                .collect();
            SpecError::new(origin, problems)
        })?;
        Ok(spec)
    }

    /// The keys, top-level and nested, whose values differ between `self`
    /// (stored) and `given`, as `key: stored → given`: what a conflict
    /// reports so that a user sees at once why an identifier is taken.
    ///
    /// ```
    /// use reproml_core::ExperimentSpec;
    /// let a = ExperimentSpec::new("e".parse().unwrap(), "mlp".parse().unwrap(), "digits".parse().unwrap(), 1);
    /// let mut b = a.clone();
    /// b.optimizer.lr = 0.5;
    /// assert_eq!(a.differences(&b), ["optimizer.lr: 0.01 → 0.5"]);
    /// ```
    pub fn differences(&self, given: &ExperimentSpec) -> Vec<String> {
        let (Ok(a), Ok(b)) = (serde_json::to_value(self), serde_json::to_value(given)) else {
            return vec!["(unserialisable spec)".into()];
        };
        let mut out = Vec::new();
        diff_values("", &a, &b, &mut out);
        out
    }

    /// The spec with every default written out, as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string(self)
            .expect("a spec always serialises: it has no maps with non-string keys")
    }
}

fn diff_values(prefix: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                let null = Value::Null;
                diff_values(
                    &path,
                    x.get(k).unwrap_or(&null),
                    y.get(k).unwrap_or(&null),
                    out,
                );
            }
        }
        _ if a != b => out.push(format!("{prefix}: {a} → {b}")),
        _ => {}
    }
}

/// A 1-based line and column in a source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Line, from 1.
    pub line: usize,
    /// Column in characters, from 1.
    pub column: usize,
}

impl Position {
    fn of_offset(source: &str, offset: usize) -> Self {
        let offset = offset.min(source.len());
        let before = source.get(..offset).unwrap_or(source);
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Position {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

/// One problem in a spec file, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecProblem {
    /// Where it is.
    pub position: Position,
    /// The dotted key concerned, when known.
    pub key: Option<String>,
    /// What is wrong and what is allowed.
    pub message: String,
}

/// A spec that could not be read, with every problem found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SpecError {
    /// The source's name (file path).
    pub origin: String,
    /// The problems, in file order.
    pub problems: Vec<SpecProblem>,
}

impl SpecError {
    fn new(origin: &str, mut problems: Vec<SpecProblem>) -> Self {
        problems.sort_by_key(|p| (p.position.line, p.position.column));
        Self {
            origin: origin.to_owned(),
            problems,
        }
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(
                f,
                "{}:{}:{}: ",
                self.origin, p.position.line, p.position.column
            )?;
            if let Some(key) = &p.key {
                write!(f, "`{key}`: ")?;
            }
            write!(f, "{}", p.message)?;
        }
        Ok(())
    }
}

/// Where each dotted key of a TOML document and its value are.
struct KeyIndex {
    /// (dotted key, span of the key, span of the value)
    entries: Vec<(String, Range<usize>, Range<usize>)>,
}

impl KeyIndex {
    fn parse(source: &str) -> Result<Self, toml::de::Error> {
        let root = toml::de::DeTable::parse(source)?;
        let mut entries = Vec::new();
        collect_keys(root.get_ref(), "", &mut entries);
        Ok(Self { entries })
    }

    /// Offset of the value of `key`, or of the nearest enclosing table.
    fn value_offset(&self, key: &str) -> Option<usize> {
        let mut key = key;
        loop {
            if let Some((_, _, value)) = self.entries.iter().find(|(k, _, _)| k == key) {
                return Some(value.start);
            }
            key = &key[..key.rfind('.')?];
        }
    }

    /// The innermost key whose key or value encloses `span` (a missing
    /// field at the top level lies within no key, and gets none).
    fn key_at(&self, span: &Range<usize>) -> Option<&str> {
        if span.is_empty() {
            // toml reports a missing top-level field at 0..0.
            return None;
        }
        let encloses = |r: &Range<usize>| r.start <= span.start && span.end <= r.end;
        self.entries
            .iter()
            .filter(|(_, k, v)| encloses(k) || encloses(v))
            .max_by_key(|(k, _, _)| k.matches('.').count())
            .map(|(k, _, _)| k.as_str())
    }
}

fn collect_keys(
    table: &toml::de::DeTable<'_>,
    prefix: &str,
    out: &mut Vec<(String, Range<usize>, Range<usize>)>,
) {
    for (key, value) in table.iter() {
        let path = if prefix.is_empty() {
            key.get_ref().to_string()
        } else {
            format!("{prefix}.{}", key.get_ref())
        };
        out.push((path.clone(), key.span(), value.span()));
        if let toml::de::DeValue::Table(inner) = value.get_ref() {
            collect_keys(inner, &path, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "id = \"e1\"\nmodel = \"lenet5\"\nchallenge = \"digits\"\nepochs = 3\n";

    fn parse(src: &str) -> Result<ExperimentSpec, SpecError> {
        ExperimentSpec::from_toml(src, "spec.toml")
    }

    #[test]
    fn defaults_follow_the_paper() {
        let s = parse(MINIMAL).unwrap();
        assert_eq!(s.optimizer, Optimizer::default());
        assert_eq!((s.optimizer.lr, s.optimizer.momentum), (0.01, 0.5));
        assert_eq!((s.batch.train, s.batch.test), (64, 1000));
        assert_eq!(s.runs, 30);
        assert_eq!(s.seed_policy, SeedPolicy::PerRun);
        assert_eq!(s.split, SplitRule::default());
    }

    #[test]
    fn normalised_form_round_trips() {
        let s = parse(&format!("{MINIMAL}[subset]\ntrain = 100\n")).unwrap();
        let again = parse(&s.to_toml()).unwrap();
        assert_eq!(s, again);
        assert!(s.to_toml().contains("momentum = 0.5"));
    }

    #[test]
    fn official_split_parses() {
        let s = parse(&format!("{MINIMAL}[split]\nmethod = \"official\"\n")).unwrap();
        assert_eq!(s.split, SplitRule::Official);
        let err = parse(&format!(
            "{MINIMAL}[split]\nmethod = \"official\"\ntrain = 0.5\n"
        ))
        .unwrap_err();
        assert!(err.to_string().contains("train"), "{err}");
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let err = parse(&format!("{MINIMAL}[optimizer]\nlearning_rate = 0.1\n")).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("spec.toml:6:"), "{text}");
        assert!(text.contains("learning_rate"), "{text}");
        assert!(text.contains("`lr`"), "lists what is allowed: {text}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let err =
            parse("id = \"e1\"\nmodel = \"lenet5\"\nchallenge = \"digits\"\nepochs = \"ten\"\n")
                .unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("spec.toml:4:"), "{text}");
        assert!(text.contains("`epochs`"), "{text}");
    }

    #[test]
    fn out_of_range_values_are_all_reported_with_lines() {
        let src = format!("{MINIMAL}runs = 0\n[optimizer]\nmomentum = 1.5\nlr = -1.0\n");
        let err = parse(&src).unwrap_err();
        let keys: Vec<_> = err
            .problems
            .iter()
            .map(|p| p.key.clone().unwrap())
            .collect();
        assert_eq!(keys, ["runs", "optimizer.momentum", "optimizer.lr"]);
        assert_eq!(err.problems[0].position.line, 5);
        assert_eq!(err.problems[1].position.line, 7);
        assert!(err.to_string().contains("must be in [0, 1), got 1.5"));
        assert!(err.to_string().contains("got -1.0"));
    }

    #[test]
    fn bad_identifier_is_explained() {
        let err = parse("id = \"../x\"\nmodel = \"lenet5\"\nchallenge = \"digits\"\nepochs = 3\n")
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("spec.toml:1:") && text.contains("experiment identifier"),
            "{text}"
        );
    }

    #[test]
    fn fractions_must_sum_to_one() {
        let err = parse(&format!("{MINIMAL}[split]\ntrain = 0.5\ntest = 0.2\n")).unwrap_err();
        assert_eq!(err.problems[0].key.as_deref(), Some("split"));
    }

    #[test]
    fn syntax_errors_are_located() {
        let err = parse("id = \"e1\nepochs = 3\n").unwrap_err();
        assert_eq!(err.problems[0].position.line, 1, "{err}");
    }

    #[test]
    fn missing_required_key_is_reported() {
        let err = parse("id = \"e1\"\nmodel = \"m\"\nchallenge = \"c\"\n").unwrap_err();
        assert_eq!(err.to_string(), "spec.toml:1:1: missing field `epochs`");
    }
}
