//! Click and collect: a pickup waiting, collected (said by a member or shown by a refill), or
//! left uncollected.

use super::super::lead_time::LeadTime;
use super::*;
use replenish_commerce::OpeningHours;

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

/// An order four days out, then a day that takes what was meant to last until it: a pickup
/// bridges the days before it, once; a day of ordinary use does not.
#[test]
fn a_faster_order_bridges_the_days_before_an_order_that_would_come_too_late() {
    let mut e = two_shops(shopping::PickupPreference::WhenSooner, 4);
    let (order, _) = run_until_placed(&mut e);
    assert_eq!(order.shop.as_str(), "b", "{}", order.first_line().reason);
    let placed_at = order.created_at;
    let mut answer = shop_order(&order.idempotency_key, OrderStatus::Accepted);
    answer.estimated_arrival_ms = Some(placed_at + 4 * DAY_MS);
    e.handle(
        Event::PlacementSucceeded {
            order_id: order.id.clone(),
            shop_order: answer,
        },
        placed_at,
    )
    .unwrap();
    let level_then = e.slots().next().unwrap().level.unwrap();
    let others = |e: &Engine| e.orders().filter(|o| o.id != order.id).count();
    // A day of ordinary use (50 g): the order on its way still comes in time.
    let day = placed_at + DAY_MS;
    e.handle(level(5000, day, (level_then - 50.0) as f32), day)
        .unwrap();
    assert_eq!(others(&e), 0);
    // Guests: 200 g more by the next morning, 20 g left with three days to go.
    let guests = day + DAY_MS;
    e.handle(level(5001, guests, 20.0), guests).unwrap();
    let bridge = e
        .orders()
        .find(|o| o.id != order.id)
        .expect("a bridge ordered")
        .clone();
    assert_eq!(bridge.shop.as_str(), "a");
    assert!(
        bridge
            .fulfilment
            .as_ref()
            .is_some_and(|f| f.method != replenish_commerce::Fulfilment::Delivery),
        "{:?}",
        bridge.fulfilment
    );
    assert!(
        bridge.first_line().reason.contains("bridges the gap"),
        "{}",
        bridge.first_line().reason
    );
    // Emptier still: the bridge is the last (two orders open).
    let later = guests + 2 * HOUR_MS;
    e.handle(level(5002, later, 0.0), later).unwrap();
    assert_eq!(others(&e), 1);
}

/// `weekday` (0 = Monday) of the week after `T0` (a Monday), at `hour`.
fn next_week(weekday: u64, hour: u64) -> UnixMs {
    T0 + (7 + weekday) * DAY_MS + hour * HOUR_MS
}

#[test]
fn a_pickups_time_runs_only_while_its_point_is_open() {
    let e = two_shops(shopping::PickupPreference::Prefer, 20);
    let pickup = fulfilment_option("pickup", true, 0, (0, 0));
    let home = fulfilment_option("home", false, 495, (1, 2));
    // Nothing learned: "a day" at a point open 72 of a week's 168 hours is 10.3 open hours.
    let open = e.lead_of("a", Some(&pickup));
    assert_eq!(open.p50(), 24 * HOUR_MS * 72 / 168);
    let mut e = e;
    e.meta.lead_times.insert(
        shopping::lead_key("a", Some(&pickup)),
        LeadTime {
            prior_ms: 0,
            observed_ms: vec![10 * HOUR_MS; 10],
        },
    );
    // Ten open hours: from Tuesday 08:00, that evening; from Saturday 19:00, an hour that
    // night and nine on Monday; from Sunday noon, Monday from its opening.
    let tuesday = e.lead_at("a", Some(&pickup), next_week(1, 8));
    assert_eq!(tuesday.p50(), 10 * HOUR_MS);
    let saturday = e.lead_at("a", Some(&pickup), next_week(5, 19));
    assert_eq!(saturday.p50(), (5 + 24 + 17) * HOUR_MS);
    let sunday = e.lead_at("a", Some(&pickup), next_week(6, 12));
    assert_eq!(sunday.p50(), (12 + 8 + 10) * HOUR_MS);
    // A delivery to the door does not wait for the point.
    assert_eq!(
        e.lead_at("a", Some(&home), next_week(6, 12)),
        e.lead_of("a", Some(&home))
    );
}

#[test]
fn a_pickup_teaches_the_open_time_it_took() {
    // Placed on a Saturday at 21:00, after closing, and collected on Monday at 17:00: 9
    // hours of the point's open time, not 44.
    let mut e = two_shops(shopping::PickupPreference::Prefer, 20);
    let (order, _) = run_until_placed(&mut e);
    let placed = (0..3)
        .map(|week| T0 + (7 * week + 5) * DAY_MS + 21 * HOUR_MS)
        .find(|&t| t > order.created_at)
        .unwrap();
    e.handle(
        Event::PlacementSucceeded {
            order_id: order.id.clone(),
            shop_order: shop_order(&order.idempotency_key, OrderStatus::ReadyForPickup),
        },
        placed,
    )
    .unwrap();
    let handled = OpeningHours::parse("Mon–Sat 08:00–20:00")
        .unwrap()
        .next_open(placed);
    assert_eq!(handled, placed + 35 * HOUR_MS);
    let collected = handled + 9 * HOUR_MS;
    e.handle(
        Event::Collected {
            order_id: order.id.clone(),
            by: Actor::Console,
        },
        collected,
    )
    .unwrap();
    let learned = &e.meta.lead_times[&shopping::lead_key("a", order.fulfilment.as_ref())];
    assert_eq!(learned.observed_ms, [9 * HOUR_MS]);
}
