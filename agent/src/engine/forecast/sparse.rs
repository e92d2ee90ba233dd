//! Sparse use (a descaler tablet a month, a filter a season): the time between uses, not a
//! daily rate.
//!
//! A daily-rate model sees such a slot as "0.03 tablets a day, give or take 0.2", and a normal
//! approximation of that orders a new box whenever one tablet is left. What matters is when the
//! next use comes. Two models, chosen by how much is known:
//!
//! * [`Intervals::Poisson`]: no interval between uses seen yet (one use day). Use days form a
//!   Poisson process (memoryless: what Croston and TSB assume) whose rate is uncertain: a
//!   Gamma(`uses`, `exposure`) posterior, so the number of use days in a span is negative
//!   binomial. The prior is the scale-invariant one (flat in the log of the rate): where
//!   observation starts is arbitrary, and Jeffreys' (half a use more) made one tablet in
//!   the first fortnight read as "a box may be gone within the week".
//! * [`Intervals::Renewal`]: one or more intervals seen. The next interval follows the Student
//!   t predictive of a normal model with unknown mean and variance, the variance with a prior
//!   worth [`PRIOR_INTERVALS`] intervals at a coefficient of variation of [`PRIOR_CV`]
//!   (`n + 2` degrees of freedom, scale `σₙ·√(1 + 1/n)`). It carries the uncertainty of the
//!   estimated mean and spread, so one or two similar intervals do not make the agent sure of
//!   the next; and the prior lets a single interval say "about monthly", where the
//!   memoryless model would keep a second box at home from the first use on. The time since
//!   the last use
//!   conditions it: a descaler used 20 days ago with intervals of 25-35 days is due soon, one
//!   used yesterday is not. A slot far past its usual interval falls back to the Poisson model,
//!   so an item that is no longer used fades out instead of always being "due".
//!
//! A use is taken at midday of its day (the history keeps days), which is also the continuity
//! correction of whole-day intervals.

use serde::{Deserialize, Serialize};

use super::stats::student_t_cdf;
use crate::clock::{DAY_MS, UnixMs};

/// Standard deviation of the difference of two uniform times of day, in days: the spread of an
/// interval measured in whole days even when uses are perfectly regular (1/√6).
const DAY_ROUNDING_SD: f64 = 0.41;
/// Past the mean interval by this many predictive scales, the renewal model gives way to the
/// Poisson one (the habit may have stopped).
const OVERDUE_SCALES: f64 = 3.0;
/// Intervals' worth of prior belief about their spread (ν₀ of a scaled inverse-χ² prior on
/// the variance). Three: the data (n − 1 degrees of freedom) outweigh it from the fifth
/// interval on.
pub const PRIOR_INTERVALS: u32 = 3;
/// Coefficient of variation of intervals a priori. Sparse consumables (descaler, filters,
/// dishwasher salt) are used on a schedule the appliance or the habit sets, give or take a
/// week in a month; 0.3 leaves room for less regular ones.
pub const PRIOR_CV: f64 = 0.3;
/// Intervals' worth of belief in a declared [`UsePrior`]: the household's own intervals
/// outweigh it from the third on.
pub const PRIOR_USES: f64 = 2.0;

/// Days between uses as a product's maker (or the household) declares them: "descale about
/// monthly". Worth [`PRIOR_USES`] intervals of that length: before any interval is seen, the
/// Poisson rate's Gamma posterior gains that many uses over that many intervals' exposure
/// (Gamma(uses + K, exposure + K·every)); once `n` are seen, the mean interval is
/// (K·every + n·mean) / (K + n). A tablet used on the third day then reads as "the next in
/// about a month", not "two more may go within days".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UsePrior {
    /// Expected days between uses.
    pub every_days: f64,
}

impl UsePrior {
    /// The Poisson stage's (uses, exposure) with the prior's pseudo-uses added.
    pub fn poisson(&self, uses: f64, exposure: f64) -> (f64, f64) {
        (uses + PRIOR_USES, exposure + PRIOR_USES * self.every_days)
    }

    /// The mean interval after `n` seen intervals of mean `mean`.
    pub fn mean_interval(&self, n: u32, mean: f64) -> f64 {
        let n = f64::from(n);
        (PRIOR_USES * self.every_days + n * mean) / (PRIOR_USES + n)
    }
}

/// Longest span searched for a quantile, in days.
const MAX_DAYS: f64 = 365.0;

