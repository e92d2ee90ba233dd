//! Scenario files: households, their appliances and habits, what happens to them (vacations,
//! guests, Wi-Fi outages, power cuts, drifting or stuck sensors, refills bought by hand), and
//! the shops they order from, in TOML. `demo`, `devices` and `bench appliances` read the same
//! format (docs/scenarios.md; examples in `simulator/scenarios/`).
//!
//! This module owns the format, its checks (every mistake is reported with where it is and
//! what to write instead) and what a household's scenario means at a given time
//! ([`HouseholdScript`]): pure functions of time, no I/O.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, anyhow};
use replenish_agent::clock::{DAY_MS, HOUR_MS, UnixMs};
use replenish_agent::engine::household::Mode;
use replenish_commerce::sandbox::wire::{CatalogItem, FulfilmentOption};
use replenish_protocol::Id;
use serde::{Deserialize, Serialize};

use crate::appliance::{ApplianceKind, Sizes, VirtualDevice};
use crate::household::{Action, Habits, Planned, Planner, Schedule, UsePattern, UseSpan};
use crate::loadcell::Fidelity;
use crate::shop::ShopConfig;
use crate::world::DEFAULT_START;

/// The scenario `demo` and `devices` run when given none: one household with a coffee maker
/// and a fridge, two shops.
pub const DEFAULT_SCENARIO: &str = include_str!("../scenarios/default.toml");

/// A scenario file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// A short name, for reports.
    pub name: String,
    /// What it shows, in a sentence or two.
    #[serde(default)]
    pub description: String,
    /// Simulated days (the command line may override it).
    #[serde(default = "default_days")]
    pub days: f64,
    /// Seed of every random choice (the command line may override it).
    #[serde(default)]
    pub seed: u64,
    /// The first day, `YYYY-MM-DD` (midnight UTC); 2026-01-05, a Monday, if absent. `devices`
    /// starts at the wall clock's day instead unless it is asked to use this one.
    #[serde(default)]
    pub start: Option<String>,
    /// The households (at least one).
    pub households: Vec<HouseholdSpec>,
    /// The shops the agent orders from (`demo` only); none: the default two (docs/scenarios.md).
    #[serde(default)]
    pub shops: Vec<ShopSpec>,
}

fn default_days() -> f64 {
    30.0
}

fn one() -> usize {
    1
}

/// One household.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HouseholdSpec {
    /// Its id (lower case letters, digits, `-` and `_`); copies get `-1`, `-2`… appended.
    pub id: String,
    /// How many households live like this one (`devices` and `bench appliances`; each copy
    /// with its own seed). `demo` runs one.
    #[serde(default = "one")]
    pub copies: usize,
    /// How the agent handles its orders (`demo`): `auto`, `ask` or `manual`.
    #[serde(default)]
    pub approval: Option<Mode>,
    /// Its habits.
    #[serde(default)]
    pub habits: Habits,
    /// Its appliances (at least one).
    pub appliances: Vec<ApplianceSpec>,
    /// What happens to it, in any order.
    #[serde(default)]
    pub events: Vec<EventSpec>,
}

/// One appliance of a household.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApplianceSpec {
    /// `coffee_maker` or `fridge`.
    pub kind: ApplianceKind,
    /// Its device id; the kind's (`coffee-maker`, `fridge`) if absent.
    #[serde(default)]
    pub id: Option<String>,
    /// What each slot holds at the start, by slot id.
    #[serde(default)]
    pub fill: BTreeMap<String, f64>,
    /// Each slot's capacity, by slot id, where not the kind's.
    #[serde(default)]
    pub capacity: BTreeMap<String, f64>,
}

impl ApplianceSpec {
    /// Its device id.
    pub fn device_id(&self) -> &str {
        self.id.as_deref().unwrap_or(self.kind.default_id())
    }

    /// Its sizes.
    pub fn sizes(&self) -> Sizes {
        Sizes {
            fill: self.fill.clone(),
            capacity: self.capacity.clone(),
        }
    }
}

