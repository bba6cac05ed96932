//! Planning a study: how many runs per side a comparison needs to detect
//! an effect of a given size, by simulating the study's own test.
//!
//! Each simulated study draws two samples of n runs (from a normal
//! distribution of the given spread, or by resampling pilot runs), shifts
//! the second by the effect, and applies the two-sided Mann-Whitney U test
//! exactly as `reproml compare` does (SciPy's `auto` method). Power is the
//! share of studies whose p-value passes `α / m`: the threshold Holm's
//! procedure applies to the smallest of m p-values, so the power holds
//! whatever the study's other tests show. Pure: the draws come from a
//! seeded ChaCha8 generator, so a plan repeats exactly.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::special::normal_quantile;
use crate::{MannWhitneyOptions, StatsError, mann_whitney_u, vargha_delaney_a12};

/// The effect to detect.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Effect {
    /// Vargha-Delaney A12 of the treatment over the baseline (≠ 0.5).
    A12(f64),
    /// A shift of the treatment's values, in the metric's units (≠ 0).
    Shift(f64),
}

/// Where the run-to-run spread comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Spread {
    /// A normal distribution with this standard deviation.
    Normal {
        /// Standard deviation of a metric over runs.
        sd: f64,
    },
    /// Pilot runs' values, resampled with replacement.
    Pilot {
        /// The values (at least 2, not all equal).
        values: Vec<f64>,
    },
}

/// How to plan.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PlanOptions {
    /// Significance level of the study (before the correction).
    pub alpha: f64,
    /// Tests in the study's Holm family (comparisons × 4 metrics).
    pub tests: usize,
    /// Power wanted, e.g. 0.8.
    pub power: f64,
    /// Simulated studies per sample size.
    pub simulations: usize,
    /// Largest number of runs per side considered.
    pub max_runs: usize,
    /// Seed of the simulation.
    pub seed: u64,
}

impl Default for PlanOptions {
    fn default() -> Self {
        Self {
            alpha: 0.05,
            tests: 4,
            power: 0.8,
            simulations: 2000,
            max_runs: 500,
            seed: 1,
        }
    }
}

/// The power at one sample size.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PowerPoint {
    /// Runs per side.
    pub runs: usize,
    /// Share of simulated studies that detect the effect.
    pub power: f64,
}

/// A plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The effect as a shift in the metric's units.
    pub shift: f64,
    /// The effect as A12 (of the distribution simulated).
    pub a12: f64,
    /// The per-test level the simulated test must pass: α / m.
    pub level: f64,
    /// Runs per side needed for the power asked; `None` when even
    /// `max_runs` falls short.
    pub runs: Option<usize>,
    /// Every sample size simulated, ascending.
    pub curve: Vec<PowerPoint>,
    /// The normal approximation (Noether 1987) for the same A12, level
    /// and power, as a cross-check.
    pub noether_runs: f64,
}

fn check(
    name: &'static str,
    ok: bool,
    allowed: &'static str,
    value: f64,
) -> Result<(), StatsError> {
    if ok {
        Ok(())
    } else {
        Err(StatsError::BadParameter {
            name,
            allowed,
            value,
        })
    }
}

/// A uniform draw in (0, 1) from 53 random bits.
fn uniform(rng: &mut ChaCha8Rng) -> f64 {
    ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
}

/// A standard normal draw (Box-Muller; one of the pair is enough here).
fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    let (u, v) = (uniform(rng), uniform(rng));
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

impl Spread {
    fn draw(&self, rng: &mut ChaCha8Rng) -> f64 {
        match self {
            Spread::Normal { sd } => sd * standard_normal(rng),
            Spread::Pilot { values } => values[(rng.next_u64() % values.len() as u64) as usize],
        }
    }

    fn validate(&self) -> Result<(), StatsError> {
        match self {
            Spread::Normal { sd } => check(
                "sd",
                sd.is_finite() && *sd > 0.0,
                "a positive finite number",
                *sd,
            ),
            Spread::Pilot { values } => {
                crate::check_sample("pilot", values)?;
                let spread = values.iter().any(|v| *v != values[0]);
                check(
                    "pilot",
                    values.len() >= 2 && spread,
                    "at least two runs that are not all equal",
                    values.len() as f64,
                )
            }
        }
    }

