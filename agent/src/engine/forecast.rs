//! Forecasting when a slot runs empty, from the consumption it has seen.
//!
//! Models sit behind [`ForecastModel`] so a better one can replace the default without touching
//! the engine. The default, [`DayOfWeekRate`], estimates a daily consumption rate (recent days
//! weigh more, each read through its weekday), a day-of-week pattern once a week is known, and
//! the day-to-day spread; days the slot ran empty count at least what their weekday expects,
//! and today so far counts once it passes a whole day's. It turns those into quantiles of
//! demand and of the time until empty.

use serde::{Deserialize, Serialize};

use crate::clock::{DAY_MS, HOUR_MS, UnixMs};

mod history;
pub mod linked;
pub mod sparse;
pub mod stats;

use history::KEEP_DAYS;
pub use history::{DayUsage, UsageHistory, UseRecord, day_of, weekday_of};
use sparse::{Intervals, SparseUse, UsePrior};

/// z-score of the 90th percentile of a normal distribution: P10/P90 bands.
const Z90: f64 = 1.281_551_6;
/// Days of history the default model looks at.
const WINDOW_DAYS: i64 = 28;
/// Furthest a forecast looks ahead.
const HORIZON_MS: UnixMs = 365 * DAY_MS;

/// What a model predicts for one slot at one time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forecast {
    /// When it was computed.
    pub computed_at: UnixMs,
    /// Level it started from.
    pub level: f64,
    /// Mean consumption per day, in the slot unit.
    pub rate_per_day: f64,
    /// Standard deviation of one day's consumption on a day of weekday factor 1: a day's
    /// variance is this squared times its factor ([`Forecast::demand_sd`]).
    pub daily_sd: f64,
    /// Standard error of `rate_per_day` (the rate is estimated from a few weeks): demand over
    /// `h` days is uncertain by `h · rate_sd` on top of the day-to-day spread.
    #[serde(default)]
    pub rate_sd: f64,
    /// Set for sparsely used slots: demand comes as whole uses, and the risk and the empty
    /// times come from the time between uses (see [`sparse`]).
    #[serde(default)]
    pub sparse: Option<SparseUse>,
    /// Multiplier of the rate per weekday (Monday first); all 1 until a pattern is known.
    pub weekday_factors: [f64; 7],
    /// Median predicted time the slot is empty, if within a year.
    pub empty_at: Option<UnixMs>,
    /// Early end of the range (10% chance of running out sooner).
    pub empty_earliest: Option<UnixMs>,
    /// Late end of the range (10% chance of lasting longer).
    pub empty_latest: Option<UnixMs>,
}

/// Demand over a period: mean and the 10th/90th percentiles.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Demand {
    /// 10th percentile.
    pub p10: f64,
    /// Mean (and median: the model is symmetric).
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
}

impl Forecast {
    /// Mean demand between `from` and `from + span`.
    fn mean_demand(&self, from: UnixMs, span: UnixMs) -> f64 {
        let mut total = 0.0;
        let mut t = from;
        let end = from + span;
        while t < end {
            let day_end = (day_of(t) + 1) as UnixMs * DAY_MS;
            let piece_end = day_end.min(end);
            let fraction = (piece_end - t) as f64 / DAY_MS as f64;
            total += self.rate_per_day * self.weekday_factors[weekday_of(day_of(t))] * fraction;
            t = piece_end;
        }
        total
    }

    /// Quantiles of what will be consumed between `from` and `from + span`.
    pub fn demand(&self, from: UnixMs, span: UnixMs) -> Demand {
        let mean = self.mean_demand(from, span);
        let spread = Z90 * self.demand_sd_of(mean, span);
        Demand {
            p10: (mean - spread).max(0.0),
            p50: mean,
            p90: mean + spread,
        }
    }

    /// Standard deviation of the demand between `from` and `from + span`: the days' own
    /// spread (taken as independent, so it grows with √h) and the error of the estimated rate
    /// (the same on every day, so it grows with h). Both count days by their weekday factor
    /// (`h` = the span's mean demand over the rate): a day's variance is `daily_sd²` times
    /// its factor, as for counts, so two quiet weekdays ahead are surer than a weekend.
    pub fn demand_sd(&self, from: UnixMs, span: UnixMs) -> f64 {
        self.demand_sd_of(self.mean_demand(from, span), span)
    }

    /// [`Forecast::demand_sd`] of a span whose mean demand is known already (`mean`): callers
    /// that add the span up day by day do not walk it again.
    pub fn demand_sd_of(&self, mean: f64, span: UnixMs) -> f64 {
        let h = if self.rate_per_day > 0.0 {
            mean / self.rate_per_day
        } else {
            span as f64 / DAY_MS as f64
        };
        (self.daily_sd * h.sqrt()).hypot(self.rate_sd * h)
    }

