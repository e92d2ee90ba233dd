//! What devices say: births and last wills (presence), reports (de-duplicated, checked against
//! physical bounds, applied to their slot and the slots they drive), pairing of new devices
//! (bounded); acks go to `commands.rs`, which also sends what the agent says back.

use replenish_protocol::{Birth, DeviceId, Report, ReportBody, Status};

use super::dedup::Unseen;
use super::inventory::{Announcement, DeviceState, Presence, SlotKey, slot_key};
use super::{Effect, Engine, EngineError, NoticeKind, Pairing, Telemetry, fault_name, notice};
use crate::clock::{MINUTE_MS, UnixMs};

/// 2020-01-01T00:00:00Z: no report of this product can be older.
pub const EARLIEST_TS_MS: UnixMs = 1_577_836_800_000;

/// Limits on what devices may send, and how commands are retried.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestLimits {
    /// An amount above this multiple of the slot's capacity is refused as impossible.
    pub capacity_multiple: f64,
    /// A report stamped later than this past the agent's clock is refused, and the device's
    /// clock is set with `time_sync`.
    pub clock_skew_ms: UnixMs,
    /// Devices waiting for an owner's acceptance, at most; a new one pushes out the oldest.
    pub max_waiting_devices: usize,
    /// A waiting device asks the household (a notice) at most this often.
    pub pairing_notice_every_ms: UnixMs,
    /// A command not acknowledged within this is sent again (doubling each time).
    pub command_timeout_ms: UnixMs,
    /// Sends of one command, at most, before it is given up.
    pub command_attempts: u32,
}

impl Default for IngestLimits {
    fn default() -> Self {
        Self {
            capacity_multiple: 2.0,
            clock_skew_ms: 5 * MINUTE_MS,
            max_waiting_devices: 32,
            pairing_notice_every_ms: 10 * MINUTE_MS,
            command_timeout_ms: 30_000,
            command_attempts: 3,
        }
    }
}

impl Engine {
    pub(super) fn telemetry(
        &mut self,
        device_id: DeviceId,
        message: Telemetry,
        now: UnixMs,
        fx: &mut Vec<Effect>,
    ) -> Result<(), EngineError> {
        match message {
            Telemetry::Status(status) => match *status {
                Status::Online(birth) => self.birth(device_id, birth, now, fx),
                Status::Offline => self.offline(device_id, now, fx)?,
            },
            Telemetry::Report(report) => self.report(device_id, report, now, fx)?,
            Telemetry::Ack(ack) => self.ack(device_id, ack, now, fx)?,
        }
        Ok(())
    }

    fn birth(&mut self, device_id: DeviceId, birth: Birth, now: UnixMs, fx: &mut Vec<Effect>) {
        let birth = Announcement::from(birth);
        let known = self.devices.get(&device_id);
        let was_online = known.is_some_and(|d| d.online());
        let is_new = known.is_none();
        let accepted = match known {
            Some(known) => known.accepted,
            // An owner who gave the device its login has accepted it already.
            None => {
                self.config.pairing == Pairing::Open
                    || self
                        .household
                        .device_logins
                        .contains_key(device_id.as_str())
            }
        };
        // A waiting device asks once per new birth, and at most every so often.
        let every = self.config.ingest.pairing_notice_every_ms;
        let asks = !accepted
            && known.is_none_or(|d| {
                (d.birth != birth || !d.online())
                    && d.pairing_asked_at.is_none_or(|at| now >= at + every)
            });
        if is_new && !accepted {
            self.make_room_for_waiting(now, fx);
        }
        let device = self
            .devices
            .entry(device_id.clone())
            .or_insert_with(|| Box::new(DeviceState::new(device_id.clone(), birth.clone(), now)));
        if device.dedup.birth(birth.boot) {
            tracing::warn!(device = %device_id, boot = birth.boot, "boot counter went back: the device's history starts over");
        }
        device.dedup.set_buffer(birth.buffer);
        // A late birth of an older boot does not replace the newer one's description (nor its
        // slots).
        let current = device.dedup.current_boot() == Some(birth.boot);
        if current {
            device.birth = birth.clone();
        }
        if accepted && current {
            self.create_slots(&device_id, &birth, fx);
        }
        let Some(device) = self.devices.get_mut(&device_id) else {
            return;
        };
        device.presence = Presence::Online;
        device.accepted = accepted;
        device.last_seen = now;
        if asks {
            device.pairing_asked_at = Some(now);
        }
        fx.push(Effect::SaveDevice(device.id.clone()));
        if asks {
            let text = format!(
                "{device_id} ({} firmware {}) asks to join; an owner must accept it",
                device.birth.model, device.birth.firmware
            );
            fx.push(notice(now, NoticeKind::DeviceWaiting, &device_id, text));
        }
        if accepted && !was_online {
            let text = format!(
                "{} online: {} firmware {}, boot {}",
                device_id, device.birth.model, device.birth.firmware, device.birth.boot
            );
            fx.push(notice(now, NoticeKind::DeviceOnline, &device_id, text));
        }
    }

