//! Bench scenarios: a household's consumable slots, the true demand on each (every use, with its
//! time), and how long each order the shop receives will take to arrive.
//!
//! Demand and delivery times come from one seed made of (archetype, seed, lead setting) only, so
//! every policy faces the same year: the same uses, and the same delivery time for its k-th order
//! of a slot, whenever it places it.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use replenish_agent::clock::{DAY_MS, HOUR_MS, UnixMs};
use replenish_agent::engine::forecast::linked::{DrivenBy, Measure};
use replenish_agent::engine::forecast::{day_of, weekday_of};
use replenish_protocol::Unit;

/// 2026-01-05 00:00 UTC, a Monday: where bench runs start.
pub const BENCH_START: UnixMs = 20_458 * DAY_MS;
/// Delivery times drawn per slot; the k-th order takes the k-th (cycling past the end).
const LEAD_SAMPLES: usize = 512;
/// Days at the start of every bench run left out of the metrics: with a 5-day delivery, the
/// first order (placed at the end of day 0) arrives at the end of day 5.
pub const WARMUP_DAYS: usize = 7;
/// The agent's default bundling window, in days.
pub const DEFAULT_BUNDLE_DAYS: f64 = 3.0;
/// The agent's default risk.
pub fn default_risk() -> f64 {
    replenish_agent::engine::policy::ConsumableSettings::default().risk
}
/// Amounts closer than this count as equal (sums of floats).
pub(crate) const EPS: f64 = 1e-6;

/// One use of a consumable.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Use {
    /// When (ms since the Unix epoch).
    pub at: UnixMs,
    /// How much, in the slot's unit.
    pub amount: f64,
}

/// One consumable slot of a scenario and everything true about it.
#[derive(Debug, Clone, PartialEq)]
pub struct SlotPlan {
    /// The appliance holding the slot (a device id).
    pub device: String,
    /// The slot id on the device.
    pub slot: String,
    /// The consumable, as the shop's catalog names it.
    pub consumable: String,
    /// Unit of every amount.
    pub unit: Unit,
    /// What the appliance holds at most.
    pub capacity: f64,
    /// What the appliance holds at the start (the cupboard starts empty).
    pub initial_level: f64,
    /// Amount in one pack the shop sells.
    pub pack_size: f64,
    /// Price of a pack, in cents.
    pub price_cents: u64,
    /// Most the household wants at home (appliance plus cupboard), in the unit.
    pub max_stock: f64,
    /// The uses of each day, from the scenario's first day, each day in time order.
    pub uses: Vec<Vec<Use>>,
    /// How long the k-th order for this slot takes, in ms (cycled past the end; never empty
    /// for a scenario that is run).
    pub lead_times_ms: Vec<UnixMs>,
    /// Days between uses the product declares (the maker's "descale monthly"), handed to
    /// the agent as its prior (`use_every_days`); `None` for products used daily.
    pub use_every_days: Option<f64>,
    /// The consumable whose use drives this one's, as the agent is told (`driven_by`: a
    /// descaler tablet every 200 brews); `None` for most.
    pub driven_by: Option<DrivenBy>,
    /// A meter, not a stock (the water through a fridge's filter): reported to the agent as
    /// usage, never sold, left out of every metric.
    pub metered: bool,
}

impl SlotPlan {
    /// The delivery time of the `k`-th order (0-based).
    pub fn lead_time(&self, k: usize) -> UnixMs {
        if self.lead_times_ms.is_empty() {
            return DAY_MS;
        }
        self.lead_times_ms[k % self.lead_times_ms.len()]
    }

    /// `device/slot`, as the engine keys slots.
    pub fn key(&self) -> String {
        format!("{}/{}", self.device, self.slot)
    }

    fn template(device: &str, slot: &str, consumable: &str, unit: Unit) -> Self {
        Self {
            device: device.into(),
            slot: slot.into(),
            consumable: consumable.into(),
            unit,
            capacity: 0.0,
            initial_level: 0.0,
            pack_size: 0.0,
            price_cents: 0,
            max_stock: 0.0,
            uses: Vec::new(),
            lead_times_ms: Vec::new(),
            use_every_days: None,
            driven_by: None,
            metered: false,
        }
    }

    fn sized(mut self, capacity: f64, initial: f64, pack: f64, price: u64, max: f64) -> Self {
        self.capacity = capacity;
        self.initial_level = initial;
        self.pack_size = pack;
        self.price_cents = price;
        self.max_stock = max;
        self
    }
}

