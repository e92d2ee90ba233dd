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
}

/// One planned action.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    /// When.
    pub at: UnixMs,
    /// What.
    pub action: Action,
}

/// The household's habits.
#[derive(Debug, Clone)]
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

/// Plans each day's actions from the habits and the seed.
pub struct Planner {
    habits: Habits,
    rng: ChaCha8Rng,
}

impl Planner {
    /// A planner for `habits` with `seed`.
    pub fn new(habits: Habits, seed: u64) -> Self {
        Self {
            habits,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    fn at(&mut self, day_start: UnixMs, from_hour: f64, to_hour: f64) -> UnixMs {
        let hour = self.rng.random_range(from_hour..to_hour);
        day_start + (hour * HOUR_MS as f64) as UnixMs
    }

    /// The actions of the day starting at `day_start` (midnight), in time order.
    pub fn plan_day(&mut self, day_start: UnixMs) -> Vec<Planned> {
        let h = self.habits.clone();
        let weekend = weekday_of(day_of(day_start)) >= 5;
        let (lo, hi) = if weekend {
            h.weekend_brews
        } else {
            h.weekday_brews
        };
        let brews = self.rng.random_range(lo..=hi);
        let mut plan = Vec::new();
        // Coffee: the first in the morning, the rest spread over the day.
        for i in 0..brews {
            let at = if i == 0 {
                self.at(day_start, 6.5, 9.0)
            } else {
                self.at(day_start, 10.0, 21.0)
            };
            let beans = h.beans_per_brew + self.rng.random_range(-0.5..0.5);
            plan.push(Planned {
                at,
                action: Action::Brew {
                    beans,
                    water: h.water_per_brew,
                },
            });
            if self.rng.random_bool(0.7) {
                plan.push(Planned {
                    at: at + 60_000,
                    action: Action::PourMilk {
                        ml: h.milk_per_brew,
                    },
                });
            }
        }
        let breakfast = self.at(day_start, 7.0, 9.5);
        let milk = h.breakfast_milk * self.rng.random_range(0.6..1.4);
        plan.push(Planned {
            at: breakfast,
            action: Action::PourMilk { ml: milk },
        });
        let eggs = if weekend {
            h.weekend_eggs
        } else if self.rng.random_bool(h.weekday_eggs.0) {
            h.weekday_eggs.1
        } else {
            0
        };
        if eggs > 0 {
            plan.push(Planned {
                at: breakfast + 5 * 60_000,
                action: Action::TakeEggs { count: eggs },
            });
        }
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
}
