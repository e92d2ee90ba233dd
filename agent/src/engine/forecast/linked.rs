//! Linked consumption: a slot whose uses follow another slot's consumption on the same
//! appliance (a descaler tablet every 200 brews, a water filter every 150 litres).
//!
//! A descaler used every 25-35 days looks random by the calendar, but the coffee maker asks for
//! it every 200 brews: a household that brews more descales sooner, and one just back from
//! holiday later. Learning such a slot from its own intervals alone takes months and is always
//! a month late; following its driver is exact up to the household's habit.
//!
//! **Model.** The household (config) declares that one use comes every `every` units of the
//! driver's measure (its amount, or its count of uses). The driven slot keeps ([`LinkState`])
//! the driver's measure per day and what has gone through since its own last use. Then:
//!
//! * *Amount per use*: two things differ between households and the declaration, and they
//!   are learnt at different speeds. The household's own mean amount `μ` (its water is harder,
//!   it brews stronger) differs from the declared `every` by [`LINKED_MEAN_CV`] a priori
//!   (normal); around its own mean, one household's amounts spread by `σ` (it acts on the
//!   light within days), with a scaled inverse-χ² prior of [`LINKED_SPREAD_CV`] of `every`
//!   worth [`PRIOR_USES`] uses: `σ² = (K·(cv·every)² + Σ(x − x̄)²) / (K + n − 1)` from `n`
//!   amounts seen. Given `σ`, `μ`'s posterior is the precision-weighted mean of the
//!   declaration and the amounts seen: precision `1/τ² + n/σ²` (`τ` the mean's prior spread),
//!   so a household as regular as its light has its own mean from the first amount seen,
//!   while an irregular one leans on the declaration longer. (One spread for both, as before,
//!   left a household whose amounts vary by 3.5% a range of ±9% after four of them.)
//! * *Left to the next use* `R`: `P − since` once a use has been seen; before that the phase is
//!   unknown (the agent began watching part way through), so `R` is taken uniform on
//!   `[0, P − since]`: mean half of it, variance its square over 12.
//! * *The driver's consumption* over `h` days is normal, mean `r·h`, variance `d²·h + s²·h²`, from
//!   the daily-rate model on the driver's measure (`r`, `d` its day-to-day spread, `s` the rate's
//!   standard error): absences and weekly habits are the driver model's business.
//! * The `j`-th use from now comes once the driver has consumed `T_j = R + (j − 1)·P`, so
//!   `P(at least j uses within h) = Φ((r·h − E[T_j]) / √(Var D(h) + Var T_j))` with
//!   `Var T_j = Var R + (j − 1)·σ² + (j·ε)²`, `ε` the error of `μ` (shared by every use,
//!   the current one included).
//!
//! The policy reads this through the same questions it asks of any sparse slot
//! ([`SparseUse::prob_at_least`](super::sparse::SparseUse::prob_at_least)), so the reorder rule
//! is unchanged.

use serde::{Deserialize, Serialize};

use super::sparse::{Intervals, PRIOR_USES, SparseUse};
use super::{Forecast, UsageHistory};
use crate::clock::UnixMs;

/// How far a household's mean amount between two uses may be from the declared one, as a
/// share of it a priori (its water, its settings): the maker's figure is a middle, not a
/// measurement of this household.
pub const LINKED_MEAN_CV: f64 = 0.15;
/// The spread of one household's amounts between two uses around its own mean, as a share of
/// the declared amount a priori: the appliance says when (a light at 200 brews) and the
/// household acts on it within days; tighter than calendar intervals
/// ([`PRIOR_CV`](super::sparse::PRIOR_CV)).
pub const LINKED_SPREAD_CV: f64 = 0.08;

/// What a driven slot's use is counted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    /// The driver's amount, in its unit (millilitres of water through a filter).
    Amount,
    /// The driver's count of uses (brews).
    Uses,
}