    /// A forecast from a rate, its spread and a weekday pattern, with the empty times worked out.
    /// The spread is never taken below a tenth of the rate: no model has seen enough days to
    /// claim more certainty than that.
    pub fn from_rate(now: UnixMs, level: f64, rate: f64, daily_sd: f64, factors: [f64; 7]) -> Self {
        Self::with_rate_error(now, level, rate, daily_sd, 0.0, factors)
    }

    /// [`Forecast::from_rate`] with the standard error of the rate.
    pub fn with_rate_error(
        now: UnixMs,
        level: f64,
        rate: f64,
        daily_sd: f64,
        rate_sd: f64,
        factors: [f64; 7],
    ) -> Self {
        let daily_sd = daily_sd.max(rate * 0.1);
        let mut forecast = Forecast {
            computed_at: now,
            level,
            rate_per_day: rate,
            daily_sd,
            rate_sd: rate_sd.max(0.0),
            sparse: None,
            weekday_factors: factors,
            empty_at: None,
            empty_earliest: None,
            empty_latest: None,
        };
        if rate > 0.0 {
            let (early, mid, late) = empty_times(&forecast, level, now);
            forecast.empty_at = mid;
            (forecast.empty_earliest, forecast.empty_latest) =
                widen_for_timing(now, early, mid, late);
        }
        forecast
    }

    /// A forecast for a sparsely used slot: the slot is empty at the first use its level cannot
    /// serve in full.
    pub fn from_sparse(now: UnixMs, level: f64, use_: SparseUse) -> Self {
        let rate = use_.rate_per_day();
        // One day's use: `size` with the chance of a use that day, else nothing.
        let chance = (rate / use_.size.max(f64::MIN_POSITIVE)).clamp(0.0, 1.0);
        let j = use_.uses_covered(level).saturating_add(1);
        Forecast {
            computed_at: now,
            level,
            rate_per_day: rate,
            daily_sd: use_.size * (chance * (1.0 - chance)).sqrt(),
            rate_sd: 0.0,
            sparse: Some(use_),
            weekday_factors: [1.0; 7],
            empty_at: use_.use_time_quantile(j, now, 0.5),
            empty_earliest: use_.use_time_quantile(j, now, 0.1),
            empty_latest: use_.use_time_quantile(j, now, 0.9),
        }
    }

    /// The same model output applied to another level (the stock at home rather than in the
    /// appliance), at `now`.
    pub fn rebuilt(&self, now: UnixMs, level: f64) -> Self {
        match self.sparse {
            Some(use_) => Self::from_sparse(now, level, use_),
            None => Self::with_rate_error(
                now,
                level,
                self.rate_per_day,
                self.daily_sd,
                self.rate_sd,
                self.weekday_factors,
            ),
        }
    }

    /// Days from `computed_at` until the median empty time.
    pub fn days_left(&self) -> Option<f64> {
        self.empty_at
            .map(|t| (t - self.computed_at) as f64 / DAY_MS as f64)
    }
}

/// A forecasting model: history and current level in, forecast out. Pure.
pub trait ForecastModel: Send + Sync {
    /// A short name for logs and reports.
    fn name(&self) -> &'static str;
    /// The forecast for a slot holding `level` at `now`, or `None` while too little is known.
    fn forecast(&self, history: &UsageHistory, level: f64, now: UnixMs) -> Option<Forecast>;

    /// [`forecast`](Self::forecast) knowing the days between uses the product declares; a
    /// model with no use for that ignores it.
    fn forecast_with_prior(
        &self,
        history: &UsageHistory,
        level: f64,
        now: UnixMs,
        prior: Option<UsePrior>,
    ) -> Option<Forecast> {
        let _ = prior;
        self.forecast(history, level, now)
    }
}

/// The default model: recency-weighted daily rate with a weekday pattern and a normal spread
/// whose variance follows the weekday's factor.
#[derive(Debug, Clone, Copy)]
pub struct DayOfWeekRate {
    /// Days after which a day's weight halves.
    pub half_life_days: f64,
    /// Complete days needed before the weekday pattern is used.
    pub weekday_min_days: usize,
}

impl Default for DayOfWeekRate {
    fn default() -> Self {
        Self {
            half_life_days: 7.0,
            weekday_min_days: 7,
        }
    }
}

