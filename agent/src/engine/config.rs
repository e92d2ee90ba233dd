//! The engine's settings ([`EngineConfig`]): the household it serves, how devices pair, the
//! reorder policy and each consumable's settings, the shops, and the limits on what devices send.

use std::collections::BTreeMap;

use replenish_protocol::HouseholdId;
use serde::{Deserialize, Serialize};

use super::household::Rules;
use super::{ConsumableSettings, IngestLimits, PolicyConfig, shopping, words};
use crate::clock::{HOUR_MS, UnixMs};

/// What happens when a device the household has not seen before says hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pairing {
    /// It waits until an owner accepts it; its reports are refused meanwhile.
    Owner,
    /// It is accepted at once (the simulator, a lab).
    Open,
}

/// Settings of the engine.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// The household this agent serves; devices of other households are refused.
    pub household: HouseholdId,
    /// The household's rules before any owner changed them (stored rules win once they exist).
    pub rules: Rules,
    /// Whether new devices need an owner's acceptance.
    pub pairing: Pairing,
    /// Reorder settings.
    pub policy: PolicyConfig,
    /// Settings of particular consumables, by consumable id; others use `policy.defaults`.
    pub consumables: BTreeMap<String, ConsumableSettings>,
    /// Prefix of idempotency keys, unique to this agent's storage, so that two installations
    /// (or a wiped store) never reuse a key at the shop.
    pub key_prefix: String,
    /// How often to ask the shop about placed orders.
    pub status_poll_ms: UnixMs,
    /// Limits on what devices send; command retries.
    pub ingest: IngestLimits,
    /// First wait before placing a failed order again (doubling, jittered).
    pub retry_base_ms: UnixMs,
    /// Products the household allows per consumable (SKUs, the usual one first); a consumable
    /// not listed takes any product of it.
    pub products: BTreeMap<String, Vec<String>>,
    /// An order costing more than this multiple of the usual price per unit waits for a
    /// person, whatever the mode.
    pub price_guard: f64,
    /// The shops to buy from, in order of preference on a tie; orders of older agents (no
    /// shop on them) belong to the first.
    pub shops: Vec<shopping::ShopInfo>,
    /// When the household collects orders itself.
    pub pickup: shopping::PickupPreference,
    /// Display names of consumables and devices by id; others are derived from the id.
    pub names: words::Names,
}

/// The id of the one shop of an agent configured with `[commerce]` alone.
pub const DEFAULT_SHOP: &str = "shop";

impl EngineConfig {
    /// Defaults for a household.
    pub fn new(household: HouseholdId, key_prefix: String) -> Self {
        Self {
            household,
            rules: Rules::default(),
            pairing: Pairing::Owner,
            policy: PolicyConfig::default(),
            consumables: BTreeMap::new(),
            key_prefix,
            status_poll_ms: HOUR_MS,
            ingest: IngestLimits::default(),
            retry_base_ms: 60_000,
            products: BTreeMap::new(),
            price_guard: 1.25,
            shops: vec![shopping::ShopInfo {
                id: shopping::ShopId::default_shop(),
                name: "the shop".into(),
            }],
            pickup: shopping::PickupPreference::default(),
            names: words::Names::new(),
        }
    }

    /// Whether any consumable is declared driven by another (so reports look for slots to
    /// drive; a scan of a few settings).
    pub fn any_driven(&self) -> bool {
        self.consumables.values().any(|c| c.driven_by.is_some())
    }
}