/// Something that happens to a household. Days count from 1 (the scenario's first day);
/// times of day are `HH:MM` (UTC).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum EventSpec {
    /// Nobody home: no use at all.
    Vacation {
        /// First day away.
        day: u32,
        /// Days away.
        days: u32,
    },
    /// Guests: every use multiplied by `factor`.
    Guests {
        /// First day.
        day: u32,
        /// How many days.
        days: u32,
        /// The multiplier (1.5 if absent).
        #[serde(default = "guests_factor")]
        factor: f64,
    },
    /// A lasting change of habit: every use multiplied by `factor` from `day` on.
    HabitChange {
        /// First day.
        day: u32,
        /// The multiplier.
        factor: f64,
    },
    /// The Wi-Fi drops every day of a span for a while: the appliances keep measuring and
    /// buffer their reports, then send them when it is back.
    WifiOutage {
        /// First day.
        day: u32,
        /// How many days in a row (1 if absent).
        #[serde(default = "one_u32")]
        days: u32,
        /// When it drops, `HH:MM`.
        at: String,
        /// For how long, in hours.
        hours: f64,
        /// Only this appliance (all if absent).
        #[serde(default)]
        device: Option<String>,
    },
    /// A power cut: the appliances neither measure nor send, and boot again when it is back
    /// (what was in their RAM buffer is lost).
    PowerLoss {
        /// The day.
        day: u32,
        /// When, `HH:MM`.
        at: String,
        /// For how long, in hours (0: off and straight back on).
        #[serde(default)]
        hours: f64,
        /// Only this appliance (all if absent).
        #[serde(default)]
        device: Option<String>,
    },
    /// A sensor that drifts: it reads `per_day` more (or less) every day from `day` on.
    SensorDrift {
        /// First day.
        day: u32,
        /// The appliance.
        device: String,
        /// Its slot.
        slot: String,
        /// Drift per day, in the slot's unit.
        per_day: f64,
    },
    /// A sensor stuck for a while: the appliance reports the last reading it had.
    StuckSensor {
        /// First day.
        day: u32,
        /// How many days.
        days: u32,
        /// The appliance.
        device: String,
        /// Its slot.
        slot: String,
    },
    /// Something bought in a shop by hand and put into an appliance.
    ShopRefill {
        /// The day.
        day: u32,
        /// When, `HH:MM`.
        at: String,
        /// The appliance.
        device: String,
        /// Its slot.
        slot: String,
        /// How much, in the slot's unit.
        amount: f64,
    },
}

fn guests_factor() -> f64 {
    1.5
}

fn one_u32() -> u32 {
    1
}

/// A shop the agent orders from.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ShopSpec {
    /// Its id (as the agent's config names it).
    pub id: String,
    /// Its name, as the household reads it.
    pub name: String,
    /// Days from order to delivery (2 if absent).
    #[serde(default = "two_days")]
    pub lead_days: f64,
    /// What it sells; the sandbox shop's default catalog if absent.
    #[serde(default)]
    pub catalog: Option<Vec<CatalogItem>>,
    /// Ways it fulfils orders (home delivery, click and collect); none: it delivers in
    /// `lead_days`, free.
    #[serde(default)]
    pub fulfilment: Vec<FulfilmentOption>,
    /// Faults it injects, as `replenish-sim shop --faults` takes them (`5xx=0.1,timeout=0.05`).
    #[serde(default)]
    pub faults: Option<String>,
    /// SKUs it is out of (stock 0).
    #[serde(default)]
    pub out_of_stock: Vec<String>,
    /// Its prices as a share of the catalog's (0.85: 15 % cheaper).
    #[serde(default = "full_price")]
    pub price_factor: f64,
}

fn two_days() -> f64 {
    2.0
}

fn full_price() -> f64 {
    1.0
}

impl ShopSpec {
    /// The sandbox shop's configuration.
    pub fn config(&self) -> ShopConfig {
        let mut config = ShopConfig {
            lead_time_ms: (self.lead_days * DAY_MS as f64) as UnixMs,
            ..ShopConfig::default()
        };
        if let Some(catalog) = &self.catalog {
            config.catalog = catalog.clone();
        }
        for item in &mut config.catalog {
            if self.out_of_stock.contains(&item.sku) {
                item.stock = 0;
            }
            item.price_cents = (item.price_cents as f64 * self.price_factor).round() as u64;
        }
        config.fulfilment = self.fulfilment.clone();
        config
    }
}

/// A scenario that could not be read, with what to fix.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ScenarioError(String);

