//! What is stored and read back: engine counters and cached catalogs ([`Meta`]) and the whole
//! [`Snapshot`] an engine is rebuilt from after a restart.

use std::collections::BTreeMap;

use replenish_commerce::Catalog;
use serde::{Deserialize, Serialize};

use super::household::{AuditEntry, Household};
use super::inventory::{DeviceState, SlotState};
use super::lead_time::LeadTime;
use super::order::Order;
use super::shopping::ShopId;

/// Engine counters and cached data that are stored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// Number of the next order.
    pub next_order_no: u64,
    /// The one catalog agents before several shops stored; moved to `catalogs` (under the
    /// first shop) when the engine starts. (Older ones, in the sandbox shop's wire form, are
    /// converted when the store reads them: `store::read_meta`.)
    #[serde(default, skip_serializing)]
    pub catalog: Option<Catalog>,
    /// The last catalog fetched from each shop, by shop id.
    #[serde(default)]
    pub catalogs: BTreeMap<ShopId, Catalog>,
    /// Delivery times observed per product (SKU).
    #[serde(default)]
    pub lead_times: BTreeMap<String, LeadTime>,
}

/// Everything stored, to rebuild an engine after a restart.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Devices.
    pub devices: Vec<DeviceState>,
    /// Slots.
    pub slots: Vec<SlotState>,
    /// Orders.
    pub orders: Vec<Order>,
    /// Counters and catalog.
    pub meta: Meta,
    /// Members and rules, once stored.
    pub household: Option<Household>,
    /// The most recent audit entries, oldest first.
    pub audit: Vec<AuditEntry>,
}