    /// The shift whose A12 over this distribution is `a12`.
    fn shift_for(&self, a12: f64) -> f64 {
        match self {
            // X − Y ~ N(δ, 2σ²), so A12 = Φ(δ / (σ√2)).
            Spread::Normal { sd } => std::f64::consts::SQRT_2 * sd * normal_quantile(a12),
            Spread::Pilot { values } => {
                // The empirical A12 of pilot + δ over pilot grows with δ:
                // bisect for the smallest |δ| that reaches the target.
                let sign = if a12 > 0.5 { 1.0 } else { -1.0 };
                let target = if a12 > 0.5 { a12 } else { 1.0 - a12 };
                let range = values.iter().fold(f64::MIN, |m, v| m.max(*v))
                    - values.iter().fold(f64::MAX, |m, v| m.min(*v));
                let reach = |d: f64| {
                    let moved: Vec<f64> = values.iter().map(|v| v + d).collect();
                    vargha_delaney_a12(&moved, values).unwrap_or(0.5)
                };
                let (mut lo, mut hi) = (0.0, range * 2.0 + f64::EPSILON);
                for _ in 0..100 {
                    let mid = 0.5 * (lo + hi);
                    if reach(mid) >= target {
                        hi = mid;
                    } else {
                        lo = mid;
                    }
                }
                sign * hi
            }
        }
    }

    /// The A12 of this distribution shifted by `shift` over itself.
    fn a12_of(&self, shift: f64) -> f64 {
        match self {
            Spread::Normal { sd } => crate::special::ndtr(shift / (std::f64::consts::SQRT_2 * sd)),
            Spread::Pilot { values } => {
                let moved: Vec<f64> = values.iter().map(|v| v + shift).collect();
                vargha_delaney_a12(&moved, values).unwrap_or(0.5)
            }
        }
    }
}

/// The share of `simulations` studies of `runs` runs per side whose
/// two-sided Mann-Whitney p-value is below `level`, when the treatment is
/// shifted by `shift`.
///
/// ```
/// use reproml_stats::power::{Spread, power_at};
/// let spread = Spread::Normal { sd: 1.0 };
/// let strong = power_at(&spread, 2.0, 20, 0.05, 500, 1);
/// let none = power_at(&spread, 0.0, 20, 0.05, 500, 1);
/// assert!(strong > 0.95 && none < 0.1);
/// ```
pub fn power_at(
    spread: &Spread,
    shift: f64,
    runs: usize,
    level: f64,
    simulations: usize,
    seed: u64,
) -> f64 {
    // Common random numbers: simulated study i draws its two sides from
    // streams 2i and 2i+1 of one seed, so its samples of n runs are the
    // first n of its samples of n+1, and the power curve is smooth in n.
    let mut x = vec![0.0; runs];
    let mut y = vec![0.0; runs];
    let mut detected = 0usize;
    for i in 0..simulations as u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(2 * i);
        for v in &mut x {
            *v = spread.draw(&mut rng);
        }
        rng.set_stream(2 * i + 1);
        rng.set_word_pos(0);
        for v in &mut y {
            *v = spread.draw(&mut rng) + shift;
        }
        // Samples with no variance at all (a pilot of few distinct values)
        // have no test; they count as not detected, as in a report.
        if let Ok(r) = mann_whitney_u(&x, &y, &MannWhitneyOptions::default())
            && r.pvalue < level
        {
            detected += 1;
        }
    }
    detected as f64 / simulations.max(1) as f64
}

/// Runs per side by the normal approximation of Noether (1987, JASA 82,
/// "Sample size determination for some common nonparametric tests"):
/// `n = (z_{1−level/2} + z_{power})² / (6 (A12 − ½)²)` per side, for two
/// equal sides.
pub fn noether_runs(a12: f64, level: f64, power: f64) -> f64 {
    let z = normal_quantile(1.0 - level / 2.0) + normal_quantile(power);
    z * z / (6.0 * (a12 - 0.5).powi(2))
}