impl ForecastModel for DayOfWeekRate {
    fn name(&self) -> &'static str {
        "day-of-week-rate"
    }

    fn forecast(&self, history: &UsageHistory, level: f64, now: UnixMs) -> Option<Forecast> {
        let today = day_of(now);
        let mut days = without_absences(&history.complete_days(today, WINDOW_DAYS));
        if days.is_empty() {
            return None;
        }
        self.uncensor(&mut days, history, today);
        let mut estimate = self.estimate(&days, today);
        // Today so far is a lower bound on today's use. Once it passes what a whole such day
        // is expected to take (four eggs for a Saturday brunch after weekdays of one), it is
        // news, and waiting for the day to end could leave no time for a pickup before the
        // next day's: it counts as a day of at least that much. Below that, it says nothing.
        let so_far = history.days.get(&today).map_or(0.0, |u| u.amount);
        if so_far > estimate.rate * estimate.factors[weekday_of(today)] {
            days.push((today, so_far));
            estimate = self.estimate(&days, today);
        }
        Some(Forecast::with_rate_error(
            now,
            level,
            estimate.rate,
            estimate.daily_sd,
            estimate.rate_sd,
            estimate.factors,
        ))
    }
}

/// What the daily model reads from the days: the rate, its error, a day's spread and the
/// weekday pattern.
struct Estimate {
    rate: f64,
    rate_sd: f64,
    daily_sd: f64,
    factors: [f64; 7],
}

impl DayOfWeekRate {
    /// The estimate from `days` (oldest first, seen from `today`).
    fn estimate(&self, days: &[(i64, f64)], today: i64) -> Estimate {
        let factors = weekday_factors(days, self.weekday_min_days);
        // After a lasting change of level, only the days since it tell the rate. The weekday
        // pattern is kept from the whole window, each side taken relative to its own level:
        // otherwise the weekdays since the change pass for big weekdays, and the rate, read
        // through them, for less than it is.
        let all_days = days;
        let shift = level_shift(all_days, &factors);
        let factors = match shift {
            Some(start) => {
                weekday_factors(&relative_to_sides(all_days, start), self.weekday_min_days)
            }
            None => factors,
        };
        let days = &all_days[shift.unwrap_or(0)..];
        let (rate, weights) = self.weighted_rate(days, &factors, today);
        // The weighted mean has the error of a plain mean of n_eff = (Σw)² / Σw² days.
        let sum_sq: f64 = days
            .iter()
            .map(|&(day, _)| 0.25f64.powf((today - day) as f64 / self.half_life_days))
            .sum();
        let n_eff = weights * weights / sum_sq;
        // A day's variance is daily_sd² times its weekday factor (see `demand_sd`): each
        // residual is weighed by its factor's inverse (floored, so a near-empty weekday cannot
        // blow up its one odd day).
        let daily_sd = if days.len() >= 2 {
            let ss: f64 = days
                .iter()
                .map(|&(day, x)| {
                    let factor = factors[weekday_of(day)];
                    (x - rate * factor).powi(2) / factor.max(MIN_VARIANCE_FACTOR)
                })
                .sum();
            (ss / (days.len() - 1) as f64).sqrt()
        } else {
            rate * 0.5
        };
        let rate_sd = daily_sd.max(rate * 0.1) / n_eff.sqrt();
        // What the rate's error proved to be in this window, when more than the formula says
        // (a habit that moves week to week: a shift rota, a change of job).
        let rate_sd = backtest_rate_sd(all_days, self.half_life_days, &factors, daily_sd)
            .map_or(rate_sd, |proved| proved.max(rate_sd));
        Estimate {
            rate,
            rate_sd,
            daily_sd,
            factors,
        }
    }

    /// The rate, recent days weighing more: the days' weighted use over their weighted weekday
    /// factors (a ratio estimator), so a window whose recent days are quiet weekdays does not
    /// pass for a quiet week, nor one missing a Sunday for a week without Sundays. With the
    /// sum of the weights.
    fn weighted_rate(&self, days: &[(i64, f64)], factors: &[f64; 7], today: i64) -> (f64, f64) {
        let (mut weighted, mut weights, mut expected) = (0.0, 0.0, 0.0);
        for &(day, amount) in days {
            let w = 0.5f64.powf((today - day) as f64 / self.half_life_days);
            weighted += w * amount;
            weights += w;
            expected += w * factors[weekday_of(day)];
        }
        (weighted / expected, weights)
    }

