//! Forecasting when a slot runs empty, from the consumption it has seen.
//!
//! Models sit behind [`ForecastModel`] so a better one can replace the default without touching
//! the engine. The default, [`DayOfWeekRate`], estimates a daily consumption rate (recent days
//! weigh more), a day-of-week pattern once two weeks are known, and the day-to-day spread; it
//! turns those into quantiles of demand and of the time until empty.

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
    /// Standard deviation of one day's consumption.
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
        let spread = Z90 * self.demand_sd(span);
        Demand {
            p10: (mean - spread).max(0.0),
            p50: mean,
            p90: mean + spread,
        }
    }

    /// Standard deviation of the demand over `span`: the days' own spread (taken as
    /// independent, so it grows with √h) and the error of the estimated rate (the same on every
    /// day, so it grows with h).
    pub fn demand_sd(&self, span: UnixMs) -> f64 {
        let h = span as f64 / DAY_MS as f64;
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

/// The default model: recency-weighted daily rate with a weekday pattern and a normal spread.
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
        let days = without_absences(&history.complete_days(today, WINDOW_DAYS));
        if days.is_empty() {
            return None;
        }
        let (mut weighted, mut weights) = (0.0, 0.0);
        for &(day, amount) in &days {
            let w = 0.5f64.powf((today - day) as f64 / self.half_life_days);
            weighted += w * amount;
            weights += w;
        }
        let rate = weighted / weights;
        // The weighted mean has the error of a plain mean of n_eff = (Σw)² / Σw² days.
        let sum_sq: f64 = days
            .iter()
            .map(|&(day, _)| 0.25f64.powf((today - day) as f64 / self.half_life_days))
            .sum();
        let n_eff = weights * weights / sum_sq;
        let factors = weekday_factors(&days, self.weekday_min_days);
        let daily_sd = if days.len() >= 2 {
            let ss: f64 = days
                .iter()
                .map(|&(day, x)| (x - rate * factors[weekday_of(day)]).powi(2))
                .sum();
            (ss / (days.len() - 1) as f64).sqrt()
        } else {
            rate * 0.5
        };
        let rate_sd = daily_sd.max(rate * 0.1) / n_eff.sqrt();
        // What the rate's error proved to be in this window, when more than the formula says
        // (a habit that moves week to week: a shift rota, a change of job).
        let rate_sd = backtest_rate_sd(&days, self.half_life_days, &factors, daily_sd)
            .map_or(rate_sd, |proved| proved.max(rate_sd));
        Some(Forecast::with_rate_error(
            now, level, rate, daily_sd, rate_sd, factors,
        ))
    }
}

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
    let (mut weighted, mut weights) = (0.0, 0.0);
    let day_decay = 0.5f64.powf(1.0 / half_life_days);
    for k in 1..days.len() {
        let gap = i32::try_from(days[k].0 - days[k - 1].0).unwrap_or(i32::MAX);
        let decay = day_decay.powi(gap);
        weighted = decay * (weighted + days[k - 1].1);
        weights = decay * (weights + 1.0);
        if k < 7 || k + h > days.len() {
            continue;
        }
        let rate = weighted / weights;
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

fn weekday_factors(days: &[(i64, f64)], min_days: usize) -> [f64; 7] {
    let mut factors = [1.0; 7];
    if days.len() < min_days {
        return factors;
    }
    let overall = days.iter().map(|d| d.1).sum::<f64>() / days.len() as f64;
    if overall <= 0.0 {
        return factors;
    }
    let (mut sums, mut counts) = ([0.0; 7], [0usize; 7]);
    for &(day, amount) in days {
        sums[weekday_of(day)] += amount;
        counts[weekday_of(day)] += 1;
    }
    // Shrink each weekday toward 1 by one pseudo-observation: one odd Tuesday is not a habit.
    for d in 0..7 {
        let n = counts[d] as f64;
        let raw = if counts[d] > 0 {
            sums[d] / n / overall
        } else {
            1.0
        };
        factors[d] = (n * raw + 1.0) / (n + 1.0);
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
        let spread = Z90 * f.demand_sd(t - now);
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
mod tests {
    use super::*;

    const T0: UnixMs = 20_000 * DAY_MS; // a Monday is 4 days after a Thursday: any day works

    fn history(days: i64, per_day: impl Fn(i64) -> f64) -> UsageHistory {
        let mut h = UsageHistory::default();
        h.observe(T0);
        for d in 1..=days {
            h.record(T0 + d as UnixMs * DAY_MS + 8 * HOUR_MS, per_day(d));
        }
        h
    }

    #[test]
    fn steady_use_gives_the_rate_and_a_sensible_empty_time() {
        let h = history(10, |_| 30.0);
        let now = T0 + 11 * DAY_MS;
        let f = DayOfWeekRate::default().forecast(&h, 300.0, now).unwrap();
        assert!((f.rate_per_day - 30.0).abs() < 1e-9);
        let days = f.days_left().unwrap();
        assert!((days - 10.0).abs() < 0.1, "{days}");
        assert!(f.empty_earliest.unwrap() <= f.empty_at.unwrap());
        assert!(f.empty_at.unwrap() <= f.empty_latest.unwrap());
    }

    #[test]
    fn nothing_is_forecast_before_a_complete_day() {
        let mut h = UsageHistory::default();
        h.record(T0 + HOUR_MS, 9.0);
        assert!(
            DayOfWeekRate::default()
                .forecast(&h, 100.0, T0 + 5 * HOUR_MS)
                .is_none()
        );
    }

    #[test]
    fn weekend_heavy_use_raises_weekend_factors() {
        let h = history(28, |d| {
            if weekday_of(day_of(T0) + d) >= 5 {
                90.0
            } else {
                10.0
            }
        });
        let f = DayOfWeekRate::default()
            .forecast(&h, 1000.0, T0 + 29 * DAY_MS)
            .unwrap();
        assert!(
            f.weekday_factors[5] > 2.0 && f.weekday_factors[0] < 0.6,
            "{:?}",
            f.weekday_factors
        );
    }

    #[test]
    fn noisier_use_widens_the_range() {
        let steady = history(14, |_| 30.0);
        let noisy = history(14, |d| if d % 2 == 0 { 10.0 } else { 50.0 });
        let now = T0 + 15 * DAY_MS;
        let width = |h: &UsageHistory| {
            let f = DayOfWeekRate::default().forecast(h, 300.0, now).unwrap();
            f.empty_latest.unwrap() - f.empty_earliest.unwrap()
        };
        assert!(width(&noisy) > 2 * width(&steady));
    }

    #[test]
    fn starved_days_do_not_drag_the_rate_down() {
        let mut h = history(10, |_| 30.0);
        for d in 11..=13 {
            h.mark_starved(T0 + d * DAY_MS);
        }
        let f = DayOfWeekRate::default()
            .forecast(&h, 300.0, T0 + 14 * DAY_MS)
            .unwrap();
        assert!((f.rate_per_day - 30.0).abs() < 1e-9);
    }

    #[test]
    fn demand_quantiles_are_ordered_and_add_up_over_days() {
        let now = T0 + 11 * DAY_MS;
        let h = history(10, |d| if d % 2 == 0 { 25.0 } else { 35.0 });
        let f = DayOfWeekRate::default().forecast(&h, 300.0, now).unwrap();
        let first = f.demand(now, DAY_MS);
        let second = f.demand(now + DAY_MS, DAY_MS);
        let both = f.demand(now, 2 * DAY_MS);
        assert!(first.p10 <= first.p50 && first.p50 <= first.p90);
        assert!((both.p50 - first.p50 - second.p50).abs() < 1e-6);
        // Spread grows with the square root of time, so less than the sum of the two days'.
        assert!(both.p90 - both.p50 < (first.p90 - first.p50) + (second.p90 - second.p50));
    }
}

#[cfg(test)]
mod model_tests {
    use super::*;

    const T0: UnixMs = 20_000 * DAY_MS;

    fn history(days: i64, per_day: impl Fn(i64) -> f64) -> UsageHistory {
        let mut h = UsageHistory::default();
        h.observe(T0);
        for d in 1..=days {
            h.record(T0 + d as UnixMs * DAY_MS + 8 * HOUR_MS, per_day(d));
        }
        h
    }

    #[test]
    fn every_model_finds_a_steady_rate() {
        let h = history(20, |_| 30.0);
        let now = T0 + 21 * DAY_MS;
        let models: [&dyn ForecastModel; 4] = [
            &DayOfWeekRate::default(),
            &MovingAverage::default(),
            &ExponentialSmoothing::default(),
            &Tsb::default(),
        ];
        for model in models {
            let f = model.forecast(&h, 300.0, now).unwrap();
            assert!(
                (f.rate_per_day - 30.0).abs() < 0.5,
                "{}: {}",
                model.name(),
                f.rate_per_day
            );
            let days = f.days_left().unwrap();
            assert!((days - 10.0).abs() < 0.3, "{}: {days}", model.name());
        }
    }

    #[test]
    fn tsb_fits_sparse_use_better_than_its_zero_days_suggest() {
        // A descaler tablet every tenth day.
        let h = history(50, |d| if d % 10 == 0 { 1.0 } else { 0.0 });
        let f = Tsb::default().forecast(&h, 3.0, T0 + 51 * DAY_MS).unwrap();
        // TSB jumps a little right after a use (the last day was one): near 0.1, never 0.
        assert!((f.rate_per_day - 0.1).abs() < 0.06, "{}", f.rate_per_day);
    }

    #[test]
    fn the_default_model_picks_intervals_for_sparse_use_and_rates_otherwise() {
        let monthly = history(100, |d| if d % 30 == 0 { 1.0 } else { 0.0 });
        let daily = history(100, |_| 30.0);
        let now = T0 + 101 * DAY_MS;
        let auto = Auto::default();
        assert!(auto.is_sparse(&monthly, now) && !auto.is_sparse(&daily, now));
        let f = auto.forecast(&monthly, 1.0, now).unwrap();
        let Some(sparse) = f.sparse else {
            panic!("not sparse: {f:?}")
        };
        // Two intervals of 30 days, the last use on day 90: the slot holds one use, so it
        // empties at the second use from now, about 49 days away.
        assert!(matches!(sparse.intervals, Intervals::Renewal { n: 2, .. }));
        assert!((f.rate_per_day - 1.0 / 30.0).abs() < 1e-9);
        let days = f.days_left().unwrap();
        assert!((days - 49.0).abs() < 1.5, "{days}");
        assert!(f.empty_earliest.unwrap() < f.empty_at.unwrap());
        assert!(f.empty_at.unwrap() < f.empty_latest.unwrap());
        assert!(auto.forecast(&daily, 300.0, now).unwrap().sparse.is_none());
    }

    #[test]
    fn a_week_away_teaches_nothing_about_the_rate() {
        // 14 days of 10 g, a week away, back for 3 days of 10 g.
        let h = history(24, |d| if (15..=21).contains(&d) { 0.0 } else { 10.0 });
        let now = T0 + 25 * DAY_MS;
        let days = h.complete_days(day_of(now), WINDOW_DAYS);
        assert_eq!(days.len(), 24);
        let kept = without_absences(&days);
        assert_eq!(kept.len(), 17, "the seven days away are left out");
        assert!(kept.iter().all(|d| d.1 == 10.0));
        let f = DayOfWeekRate::default().forecast(&h, 300.0, now).unwrap();
        assert!((f.rate_per_day - 10.0).abs() < 1e-9, "{}", f.rate_per_day);
    }

    #[test]
    fn gaps_that_are_the_habit_are_not_absences() {
        // Used on weekends only (two days in seven): five zero days in a row are the habit.
        let days: Vec<(i64, f64)> = (0..28)
            .map(|d| (d, if d % 7 >= 5 { 50.0 } else { 0.0 }))
            .collect();
        assert_eq!(without_absences(&days), days);
        // Every other day: a run of three zeros is not unlikely enough (0.5³ = 0.125).
        let mut alternate: Vec<(i64, f64)> = (0..20)
            .map(|d| (d, if d % 2 == 0 { 10.0 } else { 0.0 }))
            .collect();
        alternate[10].1 = 0.0;
        assert_eq!(without_absences(&alternate), alternate);
    }

    #[test]
    fn an_absence_under_way_counts_for_three_weeks_then_becomes_the_habit() {
        let away = |since: i64| move |d: i64| if d >= since { 0.0 } else { 10.0 };
        // Five days away so far: the rate is still the household's 10 g a day.
        let now = T0 + 26 * DAY_MS;
        let f = DayOfWeekRate::default()
            .forecast(&history(25, away(21)), 300.0, now)
            .unwrap();
        assert!((f.rate_per_day - 10.0).abs() < 1e-9, "{}", f.rate_per_day);
        // Twenty-two days without use: the slot is no longer used as it was.
        let now = T0 + 30 * DAY_MS;
        let f = DayOfWeekRate::default()
            .forecast(&history(29, away(8)), 300.0, now)
            .unwrap();
        assert!(f.rate_per_day < 1.0, "{}", f.rate_per_day);
    }

    #[test]
    fn a_declared_interval_is_worth_two_intervals_of_its_length() {
        let prior = UsePrior { every_days: 30.0 };
        // No interval yet: two pseudo-uses over two months of pseudo-exposure.
        assert_eq!(prior.poisson(1.0, 3.0), (3.0, 63.0));
        // One interval of 10 days: (2·30 + 10) / 3.
        assert!((prior.mean_interval(1, 10.0) - 70.0 / 3.0).abs() < 1e-12);
        // Ten intervals of 60 days: the household's rhythm dominates, (60 + 600) / 12 = 55.
        assert!((prior.mean_interval(10, 60.0) - 55.0).abs() < 1e-12);
    }

    #[test]
    fn a_product_declared_rare_is_forecast_as_rare_from_its_first_use() {
        // A tablet on day 2 of observation, asked on day 4: too early for the slot's own
        // history to say it is rare (a week is needed), and one use in three days reads as a
        // daily habit or, by intervals alone, as "another within 5 days: 62%".
        let h = history(3, |d| if d == 2 { 1.0 } else { 0.0 });
        let now = T0 + 4 * DAY_MS;
        let auto = Auto::default();
        assert!(auto.forecast(&h, 2.0, now).unwrap().sparse.is_none());
        let alone = Intermittent.forecast(&h, 2.0, now).unwrap().sparse.unwrap();
        assert_eq!(
            alone.intervals,
            Intervals::Poisson {
                uses: 1.0,
                exposure: 3.0
            }
        );
        let five_days = 5 * DAY_MS;
        // Gamma(1, 3) rate: P(N ≥ 1 in 5 days) = 1 − (3/8)¹.
        assert!((alone.prob_at_least(1, now, five_days) - 0.625).abs() < 1e-9);
        let prior = Some(UsePrior { every_days: 30.0 });
        let f = auto.forecast_with_prior(&h, 2.0, now, prior).unwrap();
        let sparse = f.sparse.expect("declared rare: sparse at once");
        assert_eq!(
            sparse.intervals,
            Intervals::Poisson {
                uses: 3.0,
                exposure: 63.0
            }
        );
        // Gamma(3, 63): 1 − (63/68)³ = 0.2048.
        let p = 1.0 - (63.0f64 / 68.0).powi(3);
        assert!((sparse.prob_at_least(1, now, five_days) - p).abs() < 1e-9);
        assert!((p - 0.2048).abs() < 1e-4);
    }

    #[test]
    fn the_households_own_intervals_outweigh_the_declared_one() {
        // Used every 60 days where the box says 30: five intervals seen.
        let h = history(400, |d| if d % 60 == 0 { 1.0 } else { 0.0 });
        let now = T0 + 401 * DAY_MS;
        let prior = Some(UsePrior { every_days: 30.0 });
        let f = Auto::default()
            .forecast_with_prior(&h, 1.0, now, prior)
            .unwrap();
        let Some(SparseUse {
            intervals: Intervals::Renewal { mean, n: 5, .. },
            ..
        }) = f.sparse
        else {
            panic!("{f:?}")
        };
        // (2·30 + 5·60) / 7.
        assert!((mean - 360.0 / 7.0).abs() < 1e-9, "{mean}");
    }

    #[test]
    fn a_wrong_declaration_gives_way_to_a_week_of_daily_use() {
        let daily = history(10, |_| 1.0);
        let now = T0 + 11 * DAY_MS;
        let prior = Some(UsePrior { every_days: 30.0 });
        let f = Auto::default()
            .forecast_with_prior(&daily, 5.0, now, prior)
            .unwrap();
        assert!(f.sparse.is_none(), "{f:?}");
        assert!((f.rate_per_day - 1.0).abs() < 1e-9);
    }

    #[test]
    fn a_single_use_on_the_first_day_still_reads_as_use() {
        // Paired and used the same (partial) day, then nothing: sparse, and not "never used",
        // or a slot that one use emptied would never be reordered.
        let mut h = UsageHistory::default();
        h.observe(T0 + HOUR_MS);
        h.record(T0 + 8 * HOUR_MS, 1.0);
        let now = T0 + 20 * DAY_MS;
        let f = Auto::default().forecast(&h, 0.0, now).unwrap();
        let sparse = f.sparse.expect("sparse");
        assert!(f.rate_per_day > 0.0, "{f:?}");
        assert!(
            sparse.prob_at_least(1, now, 30 * DAY_MS) > 0.3,
            "{sparse:?}"
        );
    }

    #[test]
    fn a_sparse_forecast_survives_storage() {
        let monthly = history(100, |d| if d % 30 == 0 { 1.0 } else { 0.0 });
        let f = Auto::default()
            .forecast(&monthly, 1.0, T0 + 101 * DAY_MS)
            .unwrap();
        let stored = serde_json::to_vec(&f).unwrap();
        let back: Forecast = serde_json::from_slice(&stored).unwrap();
        assert_eq!(back, f);
        // Forecasts stored before sparse use was modelled still load.
        let mut old = serde_json::to_value(&f).unwrap();
        let fields = old.as_object_mut().unwrap();
        fields.remove("sparse");
        fields.remove("rate_sd");
        let back: Forecast = serde_json::from_value(old).unwrap();
        assert_eq!((back.sparse, back.rate_sd), (None, 0.0));
    }

    #[test]
    fn use_days_outlive_the_daily_window() {
        let h = history(200, |d| if d % 40 == 0 { 1.0 } else { 0.0 });
        assert_eq!(h.use_days.len(), 5);
        let r = h.use_record(day_of(T0) + 201).unwrap();
        assert_eq!((r.uses, r.intervals.len()), (5, 4));
        assert!(r.intervals.iter().all(|&i| i == 40.0));
    }

    #[test]
    fn smoothing_follows_a_habit_change_faster_than_a_long_average() {
        let h = history(28, |d| if d > 21 { 60.0 } else { 20.0 });
        let now = T0 + 29 * DAY_MS;
        let ses = ExponentialSmoothing::default()
            .forecast(&h, 300.0, now)
            .unwrap();
        let slow = MovingAverage { days: 28 }.forecast(&h, 300.0, now).unwrap();
        assert!(ses.rate_per_day > 50.0 && slow.rate_per_day < 35.0);
    }

    #[test]
    fn the_default_model_adopts_a_lasting_change_faster_than_noise() {
        // Recent days weigh more (half-life a week, four weeks looked at): a new habit kept for
        // a week moves the rate about half of the way (the last week carries 0.53 of the
        // weight), two weeks 0.8; one big day alone moves it by its own weight, about a tenth.
        let model = Auto::default();
        let rate = |h: &UsageHistory, days: i64| {
            let now = T0 + (days + 1) as UnixMs * DAY_MS;
            model.forecast(h, 1000.0, now).unwrap().rate_per_day
        };
        let week = history(35, |d| if d > 28 { 60.0 } else { 20.0 });
        let fortnight = history(42, |d| if d > 28 { 60.0 } else { 20.0 });
        let spike = history(35, |d| if d == 35 { 60.0 } else { 20.0 });
        let moved = |r: f64| (r - 20.0) / 40.0;
        assert!(
            (0.45..0.6).contains(&moved(rate(&week, 35))),
            "{}",
            rate(&week, 35)
        );
        assert!(
            moved(rate(&fortnight, 42)) > 0.75,
            "{}",
            rate(&fortnight, 42)
        );
        assert!(moved(rate(&spike, 35)) < 0.12, "{}", rate(&spike, 35));
    }

    #[test]
    fn a_steady_habit_proves_no_rate_error_and_a_short_history_none() {
        let flat: Vec<(i64, f64)> = (0..16).map(|d| (d, 10.0)).collect();
        // Sixteen days: backtests from day 7 to day 13, seven, all exact.
        let proved = backtest_rate_sd(&flat, 7.0, &[1.0; 7], 0.0).unwrap();
        assert!(proved < 1e-12, "{proved}");
        assert_eq!(backtest_rate_sd(&flat[..15], 7.0, &[1.0; 7], 0.0), None);
    }

    #[test]
    fn a_step_in_the_rate_is_measured_by_its_backtest_errors() {
        // Ten days of 10, then 20. A half-life of a hundredth of a day makes the rate known on
        // a day the day before's amount, so each backtest is worked by hand: from days 7-13
        // the next three days are predicted 30, 30, 30, 30, 60, 60, 60 against 30, 40, 50, 60,
        // 60, 60, 60: squared errors 0, 100, 400, 900, 0, 0, 0, a mean of 200 over 3 days.
        let step: Vec<(i64, f64)> = (0..16)
            .map(|d| (d, if d < 10 { 10.0 } else { 20.0 }))
            .collect();
        let proved = |daily_sd| backtest_rate_sd(&step, 0.01, &[1.0; 7], daily_sd).unwrap();
        assert!((proved(0.0) - 200f64.sqrt() / 3.0).abs() < 1e-9);
        // What the days' own spread explains (3 · 5²) is not the rate's.
        assert!((proved(5.0) - 125f64.sqrt() / 3.0).abs() < 1e-9);
        assert_eq!(proved(10.0), 0.0);
    }

    #[test]
    fn a_habit_that_moves_week_to_week_widens_the_range_and_daily_noise_does_not() {
        // The same amounts, 10 and 40 a day: a week of each in turn (a shift rota), or every
        // other day. Both spread as much from day to day; only the rota moves the rate.
        let model = DayOfWeekRate::default();
        let now = T0 + 43 * DAY_MS;
        let rota = history(42, |d| if (d / 7) % 2 == 0 { 10.0 } else { 40.0 });
        let noise = history(42, |d| if d % 2 == 0 { 10.0 } else { 40.0 });
        let rota = model.forecast(&rota, 1000.0, now).unwrap();
        let noise = model.forecast(&noise, 1000.0, now).unwrap();
        assert!(
            rota.rate_sd > 2.0 * noise.rate_sd,
            "rota {} noise {}",
            rota.rate_sd,
            noise.rate_sd
        );
        let three_days = |f: &Forecast| {
            let d = f.demand(now, 3 * DAY_MS);
            d.p90 - d.p10
        };
        assert!(three_days(&rota) > three_days(&noise));
    }

    #[test]
    fn the_range_allows_for_when_in_the_day_uses_happen() {
        // Perfectly steady use still leaves the time of the last use open by a part of a day.
        let h = history(20, |_| 30.0);
        let now = T0 + 21 * DAY_MS;
        let f = DayOfWeekRate::default().forecast(&h, 45.0, now).unwrap();
        let (early, mid, late) = (
            f.empty_earliest.unwrap(),
            f.empty_at.unwrap(),
            f.empty_latest.unwrap(),
        );
        let timing = (Z90 * USE_TIMING_SD_DAYS * DAY_MS as f64) as UnixMs;
        assert!(
            mid - early >= timing && late - mid >= timing,
            "{early} {mid} {late}"
        );
        assert!(early >= now);
    }

    #[test]
    fn day_stepped_empty_times_match_an_hourly_walk() {
        let h = history(20, |d| 20.0 + (d % 3) as f64 * 10.0);
        let now = T0 + 21 * DAY_MS + 5 * HOUR_MS;
        let f = DayOfWeekRate::default().forecast(&h, 250.0, now).unwrap();
        // Reference: an hour at a time.
        let mut mean = 0.0;
        let mut t = now;
        while mean < 250.0 {
            mean += f.mean_demand(t, HOUR_MS);
            t += HOUR_MS;
        }
        assert_eq!(f.empty_at, Some(t));
    }
}
