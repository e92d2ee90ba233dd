//! The engine's tests, by idea, and what they share: a coffee maker with one slot of beans,
//! one shop's catalog, an engine in a given mode, and ways to run it until it orders.

use super::*;
use crate::clock::HOUR_MS;
use household::Mode;
use household::{Actor, RejectReason, Role, Rules};
use order::OrderState;
use replenish_commerce::{FulfilmentOption, ShopOrder};
use replenish_commerce::{OrderLine, OrderStatus};
use replenish_protocol::ReportBody;
use replenish_protocol::{Birth, SlotSpec, Unit};
use replenish_protocol::{Report, Status};

pub(super) const T0: UnixMs = 20_458 * DAY_MS;

pub(super) fn id<T: From<replenish_protocol::Id>>(s: &str) -> T {
    replenish_protocol::Id::new(s).unwrap().into()
}

pub(super) fn catalog() -> Catalog {
    Catalog {
        fulfilment: Vec::new(),
        offers: vec![Offer {
            sku: "beans-500".into(),
            name: "Beans 500 g".into(),
            consumable: "coffee_beans".into(),
            pack_size: 500.0,
            unit: Unit::G,
            price: replenish_commerce::Money::new(899, replenish_commerce::Currency::EUR),
            stock: 100,
        }],
    }
}

/// The birth of a `model` (boot 1, firmware 0.1.0) with level-sensed `slots`: (id,
/// consumable, unit, capacity).
pub(super) fn birth_with(model: &str, slots: &[(&str, &str, Unit, f32)]) -> Birth {
    let mut specs = heapless::Vec::new();
    for &(slot, consumable, unit, capacity) in slots {
        let _ = specs.push(SlotSpec::level(id(slot), id(consumable), unit, capacity));
    }
    Birth::new(id(model), "0.1.0".try_into().unwrap(), 1, specs)
}

pub(super) fn birth() -> Telemetry {
    let birth = birth_with(
        "coffee-maker",
        &[("beans", "coffee_beans", Unit::G, 1000.0)],
    );
    Telemetry::Status(Box::new(Status::Online(birth)))
}

pub(super) fn level(seq: u32, ts: UnixMs, remaining: f32) -> Event {
    level_of("coffee", "beans", seq, ts, remaining)
}

/// A level report of `device`'s `slot`, in its first boot.
pub(super) fn level_of(device: &str, slot: &str, seq: u32, ts: UnixMs, remaining: f32) -> Event {
    Event::Telemetry {
        device: id(device),
        message: Telemetry::Report(Report {
            boot: 1,
            seq,
            ts,
            body: ReportBody::Level {
                slot: id(slot),
                remaining,
            },
        }),
    }
}

pub(super) fn engine(mode: Mode) -> Engine {
    let mut config = EngineConfig::new(id("home"), "inst".into());
    config.rules.default_mode = mode;
    config.pairing = Pairing::Open;
    let mut engine = Engine::new(config, Snapshot::default());
    give_catalogs(&mut engine, [(DEFAULT_SHOP, catalog())]);
    born(&mut engine);
    engine
}

/// The coffee maker's birth message at `T0`: its effects.
pub(super) fn born(e: &mut Engine) -> Vec<Effect> {
    e.handle(
        Event::Telemetry {
            device: id("coffee"),
            message: birth(),
        },
        T0,
    )
    .unwrap()
}

/// Feeds 50 g/day from 600 g until the engine decides; returns the effects of that step.
pub(super) fn run_until_order(engine: &mut Engine) -> (UnixMs, Vec<Effect>) {
    let mut remaining = 600.0;
    for day in 0..12u64 {
        let t = T0 + day * DAY_MS + 8 * HOUR_MS;
        let fx = engine
            .handle(level(day as u32 + 1, t, remaining), t)
            .unwrap();
        if fx.iter().any(|e| matches!(e, Effect::SaveOrder(_))) {
            return (t, fx);
        }
        remaining -= 50.0;
    }
    panic!("no order within 12 days");
}

pub(super) fn place_order(fx: &[Effect]) -> Option<&Order> {
    fx.iter().find_map(|e| match e {
        Effect::PlaceOrder { order, .. } => Some(order),
        _ => None,
    })
}

fn shop_order(key: &str, status: OrderStatus) -> ShopOrder {
    ShopOrder {
        id: "so-1".into(),
        idempotency_key: key.into(),
        reference: "o-000001".into(),
        status,
        lines: vec![],
        total: replenish_commerce::Money::new(899, replenish_commerce::Currency::EUR),
        created_at_ms: 0,
        estimated_arrival_ms: Some(0),
        shipped_at_ms: None,
        delivered_at_ms: None,
        fulfilment: None,
    }
}

/// Shop A: beans at 8.99 with 4.95 delivery in 1–2 days, or free pickup the same day.
/// Shop B: the same beans at 8.49, free delivery, but in `b_days` days.
/// Home delivery, or click and collect at Shop A Mitte, for `fee` cents in `days` (fewest,
/// most).
pub(super) fn fulfilment_option(
    id: &str,
    pickup: bool,
    fee: u64,
    days: (u32, u32),
) -> FulfilmentOption {
    use replenish_commerce::{Currency, Fulfilment, Money, PickupPoint};
    FulfilmentOption {
        id: id.into(),
        name: if pickup {
            "Click and collect"
        } else {
            "Home delivery"
        }
        .into(),
        method: if pickup {
            Fulfilment::Pickup(PickupPoint {
                name: "Shop A Mitte".into(),
                address: "Hauptstraße 1".into(),
                opening_hours: "Mon–Sat 08:00–20:00".into(),
            })
        } else {
            Fulfilment::Delivery
        },
        price: Some(Money::new(fee, Currency::EUR)),
        lead_days: Some(days),
    }
}

