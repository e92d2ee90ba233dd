//! What a simulated household does: when it brews, pours and cooks, and how it restocks.
//!
//! Every decision comes from one seeded random generator, so a seed gives the same month.

use std::collections::VecDeque;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use replenish_agent::clock::{DAY_MS, HOUR_MS, UnixMs};
use replenish_agent::engine::forecast::{day_of, weekday_of};

/// Something the household does to an appliance slot.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Brew one coffee: beans and water from the coffee maker, counted by its brew counter.
    Brew {
        /// Grams of beans dosed.
        beans: f64,
        /// Millilitres of water.
        water: f64,
    },
    /// Take milk from the fridge shelf.
    PourMilk {
        /// Millilitres.
        ml: f64,
    },
    /// Take eggs from the tray.
    TakeEggs {
        /// How many.
        count: u32,
    },
    /// Put what was bought in a shop by hand into a slot (a scenario's `shop_refill`).
    Refill {
        /// The appliance.
        device: String,
        /// Its slot.
        slot: String,
        /// How much, in the slot's unit.
        amount: f64,
    },
}

/// One planned action.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    /// When.
    pub at: UnixMs,
    /// What.
    pub action: Action,
}

/// The household's habits (a scenario file's `[households.habits]`; every field optional).
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Habits {
    /// Coffees on a weekday: (min, max).
    pub weekday_brews: (u32, u32),
    /// Coffees on a weekend day.
    pub weekend_brews: (u32, u32),
    /// Grams of beans per coffee.
    pub beans_per_brew: f64,
    /// Millilitres of water per coffee.
    pub water_per_brew: f64,
    /// Millilitres of milk per coffee.
    pub milk_per_brew: f64,
    /// Millilitres of milk at breakfast.
    pub breakfast_milk: f64,
    /// Chance of eggs on a weekday morning, and how many then.
    pub weekday_eggs: (f64, u32),
    /// Eggs at a weekend brunch.
    pub weekend_eggs: u32,
    /// When the first coffee of the day is made: (from, to) hours.
    pub first_brew_hours: (f64, f64),
    /// When the other coffees are made: (from, to) hours.
    pub later_brew_hours: (f64, f64),
    /// Breakfast (milk, eggs): (from, to) hours.
    pub breakfast_hours: (f64, f64),
    /// Lasting growth of every use per 30 days, as a share (0.05: 5 % more each month;
    /// negative: less).
    pub trend_per_month: f64,
}

impl Default for Habits {
    fn default() -> Self {
        Self {
            weekday_brews: (2, 3),
            weekend_brews: (3, 5),
            beans_per_brew: 9.0,
            water_per_brew: 160.0,
            milk_per_brew: 30.0,
            breakfast_milk: 200.0,
            weekday_eggs: (0.5, 1),
            weekend_eggs: 4,
            first_brew_hours: (6.5, 9.0),
            later_brew_hours: (10.0, 21.0),
            breakfast_hours: (7.0, 9.5),
            trend_per_month: 0.0,
        }
    }
}

/// A household's planned actions, planned a whole day at a time as time reaches it and handed
/// out when due.
pub struct Schedule {
    planner: Planner,
    plan: VecDeque<Planned>,
    planned_until: UnixMs,
    start: UnixMs,
}

impl Schedule {
    /// The schedule of `planner`'s household from `start` on: what the first day planned
    /// before `start` did not happen.
    pub fn new(planner: Planner, start: UnixMs) -> Self {
        Self {
            planner,
            plan: VecDeque::new(),
            planned_until: start,
            start,
        }
    }

    /// The actions due by `now`, in time order; each is handed out once.
    pub fn due(&mut self, now: UnixMs) -> Vec<Planned> {
        while self.planned_until <= now {
            let day = midnight(self.planned_until);
            let start = self.start;
            self.plan.extend(
                self.planner
                    .plan_day(day)
                    .into_iter()
                    .filter(|p| p.at >= start),
            );
            self.planned_until = day + DAY_MS;
        }
        let due = self.plan.iter().take_while(|p| p.at <= now).count();
        self.plan.drain(..due).collect()
    }
}