/// One household over a number of days.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// What it is (the archetype, or the household of a replayed trace).
    pub name: String,
    /// The household id the engine serves.
    pub household: String,
    /// Midnight (UTC) starting the first day.
    pub start: UnixMs,
    /// Days simulated.
    pub days: usize,
    /// Days at the start left out of the metrics (the orders and forecasts of those days still
    /// happen): the stock a household starts with need not last until a first order can arrive.
    pub warmup_days: usize,
    /// The delivery time the engine is configured with before it has seen a delivery.
    pub prior_lead_ms: UnixMs,
    /// The engine's bundling window (`policy.bundle_days`; 0: every order has one line).
    pub bundle_days: f64,
    /// The agent's risk setting for every consumable (the highest acceptable chance of running
    /// out before an order placed now arrives).
    pub risk: f64,
    /// The slots.
    pub slots: Vec<SlotPlan>,
}

impl Scenario {
    /// A household `home` over `days` from `start` with the bench's warm-up, the agent's
    /// default bundling window and risk, and the prior of `lead`.
    fn with_defaults(
        name: String,
        start: UnixMs,
        days: usize,
        lead: LeadSetting,
        slots: Vec<SlotPlan>,
    ) -> Self {
        Self {
            name,
            household: "home".into(),
            start,
            days,
            warmup_days: WARMUP_DAYS,
            bundle_days: DEFAULT_BUNDLE_DAYS,
            risk: default_risk(),
            prior_lead_ms: lead.prior_ms(),
            slots,
        }
    }
}

/// How long the shop takes to deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeadSetting {
    /// Always this many days.
    Days(u32),
    /// Each order a whole number of days drawn uniformly from `min..=max`.
    Random {
        /// Shortest.
        min: u32,
        /// Longest.
        max: u32,
    },
}

impl LeadSetting {
    /// The four settings of the bench: 1, 2 and 5 days, and 1-5 days at random.
    pub const ALL: [LeadSetting; 4] = [
        LeadSetting::Days(1),
        LeadSetting::Days(2),
        LeadSetting::Days(5),
        LeadSetting::Random { min: 1, max: 5 },
    ];

    /// A short label: `1d`, `1-5d`.
    pub fn label(self) -> String {
        match self {
            Self::Days(d) => format!("{d}d"),
            Self::Random { min, max } => format!("{min}-{max}d"),
        }
    }

    /// Reads a [`LeadSetting::label`] back (`2`, `2d`, `1-5`, `1-5d`).
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let text = text.strip_suffix('d').unwrap_or(text);
        let days = |s: &str| {
            s.trim()
                .parse::<u32>()
                .ok()
                .filter(|d| (1..=60).contains(d))
        };
        match text.split_once('-') {
            Some((min, max)) => {
                let (min, max) = (days(min)?, days(max)?);
                (min <= max).then_some(Self::Random { min, max })
            }
            None => days(text).map(Self::Days),
        }
    }

    /// The engine's prior: the setting's mean, in whole days.
    pub fn prior_ms(self) -> UnixMs {
        match self {
            Self::Days(d) => u64::from(d) * DAY_MS,
            Self::Random { min, max } => u64::from(min + max) / 2 * DAY_MS,
        }
    }

    fn code(self) -> u64 {
        match self {
            Self::Days(d) => u64::from(d),
            Self::Random { min, max } => 1000 + u64::from(min) * 100 + u64::from(max),
        }
    }

    fn sample(self, rng: &mut ChaCha8Rng) -> UnixMs {
        match self {
            Self::Days(d) => u64::from(d) * DAY_MS,
            Self::Random { min, max } => u64::from(rng.random_range(min..=max.max(min))) * DAY_MS,
        }
    }
}

/// The household archetypes of the bench.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Archetype {
    /// One person, espresso only: 1-4 single shots of 9 g a day, more at weekends.
    SingleEspresso,
    /// Two adults and two children: milk (cereal, coffee, cocoa), eggs, coffee beans.
    Family,
    /// Little on weekdays, friends over every weekend: beans and milk.
    WeekendHeavy,
    /// Rotating early, late and night weeks (a 21-day cycle) with two days off a week: beans.
    ShiftWorker,
    /// A couple (beans, milk) away for two weeks in the summer: no use at all.
    Vacation,
    /// Beans and eggs, with one week of guests that doubles every use.
    GuestSpike,
    /// One coffee a day, then four or five and lattes from the middle of the year.
    HabitChange,
    /// Descaler tablets: one every 25-35 days.
    SparseDescaler,
    /// Coffee beans and descaler tablets: the machine asks for descaling after a number of
    /// brews (its setting for the household's water: 170-230), the household descales within
    /// three days; the agent is told "every 200 brews".
    DescalerByBrews,
    /// A fridge's water filter: replaced after the volume the fridge allows for the household's
    /// water (130-170 litres) and within a week of its light; 1.5-4 litres a day, more in
    /// summer; the agent is told "every 150 litres".
    FilterByVolume,
}

