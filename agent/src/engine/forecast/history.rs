//! A slot's consumption history: what it used each day (and whether it stood empty) over the
//! last weeks, and its days of use further back, which the models read.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::clock::{DAY_MS, UnixMs};

/// Days of history kept per slot.
pub(super) const KEEP_DAYS: i64 = 56;
/// Use days remembered per slot whatever their age (for the time between sparse uses).
const KEEP_USE_DAYS: usize = 24;

/// The day number (UTC) of a time.
pub fn day_of(t: UnixMs) -> i64 {
    (t / DAY_MS) as i64
}

/// Day of week of a day number, 0 = Monday (1970-01-01 was a Thursday).
pub fn weekday_of(day: i64) -> usize {
    (day + 3).rem_euclid(7) as usize
}

/// One day of a slot's consumption.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DayUsage {
    /// Amount consumed that day, in the slot unit.
    pub amount: f64,
    /// The slot was (nearly) empty at some point that day, so demand went unmet: the day says
    /// little about the rate and is left out of estimates.
    pub starved: bool,
}

/// Consumption per day for one slot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageHistory {
    /// The first day anything was observed for the slot.
    pub first_day: Option<i64>,
    /// Consumption by day number; days with no entry saw no consumption.
    pub days: BTreeMap<i64, DayUsage>,
    /// The last days with any use, (day, amount), oldest first, kept beyond the window of
    /// `days`: a slot used once a month needs months of them.
    #[serde(default)]
    pub use_days: Vec<(i64, f64)>,
}

/// What the use days say about a slot: how often it is used at all.
#[derive(Debug, Clone, PartialEq)]
pub struct UseRecord {
    /// Complete days with use.
    pub uses: usize,
    /// Complete days observed.
    pub exposure: i64,
    /// Days between consecutive use days, oldest first.
    pub intervals: Vec<f64>,
    /// Mean amount on a day with use.
    pub size: f64,
    /// The last day with use.
    pub last_use_day: i64,
}

impl UsageHistory {
    /// Starts observing at `t`, if not already.
    pub fn observe(&mut self, t: UnixMs) {
        let day = day_of(t);
        if self.first_day.is_none_or(|first| day < first) {
            self.first_day = Some(day);
        }
    }

    /// Records `amount` consumed at `t`.
    pub fn record(&mut self, t: UnixMs, amount: f64) {
        self.observe(t);
        self.days.entry(day_of(t)).or_default().amount += amount;
        self.trim(day_of(t));
        if amount > 0.0 {
            let day = day_of(t);
            match self.use_days.iter_mut().find(|(d, _)| *d == day) {
                Some((_, total)) => *total += amount,
                None => {
                    self.use_days.push((day, amount));
                    self.use_days.sort_by_key(|&(d, _)| d);
                    if self.use_days.len() > KEEP_USE_DAYS {
                        self.use_days.remove(0);
                    }
                }
            }
        }
    }

    /// The use days before `today`: how many over how many complete days, the intervals between
    /// them and their mean size; `None` before any use. While every use day is still
    /// remembered, observation starts with the first complete day; once old ones were dropped,
    /// it starts after the oldest one kept.
    pub fn use_record(&self, today: i64) -> Option<UseRecord> {
        let first = self.first_day?;
        let seen: Vec<(i64, f64)> = self
            .use_days
            .iter()
            .copied()
            .filter(|&(d, _)| d < today)
            .collect();
        let &(last_use_day, _) = seen.last()?;
        let (uses, start) = if self.use_days.len() >= KEEP_USE_DAYS {
            (seen.len() - 1, seen[0].0 + 1)
        } else {
            let start = first + 1;
            (seen.iter().filter(|&&(d, _)| d >= start).count(), start)
        };
        let intervals = seen.windows(2).map(|w| (w[1].0 - w[0].0) as f64).collect();
        let size = seen.iter().map(|u| u.1).sum::<f64>() / seen.len() as f64;
        Some(UseRecord {
            uses,
            exposure: today - start,
            intervals,
            size,
            last_use_day,
        })
    }

    /// Marks the day of `t` as starved (the slot was empty).
    pub fn mark_starved(&mut self, t: UnixMs) {
        self.observe(t);
        self.days.entry(day_of(t)).or_default().starved = true;
        self.trim(day_of(t));
    }

    fn trim(&mut self, today: i64) {
        while let Some((&day, _)) = self.days.first_key_value() {
            if day >= today - KEEP_DAYS {
                break;
            }
            self.days.pop_first();
        }
    }

    /// Complete, unstarved days in the window before `today`, as (day, amount), oldest first.
    pub fn complete_days(&self, today: i64, window: i64) -> Vec<(i64, f64)> {
        let Some(first) = self.first_day else {
            return Vec::new();
        };
        // The first day is usually partial (observation started mid-day): skip it.
        let start = (first + 1).max(today - window);
        (start..today)
            .filter_map(|day| match self.days.get(&day) {
                // A day the slot stood empty says nothing of demand; but a day it ran empty
                // after real use (the weekend brunch took the last eggs) is a big day, and
                // dropping it would teach the model that big days never happen.
                Some(usage) if usage.starved && usage.amount <= 0.0 => None,
                Some(usage) => Some((day, usage.amount)),
                None => Some((day, 0.0)),
            })
            .collect()
    }
}