impl Scenario {
    /// Reads and checks the scenario file at `path`.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the scenario {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in the scenario {}", path.display()))
    }

    /// Reads and checks a scenario from TOML text.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let scenario: Scenario = toml::from_str(text).map_err(|e| anyhow!("{e}"))?;
        scenario.check()?;
        Ok(scenario)
    }

    /// The built-in default ([`DEFAULT_SCENARIO`]).
    pub fn default_scenario() -> anyhow::Result<Self> {
        Self::parse(DEFAULT_SCENARIO).context("the built-in default scenario")
    }

    /// Midnight (UTC) of its first day.
    pub fn start_ms(&self) -> anyhow::Result<UnixMs> {
        let Some(date) = &self.start else {
            return Ok(DEFAULT_START);
        };
        let date: jiff::civil::Date = date
            .parse()
            .map_err(|_| anyhow!("start = {date:?}: write a date as YYYY-MM-DD"))?;
        let ms = jiff::tz::Offset::UTC
            .to_timestamp(date.to_datetime(jiff::civil::Time::midnight()))
            .map_err(|e| anyhow!("start = {date}: {e}"))?
            .as_millisecond();
        u64::try_from(ms).map_err(|_| anyhow!("start = {date}: before 1970"))
    }

    /// Every household id it runs, copies included, with the household spec and the copy's
    /// number (0-based).
    pub fn household_ids(&self) -> Vec<(String, &HouseholdSpec, usize)> {
        let mut out = Vec::new();
        for spec in &self.households {
            for copy in 0..spec.copies {
                let id = if spec.copies == 1 {
                    spec.id.clone()
                } else {
                    format!("{}-{}", spec.id, copy + 1)
                };
                out.push((id, spec, copy));
            }
        }
        out
    }

    /// Checks what serde cannot: ids, numbers in range, events naming real appliances and
    /// slots, days inside the run.
    pub fn check(&self) -> Result<(), ScenarioError> {
        let fail = |at: &str, what: String| Err(ScenarioError(format!("{at}: {what}")));
        if self.name.trim().is_empty() {
            return fail("name", "give the scenario a name".into());
        }
        if !(self.days.is_finite() && self.days > 0.0 && self.days <= 3660.0) {
            return fail("days", format!("{} is not between 0 and 3660", self.days));
        }
        if let Err(e) = self.start_ms() {
            return fail("start", e.to_string());
        }
        if self.households.is_empty() {
            return fail("households", "add at least one [[households]] table".into());
        }
        let last_day = self.days.ceil() as u32;
        let mut seen = std::collections::BTreeSet::new();
        for (n, h) in self.households.iter().enumerate() {
            let at = format!("households[{n}] ({})", h.id);
            if Id::new(&h.id).is_err() {
                return fail(
                    &at,
                    "id: use lower case letters, digits, '-' and '_' (at most 32)".into(),
                );
            }
            if !seen.insert(h.id.clone()) {
                return fail(&at, "id: another household has this id".into());
            }
            if h.copies == 0 || h.copies > 100_000 {
                return fail(&at, format!("copies = {}: between 1 and 100000", h.copies));
            }
            check_habits(&h.habits).map_err(|e| ScenarioError(format!("{at}.habits: {e}")))?;
            if h.appliances.is_empty() {
                return fail(&at, "add at least one [[households.appliances]]".into());
            }
            let mut devices = std::collections::BTreeSet::new();
            for (k, a) in h.appliances.iter().enumerate() {
                let at = format!("{at}.appliances[{k}] ({})", a.device_id());
                if Id::new(a.device_id()).is_err() {
                    return fail(&at, "id: lower case letters, digits, '-' and '_'".into());
                }
                if !devices.insert(a.device_id().to_string()) {
                    return fail(
                        &at,
                        "another appliance of the household has this id: give it an `id`".into(),
                    );
                }
                for slot in a.fill.keys().chain(a.capacity.keys()) {
                    if !a.kind.slots().iter().any(|d| d.slot == slot) {
                        return fail(&at, format!("no slot {slot:?}; {}", slot_list(a.kind)));
                    }
                }
                if let Err(e) = a.kind.parts(&a.sizes(), 0) {
                    return fail(&at, e.to_string());
                }
            }
            let slot_of = |device: &str, slot: &str| -> Result<(), String> {
                let Some(a) = h.appliances.iter().find(|a| a.device_id() == device) else {
                    let known: Vec<&str> = h.appliances.iter().map(|a| a.device_id()).collect();
                    return Err(format!(
                        "no appliance {device:?} in this household (it has {})",
                        known.join(", ")
                    ));
                };
                if !a.kind.slots().iter().any(|d| d.slot == slot) {
                    return Err(format!(
                        "{device} has no slot {slot:?}; {}",
                        slot_list(a.kind)
                    ));
                }
                Ok(())
            };
            for (k, event) in h.events.iter().enumerate() {
                let at = format!("{at}.events[{k}]");
                check_event(event, last_day, &slot_of, &|device| match h
                    .appliances
                    .iter()
                    .any(|a| a.device_id() == device)
                {
                    true => Ok(()),
                    false => Err(format!("no appliance {device:?} in this household")),
                })
                .map_err(|e| ScenarioError(format!("{at} ({}): {e}", event.kind())))?;
            }
        }
        let mut shop_ids = std::collections::BTreeSet::new();
        for (n, shop) in self.shops.iter().enumerate() {
            let at = format!("shops[{n}] ({})", shop.id);
            if Id::new(&shop.id).is_err() || !shop_ids.insert(shop.id.clone()) {
                return fail(&at, "id: a new id of lower case letters and digits".into());
            }
            if !(shop.lead_days.is_finite() && (0.0..=60.0).contains(&shop.lead_days)) {
                return fail(&at, format!("lead_days = {}: 0 to 60", shop.lead_days));
            }
            if !(shop.price_factor.is_finite() && shop.price_factor > 0.0) {
                return fail(&at, "price_factor: a positive number".into());
            }
            if let Some(faults) = &shop.faults
                && let Err(e) = crate::shop_faults::FaultSpec::parse(faults)
            {
                return fail(&at, format!("faults: {e}"));
            }
        }
        Ok(())
    }
}

