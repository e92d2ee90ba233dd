//! The pure decision core: `(state, event, now) → (state', effects)`.
//!
//! No tokio, sled, reqwest or wall clock in here: the daemon and the simulator feed [`Event`]s
//! with the time, and carry the returned [`Effect`]s out (storage, the shop, MQTT, the log).
//!
//! This file owns the [`Engine`] with its read access, and the dispatch of each event: devices
//! go to `devices`, a person's decisions to `decisions`, the shop's answers and placement to
//! `placement`, the reorder pass to `reorder`; a tick runs each of them in turn. The settings
//! are `config`'s.

#[macro_use]
mod text_id;
mod commands;
mod config;
mod decisions;
mod declared;
pub mod dedup;
pub mod devices;
mod errors;
mod events;
pub mod forecast;
pub mod household;
mod id_map;
pub mod inventory;
pub mod lead_time;
pub mod options;
pub mod order;
mod placement;
pub mod policy;
mod reorder;
mod settings;
mod shop_turns;
pub mod shopping;
mod snapshot;
pub mod words;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use replenish_protocol::{DeviceId, FaultCode};

use crate::clock::{DAY_MS, UnixMs};
use forecast::ForecastModel;
use household::{AuditEntry, Household};
use id_map::IdMap;
use inventory::{Announcement, DeviceState, SlotKey, SlotState, slot_key};
use order::{Order, OrderId};
use policy::{ReorderPolicy, RiskPolicy};
use replenish_commerce::{Catalog, Offer};

pub use commands::{PendingCommand, command_name};
pub use config::{DEFAULT_SHOP, EngineConfig, Pairing};
pub use devices::IngestLimits;
pub use errors::EngineError;
pub use events::{Effect, Event, Notice, NoticeKind, OrderEdit, Telemetry};
pub use policy::{ConsumableSettings, PolicyConfig};
pub use shopping::ShopId;
pub use snapshot::{Meta, Snapshot};

/// The decision core. See the module docs.
pub struct Engine {
    config: EngineConfig,
    model: Box<dyn ForecastModel>,
    policy: Box<dyn ReorderPolicy>,
    /// Boxed: a device (its birth) is large, and a map keeps room for more than it holds
    /// (1,000 devices in a B-tree: 1.7 MiB inline, 1.0 boxed).
    devices: IdMap<DeviceId, Box<DeviceState>>,
    /// Boxed for the same reason (3,000 slots in a B-tree: 2.9 MiB inline, 1.7 boxed).
    slots: IdMap<SlotKey, Box<SlotState>>,
    orders: BTreeMap<OrderId, Order>,
    meta: Meta,
    /// Orders with a placement request under way (not stored: after a restart, none is).
    placing: HashSet<OrderId>,
    /// When each open order was last asked about.
    polled_at: HashMap<OrderId, UnixMs>,
    /// Day of the last forecast notice per slot.
    forecast_noticed: HashMap<String, i64, foldhash::fast::RandomState>,
    /// The day each slot was last said to have nothing in stock anywhere.
    nothing_in_stock_noticed: HashMap<String, i64>,
    /// The day each order ready for pickup was last recalled.
    pickup_reminded: HashMap<OrderId, i64>,
    /// Orders whose substitution by the shop was already said.
    substitutions_told: HashSet<OrderId>,
    /// Commands under way.
    commands: commands::Commands,
    /// Slots that changed within the settling time ([`PolicyConfig::settle_ms`]), with their
    /// last change: the tick leaves them until the reports stop (not stored: after a restart
    /// the tick considers every slot).
    settling: HashMap<SlotKey, UnixMs, foldhash::fast::RandomState>,
    /// Ids of orders not yet delivered, cancelled or failed: what the per-report checks scan,
    /// so their cost does not grow with the order history. A closed order may linger in it
    /// until the end of the event that closed it; readers check the state.
    open_orders: BTreeSet<OrderId>,
    household: Household,
    /// The most recent audit entries (all are stored).
    audit: VecDeque<AuditEntry>,
}

/// Audit entries kept in memory for the API; older ones stay in storage only.
pub const AUDIT_IN_MEMORY: usize = 1000;

impl Engine {
    /// A new engine with the default model and policy.
    pub fn new(config: EngineConfig, snapshot: Snapshot) -> Self {
        Self::with_models(
            config,
            snapshot,
            forecast::default_model(),
            Box::new(RiskPolicy),
        )
    }

