//! Tests of the forecast models with known numbers: steady and sparse use, declared intervals, absences, habit changes, the backtested rate error, empty times.

use super::tests::{T0, history};
use super::*;

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
fn an_absence_going_on_is_told_from_the_habit_before_it() {
    let daily = |used: usize, away: usize| -> Vec<(i64, f64)> {
        (0..used + away)
            .map(|d| (d as i64, if d < used { 700.0 } else { 0.0 }))
            .collect()
    };
    // Milk every day of nine, then three days without: away ((1/11)^3).
    assert_eq!(ongoing_absence(&daily(9, 3)), Some(3));
    // Two days without is a weekend; use again ends it; less than a week of history before
    // it says nothing of the habit.
    assert_eq!(ongoing_absence(&daily(9, 2)), None);
    assert_eq!(ongoing_absence(&[daily(9, 3), daily(1, 0)].concat()), None);
    assert_eq!(ongoing_absence(&daily(6, 10)), None);
    assert_eq!(ongoing_absence(&daily(7, 10)), Some(10));
    // No longer than a gap seen before: (5/26)^4 would say away, the habit says not; a day
    // longer is an absence.
    let gap = [daily(10, 4), daily(10, 0)].concat();
    assert_eq!(ongoing_absence(&[gap.clone(), daily(0, 4)].concat()), None);
    assert_eq!(ongoing_absence(&[gap, daily(0, 5)].concat()), Some(5));
    // Past three weeks, not using it is the habit.
    assert_eq!(ongoing_absence(&daily(9, 22)), None);
    // Coffee on every weekend and half the weekdays (day 4 is a Monday): a working week
    // without is not an absence ((11/30)^5 would say it is; each weekday's own 2 in 4, not).
    let half: Vec<(i64, f64)> = (4..32)
        .map(|d| {
            let weekday = (d + 3) % 7;
            let used = weekday >= 5 || (d / 7) % 2 == weekday % 2;
            (d, if used { 30.0 } else { 0.0 })
        })
        .collect();
    let week_without = [half.clone(), (32..37).map(|d| (d, 0.0)).collect()].concat();
    assert_eq!(ongoing_absence(&week_without), None);
    let fortnight = [half, (32..46).map(|d| (d, 0.0)).collect()].concat();
    assert_eq!(ongoing_absence(&fortnight), Some(14));
    // Weekends only (five zero days a week): a week without is ordinary.
    let weekends: Vec<(i64, f64)> = (0..28)
        .map(|d| (d, if d % 7 >= 5 { 30.0 } else { 0.0 }))
        .collect();
    assert_eq!(ongoing_absence(&weekends), None);
    let away = [weekends.clone(), vec![(28, 0.0); 7]].concat();
    assert_eq!(ongoing_absence(&away), None, "a week without at 21/30: 8%");
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
    // A new level kept for three days or more, many standard errors from the old one, is a
    // change: the rate is taken from the days since it (a week of 60 after four of 20: 60).
    // Shorter runs are weighed by recency as before (half-life a week): one big day moves the
    // rate by its own weight, about a tenth, two by about a fifth; noise moves nothing.
    let model = Auto::default();
    let rate = |h: &UsageHistory, days: i64| {
        let now = T0 + (days + 1) as UnixMs * DAY_MS;
        model.forecast(h, 1000.0, now).unwrap().rate_per_day
    };
    let moved = |r: f64| (r - 20.0) / 40.0;
    let week = history(35, |d| if d > 28 { 60.0 } else { 20.0 });
    assert!(
        (moved(rate(&week, 35)) - 1.0).abs() < 0.02,
        "{}",
        rate(&week, 35)
    );
    let three_days = history(35, |d| if d > 32 { 60.0 } else { 20.0 });
    assert!(
        moved(rate(&three_days, 35)) > 0.95,
        "{}",
        rate(&three_days, 35)
    );
    let spike = history(35, |d| if d == 35 { 60.0 } else { 20.0 });
    assert!(moved(rate(&spike, 35)) < 0.12, "{}", rate(&spike, 35));
    let two_days = history(35, |d| if d >= 34 { 60.0 } else { 20.0 });
    assert!(
        (0.1..0.3).contains(&moved(rate(&two_days, 35))),
        "{}",
        rate(&two_days, 35)
    );
    // Days of 10 and 30 by turns, and the last three all 30: within what the window's own
    // spread allows, so not a change.
    let noisy = history(35, |d| if d % 2 == 0 && d < 33 { 10.0 } else { 30.0 });
    assert!(rate(&noisy, 35) < 26.0, "{}", rate(&noisy, 35));
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
