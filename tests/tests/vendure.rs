//! The Vendure adapter against a real Vendure server (`tests/vendure/server.js`, Vendure 3.7.3
//! on Node.js with sql.js, started on a free loopback port): orders placed and paid, replays,
//! out of stock, click and collect, shop-side cancels and crashes half-way through checkout.
//!
//! Needs `npm ci --prefix tests/vendure` (`.ci/run` does it). Skips, saying so, when Vendure
//! is not installed, except in CI (`CI=true`), where that is a failure.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::time::Duration;

use replenish_commerce::vendure::{VendureAccount, VendureShop};
use replenish_commerce::{
    CommerceError, Fulfilment, OrderLine, OrderRequest, OrderStatus, Shop, ShopOrder,
};
use replenish_tests::vendure::{Gql, VendureServer, missing};
use serde_json::json;

fn server() -> Option<&'static VendureServer> {
    replenish_tests::peer_ready(missing()).then(|| VendureServer::shared().unwrap())
}

fn shop(server: &VendureServer, account: &VendureAccount) -> VendureShop {
    VendureShop::new(&server.shop_api, account.clone(), Duration::from_secs(20)).unwrap()
}

fn request(reference: &str, lines: &[(&str, u32)], fulfilment: Option<&str>) -> OrderRequest {
    OrderRequest {
        household: "home".into(),
        reference: reference.into(),
        lines: lines
            .iter()
            .map(|(sku, quantity)| OrderLine {
                sku: (*sku).into(),
                quantity: *quantity,
            })
            .collect(),
        fulfilment: fulfilment.map(str::to_owned),
    }
}

fn key(name: &str) -> String {
    format!("{name}-{}", std::process::id())
}

#[tokio::test]
async fn an_order_is_placed_and_paid_and_a_replay_with_its_key_returns_the_same_order() {
    let Some(server) = server() else { return };
    let account = server.new_customer("paid").await.unwrap();
    let shop = shop(server, &account);
    let key = key("paid");

    let order = shop
        .place_order(&key, &request("o-1", &[("coffee-beans-500g", 2)], None))
        .await
        .unwrap();
    assert_eq!(order.status, OrderStatus::Paid);
    assert_eq!(order.idempotency_key, key);
    assert_eq!(order.reference, "o-1");
    assert_eq!(
        order.lines,
        vec![OrderLine {
            sku: "coffee-beans-500g".into(),
            quantity: 2
        }]
    );
    // 2 × 8.99 € and 4.95 € home delivery, taxes included.
    assert_eq!(order.total.minor, 2 * 899 + 495);
    assert_eq!(order.total.currency.code(), "EUR");
    let fulfilment = order.fulfilment.clone().unwrap();
    assert_eq!(
        (fulfilment.id.as_str(), &fulfilment.method),
        ("home-delivery", &Fulfilment::Delivery)
    );
    assert_eq!(fulfilment.lead_days, Some((1, 2)));
    assert!(order.estimated_arrival_ms.unwrap() > order.created_at_ms);

    // The answer was lost; the agent sends the same request again, even from a new process.
    let again = self::shop(server, &account)
        .place_order(&key, &request("o-1", &[("coffee-beans-500g", 2)], None))
        .await
        .unwrap();
    assert_eq!(again.id, order.id, "a replay must not order twice");
    assert_eq!(
        shop.order(&order.id).await.unwrap().status,
        OrderStatus::Paid
    );
    assert_eq!(shop.find_order(&key).await.unwrap().unwrap().id, order.id);
    assert_eq!(shop.find_order("never-used").await.unwrap(), None);
}

#[tokio::test]
async fn out_of_stock_is_refused_by_name_and_the_catalog_offers_the_in_stock_alternative() {
    let Some(server) = server() else { return };
    let account = server.new_customer("stock").await.unwrap();
    let shop = shop(server, &account);

    let catalog = shop.catalog().await.unwrap();
    let big = catalog.offer("dishwasher-tabs-80").unwrap();
    assert_eq!((big.stock, big.pack_size), (0, 80.0));
    let error = shop
        .place_order(
            &key("stock-80"),
            &request("o-2", &[("dishwasher-tabs-80", 1)], None),
        )
        .await
        .unwrap_err();
    assert_eq!(
        error,
        CommerceError::OutOfStock {
            sku: "dishwasher-tabs-80".into(),
            available: 0,
            wanted: 1
        }
    );
    assert!(!error.retryable());

    // The alternative: the same consumable, in stock.
    let alternative = catalog
        .offers
        .iter()
        .find(|o| o.consumable == big.consumable && o.stock > 0)
        .unwrap();
    assert_eq!(alternative.sku, "dishwasher-tabs-40");
    let order = shop
        .place_order(
            &key("stock-40"),
            &request("o-2", &[(alternative.sku.as_str(), 2)], None),
        )
        .await
        .unwrap();
    assert_eq!(order.status, OrderStatus::Paid);
    assert_eq!(order.lines[0].sku, "dishwasher-tabs-40");

    // Both fulfilment options are in the catalog, pickup with its place and hours.
    let pickup = catalog
        .fulfilment
        .iter()
        .find(|f| f.id == "click-and-collect")
        .unwrap();
    match &pickup.method {
        Fulfilment::Pickup(point) => {
            assert_eq!(point.name, "Shop A");
            assert!(point.opening_hours.contains("08:00"));
        }
        other => panic!("click and collect read as {other:?}"),
    }
}

