//! Tests of the household's decisions on orders: approve, edit, reject, snooze, cancel, budgets and expiry.

use super::super::OrderEdit;
use super::super::household::{ExpiryDefault, Mode, QuietHours, RejectReason};
use super::super::tests::{household, member, notices, place_order, proposed, run_until_order};
use super::super::{Effect, Engine, EngineError, Event, NoticeKind};
use super::*;

#[test]
fn approve_mode_prompts_and_a_member_approves_an_edited_order() {
    let mut e = household(|r| r.default_mode = Mode::Approve);
    let (t, fx) = run_until_order(&mut e);
    assert!(place_order(&fx).is_none());
    let prompt = notices(&fx, NoticeKind::ApprovalRequested);
    assert_eq!(prompt.len(), 1, "{fx:?}");
    assert!(
        prompt[0].starts_with("Approve? Order 1 kg of Coffee beans (2 × 500 g)"),
        "{}",
        prompt[0]
    );
    assert!(
        prompt[0].contains("You asked to approve orders of Coffee beans"),
        "{}",
        prompt[0]
    );
    let order = proposed(&e);
    let fx = e
        .handle(
            Event::Approve {
                order_id: order.id.clone(),
                by: member(),
                edit: Some(OrderEdit {
                    packs: Some(3),
                    ..OrderEdit::default()
                }),
            },
            t + HOUR_MS,
        )
        .unwrap();
    let sent = place_order(&fx).expect("sent after approval");
    assert_eq!(sent.first_line().packs, 3);
    assert_eq!(sent.total().minor, 3 * 899);
    assert_eq!(sent.decided_by.as_deref(), Some("bob (member)"));
    let last = e.audit().last().unwrap();
    assert_eq!(
        (last.action.as_str(), last.who.as_str()),
        ("approve", "bob (member)")
    );
    assert!(last.detail.contains("packs 2 -> 3"), "{}", last.detail);
}

#[test]
fn edits_outside_the_catalog_or_limits_change_nothing() {
    let mut e = household(|r| r.default_mode = Mode::Approve);
    let (t, _) = run_until_order(&mut e);
    let order = proposed(&e);
    for edit in [
        OrderEdit {
            packs: Some(0),
            ..OrderEdit::default()
        },
        OrderEdit {
            sku: Some("milk-1l".into()),
            ..OrderEdit::default()
        },
        OrderEdit {
            shop: Some("nowhere".into()),
            ..OrderEdit::default()
        },
        OrderEdit {
            fulfilment: Some("drone".into()),
            ..OrderEdit::default()
        },
    ] {
        let refused = e.handle(
            Event::Approve {
                order_id: order.id.clone(),
                by: member(),
                edit: Some(edit),
            },
            t,
        );
        assert!(
            matches!(refused, Err(EngineError::Invalid(_))),
            "{refused:?}"
        );
    }
    assert_eq!(proposed(&e), order);
    let refused = e.handle(
        Event::Reject {
            order_id: order.id.clone(),
            by: member(),
            reason: RejectReason::Other,
            note: Some("too\u{0}much".into()),
        },
        t,
    );
    assert!(
        matches!(refused, Err(EngineError::Invalid(_))),
        "{refused:?}"
    );
    assert_eq!(proposed(&e), order, "a note with a NUL changes nothing");
}

#[test]
fn an_unanswered_prompt_takes_its_default() {
    for (default, placed) in [(ExpiryDefault::Order, true), (ExpiryDefault::Skip, false)] {
        let mut e = household(|r| {
            r.default_mode = Mode::Approve;
            r.on_expiry = default;
            r.approval_timeout_hours = 12;
        });
        let (t, _) = run_until_order(&mut e);
        let order = proposed(&e);
        let early = e.handle(Event::Tick, t + 11 * HOUR_MS).unwrap();
        assert!(place_order(&early).is_none());
        let fx = e.handle(Event::Tick, t + 12 * HOUR_MS).unwrap();
        assert_eq!(place_order(&fx).is_some(), placed, "{default:?}: {fx:?}");
        let after = e.order(&order.id).unwrap();
        let expected = if placed {
            OrderState::Approved
        } else {
            OrderState::Cancelled
        };
        assert_eq!(after.state, expected);
        assert_eq!(after.decided_by.as_deref(), Some("agent"));
    }
}

#[test]
fn an_order_over_the_monthly_budget_waits_even_in_auto_mode_and_never_places_itself() {
    let mut e = household(|r| {
        r.monthly_budget_cents = Some(800);
        r.on_expiry = ExpiryDefault::Order;
    });
    let (t, fx) = run_until_order(&mut e);
    assert!(
        place_order(&fx).is_none(),
        "even one pack costs 8.99, over 8.00"
    );
    // Nothing is cut when not even one pack fits: the household decides on the order the
    // policy wants.
    let order = proposed(&e);
    assert_eq!(order.first_line().packs, 2);
    assert!(
        !order.first_line().reason.contains("cut to"),
        "{}",
        order.first_line().reason
    );
    let prompt = notices(&fx, NoticeKind::ApprovalRequested);
    assert!(prompt[0].contains("monthly budget"), "{}", prompt[0]);
    let fx = e.handle(Event::Tick, t + 25 * HOUR_MS).unwrap();
    assert!(place_order(&fx).is_none());
    assert!(e.orders().all(|o| o.state == OrderState::Cancelled));
}

