//! Average ranks with tie counts (SciPy's `rankdata(method="average")`).

/// Ranks of `values` (1-based, ties get the mean of their ranks) and the
/// sizes of the groups of equal values, in ascending order of value.
///
/// Values must be finite (callers validate); `-0.0` and `0.0` are equal.
pub(crate) fn average_ranks(values: &[f64]) -> (Vec<f64>, Vec<usize>) {
    let mut order: Vec<usize> = (0..values.len()).collect();
    // Stable, and total on finite values.
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut ties = Vec::new();
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        // Positions start..end hold ranks start+1 ..= end; their mean:
        let rank = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        ties.push(end - start);
        start = end;
    }
    (ranks, ties)
}

/// `Σ (t³ − t)` over tie groups: the tie correction of both tests.
pub(crate) fn tie_term(ties: &[usize]) -> f64 {
    ties.iter()
        .map(|&t| {
            let t = t as f64;
            t * t * t - t
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_share_their_mean_rank() {
        // scipy.stats.rankdata([3, 2, 1, 2, 2, 2, 1]) = [7, 4.5, 1.5, 4.5, 4.5, 4.5, 1.5]
        let (r, t) = average_ranks(&[3.0, 2.0, 1.0, 2.0, 2.0, 2.0, 1.0]);
        assert_eq!(r, [7.0, 4.5, 1.5, 4.5, 4.5, 4.5, 1.5]);
        assert_eq!(t, [2, 4, 1]);
        assert_eq!(tie_term(&t), (8 - 2 + 64 - 4) as f64);
    }

    #[test]
    fn signed_zeros_tie() {
        let (r, t) = average_ranks(&[0.0, -0.0, 1.0]);
        assert_eq!(r, [1.5, 1.5, 3.0]);
        assert_eq!(t, [2, 1]);
    }
}