/// What a scenario changes about a household's days: vacations, guests and habit changes
/// (uses multiplied by a factor over a span of time), and refills bought in a shop by hand.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UsePattern {
    /// Uses from `from` (inclusive) to `to` (exclusive) multiplied by `factor` (0: nobody home).
    pub spans: Vec<UseSpan>,
    /// Refills bought by hand, in any order.
    pub refills: Vec<Planned>,
}

/// Uses multiplied by `factor` over a span of days.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UseSpan {
    /// First moment.
    pub from: UnixMs,
    /// First moment after it.
    pub to: UnixMs,
    /// The multiplier (0: away; 2: twice as much).
    pub factor: f64,
}

impl UsePattern {
    /// The product of the factors of the spans `day_start` is in (1 outside them all).
    pub fn factor(&self, day_start: UnixMs) -> f64 {
        self.spans
            .iter()
            .filter(|s| day_start >= s.from && day_start < s.to)
            .map(|s| s.factor)
            .product()
    }
}

/// Plans each day's actions from the habits, the scenario's pattern and the seed.
pub struct Planner {
    habits: Habits,
    pattern: UsePattern,
    /// Where the habits' trend counts from: the first day planned.
    first_day: Option<UnixMs>,
    rng: ChaCha8Rng,
}

impl Planner {
    /// A planner for `habits` with `seed`.
    pub fn new(habits: Habits, seed: u64) -> Self {
        Self::with_pattern(habits, UsePattern::default(), seed)
    }

