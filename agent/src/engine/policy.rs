//! The reorder decision: when to order and how much, from a forecast and the catalog.

use serde::{Deserialize, Serialize};

use super::forecast::Forecast;
use super::inventory::SlotState;
use crate::clock::{DAY_MS, UnixMs};
use crate::commerce::api::CatalogItem;

/// The household's reorder settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyConfig {
    /// Expected time from placing an order to its delivery, before any delivery is observed.
    pub lead_time_ms: UnixMs,
    /// Stock to keep at delivery, in days of mean consumption.
    pub safety_days: f64,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            lead_time_ms: 2 * DAY_MS,
            safety_days: 1.0,
        }
    }
}

/// A decision to reorder.
#[derive(Debug, Clone, PartialEq)]
pub struct ReorderDecision {
    /// Packs to order.
    pub packs: u32,
    /// Why, in one sentence a person can check.
    pub reason: String,
}

/// Decides whether a slot needs ordering now and how many packs of `item`.
///
/// Order when, in the worst tenth of outcomes, what remains when an order placed now arrives is
/// below the safety stock. Then order whole packs that fill the slot back to its capacity from
/// what is expected to remain at delivery, at least one.
pub trait ReorderPolicy: Send + Sync {
    /// The decision for `slot` at `now`, or `None` to wait.
    fn decide(
        &self,
        slot: &SlotState,
        forecast: &Forecast,
        item: &CatalogItem,
        now: UnixMs,
    ) -> Option<ReorderDecision>;
}

/// The default policy: the P90 demand over the lead time against a safety stock.
#[derive(Debug, Clone, Default)]
pub struct LeadTimePolicy {
    /// Settings.
    pub config: PolicyConfig,
}

impl ReorderPolicy for LeadTimePolicy {
    fn decide(
        &self,
        slot: &SlotState,
        forecast: &Forecast,
        item: &CatalogItem,
        now: UnixMs,
    ) -> Option<ReorderDecision> {
        let level = slot.level?;
        if forecast.rate_per_day <= 0.0 || item.pack_size <= 0.0 {
            return None;
        }
        let lead = self.config.lead_time_ms;
        let demand = forecast.demand(now, lead);
        let safety = forecast.rate_per_day * self.config.safety_days;
        let worst_at_arrival = level - demand.p90;
        if worst_at_arrival >= safety {
            return None;
        }
        let expected_at_arrival = (level - demand.p50).max(0.0);
        let room = slot.spec.capacity as f64 - expected_at_arrival;
        let packs = ((room / item.pack_size).floor() as u32).max(1);
        let unit = slot.spec.unit.symbol();
        let days = |ms: UnixMs| ms as f64 / DAY_MS as f64;
        let range = match (forecast.empty_earliest, forecast.empty_latest) {
            (Some(early), Some(late)) => format!(
                " (range {:.1}-{:.1} days)",
                days(early.saturating_sub(now)),
                days(late.saturating_sub(now))
            ),
            _ => String::new(),
        };
        let left = forecast.days_left().map_or_else(
            || "more than a year".to_string(),
            |d| format!("about {d:.1} days"),
        );
        let reason = format!(
            "{slot}: {level:.0} {unit} left, {left} at {rate:.0} {unit}/day{range}; delivery takes \
             {lead:.1} days; ordering {packs} x {pack:.0} {unit}",
            slot = slot.spec.id,
            rate = forecast.rate_per_day,
            lead = days(lead),
            pack = item.pack_size,
        );
        Some(ReorderDecision { packs, reason })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::forecast::{DayOfWeekRate, ForecastModel};
    use replenish_protocol::{Id, SensorKind, SlotSpec, Unit};

    fn item() -> CatalogItem {
        CatalogItem {
            sku: "beans-500".into(),
            name: "Beans".into(),
            consumable: "coffee_beans".into(),
            pack_size: 500.0,
            unit: Unit::G,
            price_cents: 899,
            currency: "EUR".into(),
            stock: 10,
        }
    }

    fn slot_with(level: f64, per_day: f64) -> (SlotState, Forecast, UnixMs) {
        let spec = SlotSpec {
            id: Id::new("beans").unwrap(),
            consumable: Id::new("coffee_beans").unwrap(),
            unit: Unit::G,
            capacity: 1000.0,
            sensor: SensorKind::Level,
        };
        let mut slot = SlotState::new(Id::new("coffee").unwrap(), spec);
        let t0 = 20_000 * DAY_MS;
        slot.history.observe(t0);
        for d in 1..=7 {
            slot.history.record(t0 + d * DAY_MS + 1, per_day);
        }
        slot.set_level(level, t0 + 8 * DAY_MS);
        let now = t0 + 8 * DAY_MS;
        let f = DayOfWeekRate::default()
            .forecast(&slot.history, level, now)
            .unwrap();
        (slot, f, now)
    }

    #[test]
    fn waits_while_stock_outlasts_the_lead_time() {
        let (slot, f, now) = slot_with(600.0, 50.0);
        assert_eq!(
            LeadTimePolicy::default().decide(&slot, &f, &item(), now),
            None
        );
    }

    #[test]
    fn orders_when_stock_would_not_last_the_lead_time_plus_safety() {
        let (slot, f, now) = slot_with(140.0, 50.0);
        let d = LeadTimePolicy::default()
            .decide(&slot, &f, &item(), now)
            .unwrap();
        // ~40 g expected at arrival: 960 g of room holds one whole 500 g pack.
        assert_eq!(d.packs, 1);
        assert!(
            d.reason
                .starts_with("beans: 140 g left, about 2.8 days at 50 g/day"),
            "{}",
            d.reason
        );
        assert!(d.reason.ends_with("ordering 1 x 500 g"), "{}", d.reason);
    }

    #[test]
    fn a_longer_lead_time_orders_earlier() {
        let (slot, f, now) = slot_with(300.0, 50.0);
        assert!(
            LeadTimePolicy::default()
                .decide(&slot, &f, &item(), now)
                .is_none()
        );
        let slow = LeadTimePolicy {
            config: PolicyConfig {
                lead_time_ms: 5 * DAY_MS,
                safety_days: 1.0,
            },
        };
        assert!(slow.decide(&slot, &f, &item(), now).is_some());
    }
}
