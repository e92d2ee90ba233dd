//! Choosing among shops and products: the cheapest way in time, the usual product out,
//! nothing in stock anywhere, the price guard, catalogs, substitutions.

use super::*;

#[test]
fn of_two_shops_the_cheapest_way_that_arrives_in_time_is_chosen_and_named() {
    // B is cheapest and, ordered early enough for its 6 days, arrives in time.
    let mut e = two_shops(shopping::PickupPreference::WhenSooner, 6);
    let (order, _) = run_until_placed(&mut e);
    assert_eq!(order.shop, "b", "{}", order.first_line().reason);
    assert!(
        order.first_line().reason.contains("Shop B"),
        "{}",
        order.first_line().reason
    );

    // At 20 days B cannot be in time: the agent waits for A, whose free pickup beats its
    // paid delivery.
    let mut e = two_shops(shopping::PickupPreference::WhenSooner, 20);
    let (order, fx) = run_until_placed(&mut e);
    assert_eq!(order.shop, "a", "{}", order.first_line().reason);
    assert_eq!(order.fulfilment.as_ref().unwrap().id, "pickup");
    assert!(
        order.first_line().reason.contains("Shop A")
            && order
                .first_line()
                .reason
                .contains("to collect at Shop A Mitte"),
        "{}",
        order.first_line().reason
    );
    let request = fx
        .iter()
        .find_map(|x| match x {
            Effect::PlaceOrder { request, .. } => Some(request.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(request.fulfilment.as_deref(), Some("pickup"));

    let mut never = two_shops(shopping::PickupPreference::Never, 20);
    let (order, _) = run_until_placed(&mut never);
    assert_eq!(
        (
            order.shop.as_str(),
            order.fulfilment.as_ref().unwrap().id.as_str()
        ),
        ("a", "home")
    );
}

#[test]
fn when_the_usual_product_is_out_another_is_proposed_for_approval_never_ordered_silently() {
    let allow = |c: &mut EngineConfig| {
        c.products
            .insert("coffee_beans".into(), vec!["usual-500".into()]);
    };
    // In stock: the usual product is ordered as usual.
    let mut e = engine_with(&[("usual-500", 899, 10), ("other-500", 949, 10)], allow);
    let (_, fx) = run_until_order(&mut e);
    assert_eq!(place_order(&fx).unwrap().first_line().sku, "usual-500");

    // Out of stock: the other product, waiting for a person even in auto mode.
    let mut e = engine_with(&[("usual-500", 899, 0), ("other-500", 949, 10)], allow);
    let (_, fx) = run_until_order(&mut e);
    assert!(place_order(&fx).is_none(), "not ordered without asking");
    let order = e.orders().next().unwrap();
    assert_eq!(
        (order.first_line().sku.as_str(), order.state),
        ("other-500", OrderState::Proposed)
    );
    assert!(
        order
            .first_line()
            .reason
            .contains("None of your chosen products for Coffee beans"),
        "{}",
        order.first_line().reason
    );
    assert!(
        order
            .first_line()
            .reason
            .contains("the usual usual-500 is out of stock"),
        "{}",
        order.first_line().reason
    );
    let actions: Vec<&str> = e.audit().map(|a| a.action.as_str()).collect();
    assert!(
        actions.contains(&"alternative") && actions.contains(&"asked"),
        "{actions:?}"
    );
    let pending = order.pending.as_ref().unwrap();
    assert_eq!(pending.on_expiry, household::ExpiryDefault::Skip);
}

#[test]
fn with_nothing_in_stock_anywhere_the_household_is_told_once_a_day_never_silently() {
    let mut e = engine_with(&[("beans-500", 899, 0), ("beans-1kg", 1500, 0)], |_| {});
    let mut told = Vec::new();
    let mut remaining = 600.0;
    for step in 0..(12 * 6) {
        let t = T0 + step * 4 * HOUR_MS;
        let fx = e.handle(level(step as u32 + 1, t, remaining), t).unwrap();
        assert!(place_order(&fx).is_none());
        told.extend(fx.iter().filter_map(|x| match x {
            Effect::Notice(n) if n.kind == NoticeKind::NothingInStock => {
                Some((t / DAY_MS, n.text.clone()))
            }
            _ => None,
        }));
        remaining = (remaining - 50.0 / 6.0).max(0.0);
    }
    assert!(
        !told.is_empty(),
        "a slot running out with nothing to buy is said"
    );
    let days: std::collections::HashSet<u64> = told.iter().map(|(d, _)| *d).collect();
    assert_eq!(days.len(), told.len(), "at most once a day: {told:?}");
    assert!(told[0].1.contains("beans-1kg at the shop"), "{}", told[0].1);
    assert!(e.orders().next().is_none());
}

#[test]
fn an_order_above_the_price_guard_waits_for_approval_even_in_auto_mode() {
    // The 1 kg bag usually makes beans cheap (12.00 per kg); it is out, and 500 g bags
    // cost 9.99, i.e. 19.98 per kg: 66 % more.
    let mut e = engine_with(&[("cheap-500", 600, 0), ("dear-500", 999, 10)], |_| {});
    let (_, fx) = run_until_order(&mut e);
    assert!(place_order(&fx).is_none());
    let order = e.orders().next().unwrap();
    assert_eq!(order.state, OrderState::Proposed);
    assert!(
        order
            .first_line()
            .reason
            .contains("It costs 67% more than usual"),
        "{}",
        order.first_line().reason
    );

    // Within the guard (a tolerance of 2x): ordered at once.
    let mut e = engine_with(&[("cheap-500", 600, 0), ("dear-500", 999, 10)], |c| {
        c.price_guard = 2.0
    });
    let (_, fx) = run_until_order(&mut e);
    assert_eq!(place_order(&fx).unwrap().first_line().sku, "dear-500");
}

#[test]
fn a_substitution_by_the_shop_is_accepted_within_the_rules_and_told_otherwise() {
    for (allowed, accepted) in [
        (vec!["usual-500", "other-500"], true),
        (vec!["usual-500"], false),
    ] {
        let mut e = engine_with(&[("usual-500", 899, 10), ("other-500", 949, 10)], |c| {
            c.products.insert(
                "coffee_beans".into(),
                allowed.iter().map(|s| (*s).to_string()).collect(),
            );
        });
        let (t, fx) = run_until_order(&mut e);
        let order = place_order(&fx).unwrap().clone();
        assert_eq!(order.first_line().sku, "usual-500");
        let mut at_shop = shop_order(&order.idempotency_key, OrderStatus::SubstitutedByShop);
        at_shop.lines = vec![OrderLine {
            sku: "other-500".into(),
            quantity: order.first_line().packs,
        }];
        let told = |fx: &[Effect]| {
            fx.iter()
                .filter_map(|x| match x {
                    Effect::Notice(n) if n.kind == NoticeKind::SubstitutedByShop => {
                        Some(n.text.clone())
                    }
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
        let fx = e
            .handle(
                Event::PlacementSucceeded {
                    order_id: order.id.clone(),
                    shop_order: at_shop.clone(),
                },
                t + HOUR_MS,
            )
            .unwrap();
        let text = told(&fx);
        assert_eq!(text.len(), 1, "{text:?}");
        let now = e.order(&order.id).unwrap();
        if accepted {
            assert!(
                text[0].contains("Accepted, as your rules allow"),
                "{}",
                text[0]
            );
            assert_eq!(
                now.first_line().sku,
                "other-500",
                "the lines follow the shop's"
            );
        } else {
            assert!(text[0].contains("Not as your rules allow"), "{}", text[0]);
            assert_eq!(now.first_line().sku, "usual-500");
        }
        // Said once, however often the shop says it.
        let fx = e
            .handle(
                Event::ShopStatus {
                    order_id: order.id.clone(),
                    shop_order: at_shop,
                },
                t + 2 * HOUR_MS,
            )
            .unwrap();
        assert!(told(&fx).is_empty());
    }
}

#[test]
fn a_catalog_from_a_shop_that_is_not_configured_is_refused() {
    let mut e = engine(Mode::Auto);
    let refused = e.handle(
        Event::Catalog {
            shop: "elsewhere".into(),
            catalog: catalog(),
        },
        T0,
    );
    assert!(matches!(refused, Err(EngineError::Invalid(_))));
    assert_eq!(e.catalogs().keys().collect::<Vec<_>>(), [DEFAULT_SHOP]);
}

#[test]
fn orders_of_an_agent_before_several_shops_belong_to_the_first_shop() {
    let mut e = engine(Mode::Auto);
    let (_, fx) = run_until_order(&mut e);
    let mut stored = place_order(&fx).unwrap().clone();
    stored.shop = ShopId::default();
    let json = serde_json::to_string(&stored)
        .unwrap()
        .replace(",\"shop\":\"\"", "");
    let legacy: Order = serde_json::from_str(&json).unwrap();
    let config = EngineConfig::new(id("home"), "inst".into());
    let e = Engine::new(
        config,
        Snapshot {
            orders: vec![legacy],
            ..Snapshot::default()
        },
    );
    assert_eq!(e.orders().next().unwrap().shop, DEFAULT_SHOP);
}

/// Shop B's catalog priced in Swiss francs (its beans and its delivery), and shop A's beans
/// with `a_stock` packs in stock.
fn b_in_francs(e: &mut Engine, a_stock: u32) {
    let chf = replenish_commerce::Currency::new("CHF").unwrap();
    let mut a = e.catalog_of("a").unwrap().clone();
    a.offers[0].stock = a_stock;
    let mut b = e.catalog_of("b").unwrap().clone();
    b.offers[0].price.currency = chf;
    for option in &mut b.fulfilment {
        if let Some(fee) = &mut option.price {
            fee.currency = chf;
        }
    }
    give_catalogs(e, [("a", a), ("b", b)]);
}

#[test]
fn prices_in_two_currencies_are_never_compared_and_a_foreign_order_asks_under_a_budget() {
    // B's 8.49 francs are not cheaper than A's 8.99 euros: no exchange rate is known, so
    // the household's currency (the first shop's) is bought in while it is in stock.
    let mut e = two_shops(shopping::PickupPreference::Never, 6);
    b_in_francs(&mut e, 10);
    assert_eq!(e.home_currency(), replenish_commerce::Currency::EUR);
    let (order, _) = run_until_placed(&mut e);
    assert_eq!(order.shop, "a", "{}", order.first_line().reason);

    // A sold out: B's beans in francs. Under a monthly budget in euros a person decides (auto
    // mode or not), the order is not cut to the euros left, and nobody's silence places it.
    let mut e = two_shops(shopping::PickupPreference::Never, 6);
    b_in_francs(&mut e, 0);
    let mut rules = e.household().rules.clone();
    rules.monthly_budget_cents = Some(1_000);
    set_rules(&mut e, rules, Actor::Console).unwrap();
    let (t, fx) = run_until_order(&mut e);
    assert!(place_order(&fx).is_none(), "not placed without a person");
    let order = proposed(&e);
    assert_eq!(order.shop, "b");
    assert_eq!(order.total().currency.to_string(), "CHF");
    let pending = order.pending.as_ref().unwrap();
    assert_eq!(pending.on_expiry, household::ExpiryDefault::Skip);
    assert!(
        pending
            .why
            .contains("in another currency than your monthly budget (EUR)"),
        "{}",
        pending.why
    );
    // A back in stock: the options a person picks from put the euro shop first and the
    // francs after, though 8.49 is the smaller number.
    b_in_francs(&mut e, 10);
    let options = e.order_options(&order.id, t).unwrap();
    assert_eq!(options.first().map(|o| o.shop.as_str()), Some("a"));
    assert_eq!(
        options.last().map(|o| o.currency.to_string()).as_deref(),
        Some("CHF")
    );
    // Not spent in euros, even once approved.
    e.handle(
        Event::Approve {
            order_id: order.id.clone(),
            by: Actor::Console,
            edit: None,
        },
        t,
    )
    .unwrap();
    assert_eq!(e.spent_this_month(t).minor, 0);
}