    /// Keeps the waiting list bounded: the device that asked longest ago gives way.
    fn make_room_for_waiting(&mut self, now: UnixMs, fx: &mut Vec<Effect>) {
        let limit = self.config.ingest.max_waiting_devices;
        loop {
            // The oldest by time and id: the map's order does not matter.
            let waiting = self.devices.unordered().filter(|d| !d.accepted);
            if waiting.clone().count() < limit.max(1) {
                return;
            }
            let Some(oldest) = waiting
                .min_by_key(|d| (d.pairing_asked_at.unwrap_or(d.last_seen), d.id.clone()))
                .map(|d| d.id.clone())
            else {
                return;
            };
            self.devices.remove(&oldest);
            self.commands.forget(&oldest);
            fx.push(Effect::DeleteDevice {
                device: oldest.clone(),
                slots: Vec::new(),
            });
            fx.push(Effect::PairingDropped {
                device: oldest.clone(),
            });
            let text = format!(
                "{oldest} stopped waiting to join: too many new devices at once (at most {limit})"
            );
            fx.push(notice(now, NoticeKind::DeviceRemoved, &oldest, text));
        }
    }

    fn offline(
        &mut self,
        device_id: DeviceId,
        now: UnixMs,
        fx: &mut Vec<Effect>,
    ) -> Result<(), EngineError> {
        let device = self.known_device_mut(&device_id)?;
        if device.presence != Presence::Offline {
            let was_online = device.online();
            device.presence = Presence::Offline;
            device.last_seen = now;
            fx.push(Effect::SaveDevice(device.id.clone()));
            if was_online {
                let text = format!("{device_id} offline");
                fx.push(notice(now, NoticeKind::DeviceOffline, &device_id, text));
            }
        }
        Ok(())
    }