impl Archetype {
    /// Every archetype, in report order.
    pub const ALL: [Archetype; 10] = [
        Archetype::SingleEspresso,
        Archetype::Family,
        Archetype::WeekendHeavy,
        Archetype::ShiftWorker,
        Archetype::Vacation,
        Archetype::GuestSpike,
        Archetype::HabitChange,
        Archetype::SparseDescaler,
        Archetype::DescalerByBrews,
        Archetype::FilterByVolume,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::SingleEspresso => "single_espresso",
            Self::Family => "family",
            Self::WeekendHeavy => "weekend_heavy",
            Self::ShiftWorker => "shift_worker",
            Self::Vacation => "vacation",
            Self::GuestSpike => "guest_spike",
            Self::HabitChange => "habit_change",
            Self::SparseDescaler => "sparse_descaler",
            Self::DescalerByBrews => "descaler_by_brews",
            Self::FilterByVolume => "filter_by_volume",
        }
    }

    /// The archetype called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The scenario for `seed` and `lead` over `days` days from [`BENCH_START`].
    pub fn scenario(self, seed: u64, lead: LeadSetting, days: usize) -> Scenario {
        let base = seed_of(&[self as u64 + 1, seed, lead.code()]);
        let mut rng = ChaCha8Rng::seed_from_u64(base);
        let start = BENCH_START;
        let mut slots = self.slots(&mut rng, start, days);
        for (i, slot) in slots.iter_mut().enumerate() {
            let mut leads = ChaCha8Rng::seed_from_u64(seed_of(&[base, 0x1ead, i as u64]));
            slot.lead_times_ms = (0..LEAD_SAMPLES).map(|_| lead.sample(&mut leads)).collect();
        }
        Scenario::with_defaults(self.name().into(), start, days, lead, slots)
    }

    fn slots(self, rng: &mut ChaCha8Rng, start: UnixMs, days: usize) -> Vec<SlotPlan> {
        // Each seed's household eats a little more or less than the next.
        let scale = rng.random_range(0.85..1.2);
        match self {
            Self::SingleEspresso => {
                let uses = generate(rng, start, days, &mut |r, d| {
                    let n = if d.weekend() {
                        r.random_range(2..=4)
                    } else {
                        r.random_range(1..=3)
                    };
                    brews(r, n, 9.0 * scale)
                });
                vec![beans(250.0).with(uses)]
            }
            Self::Family => {
                let milk_uses = generate(rng, start, days, &mut |r, d| {
                    let mut v = Vec::new();
                    for _ in 0..2 {
                        if r.random_bool(0.9) {
                            v.push((
                                r.random_range(6.8..8.0),
                                r.random_range(150.0..250.0) * scale,
                            ));
                        }
                    }
                    for _ in 0..r.random_range(2..=4) {
                        v.push((r.random_range(7.0..20.0), 30.0));
                    }
                    if r.random_bool(0.5) {
                        v.push((
                            r.random_range(18.0..20.5),
                            r.random_range(200.0..300.0) * scale,
                        ));
                    }
                    if d.weekend() && r.random_bool(0.6) {
                        v.push((r.random_range(9.0..11.0), 300.0 * scale));
                    }
                    v
                });
                let egg_uses = generate(rng, start, days, &mut |r, d| {
                    let mut v = Vec::new();
                    if d.weekend() {
                        if r.random_bool(0.7) {
                            v.push((r.random_range(9.0..11.0), f64::from(r.random_range(4..=6))));
                        }
                    } else {
                        if r.random_bool(0.4) {
                            v.push((r.random_range(6.5..8.0), 2.0));
                        }
                        if r.random_bool(0.08) {
                            v.push((r.random_range(15.0..18.0), 3.0));
                        }
                    }
                    v
                });
                let bean_uses = generate(rng, start, days, &mut |r, d| {
                    let n = if d.weekend() {
                        r.random_range(4..=6)
                    } else {
                        r.random_range(3..=5)
                    };
                    brews(r, n, 9.0 * scale)
                });
                vec![
                    milk(3000.0, 7000.0).with(milk_uses),
                    eggs(12.0).with(egg_uses),
                    beans(250.0).with(bean_uses),
                ]
            }
            Self::WeekendHeavy => {
                let bean_uses = generate(rng, start, days, &mut |r, d| {
                    let n = if d.weekend() {
                        r.random_range(6..=10)
                    } else {
                        r.random_range(0..=1)
                    };
                    brews(r, n, 9.0 * scale)
                });
                let milk_uses = generate(rng, start, days, &mut |r, d| {
                    let n = if d.weekend() {
                        r.random_range(3..=6)
                    } else {
                        r.random_range(0..=1)
                    };
                    (0..n)
                        .map(|_| (r.random_range(8.0..21.0), 150.0 * scale))
                        .collect()
                });
                vec![
                    beans(250.0).with(bean_uses),
                    milk(3000.0, 4000.0).with(milk_uses),
                ]
            }
            Self::ShiftWorker => {
                let offset = rng.random_range(0..21usize);
                let uses = generate(rng, start, days, &mut |r, d| {
                    let cycle = (d.index + offset) % 21;
                    let off = cycle % 7 >= 5;
                    let (n, from, to) = match (off, cycle / 7) {
                        (true, _) => (2, 8.0, 20.0),
                        (false, 0) => (r.random_range(3..=4), 4.5, 13.0),
                        (false, 1) => (r.random_range(1..=2), 11.0, 22.0),
                        (false, _) => (r.random_range(4..=6), 0.0, 7.0),
                    };
                    (0..n)
                        .map(|_| {
                            (
                                r.random_range(from..to),
                                9.0 * scale + r.random_range(-0.5..0.5),
                            )
                        })
                        .collect()
                });
                vec![beans(250.0).with(uses)]
            }
            Self::Vacation => {
                let away = rng.random_range(150..=220usize);
                let away = away..away + 14;
                let bean_uses = generate(rng, start, days, &mut |r, d| {
                    if away.contains(&d.index) {
                        return Vec::new();
                    }
                    let n = r.random_range(3..=4);
                    brews(r, n, 9.0 * scale)
                });
                let milk_uses = generate(rng, start, days, &mut |r, d| {
                    if away.contains(&d.index) {
                        return Vec::new();
                    }
                    let n = r.random_range(1..=2);
                    let total = r.random_range(250.0..450.0) * scale;
                    (0..n)
                        .map(|_| (r.random_range(7.0..20.0), total / f64::from(n)))
                        .collect()
                });
                vec![
                    beans(250.0).with(bean_uses),
                    milk(3000.0, 4000.0).with(milk_uses),
                ]
            }
            Self::GuestSpike => {
                let guests = rng.random_range(60..=300usize);
                let guests = guests..guests + 7;
                let bean_uses = generate(rng, start, days, &mut |r, d| {
                    let times = if guests.contains(&d.index) { 2 } else { 1 };
                    let mut v = Vec::new();
                    for _ in 0..times {
                        let n = r.random_range(2..=3);
                        v.extend(brews(r, n, 9.0 * scale));
                    }
                    v
                });
                let egg_uses = generate(rng, start, days, &mut |r, d| {
                    let times = if guests.contains(&d.index) { 2 } else { 1 };
                    let mut v = Vec::new();
                    for _ in 0..times {
                        if r.random_bool(0.5) {
                            v.push((r.random_range(7.0..10.0), 2.0));
                        }
                    }
                    v
                });
                vec![beans(250.0).with(bean_uses), eggs(12.0).with(egg_uses)]
            }
            Self::HabitChange => {
                let change = rng.random_range(150..=210usize);
                let bean_uses = generate(rng, start, days, &mut |r, d| {
                    let n = if d.index < change {
                        r.random_range(1..=2)
                    } else {
                        r.random_range(4..=5)
                    };
                    brews(r, n, 9.0 * scale)
                });
                let milk_uses = generate(rng, start, days, &mut |r, d| {
                    if d.index < change {
                        vec![(
                            r.random_range(7.0..9.0),
                            r.random_range(150.0..250.0) * scale,
                        )]
                    } else {
                        (0..3)
                            .map(|_| (r.random_range(7.0..20.0), r.random_range(130.0..170.0)))
                            .collect()
                    }
                });
                vec![
                    beans(250.0).with(bean_uses),
                    milk(3000.0, 4000.0).with(milk_uses),
                ]
            }
            Self::SparseDescaler => {
                let mut next = rng.random_range(0..30usize);
                let uses = generate(rng, start, days, &mut |r, d| {
                    if d.index != next {
                        return Vec::new();
                    }
                    next += r.random_range(25..=35usize);
                    vec![(r.random_range(8.0..20.0), 1.0)]
                });
                vec![descaler(3.0).with(uses)]
            }
            Self::DescalerByBrews => {
                let setting = rng.random_range(170..=230u32);
                let bean_uses = generate(rng, start, days, &mut |r, d| {
                    let n = if d.weekend() {
                        r.random_range(3..=6)
                    } else {
                        r.random_range(2..=5)
                    };
                    brews(r, n, 9.0 * scale)
                });
                // The machine counts brews from the last descaling; the light comes on at the
                // setting, and the household descales 0-3 days later (brewing meanwhile).
                let count = f64::from(rng.random_range(0..setting));
                let brews_of = |day: usize| bean_uses[day].len() as f64;
                let light = Light {
                    limit: f64::from(setting),
                    lag_days: 3,
                };
                let descaler_uses = light.uses(rng, start, days, count, brews_of);
                let mut descaler = descaler(3.0).with(descaler_uses);
                descaler.device = "grinder".into();
                descaler.use_every_days = None;
                descaler.driven_by = Some(DrivenBy {
                    consumable: "coffee_beans".into(),
                    every: 200.0,
                    measure: Measure::Uses,
                });
                vec![beans(250.0).with(bean_uses), descaler]
            }
            Self::FilterByVolume => {
                let life = rng.random_range(130_000.0..170_000.0);
                let water_uses = generate(rng, start, days, &mut |r, d| {
                    // Summer (days 150-240 of a year from January): 1.6 times the thirst.
                    let season = if (150..240).contains(&(d.index % 365)) {
                        1.6
                    } else {
                        1.0
                    };
                    let glasses = (r.random_range(6.0..16.0) * season * scale) as u32;
                    (0..glasses)
                        .map(|_| (r.random_range(6.0..23.0), 250.0))
                        .collect()
                });
                let through = rng.random_range(0.0..life);
                let water_of = |day: usize| water_uses[day].iter().map(|u| u.amount).sum::<f64>();
                let light = Light {
                    limit: life,
                    lag_days: 6,
                };
                let filter_uses = light.uses(rng, start, days, through, water_of);
                let mut water = SlotPlan::template("fridge", "water", "water", Unit::Ml)
                    .sized(f64::INFINITY, f64::INFINITY, 0.0, 0, f64::INFINITY)
                    .with(water_uses);
                water.metered = true;
                let mut filter =
                    SlotPlan::template("fridge", "filter", "water_filter", Unit::Count)
                        .sized(1.0, 1.0, 1.0, 2999, 2.0)
                        .with(filter_uses);
                filter.driven_by = Some(DrivenBy {
                    consumable: "water".into(),
                    every: 150_000.0,
                    measure: Measure::Amount,
                });
                vec![water, filter]
            }
        }
    }
}

