//! What the API and the page show of the engine's state (the household's devices, slots and
//! orders, paged or whole): views made from the engine's records, with their JSON and
//! OpenAPI schemas, so the engine's own types carry neither.

use replenish_protocol::DeviceId;
use serde::Serialize;

use crate::clock::{HOUR_MS, UnixMs};
use crate::engine::Engine;
use crate::engine::household::{ExpiryDefault, PendingKind};
use crate::engine::order::Order;

/// The state as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StatusView {
    /// The household.
    pub household: String,
    /// The agent's clock.
    pub now_ms: UnixMs,
    /// Devices.
    pub devices: Vec<DeviceView>,
    /// Slots.
    pub slots: Vec<SlotView>,
    /// Orders, oldest first.
    pub orders: Vec<OrderView>,
}

/// A device in the status.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeviceView {
    /// Id.
    pub id: String,
    /// Model.
    pub model: String,
    /// Firmware version.
    pub firmware: String,
    /// Connected now, as far as the agent knows (false while `presence` is unknown).
    pub online: bool,
    /// `online`, `offline`, or `unknown` (not heard from since the agent started).
    pub presence: crate::wire::Presence,
    /// Last heard from.
    pub last_seen_ms: UnixMs,
    /// Part of the household; false while it waits for an owner to accept it.
    pub accepted: bool,
    /// Slots it announced.
    pub slots: Vec<String>,
}

impl From<&crate::engine::inventory::DeviceState> for DeviceView {
    fn from(d: &crate::engine::inventory::DeviceState) -> Self {
        Self {
            id: d.id.to_string(),
            model: d.birth.model.to_string(),
            firmware: d.birth.firmware.to_string(),
            online: d.online(),
            presence: d.presence.into(),
            last_seen_ms: d.last_seen,
            accepted: d.accepted,
            slots: d.birth.slots.iter().map(|s| s.id.to_string()).collect(),
        }
    }
}

/// A slot in the status.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SlotView {
    /// Device id.
    pub device: String,
    /// Slot id.
    pub slot: String,
    /// Consumable.
    pub consumable: String,
    /// Unit: g, ml or count.
    pub unit: String,
    /// Current level, if known.
    pub level: Option<f64>,
    /// Capacity.
    pub capacity: f64,
    /// When the level was reported.
    pub level_at_ms: UnixMs,
    /// Uses counted.
    pub uses: u64,
    /// Mean consumption per day.
    pub rate_per_day: Option<f64>,
    /// Median predicted empty time.
    pub predicted_empty_at_ms: Option<UnixMs>,
    /// The range of the predicted empty time: [P10, P90].
    pub predicted_empty_range_ms: Option<[UnixMs; 2]>,
    /// Time spent empty so far.
    pub empty_hours: f64,
}

/// An order in the status.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OrderView {
    /// The agent's id.
    pub id: String,
    /// Device.
    pub device: String,
    /// Slot.
    pub slot: String,
    /// Consumable.
    pub consumable: String,
    /// Product.
    pub sku: String,
    /// Packs.
    pub packs: u32,
    /// Amount in one pack.
    pub pack_size: f64,
    /// Unit of `pack_size`.
    pub unit: String,
    /// State: proposed, approved, placed, shipped, delivered, cancelled, failed.
    pub state: String,
    /// Why it was ordered.
    pub reason: String,
    /// Total in cents.
    pub total_cents: u64,
    /// The shop's order id, once placed.
    pub shop_order_id: Option<String>,
    /// The shop it goes to (its id in configuration).
    pub shop: String,
    /// How it comes, when the shop offers a choice ("Home delivery", "Click and collect").
    pub fulfilment: Option<String>,
    /// For click and collect: where, and when it is open.
    pub pickup: Option<String>,
    /// Created.
    pub created_at_ms: UnixMs,
    /// Last change.
    pub updated_at_ms: UnixMs,
    /// Delivered.
    pub delivered_at_ms: Option<UnixMs>,
    /// Last error, or why it was rejected.
    pub last_error: Option<String>,
    /// While proposed: `approval` (a person must decide) or `cancel_window` (placed when it
    /// closes unless cancelled).
    pub waiting_for: Option<String>,
    /// Why it waits.
    pub waiting_because: Option<String>,
    /// When the household is (or was) prompted.
    pub prompt_at_ms: Option<UnixMs>,
    /// When it takes its default (placed or skipped).
    pub decides_itself_at_ms: Option<UnixMs>,
    /// What happens then: `order` or `skip`.
    pub default_decision: Option<String>,
    /// Who approved, rejected or cancelled it.
    pub decided_by: Option<String>,
    /// Every line of the order, the one that triggered it first (a bundled order has more
    /// than one; the fields above describe the first), each with why it was ordered.
    pub lines: Vec<OrderLineView>,
}