fn slot_list(kind: ApplianceKind) -> String {
    let slots: Vec<&str> = kind.slots().iter().map(|d| d.slot).collect();
    format!("a {} has {}", kind.default_id(), slots.join(", "))
}

fn check_habits(h: &Habits) -> Result<(), String> {
    let hours = |name: &str, (from, to): (f64, f64)| {
        if (0.0..=24.0).contains(&from) && (0.0..=24.0).contains(&to) && from <= to {
            Ok(())
        } else {
            Err(format!(
                "{name} = [{from}, {to}]: two hours of the day, the first first"
            ))
        }
    };
    hours("first_brew_hours", h.first_brew_hours)?;
    hours("later_brew_hours", h.later_brew_hours)?;
    hours("breakfast_hours", h.breakfast_hours)?;
    for (name, (lo, hi)) in [
        ("weekday_brews", h.weekday_brews),
        ("weekend_brews", h.weekend_brews),
    ] {
        if lo > hi || hi > 100 {
            return Err(format!(
                "{name} = [{lo}, {hi}]: at least, then at most (≤ 100)"
            ));
        }
    }
    for (name, value) in [
        ("beans_per_brew", h.beans_per_brew),
        ("water_per_brew", h.water_per_brew),
        ("milk_per_brew", h.milk_per_brew),
        ("breakfast_milk", h.breakfast_milk),
    ] {
        if !(value.is_finite() && value >= 0.0) {
            return Err(format!("{name} = {value}: a number of 0 or more"));
        }
    }
    if h.beans_per_brew < 1.0 {
        return Err("beans_per_brew: at least 1 g".into());
    }
    if !(0.0..=1.0).contains(&h.weekday_eggs.0) {
        return Err("weekday_eggs: [chance from 0 to 1, eggs]".into());
    }
    if !(h.trend_per_month.is_finite() && (-0.5..=1.0).contains(&h.trend_per_month)) {
        return Err("trend_per_month: a share from -0.5 to 1".into());
    }
    Ok(())
}

type Check<'a> = &'a dyn Fn(&str) -> Result<(), String>;

fn check_event(
    event: &EventSpec,
    last_day: u32,
    slot_of: &dyn Fn(&str, &str) -> Result<(), String>,
    device_known: Check<'_>,
) -> Result<(), String> {
    let day_in = |day: u32| {
        if day >= 1 && day <= last_day {
            Ok(())
        } else {
            Err(format!("day = {day}: the run has days 1 to {last_day}"))
        }
    };
    let positive = |name: &str, v: f64| {
        if v.is_finite() && v >= 0.0 {
            Ok(())
        } else {
            Err(format!("{name} = {v}: a number of 0 or more"))
        }
    };
    match event {
        EventSpec::Vacation { day, days } | EventSpec::StuckSensor { day, days, .. } => {
            day_in(*day)?;
            if *days == 0 {
                return Err("days: at least 1".into());
            }
        }
        EventSpec::Guests { day, days, factor } => {
            day_in(*day)?;
            positive("factor", *factor)?;
            if *days == 0 {
                return Err("days: at least 1".into());
            }
        }
        EventSpec::HabitChange { day, factor } => {
            day_in(*day)?;
            positive("factor", *factor)?;
        }
        EventSpec::WifiOutage {
            day,
            days,
            at,
            hours,
            device,
        } => {
            day_in(*day)?;
            time_of_day(at)?;
            if !(hours.is_finite() && *hours > 0.0 && *hours <= 24.0 * f64::from(*days)) {
                return Err(format!("hours = {hours}: more than 0"));
            }
            if let Some(device) = device {
                device_known(device)?;
            }
        }
        EventSpec::PowerLoss {
            day,
            at,
            hours,
            device,
        } => {
            day_in(*day)?;
            time_of_day(at)?;
            positive("hours", *hours)?;
            if let Some(device) = device {
                device_known(device)?;
            }
        }
        EventSpec::SensorDrift {
            day,
            device,
            slot,
            per_day,
        } => {
            day_in(*day)?;
            if !per_day.is_finite() {
                return Err("per_day: a number".into());
            }
            slot_of(device, slot)?;
        }
        EventSpec::ShopRefill {
            day,
            at,
            device,
            slot,
            amount,
        } => {
            day_in(*day)?;
            time_of_day(at)?;
            positive("amount", *amount)?;
            slot_of(device, slot)?;
        }
    }
    if let EventSpec::StuckSensor { device, slot, .. } = event {
        slot_of(device, slot)?;
    }
    Ok(())
}

