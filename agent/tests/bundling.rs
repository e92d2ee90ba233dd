//! Bundling through the pure engine: a consumable that would need ordering within
//! `policy.bundle_days` joins the order another one triggers: one order, one idempotency key,
//! one state, a reason per line, and both slots stocked on delivery.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use replenish_agent::clock::{DAY_MS, HOUR_MS, UnixMs};
use replenish_agent::engine::OrderEdit;
use replenish_agent::engine::household::{Actor, ConsumableRules, Mode, RejectReason, Rules};
use replenish_agent::engine::order::{Order, OrderState};
use replenish_agent::engine::shopping::{ShopId, ShopInfo};
use replenish_agent::engine::{Effect, Engine, EngineConfig, Event, Pairing, Snapshot, Telemetry};
use replenish_commerce::{Catalog, Offer, OrderStatus, ShopOrder};
use replenish_protocol::{Birth, Id, Report, ReportBody, SensorKind, SlotSpec, Status, Unit};

const T0: UnixMs = 20_458 * DAY_MS;

fn id<T: From<Id>>(s: &str) -> T {
    Id::new(s).unwrap().into()
}

fn item(sku: &str, consumable: &str, unit: Unit) -> Offer {
    Offer {
        sku: sku.into(),
        name: sku.into(),
        consumable: consumable.into(),
        pack_size: 500.0,
        unit,
        price: replenish_commerce::Money::new(500, replenish_commerce::Currency::EUR),
        stock: 100,
    }
}

fn birth(slot: &str, consumable: &str, unit: Unit) -> Telemetry {
    let mut slots = heapless::Vec::new();
    slots
        .push(SlotSpec {
            id: id(slot),
            consumable: id(consumable),
            unit,
            capacity: 1000.0,
            sensor: SensorKind::Level,
        })
        .unwrap();
    Telemetry::Status(Box::new(Status::Online(Birth {
        model: id("appliance"),
        firmware: heapless::String::try_from("0.1.0").unwrap(),
        boot: 1,
        slots,
        buffer: None,
        usage: None,
    })))
}

struct Home {
    engine: Engine,
    seq: u32,
}

impl Home {
    fn new(bundle_days: f64) -> Self {
        Self::with_rules(bundle_days, |_| {})
    }

    fn with_rules(bundle_days: f64, rules: impl FnOnce(&mut Rules)) -> Self {
        let catalog = Catalog {
            fulfilment: Vec::new(),
            offers: vec![
                item("beans-500", "coffee_beans", Unit::G),
                item("oats-500", "oats", Unit::G),
            ],
        };
        Self::with_shops(bundle_days, rules, vec![("shop", catalog)])
    }

    /// Shop A sells beans 10 cents a pack cheaper than Shop B, and oats only if `oats_at_a`;
    /// Shop B sells both. Both charge 3.95 for delivery in 1–2 days.
    fn across_shops(oats_at_a: bool) -> Self {
        let delivery = replenish_commerce::FulfilmentOption {
            id: "home".into(),
            name: "Home delivery".into(),
            method: replenish_commerce::Fulfilment::Delivery,
            price: Some(replenish_commerce::Money::new(
                395,
                replenish_commerce::Currency::EUR,
            )),
            lead_days: Some((1, 2)),
        };
        let mut cheap_beans = item("a-beans-500", "coffee_beans", Unit::G);
        cheap_beans.price.minor = 490;
        let mut a = vec![cheap_beans];
        if oats_at_a {
            a.push(item("a-oats-500", "oats", Unit::G));
        }
        let b = vec![
            item("beans-500", "coffee_beans", Unit::G),
            item("oats-500", "oats", Unit::G),
        ];
        let catalogs = [("a", a), ("b", b)].map(|(shop, offers)| {
            (
                shop,
                Catalog {
                    offers,
                    fulfilment: vec![delivery.clone()],
                },
            )
        });
        Self::with_shops(3.0, |_| {}, catalogs.to_vec())
    }

