//! The policies the bench compares, as [`ReorderPolicy`]s the engine runs unchanged: the agent's
//! own ([`RiskPolicy`]), Dash-style [`ThresholdPolicy`], a textbook static (s, Q)
//! [`ReorderPointPolicy`] and a perfect-foresight [`OraclePolicy`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use replenish_agent::clock::{DAY_MS, UnixMs};
use replenish_agent::engine::forecast::day_of;
use replenish_agent::engine::policy::{
    PolicyInput, ReorderDecision, ReorderPolicy, RiskPolicy, ThresholdPolicy, max_stock, packs_for,
};
use serde::{Deserialize, Serialize};

use super::scenario::{DemandLine, EPS};

/// A policy of the bench.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKind {
    /// The agent's default: [`RiskPolicy`] on the default forecast model.
    Agent,
    /// Dash-style: order when 20% of the appliance's capacity remains.
    Threshold,
    /// Static (s, Q) from the textbook formula, frozen after a warm-up.
    ReorderPoint,
    /// Perfect foresight of demand and delivery times.
    Oracle,
}

impl PolicyKind {
    /// Every policy, in report order.
    pub const ALL: [PolicyKind; 4] = [
        PolicyKind::Agent,
        PolicyKind::Threshold,
        PolicyKind::ReorderPoint,
        PolicyKind::Oracle,
    ];

    /// The name used in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::Threshold => "threshold",
            Self::ReorderPoint => "reorder_point",
            Self::Oracle => "oracle",
        }
    }
}

/// Lets a policy decide only while the harness holds the gate open: at the daily review, once
/// the day's reports are in. Reports replayed earlier in the batch see a partial day.
pub(crate) struct Gated {
    pub(crate) inner: Box<dyn ReorderPolicy>,
    pub(crate) open: Arc<AtomicBool>,
}

impl ReorderPolicy for Gated {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn decide(&self, input: &PolicyInput<'_>) -> Option<ReorderDecision> {
        if self.open.load(Ordering::Relaxed) {
            self.inner.decide(input)
        } else {
            None
        }
    }

    fn decide_ahead(&self, input: &PolicyInput<'_>, ahead: UnixMs) -> Option<ReorderDecision> {
        if self.open.load(Ordering::Relaxed) {
            self.inner.decide_ahead(input, ahead)
        } else {
            None
        }
    }
}

/// The agent's policy, as the engine's default.
pub fn agent() -> Box<dyn ReorderPolicy> {
    Box::new(RiskPolicy)
}

/// The Dash-style baseline (20% of capacity).
pub fn threshold() -> Box<dyn ReorderPolicy> {
    Box::new(ThresholdPolicy::default())
}

/// z-score of a 98% cycle service level.
pub const Z98: f64 = 2.053_748_910_631_823;

/// The frozen parameters of [`ReorderPointPolicy`] for one slot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReorderPoint {
    /// Mean daily demand over the warm-up (d̄).
    pub mean: f64,
    /// Standard deviation of daily demand over the warm-up (σ_d).
    pub sd: f64,
    /// Delivery time in days (the configured prior: the policy is static).
    pub lead_days: f64,
    /// s = d̄·L + z·σ_d·√L.
    pub reorder_point: f64,
    /// Q, in the unit: the target days of mean demand (whole packs are taken when ordering).
    pub quantity: f64,
}

/// Textbook static (s, Q): after `warmup_days` complete days, d̄ and σ_d of daily demand are
/// frozen; the policy orders Q (whole packs covering the target days at d̄, within the maximum
/// stock) whenever the stock at home falls to s = d̄·L + z·σ_d·√L, with L the configured delivery
/// time and z for a 98% service level. It assumes continuous review: the day until the next
/// review is not protected, as in the formula. Before the warm-up it behaves like the
/// threshold policy.
#[derive(Debug)]
pub struct ReorderPointPolicy {
    /// Complete days observed before the parameters are frozen.
    pub warmup_days: i64,
    /// Safety factor.
    pub z: f64,
    frozen: Mutex<HashMap<String, ReorderPoint>>,
}

impl Default for ReorderPointPolicy {
    fn default() -> Self {
        Self {
            warmup_days: 14,
            z: Z98,
            frozen: Mutex::new(HashMap::new()),
        }
    }
}

