//! Filtering (paper §IV-B): each labeller's decision on each bug, the
//! accepted set B_f, and inter-rater agreement.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A labeller's decision on a bug, with the paper's reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Decision {
    /// Rejected: the bug stops compilation, so no buggy artifact trains.
    RejectCompilationError,
    /// Rejected: the bug crashes, so no buggy run completes.
    RejectCrash,
    /// Rejected: caused by end-user code, not the framework.
    RejectUserCode,
    /// Outside the study's constraints: it needs hardware the study lacks (CPU-only study).
    ConstraintCpuOnly,
    /// Outside the study's constraints: no application of the study is affected.
    ConstraintNoApplication,
    /// Accepted: it touches gradients.
    AcceptGradients,
    /// Accepted: it touches mathematical functions.
    AcceptMath,
    /// Accepted for another reason (say which in the comment).
    AcceptOther,
}

const NAMES: [(Decision, &str); 8] = [
    (Decision::RejectCompilationError, "reject:compilation-error"),
    (Decision::RejectCrash, "reject:crash"),
    (Decision::RejectUserCode, "reject:user-code"),
    (Decision::ConstraintCpuOnly, "constraint:cpu-only"),
    (
        Decision::ConstraintNoApplication,
        "constraint:no-application",
    ),
    (Decision::AcceptGradients, "accept:gradients"),
    (Decision::AcceptMath, "accept:math"),
    (Decision::AcceptOther, "accept:other"),
];

impl Decision {
    /// Whether the bug goes on to the study.
    pub fn accepts(self) -> bool {
        matches!(
            self,
            Decision::AcceptGradients | Decision::AcceptMath | Decision::AcceptOther
        )
    }

    /// The decision's name.
    pub fn as_str(self) -> &'static str {
        NAMES
            .iter()
            .find(|(d, _)| *d == self)
            .map_or("", |(_, n)| n)
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Decision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NAMES
            .iter()
            .find(|(_, n)| *n == s)
            .map(|(d, _)| *d)
            .ok_or_else(|| {
                format!(
                    "unknown decision {s:?}; use one of {}",
                    NAMES.iter().map(|(_, n)| *n).collect::<Vec<_>>().join(", ")
                )
            })
    }
}

impl TryFrom<String> for Decision {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Decision> for String {
    fn from(d: Decision) -> String {
        d.as_str().to_owned()
    }
}

/// One labeller's decision on one bug.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Label {
    /// The bug's identifier in the corpus.
    pub bug: String,
    /// Who decided.
    pub labeller: String,
    /// What they decided.
    pub decision: Decision,
    /// Why, in their words.
    #[serde(default)]
    pub comment: String,
}

/// The latest decision of every labeller on every bug (a later label
/// replaces an earlier one of the same labeller).
pub fn latest(labels: &[Label]) -> BTreeMap<String, BTreeMap<String, Decision>> {
    let mut out: BTreeMap<String, BTreeMap<String, Decision>> = BTreeMap::new();
    for l in labels {
        out.entry(l.bug.clone())
            .or_default()
            .insert(l.labeller.clone(), l.decision);
    }
    out
}

/// B_f: the bugs every labeller who labelled them accepted.
pub fn accepted(labels: &[Label]) -> BTreeSet<String> {
    latest(labels)
        .into_iter()
        .filter(|(_, by)| by.values().all(|d| d.accepts()))
        .map(|(bug, _)| bug)
        .collect()
}

/// The bugs on which labellers disagree (to discuss, as the paper's authors did).
pub fn disagreements(labels: &[Label]) -> Vec<String> {
    latest(labels)
        .into_iter()
        .filter(|(_, by)| by.values().collect::<BTreeSet<_>>().len() > 1)
        .map(|(bug, _)| bug)
        .collect()
}

/// Cohen's κ of two raters' paired categorical ratings:
/// `(p_o − p_e) / (1 − p_e)`. `None` when there are no pairs or chance
/// agreement is already perfect (a single category).
pub fn cohen_kappa<T: Ord + Clone>(pairs: &[(T, T)]) -> Option<f64> {
    if pairs.is_empty() {
        return None;
    }
    let n = pairs.len() as f64;
    let observed = pairs.iter().filter(|(a, b)| a == b).count() as f64 / n;
    let mut first: BTreeMap<T, f64> = BTreeMap::new();
    let mut second: BTreeMap<T, f64> = BTreeMap::new();
    for (a, b) in pairs {
        *first.entry(a.clone()).or_default() += 1.0 / n;
        *second.entry(b.clone()).or_default() += 1.0 / n;
    }
    let expected: f64 = first
        .iter()
        .map(|(k, p)| p * second.get(k).copied().unwrap_or(0.0))
        .sum();
    (expected < 1.0).then(|| (observed - expected) / (1.0 - expected))
}

/// Fleiss' κ for items each rated by the same number of raters;
/// `counts[i][j]` is how many raters put item `i` in category `j`. `None`
/// when raters differ in number, fewer than two rate each item, or chance
/// agreement is perfect.
pub fn fleiss_kappa(counts: &[Vec<u32>]) -> Option<f64> {
    let raters = counts.first()?.iter().sum::<u32>();
    if raters < 2 || counts.iter().any(|row| row.iter().sum::<u32>() != raters) {
        return None;
    }
    let (items, n) = (counts.len() as f64, f64::from(raters));
    let categories = counts[0].len();
    let p_bar = counts
        .iter()
        .map(|row| (row.iter().map(|&c| f64::from(c * c)).sum::<f64>() - n) / (n * (n - 1.0)))
        .sum::<f64>()
        / items;
    let p_e: f64 = (0..categories)
        .map(|j| {
            let p = counts.iter().map(|row| f64::from(row[j])).sum::<f64>() / (items * n);
            p * p
        })
        .sum();
    (p_e < 1.0).then(|| (p_bar - p_e) / (1.0 - p_e))
}