/// How the time between uses is modelled.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Intervals {
    /// Use days as a Poisson process of uncertain rate.
    Poisson {
        /// Use days seen.
        uses: f64,
        /// Days observed.
        exposure: f64,
    },
    /// Intervals as draws from a normal of unknown mean and variance (Student t predictive).
    Renewal {
        /// Mean interval, in days.
        mean: f64,
        /// Sample standard deviation of the intervals, in days (0 with a single interval: the
        /// prior on the spread stands in).
        sd: f64,
        /// Intervals seen (at least 1).
        n: u32,
    },
    /// Uses that follow another slot's consumption ([`linked`](super::linked)), counted in the
    /// driver's measure.
    Driven {
        /// What the driver still has to consume before the next use (mean).
        to_next: f64,
        /// Its standard deviation.
        to_next_sd: f64,
        /// The driver's measure per use.
        per_use: f64,
        /// The spread of one use's amount.
        per_use_sd: f64,
        /// The standard error of `per_use`.
        per_use_error: f64,
        /// The driver's measure per day.
        rate: f64,
        /// Its day-to-day standard deviation.
        daily_sd: f64,
        /// The standard error of `rate`.
        rate_sd: f64,
    },
}

/// What is known of a sparsely used slot.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SparseUse {
    /// Mean amount used on a day with use, in the slot unit.
    pub size: f64,
    /// Day number of the last use.
    pub last_use_day: i64,
    /// The interval model.
    pub intervals: Intervals,
}

impl SparseUse {
    /// Mean consumption per day.
    pub fn rate_per_day(&self) -> f64 {
        match self.intervals {
            Intervals::Poisson { uses, exposure } => self.size * (uses) / exposure.max(1.0),
            Intervals::Renewal { mean, .. } => self.size / mean.max(1.0),
            Intervals::Driven { per_use, rate, .. } => {
                self.size * rate / per_use.max(f64::MIN_POSITIVE)
            }
        }
    }

    /// Uses that `stock` serves in full (a partial use is a stockout).
    pub fn uses_covered(&self, stock: f64) -> u32 {
        if self.size <= 0.0 {
            return u32::MAX;
        }
        (stock.max(0.0) / self.size + 1e-6)
            .floor()
            .min(f64::from(u32::MAX - 1)) as u32
    }

    /// Days from the last use (at its midday) to `now`.
    fn elapsed(&self, now: UnixMs) -> f64 {
        now as f64 / DAY_MS as f64 - (self.last_use_day as f64 + 0.5)
    }

    /// The model in force at `now`: renewal unless far overdue.
    fn model_at(&self, now: UnixMs) -> Intervals {
        match self.intervals {
            Intervals::Renewal { mean, sd, n } => {
                let e = self.elapsed(now);
                let (scale, _) = predictive(mean, sd, n);
                if e > mean + OVERDUE_SCALES * scale {
                    // Overdue: the gap so far is evidence of a lower rate.
                    Intervals::Poisson {
                        uses: f64::from(n),
                        exposure: mean * f64::from(n) + e,
                    }
                } else {
                    self.intervals
                }
            }
            other => other,
        }
    }

    /// The chance of at least `j` uses in `(now, now + span]`.
    pub fn prob_at_least(&self, j: u32, now: UnixMs, span: UnixMs) -> f64 {
        if j == 0 {
            return 1.0;
        }
        let days = span as f64 / DAY_MS as f64;
        // Uses are counted by day: a span has room for at most one on each day it touches.
        if days <= 0.0 || f64::from(j) > days.ceil() + 1.0 {
            return 0.0;
        }
        match self.model_at(now) {
            Intervals::Poisson { uses, exposure } => {
                negative_binomial_at_least(j, uses, exposure.max(1.0), days)
            }
            Intervals::Renewal { mean, sd, n } => {
                let e = self.elapsed(now).max(0.0);
                renewal_at_least(j, e, days, mean, sd, n)
            }
            Intervals::Driven {
                to_next,
                to_next_sd,
                per_use,
                per_use_sd,
                per_use_error,
                rate,
                daily_sd,
                rate_sd,
            } => super::linked::at_least(
                j,
                days,
                to_next,
                to_next_sd,
                per_use,
                per_use_sd,
                per_use_error,
                (rate, daily_sd, rate_sd),
            ),
        }
    }

