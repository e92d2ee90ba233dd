//! Tests of the daily-rate forecast with known numbers: steady use, incomplete days, weekend factors, noise, starved days, demand quantiles.

use super::*;

/// Any day works (a Monday is 4 days after a Thursday).
pub(super) const T0: UnixMs = 20_000 * DAY_MS;

/// `days` whole days of use from `T0`, `per_day(d)` on day `d`, each at 08:00.
pub(super) fn history(days: i64, per_day: impl Fn(i64) -> f64) -> UsageHistory {
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

/// One egg on working days, four on Saturdays and Sundays: 13 a week.
fn eggs(d: i64) -> f64 {
    if weekday_of(day_of(T0) + d) >= 5 {
        4.0
    } else {
        1.0
    }
}

/// The first day after `T0` plus `from` whose weekday is `weekday` (0 = Monday).
fn next(weekday: usize, from: i64) -> i64 {
    (from..from + 7)
        .find(|&d| weekday_of(day_of(T0) + d) == weekday)
        .unwrap()
}

/// Mean demand of the week starting at `now`.
fn week(f: &Forecast, now: UnixMs) -> f64 {
    f.demand(now, 7 * DAY_MS).p50
}

#[test]
fn the_rate_does_not_depend_on_the_weekday_the_window_ends_on() {
    // Seen on a Saturday morning, the window's latest days are five quiet working days; seen on
    // a Monday, a big weekend. Either way the coming week holds 13 eggs. (Weighing the latest
    // days' plain use, the Saturday forecast said 11.6.)
    let model = DayOfWeekRate::default();
    for weekday in [5, 0] {
        let today = next(weekday, 22);
        let h = history(today - 1, eggs);
        let now = T0 + today as UnixMs * DAY_MS;
        let f = model.forecast(&h, 100.0, now).unwrap();
        let total = week(&f, now);
        assert!((total - 13.0).abs() < 0.65, "weekday {weekday}: {total}");
    }
}

#[test]
fn a_day_that_ran_empty_counts_at_least_what_its_weekday_expects() {
    // Three weeks of the egg habit; on the last Sunday the tray ran empty after one egg.
    let sunday = next(6, 15);
    let full = history(sunday, eggs);
    let mut starved = history(sunday, |d| if d == sunday { 1.0 } else { eggs(d) });
    let now = T0 + (sunday + 1) as UnixMs * DAY_MS;
    let model = DayOfWeekRate::default();
    let total = |h: &UsageHistory| week(&model.forecast(h, 100.0, now).unwrap(), now);
    let taken_as_wanted = total(&starved);
    starved.mark_starved(T0 + sunday as UnixMs * DAY_MS + 9 * HOUR_MS);
    let censored = total(&starved);
    assert!(
        censored > taken_as_wanted + 1.0 && censored > 0.9 * total(&full),
        "censored {censored}, one egg taken as the Sunday's want {taken_as_wanted}, full {}",
        total(&full)
    );
}

#[test]
fn a_morning_that_already_took_more_than_a_whole_day_raises_the_rate() {
    // Five days of 1, 0, 1, 0, 1 eggs; weights 0.5^(age/7) from 0.61 (five days ago) to 0.91
    // (yesterday) give a rate of 2.259 / 3.752 = 0.602 a day. At 09:00 four eggs are gone
    // today: a day of at least four, weighing 1, makes it (2.259 + 4) / 4.752 = 1.317.
    let model = DayOfWeekRate::default();
    let quiet = history(5, |d| (d % 2) as f64);
    let now = T0 + 6 * DAY_MS + 9 * HOUR_MS;
    let before = model.forecast(&quiet, 3.0, now).unwrap();
    assert!(
        (before.rate_per_day - 0.602).abs() < 1e-3,
        "{}",
        before.rate_per_day
    );
    let mut brunch = quiet.clone();
    brunch.record(T0 + 6 * DAY_MS + 8 * HOUR_MS, 4.0);
    let after = model.forecast(&brunch, 3.0, now).unwrap();
    assert!(
        (after.rate_per_day - 1.317).abs() < 1e-3,
        "{}",
        after.rate_per_day
    );
    assert!(
        after.days_left().unwrap() < 2.5 && before.days_left().unwrap() > 4.5,
        "{:?} {:?}",
        after.days_left(),
        before.days_left()
    );
    // Half an egg's worth by 09:00 is less than a whole day is expected to take: no news.
    let mut ordinary = quiet.clone();
    ordinary.record(T0 + 6 * DAY_MS + 8 * HOUR_MS, 0.5);
    assert_eq!(model.forecast(&ordinary, 3.0, now).unwrap(), before);
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

#[test]
fn a_days_spread_follows_its_weekday_factor() {
    // A day's variance is daily_sd² times its factor: with daily_sd 10 and no rate error,
    // a day at factor 2 spreads by 10·√2, one at 0.5 by 10·√0.5, two of them by 10·√1.
    let mut factors = [0.5; 7];
    factors[5] = 2.0;
    factors[6] = 2.0;
    let mut f = Forecast::with_rate_error(T0, 500.0, 20.0, 10.0, 0.0, factors);
    f.rate_sd = 0.0;
    let monday = (day_of(T0) + (7 - weekday_of(day_of(T0)) as i64) % 7) as UnixMs * DAY_MS;
    let saturday = monday + 5 * DAY_MS;
    assert!((f.demand_sd(saturday, DAY_MS) - 10.0 * 2f64.sqrt()).abs() < 1e-9);
    assert!((f.demand_sd(monday, DAY_MS) - 10.0 * 0.5f64.sqrt()).abs() < 1e-9);
    assert!((f.demand_sd(monday, 2 * DAY_MS) - 10.0).abs() < 1e-9);
    // With a rate error of 2 a day, two weekdays (one factor-day of demand) add 2·1.
    f.rate_sd = 2.0;
    assert!((f.demand_sd(monday, 2 * DAY_MS) - 10f64.hypot(2.0)).abs() < 1e-9);
    // Flat factors: days count as days, as before.
    let flat = Forecast::with_rate_error(T0, 500.0, 20.0, 10.0, 0.0, [1.0; 7]);
    assert!((flat.demand_sd(saturday, 3 * DAY_MS) - 10.0 * 3f64.sqrt()).abs() < 1e-9);
}

#[test]
fn the_spread_is_estimated_per_factor_day() {
    // Weekdays 5 ± 1 (alternating), weekends 50 ± 10: residuals over the factor are alike on
    // both kinds of day, so the spread a weekday is given is far below the weekend's.
    let h = history(56, |d| {
        let weekend = weekday_of(day_of(T0) + d) >= 5;
        let sign = if d % 2 == 0 { 1.0 } else { -1.0 };
        if weekend {
            50.0 + 10.0 * sign
        } else {
            5.0 + sign
        }
    });
    let now = T0 + 57 * DAY_MS;
    let f = DayOfWeekRate::default().forecast(&h, 1000.0, now).unwrap();
    let monday = (day_of(now) + (7 - weekday_of(day_of(now)) as i64) % 7) as UnixMs * DAY_MS;
    let weekday = f.demand_sd(monday, DAY_MS);
    let weekend = f.demand_sd(monday + 5 * DAY_MS, DAY_MS);
    assert!(
        weekend > 2.5 * weekday,
        "weekday {weekday:.2}, weekend {weekend:.2}"
    );
    // A weekend day's spread is near what its days show (10).
    assert!((5.0..15.0).contains(&weekend), "{weekend:.2}");
}
