//! When and how much to reorder: a slot left empty, rare items bought singly.

use super::*;

#[test]
fn a_slot_left_empty_for_weeks_keeps_its_last_rate_and_is_reordered() {
    let mut e = engine(Mode::Approve);
    let (t, _) = run_until_order(&mut e);
    let id = e.orders().next().unwrap().id.clone();
    e.handle(
        Event::Reject {
            order_id: id,
            by: Actor::Console,
            reason: RejectReason::Other,
            note: Some("not now".into()),
        },
        t,
    )
    .unwrap();
    // Empty, unused, for five weeks, with daily heartbeats: every day in the model's window
    // is a starved day, which says nothing of demand.
    let mut later = t;
    for day in 1..=35u32 {
        later = t + u64::from(day) * DAY_MS;
        e.handle(level(500 + day, later, 0.0), later).unwrap();
    }
    let fx = e.handle(Event::Tick, later + HOUR_MS).unwrap();
    assert!(e.slots().next().unwrap().forecast.is_some());
    assert!(
        fx.iter()
            .any(|x| matches!(x, Effect::SaveOrder(o) if o.state == OrderState::Proposed))
            || e.orders().any(|o| o.created_at > t),
        "the empty slot was not reordered"
    );
}

/// A fridge whose filter is used about every `every_days`, offered singly at 30.00 and in
/// threes at 75.00; after one use with no spare left, the SKU the agent orders.
fn filter_order(max_stock: Option<f64>, every_days: f64, risk: f64) -> Option<String> {
    let mut config = EngineConfig::new(id("home"), "inst".into());
    config.rules.default_mode = Mode::Auto;
    config.pairing = Pairing::Open;
    config.consumables.insert(
        "water_filter".into(),
        ConsumableSettings {
            max_stock,
            risk,
            use_every_days: Some(every_days),
            ..ConsumableSettings::default()
        },
    );
    let mut e = Engine::new(config, Snapshot::default());
    let offer = |sku: &str, pack: f64, cents: u64| Offer {
        sku: sku.into(),
        name: sku.into(),
        consumable: "water_filter".into(),
        pack_size: pack,
        unit: Unit::Count,
        price: replenish_commerce::Money::new(cents, replenish_commerce::Currency::EUR),
        stock: 10,
    };
    let catalog = Catalog {
        offers: vec![offer("filter-1", 1.0, 3000), offer("filter-3", 3.0, 7500)],
        fulfilment: Vec::new(),
    };
    let shop = DEFAULT_SHOP.into();
    e.handle(Event::Catalog { shop, catalog }, T0).unwrap();
    let birth = birth_with("fridge", &[("filter", "water_filter", Unit::Count, 1.0)]);
    let telemetry = |message| Event::Telemetry {
        device: id("fridge"),
        message,
    };
    e.handle(
        telemetry(Telemetry::Status(Box::new(Status::Online(birth)))),
        T0,
    )
    .unwrap();
    let level = |seq, ts, remaining| {
        telemetry(Telemetry::Report(Report {
            boot: 1,
            seq,
            ts,
            body: ReportBody::Level {
                slot: id("filter"),
                remaining,
            },
        }))
    };
    e.handle(level(1, T0, 1.0), T0).unwrap();
    let used = T0 + DAY_MS + 9 * HOUR_MS;
    let mut fx = e.handle(level(2, used, 0.0), used).unwrap();
    // The use's day complete: the next morning's tick decides.
    fx.extend(e.handle(Event::Tick, T0 + 2 * DAY_MS + HOUR_MS).unwrap());
    fx.iter().find_map(|effect| match effect {
        Effect::SaveOrder(order) => Some(order.first_line().sku.clone()),
        _ => None,
    })
}

#[test]
fn a_rare_item_is_bought_singly_unless_the_pack_pays_and_fits() {
    // The default maximum is the appliance and the smallest pack: three do not fit.
    assert_eq!(filter_order(None, 60.0, 0.02).as_deref(), Some("filter-1"));
    // Room for them and six filters a year: the pack is cheaper per filter used.
    assert_eq!(
        filter_order(Some(4.0), 60.0, 0.02).as_deref(),
        Some("filter-3")
    );
    // Room, but about one filter a year: two of the three would lie unused.
    assert_eq!(
        filter_order(Some(4.0), 400.0, 0.005).as_deref(),
        Some("filter-1")
    );
}

/// With a settling time, the day a report would have ordered, the order waits for the first
/// tick after the reports stop; a later report in the burst starts the wait again.
#[test]
fn with_a_settling_time_the_tick_decides_once_the_reports_stop() {
    const SETTLE: UnixMs = 5 * 60_000;
    let (at_once, _) = run_until_order(&mut engine(Mode::Auto));
    let mut e = engine(Mode::Auto);
    e.config.policy.settle_ms = SETTLE;
    // Orders a step created (an order is saved more than once as it moves on).
    let orders = |fx: &[Effect]| {
        fx.iter()
            .filter_map(|x| match x {
                Effect::SaveOrder(o) => Some(o.id.clone()),
                _ => None,
            })
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    };
    let mut remaining = 600.0;
    let mut seq = 0;
    let mut t = T0 + 8 * HOUR_MS;
    while t < at_once {
        seq += 1;
        assert_eq!(orders(&e.handle(level(seq, t, remaining), t).unwrap()), 0);
        assert_eq!(orders(&e.handle(Event::Tick, t + SETTLE).unwrap()), 0);
        remaining -= 50.0;
        t += DAY_MS;
    }
    // The day it orders at once: not on the report, nor while a second one (a minute later,
    // the same level) keeps the slot settling.
    seq += 1;
    assert_eq!(orders(&e.handle(level(seq, t, remaining), t).unwrap()), 0);
    seq += 1;
    let again = t + 60_000;
    assert_eq!(
        orders(&e.handle(level(seq, again, remaining), again).unwrap()),
        0
    );
    assert_eq!(orders(&e.handle(Event::Tick, t + SETTLE).unwrap()), 0);
    assert_eq!(orders(&e.handle(Event::Tick, again + SETTLE).unwrap()), 1);
}