    /// A planner for `habits` changed by a scenario's `pattern`, with `seed`.
    pub fn with_pattern(habits: Habits, pattern: UsePattern, seed: u64) -> Self {
        Self {
            habits,
            pattern,
            first_day: None,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    fn at(&mut self, day_start: UnixMs, (from_hour, to_hour): (f64, f64)) -> UnixMs {
        let hour = if to_hour > from_hour {
            self.rng.random_range(from_hour..to_hour)
        } else {
            from_hour
        };
        day_start + (hour * HOUR_MS as f64) as UnixMs
    }

    /// How much of its habits the household lives on the day starting at `day_start`: the
    /// scenario's spans times the trend.
    pub fn factor(&mut self, day_start: UnixMs) -> f64 {
        let first = *self.first_day.get_or_insert(day_start);
        let months = day_start.saturating_sub(first) as f64 / (30.0 * DAY_MS as f64);
        let trend = (1.0 + self.habits.trend_per_month).max(0.0).powf(months);
        (trend * self.pattern.factor(day_start)).max(0.0)
    }

    /// `n` uses scaled by `factor`, rounded at random so the mean is right. Draws nothing at a
    /// factor of 1, so a household without a scenario plans the same days as before.
    fn scaled(&mut self, n: u32, factor: f64) -> u32 {
        if factor == 1.0 {
            return n;
        }
        let exact = f64::from(n) * factor;
        let whole = exact.floor();
        let extra = self.rng.random_bool((exact - whole).clamp(0.0, 1.0));
        whole as u32 + u32::from(extra)
    }

    /// The actions of the day starting at `day_start` (midnight), in time order.
    pub fn plan_day(&mut self, day_start: UnixMs) -> Vec<Planned> {
        let h = self.habits.clone();
        let factor = self.factor(day_start);
        let weekend = weekday_of(day_of(day_start)) >= 5;
        let (lo, hi) = if weekend {
            h.weekend_brews
        } else {
            h.weekday_brews
        };
        let brews = self.rng.random_range(lo..=hi.max(lo));
        let brews = self.scaled(brews, factor);
        let mut plan = Vec::new();
        // Coffee: the first in the morning, the rest spread over the day.
        for i in 0..brews {
            let at = if i == 0 {
                self.at(day_start, h.first_brew_hours)
            } else {
                self.at(day_start, h.later_brew_hours)
            };
            let beans = h.beans_per_brew + self.rng.random_range(-0.5..0.5);
            plan.push(Planned {
                at,
                action: Action::Brew {
                    beans,
                    water: h.water_per_brew,
                },
            });
            if self.rng.random_bool(0.7) && h.milk_per_brew > 0.0 {
                plan.push(Planned {
                    at: at + 60_000,
                    action: Action::PourMilk {
                        ml: h.milk_per_brew,
                    },
                });
            }
        }
        let breakfast = self.at(day_start, h.breakfast_hours);
        let milk = h.breakfast_milk * self.rng.random_range(0.6..1.4) * factor;
        if milk > 0.0 {
            plan.push(Planned {
                at: breakfast,
                action: Action::PourMilk { ml: milk },
            });
        }
        let eggs = if weekend {
            h.weekend_eggs
        } else if self.rng.random_bool(h.weekday_eggs.0.clamp(0.0, 1.0)) {
            h.weekday_eggs.1
        } else {
            0
        };
        let eggs = self.scaled(eggs, factor);
        if eggs > 0 {
            plan.push(Planned {
                at: breakfast + 5 * 60_000,
                action: Action::TakeEggs { count: eggs },
            });
        }
        let day_end = day_start + DAY_MS;
        plan.extend(
            self.pattern
                .refills
                .iter()
                .filter(|p| p.at >= day_start && p.at < day_end)
                .cloned(),
        );
        plan.sort_by_key(|p| p.at);
        plan
    }
}

/// Where a day starts.
pub fn midnight(t: UnixMs) -> UnixMs {
    t - t % DAY_MS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_days_and_weekends_are_busier() {
        let start = 20_458 * DAY_MS; // a Monday
        let mut a = Planner::new(Habits::default(), 7);
        let mut b = Planner::new(Habits::default(), 7);
        let week_a: Vec<_> = (0..7)
            .flat_map(|d| a.plan_day(start + d * DAY_MS))
            .collect();
        let week_b: Vec<_> = (0..7)
            .flat_map(|d| b.plan_day(start + d * DAY_MS))
            .collect();
        assert_eq!(week_a, week_b);
        let brews = |day: u64| {
            week_a
                .iter()
                .filter(|p| {
                    day_of(p.at) == day_of(start + day * DAY_MS)
                        && matches!(p.action, Action::Brew { .. })
                })
                .count()
        };
        let weekday: usize = (0..5).map(brews).sum();
        let weekend: usize = (5..7).map(brews).sum();
        assert!(
            weekend * 5 > weekday * 2,
            "weekend {weekend} vs weekdays {weekday}"
        );
    }

    #[test]
    fn a_schedule_hands_out_each_planned_action_once_in_order() {
        let start = 20_458 * DAY_MS + 13 * HOUR_MS; // a Monday afternoon
        let mut planner = Planner::new(Habits::default(), 3);
        // What the planner makes for those days, from midnight; the schedule starts mid-day,
        // so the morning before its start never happens.
        let days: Vec<Planned> = (0..3)
            .flat_map(|d| planner.plan_day(midnight(start) + d * DAY_MS))
            .collect();
        let mut schedule = Schedule::new(Planner::new(Habits::default(), 3), start);
        let mut handed = Vec::new();
        // Uneven steps, across two midnights.
        let mut now = start;
        for step in [1, 7, 60, 180, 5, 600, 1440, 3] {
            now += step * 60_000;
            let due = schedule.due(now);
            assert!(due.iter().all(|p| p.at <= now), "nothing from the future");
            handed.extend(due);
        }
        let expected: Vec<Planned> = days
            .into_iter()
            .filter(|p| p.at >= start && p.at <= now)
            .collect();
        assert!(expected.len() > 5, "{} actions", expected.len());
        assert_eq!(handed, expected);
        assert!(schedule.due(now).is_empty(), "nothing twice");
    }

    fn uses(plan: &[Planned]) -> (usize, f64, u32) {
        let brews = plan
            .iter()
            .filter(|p| matches!(p.action, Action::Brew { .. }))
            .count();
        let milk = plan
            .iter()
            .map(|p| match p.action {
                Action::PourMilk { ml } => ml,
                _ => 0.0,
            })
            .sum();
        let eggs = plan
            .iter()
            .map(|p| match p.action {
                Action::TakeEggs { count } => count,
                _ => 0,
            })
            .sum();
        (brews, milk, eggs)
    }

    #[test]
    fn away_days_have_no_use_and_guests_double_it() {
        let start = 20_458 * DAY_MS;
        let pattern = UsePattern {
            spans: vec![
                UseSpan {
                    from: start + 7 * DAY_MS,
                    to: start + 14 * DAY_MS,
                    factor: 0.0,
                },
                UseSpan {
                    from: start + 14 * DAY_MS,
                    to: start + 42 * DAY_MS,
                    factor: 2.0,
                },
            ],
            refills: vec![Planned {
                at: start + 10 * DAY_MS + 9 * HOUR_MS,
                action: Action::Refill {
                    device: "fridge".into(),
                    slot: "milk".into(),
                    amount: 1000.0,
                },
            }],
        };
        let mut planner = Planner::with_pattern(Habits::default(), pattern, 5);
        let days: Vec<Vec<Planned>> = (0..42)
            .map(|d| planner.plan_day(start + d * DAY_MS))
            .collect();
        let week = |w: usize| uses(&days[w * 7..w * 7 + 7].concat());
        assert_eq!(week(1).0, 0, "no coffee while away");
        assert_eq!(week(1).1, 0.0, "no milk while away");
        assert_eq!(week(1).2, 0, "no eggs while away");
        // The refill bought by hand still happens while away, at its time.
        let all = days.concat();
        let refills: Vec<&Planned> = all
            .iter()
            .filter(|p| matches!(p.action, Action::Refill { .. }))
            .collect();
        assert_eq!(refills.len(), 1);
        assert_eq!(refills[0].at, start + 10 * DAY_MS + 9 * HOUR_MS);
        // Four weeks with guests against the first week (a normal one), per week.
        let normal = week(0);
        let busy: Vec<_> = (2..6).map(week).collect();
        let mean_brews = busy.iter().map(|w| w.0).sum::<usize>() as f64 / 4.0;
        let mean_milk = busy.iter().map(|w| w.1).sum::<f64>() / 4.0;
        assert!(
            mean_brews > 1.6 * normal.0 as f64 && mean_brews < 2.5 * normal.0 as f64,
            "{mean_brews} brews a week with guests, {} without",
            normal.0
        );
        assert!(mean_milk > 1.5 * normal.1, "{mean_milk} ml vs {}", normal.1);
    }

    #[test]
    fn a_trend_grows_use_month_by_month() {
        let start = 20_458 * DAY_MS;
        let habits = Habits {
            trend_per_month: 0.5,
            ..Habits::default()
        };
        let mut planner = Planner::with_pattern(habits, UsePattern::default(), 9);
        assert_eq!(planner.factor(start), 1.0);
        assert!((planner.factor(start + 30 * DAY_MS) - 1.5).abs() < 1e-9);
        assert!((planner.factor(start + 60 * DAY_MS) - 2.25).abs() < 1e-9);
        let first: usize = (0..28)
            .map(|d| uses(&planner.plan_day(start + d * DAY_MS)).0)
            .sum();
        let third: usize = (60..88)
            .map(|d| uses(&planner.plan_day(start + d * DAY_MS)).0)
            .sum();
        assert!(
            third as f64 > 1.8 * first as f64,
            "{third} brews in the third month, {first} in the first"
        );
    }
}