fn two_shops(pickup: shopping::PickupPreference, b_days: u32) -> Engine {
    let mut config = EngineConfig::new(id("home"), "inst".into());
    config.rules.default_mode = Mode::Auto;
    config.pairing = Pairing::Open;
    config.pickup = pickup;
    config.shops = ["a", "b"]
        .map(|s| shopping::ShopInfo {
            id: s.into(),
            name: format!("Shop {}", s.to_uppercase()),
        })
        .to_vec();
    let mut e = Engine::new(config, Snapshot::default());
    let option = fulfilment_option;
    let mut a = catalog();
    a.fulfilment = vec![
        option("home", false, 495, (1, 2)),
        option("pickup", true, 0, (0, 0)),
    ];
    let mut b = catalog();
    b.offers[0].sku = "b-beans-500".into();
    b.offers[0].price.minor = 849;
    b.fulfilment = vec![option("post", false, 0, (b_days, b_days))];
    give_catalogs(&mut e, [("a", a), ("b", b)]);
    born(&mut e);
    e
}

/// The shops' catalogs, as each shop's answer at `T0`.
fn give_catalogs<const N: usize>(e: &mut Engine, catalogs: [(&str, Catalog); N]) {
    for (shop, catalog) in catalogs {
        e.handle(
            Event::Catalog {
                shop: shop.into(),
                catalog,
            },
            T0,
        )
        .unwrap();
    }
}

/// 50 g a day from 600 g, reported every two hours (a pickup's short lead time needs a
/// closer look than once a day), until an order is placed.
fn run_until_placed(engine: &mut Engine) -> (Order, Vec<Effect>) {
    for step in 0..(12 * 12) {
        let t = T0 + step * 2 * HOUR_MS;
        let remaining = 600.0 - 50.0 * (step as f32) / 12.0;
        let fx = engine
            .handle(level(step as u32 + 1, t, remaining), t)
            .unwrap();
        if let Some(order) = place_order(&fx).cloned() {
            return (order, fx);
        }
    }
    panic!("no order within 12 days");
}

/// An auto-mode engine selling `offers` (beans, by SKU and price per 500 g pack, with
/// stock), `configure` applied first.
fn engine_with(offers: &[(&str, u64, u32)], configure: impl FnOnce(&mut EngineConfig)) -> Engine {
    let mut config = EngineConfig::new(id("home"), "inst".into());
    config.rules.default_mode = Mode::Auto;
    config.pairing = Pairing::Open;
    configure(&mut config);
    let mut e = Engine::new(config, Snapshot::default());
    let template = catalog().offers[0].clone();
    let catalog = Catalog {
        offers: offers
            .iter()
            .map(|(sku, cents, stock)| Offer {
                sku: (*sku).into(),
                name: (*sku).into(),
                price: replenish_commerce::Money::new(*cents, replenish_commerce::Currency::EUR),
                stock: *stock,
                ..template.clone()
            })
            .collect(),
        fulfilment: Vec::new(),
    };
    give_catalogs(&mut e, [(DEFAULT_SHOP, catalog)]);
    born(&mut e);
    e
}

pub(super) const OWNER: &str = "m-000001";
pub(super) const MEMBER: &str = "m-000002";

pub(super) fn owner() -> Actor {
    Actor::Member(OWNER.into())
}

pub(super) fn member() -> Actor {
    Actor::Member(MEMBER.into())
}

/// An engine with an owner and a member, whose rules are changed by `edit`.
pub(super) fn household(edit: impl FnOnce(&mut Rules)) -> Engine {
    let mut e = engine(Mode::Auto);
    for (name, role, hash) in [("ann", Role::Owner, "a"), ("bob", Role::Member, "b")] {
        e.handle(
            Event::AddMember {
                name: name.into(),
                role,
                token_hash: hash.repeat(64),
                by: Actor::Console,
            },
            T0,
        )
        .unwrap();
    }
    let mut rules = e.household().rules.clone();
    edit(&mut rules);
    set_rules(&mut e, rules, owner()).unwrap();
    e
}

/// `by` sets the household's `rules` at `T0`, naming no currency.
pub(super) fn set_rules(
    e: &mut Engine,
    rules: Rules,
    by: Actor,
) -> Result<Vec<Effect>, EngineError> {
    e.handle(
        Event::SetRules {
            rules,
            currency: None,
            by,
        },
        T0,
    )
}

pub(super) fn notices(fx: &[Effect], kind: NoticeKind) -> Vec<String> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Notice(n) if n.kind == kind => Some(n.text.clone()),
            _ => None,
        })
        .collect()
}

pub(super) fn proposed(e: &Engine) -> Order {
    e.orders()
        .find(|o| o.state == OrderState::Proposed)
        .cloned()
        .expect("a proposed order")
}

mod ingest;
mod ordering;
mod pickups;
mod reorder;
mod shops;