/// The bench scenario of a scenario file's household (docs/scenarios.md): the uses its
/// habits and events make over `days` from the file's first day, one per coffee (beans), pour
/// (milk) and egg, on the slots its appliances have (sized as the file says; packs and prices
/// as the sandbox shop's catalog), with the delivery times of `lead`. Refills bought by hand,
/// Wi-Fi and sensor events are the appliances' business, not demand: left out.
pub fn from_household(
    script: &crate::scenario::HouseholdScript,
    seed: u64,
    lead: LeadSetting,
    days: usize,
) -> Scenario {
    use crate::household::Action;
    let start = script.start;
    let base = seed_of(&[0xf11e, seed, lead.code()]);
    let mut schedule = script.schedule(base, start);
    // (slot, consumable, unit, pack size, price in cents, most kept at home at least).
    let kinds: [(&str, &str, Unit, f64, u64, f64); 3] = [
        ("beans", "coffee_beans", Unit::G, 500.0, 899, 1000.0),
        ("milk", "milk", Unit::Ml, 1000.0, 129, 2500.0),
        ("eggs", "eggs", Unit::Count, 6.0, 249, 24.0),
    ];
    let mut slots: Vec<SlotPlan> = Vec::new();
    for (slot, consumable, unit, pack, price, max) in kinds {
        let Some((appliance, default)) = script.appliances.iter().find_map(|a| {
            a.kind
                .slots()
                .iter()
                .find(|d| d.slot == slot)
                .map(|d| (a, *d))
        }) else {
            continue;
        };
        let capacity = appliance
            .capacity
            .get(slot)
            .copied()
            .unwrap_or(default.capacity);
        let fill = appliance.fill.get(slot).copied().unwrap_or(default.fill);
        let plan = SlotPlan::template(appliance.device_id(), slot, consumable, unit).sized(
            capacity,
            fill.min(capacity),
            pack,
            price,
            max.max(capacity),
        );
        slots.push(plan.with(vec![Vec::new(); days]));
    }
    let mut push = |slot: &str, at: UnixMs, amount: f64| {
        let day = (at.saturating_sub(start) / DAY_MS) as usize;
        if let Some(plan) = slots.iter_mut().find(|p| p.slot == slot)
            && day < days
            && amount > 0.0
        {
            plan.uses[day].push(Use { at, amount });
        }
    };
    for planned in schedule.due(start + days as u64 * DAY_MS - 1) {
        match planned.action {
            Action::Brew { beans, .. } => push("beans", planned.at, beans),
            Action::PourMilk { ml } => push("milk", planned.at, ml),
            Action::TakeEggs { count } => push("eggs", planned.at, f64::from(count)),
            Action::Refill { .. } => {}
        }
    }
    for (i, slot) in slots.iter_mut().enumerate() {
        // Room at home for at least a week of this household's mean use (a family of four
        // keeps more milk than a couple), in whole packs.
        let mean_per_day =
            slot.uses.iter().flatten().map(|u| u.amount).sum::<f64>() / days.max(1) as f64;
        let week = (7.0 * mean_per_day / slot.pack_size).ceil() * slot.pack_size;
        slot.max_stock = slot.max_stock.max(week);
        let mut leads = ChaCha8Rng::seed_from_u64(seed_of(&[base, 0x1ead, i as u64]));
        slot.lead_times_ms = (0..LEAD_SAMPLES).map(|_| lead.sample(&mut leads)).collect();
    }
    let name = script
        .household
        .rsplit_once('-')
        .filter(|(_, n)| n.parse::<u32>().is_ok())
        .map_or(script.household.as_str(), |(id, _)| id)
        .to_string();
    Scenario::with_defaults(name, start, days, lead, slots)
}