    /// Shop A sells beans and oats at 4.90 a pack and delivers in 3 days for 3.95; Shop B
    /// sells oats only, at 5.00, and delivers them in a day for nothing.
    fn slow_and_fast() -> Self {
        let delivery = |days: u32, fee: u64| replenish_commerce::FulfilmentOption {
            id: "home".into(),
            name: "Home delivery".into(),
            method: replenish_commerce::Fulfilment::Delivery,
            price: Some(replenish_commerce::Money::new(
                fee,
                replenish_commerce::Currency::EUR,
            )),
            lead_days: Some((days, days)),
        };
        let cheaper = |sku: &str, consumable: &str| {
            let mut offer = item(sku, consumable, Unit::G);
            offer.price.minor = 490;
            offer
        };
        let a = Catalog {
            offers: vec![
                cheaper("a-beans-500", "coffee_beans"),
                cheaper("a-oats-500", "oats"),
            ],
            fulfilment: vec![delivery(3, 395)],
        };
        let b = Catalog {
            offers: vec![item("oats-500", "oats", Unit::G)],
            fulfilment: vec![delivery(1, 0)],
        };
        Self::with_shops(3.0, |_| {}, vec![("a", a), ("b", b)])
    }

    fn with_shops(
        bundle_days: f64,
        rules: impl FnOnce(&mut Rules),
        catalogs: Vec<(&str, Catalog)>,
    ) -> Self {
        let mut config = EngineConfig::new(id("home"), "inst".into());
        config.pairing = Pairing::Open;
        rules(&mut config.rules);
        config.policy.bundle_days = bundle_days;
        config.shops = catalogs
            .iter()
            .map(|(shop, _)| ShopInfo {
                id: ShopId::parse(shop).unwrap(),
                name: format!("Shop {}", shop.to_uppercase()),
            })
            .collect();
        let mut engine = Engine::new(config, Snapshot::default());
        for (shop, catalog) in catalogs {
            let event = Event::Catalog {
                shop: ShopId::parse(shop).unwrap(),
                catalog,
            };
            engine.handle(event, T0).unwrap();
        }
        for (device, slot, consumable) in [
            ("grinder", "beans", "coffee_beans"),
            ("pantry", "oats", "oats"),
        ] {
            let message = birth(slot, consumable, Unit::G);
            let event = Event::Telemetry {
                device: id(device),
                message,
            };
            engine.handle(event, T0).unwrap();
        }
        Self { engine, seq: 0 }
    }

    fn level(&mut self, device: &str, slot: &str, t: UnixMs, remaining: f32) -> Vec<Effect> {
        self.seq += 1;
        let event = Event::Telemetry {
            device: id(device),
            message: Telemetry::Report(Report {
                boot: 1,
                seq: self.seq,
                ts: t,
                body: ReportBody::Level {
                    slot: id(slot),
                    remaining,
                },
            }),
        };
        self.engine.handle(event, t).unwrap()
    }

    /// Beans and oats both used about 50 g a day; the oats start `oats_ahead` grams fuller.
    /// Returns the first order placed and its request, and the day.
    fn run_until_order(&mut self, oats_ahead: f32) -> (u64, Order, Vec<(String, u32)>) {
        for day in 0..20u64 {
            let t = T0 + day * DAY_MS + 8 * HOUR_MS;
            let used = 50.0 * day as f32 + if day % 2 == 0 { 5.0 } else { 0.0 };
            let mut fx = self.level("grinder", "beans", t, 600.0 - used);
            fx.extend(self.level("pantry", "oats", t, 600.0 + oats_ahead - used));
            for effect in fx {
                if let Effect::PlaceOrder { order, request } = effect {
                    let lines = request
                        .lines
                        .iter()
                        .map(|l| (l.sku.clone(), l.quantity))
                        .collect();
                    return (day, order, lines);
                }
            }
        }
        panic!("no order within 20 days");
    }
}