/// Agreement of the labellers over the bugs they all labelled: Cohen's κ
/// for two labellers, Fleiss' κ for more. `None` when it is undefined.
pub fn agreement(labels: &[Label]) -> Option<(usize, f64)> {
    let by_bug = latest(labels);
    let labellers: BTreeSet<&String> = by_bug.values().flat_map(|by| by.keys()).collect();
    let common: Vec<&BTreeMap<String, Decision>> = by_bug
        .values()
        .filter(|by| by.len() == labellers.len())
        .collect();
    match labellers.len() {
        0 | 1 => None,
        2 => {
            let pairs: Vec<(Decision, Decision)> = common
                .iter()
                .map(|by| {
                    let mut d = by.values();
                    (
                        *d.next().unwrap_or(&Decision::AcceptOther),
                        *d.next().unwrap_or(&Decision::AcceptOther),
                    )
                })
                .collect();
            cohen_kappa(&pairs).map(|k| (2, k))
        }
        raters => {
            let counts: Vec<Vec<u32>> = common
                .iter()
                .map(|by| {
                    NAMES
                        .iter()
                        .map(|(d, _)| by.values().filter(|x| *x == d).count() as u32)
                        .collect()
                })
                .collect();
            fleiss_kappa(&counts).map(|k| (raters, k))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cohen_textbook_example() {
        // 50 items: both yes 20, yes/no 5, no/yes 10, both no 15 → p_o 0.7, p_e 0.5, κ 0.4.
        let mut pairs = Vec::new();
        pairs.extend(std::iter::repeat_n(("yes", "yes"), 20));
        pairs.extend(std::iter::repeat_n(("yes", "no"), 5));
        pairs.extend(std::iter::repeat_n(("no", "yes"), 10));
        pairs.extend(std::iter::repeat_n(("no", "no"), 15));
        assert!((cohen_kappa(&pairs).unwrap() - 0.4).abs() < 1e-12);
        assert_eq!(
            cohen_kappa(&[("a", "a"), ("a", "a")]),
            None,
            "one category: undefined"
        );
    }

    #[test]
    fn fleiss_textbook_example() {
        // Fleiss (1971)-style table: 10 items, 14 raters, 5 categories;
        // P̄ = 0.37802, P̄e = 0.21276, κ = 0.20993 (from the table by Fleiss' formulas).
        let table = [
            [0, 0, 0, 0, 14],
            [0, 2, 6, 4, 2],
            [0, 0, 3, 5, 6],
            [0, 3, 9, 2, 0],
            [2, 2, 8, 1, 1],
            [7, 7, 0, 0, 0],
            [3, 2, 6, 3, 0],
            [2, 5, 3, 2, 2],
            [6, 5, 2, 1, 0],
            [0, 2, 2, 3, 7],
        ];
        let counts: Vec<Vec<u32>> = table.iter().map(|r| r.to_vec()).collect();
        assert!((fleiss_kappa(&counts).unwrap() - 0.209_930_704_421_955).abs() < 1e-12);
        assert_eq!(
            fleiss_kappa(&[vec![2, 0], vec![1, 2]]),
            None,
            "unequal rater counts"
        );
    }

    fn label(bug: &str, labeller: &str, decision: &str) -> Label {
        Label {
            bug: bug.into(),
            labeller: labeller.into(),
            decision: decision.parse().unwrap(),
            comment: String::new(),
        }
    }

    #[test]
    fn accepted_set_disagreements_and_agreement() {
        let labels = vec![
            label("B1", "ana", "accept:gradients"),
            label("B1", "ben", "accept:gradients"),
            label("B2", "ana", "reject:crash"),
            label("B2", "ben", "reject:crash"),
            label("B3", "ana", "accept:math"),
            label("B3", "ben", "constraint:cpu-only"),
            label("B4", "ana", "reject:user-code"),
            // A later label replaces ben's earlier one.
            label("B4", "ben", "accept:other"),
            label("B4", "ben", "reject:user-code"),
        ];
        assert_eq!(accepted(&labels), BTreeSet::from(["B1".to_string()]));
        assert_eq!(disagreements(&labels), ["B3"]);
        // Pairs: (g,g) (c,c) (m,cpu) (u,u): p_o = 3/4; marginals a: g c m u, b: g c cpu u
        // p_e = 3 × (1/4 · 1/4) = 3/16; κ = (0.75 − 0.1875) / 0.8125.
        let (raters, k) = agreement(&labels).unwrap();
        assert_eq!(raters, 2);
        assert!((k - 0.5625 / 0.8125).abs() < 1e-12);
    }

    #[test]
    fn decisions_parse_and_refuse_unknown_names() {
        for (d, name) in NAMES {
            assert_eq!(name.parse::<Decision>().unwrap(), d);
        }
        assert!(
            "maybe"
                .parse::<Decision>()
                .unwrap_err()
                .contains("accept:gradients")
        );
    }
}