/// One line of an order in the status.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OrderLineView {
    /// Device.
    pub device: String,
    /// Slot.
    pub slot: String,
    /// Product.
    pub sku: String,
    /// Packs.
    pub packs: u32,
    /// Price of the line in cents.
    pub total_cents: u64,
    /// Why this line was ordered.
    pub reason: String,
}

impl From<&Order> for OrderView {
    fn from(o: &Order) -> Self {
        let first = o.first_line();
        Self {
            id: o.id.to_string(),
            device: first.device.to_string(),
            slot: first.slot.to_string(),
            consumable: first.consumable.to_string(),
            sku: first.sku.clone(),
            packs: first.packs,
            pack_size: first.pack_size,
            unit: first.unit.symbol().to_string(),
            state: o.state.as_str().to_string(),
            reason: first.reason.clone(),
            total_cents: o.total().minor,
            shop_order_id: o.shop_order_id.clone(),
            shop: o.shop.to_string(),
            fulfilment: o.fulfilment.as_ref().map(|f| f.name.clone()),
            pickup: o.fulfilment.as_ref().and_then(|f| match &f.method {
                replenish_commerce::Fulfilment::Pickup(point) => Some(format!(
                    "{}, {} (open {})",
                    point.name, point.address, point.opening_hours
                )),
                replenish_commerce::Fulfilment::Delivery => None,
            }),
            created_at_ms: o.created_at,
            updated_at_ms: o.updated_at,
            delivered_at_ms: o.delivered_at,
            last_error: o.last_error.clone(),
            waiting_for: o.pending.as_ref().map(|p| match p.kind {
                PendingKind::Approval => "approval".to_string(),
                PendingKind::CancelWindow => "cancel_window".to_string(),
            }),
            waiting_because: o.pending.as_ref().map(|p| p.why.clone()),
            prompt_at_ms: o
                .pending
                .as_ref()
                .map(|p| p.prompted_at.unwrap_or(p.prompt_at)),
            decides_itself_at_ms: o.pending.as_ref().and_then(|p| p.expires_at),
            default_decision: o.pending.as_ref().map(|p| match p.on_expiry {
                ExpiryDefault::Order => "order".to_string(),
                ExpiryDefault::Skip => "skip".to_string(),
            }),
            decided_by: o.decided_by.clone(),
            lines: o
                .lines()
                .iter()
                .map(|l| OrderLineView {
                    device: l.device.to_string(),
                    slot: l.slot.to_string(),
                    sku: l.sku.clone(),
                    packs: l.packs,
                    total_cents: l.total.minor,
                    reason: l.reason.clone(),
                })
                .collect(),
        }
    }
}

/// Counts over the whole household, for a paged status.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StatusTotals {
    /// Devices, including those waiting to join.
    pub devices: usize,
    /// Devices waiting for an owner to accept them.
    pub waiting_devices: usize,
    /// Slots.
    pub slots: usize,
    /// Orders ever made.
    pub orders: usize,
}