/// `HH:MM` as milliseconds after midnight.
fn time_of_day(text: &str) -> Result<UnixMs, String> {
    let bad = || format!("at = {text:?}: write a time of day as HH:MM");
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    let (h, m): (u64, u64) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok(h * HOUR_MS + m * 60_000)
}

impl EventSpec {
    /// Its `kind`, as the file writes it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Vacation { .. } => "vacation",
            Self::Guests { .. } => "guests",
            Self::HabitChange { .. } => "habit_change",
            Self::WifiOutage { .. } => "wifi_outage",
            Self::PowerLoss { .. } => "power_loss",
            Self::SensorDrift { .. } => "sensor_drift",
            Self::StuckSensor { .. } => "stuck_sensor",
            Self::ShopRefill { .. } => "shop_refill",
        }
    }
}

/// `[from, to)` of what `event` covers in a run whose day 1 starts at `start` (a
/// `wifi_outage` over several days: its first day's window; `habit_change` and `sensor_drift`:
/// to the end of time; a moment: one millisecond, so a step still sees it).
fn span_of(start: UnixMs, event: &EventSpec) -> (UnixMs, UnixMs) {
    let day_ms = |day: u32| start + u64::from(day.saturating_sub(1)) * DAY_MS;
    let clock = |day: u32, at: &str| day_ms(day) + time_of_day(at).unwrap_or(0);
    let hours_ms = |h: f64| (h.max(0.0) * HOUR_MS as f64) as UnixMs;
    match event {
        EventSpec::Vacation { day, days }
        | EventSpec::Guests { day, days, .. }
        | EventSpec::StuckSensor { day, days, .. } => (day_ms(*day), day_ms(day + days)),
        EventSpec::HabitChange { day, .. } | EventSpec::SensorDrift { day, .. } => {
            (day_ms(*day), UnixMs::MAX)
        }
        EventSpec::WifiOutage { day, at, hours, .. } => {
            let from = clock(*day, at);
            (from, from + hours_ms(*hours))
        }
        EventSpec::PowerLoss { day, at, hours, .. } => {
            let from = clock(*day, at);
            (from, from + hours_ms(*hours).max(1))
        }
        EventSpec::ShopRefill { day, at, .. } => {
            let at = clock(*day, at);
            (at, at + 1)
        }
    }
}

/// A span of simulated time, `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    from: UnixMs,
    to: UnixMs,
}

impl Span {
    fn contains(&self, t: UnixMs) -> bool {
        t >= self.from && t < self.to
    }
}

/// What happens to one appliance, from the scenario's events.
#[derive(Debug, Clone, Default, PartialEq)]
struct DeviceScript {
    wifi_down: Vec<Span>,
    power_off: Vec<Span>,
    /// (slot, from, per day).
    drift: Vec<(String, UnixMs, f64)>,
    /// (slot, span).
    stuck: Vec<(String, Span)>,
}

/// What one household's scenario means over time: its planner (habits, vacations, guests,
/// changes, refills) and what happens to each appliance. Pure.
#[derive(Debug, Clone, PartialEq)]
pub struct HouseholdScript {
    /// The household id.
    pub household: String,
    /// Its habits.
    pub habits: Habits,
    /// Its days' changes.
    pub pattern: UsePattern,
    /// Its appliances.
    pub appliances: Vec<ApplianceSpec>,
    /// The events it was made from.
    pub events: Vec<EventSpec>,
    /// Midnight of its day 1.
    pub start: UnixMs,
    devices: BTreeMap<String, DeviceScript>,
}

impl HouseholdScript {
    /// `[from, to)` of the span an event covers (a `wifi_outage` over several days: its first
    /// day's window; `habit_change`: to the end of time).
    pub fn event_span(&self, event: &EventSpec) -> (UnixMs, UnixMs) {
        span_of(self.start, event)
    }