impl ReorderPointPolicy {
    /// The parameters of a slot, frozen on the first call after the warm-up.
    fn params(&self, input: &PolicyInput<'_>) -> Option<ReorderPoint> {
        let key = input.slot.key().to_string();
        let mut frozen = self.frozen.lock().ok()?;
        if let Some(p) = frozen.get(&key) {
            return Some(*p);
        }
        let today = day_of(input.now);
        let first = input.slot.history.first_day?;
        // The first day is partial; the warm-up needs `warmup_days` whole ones after it.
        if today - first - 1 < self.warmup_days {
            return None;
        }
        let days: Vec<f64> = input
            .slot
            .history
            .complete_days(today, self.warmup_days)
            .into_iter()
            .map(|(_, amount)| amount)
            .collect();
        if days.is_empty() {
            return None;
        }
        let n = days.len() as f64;
        let mean = days.iter().sum::<f64>() / n;
        let sd = if days.len() > 1 {
            (days.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
        } else {
            0.0
        };
        let lead_days = input.lead_time.prior_ms as f64 / DAY_MS as f64;
        let p = ReorderPoint {
            mean,
            sd,
            lead_days,
            reorder_point: mean * lead_days + self.z * sd * lead_days.sqrt(),
            quantity: mean * input.settings.target_days,
        };
        frozen.insert(key, p);
        Some(p)
    }
}

impl ReorderPolicy for ReorderPointPolicy {
    fn name(&self) -> &'static str {
        "reorder_point"
    }

    fn decide(&self, input: &PolicyInput<'_>) -> Option<ReorderDecision> {
        let Some(p) = self.params(input) else {
            return ThresholdPolicy::default().decide(input);
        };
        let on_hand = input.stock.on_hand();
        if on_hand > p.reorder_point || input.item.pack_size <= 0.0 {
            return None;
        }
        let at_arrival = on_hand - p.mean * p.lead_days;
        let packs = packs_for(
            p.quantity,
            at_arrival,
            input.item.pack_size,
            max_stock(input),
        );
        let reason = format!(
            "{}: {on_hand:.0} left, at or below s = {:.0} (d = {:.1}/day, sd {:.1}, L {:.0} days); \
             ordering {packs} x {:.0}",
            input.slot.spec.id, p.reorder_point, p.mean, p.sd, p.lead_days, input.item.pack_size
        );
        Some(ReorderDecision { packs, reason })
    }
}

/// What the oracle knows of one slot: the true future and the true present.
#[derive(Debug, Clone, Default)]
pub struct OracleSlot {
    /// Every use of the run.
    pub demand: DemandLine,
    /// Delivery time of the k-th order.
    pub lead_times_ms: Vec<UnixMs>,
    /// Orders placed so far (the next order is number `orders`).
    pub orders: usize,
    /// What the household really has right now (appliance plus cupboard).
    pub on_hand: f64,
}

impl OracleSlot {
    fn next_lead(&self) -> UnixMs {
        if self.lead_times_ms.is_empty() {
            return DAY_MS;
        }
        self.lead_times_ms[self.orders % self.lead_times_ms.len()]
    }
}

/// The truth the harness shares with the oracle, by slot key (`device/slot`).
pub type Truth = Arc<Mutex<HashMap<String, OracleSlot>>>;

/// Perfect foresight: knows every future use and the delivery time of its next order. Orders at
/// the last review from which an order still arrives before the stock runs out (an order left
/// for the next review would arrive too late), for exactly the demand of the target days after
/// it arrives; whole packs and the maximum stock as every policy (`packs_for`, `max_stock`).
#[derive(Debug, Clone)]
pub struct OraclePolicy {
    /// The shared truth.
    pub truth: Truth,
}

impl ReorderPolicy for OraclePolicy {
    fn name(&self) -> &'static str {
        "oracle"
    }

    fn decide(&self, input: &PolicyInput<'_>) -> Option<ReorderDecision> {
        if input.item.pack_size <= 0.0 {
            return None;
        }
        let truth = self.truth.lock().ok()?;
        let slot = truth.get(input.slot.key().as_str())?;
        let now = input.now;
        let lead = slot.next_lead();
        // Ordered at the next review instead, it would come at `later`: is that too late?
        let later = now + input.review_ms.max(1) + lead;
        if slot.demand.between(now, later) <= slot.on_hand + EPS {
            return None;
        }
        let arrival = now + lead;
        let at_arrival = slot.on_hand - slot.demand.between(now, arrival);
        let target = (input.settings.target_days * DAY_MS as f64) as UnixMs;
        let needed = slot.demand.between(arrival, arrival + target) - at_arrival.max(0.0);
        let packs = packs_for(needed, at_arrival, input.item.pack_size, max_stock(input));
        let reason = format!(
            "{}: {:.0} left runs out before an order placed tomorrow would arrive ({:.0} days); \
             ordering {packs} x {:.0}",
            input.slot.spec.id,
            slot.on_hand,
            lead as f64 / DAY_MS as f64,
            input.item.pack_size
        );
        Some(ReorderDecision { packs, reason })
    }
}