    /// Days the slot ran empty are censored: their use is what there was, not what was wanted
    /// (a Sunday that wanted four eggs and found one). Each is raised to what the other days
    /// expect of its weekday, never lowered; a big day that emptied the slot stays as big.
    /// Nothing to do, and no second pass, in a window without such a day.
    fn uncensor(&self, days: &mut [(i64, f64)], history: &UsageHistory, today: i64) {
        let starved = |day: i64| history.days.get(&day).is_some_and(|u| u.starved);
        if !days.iter().any(|&(day, _)| starved(day)) {
            return;
        }
        let others: Vec<(i64, f64)> = days.iter().copied().filter(|&(d, _)| !starved(d)).collect();
        if others.is_empty() {
            return;
        }
        let factors = weekday_factors(&others, self.weekday_min_days);
        let (rate, _) = self.weighted_rate(&others, &factors, today);
        for (day, amount) in days.iter_mut().filter(|(d, _)| starved(*d)) {
            *amount = amount.max(rate * factors[weekday_of(*day)]);
        }
    }
}

/// Most recent days a change of level is looked for in.
const SHIFT_MAX_DAYS: usize = 14;
/// Fewest days on each side of a change of level.
const SHIFT_MIN_DAYS: usize = 3;
/// How many standard errors apart the means before and after must be to call it a change of
/// level rather than noise (|t| of two means; well past what a month of noise reaches).
const SHIFT_T: f64 = 5.0;

/// Where a lasting change of level begins among the window's last [`SHIFT_MAX_DAYS`] days: the
/// split whose means (of the amounts over their weekday factors) differ the most in standard
/// errors, if by more than [`SHIFT_T`] and the days before it are at least a week. A household
/// that starts brewing four cups a day instead of one is then followed within days, where the
/// recency weighting took weeks.
fn level_shift(days: &[(i64, f64)], factors: &[f64; 7]) -> Option<usize> {
    let n = days.len();
    let last = SHIFT_MAX_DAYS.min(n.saturating_sub(7));
    if last < SHIFT_MIN_DAYS {
        return None;
    }
    let y = |i: usize| days[i].1 / factors[weekday_of(days[i].0)].max(MIN_VARIANCE_FACTOR);
    // Sums of y and y² over the whole window, then moved day by day from the before side to
    // the after side: one pass (this runs at every report).
    let (mut sum_b, mut sq_b) = (0.0, 0.0);
    for i in 0..n {
        let v = y(i);
        sum_b += v;
        sq_b += v * v;
    }
    let (mut sum_a, mut sq_a) = (0.0, 0.0);
    let mut best: Option<(f64, usize)> = None;
    for m in 1..=last {
        let moved = y(n - m);
        sum_b -= moved;
        sq_b -= moved * moved;
        sum_a += moved;
        sq_a += moved * moved;
        if m < SHIFT_MIN_DAYS {
            continue;
        }
        let (nb, na) = ((n - m) as f64, m as f64);
        let (mb, ma) = (sum_b / nb, sum_a / na);
        // Within-side squared deviations, pooled.
        let ss = (sq_b - nb * mb * mb).max(0.0) + (sq_a - na * ma * ma).max(0.0);
        let pooled = (ss / (nb + na - 2.0)).sqrt();
        // A floor on the spread: days that are all alike do not make any step "certain".
        let pooled = pooled.max(0.1 * mb.abs().max(ma.abs()));
        if pooled <= 0.0 {
            continue;
        }
        let t = (ma - mb).abs() / (pooled * (1.0 / na + 1.0 / nb).sqrt());
        // Every day since the split on the new side of the midway point: two big days and an
        // ordinary one are not a new habit.
        let mid = 0.5 * (ma + mb);
        let all_moved = || (n - m..n).all(|i| (y(i) - mid) * (ma - mb) > 0.0);
        if t > SHIFT_T && best.is_none_or(|(b, _)| t > b) && all_moved() {
            best = Some((t, n - m));
        }
    }
    best.map(|(_, start)| start)
}

/// The days with each one's use over the mean of its side of a change of level at `start`.
fn relative_to_sides(days: &[(i64, f64)], start: usize) -> Vec<(i64, f64)> {
    let (before, after) = days.split_at(start);
    let relative = |side: &[(i64, f64)]| {
        let mean = side.iter().map(|d| d.1).sum::<f64>() / side.len().max(1) as f64;
        side.iter()
            .map(move |&(day, amount)| (day, if mean > 0.0 { amount / mean } else { 0.0 }))
            .collect::<Vec<_>>()
    };
    let mut all = relative(before);
    all.extend(relative(after));
    all
}

/// The smallest weekday factor a day's variance is scaled by when the spread is estimated.
const MIN_VARIANCE_FACTOR: f64 = 0.25;

/// Zero days in a row shorter than this are ordinary (a weekend without coffee).
pub const MIN_ABSENCE_DAYS: usize = 3;
/// An absence still going on counts as one for this long; past it, not using the slot is the
/// new habit.
pub const MAX_ONGOING_ABSENCE_DAYS: usize = 21;
/// A run of zero days this unlikely under the slot's own share of zero days is an absence.
pub const ABSENCE_CHANCE: f64 = 0.01;