    /// The time by which the `j`-th use from `now` has come with probability `q`, if within a
    /// year.
    pub fn use_time_quantile(&self, j: u32, now: UnixMs, q: f64) -> Option<UnixMs> {
        let at = |days: f64| (days * DAY_MS as f64) as UnixMs;
        if self.prob_at_least(j, now, at(MAX_DAYS)) < q {
            return None;
        }
        let (mut lo, mut hi) = (0.0, MAX_DAYS);
        for _ in 0..40 {
            let mid = 0.5 * (lo + hi);
            if self.prob_at_least(j, now, at(mid)) >= q {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        Some(now + at(hi))
    }
}

/// Scale and degrees of freedom of the Student t predictive of the next interval, from `n`
/// intervals of mean `mean` and sample standard deviation `sd` (ignored for one interval):
/// flat prior on the mean, scaled inverse-χ² prior on the variance (ν₀ = [`PRIOR_INTERVALS`],
/// σ₀ = [`PRIOR_CV`] of the mean).
fn predictive(mean: f64, sd: f64, n: u32) -> (f64, u32) {
    let n = n.max(1);
    let prior_sd = PRIOR_CV * mean.max(1.0);
    let dof = PRIOR_INTERVALS + n - 1;
    let var = (f64::from(PRIOR_INTERVALS) * prior_sd * prior_sd + f64::from(n - 1) * sd * sd)
        / f64::from(dof);
    let scale = var.sqrt().max(DAY_ROUNDING_SD) * (1.0 + 1.0 / f64::from(n)).sqrt();
    (scale, dof)
}

/// P(N ≥ j) for N negative binomial: a Poisson count over `days` whose rate is Gamma(`shape`,
/// `exposure`).
fn negative_binomial_at_least(j: u32, shape: f64, exposure: f64, days: f64) -> f64 {
    let p = exposure / (exposure + days);
    let q = 1.0 - p;
    let mut pmf = p.powf(shape);
    let mut below = 0.0;
    for i in 0..j {
        below += pmf;
        let i = f64::from(i);
        pmf *= (shape + i) / (i + 1.0) * q;
    }
    (1.0 - below).clamp(0.0, 1.0)
}

/// P(at least `j` uses within `days`), `e` days after the last one, intervals Student t.
fn renewal_at_least(j: u32, e: f64, days: f64, mean: f64, sd: f64, n: u32) -> f64 {
    let (scale, nu) = predictive(mean, sd, n);
    let cdf = |x: f64| student_t_cdf((x - mean) / scale, nu);
    let survive = 1.0 - cdf(e);
    if survive <= 1e-12 {
        return 1.0;
    }
    if j == 1 {
        return ((cdf(e + days) - cdf(e)) / survive).clamp(0.0, 1.0);
    }
    // Later uses: the rest of the current interval plus j - 1 whole ones, matched in mean and
    // spread (normal truncated at `e` for the first) and given the same tails...
    let (rest_mean, rest_var) = truncated_normal_rest(mean, scale, e);
    let k = f64::from(j - 1);
    let m = rest_mean + k * mean;
    let s = (rest_var + k * scale * scale).sqrt();
    let matched = student_t_cdf((days - m) / s, nu);
    // ...but no interval is shorter than a day, and all of them must fit in the span: the
    // chance that each does bounds the chance that their sum does (the matched t alone would
    // give seven uses in six days a few percent).
    let first = (cdf(e + days) - cdf(e)) / survive;
    let floor = cdf(0.5);
    let whole = if days <= 0.5 || floor >= 1.0 {
        0.0
    } else {
        ((cdf(days) - floor) / (1.0 - floor)).clamp(0.0, 1.0)
    };
    let bound = first * whole.powf(k);
    matched.min(bound).clamp(0.0, 1.0)
}

/// Mean and variance of X − e for X ~ N(mean, sd²) conditioned on X > e.
fn truncated_normal_rest(mean: f64, sd: f64, e: f64) -> (f64, f64) {
    let a = (e - mean) / sd;
    let tail = 1.0 - super::stats::normal_cdf(a);
    if tail <= 1e-12 {
        return (0.0, sd * sd * 1e-3);
    }
    let density = (-0.5 * a * a).exp() / (2.0 * std::f64::consts::PI).sqrt();
    let lambda = density / tail;
    let mean_x = mean + sd * lambda;
    let var = sd * sd * (1.0 + a * lambda - lambda * lambda).max(1e-6);
    ((mean_x - e).max(0.0), var)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn negative_binomial_sums_to_one_and_matches_poisson_when_certain() {
        // A huge exposure pins the rate: Poisson(1) has P(N >= 1) = 1 - e^-1.
        let p = negative_binomial_at_least(1, 100_000.0, 100_000.0, 1.0);
        assert!((p - (1.0 - (-1.0f64).exp())).abs() < 1e-4, "{p}");
        assert_eq!(negative_binomial_at_least(0, 3.0, 10.0, 5.0), 1.0);
    }

    fn monthly(n: u32) -> SparseUse {
        SparseUse {
            size: 1.0,
            last_use_day: 100,
            intervals: Intervals::Renewal {
                mean: 30.0,
                sd: 3.0,
                n,
            },
        }
    }

    #[test]
    fn a_regular_use_is_unlikely_right_after_the_last_and_likely_when_due() {
        let f = monthly(8);
        let day = |d: f64| ((100.0 + d) * DAY_MS as f64) as UnixMs;
        let soon = f.prob_at_least(1, day(2.0), 3 * DAY_MS);
        let due = f.prob_at_least(1, day(28.0), 3 * DAY_MS);
        assert!(soon < 1e-3, "{soon}");
        // The spread prior (a CV of 0.3 worth three intervals) still widens eight intervals
        // of sd 3 days a little: around a third of the next interval's mass, not more.
        assert!(due > 0.25, "{due}");
        // A second use within days of the first is less likely still.
        assert!(f.prob_at_least(2, day(28.0), 3 * DAY_MS) < due * 0.1);
        // Even with the heavy tails of two intervals seen, six more uses in six days are not
        // a risk.
        assert!(monthly(2).prob_at_least(7, day(28.0), 6 * DAY_MS) < 1e-6);
    }

    #[test]
    fn one_interval_is_enough_to_expect_the_next_use_later_rather_than_any_day() {
        // Uses on day 70 and day 100, i.e. one 30-day interval: the day after the second use,
        // the memoryless model of the same two uses gives a use in the coming week about a
        // one-in-three chance; the renewal model, knowing that uses come about monthly, a few
        // percent, and two uses in that week none.
        let now = (101.0 * DAY_MS as f64) as UnixMs;
        let week = 6 * DAY_MS;
        let renewal = monthly(1);
        let poisson = SparseUse {
            intervals: Intervals::Poisson {
                uses: 2.0,
                exposure: 31.0,
            },
            ..renewal
        };
        let (r, p) = (
            renewal.prob_at_least(1, now, week),
            poisson.prob_at_least(1, now, week),
        );
        assert!(r < 0.05 && p > 0.25, "renewal {r}, poisson {p}");
        assert!(renewal.prob_at_least(2, now, week) < 1e-3);
        // Near the month, the use is due (one interval leaves the exact day open).
        let due = (128.0 * DAY_MS as f64) as UnixMs;
        let d = renewal.prob_at_least(1, due, week);
        assert!(d > 5.0 * r && d > 0.2, "due {d}, right after {r}");
    }

    #[test]
    fn fewer_intervals_seen_mean_more_caution() {
        let day = (120.5 * DAY_MS as f64) as UnixMs;
        let few = monthly(2).prob_at_least(1, day, 3 * DAY_MS);
        let many = monthly(20).prob_at_least(1, day, 3 * DAY_MS);
        assert!(few > many, "{few} {many}");
    }

    #[test]
    fn far_overdue_falls_back_to_a_falling_rate() {
        let f = monthly(8);
        let day = |d: i64| (100 + d) as UnixMs * DAY_MS;
        let later = f.prob_at_least(1, day(200), 3 * DAY_MS);
        let much_later = f.prob_at_least(1, day(400), 3 * DAY_MS);
        assert!(later < 0.5 && much_later < later, "{later} {much_later}");
    }

    proptest! {
        #[test]
        fn probabilities_are_monotone(
            mean in 2.0f64..60.0, sd in 0.0f64..20.0, n in 1u32..20,
            elapsed in 0.0f64..90.0, j in 1u32..4, span in 0.5f64..20.0,
        ) {
            let f = SparseUse {
                size: 1.0,
                last_use_day: 1000,
                intervals: Intervals::Renewal { mean, sd, n },
            };
            let now = ((1000.5 + elapsed) * DAY_MS as f64) as UnixMs;
            let ms = |d: f64| (d * DAY_MS as f64) as UnixMs;
            let p = f.prob_at_least(j, now, ms(span));
            prop_assert!((0.0..=1.0).contains(&p));
            prop_assert!(f.prob_at_least(j, now, ms(span + 1.0)) >= p - 1e-9);
            prop_assert!(f.prob_at_least(j + 1, now, ms(span)) <= p + 1e-9);
            // No more use days than days.
            prop_assert!(f.prob_at_least(span.ceil() as u32 + 2, now, ms(span)) < 1e-9);
            let poisson = SparseUse { intervals: Intervals::Poisson { uses: n as f64, exposure: mean * n as f64 }, ..f };
            let q = poisson.prob_at_least(j, now, ms(span));
            prop_assert!(poisson.prob_at_least(j, now, ms(span + 1.0)) >= q - 1e-9);
            prop_assert!(poisson.prob_at_least(j + 1, now, ms(span)) <= q + 1e-9);
        }
    }
}