#[test]
fn a_consumable_due_within_the_window_joins_the_order() {
    let mut home = Home::new(3.0);
    // The oats hold about a day and a half more than the beans.
    let (_, order, lines) = home.run_until_order(75.0);
    assert_eq!(order.first_line().sku, "beans-500");
    assert_eq!(order.bundled().len(), 1, "{order:?}");
    let oats = &order.bundled()[0];
    assert_eq!(
        (oats.sku.as_str(), oats.slot.as_str()),
        ("oats-500", "oats")
    );
    assert!(oats.reason.contains("joins this order"), "{}", oats.reason);
    assert!(
        order.first_line().reason.starts_with("beans:"),
        "{}",
        order.first_line().reason
    );
    // One request, one key, every line in it; the total covers both lines.
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0].0, "beans-500");
    assert_eq!(lines[1].0, "oats-500");
    let line_total: u64 = order.lines().iter().map(|l| l.total.minor).sum();
    assert_eq!(order.total().minor, line_total);
    assert_eq!(order.idempotency_key, format!("inst-{}", order.id));

    // While the order is open, the oats are not ordered again.
    let later = T0 + 19 * DAY_MS;
    let fx = home.level("pantry", "oats", later, 10.0);
    assert!(!fx.iter().any(|e| matches!(e, Effect::PlaceOrder { .. })));

    // The delivery stocks both cupboards and ends the one order.
    let now = later + HOUR_MS;
    let shop_order = ShopOrder {
        id: "so-1".into(),
        idempotency_key: order.idempotency_key.clone(),
        reference: order.id.to_string(),
        status: OrderStatus::Delivered,
        lines: vec![],
        total: replenish_commerce::Money::new(
            order.total().minor,
            replenish_commerce::Currency::EUR,
        ),
        created_at_ms: now,
        estimated_arrival_ms: Some(now),
        shipped_at_ms: Some(now),
        delivered_at_ms: Some(now),
        fulfilment: None,
    };
    let event = Event::PlacementSucceeded {
        order_id: order.id.clone(),
        shop_order,
    };
    home.engine.handle(event, now).unwrap();
    assert_eq!(
        home.engine.order(&order.id).unwrap().state,
        OrderState::Delivered
    );
    let cupboards: Vec<(String, f64)> = home
        .engine
        .slots()
        .map(|s| (s.spec.id.to_string(), s.cupboard))
        .collect();
    let packs = |sku: &str| {
        order
            .lines()
            .iter()
            .find(|l| l.sku == sku)
            .map(|l| f64::from(l.packs) * l.pack_size)
            .unwrap()
    };
    assert_eq!(
        cupboards,
        [
            ("beans".to_string(), packs("beans-500")),
            ("oats".to_string(), packs("oats-500"))
        ]
    );
}

#[test]
fn across_shops_the_order_goes_where_the_lines_it_brings_along_save_more_than_it_costs() {
    // Only Shop B sells oats: its beans cost 10 cents more a pack, but the oats joining its
    // order save their own 3.95 delivery.
    let mut home = Home::across_shops(false);
    let (_, order, lines) = home.run_until_order(75.0);
    assert_eq!(order.shop, "b", "{}", order.first_line().reason);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        order
            .first_line()
            .reason
            .contains("1 other item joins this order, saving 3.95"),
        "{}",
        order.first_line().reason
    );

    // Shop A sells oats too: its cheaper beans win, and the oats join there.
    let mut home = Home::across_shops(true);
    let (_, order, lines) = home.run_until_order(75.0);
    assert_eq!(order.shop, "a", "{}", order.first_line().reason);
    assert_eq!(
        lines
            .iter()
            .map(|(sku, _)| sku.as_str())
            .collect::<Vec<_>>(),
        ["a-beans-500", "a-oats-500"]
    );

    // Oats far from due bring nothing along: the cheaper beans at A, alone.
    let mut home = Home::across_shops(false);
    let (_, order, lines) = home.run_until_order(600.0);
    assert_eq!(order.shop, "a", "{}", order.first_line().reason);
    assert_eq!(lines.len(), 1);
}

#[test]
fn a_line_the_order_would_reach_too_late_does_not_join_it() {
    // The oats hold 130 g (over two days) less than the beans. When the beans are ordered from
    // Shop A (3 days), the oats are due within the window and would save 10 cents there, but
    // A's delivery would come after they run out; on their own they go by Shop B's (a day).
    let mut home = Home::slow_and_fast();
    let (day, order, lines) = home.run_until_order(-130.0);
    assert_eq!(order.shop, "a", "{}", order.first_line().reason);
    assert_eq!(order.first_line().slot.as_str(), "beans");
    assert_eq!(lines.len(), 1, "the oats would come too late: {lines:?}");
    // The oats go on their own, by Shop B's faster delivery, by the next day.
    let next = T0 + (day + 1) * DAY_MS + 8 * HOUR_MS;
    home.level(
        "pantry",
        "oats",
        next,
        600.0 - 130.0 - 50.0 * (day + 1) as f32,
    );
    let oats = home
        .engine
        .orders()
        .find(|o| o.first_line().slot.as_str() == "oats")
        .expect("the oats ordered on their own");
    assert_eq!(oats.shop, "b", "{}", oats.first_line().reason);
}

