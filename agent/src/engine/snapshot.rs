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
    /// first shop) when the engine starts.
    #[serde(default, deserialize_with = "stored_catalog", skip_serializing)]
    pub catalog: Option<Catalog>,
    /// The last catalog fetched from each shop, by shop id.
    #[serde(default)]
    pub catalogs: BTreeMap<ShopId, Catalog>,
    /// Delivery times observed per product (SKU).
    #[serde(default)]
    pub lead_times: BTreeMap<String, LeadTime>,
}

/// A stored catalog: the contract's, or the sandbox shop's wire catalog that agents before
/// replenish-commerce stored (converted). One that reads as neither is dropped (the next
/// fetch replaces it) rather than making the counters beside it unreadable.
fn stored_catalog<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Catalog>, D::Error> {
    let Some(value) = Option::<serde_json::Value>::deserialize(deserializer)? else {
        return Ok(None);
    };
    if let Ok(catalog) = serde_json::from_value::<Catalog>(value.clone()) {
        return Ok(Some(catalog));
    }
    Ok(
        serde_json::from_value::<replenish_commerce::sandbox::wire::Catalog>(value)
            .ok()
            .map(replenish_commerce::sandbox::catalog_from_wire),
    )
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