/// The days without the absences among them (the household away): a run of at least
/// [`MIN_ABSENCE_DAYS`] zero days whose chance, at the window's share `p₀` of zero days, is
/// below [`ABSENCE_CHANCE`] (`p₀ᴸ`), if use came back after it or it has lasted at most
/// [`MAX_ONGOING_ABSENCE_DAYS`]. Two weeks away in four then teach nothing about the rate
/// (`p₀ = ½`: seven days or more), where counted as days of no use they halved it just when
/// the household came back; a product used only at weekends keeps its five-day gaps
/// (`p₀ = 5/7`: fourteen or more).
pub fn without_absences(days: &[(i64, f64)]) -> Vec<(i64, f64)> {
    if days.is_empty() {
        return Vec::new();
    }
    let zeros = days.iter().filter(|d| d.1 <= 0.0).count();
    let share = zeros as f64 / days.len() as f64;
    if zeros == days.len() || share <= 0.0 {
        return days.to_vec();
    }
    let mut kept = Vec::with_capacity(days.len());
    let mut i = 0;
    while i < days.len() {
        if days[i].1 > 0.0 {
            kept.push(days[i]);
            i += 1;
            continue;
        }
        let end = days[i..]
            .iter()
            .position(|d| d.1 > 0.0)
            .map_or(days.len(), |n| i + n);
        let run = end - i;
        let ongoing = end == days.len();
        let absent = run >= MIN_ABSENCE_DAYS
            && share.powi(run as i32) < ABSENCE_CHANCE
            && (!ongoing || run <= MAX_ONGOING_ABSENCE_DAYS);
        if !absent {
            kept.extend_from_slice(&days[i..end]);
        }
        i = end;
    }
    kept
}

/// Days of history [`ongoing_absence`] is asked about: the forecast's window.
pub const ABSENCE_WINDOW_DAYS: i64 = WINDOW_DAYS;

/// The days of an absence going on now, if the last days are one: at least
/// [`MIN_ABSENCE_DAYS`] and at most [`MAX_ONGOING_ABSENCE_DAYS`] zero days at the end of `days`,
/// after at least a week of history, longer than any run of zero days in it, and whose chance
/// under the habit before it is below [`ABSENCE_CHANCE`]: the product over the run's days of
/// each weekday's share of zero days. A weekday's share is its own count pulled towards the
/// whole history's ([`ABSENCE_PRIOR_DAYS`] days of it), and the whole history's is counted
/// with one zero and one day of use added, so a short history is not sure of itself. A family
/// that had milk every day of nine is away after three days without; coffee brewed on half
/// the weekdays and every weekend is not after a week of weekdays without. The household away
/// orders nothing (what would come would wait at the door, or spoil); its return ends the
/// absence with its first use.
pub fn ongoing_absence(days: &[(i64, f64)]) -> Option<usize> {
    let run = days.iter().rev().take_while(|d| d.1 <= 0.0).count();
    if !(MIN_ABSENCE_DAYS..=MAX_ONGOING_ABSENCE_DAYS).contains(&run) {
        return None;
    }
    let (before, away) = days.split_at(days.len() - run);
    let longest_before = before
        .split(|d| d.1 > 0.0)
        .map(<[(i64, f64)]>::len)
        .max()
        .unwrap_or(0);
    if before.len() < 7 || run <= longest_before {
        return None;
    }
    let is_zero = |d: &&(i64, f64)| d.1 <= 0.0;
    let overall = (before.iter().filter(is_zero).count() + 1) as f64 / (before.len() + 2) as f64;
    let mut zeros = [0usize; 7];
    let mut seen = [0usize; 7];
    for day in before {
        let weekday = history::weekday_of(day.0);
        seen[weekday] += 1;
        zeros[weekday] += usize::from(day.1 <= 0.0);
    }
    let chance: f64 = away
        .iter()
        .map(|day| {
            let weekday = history::weekday_of(day.0);
            (zeros[weekday] as f64 + ABSENCE_PRIOR_DAYS * overall)
                / (seen[weekday] as f64 + ABSENCE_PRIOR_DAYS)
        })
        .product();
    (chance < ABSENCE_CHANCE).then_some(run)
}

/// How many days of the whole history's share of zero days a weekday's own share starts from.
pub const ABSENCE_PRIOR_DAYS: f64 = 2.0;

/// Days ahead the rate is checked over in [`backtest_rate_sd`]: a delivery time and a review.
const BACKTEST_DAYS: usize = 3;
/// Backtests needed before their errors count.
const BACKTEST_MIN: usize = 7;

