//! Where two trainings of the same run part ways: the first epoch whose
//! parameters differ, and the first tensor that differs in it.

use crate::trainer::Trained;

/// The first difference between two trainings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divergence {
    /// Epoch, from 1.
    pub epoch: u32,
    /// Name of the first parameter that differs (in digest order), or a
    /// note when the two models do not even have the same parameters.
    pub tensor: String,
}

/// The first epoch and tensor where `a` and `b` differ; `None` when every
/// parameter is bit-identical after every epoch both trainings have.
pub fn first_divergence(a: &Trained, b: &Trained) -> Option<Divergence> {
    let (index, (first_a, first_b)) = a
        .snapshots
        .iter()
        .zip(&b.snapshots)
        .enumerate()
        .find(|(_, (x, y))| x.model != y.model)?;
    let tensor = first_a
        .params
        .iter()
        .zip(&first_b.params)
        .position(|(x, y)| x != y)
        .map(|i| {
            a.param_names
                .get(i)
                .cloned()
                .unwrap_or_else(|| format!("parameter {i}"))
        })
        .unwrap_or_else(|| "(the parameter layout)".into());
    Some(Divergence {
        epoch: index as u32 + 1,
        tensor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Snapshot;
    use reproml_core::run::sample_result;

    fn trained(epochs: &[[&str; 2]]) -> Trained {
        Trained {
            result: sample_result(reproml_core::Seed::new(1), 0.5, epochs.len() as u32),
            snapshots: epochs
                .iter()
                .map(|p| Snapshot {
                    model: p.concat(),
                    params: p.iter().map(|s| (*s).to_owned()).collect(),
                })
                .collect(),
            param_names: vec!["w".into(), "b".into()],
        }
    }

    #[test]
    fn identical_trainings_do_not_diverge() {
        let a = trained(&[["1", "2"], ["3", "4"]]);
        assert_eq!(first_divergence(&a, &a.clone()), None);
    }

    #[test]
    fn the_first_epoch_and_tensor_that_differ_are_named() {
        let a = trained(&[["1", "2"], ["3", "4"], ["5", "6"]]);
        let b = trained(&[["1", "2"], ["3", "X"], ["Y", "Z"]]);
        assert_eq!(
            first_divergence(&a, &b),
            Some(Divergence {
                epoch: 2,
                tensor: "b".into()
            })
        );
    }
}