    /// A new engine with a chosen forecast model and reorder policy.
    pub fn with_models(
        config: EngineConfig,
        snapshot: Snapshot,
        model: Box<dyn ForecastModel>,
        policy: Box<dyn ReorderPolicy>,
    ) -> Self {
        let household = snapshot.household.unwrap_or_else(|| Household {
            rules: config.rules.clone(),
            ..Household::default()
        });
        let open_orders = snapshot
            .orders
            .iter()
            .filter(|o| o.state.is_open())
            .map(|o| o.id.clone())
            .collect();
        let first_shop = config
            .shops
            .first()
            .map_or_else(ShopId::default_shop, |s| s.id.clone());
        let mut meta = snapshot.meta;
        if let Some(catalog) = meta.catalog.take() {
            meta.catalogs.entry(first_shop.clone()).or_insert(catalog);
        }
        let mut audit: VecDeque<AuditEntry> = snapshot.audit.into();
        while audit.len() > AUDIT_IN_MEMORY {
            audit.pop_front();
        }
        Self {
            config,
            household,
            audit,
            model,
            policy,
            devices: snapshot
                .devices
                .into_iter()
                .map(|mut d| {
                    d.migrate();
                    (d.id.clone(), Box::new(d))
                })
                .collect(),
            slots: snapshot
                .slots
                .into_iter()
                .map(|s| (s.key(), Box::new(s)))
                .collect(),
            orders: snapshot
                .orders
                .into_iter()
                .map(|mut o| {
                    if o.shop.is_empty() {
                        o.shop = first_shop.clone();
                    }
                    (o.id.clone(), o)
                })
                .collect(),
            meta,
            placing: HashSet::new(),
            polled_at: HashMap::new(),
            forecast_noticed: HashMap::default(),
            nothing_in_stock_noticed: HashMap::new(),
            pickup_reminded: HashMap::new(),
            substitutions_told: HashSet::new(),
            commands: commands::Commands::default(),
            settling: HashMap::default(),
            open_orders,
        }
    }