#[tokio::test]
async fn click_and_collect_is_ready_for_pickup_then_collected() {
    let Some(server) = server() else { return };
    let account = server.new_customer("pickup").await.unwrap();
    let shop = shop(server, &account);
    let order = shop
        .place_order(
            &key("pickup"),
            &request("o-3", &[("milk-whole-1l", 2)], Some("click-and-collect")),
        )
        .await
        .unwrap();
    assert_eq!(order.status, OrderStatus::Paid);
    assert_eq!(order.total.minor, 2 * 129, "pickup is free");
    assert!(matches!(
        order.fulfilment.as_ref().unwrap().method,
        Fulfilment::Pickup(_)
    ));

    let mut admin = server.admin().await.unwrap();
    let parcel = admin.fulfil(&order.id).await.unwrap();
    admin.move_fulfilment(&parcel, "Shipped").await.unwrap();
    let ready = shop.order(&order.id).await.unwrap();
    assert_eq!(ready.status, OrderStatus::ReadyForPickup);
    assert!(ready.shipped_at_ms.is_some());
    admin.move_fulfilment(&parcel, "Delivered").await.unwrap();
    let collected = shop.order(&order.id).await.unwrap();
    assert_eq!(collected.status, OrderStatus::Collected);
    assert!(collected.delivered_at_ms.is_some());
}

#[tokio::test]
async fn home_delivery_ships_and_is_delivered() {
    let Some(server) = server() else { return };
    let account = server.new_customer("delivery").await.unwrap();
    let shop = shop(server, &account);
    let order = shop
        .place_order(&key("delivery"), &request("o-4", &[("eggs-6", 1)], None))
        .await
        .unwrap();
    let mut admin = server.admin().await.unwrap();
    let parcel = admin.fulfil(&order.id).await.unwrap();
    admin.move_fulfilment(&parcel, "Shipped").await.unwrap();
    assert_eq!(
        shop.order(&order.id).await.unwrap().status,
        OrderStatus::Shipped
    );
    admin.move_fulfilment(&parcel, "Delivered").await.unwrap();
    assert_eq!(
        shop.order(&order.id).await.unwrap().status,
        OrderStatus::Delivered
    );
}

#[tokio::test]
async fn a_shop_side_cancel_reads_as_cancelled_and_a_part_cancel_as_partly_fulfilled() {
    let Some(server) = server() else { return };
    let account = server.new_customer("cancel").await.unwrap();
    let shop = shop(server, &account);
    let mut admin = server.admin().await.unwrap();

    let whole = shop
        .place_order(
            &key("cancel-whole"),
            &request("o-5", &[("eggs-6", 1)], None),
        )
        .await
        .unwrap();
    admin.cancel(&whole.id, None).await.unwrap();
    assert_eq!(
        shop.order(&whole.id).await.unwrap().status,
        OrderStatus::CancelledByShop
    );

    let part = shop
        .place_order(
            &key("cancel-part"),
            &request("o-6", &[("descaler-tabs-6", 2)], None),
        )
        .await
        .unwrap();
    admin
        .cancel(&part.id, Some(("descaler-tabs-6", 1)))
        .await
        .unwrap();
    let after = shop.order(&part.id).await.unwrap();
    assert_eq!(after.status, OrderStatus::PartiallyFulfilled);
    assert_eq!(
        after.lines[0].quantity, 1,
        "the lines say what is still coming"
    );
}