#[test]
fn an_order_is_cut_to_the_packs_the_monthly_budget_still_pays_for() {
    let only_order = |e: &Engine| e.orders().next().cloned().expect("an order");
    let mut unbounded = household(|_| {});
    run_until_order(&mut unbounded);
    assert_eq!(
        only_order(&unbounded).first_line().packs,
        2,
        "the policy wants two packs"
    );

    let mut e = household(|r| r.monthly_budget_cents = Some(1_000));
    let (_, fx) = run_until_order(&mut e);
    assert!(place_order(&fx).is_some(), "one pack, 8.99, fits 10.00");
    let order = only_order(&e);
    assert_eq!((order.first_line().packs, order.total().minor), (1, 899));
    assert!(
        order
            .first_line()
            .reason
            .ends_with("cut to 1 x 500 g to stay within the monthly budget (EUR 10.00 left)"),
        "{}",
        order.first_line().reason
    );
}

#[test]
fn orders_below_the_auto_approve_limit_are_placed_at_once() {
    let mut e = household(|r| {
        r.default_mode = Mode::Approve;
        r.auto_approve_below_cents = 2_000;
    });
    let (_, fx) = run_until_order(&mut e);
    assert!(place_order(&fx).is_some());
}

#[test]
fn notify_mode_places_after_the_cancel_window_unless_cancelled() {
    let mut e = household(|r| {
        r.default_mode = Mode::Notify;
        r.cancel_window_hours = 2;
    });
    let (t, fx) = run_until_order(&mut e);
    assert!(place_order(&fx).is_none());
    assert_eq!(notices(&fx, NoticeKind::OrderScheduled).len(), 1);
    let fx = e.handle(Event::Tick, t + 2 * HOUR_MS).unwrap();
    assert!(place_order(&fx).is_some(), "placed when the window closed");

    let mut e = household(|r| r.default_mode = Mode::Notify);
    let (t, _) = run_until_order(&mut e);
    let order = proposed(&e);
    e.handle(
        Event::Reject {
            order_id: order.id.clone(),
            by: member(),
            reason: RejectReason::NotNeeded,
            note: None,
        },
        t + HOUR_MS,
    )
    .unwrap();
    let fx = e.handle(Event::Tick, t + 3 * HOUR_MS).unwrap();
    assert!(place_order(&fx).is_none());
}

#[test]
fn an_order_in_its_cancel_window_counts_against_the_budget() {
    // It is placed unless someone cancels it: the next order's budget must know.
    let mut e = household(|r| r.default_mode = Mode::Notify);
    let (t, _) = run_until_order(&mut e);
    let held = proposed(&e);
    assert!(held.total().minor > 0);
    assert_eq!(e.spent_this_month(t), held.total());
    // Asked-for orders do not count until someone approves them.
    let mut e = household(|r| r.default_mode = Mode::Approve);
    let (t, _) = run_until_order(&mut e);
    assert_eq!(e.spent_this_month(t).minor, 0);
}

#[test]
fn prompts_wait_for_the_end_of_quiet_hours() {
    // Levels arrive at 08:00 UTC.
    let mut e = household(|r| {
        r.default_mode = Mode::Approve;
        r.quiet_hours = Some(QuietHours::parse("07:00-09:30").unwrap());
    });
    let (t, fx) = run_until_order(&mut e);
    assert!(notices(&fx, NoticeKind::ApprovalRequested).is_empty());
    let fx = e.handle(Event::Tick, t + HOUR_MS).unwrap();
    assert!(notices(&fx, NoticeKind::ApprovalRequested).is_empty());
    let fx = e.handle(Event::Tick, t + 90 * 60_000).unwrap();
    assert_eq!(notices(&fx, NoticeKind::ApprovalRequested).len(), 1);
    // Snoozed: asked again after the snooze, not before.
    let order = proposed(&e);
    e.handle(
        Event::Snooze {
            order_id: order.id,
            by: member(),
            hours: 3,
        },
        t + 2 * HOUR_MS,
    )
    .unwrap();
    let fx = e.handle(Event::Tick, t + 4 * HOUR_MS).unwrap();
    assert!(notices(&fx, NoticeKind::ApprovalRequested).is_empty());
    let fx = e.handle(Event::Tick, t + 5 * HOUR_MS).unwrap();
    assert_eq!(notices(&fx, NoticeKind::ApprovalRequested).len(), 1);
}

#[test]
fn still_have_some_delays_the_next_proposal() {
    let mut e = household(|r| {
        r.default_mode = Mode::Approve;
        r.still_have_some_delay_hours = 48;
    });
    let (t, _) = run_until_order(&mut e);
    let order = proposed(&e);
    e.handle(
        Event::Reject {
            order_id: order.id,
            by: member(),
            reason: RejectReason::StillHaveSome,
            note: Some("half a bag in the cupboard".into()),
        },
        t,
    )
    .unwrap();
    let fx = e.handle(Event::Tick, t + 47 * HOUR_MS).unwrap();
    assert!(
        !fx.iter()
            .any(|x| matches!(x, Effect::SaveOrder(o) if o.state == OrderState::Proposed)),
        "proposed again too soon"
    );
    e.handle(Event::Tick, t + 49 * HOUR_MS).unwrap();
    assert!(e.orders().any(|o| o.state == OrderState::Proposed));
}