/// (hour of the day, amount).
type Dose = (f64, f64);

#[derive(Debug, Clone, Copy)]
struct Day {
    index: usize,
    weekday: usize,
}

impl Day {
    fn weekend(self) -> bool {
        self.weekday >= 5
    }
}

trait WithUses {
    fn with(self, uses: Vec<Vec<Use>>) -> Self;
}

impl WithUses for SlotPlan {
    fn with(mut self, uses: Vec<Vec<Use>>) -> Self {
        self.uses = uses;
        self
    }
}

/// A 250 g grinder hopper refilled from 500 g bags; at most 1 kg at home.
fn beans(initial: f64) -> SlotPlan {
    SlotPlan::template("grinder", "beans", "coffee_beans", Unit::G)
        .sized(250.0, initial, 500.0, 899, 1000.0)
}

/// A fridge shelf for three 1 l cartons; milk keeps about a week, so `max` is set per household.
fn milk(initial: f64, max: f64) -> SlotPlan {
    SlotPlan::template("fridge", "milk", "milk", Unit::Ml).sized(3000.0, initial, 1000.0, 119, max)
}

/// A tray of 12 eggs refilled from boxes of 10.
fn eggs(initial: f64) -> SlotPlan {
    SlotPlan::template("egg-tray", "eggs", "eggs", Unit::Count)
        .sized(12.0, initial, 10.0, 349, 30.0)
}