#[test]
fn nothing_joins_without_a_window_or_when_far_from_due() {
    let (_, order, lines) = Home::new(0.0).run_until_order(75.0);
    assert!(order.bundled().is_empty());
    assert_eq!(lines.len(), 1);
    // Ten days of oats more than beans: not due within three days.
    let (_, order, _) = Home::new(3.0).run_until_order(500.0);
    assert!(order.bundled().is_empty(), "{order:?}");
}

/// Beans are on `auto`, oats on `approve`: a bundle of both must wait for a person; editing it
/// changes the beans line only; rejecting it pauses both.
#[test]
fn a_bundle_follows_its_strictest_line_and_a_rejection_teaches_every_line() {
    let oats_approve = |r: &mut Rules| {
        r.consumables.insert(
            "oats".into(),
            ConsumableRules {
                mode: Some(Mode::Approve),
                risk: None,
            },
        );
    };
    let proposed = |home: &mut Home| -> (UnixMs, Order) {
        for day in 0..20u64 {
            let t = T0 + day * DAY_MS + 8 * HOUR_MS;
            let used = 50.0 * day as f32 + if day % 2 == 0 { 5.0 } else { 0.0 };
            let mut fx = home.level("grinder", "beans", t, 600.0 - used);
            fx.extend(home.level("pantry", "oats", t, 675.0 - used));
            assert!(
                !fx.iter().any(|e| matches!(e, Effect::PlaceOrder { .. })),
                "nothing is placed without the approval the oats need"
            );
            if let Some(order) = home
                .engine
                .orders()
                .find(|o| o.state == OrderState::Proposed)
            {
                return (t, order.clone());
            }
        }
        panic!("no proposal within 20 days");
    };

    let mut home = Home::with_rules(3.0, oats_approve);
    let (t, order) = proposed(&mut home);
    assert_eq!(order.bundled().len(), 1, "{order:?}");
    assert!(order.pending.is_some());
    let oats_cents = order.bundled()[0].total.minor;
    let fx = home
        .engine
        .handle(
            Event::Approve {
                order_id: order.id.clone(),
                by: Actor::Console,
                edit: Some(OrderEdit {
                    packs: Some(order.first_line().packs + 1),
                    ..OrderEdit::default()
                }),
            },
            t,
        )
        .unwrap();
    assert!(fx.iter().any(|e| matches!(e, Effect::PlaceOrder { .. })));
    let approved = home.engine.order(&order.id).unwrap();
    assert_eq!(approved.bundled()[0].total.minor, oats_cents);
    assert_eq!(
        approved.total().minor,
        u64::from(order.first_line().packs + 1) * 500 + oats_cents
    );

    let mut home = Home::with_rules(3.0, oats_approve);
    let (t, order) = proposed(&mut home);
    home.engine
        .handle(
            Event::Reject {
                order_id: order.id.clone(),
                by: Actor::Console,
                reason: RejectReason::StillHaveSome,
                note: None,
            },
            t,
        )
        .unwrap();
    let household = home.engine.household();
    assert!(household.paused("coffee_beans", t + HOUR_MS));
    assert!(household.paused("oats", t + HOUR_MS));
}

#[test]
fn a_tight_budget_leaves_the_joining_line_out_before_it_cuts_the_needed_one() {
    // One 500 g pack costs 5.00: the budget pays for exactly one.
    let mut home = Home::with_rules(3.0, |r| r.monthly_budget_cents = Some(500));
    let (_, order, lines) = home.run_until_order(75.0);
    assert_eq!(order.first_line().sku, "beans-500");
    assert!(order.bundled().is_empty(), "{order:?}");
    assert_eq!((order.first_line().packs, order.total().minor), (1, 500));
    assert_eq!(lines, [("beans-500".to_string(), 1)]);
    assert!(
        order
            .first_line()
            .reason
            .ends_with("oats left out to stay within the monthly budget (EUR 5.00 left)"),
        "{}",
        order.first_line().reason
    );
}
