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
            let waiting = self.devices.values().filter(|d| !d.accepted);
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
        let device = self
            .devices
            .get_mut(&device_id)
            .ok_or_else(|| EngineError::UnknownDevice(device_id.clone()))?;
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
        let device = self
            .devices
            .get(&device_id)
            .ok_or_else(|| EngineError::UnknownDevice(device_id.clone()))?;
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
            fx.push(Effect::SaveDevice(device.id.clone()));
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
    /// reorder. Only this device's slots: the cost of a report does not grow with the
    /// household.
    fn after_slot_change(
        &mut self,
        device_id: &DeviceId,
        changed: &str,
        now: UnixMs,
        fx: &mut Vec<Effect>,
    ) {
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
        // Only the changed slot is forecast again: the others' forecasts do not depend on this
        // report (the tick renews them all).
        self.refresh_forecast(changed, now, fx);
        // Stored with its new forecast (whether or not its level is known yet), before any
        // order the forecast leads to.
        if let Some((key, _)) = self.slots.get_key_value(changed) {
            fx.push(Effect::SaveSlot(key.clone()));
        }
        for key in &keys {
            self.consider_reorder(key, now, fx);
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::tests::{T0, birth_with, engine, id};
    use super::super::{Engine, EngineConfig, Event, Snapshot};
    use super::*;
    use crate::clock::HOUR_MS;
    use crate::engine::household::Mode;
    use crate::store::{self, MemoryStore};
    use replenish_protocol::{SensorKind, Unit};

    fn birth_of(boot: u32, sensor: SensorKind) -> Telemetry {
        let slots = [("brews", "coffee_brews", Unit::Count, 1000.0)];
        let mut birth = birth_with("coffee-maker", &slots);
        birth.slots[0].sensor = sensor;
        birth.boot = boot;
        birth.buffer = Some(500);
        Telemetry::Status(Box::new(Status::Online(birth)))
    }

    pub(in crate::engine) fn event(device: &str, message: Telemetry) -> Event {
        Event::Telemetry {
            device: id(device),
            message,
        }
    }

    pub(in crate::engine) fn report(
        boot: u32,
        seq: u32,
        ts: UnixMs,
        body: ReportBody,
    ) -> Telemetry {
        Telemetry::Report(Report {
            boot,
            seq,
            ts,
            body,
        })
    }

    fn usage(boot: u32, seq: u32) -> Telemetry {
        report(
            boot,
            seq,
            T0,
            ReportBody::Usage {
                slot: id("brews"),
                amount: 1.0,
                uses: 1,
            },
        )
    }

    pub(in crate::engine) fn brewer() -> Engine {
        let mut engine = engine(Mode::Auto);
        engine
            .handle(event("brewer", birth_of(1, SensorKind::Usage)), T0)
            .unwrap();
        engine
    }

    fn uses(engine: &Engine) -> u64 {
        engine.slot("brewer/brews").map_or(0, |s| s.uses)
    }

    #[test]
    fn alternating_boots_count_every_use_once() {
        let mut engine = brewer();
        for seq in 1..=4 {
            engine.handle(event("brewer", usage(1, seq)), T0).unwrap();
        }
        engine
            .handle(event("brewer", birth_of(2, SensorKind::Usage)), T0)
            .unwrap();
        for seq in 1..=4 {
            engine.handle(event("brewer", usage(2, seq)), T0).unwrap();
        }
        // Late messages of boot 1 arrive between those of boot 2, again and again.
        for _ in 0..5 {
            for seq in 1..=4 {
                assert!(engine.handle(event("brewer", usage(1, seq)), T0).is_err());
                assert!(engine.handle(event("brewer", usage(2, seq)), T0).is_err());
            }
        }
        assert_eq!(uses(&engine), 8);
        // One never seen from the old boot still counts, once.
        engine.handle(event("brewer", usage(1, 5)), T0).unwrap();
        assert!(engine.handle(event("brewer", usage(1, 5)), T0).is_err());
        assert_eq!(uses(&engine), 9);
        let brewer = engine.devices().find(|d| d.id.as_str() == "brewer");
        assert_eq!(
            brewer.map(|d| d.birth.boot),
            Some(2),
            "the newer boot's birth stays"
        );
    }

    #[test]
    fn a_report_far_behind_is_applied_once() {
        let mut engine = brewer();
        for seq in 100..400 {
            engine.handle(event("brewer", usage(1, seq)), T0).unwrap();
        }
        engine.handle(event("brewer", usage(1, 7)), T0).unwrap();
        assert!(matches!(
            engine.handle(event("brewer", usage(1, 7)), T0),
            Err(EngineError::Duplicate { .. })
        ));
        assert_eq!(uses(&engine), 301);
    }

    #[test]
    fn usage_before_any_level_is_stored_and_survives_a_restart() {
        let store = MemoryStore::default();
        let mut engine = brewer();
        let mut saved = Vec::new();
        for seq in 1..=3 {
            saved.extend(engine.handle(event("brewer", usage(1, seq)), T0).unwrap());
        }
        let saved_slot = saved.iter().find_map(|e| match e {
            Effect::SaveSlot(key) => engine.slot(key),
            _ => None,
        });
        assert_eq!(
            saved_slot.map(|s| s.uses),
            Some(3),
            "the slot is saved though its level is unknown"
        );
        // What the store holds after the engine's effects (the birth's too, which `brewer`
        // did not keep: a fresh engine's).
        let mut fresh = Engine::new(engine.config().clone(), Snapshot::default());
        let birth = fresh
            .handle(event("brewer", birth_of(1, SensorKind::Usage)), T0)
            .unwrap();
        for (source, effects) in [(&fresh, &birth), (&engine, &saved)] {
            for effect in effects {
                store::save_effect(&store, &|t, k| store::engine_record(source, t, k), effect)
                    .unwrap();
            }
        }
        let restarted = Engine::new(
            engine.config().clone(),
            store::load_snapshot(&store).unwrap(),
        );
        assert_eq!(uses(&restarted), 3);
        let again = restarted
            .devices()
            .find(|d| d.id.as_str() == "brewer")
            .unwrap();
        assert_eq!(
            again.dedup.check(1, 2),
            Unseen::Duplicate,
            "de-dup survives"
        );
        assert_eq!(again.presence, Presence::Unknown, "unknown after a restart");
    }

    #[test]
    fn impossible_values_and_times_are_refused_and_change_nothing() {
        let mut engine = engine(Mode::Auto);
        let before = engine.slot("coffee/beans").cloned();
        let level = |seq, ts, remaining| {
            event(
                "coffee",
                report(
                    1,
                    seq,
                    ts,
                    ReportBody::Level {
                        slot: id("beans"),
                        remaining,
                    },
                ),
            )
        };
        let cases = [
            (level(1, T0, 3e38), "value_out_of_range"),
            (level(2, T0, 2001.0), "value_out_of_range"),
            (level(3, u64::MAX, 10.0), "timestamp_out_of_range"),
            (level(4, 1_000, 10.0), "timestamp_out_of_range"),
            (
                level(5, T0 + 10 * MINUTE_MS, 10.0),
                "timestamp_out_of_range",
            ),
        ];
        for (bad, label) in cases {
            let error = engine.handle(bad, T0).unwrap_err();
            assert_eq!(error.label(), label, "{error}");
        }
        assert_eq!(engine.slot("coffee/beans").cloned(), before);
        // Within the capacity multiple and the skew: accepted, with the same seq numbers.
        engine
            .handle(level(1, T0 + 4 * MINUTE_MS, 1999.0), T0)
            .unwrap();
    }

    #[test]
    fn a_late_level_is_counted_once_and_leaves_the_current_level() {
        use super::super::tests::level;
        let mut engine = engine(Mode::Auto);
        let hour = crate::clock::HOUR_MS;
        engine
            .handle(level(1, T0 + hour, 500.0), T0 + hour)
            .unwrap();
        engine
            .handle(level(2, T0 + 2 * hour, 400.0), T0 + 2 * hour)
            .unwrap();
        // Measured before both, delivered after: accepted (never seen), not the level now.
        engine
            .handle(level(3, T0 + hour / 2, 800.0), T0 + 2 * hour)
            .unwrap();
        assert!(
            engine
                .handle(level(3, T0 + hour / 2, 800.0), T0 + 2 * hour)
                .is_err()
        );
        let beans = engine.slot("coffee/beans").unwrap();
        assert_eq!(beans.level, Some(400.0));
        assert_eq!(beans.level_at, T0 + 2 * hour);
    }

    #[test]
    fn the_waiting_list_is_bounded_and_a_device_asks_at_most_every_ten_minutes() {
        let mut config = EngineConfig::new(id("home"), "inst".into());
        config.ingest.max_waiting_devices = 3;
        let mut engine = Engine::new(config, Snapshot::default());
        let mut dropped = Vec::new();
        for i in 0..10u64 {
            let name = format!("stranger-{i}");
            let fx = engine
                .handle(event(&name, birth_of(1, SensorKind::Usage)), T0 + i * 1000)
                .unwrap();
            dropped.extend(fx.into_iter().filter_map(|e| match e {
                Effect::PairingDropped { device } => Some(device.to_string()),
                _ => None,
            }));
        }
        assert_eq!(engine.devices().filter(|d| !d.accepted).count(), 3);
        assert_eq!(dropped.len(), 7);
        assert_eq!(dropped[0], "stranger-0", "the oldest gives way");
        // The newest reconnects again and again: one notice per ten minutes, not per birth.
        let asks = |engine: &mut Engine, at: UnixMs| {
            engine
                .handle(
                    event("stranger-9", Telemetry::Status(Box::new(Status::Offline))),
                    at,
                )
                .unwrap();
            engine
                .handle(event("stranger-9", birth_of(1, SensorKind::Usage)), at)
                .unwrap()
                .iter()
                .filter(|e| matches!(e, Effect::Notice(n) if n.kind == NoticeKind::DeviceWaiting))
                .count()
        };
        assert_eq!(asks(&mut engine, T0 + 20_000), 0);
        assert_eq!(asks(&mut engine, T0 + 9 * MINUTE_MS), 0);
        assert_eq!(asks(&mut engine, T0 + 11 * MINUTE_MS), 1);
    }

    #[test]
    fn presence_is_unknown_after_a_restart_until_the_device_speaks() {
        let engine_before = engine(Mode::Auto);
        let snapshot = Snapshot {
            devices: engine_before.devices().cloned().collect(),
            slots: engine_before.slots().cloned().collect(),
            ..Snapshot::default()
        };
        // Presence is not stored.
        let stored: Vec<DeviceState> = snapshot
            .devices
            .iter()
            .map(|d| serde_json::from_slice(&serde_json::to_vec(d).unwrap()).unwrap())
            .collect();
        let mut engine = Engine::new(
            engine_before.config().clone(),
            Snapshot {
                devices: stored,
                ..snapshot
            },
        );
        let coffee = |e: &Engine| e.devices().next().map(|d| d.presence);
        assert_eq!(coffee(&engine), Some(Presence::Unknown));
        engine
            .handle(
                event("coffee", Telemetry::Status(Box::new(Status::Offline))),
                T0,
            )
            .unwrap();
        assert_eq!(
            coffee(&engine),
            Some(Presence::Offline),
            "its retained will"
        );
        engine
            .handle(super::super::tests::level(1, T0, 500.0), T0)
            .unwrap();
        assert_eq!(coffee(&engine), Some(Presence::Online), "it spoke");
    }

    #[test]
    fn old_stored_windows_are_carried_over() {
        let engine_before = engine(Mode::Auto);
        let mut json = serde_json::to_value(engine_before.devices().next().unwrap()).unwrap();
        let object = json.as_object_mut().unwrap();
        object.remove("dedup");
        object.insert(
            "window".into(),
            serde_json::json!({"boot": 1, "highest": 40, "seen": 1}),
        );
        let device: DeviceState = serde_json::from_value(json).unwrap();
        let engine = Engine::new(
            engine_before.config().clone(),
            Snapshot {
                devices: vec![device],
                ..Snapshot::default()
            },
        );
        let dedup = &engine.devices().next().unwrap().dedup;
        assert_eq!(dedup.check(1, 40), Unseen::Duplicate);
        assert_eq!(dedup.check(1, 39), Unseen::New);
        assert_eq!(dedup.check(1, 41), Unseen::New);
    }

    /// A coffee maker whose descaler tablets are used every 200 brews, as the household's
    /// config says (`config_every`) and as its birth declares (`device_every`).
    fn descaling_maker(config_every: Option<f64>, device_every: Option<f32>) -> Engine {
        use crate::engine::forecast::linked::{DrivenBy, Measure};
        let mut config = EngineConfig::new(id("home"), "inst".into());
        config.pairing = Pairing::Open;
        config.rules.default_mode = Mode::Approve;
        if let Some(every) = config_every {
            config.consumables.insert(
                "descaler_tablets".into(),
                crate::engine::ConsumableSettings {
                    driven_by: Some(DrivenBy {
                        consumable: "coffee_beans".into(),
                        every,
                        measure: Measure::Uses,
                    }),
                    ..Default::default()
                },
            );
        }
        let usage = device_every.map(|every| {
            let mut usage = heapless::Vec::new();
            let _ = usage.push(replenish_protocol::SlotUse {
                slot: id("descaler"),
                every_days: None,
                per: Some(replenish_protocol::SlotDriver {
                    slot: id("beans"),
                    every,
                    counts: replenish_protocol::DriverMeasure::Uses,
                }),
            });
            usage
        });
        let mut engine = Engine::new(config, Snapshot::default());
        let mut birth = birth_with(
            "coffee-maker",
            &[
                ("beans", "coffee_beans", Unit::G, 500.0),
                ("descaler", "descaler_tablets", Unit::Count, 6.0),
            ],
        );
        birth.buffer = Some(64);
        birth.usage = usage;
        let birth = Telemetry::Status(Box::new(Status::Online(birth)));
        engine.handle(event("maker", birth), T0).unwrap();
        engine
    }

    /// Ten days of five brews, a tablet, twenty more days of five brews: the descaler's
    /// forecast (what is left to its next use, days until it runs out).
    fn descaler_after_a_month(mut engine: Engine) -> (Engine, f64, f64) {
        use crate::clock::DAY_MS;
        let mut seq = 0;
        let mut send = |engine: &mut Engine, at: UnixMs, body: ReportBody| {
            seq += 1;
            engine
                .handle(event("maker", report(1, seq, at, body)), at)
                .unwrap();
        };
        let brews = || ReportBody::Usage {
            slot: id("beans"),
            amount: 45.0,
            uses: 5,
        };
        let descaler = |remaining| ReportBody::Level {
            slot: id("descaler"),
            remaining,
        };
        send(&mut engine, T0, descaler(6.0));
        for day in 0..10 {
            send(&mut engine, T0 + day * DAY_MS + 8 * HOUR_MS, brews());
        }
        // A tablet taken on day 10: from now on the phase is known.
        send(&mut engine, T0 + 10 * DAY_MS + 9 * HOUR_MS, descaler(5.0));
        for day in 10..30 {
            send(&mut engine, T0 + day * DAY_MS + 8 * HOUR_MS, brews());
        }
        let slot = engine.slot("maker/descaler").unwrap();
        let forecast = slot.forecast.as_ref().unwrap();
        let sparse = forecast.sparse.unwrap();
        let crate::engine::forecast::sparse::Intervals::Driven { to_next, .. } = sparse.intervals
        else {
            panic!("not driven by the brews: {sparse:?}");
        };
        let days = forecast.days_left().unwrap();
        (engine, to_next, days)
    }

    #[test]
    fn the_journal_gives_back_every_device_and_slot_record_as_the_tables_hold_it() {
        use crate::store::journal::Journal;
        use crate::store::{Store, Table};
        // Records with everything in them: a birth declaring usage, de-dup windows, slots with
        // history, a link and forecasts.
        let (engine, _, _) = descaler_after_a_month(descaling_maker(None, Some(200.0)));
        let store = MemoryStore::default();
        let mut journal = Journal::new();
        let mut keys = Vec::new();
        for device in engine.devices() {
            journal
                .stage(Effect::SaveDevice(device.id.clone()))
                .unwrap();
            keys.push((Table::Devices, device.id.to_string()));
        }
        for slot in engine.slots() {
            journal.stage(Effect::SaveSlot(slot.key())).unwrap();
            keys.push((Table::Slots, slot.key().to_string()));
        }
        let current = |table, key: &str| store::engine_record(&engine, table, key);
        journal.commit(&store, &current).unwrap();
        assert_eq!(keys.len(), 3, "a device and its two slots");
        // A crash now: the next start applies the journal's compact records to the tables.
        let restarted = store::load_snapshot(&store).unwrap();
        assert_eq!(restarted.slots.len(), 2);
        for (table, key) in keys {
            let stored = store.get(table, &key).unwrap();
            let expected = current(table, &key).map(|r| r.json(table, &key).unwrap());
            assert!(expected.is_some());
            assert_eq!(stored, expected, "{key}");
        }
    }

    #[test]
    fn a_descaler_driven_by_brews_is_forecast_from_the_brews() {
        let (engine, to_next, days) = descaler_after_a_month(descaling_maker(Some(200.0), None));
        let slot = engine.slot("maker/descaler").unwrap();
        let link = slot.link.as_ref().unwrap();
        assert_eq!(
            (link.since_use, link.phase_known, link.seen),
            (100.0, true, 0)
        );
        assert_eq!(to_next, 100.0);
        let Some(crate::engine::forecast::sparse::Intervals::Driven { rate, .. }) = slot
            .forecast
            .as_ref()
            .and_then(|f| f.sparse)
            .map(|s| s.intervals)
        else {
            panic!("not driven");
        };
        assert!((rate - 5.0).abs() < 0.5, "{rate}");
        // Five tablets serve five uses; the sixth comes after 100 + 5 x 200 brews, at 5 a
        // day about 220 days from now.
        assert!((210.0..230.0).contains(&days), "{days}");
        // The beans slot, which nothing drives, keeps its own model.
        assert!(engine.slot("maker/beans").unwrap().link.is_none());
        // What the link knows is stored with the slot.
        let text = serde_json::to_string(slot).unwrap();
        let back: crate::engine::inventory::SlotState = serde_json::from_str(&text).unwrap();
        assert_eq!(back.link, slot.link);
    }

    #[test]
    fn the_device_may_declare_the_link_and_the_household_overrides_it() {
        let (_, by_config, config_days) =
            descaler_after_a_month(descaling_maker(Some(200.0), None));
        let (_, by_device, device_days) =
            descaler_after_a_month(descaling_maker(None, Some(200.0)));
        assert_eq!((by_device, device_days), (by_config, config_days));
        // The household knows its water better than the maker: every 150 brews.
        let (_, overridden, _) = descaler_after_a_month(descaling_maker(Some(150.0), Some(200.0)));
        assert_eq!(overridden, 50.0);
        // Nothing declared: the descaler is forecast from its own single use.
        let engine = descaling_maker(None, None);
        let mut seq = 0;
        let mut engine = engine;
        for day in 0..3 {
            seq += 1;
            let at = T0 + day * crate::clock::DAY_MS + 8 * HOUR_MS;
            let body = ReportBody::Usage {
                slot: id("beans"),
                amount: 45.0,
                uses: 5,
            };
            engine
                .handle(event("maker", report(1, seq, at, body)), at)
                .unwrap();
        }
        assert!(engine.slot("maker/descaler").unwrap().link.is_none());
    }
}