/// A dispenser of 6 descaler tablets refilled from boxes of 6; the box says "descale about
/// monthly" (the household's own rhythm is 25-35 days, unknown to the agent).
fn descaler(initial: f64) -> SlotPlan {
    let mut plan = SlotPlan::template(
        "espresso-machine",
        "descaler",
        "descaler_tablets",
        Unit::Count,
    )
    .sized(6.0, initial, 6.0, 599, 12.0);
    plan.use_every_days = Some(30.0);
    plan
}

/// An appliance's counter and its light: a descaling due after so many brews, a filter after so
/// many litres.
struct Light {
    /// What the counter reaches when the light comes on.
    limit: f64,
    /// The household acts 0 to this many days after the light (using the appliance meanwhile).
    lag_days: usize,
}

impl Light {
    /// One use (of 1) on each day the household acts on the light, from a counter at `counter`
    /// growing by `grow(day)` each day; acting starts the counter again.
    fn uses(
        &self,
        rng: &mut ChaCha8Rng,
        start: UnixMs,
        days: usize,
        mut counter: f64,
        grow: impl Fn(usize) -> f64,
    ) -> Vec<Vec<Use>> {
        let mut due_day = None;
        (0..days)
            .map(|day| {
                let mut today = Vec::new();
                if due_day == Some(day) {
                    let hour = rng.random_range(8.0..20.0);
                    let at = start + day as u64 * DAY_MS + (hour * HOUR_MS as f64) as UnixMs;
                    today.push(Use { at, amount: 1.0 });
                    counter = 0.0;
                    due_day = None;
                }
                counter += grow(day);
                if due_day.is_none() && counter >= self.limit {
                    due_day = Some(day + 1 + rng.random_range(0..=self.lag_days));
                }
                today
            })
            .collect()
    }
}

/// `n` coffees of about `dose` grams: the first in the morning, the rest during the day.
fn brews(rng: &mut ChaCha8Rng, n: u32, dose: f64) -> Vec<Dose> {
    (0..n)
        .map(|i| {
            let hour = if i == 0 {
                rng.random_range(6.5..9.0)
            } else {
                rng.random_range(10.0..21.0)
            };
            (hour, dose + rng.random_range(-0.5..0.5))
        })
        .collect()
}

fn generate(
    rng: &mut ChaCha8Rng,
    start: UnixMs,
    days: usize,
    f: &mut dyn FnMut(&mut ChaCha8Rng, Day) -> Vec<Dose>,
) -> Vec<Vec<Use>> {
    (0..days)
        .map(|index| {
            let day = Day {
                index,
                weekday: weekday_of(day_of(start) + index as i64),
            };
            let midnight = start + index as u64 * DAY_MS;
            let mut uses: Vec<Use> = f(rng, day)
                .into_iter()
                .filter(|&(_, amount)| amount > 0.0)
                .map(|(hour, amount)| Use {
                    at: midnight + (hour.clamp(0.0, 23.99) * HOUR_MS as f64) as UnixMs,
                    amount,
                })
                .collect();
            uses.sort_by_key(|u| u.at);
            uses
        })
        .collect()
}