    /// The script of `spec` for a run starting at `start` (midnight of day 1).
    pub fn new(household: &str, spec: &HouseholdSpec, start: UnixMs) -> Self {
        let mut pattern = UsePattern::default();
        let mut devices: BTreeMap<String, DeviceScript> = spec
            .appliances
            .iter()
            .map(|a| (a.device_id().to_string(), DeviceScript::default()))
            .collect();
        // The appliance an event names, or all of them.
        fn each(
            devices: &mut BTreeMap<String, DeviceScript>,
            device: &Option<String>,
            mut f: impl FnMut(&mut DeviceScript),
        ) {
            for (id, script) in devices.iter_mut() {
                if device.as_deref().is_none_or(|d| d == id) {
                    f(script);
                }
            }
        }
        for event in &spec.events {
            let (from, to) = span_of(start, event);
            let span = Span { from, to };
            match event {
                EventSpec::Vacation { .. } => pattern.spans.push(UseSpan {
                    from,
                    to,
                    factor: 0.0,
                }),
                EventSpec::Guests { factor, .. } | EventSpec::HabitChange { factor, .. } => {
                    pattern.spans.push(UseSpan {
                        from,
                        to,
                        factor: *factor,
                    })
                }
                EventSpec::WifiOutage { days, device, .. } => {
                    // The same window on each day of the run of days.
                    for d in 0..u64::from(*days) {
                        let shifted = Span {
                            from: from + d * DAY_MS,
                            to: to + d * DAY_MS,
                        };
                        each(&mut devices, device, |s| s.wifi_down.push(shifted));
                    }
                }
                EventSpec::PowerLoss { device, .. } => {
                    each(&mut devices, device, |s| s.power_off.push(span));
                }
                EventSpec::SensorDrift {
                    device,
                    slot,
                    per_day,
                    ..
                } => {
                    if let Some(s) = devices.get_mut(device) {
                        s.drift.push((slot.clone(), from, *per_day));
                    }
                }
                EventSpec::StuckSensor { device, slot, .. } => {
                    if let Some(s) = devices.get_mut(device) {
                        s.stuck.push((slot.clone(), span));
                    }
                }
                EventSpec::ShopRefill {
                    device,
                    slot,
                    amount,
                    ..
                } => pattern.refills.push(Planned {
                    at: from,
                    action: Action::Refill {
                        device: device.clone(),
                        slot: slot.clone(),
                        amount: *amount,
                    },
                }),
            }
        }
        Self {
            household: household.to_string(),
            habits: spec.habits.clone(),
            pattern,
            appliances: spec.appliances.clone(),
            events: spec.events.clone(),
            start,
            devices,
        }
    }

    /// The household's schedule from `start`, with `seed`.
    pub fn schedule(&self, seed: u64, start: UnixMs) -> Schedule {
        Schedule::new(
            Planner::with_pattern(self.habits.clone(), self.pattern.clone(), seed),
            start,
        )
    }

    /// Whether `device`'s Wi-Fi is up at `t`.
    pub fn wifi_up(&self, device: &str, t: UnixMs) -> bool {
        self.devices
            .get(device)
            .is_none_or(|s| !s.wifi_down.iter().any(|w| w.contains(t)))
    }

    /// Whether `device` has power at `t`.
    pub fn powered(&self, device: &str, t: UnixMs) -> bool {
        self.devices
            .get(device)
            .is_none_or(|s| !s.power_off.iter().any(|w| w.contains(t)))
    }

    /// Whether `device` lost power at some moment in `(since, until]` (a cut shorter than a
    /// step still reboots it).
    pub fn power_cut_between(&self, device: &str, since: UnixMs, until: UnixMs) -> bool {
        self.devices.get(device).is_some_and(|s| {
            s.power_off
                .iter()
                .any(|w| w.from <= until && w.to > since && !(w.from <= since && w.to > until))
        })
    }

    /// What `device`'s sensor on `slot` adds to the true amount at `t` (a drift moves in
    /// hourly steps).
    pub fn sensor_bias(&self, device: &str, slot: &str, t: UnixMs) -> f64 {
        self.devices.get(device).map_or(0.0, |s| {
            s.drift
                .iter()
                .filter(|(sl, from, _)| sl == slot && t >= *from)
                // The drift moves once an hour: a sensor whose reading changes at every step
                // would be sampled at every step.
                .map(|(_, from, per_day)| {
                    let hours = (t - from) / HOUR_MS;
                    per_day * (hours * HOUR_MS) as f64 / DAY_MS as f64
                })
                .sum()
        })
    }

    /// Whether `device`'s sensor on `slot` is stuck at `t`.
    pub fn sensor_stuck(&self, device: &str, slot: &str, t: UnixMs) -> bool {
        self.devices
            .get(device)
            .is_some_and(|s| s.stuck.iter().any(|(sl, w)| sl == slot && w.contains(t)))
    }

