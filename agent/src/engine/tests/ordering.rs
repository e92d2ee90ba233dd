//! An order from decision to shop and back: saved before it is sent, approval, resending
//! with the same key after a restart or a retryable failure, delivery.

use super::*;

#[test]
fn auto_mode_saves_the_order_before_sending_it_once() {
    let mut e = engine(Mode::Auto);
    let (t, fx) = run_until_order(&mut e);
    let saved = fx
        .iter()
        .position(|x| matches!(x, Effect::SaveOrder(o) if o.state == OrderState::Approved));
    let sent = fx
        .iter()
        .position(|x| matches!(x, Effect::PlaceOrder { .. }));
    assert!(saved.unwrap() < sent.unwrap(), "write before send: {fx:?}");
    let order = place_order(&fx).unwrap();
    assert_eq!(order.idempotency_key, "inst-o-000001");
    // Two weeks at 50 g/day: two 500 g packs.
    assert_eq!(order.first_line().packs, 2);
    // Nothing more is ordered while it is in flight, however low the slot goes.
    let fx = e
        .handle(level(100, t + HOUR_MS, 10.0), t + HOUR_MS)
        .unwrap();
    assert!(place_order(&fx).is_none());
    let fx = e.handle(Event::Tick, t + 2 * HOUR_MS).unwrap();
    assert!(place_order(&fx).is_none(), "already being placed");
}

#[test]
fn manual_mode_waits_for_approval() {
    let mut e = engine(Mode::Approve);
    let (t, fx) = run_until_order(&mut e);
    assert!(place_order(&fx).is_none());
    let order = e.orders().next().unwrap().clone();
    assert_eq!(order.state, OrderState::Proposed);
    assert!(
        e.handle(Event::Tick, t + HOUR_MS)
            .unwrap()
            .iter()
            .all(|x| !matches!(x, Effect::PlaceOrder { .. }))
    );
    let fx = e
        .handle(
            Event::Approve {
                order_id: order.id.clone(),
                by: Actor::Console,
                edit: None,
            },
            t + HOUR_MS,
        )
        .unwrap();
    assert_eq!(place_order(&fx).unwrap().id, order.id);
    let again = e.handle(
        Event::Approve {
            order_id: order.id.clone(),
            by: Actor::Console,
            edit: None,
        },
        t + HOUR_MS,
    );
    assert!(matches!(again, Err(EngineError::Invalid(_))));
    assert!(matches!(
        e.handle(
            Event::Approve {
                order_id: OrderId::numbered(999),
                by: Actor::Console,
                edit: None,
            },
            t
        ),
        Err(EngineError::UnknownOrder(_))
    ));
}

#[test]
fn a_restarted_engine_resends_with_the_same_key() {
    let mut e = engine(Mode::Auto);
    let (t, fx) = run_until_order(&mut e);
    let key = place_order(&fx).unwrap().idempotency_key.clone();
    // Crash: rebuild from what was saved.
    let snapshot = Snapshot {
        devices: e.devices().cloned().collect(),
        slots: e.slots().cloned().collect(),
        orders: e.orders().cloned().collect(),
        meta: e.meta.clone(),
        household: Some(e.household().clone()),
        audit: e.audit().cloned().collect(),
    };
    let mut restarted = Engine::new(e.config().clone(), snapshot);
    let fx = restarted.handle(Event::Started, t + 60_000).unwrap();
    let resent = place_order(&fx).unwrap();
    assert_eq!(
        (resent.idempotency_key.as_str(), resent.attempts),
        (key.as_str(), 2)
    );
    let fx = restarted
        .handle(
            Event::PlacementSucceeded {
                order_id: resent.id.clone(),
                shop_order: shop_order(&key, OrderStatus::Accepted),
            },
            t + 70_000,
        )
        .unwrap();
    assert!(
        fx.iter()
            .any(|x| matches!(x, Effect::SaveOrder(o) if o.state == OrderState::Placed))
    );
}

#[test]
fn retryable_failures_retry_later_with_the_same_key() {
    let mut e = engine(Mode::Auto);
    let (t, fx) = run_until_order(&mut e);
    let order = place_order(&fx).unwrap().clone();
    e.handle(
        Event::PlacementFailed {
            order_id: order.id.clone(),
            error: "timeout".into(),
            retryable: true,
        },
        t,
    )
    .unwrap();
    assert!(
        place_order(&e.handle(Event::Tick, t + 30_000).unwrap()).is_none(),
        "backing off"
    );
    let fx = e.handle(Event::Tick, t + 10 * 60_000).unwrap();
    assert_eq!(
        place_order(&fx).unwrap().idempotency_key,
        order.idempotency_key
    );
}

#[test]
fn delivery_then_refill_allows_the_next_order() {
    let mut e = engine(Mode::Auto);
    let (t, fx) = run_until_order(&mut e);
    let order = place_order(&fx).unwrap().clone();
    let mut delivered = shop_order(&order.idempotency_key, OrderStatus::Delivered);
    delivered.delivered_at_ms = Some(t + DAY_MS);
    e.handle(
        Event::PlacementSucceeded {
            order_id: order.id.clone(),
            shop_order: delivered,
        },
        t + DAY_MS,
    )
    .unwrap();
    assert_eq!(e.order(&order.id).unwrap().state, OrderState::Delivered);
    // Delivered but not yet loaded: still no new order.
    let fx = e
        .handle(level(200, t + DAY_MS + HOUR_MS, 5.0), t + DAY_MS + HOUR_MS)
        .unwrap();
    assert!(place_order(&fx).is_none());
    let refill = Event::Telemetry {
        device: id("coffee"),
        message: Telemetry::Report(Report {
            boot: 1,
            seq: 201,
            ts: t + DAY_MS + 2 * HOUR_MS,
            body: ReportBody::Refill {
                slot: id("beans"),
                before: 5.0,
                after: 505.0,
            },
        }),
    };
    e.handle(refill, t + DAY_MS + 2 * HOUR_MS).unwrap();
    assert!(e.slots().next().unwrap().last_refill_at.is_some());
}