/// SplitMix64's finaliser: spreads a number over 64 bits.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A seed from several numbers, the same on every platform.
fn seed_of(parts: &[u64]) -> u64 {
    parts.iter().fold(0x5EED, |acc, &p| mix(acc ^ mix(p)))
}

/// A slot's uses in time order with running totals: demand between two times, and when a stock
/// runs out, in O(log n).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DemandLine {
    at: Vec<UnixMs>,
    /// `prefix[i]`: the sum of the first `i` uses.
    prefix: Vec<f64>,
}

impl DemandLine {
    /// The line of a slot's uses, given day by day.
    pub fn new(days: &[Vec<Use>]) -> Self {
        let mut uses: Vec<Use> = days.iter().flatten().copied().collect();
        uses.sort_by_key(|u| u.at);
        let mut prefix = Vec::with_capacity(uses.len() + 1);
        let mut total = 0.0;
        prefix.push(total);
        for u in &uses {
            total += u.amount;
            prefix.push(total);
        }
        Self {
            at: uses.iter().map(|u| u.at).collect(),
            prefix,
        }
    }

    fn index(&self, t: UnixMs) -> usize {
        self.at.partition_point(|&a| a < t)
    }

    /// Demand of the uses at `from` or later and before `to`.
    pub fn between(&self, from: UnixMs, to: UnixMs) -> f64 {
        if to <= from {
            return 0.0;
        }
        self.prefix[self.index(to)] - self.prefix[self.index(from)]
    }