    /// Puts `device` in the state the scenario gives it at `now` (the last step was at
    /// `since`): power (a cut since the last step reboots it), Wi-Fi, drifting and stuck
    /// sensors.
    pub fn apply(
        &self,
        device: &mut VirtualDevice,
        since: UnixMs,
        now: UnixMs,
    ) -> anyhow::Result<()> {
        // An appliance no event names keeps its defaults (powered, Wi-Fi, true readings):
        // nothing to look up at every step.
        if self
            .devices
            .get(device.id.as_str())
            .is_none_or(|s| *s == DeviceScript::default())
        {
            return Ok(());
        }
        let id = device.id.to_string();
        let powered = self.powered(&id, now);
        if self.power_cut_between(&id, since, now) && device.is_powered() {
            // A cut that began and ended between two steps: off, then on again.
            device.set_power(false, now)?;
        }
        device.set_power(powered, now)?;
        device.set_wifi(self.wifi_up(&id, now));
        for slot in &mut device.slots {
            let name = slot.spec.id.as_str();
            slot.bias = self.sensor_bias(&id, name, now);
            slot.stuck = self.sensor_stuck(&id, name, now);
        }
        Ok(())
    }

    /// Builds its appliances (each with a seed of its own from `seed`), their clocks at
    /// `now`, their load cells read as `fidelity` says.
    pub fn devices(
        &self,
        seed: u64,
        now: UnixMs,
        fidelity: Fidelity,
    ) -> anyhow::Result<Vec<VirtualDevice>> {
        self.appliances
            .iter()
            .enumerate()
            .map(|(n, a)| {
                let device_seed = seed.wrapping_add(n as u64);
                VirtualDevice::new(
                    a.device_id(),
                    a.kind.parts_with(&a.sizes(), device_seed, fidelity)?,
                    seed,
                    now,
                )
                .with_context(|| format!("{}/{}", self.household, a.device_id()))
            })
            .collect()
    }
}

/// The seed of the `copy`-th household of a scenario whose seed is `seed` (copies differ;
/// the first is the scenario's seed itself).
pub fn copy_seed(seed: u64, copy: usize) -> u64 {
    seed.wrapping_add(copy as u64 * 7919)
}

/// Every household's script with its seed, copies included, in file order, for a run whose
/// first day starts at `start` (the file's `start`, or the wall clock's day for `devices`).
pub fn scripts_from(scenario: &Scenario, seed: u64, start: UnixMs) -> Vec<(HouseholdScript, u64)> {
    scenario
        .household_ids()
        .into_iter()
        .enumerate()
        .map(|(n, (id, spec, _))| (HouseholdScript::new(&id, spec, start), copy_seed(seed, n)))
        .collect()
}