/// A consumable used once per so much of another's consumption on the same appliance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrivenBy {
    /// The driving consumable (`coffee_beans`, `water`).
    pub consumable: String,
    /// One use of this consumable per `every` of the driver's measure.
    pub every: f64,
    /// What `every` counts.
    pub measure: Measure,
}

impl Measure {
    /// What one report of the driver (`amount` consumed, `uses` counted) adds to the measure.
    pub fn of(self, amount: f64, uses: u16) -> f64 {
        match self {
            Measure::Amount => amount.max(0.0),
            Measure::Uses => f64::from(uses),
        }
    }
}

/// What a driven slot knows of its driver, stored with the slot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LinkState {
    /// The driver's measure per day.
    pub driver: UsageHistory,
    /// The driver's measure since this slot's last use.
    pub since_use: f64,
    /// Whether `since_use` counts from a use seen (otherwise from when the agent began to
    /// watch, part way through an interval).
    pub phase_known: bool,
    /// Amounts of the driver's measure between two uses seen.
    pub seen: u32,
    /// Their mean.
    pub mean: f64,
    /// Their sum of squared deviations from the mean (Welford).
    pub m2: f64,
}

impl LinkState {
    /// The driver consumed `measure` at `at`.
    pub fn driven(&mut self, at: UnixMs, measure: f64) {
        if measure.is_finite() && measure > 0.0 {
            self.driver.record(at, measure);
            self.since_use += measure;
        } else {
            self.driver.observe(at);
        }
    }

    /// This slot was used: the amount since the last use is one more observation (when the
    /// last use was seen too), and counting starts again.
    pub fn used(&mut self) {
        if self.phase_known && self.since_use > 0.0 {
            self.seen += 1;
            let delta = self.since_use - self.mean;
            self.mean += delta / f64::from(self.seen);
            self.m2 += delta * (self.since_use - self.mean);
        }
        self.since_use = 0.0;
        self.phase_known = true;
    }

    /// The household's mean amount per use (posterior mean), the spread of one use around
    /// it, and the error of that mean (see the module's model).
    pub fn per_use(&self, declared: f64) -> (f64, f64, f64) {
        let n = f64::from(self.seen);
        let spread_prior = LINKED_SPREAD_CV * declared;
        let spread_var = (PRIOR_USES * spread_prior * spread_prior + self.m2)
            / (PRIOR_USES + (n - 1.0).max(0.0));
        let mean_prior_var = (LINKED_MEAN_CV * declared).powi(2);
        if self.seen == 0 || spread_var <= 0.0 || mean_prior_var <= 0.0 {
            return (declared, spread_var.sqrt(), mean_prior_var.sqrt());
        }
        let precision = 1.0 / mean_prior_var + n / spread_var;
        let mean = (declared / mean_prior_var + n * self.mean / spread_var) / precision;
        (mean, spread_var.sqrt(), precision.sqrt().recip())
    }
}

/// The sparse-use description of a driven slot declared used once per `every` of its driver's
/// measure: uses of `size` (in the slot's unit) following `driver`, the forecast of the
/// driver's measure per day. `last_use_day` is kept for display.
pub fn driven_use(
    every: f64,
    state: &LinkState,
    driver: &Forecast,
    size: f64,
    last_use_day: i64,
) -> SparseUse {
    let (per_use, per_use_sd, per_use_error) = state.per_use(every);
    let left = (per_use - state.since_use).max(0.0);
    // The current use's amount: its own spread and the error of the household's mean.
    let current_var = per_use_sd * per_use_sd + per_use_error * per_use_error;
    let (to_next, to_next_var) = if state.phase_known {
        (left, current_var)
    } else {
        (left / 2.0, left * left / 12.0 + current_var)
    };
    SparseUse {
        size,
        last_use_day,
        intervals: Intervals::Driven {
            to_next,
            to_next_sd: to_next_var.sqrt(),
            per_use,
            per_use_sd,
            per_use_error,
            rate: driver.rate_per_day,
            daily_sd: driver.daily_sd,
            rate_sd: driver.rate_sd,
        },
    }
}

