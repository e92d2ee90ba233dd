//! The agent dies in the middle of placing an order; after a restart on the same storage the
//! shop ends up with that order exactly once.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use replenish_agent::clock::DAY_MS;
use replenish_agent::engine::order::OrderState;
use replenish_sim::world::{World, WorldConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_interrupted_by_a_crash_reaches_the_shop_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut world = World::start(WorldConfig::new(dir.path().join("agent"), 11))
        .await
        .unwrap();
    let shop = world.shop.clone();
    // The shop records orders but answers none: the agent is mid-request when it dies.
    shop.hold_order_responses(true);
    let deadline = world.clock_now() + 20 * DAY_MS;
    tokio::select! {
        result = async {
            while world.clock_now() < deadline {
                world.step().await?;
            }
            anyhow::Ok(())
        } => panic!("no order within 20 days: {result:?}"),
        _ = shop.wait_for_orders(1) => {}
    }
    assert_eq!(shop.order_count(), 1);
    let held = shop.orders().remove(0);

    world.crash_agent().await;
    shop.hold_order_responses(false);
    world.restart_agent().await.unwrap();

    // The restarted agent sent the same order again, with the same key.
    assert!(shop.order_request_count() >= 2, "the order was not retried");
    let orders = shop.orders();
    let same_key = orders
        .iter()
        .filter(|o| o.idempotency_key == held.idempotency_key)
        .count();
    assert_eq!(same_key, 1, "{orders:?}");
    let status = world.handle().unwrap().status().await.unwrap();
    let order = status
        .orders
        .iter()
        .find(|o| o.id == held.reference)
        .expect("the agent kept the order");
    assert_eq!(order.shop_order_id.as_deref(), Some(held.id.as_str()));

    // Life goes on: the order is delivered and nothing is ordered twice.
    let until = world.clock_now() + 5 * DAY_MS;
    world.run_until(until, |_| {}).await.unwrap();
    let order = world
        .handle()
        .unwrap()
        .order(&held.reference)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(order.state, OrderState::Delivered);
    let orders = shop.orders();
    let keys: std::collections::HashSet<_> = orders.iter().map(|o| &o.idempotency_key).collect();
    assert_eq!(keys.len(), orders.len());
    world.shutdown().await;
}