/// The rate's error as it proved out in `days`: from each day after the first week, the rate
/// known then (recency-weighted as the model weighs it, times today's weekday factors) predicts
/// the next [`BACKTEST_DAYS`] days; their mean squared error, less what the days' own spread
/// (`daily_sd`) explains, is the rate's error over that span. `None` with too few backtests.
/// A stable habit leaves about nothing over; a rate that moves from week to week leaves the
/// moves, which the formula's error (a stable rate's) does not know of.
fn backtest_rate_sd(
    days: &[(i64, f64)],
    half_life_days: f64,
    factors: &[f64; 7],
    daily_sd: f64,
) -> Option<f64> {
    let h = BACKTEST_DAYS;
    let (mut sum_sq, mut n) = (0.0, 0usize);
    // The weighted sums before day k, carried from day to day: a forecast runs at every
    // report, so this stays one pass over the window.
    let (mut weighted, mut expected) = (0.0, 0.0);
    let day_decay = 0.5f64.powf(1.0 / half_life_days);
    for k in 1..days.len() {
        let gap = i32::try_from(days[k].0 - days[k - 1].0).unwrap_or(i32::MAX);
        let decay = day_decay.powi(gap);
        weighted = decay * (weighted + days[k - 1].1);
        expected = decay * (expected + factors[weekday_of(days[k - 1].0)]);
        if k < 7 || k + h > days.len() {
            continue;
        }
        let rate = weighted / expected;
        let ahead = &days[k..k + h];
        let predicted: f64 = ahead
            .iter()
            .map(|&(d, _)| rate * factors[weekday_of(d)])
            .sum();
        let actual: f64 = ahead.iter().map(|d| d.1).sum();
        sum_sq += (actual - predicted).powi(2);
        n += 1;
    }
    if n < BACKTEST_MIN {
        return None;
    }
    let h = h as f64;
    let excess = sum_sq / n as f64 - h * daily_sd * daily_sd;
    Some((excess.max(0.0)).sqrt() / h)
}

/// The weekday pattern: each weekday's mean use over the mean of all weekdays seen, shrunk
/// toward 1 by one pseudo-day (one odd Tuesday is not a habit), scaled to a mean of 1.
fn weekday_factors(days: &[(i64, f64)], min_days: usize) -> [f64; 7] {
    let mut factors = [1.0; 7];
    if days.len() < min_days {
        return factors;
    }
    let (mut sums, mut counts) = ([0.0; 7], [0usize; 7]);
    for &(day, amount) in days {
        sums[weekday_of(day)] += amount;
        counts[weekday_of(day)] += 1;
    }
    // The mean of the weekdays' means: a window holding more Mondays than Sundays does not
    // take the Mondays' level for the week's.
    let seen: Vec<f64> = (0..7)
        .filter(|&d| counts[d] > 0)
        .map(|d| sums[d] / counts[d] as f64)
        .collect();
    let overall = seen.iter().sum::<f64>() / seen.len().max(1) as f64;
    if overall <= 0.0 {
        return factors;
    }
    for (d, factor) in factors.iter_mut().enumerate() {
        *factor = (sums[d] / overall + 1.0) / (counts[d] as f64 + 1.0);
    }
    let mean = factors.iter().sum::<f64>() / 7.0;
    factors.map(|f| f / mean)
}

/// Standard deviation of when in the day a use happens, in days: uses fall anywhere in waking
/// hours, roughly uniform over a day (1/√12 ≈ 0.29).
const USE_TIMING_SD_DAYS: f64 = 0.29;

/// The P10-P90 empty range widened by the timing of uses within a day, which the daily demand
/// model does not see: the slot empties at the last use, not at a smooth crossing. Combined with
/// the demand spread as independent errors.
fn widen_for_timing(
    now: UnixMs,
    early: Option<UnixMs>,
    mid: Option<UnixMs>,
    late: Option<UnixMs>,
) -> (Option<UnixMs>, Option<UnixMs>) {
    let Some(mid) = mid else { return (early, late) };
    let timing = Z90 * USE_TIMING_SD_DAYS * DAY_MS as f64;
    let widen = |gap: UnixMs| (gap as f64).hypot(timing) as UnixMs;
    let early = early.map(|e| mid.saturating_sub(widen(mid.saturating_sub(e))).max(now));
    let late = late.map(|l| mid + widen(l.saturating_sub(mid)));
    (early, late)
}