    /// Speaks to the household at `now`: its locale, time zone and display names.
    pub fn words(&self, now: UnixMs) -> words::Words<'_> {
        words::Words {
            locale: self.household.rules.locale,
            zone: self.household.rules.zone(),
            now,
            names: &self.config.names,
            shops: &self.config.shops,
            catalogs: &self.meta.catalogs,
        }
    }

    /// An order's news in one sentence, then why its first line was ordered (how long the
    /// slot lasts, when the order arrives, whether that is in time).
    pub fn order_story(&self, order: &Order, now: UnixMs) -> (String, String) {
        let words = self.words(now);
        let slot = self.slot(&slot_key(
            &order.first_line().device,
            &order.first_line().slot,
        ));
        (
            format!("{}.", words.order(order)),
            words.order_why(order, slot),
        )
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Devices by id.
    pub fn devices(&self) -> impl Iterator<Item = &DeviceState> {
        self.devices.sorted().into_iter().map(|(_, d)| &**d)
    }

    /// How many devices the engine knows, and how many of them wait for an owner's
    /// acceptance.
    pub fn device_counts(&self) -> (usize, usize) {
        let waiting = self.devices.unordered().filter(|d| !d.accepted).count();
        (self.devices.len(), waiting)
    }

    /// How many slots the engine knows.
    pub fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// One device by its id.
    pub fn device_by_id(&self, id: &DeviceId) -> Option<&DeviceState> {
        self.devices.get(id).map(|d| &**d)
    }

    /// Devices after `after` in id order (from the first when `None`), for paging.
    pub fn devices_after(&self, after: Option<&DeviceId>) -> impl Iterator<Item = &DeviceState> {
        self.devices.sorted_after(after).into_iter().map(|d| &**d)
    }

    /// One slot by its key, `device/slot`.
    pub fn slot(&self, key: &str) -> Option<&SlotState> {
        self.slots.get(key).map(|s| &**s)
    }

    /// The slots of one device, in the order of its birth.
    pub fn slots_of<'a>(&'a self, device: &'a DeviceState) -> impl Iterator<Item = &'a SlotState> {
        device
            .birth
            .slots
            .iter()
            .filter_map(|s| self.slots.get(&slot_key(&device.id, &s.id)).map(|s| &**s))
    }

    /// Every slot of `device` (declared by its last birth or kept from an earlier one), by slot
    /// id: one pass over the slots, no sort of them all.
    pub fn device_slots(&self, device: &DeviceId) -> Vec<&SlotState> {
        let mut slots: Vec<&SlotState> = self
            .slots
            .unordered()
            .map(|s| &**s)
            .filter(|s| &s.device == device)
            .collect();
        // Keys share the device part: slot id order is key order.
        slots.sort_unstable_by(|a, b| a.spec.id.as_str().cmp(b.spec.id.as_str()));
        slots
    }

    /// Commands sent to a device and not yet acknowledged.
    pub fn pending_commands(&self, device: &DeviceId) -> &[PendingCommand] {
        self.commands.pending(device)
    }

    /// Slots by key.
    pub fn slots(&self) -> impl Iterator<Item = &SlotState> {
        self.slots.sorted().into_iter().map(|(_, s)| &**s)
    }

    /// Orders, oldest first.
    pub fn orders(&self) -> impl DoubleEndedIterator<Item = &Order> {
        self.orders.values()
    }

    /// Orders not yet delivered, cancelled or failed, by id.
    pub fn open_orders(&self) -> impl Iterator<Item = &Order> {
        self.open_orders
            .iter()
            .filter_map(|id| self.orders.get(id))
            .filter(|o| o.state.is_open())
    }

    /// One order.
    pub fn order(&self, id: &str) -> Option<&Order> {
        self.orders.get(id)
    }

    /// One order, to change.
    pub(super) fn order_mut(&mut self, id: &str) -> Result<&mut Order, EngineError> {
        self.orders
            .get_mut(id)
            .ok_or_else(|| EngineError::UnknownOrder(id.to_string()))
    }

    /// A known device, or the error that names it.
    pub(super) fn known_device(&self, id: &DeviceId) -> Result<&DeviceState, EngineError> {
        self.devices
            .get(id)
            .map(|device| &**device)
            .ok_or_else(|| EngineError::UnknownDevice(id.clone()))
    }

    /// A known device, to change.
    pub(super) fn known_device_mut(
        &mut self,
        id: &DeviceId,
    ) -> Result<&mut DeviceState, EngineError> {
        self.devices
            .get_mut(id)
            .map(|device| &mut **device)
            .ok_or_else(|| EngineError::UnknownDevice(id.clone()))
    }

    /// The last catalog fetched from each shop, by shop id.
    pub fn catalogs(&self) -> &BTreeMap<ShopId, Catalog> {
        &self.meta.catalogs
    }

    /// The last catalog of `shop`.
    pub fn catalog_of(&self, shop: &str) -> Option<&Catalog> {
        self.meta.catalogs.get(shop)
    }

    /// The household's currency, in which its budget and approval limit are written: the
    /// first shop's (by its catalog), euros before any catalog is known.
    pub fn home_currency(&self) -> replenish_commerce::Currency {
        shopping::home_currency(&self.config.shops, &self.meta.catalogs)
    }

    /// The shop's name as the household knows it.
    pub fn shop_name<'a>(&'a self, shop: &'a str) -> &'a str {
        self.config
            .shops
            .iter()
            .find(|s| s.id == shop)
            .map_or(shop, |s| s.name.as_str())
    }

    /// Members, rules and what rejections taught.
    pub fn household(&self) -> &Household {
        &self.household
    }

    /// The most recent audit entries, oldest first.
    pub fn audit(&self) -> impl DoubleEndedIterator<Item = &AuditEntry> + ExactSizeIterator {
        self.audit.iter()
    }

    /// Handles one event at time `now`. On error nothing changed.
    pub fn handle(&mut self, event: Event, now: UnixMs) -> Result<Vec<Effect>, EngineError> {
        let mut fx = Vec::new();
        self.dispatch(event, now, &mut fx)?;
        // Every change to an order is saved: keep the index of open ones in step.
        for effect in &fx {
            if let Effect::SaveOrder(order) = effect {
                if order.state.is_open() {
                    self.open_orders.insert(order.id.clone());
                } else {
                    self.open_orders.remove(&order.id);
                }
            }
        }
        Ok(fx)
    }

    fn dispatch(
        &mut self,
        event: Event,
        now: UnixMs,
        fx: &mut Vec<Effect>,
    ) -> Result<(), EngineError> {
        match event {
            Event::Started | Event::Tick => self.tick(now, fx),
            Event::Telemetry { device, message } => self.telemetry(device, message, now, fx)?,
            Event::Catalog { shop, catalog } => {
                if !self.config.shops.iter().any(|s| s.id == shop) {
                    return Err(EngineError::Invalid(format!(
                        "no shop {shop:?} is configured"
                    )));
                }
                self.meta.catalogs.insert(shop, catalog);
                fx.push(Effect::SaveMeta(self.meta.clone()));
                let keys: Vec<SlotKey> = self.slots.sorted_ids();
                for key in keys {
                    self.consider_reorder(&key, now, fx);
                }
            }
            Event::Approve { order_id, by, edit } => self.approve(&order_id, &by, edit, now, fx)?,
            Event::Reject {
                order_id,
                by,
                reason,
                note,
            } => self.reject(&order_id, &by, reason, note, now, fx)?,
            Event::Snooze {
                order_id,
                by,
                hours,
            } => self.snooze(&order_id, &by, hours, now, fx)?,
            Event::Collected { order_id, by } => self.collected(&order_id, &by, now, fx)?,
            Event::Cancel { order_id, by } => self.cancel(&order_id, &by, now, fx)?,
            Event::CancelAnswered { order_id, answer } => {
                self.cancel_answered(&order_id, answer, now, fx)?
            }
            Event::AddMember {
                name,
                role,
                token_hash,
                by,
            } => self.add_member(name, role, token_hash, &by, now, fx)?,
            Event::RemoveMember { member_id, by } => {
                self.remove_member(&member_id, &by, now, fx)?
            }
            Event::SetRules {
                rules,
                currency,
                by,
            } => self.set_rules(rules, currency, &by, now, fx)?,
            Event::AcceptDevice { device, by } => self.accept_device(&device, &by, now, fx)?,
            Event::RemoveDevice { device, by } => self.remove_device(&device, &by, now, fx)?,
            Event::IssueDeviceLogin {
                device,
                password_hash,
                by,
            } => self.issue_device_login(&device, password_hash, &by, now, fx)?,
            Event::ClockOff { device } => self.sync_clock(&device, now, fx),
            Event::Command { device, body, by } => {
                self.command_from_person(&device, body, &by, now, fx)?;
            }
            Event::PlacementSucceeded {
                order_id,
                shop_order,
            } => self.placement_succeeded(&order_id, &shop_order, now, fx)?,
            Event::PlacementFailed {
                order_id,
                error,
                retryable,
            } => self.placement_failed(&order_id, &error, retryable, now, fx)?,
            Event::ShopStatus {
                order_id,
                shop_order,
            } => self.shop_status(&order_id, &shop_order, now, fx)?,
        }
        Ok(())
    }

    fn tick(&mut self, now: UnixMs, fx: &mut Vec<Effect>) {
        self.pending_tick(now, fx);
        self.command_tick(now, fx);
        self.place_due(now, fx);
        self.poll_placed(now, fx);
        self.remind_pickups(now, fx);
        let keys: Vec<SlotKey> = self.slots.sorted_ids();
        for key in keys {
            self.refresh_forecast(&key, now, fx);
            if self.settled(&key, now) {
                self.consider_reorder(&key, now, fx);
            }
        }
    }

    /// Whether `key` has had no report for the settling time (and stops being watched).
    fn settled(&mut self, key: &SlotKey, now: UnixMs) -> bool {
        match self.settling.get(key) {
            Some(last) if now < last.saturating_add(self.config.policy.settle_ms) => false,
            Some(_) => {
                self.settling.remove(key);
                true
            }
            None => true,
        }
    }

    pub(super) fn create_slots(
        &mut self,
        device_id: &DeviceId,
        birth: &Announcement,
        fx: &mut Vec<Effect>,
    ) {
        for spec in &birth.slots {
            let key = slot_key(device_id, &spec.id);
            let kept = self
                .slots
                .get(&key)
                .filter(|s| s.spec.consumable == spec.consumable && s.spec.unit == spec.unit)
                .cloned();
            let slot = match kept {
                Some(mut slot) => {
                    slot.spec = spec.clone();
                    slot
                }
                None => Box::new(SlotState::new(device_id.clone(), spec.clone())),
            };
            fx.push(Effect::SaveSlot(key.clone()));
            self.slots.insert(key, slot);
        }
    }
}

pub(super) fn notice(at: UnixMs, kind: NoticeKind, subject: &str, text: String) -> Effect {
    Effect::Notice(Notice {
        at,
        kind,
        subject: subject.to_string(),
        text,
    })
}

pub(super) fn fault_name(code: FaultCode) -> &'static str {
    match code {
        FaultCode::SensorUnavailable => "sensor_unavailable",
        FaultCode::OutOfRange => "out_of_range",
        FaultCode::CalibrationNeeded => "calibration_needed",
        FaultCode::BufferOverflow => "buffer_overflow",
        FaultCode::Other => "other",
    }
}

fn days_from(now: UnixMs, t: UnixMs) -> String {
    format!("{:.1} days", t.saturating_sub(now) as f64 / DAY_MS as f64)
}

#[cfg(test)]
pub(super) mod tests;
