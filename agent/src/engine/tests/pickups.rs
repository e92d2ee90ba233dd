//! Click and collect: a pickup waiting, collected (said by a member or shown by a refill), or
//! left uncollected.

use super::*;

#[test]
fn a_pickup_waiting_is_recalled_daily_and_a_member_can_say_it_was_collected() {
    let mut e = two_shops(shopping::PickupPreference::Prefer, 20);
    let (order, _) = run_until_placed(&mut e);
    assert_eq!(order.fulfilment.as_ref().unwrap().id, "pickup");
    let t = order.created_at + HOUR_MS;
    let mut placed = shop_order(&order.idempotency_key, OrderStatus::ReadyForPickup);
    placed.lines = vec![];
    e.handle(
        Event::PlacementSucceeded {
            order_id: order.id.clone(),
            shop_order: placed,
        },
        t,
    )
    .unwrap();
    assert_eq!(e.order(&order.id).unwrap().state, OrderState::Shipped);
    // Nothing the first day; then once a day.
    let recalls = |fx: &[Effect]| {
        fx.iter()
            .filter(|x| matches!(x, Effect::Notice(n) if n.text.contains("has been waiting at Shop A Mitte")))
            .count()
    };
    assert_eq!(
        recalls(&e.handle(Event::Tick, t + 12 * HOUR_MS).unwrap()),
        0
    );
    assert_eq!(
        recalls(&e.handle(Event::Tick, t + 25 * HOUR_MS).unwrap()),
        1
    );
    assert_eq!(
        recalls(&e.handle(Event::Tick, t + 26 * HOUR_MS).unwrap()),
        0
    );
    // A member says it was collected: delivered, the cupboard has it, no more recalls.
    let fx = e
        .handle(
            Event::Collected {
                order_id: order.id.clone(),
                by: Actor::Console,
            },
            t + 27 * HOUR_MS,
        )
        .unwrap();
    assert!(
        fx.iter().any(
            |x| matches!(x, Effect::Notice(n) if n.text.contains("collected at Shop A Mitte"))
        )
    );
    assert_eq!(e.order(&order.id).unwrap().state, OrderState::Delivered);
    assert!(e.slot("coffee/beans").unwrap().cupboard > 0.0);
    assert_eq!(
        recalls(&e.handle(Event::Tick, t + 50 * HOUR_MS).unwrap()),
        0
    );
    // Twice is refused, and so is a home delivery.
    let again = e.handle(
        Event::Collected {
            order_id: order.id.clone(),
            by: Actor::Console,
        },
        t + 51 * HOUR_MS,
    );
    assert!(matches!(again, Err(EngineError::Invalid(_))));
}

/// Two shops, the pickup preferred: an order placed and ready at the pickup point an hour
/// after it was made; the engine, the order and that hour.
fn ready_for_pickup() -> (Engine, Order, UnixMs) {
    let mut e = two_shops(shopping::PickupPreference::Prefer, 20);
    let (order, _) = run_until_placed(&mut e);
    let t = order.created_at + HOUR_MS;
    e.handle(
        Event::PlacementSucceeded {
            order_id: order.id.clone(),
            shop_order: shop_order(&order.idempotency_key, OrderStatus::ReadyForPickup),
        },
        t,
    )
    .unwrap();
    (e, order, t)
}

#[test]
fn a_refill_the_cupboard_cannot_explain_confirms_a_ready_pickup() {
    let (mut e, order, t) = ready_for_pickup();
    let refill = |seq: u32, at: UnixMs| Event::Telemetry {
        device: id("coffee"),
        message: Telemetry::Report(Report {
            boot: 1,
            seq,
            ts: at,
            body: ReportBody::Refill {
                slot: id("beans"),
                before: 50.0,
                after: 550.0,
            },
        }),
    };
    let fx = e
        .handle(refill(1000, t + 3 * HOUR_MS), t + 3 * HOUR_MS)
        .unwrap();
    assert_eq!(e.order(&order.id).unwrap().state, OrderState::Delivered);
    assert!(
        fx.iter().any(
            |x| matches!(x, Effect::Notice(n) if n.text.contains("collected at Shop A Mitte"))
        )
    );
    assert_eq!(
        e.audit().next_back().map(|a| a.action.as_str()),
        Some("collected"),
    );
}

#[test]
fn a_pickup_left_uncollected_for_three_days_lets_the_agent_ask_to_order_again() {
    let (mut e, order, t) = ready_for_pickup();
    // Two days on, running low: the order at the pickup point still counts.
    let fx = e
        .handle(level(2000, t + 2 * DAY_MS, 20.0), t + 2 * DAY_MS)
        .unwrap();
    assert!(
        !fx.iter()
            .any(|x| matches!(x, Effect::SaveOrder(o) if o.id != order.id))
    );
    // Past three days it no longer does: a new order, for a person to approve.
    let later = t + 3 * DAY_MS + HOUR_MS;
    e.handle(level(2001, later, 15.0), later).unwrap();
    let again = e
        .orders()
        .find(|o| o.id != order.id)
        .expect("ordered again");
    assert_eq!(again.state, OrderState::Proposed);
    assert!(
        again
            .first_line()
            .reason
            .contains("has waited at Shop A Mitte for 3 days without being collected"),
        "{}",
        again.first_line().reason
    );
}