/// What a crashed agent leaves: the customer's active order with lines and the key, maybe
/// already waiting for payment.
async fn leave_half_built(
    server: &VendureServer,
    account: &VendureAccount,
    key: &str,
    arranging_payment: bool,
) -> String {
    let mut gql = Gql::new(&server.shop_api, &server.channel_token);
    gql.login(account).await.unwrap();
    let catalog = gql
        .call(
            "{ products(options: { take: 100 }) { items { variants { id sku } } } }",
            json!({}),
        )
        .await
        .unwrap();
    let variant = catalog["products"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["variants"].as_array().unwrap().clone())
        .find(|v| v["sku"] == "coffee-beans-1kg")
        .unwrap()["id"]
        .clone();
    let added = gql
        .call(
            "mutation($v: ID!) { addItemToOrder(productVariantId: $v, quantity: 1) { \
               ... on Order { code } } }",
            json!({ "v": variant }),
        )
        .await
        .unwrap();
    gql.call(
        "mutation($k: String) { setOrderCustomFields(input: { customFields: { \
           idempotencyKey: $k } }) { __typename } }",
        json!({ "k": key }),
    )
    .await
    .unwrap();
    if arranging_payment {
        gql.call(
            "mutation { setOrderShippingMethod(shippingMethodId: [\"1\"]) { __typename } }",
            json!({}),
        )
        .await
        .unwrap();
        let moved = gql
            .call(
                "mutation { transitionOrderToState(state: \"ArrangingPayment\") { \
                   ... on Order { state } } }",
                json!({}),
            )
            .await
            .unwrap();
        assert_eq!(moved["transitionOrderToState"]["state"], "ArrangingPayment");
    }
    added["addItemToOrder"]["code"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn orders_with_key(shop: &VendureShop, key: &str) -> Option<ShopOrder> {
    shop.find_order(key).await.unwrap()
}

#[tokio::test]
async fn a_crash_between_cart_and_payment_is_resumed_without_a_second_order() {
    let Some(server) = server() else { return };
    for arranging_payment in [false, true] {
        let account = server.new_customer("crash").await.unwrap();
        let key = key(&format!("crash-{arranging_payment}"));
        let cart = leave_half_built(server, &account, &key, arranging_payment).await;
        assert_eq!(orders_with_key(&shop(server, &account), &key).await, None);

        // The agent restarts and places the order it had saved, with the same key.
        let restarted = shop(server, &account);
        let order = restarted
            .place_order(&key, &request("o-7", &[("coffee-beans-1kg", 1)], None))
            .await
            .unwrap();
        assert_eq!(
            order.id, cart,
            "the half-built order is finished, not a new one"
        );
        assert_eq!(order.status, OrderStatus::Paid);
        assert_eq!(order.lines.len(), 1);
        assert_eq!(orders_with_key(&restarted, &key).await.unwrap().id, cart);
    }
}

#[tokio::test]
async fn a_cart_left_by_another_attempt_is_emptied_before_this_order_is_built() {
    let Some(server) = server() else { return };
    let account = server.new_customer("other-cart").await.unwrap();
    let other_key = key("other-cart-old");
    leave_half_built(server, &account, &other_key, true).await;

    let shop = shop(server, &account);
    let key = key("other-cart-new");
    let order = shop
        .place_order(&key, &request("o-8", &[("eggs-6", 3)], None))
        .await
        .unwrap();
    assert_eq!(order.status, OrderStatus::Paid);
    assert_eq!(
        order.lines,
        vec![OrderLine {
            sku: "eggs-6".into(),
            quantity: 3
        }],
        "nothing of the other attempt's cart is bought"
    );
    assert_eq!(order.idempotency_key, key);
    assert_eq!(orders_with_key(&shop, &other_key).await, None);
}

#[tokio::test]
async fn a_wrong_password_is_a_refusal_that_says_which_account() {
    let Some(server) = server() else { return };
    let mut account = server.new_customer("password").await.unwrap();
    account.password = "wrong".into();
    let error = shop(server, &account)
        .place_order(&key("password"), &request("o-9", &[("eggs-6", 1)], None))
        .await
        .unwrap_err();
    match &error {
        CommerceError::Rejected {
            status: 401,
            detail,
        } => {
            assert!(detail.contains(&account.email), "{detail}")
        }
        other => panic!("expected a refused login, got {other:?}"),
    }
    assert!(!error.retryable());
}

/// The whole agent buying from Vendure: a dishwasher's tablets run low, the usual 80 pack is
/// out of stock, and the agent orders the 40 pack instead, paid and placed at the shop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_orders_an_in_stock_alternative_from_vendure_when_the_usual_pack_is_out() {
    use std::sync::Arc;

    use replenish_agent::clock::{HOUR_MS, ManualClock};
    use replenish_agent::config::AgentConfig;
    use replenish_agent::engine::order::OrderState;
    use replenish_protocol::Unit;
    use replenish_tests::fed::FedAgent;

    let Some(server) = server() else { return };
    let account = server.new_customer("agent").await.unwrap();
    let vendure = Arc::new(shop(server, &account));
    // Vendure stamps orders with the wall clock: the agent's starts there too.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let tabs = (
        "dishwasher",
        "tabs",
        "dishwasher_tablets",
        Unit::Count,
        80.0,
    );
    let mut household = FedAgent::start(
        AgentConfig::default(),
        ManualClock::new(now),
        Some(vendure.clone()),
        1,
        tabs,
    )
    .await
    .unwrap();
    // Two tablets a day from 40 until the agent orders.
    let order = household
        .use_until_order(now, 20 * HOUR_MS, 40.0, 2.0, 20)
        .await
        .unwrap();
    let order = household.order(&order.id).await.unwrap().unwrap();
    assert_eq!(
        order.first_line().sku,
        "dishwasher-tabs-40",
        "the 80 pack is out of stock"
    );
    assert_eq!(order.state, OrderState::Placed, "{order:?}");
    let at_shop = vendure
        .find_order(&order.idempotency_key)
        .await
        .unwrap()
        .expect("the shop holds the agent's order under its key");
    assert_eq!(Some(&at_shop.id), order.shop_order_id.as_ref());
    assert_eq!(at_shop.status, OrderStatus::Paid);
    assert_eq!(at_shop.reference, order.id.as_str());
    assert_eq!(at_shop.lines[0].sku, "dishwasher-tabs-40");
    assert_eq!(at_shop.lines[0].quantity, order.first_line().packs);
    household.agent.shutdown().await;
}