/// P(at least `j` uses within `days`) for the parameters of [`Intervals::Driven`].
#[allow(clippy::too_many_arguments)]
pub(super) fn at_least(
    j: u32,
    days: f64,
    to_next: f64,
    to_next_sd: f64,
    per_use: f64,
    per_use_sd: f64,
    per_use_error: f64,
    (rate, daily_sd, rate_sd): (f64, f64, f64),
) -> f64 {
    if j == 0 {
        return 1.0;
    }
    if rate <= 0.0 || days <= 0.0 {
        return 0.0;
    }
    let k = f64::from(j - 1);
    let threshold = to_next + k * per_use;
    // The error of the household's mean is in `to_next` once and is shared by every later
    // use: (k + 1)·ε in all, of which `to_next_sd` carries ε independently.
    let var_threshold = to_next_sd * to_next_sd
        + k * per_use_sd * per_use_sd
        + ((k + 1.0).powi(2) - 1.0) * per_use_error * per_use_error;
    let var_demand = daily_sd * daily_sd * days + (rate_sd * days).powi(2);
    let sd = (var_threshold + var_demand).sqrt();
    let margin = rate * days - threshold;
    if sd <= 0.0 {
        return if margin >= 0.0 { 1.0 } else { 0.0 };
    }
    super::stats::normal_cdf(margin / sd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::DAY_MS;

    fn driver(rate: f64, daily_sd: f64) -> Forecast {
        let mut f = Forecast::from_rate(0, 0.0, rate, daily_sd, [1.0; 7]);
        f.daily_sd = daily_sd;
        f
    }

    fn brews() -> DrivenBy {
        DrivenBy {
            consumable: "coffee_beans".into(),
            every: 200.0,
            measure: Measure::Uses,
        }
    }

    #[test]
    fn the_households_mean_and_its_spread_are_learnt_apart() {
        let mut state = LinkState::default();
        // Before anything is seen: the declaration; one use spreads by 8% of it (16) around
        // a household mean that may be 15% (30) off the declaration.
        let (mean, sd, error) = state.per_use(200.0);
        assert_eq!(mean, 200.0);
        assert!((sd - 16.0).abs() < 1e-9);
        assert!((error - 30.0).abs() < 1e-9);
        // The first use only fixes the phase; two intervals of 240 and 260 follow.
        state.driven(0, 50.0);
        state.used();
        assert_eq!(state.seen, 0);
        for amount in [240.0, 260.0] {
            state.driven(DAY_MS, amount);
            state.used();
        }
        assert_eq!((state.seen, state.mean, state.m2), (2, 250.0, 200.0));
        // σ² = (2·16² + 200) / (2 + 1) = 237.3; the mean's precision 1/30² + 2/237.3, so
        // μ = (200/900 + 2·250/237.3) / 0.009538 = 244.2: two regular amounts outweigh the
        // declaration four to one; its error 1/√0.009538 = 10.2.
        let (mean, sd, error) = state.per_use(200.0);
        assert!((mean - 244.175).abs() < 1e-3, "{mean}");
        assert!((sd - 15.406).abs() < 1e-3, "{sd}");
        assert!((error - 10.239).abs() < 1e-3, "{error}");
        // A household as irregular as 200 and 300 keeps more of the declaration.
        let mut irregular = LinkState::default();
        irregular.used();
        for amount in [200.0, 300.0] {
            irregular.driven(DAY_MS, amount);
            irregular.used();
        }
        let (irregular_mean, irregular_sd, irregular_error) = irregular.per_use(200.0);
        assert!(irregular_mean < mean && irregular_sd > sd && irregular_error > error);
    }

    #[test]
    fn the_next_use_comes_when_the_driver_has_consumed_what_is_left() {
        // 150 of 200 brews gone, 5 brews a day: the next tablet is due in about 10 days.
        let mut state = LinkState::default();
        state.used();
        state.driven(0, 150.0);
        let use_ = driven_use(brews().every, &state, &driver(5.0, 1.0), 1.0, 0);
        let Intervals::Driven { to_next, .. } = use_.intervals else {
            panic!("not driven: {use_:?}");
        };
        assert_eq!(to_next, 50.0);
        let p = |days: f64, j: u32| use_.prob_at_least(j, 0, (days * DAY_MS as f64) as UnixMs);
        // Median about ten days out; a second tablet needs 50 more days.
        assert!((p(10.0, 1) - 0.5).abs() < 0.01, "{}", p(10.0, 1));
        // Spread: one use's 16 brews and the household mean's 30, √(16² + 30² + 5·1²):
        // Φ(∓25 / 34.07).
        assert!((p(5.0, 1) - 0.2316).abs() < 0.002, "{}", p(5.0, 1));
        assert!((p(15.0, 1) - 0.7684).abs() < 0.002, "{}", p(15.0, 1));
        // Two tablets need 250 brews: by day 30 (150 brews) Φ(−100 / √(2·16² + 2²·30² +
        // 30·1²)) = 0.060: the household's mean counts twice, once per tablet.
        assert!((p(30.0, 2) - 0.0601).abs() < 0.002, "{}", p(30.0, 2));
        assert!((p(50.0, 2) - 0.5).abs() < 0.05, "{}", p(50.0, 2));
        // The rate in the slot's unit: one tablet per 200 brews at 5 a day.
        assert!((use_.rate_per_day() - 0.025).abs() < 1e-12);
    }

    #[test]
    fn before_a_use_is_seen_the_phase_is_unknown() {
        // Watching began 50 brews ago: anything from now to 150 brews ahead.
        let mut state = LinkState::default();
        state.driven(0, 50.0);
        let use_ = driven_use(brews().every, &state, &driver(5.0, 1.0), 1.0, 0);
        let Intervals::Driven {
            to_next,
            to_next_sd,
            ..
        } = use_.intervals
        else {
            panic!("not driven");
        };
        assert_eq!(to_next, 75.0);
        // √(150²/12 + 16² + 30²) ≈ 55.
        assert!((to_next_sd - (150f64.powi(2) / 12.0 + 256.0 + 900.0).sqrt()).abs() < 1e-9);
        let known = {
            let mut s = state.clone();
            s.phase_known = true;
            driven_use(brews().every, &s, &driver(5.0, 1.0), 1.0, 0)
        };
        // Unknown phase: more likely sooner than when the 150 left are known.
        let week = 7 * DAY_MS;
        assert!(use_.prob_at_least(1, 0, week) > known.prob_at_least(1, 0, week) + 0.05);
    }

    #[test]
    fn a_household_that_brews_more_descales_sooner() {
        let mut state = LinkState::default();
        state.used();
        state.driven(0, 100.0);
        let light = driven_use(brews().every, &state, &driver(2.0, 0.5), 1.0, 0);
        let heavy = driven_use(brews().every, &state, &driver(8.0, 2.0), 1.0, 0);
        let fortnight = 14 * DAY_MS;
        // 100 brews to go: 112 in a fortnight at 8 a day, 28 at 2 (72 short: Φ(−72 / 34.1),
        // with no amount of this household's seen yet).
        assert!(heavy.prob_at_least(1, 0, fortnight) > 0.6);
        assert!(light.prob_at_least(1, 0, fortnight) < 0.02);
    }

    #[test]
    fn the_driver_counts_its_amount_or_its_uses() {
        let water = DrivenBy {
            consumable: "water".into(),
            every: 150_000.0,
            measure: Measure::Amount,
        };
        assert_eq!(water.measure.of(250.0, 1), 250.0);
        assert_eq!(brews().measure.of(18.0, 2), 2.0);
        assert_eq!(water.measure.of(-5.0, 0), 0.0);
    }
}