    /// Checks a report against what its slot can physically hold and the time it may carry.
    fn check_bounds(
        &self,
        device: &DeviceId,
        report: &Report,
        capacity: Option<f32>,
        now: UnixMs,
    ) -> Result<(), EngineError> {
        if report.ts != 0
            && (report.ts < EARLIEST_TS_MS
                || report.ts > now.saturating_add(self.config.ingest.clock_skew_ms))
        {
            return Err(EngineError::TimestampOutOfRange {
                device: device.clone(),
                ts: report.ts,
            });
        }
        let Some(capacity) = capacity else {
            return Ok(());
        };
        let most = f64::from(capacity) * self.config.ingest.capacity_multiple;
        let amounts: &[(&'static str, f32)] = match &report.body {
            ReportBody::Level { remaining, .. } => &[("remaining", *remaining)],
            ReportBody::Usage { amount, .. } => &[("amount", *amount)],
            ReportBody::Refill { before, after, .. } => &[("before", *before), ("after", *after)],
            ReportBody::Fault { .. } => &[],
        };
        for &(field, value) in amounts {
            let value = f64::from(value);
            if !value.is_finite() || value < 0.0 || value > most {
                return Err(EngineError::ValueOutOfRange {
                    device: device.clone(),
                    field,
                    value,
                    most,
                });
            }
        }
        Ok(())
    }

    fn report(
        &mut self,
        device_id: DeviceId,
        report: Report,
        now: UnixMs,
        fx: &mut Vec<Effect>,
    ) -> Result<(), EngineError> {
        let device = self.known_device(&device_id)?;
        if !device.accepted {
            return Err(EngineError::NotAccepted(device_id));
        }
        let spec = match report.body.slot() {
            Some(slot) => {
                let spec = device.birth.slots.iter().find(|s| &s.id == slot);
                match spec {
                    Some(spec) if self.slots.contains_key(&slot_key(&device_id, slot)) => {
                        Some(spec)
                    }
                    _ => {
                        return Err(EngineError::UnknownSlot {
                            device: device_id.clone(),
                            slot: slot.clone(),
                        });
                    }
                }
            }
            None => None,
        };
        self.check_bounds(&device_id, &report, spec.map(|s| s.capacity), now)?;
        match device.dedup.check(report.boot, report.seq) {
            Unseen::New => {}
            Unseen::Duplicate => {
                return Err(EngineError::Duplicate {
                    device: device_id,
                    boot: report.boot,
                    seq: report.seq,
                });
            }
            Unseen::TooOld => {
                return Err(EngineError::TooOld {
                    device: device_id,
                    boot: report.boot,
                    seq: report.seq,
                });
            }
        }
        let key = report.body.slot().map(|slot| slot_key(&device_id, slot));
        let at = if report.ts == 0 { now } else { report.ts };
        let needs_time = report.ts == 0;
        let mut current_boot = None;
        if let Some(device) = self.devices.get_mut(&device_id) {
            device.dedup.accept(report.boot, report.seq);
            current_boot = device.dedup.current_boot();
            device.last_seen = now;
            device.presence = Presence::Online;
            fx.push(Effect::SaveDeviceSeen(device.id.clone()));
        }
        if needs_time {
            self.sync_clock(&device_id, now, fx);
        }
        match (key, report.body) {
            (Some(key), ReportBody::Level { remaining, .. }) => {
                if let Some(slot) = self.slots.get_mut(&key) {
                    // A level older than the one known (stamped earlier, or unstamped from a
                    // boot before the current one) is history, not what the slot holds now.
                    let stale =
                        at < slot.level_at || (report.ts == 0 && Some(report.boot) != current_boot);
                    if stale {
                        return Ok(());
                    }
                    let was_empty = slot.empty_since.is_some();
                    let consumed = slot.set_level(f64::from(remaining), at);
                    if !was_empty && slot.empty_since.is_some() {
                        let text = format!("{key} is empty");
                        fx.push(notice(at, NoticeKind::Empty, &key, text));
                    }
                    self.drive_linked(&device_id, &key, consumed, 0, at, now, fx);
                }
                self.after_slot_change(&device_id, &key, now, fx);
            }
            (Some(key), ReportBody::Usage { amount, uses, .. }) => {
                if let Some(slot) = self.slots.get_mut(&key) {
                    let consumed = slot.record_usage(f64::from(amount), uses, at);
                    self.drive_linked(&device_id, &key, consumed, uses, at, now, fx);
                }
                self.after_slot_change(&device_id, &key, now, fx);
            }
            (Some(key), ReportBody::Refill { before, after, .. }) => {
                let mut unexplained = false;
                if let Some(slot) = self.slots.get_mut(&key) {
                    let unattributed = slot.unattributed_refill;
                    slot.refill(f64::from(before), f64::from(after), at);
                    unexplained = slot.unattributed_refill > unattributed;
                    let unit = slot.spec.unit.symbol();
                    let text = format!("{key} refilled: {before:.0} -> {after:.0} {unit}");
                    fx.push(notice(at, NoticeKind::Refill, &key, text));
                }
                if unexplained {
                    self.collected_by_refill(&key, at, now, fx);
                }
                self.after_slot_change(&device_id, &key, now, fx);
            }
            (slot_key, ReportBody::Fault { code, detail, .. }) => {
                let subject = slot_key.map_or_else(|| device_id.to_string(), String::from);
                let text = format!("{subject} fault {}: {detail}", fault_name(code));
                fx.push(notice(at, NoticeKind::DeviceFault, &subject, text));
            }
            (None, _) => {}
        }
        Ok(())
    }

    /// A refill the cupboard cannot explain, while a click-and-collect order for the slot is
    /// ready: the household collected it. The appliance confirms what the shop may not know.
    fn collected_by_refill(&mut self, key: &str, at: UnixMs, now: UnixMs, fx: &mut Vec<Effect>) {
        let Some(slot) = self.slots.get(key) else {
            return;
        };
        let ready = self
            .open_orders
            .iter()
            .filter_map(|id| self.orders.get(id))
            .find(|o| {
                o.state == super::order::OrderState::Shipped
                    && o.updated_at <= at
                    && o.covers(&slot.device, &slot.spec.id)
                    && matches!(
                        o.fulfilment.as_ref().map(|f| &f.method),
                        Some(replenish_commerce::Fulfilment::Pickup(_))
                    )
            })
            .map(|o| o.id.clone());
        if let Some(order_id) = ready
            && self.mark_collected(&order_id, now, fx).is_ok()
        {
            self.record_as(
                "the appliance (a refill)".into(),
                "collected",
                &order_id,
                format!("{key} was refilled with more than the cupboard held"),
                now,
                fx,
            );
        }
    }

    /// The slot `driver` consumed `amount` in `uses` at `at`: the slots of the same device
    /// declared driven by it (by the household's config or the device's birth; `declared`)
    /// count it, are forecast again and stored. Only this device's slots, and nothing at all
    /// while nothing declares a link.
    #[allow(clippy::too_many_arguments)]
    fn drive_linked(
        &mut self,
        device_id: &DeviceId,
        driver: &str,
        amount: f64,
        uses: u16,
        at: UnixMs,
        now: UnixMs,
        fx: &mut Vec<Effect>,
    ) {
        if (amount <= 0.0 && uses == 0) || !self.may_drive(device_id) {
            return;
        }
        let (Some(device), Some(driver)) = (self.devices.get(device_id), self.slots.get(driver))
        else {
            return;
        };
        let driven: Vec<(SlotKey, f64)> = device
            .birth
            .slots
            .iter()
            .filter(|spec| spec.id != driver.spec.id)
            .filter_map(|spec| {
                let link = self.link_of(Some(device), spec)?;
                let measure = link.measure.of(amount, uses);
                (link.driver.is(&driver.spec) && measure > 0.0)
                    .then(|| (slot_key(device_id, &spec.id), measure))
            })
            .collect();
        for (key, measure) in driven {
            let Some(slot) = self.slots.get_mut(&key) else {
                continue;
            };
            slot.link.get_or_insert_default().driven(at, measure);
            self.refresh_forecast(&key, now, fx);
            fx.push(Effect::SaveSlot(key));
        }
    }

    /// A slot changed: it is forecast again and stored (whether or not its level is known yet,
    /// so nothing acknowledged is lost), and each of the device's slots is considered for
    /// reorder, at once or, with a settling time, by the first tick after the reports stop.
    /// Only this device's slots: the cost of a report does not grow with the household.
    fn after_slot_change(
        &mut self,
        device_id: &DeviceId,
        changed: &str,
        now: UnixMs,
        fx: &mut Vec<Effect>,
    ) {
        // Only the changed slot is forecast again: the others' forecasts do not depend on this
        // report (the tick renews them all).
        self.refresh_forecast(changed, now, fx);
        // Stored with its new forecast (whether or not its level is known yet), before any
        // order the forecast leads to.
        if let Some((key, _)) = self.slots.get_key_value(changed) {
            fx.push(Effect::SaveSlot(key.clone()));
            if self.config.policy.settle_ms > 0 {
                self.settling.insert(key.clone(), now);
                return;
            }
        }
        // Without settling (the agent settles by default), every slot of the device now.
        let keys: Vec<SlotKey> = self
            .devices
            .get(device_id)
            .map(|d| {
                d.birth
                    .slots
                    .iter()
                    .map(|s| slot_key(device_id, &s.id))
                    .collect()
            })
            .unwrap_or_default();
        for key in &keys {
            self.consider_reorder(key, now, fx);
        }
    }
}

#[cfg(test)]
pub(super) mod tests;