/// (early, median, late) empty times: a day at a time, then to the hour within the day where
/// a threshold is crossed (the bench computes hundreds of thousands of these).
fn empty_times(
    f: &Forecast,
    level: f64,
    now: UnixMs,
) -> (Option<UnixMs>, Option<UnixMs>, Option<UnixMs>) {
    let crossed = |mean: f64, t: UnixMs, sign: f64| {
        let spread = Z90 * f.demand_sd_of(mean, t - now);
        mean + sign * spread >= level
    };
    let mut found: [Option<UnixMs>; 3] = [None; 3];
    let signs = [1.0, 0.0, -1.0];
    let (mut t, mut mean) = (now, 0.0);
    while t < now + HORIZON_MS && found[2].is_none() {
        let day_end = (day_of(t) + 1) as UnixMs * DAY_MS;
        let day_mean = mean + f.mean_demand(t, day_end - t);
        for (slot, sign) in found.iter_mut().zip(signs) {
            if slot.is_none() && crossed(day_mean, day_end, sign) {
                // Walk the day by the hour to find when.
                let (mut u, mut m) = (t, mean);
                while u < day_end {
                    let step = HOUR_MS.min(day_end - u);
                    m += f.mean_demand(u, step);
                    u += step;
                    if crossed(m, u, sign) {
                        break;
                    }
                }
                *slot = Some(u);
            }
        }
        mean = day_mean;
        t = day_end;
    }
    (found[0], found[1], found[2])
}

/// Baseline: the mean of the last `days` complete days.
#[derive(Debug, Clone, Copy)]
pub struct MovingAverage {
    /// Days averaged.
    pub days: i64,
}

impl Default for MovingAverage {
    fn default() -> Self {
        Self { days: 7 }
    }
}

impl ForecastModel for MovingAverage {
    fn name(&self) -> &'static str {
        "moving-average"
    }

    fn forecast(&self, history: &UsageHistory, level: f64, now: UnixMs) -> Option<Forecast> {
        let days = history.complete_days(day_of(now), self.days);
        let (mean, sd) = mean_sd(days.iter().map(|d| d.1))?;
        Some(Forecast::from_rate(now, level, mean, sd, [1.0; 7]))
    }
}

/// Simple exponential smoothing of the daily consumption.
#[derive(Debug, Clone, Copy)]
pub struct ExponentialSmoothing {
    /// Smoothing factor: the weight of the newest day.
    pub alpha: f64,
}

impl Default for ExponentialSmoothing {
    fn default() -> Self {
        Self { alpha: 0.3 }
    }
}

impl ForecastModel for ExponentialSmoothing {
    fn name(&self) -> &'static str {
        "exponential-smoothing"
    }

    fn forecast(&self, history: &UsageHistory, level: f64, now: UnixMs) -> Option<Forecast> {
        let days = history.complete_days(day_of(now), WINDOW_DAYS);
        let mut values = days.iter().map(|d| d.1);
        let mut smoothed = values.next()?;
        let mut squared_errors = 0.0;
        let mut n = 0usize;
        for x in values {
            squared_errors += (x - smoothed).powi(2);
            n += 1;
            smoothed += self.alpha * (x - smoothed);
        }
        let sd = if n > 0 {
            (squared_errors / n as f64).sqrt()
        } else {
            smoothed * 0.5
        };
        Some(Forecast::from_rate(now, level, smoothed, sd, [1.0; 7]))
    }
}

/// Teunter–Syntetos–Babai (TSB), Croston's method for intermittent demand: the chance of any
/// use on a day and the size of a day's use when there is one are smoothed separately, and the
/// chance also decays on days without use, so an item that stops being used fades out.
#[derive(Debug, Clone, Copy)]
pub struct Tsb {
    /// Smoothing of the chance of use.
    pub alpha: f64,
    /// Smoothing of the size of use.
    pub beta: f64,
}

impl Default for Tsb {
    fn default() -> Self {
        Self {
            alpha: 0.1,
            beta: 0.2,
        }
    }
}

impl ForecastModel for Tsb {
    fn name(&self) -> &'static str {
        "tsb"
    }

    fn forecast(&self, history: &UsageHistory, level: f64, now: UnixMs) -> Option<Forecast> {
        let days = history.complete_days(day_of(now), KEEP_DAYS);
        if days.is_empty() {
            return None;
        }
        let used: Vec<f64> = days.iter().map(|d| d.1).filter(|x| *x > 0.0).collect();
        let mut chance = used.len() as f64 / days.len() as f64;
        let mut size = used.first().copied().unwrap_or(0.0);
        for &(_, x) in &days {
            let any = if x > 0.0 { 1.0 } else { 0.0 };
            chance += self.alpha * (any - chance);
            if x > 0.0 {
                size += self.beta * (x - size);
            }
        }
        let rate = chance * size;
        // A day's use is "size with probability chance, else nothing".
        let sd = (chance * (1.0 - chance)).sqrt() * size;
        Some(Forecast::from_rate(now, level, rate, sd, [1.0; 7]))
    }
}