/// Plans a study: the fewest runs per side for which the simulated test
/// detects `effect` with the power asked, at Holm's strictest level α/m.
pub fn plan(effect: Effect, spread: &Spread, opts: &PlanOptions) -> Result<Plan, StatsError> {
    spread.validate()?;
    check(
        "alpha",
        opts.alpha > 0.0 && opts.alpha < 1.0,
        "strictly between 0 and 1",
        opts.alpha,
    )?;
    check(
        "power",
        opts.power > 0.0 && opts.power < 1.0,
        "strictly between 0 and 1",
        opts.power,
    )?;
    check("tests", opts.tests >= 1, "at least 1", opts.tests as f64)?;
    check(
        "simulations",
        (100..=1_000_000).contains(&opts.simulations),
        "between 100 and 1,000,000",
        opts.simulations as f64,
    )?;
    check(
        "max_runs",
        (2..=100_000).contains(&opts.max_runs),
        "between 2 and 100,000",
        opts.max_runs as f64,
    )?;
    let shift = match effect {
        Effect::A12(a) => {
            check(
                "a12",
                a > 0.0 && a < 1.0 && a != 0.5,
                "strictly between 0 and 1, not 0.5",
                a,
            )?;
            spread.shift_for(a)
        }
        Effect::Shift(d) => {
            check("shift", d.is_finite() && d != 0.0, "a non-zero number", d)?;
            d
        }
    };
    let a12 = spread.a12_of(shift);
    let level = opts.alpha / opts.tests as f64;
    let mut curve = Vec::new();
    let at = |n: usize, curve: &mut Vec<PowerPoint>| {
        let power = power_at(spread, shift, n, level, opts.simulations, opts.seed);
        curve.push(PowerPoint { runs: n, power });
        power
    };
    // Double until the power is reached, then bisect between the last two.
    let (mut lo, mut hi) = (1usize, 2usize);
    let runs = loop {
        if at(hi, &mut curve) >= opts.power {
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if at(mid, &mut curve) >= opts.power {
                    hi = mid;
                } else {
                    lo = mid;
                }
            }
            break Some(hi);
        }
        if hi >= opts.max_runs {
            break None;
        }
        lo = hi;
        hi = (hi * 2).min(opts.max_runs);
    };
    curve.sort_by_key(|p| p.runs);
    curve.dedup_by_key(|p| p.runs);
    Ok(Plan {
        shift,
        a12,
        level,
        runs,
        curve,
        noether_runs: noether_runs(a12, level, opts.power),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shift_of_an_a12_inverts_for_both_spreads() {
        let normal = Spread::Normal { sd: 0.01 };
        let d = normal.shift_for(0.7);
        assert!((normal.a12_of(d) - 0.7).abs() < 1e-9, "{d}");
        let pilot = Spread::Pilot {
            values: (0..20).map(|i| 0.9 + f64::from(i) * 0.001).collect(),
        };
        let d = pilot.shift_for(0.75);
        assert!(d > 0.0 && pilot.a12_of(d) >= 0.75, "{d}");
        assert!(pilot.shift_for(0.25) < 0.0);
    }

    #[test]
    fn bad_plans_are_refused() {
        let spread = Spread::Normal { sd: 1.0 };
        let o = PlanOptions::default();
        assert!(plan(Effect::A12(0.5), &spread, &o).is_err());
        assert!(plan(Effect::Shift(0.0), &spread, &o).is_err());
        assert!(plan(Effect::A12(0.7), &Spread::Normal { sd: 0.0 }, &o).is_err());
        let flat = Spread::Pilot {
            values: vec![0.9; 5],
        };
        assert!(plan(Effect::A12(0.7), &flat, &o).is_err());
        let tests = PlanOptions { tests: 0, ..o };
        assert!(plan(Effect::A12(0.7), &spread, &tests).is_err());
    }

    #[test]
    fn an_effect_out_of_reach_says_so() {
        let o = PlanOptions {
            max_runs: 8,
            simulations: 200,
            ..PlanOptions::default()
        };
        let p = plan(Effect::A12(0.55), &Spread::Normal { sd: 1.0 }, &o).unwrap();
        assert_eq!(p.runs, None);
        assert_eq!(p.curve.last().map(|c| c.runs), Some(8));
    }

    #[test]
    fn the_plan_agrees_with_noether_s_normal_approximation_for_large_n() {
        // A12 = 0.6 at level 0.05/4: Noether gives about 186 runs a side.
        // The simulated power there must be 0.8 within a few simulation
        // standard errors (0.8·0.2/3000 → 0.0073), and the searched n near it.
        let spread = Spread::Normal { sd: 1.0 };
        let level = 0.05 / 4.0;
        let n = noether_runs(0.6, level, 0.8);
        assert!((n - 185.9).abs() < 0.5, "{n}");
        let shift = spread.shift_for(0.6);
        let power = power_at(&spread, shift, n.round() as usize, level, 3000, 7);
        assert!((power - 0.8).abs() < 0.03, "{power}");
        let o = PlanOptions {
            simulations: 1000,
            ..PlanOptions::default()
        };
        let p = plan(Effect::A12(0.6), &spread, &o).unwrap();
        let runs = p.runs.unwrap() as f64;
        assert!((runs / n - 1.0).abs() < 0.1, "{runs} vs {n}");
        // Every point of the curve below the answer falls short of it.
        assert!(
            p.curve
                .iter()
                .filter(|c| (c.runs as f64) < runs)
                .all(|c| c.power < 0.8)
        );
    }
}
