//! Tests of devices: births, reports, de-dup across boots, presence, pairing and commands; also the fixtures other engine tests borrow (a brewer, its events and reports).

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

pub(in crate::engine) fn report(boot: u32, seq: u32, ts: UnixMs, body: ReportBody) -> Telemetry {
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
            store::save_effect(&store, &|t, k| store::engine_record(source, t, k), effect).unwrap();
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
    let (mut engine, _, _) = descaler_after_a_month(descaling_maker(None, Some(200.0)));
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
    journal
        .commit(&store, &|table, key: &str| {
            store::engine_record(&engine, table, key)
        })
        .unwrap();
    assert_eq!(keys.len(), 3, "a device and its two slots");
    // One more report: the journal gets only what it changed in the device record.
    let at = T0 + 31 * crate::clock::DAY_MS;
    let brews = ReportBody::Usage {
        slot: id("beans"),
        amount: 45.0,
        uses: 5,
    };
    let fx = engine
        .handle(event("maker", report(1, 1_000, at, brews)), at)
        .unwrap();
    assert!(fx.contains(&Effect::SaveDeviceSeen(
        engine.devices().next().unwrap().id.clone()
    )));
    for effect in fx {
        journal.stage(effect).unwrap();
    }
    let current = |table, key: &str| store::engine_record(&engine, table, key);
    journal.commit(&store, &current).unwrap();
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
    let (_, by_config, config_days) = descaler_after_a_month(descaling_maker(Some(200.0), None));
    let (_, by_device, device_days) = descaler_after_a_month(descaling_maker(None, Some(200.0)));
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

#[test]
fn devices_and_slots_are_listed_in_id_order_whatever_the_births_order() {
    let mut engine = brewer();
    let slots = [
        ("water", "water", Unit::Ml, 1000.0),
        ("beans", "coffee_beans", Unit::G, 500.0),
    ];
    let birth = Telemetry::Status(Box::new(Status::Online(birth_with("grinder", &slots))));
    engine.handle(event("grinder", birth), T0).unwrap();
    let keys = |slots: Vec<&crate::engine::inventory::SlotState>| -> Vec<String> {
        slots.iter().map(|s| s.key().to_string()).collect()
    };
    assert_eq!(
        keys(engine.device_slots(&id("grinder"))),
        ["grinder/beans", "grinder/water"]
    );
    let all = keys(engine.slots().collect());
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(all, sorted);
    assert!(all.len() >= 3 && all.contains(&"brewer/brews".to_string()));
    let devices: Vec<String> = engine.devices().map(|d| d.id.to_string()).collect();
    let mut sorted = devices.clone();
    sorted.sort();
    assert_eq!(devices, sorted);
    let after: Vec<String> = engine
        .devices_after(Some(&id("brewer")))
        .map(|d| d.id.to_string())
        .collect();
    assert_eq!(
        after,
        devices[devices.iter().position(|d| d == "brewer").unwrap() + 1..]
    );
}
