//! Run selections: which runs of an experiment a command trains or
//! compares, written one way everywhere — on the command line (`reproml
//! run --runs`, `reproml compare --runs`), in a study's `{runs}`
//! placeholder and by the Python runner (`python -m reproml.run --runs`).
//!
//! A selection is a comma-separated list of parts, each `N` (run N),
//! `A..B` (runs A to B, B excluded) or `A-B` (A to B, B included): `5`,
//! `0..20`, `3,7,9`, `0-3,8..10`. Run indices count from 0. It is never a
//! number of runs: commands that need a count take `--count`.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::RunIndex;

/// A set of run indices, kept as sorted, disjoint, non-adjacent ranges.
///
/// ```
/// use reproml_core::selection::RunSelection;
/// let s: RunSelection = "8..10,0-3,5".parse().unwrap();
/// assert_eq!(s.to_string(), "0-3,5,8-9");
/// assert_eq!(s.len(), 7);
/// assert!(s.contains(9) && !s.contains(4));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RunSelection(Vec<Range<u32>>);

/// A selection that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a run selection; use run indices from 0: N, A..B (B excluded), A-B (B included), or a comma-separated list such as 0-3,7,9"
)]
pub struct SelectionError(String);

impl RunSelection {
    /// Runs `0 … count − 1`.
    pub fn first(count: u32) -> Self {
        Self::from_ranges(std::iter::once(0..count).collect())
    }

    /// The runs of `indices`, in any order, repeats allowed.
    pub fn from_indices(indices: impl IntoIterator<Item = u32>) -> Self {
        Self::from_ranges(
            indices
                .into_iter()
                .filter_map(|i| Some(i..i.checked_add(1)?))
                .collect(),
        )
    }

    fn from_ranges(mut ranges: Vec<Range<u32>>) -> Self {
        ranges.retain(|r| !r.is_empty());
        ranges.sort_by_key(|r| r.start);
        let mut merged: Vec<Range<u32>> = Vec::with_capacity(ranges.len());
        for r in ranges {
            match merged.last_mut() {
                Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
                _ => merged.push(r),
            }
        }
        Self(merged)
    }

    /// True when run `run` is selected.
    pub fn contains(&self, run: u32) -> bool {
        self.0.iter().any(|r| r.contains(&run))
    }

    /// How many runs are selected.
    pub fn len(&self) -> usize {
        self.0.iter().map(|r| (r.end - r.start) as usize).sum()
    }

    /// True when no run is selected.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// One past the highest selected run (0 when empty).
    pub fn end(&self) -> u32 {
        self.0.last().map_or(0, |r| r.end)
    }

    /// The selected runs, ascending.
    pub fn iter(&self) -> impl Iterator<Item = RunIndex> + '_ {
        self.0.iter().flat_map(|r| r.clone().map(RunIndex::new))
    }

    /// The runs selected here that are also below `count`.
    pub fn below(&self, count: u32) -> Self {
        Self::from_ranges(
            self.0
                .iter()
                .map(|r| r.start.min(count)..r.end.min(count))
                .collect(),
        )
    }
}

impl FromStr for RunSelection {
    type Err = SelectionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || SelectionError(s.to_owned());
        // Digits only: `u32::from_str` would also take "+5", which the
        // Python runner refuses.
        let num = |t: &str| {
            let t = t.trim();
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            t.parse::<u32>().map_err(|_| bad())
        };
        let mut ranges = Vec::new();
        for part in s.split(',') {
            let range = if let Some((a, b)) = part.split_once("..") {
                num(a)?..num(b)?
            } else if let Some((a, b)) = part.split_once('-') {
                num(a)?..num(b)?.checked_add(1).ok_or_else(bad)?
            } else {
                let n = num(part)?;
                n..n.checked_add(1).ok_or_else(bad)?
            };
            if range.is_empty() {
                return Err(bad());
            }
            ranges.push(range);
        }
        Ok(Self::from_ranges(ranges))
    }
}

impl fmt::Display for RunSelection {
    /// The shortest form: `N` for one run, `A-B` (B included) for more,
    /// joined by commas.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if r.end - r.start == 1 {
                write!(f, "{}", r.start)?;
            } else {
                write!(f, "{}-{}", r.start, r.end - 1)?;
            }
        }
        Ok(())
    }
}

impl Serialize for RunSelection {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RunSelection {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_form_of_the_grammar() {
        let parse = |s: &str| s.parse::<RunSelection>().map(|r| r.to_string());
        assert_eq!(parse("5").unwrap(), "5");
        assert_eq!(parse("0..20").unwrap(), "0-19");
        assert_eq!(parse("2-4").unwrap(), "2-4");
        assert_eq!(parse("3,7,9").unwrap(), "3,7,9");
        assert_eq!(parse("0-3,2..6, 9").unwrap(), "0-5,9");
        for bad in [
            "",
            "x",
            "4..2",
            "3-1",
            "1,,2",
            "-1",
            "4294967295",
            "0..",
            "1.5",
        ] {
            assert!(bad.parse::<RunSelection>().is_err(), "{bad:?}");
        }
        let s: RunSelection = "0..10".parse().unwrap();
        assert_eq!(s.below(4).to_string(), "0-3");
        assert_eq!(s.end(), 10);
        assert_eq!(
            RunSelection::first(3)
                .iter()
                .map(RunIndex::get)
                .collect::<Vec<_>>(),
            [0, 1, 2]
        );
    }

    /// The cases the Python runner's `parse_runs` is checked against too.
    #[test]
    fn the_shared_vectors() {
        let text = include_str!("../tests/vectors/run-selections.json");
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        for case in v["cases"].as_array().unwrap() {
            let given = case["text"].as_str().unwrap();
            let got = given
                .parse::<RunSelection>()
                .ok()
                .map(|s| s.iter().map(RunIndex::get).collect::<Vec<u32>>());
            let want = case["runs"].as_array().map(|a| {
                a.iter()
                    .map(|r| r.as_u64().unwrap() as u32)
                    .collect::<Vec<u32>>()
            });
            assert_eq!(got, want, "{given:?}");
        }
    }

    proptest! {
        #[test]
        fn indices_survive_printing_and_parsing(indices in proptest::collection::btree_set(0u32..200, 1..60)) {
            let s = RunSelection::from_indices(indices.iter().copied());
            let back: RunSelection = s.to_string().parse().unwrap();
            prop_assert_eq!(&back, &s);
            let listed: Vec<u32> = back.iter().map(RunIndex::get).collect();
            prop_assert_eq!(listed, indices.into_iter().collect::<Vec<_>>());
            prop_assert_eq!(back.len(), s.len());
        }
    }
}