    /// The use (from `from` on) at which `stock` no longer covers the demand, if any.
    pub fn runs_out(&self, from: UnixMs, stock: f64) -> Option<UnixMs> {
        let first = self.index(from);
        let base = self.prefix[first];
        let later = &self.prefix[first + 1..];
        let j = later.partition_point(|&p| p - base <= stock + EPS);
        self.at.get(first + j).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scenario_files_household_becomes_its_uses_on_its_slots() {
        let file = crate::scenario::Scenario::parse(
            r#"
name = "t"
days = 28
[[households]]
id = "h"
[[households.appliances]]
kind = "coffee_maker"
capacity = { beans = 400 }
fill = { beans = 300 }
[[households.events]]
kind = "vacation"
day = 8
days = 7
"#,
        )
        .unwrap();
        let start = file.start_ms().unwrap();
        let script = crate::scenario::HouseholdScript::new("h-3", &file.households[0], start);
        let s = from_household(&script, 1, LeadSetting::Days(2), 28);
        assert_eq!(s.name, "h", "copies are one household in the breakdown");
        // A coffee maker only: beans, sized by the file.
        assert_eq!(s.slots.len(), 1);
        let beans = &s.slots[0];
        assert_eq!((beans.slot.as_str(), beans.capacity), ("beans", 400.0));
        assert_eq!(beans.uses.len(), 28);
        assert!(
            beans.uses[7..14].iter().all(Vec::is_empty),
            "away on days 8 to 14"
        );
        let doses: Vec<f64> = beans.uses.iter().flatten().map(|u| u.amount).collect();
        // Two to five coffees a day on 21 days, each 8.5 to 9.5 g.
        assert!((42..=105).contains(&doses.len()), "{} coffees", doses.len());
        assert!(doses.iter().all(|d| (8.5..=9.5).contains(d)));
        assert!(beans.lead_times_ms.iter().all(|&l| l == 2 * DAY_MS));
        // The same seed, the same year.
        assert_eq!(s, from_household(&script, 1, LeadSetting::Days(2), 28));
    }

    #[test]
    fn a_seed_gives_the_same_year_and_other_seeds_differ() {
        let a = Archetype::Family.scenario(3, LeadSetting::Days(2), 60);
        let b = Archetype::Family.scenario(3, LeadSetting::Days(2), 60);
        let c = Archetype::Family.scenario(4, LeadSetting::Days(2), 60);
        assert_eq!(a, b);
        assert_ne!(a.slots[0].uses, c.slots[0].uses);
        assert_eq!(a.slots.len(), 3);
    }

    #[test]
    fn random_lead_times_stay_in_range_and_vary() {
        let s = Archetype::SingleEspresso.scenario(1, LeadSetting::Random { min: 1, max: 5 }, 10);
        let leads = &s.slots[0].lead_times_ms;
        assert!(leads.iter().all(|&l| (DAY_MS..=5 * DAY_MS).contains(&l)));
        assert!(leads.iter().any(|&l| l != leads[0]));
        assert_eq!(s.prior_lead_ms, 3 * DAY_MS);
    }

    #[test]
    fn delivery_settings_read_back_from_their_labels() {
        for lead in LeadSetting::ALL {
            assert_eq!(LeadSetting::parse(&lead.label()), Some(lead));
        }
        assert_eq!(LeadSetting::parse("3"), Some(LeadSetting::Days(3)));
        assert_eq!(
            LeadSetting::parse(" 2-4 "),
            Some(LeadSetting::Random { min: 2, max: 4 })
        );
        for bad in ["", "0", "5-1", "x", "1-", "-2", "61", "2.5"] {
            assert_eq!(LeadSetting::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn every_archetype_uses_something_and_names_round_trip() {
        for a in Archetype::ALL {
            let s = a.scenario(0, LeadSetting::Days(1), 365);
            let total: f64 = s.slots[0].uses.iter().flatten().map(|u| u.amount).sum();
            assert!(total > 0.0, "{}", a.name());
            assert_eq!(Archetype::from_name(a.name()), Some(a));
            for slot in &s.slots {
                for (i, day) in slot.uses.iter().enumerate() {
                    let midnight = s.start + i as u64 * DAY_MS;
                    assert!(
                        day.iter()
                            .all(|u| (midnight..midnight + DAY_MS).contains(&u.at))
                    );
                }
            }
        }
    }

    #[test]
    fn vacation_has_two_weeks_without_use() {
        let s = Archetype::Vacation.scenario(5, LeadSetting::Days(2), 365);
        let empty = s.slots[0]
            .uses
            .windows(14)
            .any(|w| w.iter().all(Vec::is_empty));
        assert!(empty);
    }

    #[test]
    fn the_shift_worker_rotates_early_late_and_night_weeks() {
        let s = Archetype::ShiftWorker.scenario(3, LeadSetting::Days(2), 365);
        let uses = &s.slots[0].uses;
        // Mean brews and mean hour of the first brew for each day of the 21-day cycle, over
        // the year: the rotation shows as three different weeks that come back every 21 days.
        let mut brews = [0.0; 21];
        let mut first_hour = [0.0; 21];
        let mut n = [0.0; 21];
        for (d, day) in uses.iter().enumerate() {
            let midnight = s.start + d as u64 * DAY_MS;
            brews[d % 21] += day.len() as f64;
            first_hour[d % 21] +=
                day.first().map_or(0.0, |u| (u.at - midnight) as f64) / HOUR_MS as f64;
            n[d % 21] += 1.0;
        }
        let per_day: Vec<(f64, f64)> = (0..21)
            .map(|i| (brews[i] / n[i], first_hour[i] / n[i]))
            .collect();
        // Working days of the three weeks: 1-2, 3-4 and 4-6 brews, at distinct times of day.
        let mut weeks: Vec<(f64, f64)> = (0..3)
            .map(|w| {
                let days: Vec<&(f64, f64)> = per_day[w * 7..w * 7 + 7]
                    .iter()
                    .filter(|(b, _)| (*b - 2.0).abs() > 0.01)
                    .collect();
                let k = days.len() as f64;
                (
                    days.iter().map(|d| d.0).sum::<f64>() / k,
                    days.iter().map(|d| d.1).sum::<f64>() / k,
                )
            })
            .collect();
        weeks.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (late, early, night) = (weeks[0], weeks[1], weeks[2]);
        assert!((1.3..1.7).contains(&late.0), "{weeks:?}");
        assert!((3.3..3.7).contains(&early.0), "{weeks:?}");
        assert!((4.7..5.3).contains(&night.0), "{weeks:?}");
        // Nights brew before 7, early shifts from 4:30, late shifts from 11.
        assert!(night.1 < 3.5 && (4.5..7.0).contains(&early.1) && late.1 > 11.0);
        // Two days off in every seven-day block: exactly two brews.
        let off = per_day
            .iter()
            .filter(|(b, _)| (*b - 2.0).abs() < 0.01)
            .count();
        assert_eq!(off, 6);
    }

    #[test]
    fn demand_line_sums_and_finds_the_empty_use() {
        let day = |h: u64, a: f64| Use {
            at: h * HOUR_MS,
            amount: a,
        };
        let line = DemandLine::new(&[vec![day(1, 5.0), day(2, 5.0)], vec![day(30, 10.0)]]);
        assert_eq!(line.between(0, 3 * HOUR_MS), 10.0);
        assert_eq!(line.between(2 * HOUR_MS, 31 * HOUR_MS), 15.0);
        assert_eq!(line.runs_out(0, 10.0), Some(30 * HOUR_MS));
        assert_eq!(line.runs_out(0, 9.0), Some(2 * HOUR_MS));
        assert_eq!(line.runs_out(0, 20.0), None);
        assert_eq!(line.runs_out(2 * HOUR_MS, 4.0), Some(2 * HOUR_MS));
    }
}