/// One page of the state: some devices, their slots and their open orders.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StatusPage {
    /// The household.
    pub household: String,
    /// The agent's clock.
    pub now_ms: UnixMs,
    /// Counts over every page.
    pub totals: StatusTotals,
    /// This page's devices, in id order.
    pub devices: Vec<DeviceView>,
    /// Their slots.
    pub slots: Vec<SlotView>,
    /// Open orders (not yet delivered, cancelled or failed) with a line for these slots.
    pub orders: Vec<OrderView>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

/// Most bytes of device and slot data in one status page (orders come on top).
pub const STATUS_PAGE_BYTES: usize = 48 * 1024;

/// A page of the state: up to `limit` devices after `cursor` (a device id), fewer if their
/// JSON would pass [`STATUS_PAGE_BYTES`]; at least one.
pub fn status_page(
    engine: &Engine,
    now: UnixMs,
    cursor: Option<&DeviceId>,
    limit: usize,
) -> StatusPage {
    let mut devices = Vec::new();
    let mut slots = Vec::new();
    let mut orders: Vec<OrderView> = Vec::new();
    let mut bytes = 0;
    let mut next_cursor = None;
    let mut page = engine.devices_after(cursor).peekable();
    while let Some(device) = page.next() {
        let view = DeviceView::from(device);
        let device_slots: Vec<SlotView> =
            engine.slots_of(device).map(|s| slot_view(s, now)).collect();
        let size = serde_json::to_vec(&view).map_or(0, |v| v.len())
            + serde_json::to_vec(&device_slots).map_or(0, |v| v.len());
        if !devices.is_empty() && bytes + size > STATUS_PAGE_BYTES {
            next_cursor = devices.last().map(|d: &DeviceView| d.id.clone());
            break;
        }
        bytes += size;
        devices.push(view);
        slots.extend(device_slots);
        if devices.len() >= limit {
            if page.peek().is_some() {
                next_cursor = Some(device.id.to_string());
            }
            break;
        }
    }
    let on_page: std::collections::HashSet<&str> = devices.iter().map(|d| d.id.as_str()).collect();
    orders.extend(
        engine
            .open_orders()
            .filter(|o| {
                o.lines()
                    .iter()
                    .any(|l| on_page.contains(l.device.as_str()))
            })
            .map(OrderView::from),
    );
    let (devices_total, waiting_devices) = engine.device_counts();
    StatusPage {
        household: engine.config().household.to_string(),
        now_ms: now,
        totals: StatusTotals {
            devices: devices_total,
            waiting_devices,
            slots: engine.slot_count(),
            orders: engine.orders().count(),
        },
        devices,
        slots,
        orders,
        next_cursor,
    }
}

fn slot_view(s: &crate::engine::inventory::SlotState, now: UnixMs) -> SlotView {
    SlotView {
        device: s.device.to_string(),
        slot: s.spec.id.to_string(),
        consumable: s.spec.consumable.to_string(),
        unit: s.spec.unit.symbol().to_string(),
        level: s.level,
        capacity: f64::from(s.spec.capacity),
        level_at_ms: s.level_at,
        uses: s.uses,
        rate_per_day: s.forecast.as_ref().map(|f| f.rate_per_day),
        predicted_empty_at_ms: s.forecast.as_ref().and_then(|f| f.empty_at),
        predicted_empty_range_ms: s
            .forecast
            .as_ref()
            .and_then(|f| Some([f.empty_earliest?, f.empty_latest?])),
        empty_hours: s.empty_ms_until(now) as f64 / HOUR_MS as f64,
    }
}

/// The whole state, for the simulator and tests (the API pages it: [`status_page`]).
pub fn status_view(engine: &Engine, now: UnixMs) -> StatusView {
    StatusView {
        household: engine.config().household.to_string(),
        now_ms: now,
        devices: engine.devices().map(DeviceView::from).collect(),
        slots: engine.slots().map(|s| slot_view(s, now)).collect(),
        orders: engine.orders().map(OrderView::from).collect(),
    }
}