/// The households of a fleet run (`devices`, `bench appliances`): `count` of them (`None`: the
/// scenario's own, copies included), cycling through the scenario's, each with a seed of its
/// own; with `rename`, called `{rename}` (one) or `{rename}-{n}` (several).
pub fn fleet(
    scenario: &Scenario,
    seed: u64,
    start: UnixMs,
    count: Option<usize>,
    rename: Option<&str>,
) -> Vec<(HouseholdScript, u64)> {
    let own = scripts_from(scenario, seed, start);
    let count = count.unwrap_or(own.len());
    (0..count)
        .filter_map(|n| {
            let (script, _) = own.get(n % own.len().max(1))?;
            let mut script = script.clone();
            if let Some(name) = rename {
                script.household = if count == 1 {
                    name.to_string()
                } else {
                    format!("{name}-{}", n + 1)
                };
            } else if n >= own.len() {
                script.household = format!("{}-{}", script.household, n / own.len() + 1);
            }
            Some((script, copy_seed(seed, n)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn household(events: &str) -> String {
        format!(
            r#"
name = "t"
days = 10
[[households]]
id = "home"
[[households.appliances]]
kind = "coffee_maker"
[[households.appliances]]
kind = "fridge"
{events}
"#
        )
    }

    #[test]
    fn the_default_scenario_reads() {
        let s = Scenario::default_scenario().unwrap();
        assert_eq!(s.households.len(), 1);
        assert_eq!(s.start_ms().unwrap(), DEFAULT_START);
    }

    #[test]
    fn mistakes_are_named_with_where_they_are() {
        let cases: [(&str, &str); 9] = [
            (
                "[[households.events]]\nkind = \"vacation\"\nday = 20\ndays = 3",
                "day = 20",
            ),
            (
                "[[households.events]]\nkind = \"stuck_sensor\"\nday = 2\ndays = 1\ndevice = \"fridge\"\nslot = \"beans\"",
                "fridge has no slot \"beans\"",
            ),
            (
                "[[households.events]]\nkind = \"wifi_outage\"\nday = 2\nat = \"25:00\"\nhours = 1",
                "HH:MM",
            ),
            (
                "[[households.events]]\nkind = \"power_loss\"\nday = 2\nat = \"03:00\"\ndevice = \"oven\"",
                "no appliance \"oven\"",
            ),
            (
                "[[households.events]]\nkind = \"picnic\"\nday = 2",
                "picnic",
            ),
            (
                "[[households.events]]\nkind = \"vacation\"\nday = 2\ndays = 1\nweeks = 2",
                "weeks",
            ),
            (
                "[households.habits]\nweekday_brews = [5, 2]",
                "weekday_brews",
            ),
            ("[households.habits]\ncoffees = 3", "coffees"),
            (
                "[[households.events]]\nkind = \"shop_refill\"\nday = 2\nat = \"10:00\"\ndevice = \"fridge\"\nslot = \"milk\"\namount = -1",
                "amount = -1",
            ),
        ];
        for (events, expected) in cases {
            let error = format!("{:#}", Scenario::parse(&household(events)).unwrap_err());
            assert!(error.contains(expected), "{events:?}: {error}");
        }
        let fill = "name = \"t\"\n[[households]]\nid = \"h\"\n[[households.appliances]]\nkind = \"fridge\"\nfill = { milk = 5000 }";
        let error = format!("{:#}", Scenario::parse(fill).unwrap_err());
        assert!(error.contains("outside 0..=3000"), "{error}");
        let twice = "name = \"t\"\n[[households]]\nid = \"h\"\n[[households.appliances]]\nkind = \"fridge\"\n[[households.appliances]]\nkind = \"fridge\"";
        let error = format!("{:#}", Scenario::parse(twice).unwrap_err());
        assert!(error.contains("give it an `id`"), "{error}");
    }

    #[test]
    fn a_script_says_what_holds_when() {
        let s = Scenario::parse(&household(
            r#"
[[households.events]]
kind = "wifi_outage"
day = 2
days = 2
at = "19:00"
hours = 2
device = "fridge"
[[households.events]]
kind = "power_loss"
day = 3
at = "03:00"
[[households.events]]
kind = "sensor_drift"
day = 2
device = "coffee-maker"
slot = "beans"
per_day = 4
[[households.events]]
kind = "stuck_sensor"
day = 5
days = 2
device = "fridge"
slot = "eggs"
"#,
        ))
        .unwrap();
        let start = s.start_ms().unwrap();
        let script = HouseholdScript::new("home", &s.households[0], start);
        let t = |day: u64, h: u64| start + (day - 1) * DAY_MS + h * HOUR_MS;
        assert!(script.wifi_up("fridge", t(2, 18)));
        assert!(!script.wifi_up("fridge", t(2, 20)));
        assert!(!script.wifi_up("fridge", t(3, 19)));
        assert!(script.wifi_up("fridge", t(3, 21)));
        assert!(script.wifi_up("fridge", t(4, 20)), "two days only");
        assert!(script.wifi_up("coffee-maker", t(2, 20)), "the fridge only");
        // A cut of no length falls between two steps and still counts.
        assert!(script.powered("coffee-maker", t(3, 4)));
        assert!(script.power_cut_between("coffee-maker", t(3, 2), t(3, 4)));
        assert!(!script.power_cut_between("coffee-maker", t(3, 4), t(3, 6)));
        assert_eq!(script.sensor_bias("coffee-maker", "beans", t(1, 12)), 0.0);
        assert!((script.sensor_bias("coffee-maker", "beans", t(4, 12)) - 10.0).abs() < 1e-9);
        assert!(script.sensor_stuck("fridge", "eggs", t(6, 23)));
        assert!(!script.sensor_stuck("fridge", "eggs", t(7, 0)));
    }

    #[test]
    fn a_power_cut_reboots_the_appliance_and_loses_its_buffer() {
        let s = Scenario::parse(&household(
            "[[households.events]]\nkind = \"power_loss\"\nday = 1\nat = \"10:00\"\nhours = 1",
        ))
        .unwrap();
        let start = s.start_ms().unwrap();
        let script = HouseholdScript::new("home", &s.households[0], start);
        let mut devices = script.devices(1, start, Fidelity::Driver).unwrap();
        let fridge = &mut devices[1];
        // Offline all morning: reports pile up in the buffer.
        fridge.slot_mut("milk").unwrap().amount -= 500.0;
        fridge.sample(start + 9 * HOUR_MS);
        assert!(fridge.pending_reports() > 0);
        let boot = fridge.boot();
        script
            .apply(fridge, start + 9 * HOUR_MS, start + 10 * HOUR_MS + 1)
            .unwrap();
        assert!(!fridge.is_powered());
        script
            .apply(fridge, start + 10 * HOUR_MS, start + 11 * HOUR_MS)
            .unwrap();
        assert!(fridge.is_powered());
        assert_eq!(fridge.boot(), boot.wrapping_add(1));
        assert_eq!(fridge.pending_reports(), 0, "the RAM buffer is gone");
    }
}