/// Sparse use from the time between uses (see [`sparse`]): the Poisson model until an
/// interval is seen, then the renewal model.
#[derive(Debug, Clone, Copy, Default)]
pub struct Intermittent;

impl ForecastModel for Intermittent {
    fn name(&self) -> &'static str {
        "intermittent"
    }

    fn forecast(&self, history: &UsageHistory, level: f64, now: UnixMs) -> Option<Forecast> {
        self.forecast_with_prior(history, level, now, None)
    }

    fn forecast_with_prior(
        &self,
        history: &UsageHistory,
        level: f64,
        now: UnixMs,
        prior: Option<UsePrior>,
    ) -> Option<Forecast> {
        let record = history.use_record(day_of(now))?;
        if record.exposure < 1 || record.size <= 0.0 {
            return None;
        }
        let n = record.intervals.len();
        let intervals = if n >= 1 {
            let (mean, sd) = mean_sd(record.intervals.iter().copied())?;
            // One interval shows no spread yet; the prior supplies it.
            let sd = if n >= 2 { sd } else { 0.0 };
            let n = n as u32;
            Intervals::Renewal {
                mean: prior.map_or(mean, |p| p.mean_interval(n, mean)),
                sd,
                n,
            }
        } else {
            // A use on the first, partial day is left out of `uses` but did happen: half a
            // use keeps a slot that has only that one from reading as never used.
            let (uses, exposure) = ((record.uses as f64).max(0.5), record.exposure as f64);
            let (uses, exposure) = prior.map_or((uses, exposure), |p| p.poisson(uses, exposure));
            Intervals::Poisson { uses, exposure }
        };
        let use_ = SparseUse {
            size: record.size,
            last_use_day: record.last_use_day,
            intervals,
        };
        Some(Forecast::from_sparse(now, level, use_))
    }
}

/// The default model: [`DayOfWeekRate`] for a slot used on most days, [`Intermittent`] for one
/// used on fewer than one day in [`Auto::sparse_share`] (after a week of observation), chosen
/// per slot from its history at every forecast.
#[derive(Debug, Clone, Copy)]
pub struct Auto {
    /// The model of regular use.
    pub regular: DayOfWeekRate,
    /// Share of days with use below which a slot counts as sparse.
    pub sparse_share: f64,
    /// Complete days observed before a slot may count as sparse.
    pub sparse_min_days: i64,
}

impl Default for Auto {
    fn default() -> Self {
        Self {
            regular: DayOfWeekRate::default(),
            // Below one day in four, whole uses dominate: a day's demand is mostly 0 or a
            // whole use, which a normal daily spread describes badly.
            sparse_share: 0.25,
            sparse_min_days: 7,
        }
    }
}

impl Auto {
    /// Whether the slot's history shows sparse use at `now`.
    pub fn is_sparse(&self, history: &UsageHistory, now: UnixMs) -> bool {
        self.is_sparse_with(history, now, None)
    }

    /// [`is_sparse`](Self::is_sparse) for a product that declares its days between uses:
    /// until the slot's own week of observation says otherwise, a product used less than
    /// one day in four by its declaration counts as sparse from the first use.
    pub fn is_sparse_with(
        &self,
        history: &UsageHistory,
        now: UnixMs,
        prior: Option<UsePrior>,
    ) -> bool {
        match history.use_record(day_of(now)) {
            Some(r) if r.exposure >= self.sparse_min_days => {
                (r.uses as f64) < self.sparse_share * r.exposure as f64
            }
            _ => prior.is_some_and(|p| p.every_days * self.sparse_share >= 1.0),
        }
    }
}

impl ForecastModel for Auto {
    fn name(&self) -> &'static str {
        "auto"
    }

    fn forecast(&self, history: &UsageHistory, level: f64, now: UnixMs) -> Option<Forecast> {
        self.forecast_with_prior(history, level, now, None)
    }

    fn forecast_with_prior(
        &self,
        history: &UsageHistory,
        level: f64,
        now: UnixMs,
        prior: Option<UsePrior>,
    ) -> Option<Forecast> {
        if self.is_sparse_with(history, now, prior)
            && let Some(f) = Intermittent.forecast_with_prior(history, level, now, prior)
        {
            return Some(f);
        }
        self.regular.forecast(history, level, now)
    }
}

/// The model the agent uses unless told otherwise.
pub fn default_model() -> Box<dyn ForecastModel> {
    Box::new(Auto::default())
}

fn mean_sd(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let values: Vec<f64> = values.collect();
    if values.is_empty() {
        return None;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let sd = if values.len() > 1 {
        (values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        mean * 0.5
    };
    Some((mean, sd))
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod model_tests;
