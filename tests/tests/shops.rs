//! The agent with two shops in `[[shops]]`: two sandbox shops (`replenish-sim`'s, real HTTP on
//! loopback) selling the same beans at different prices. The agent orders from the cheaper
//! one, only there, and asks that shop, not the other, where the order stands.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::sync::Arc;

use replenish_agent::clock::{DAY_MS, HOUR_MS, ManualClock};
use replenish_agent::config::{AgentConfig, ShopConfig, ShopPlatform};
use replenish_agent::engine::Event;
use replenish_agent::engine::order::OrderState;
use replenish_protocol::Unit;
use replenish_sim::shop::{SandboxShop, ShopConfig as SandboxConfig, ShopServer};
use replenish_tests::fed::FedAgent;

const T0: u64 = 20_458 * DAY_MS;

/// A household whose grinder of beans (1000 g) goes down by 50 g a day from `T0`, reported at
/// 08:00, its agent on `config` with `shops` shops, until the agent makes an order (within
/// 20 days).
async fn beans_until_order(
    config: AgentConfig,
    clock: &Arc<ManualClock>,
    shops: usize,
) -> (FedAgent, replenish_agent::engine::order::Order) {
    let beans = ("coffee", "beans", "coffee_beans", Unit::G, 1000.0);
    let mut household = FedAgent::start(config, clock.clone(), None, shops, beans)
        .await
        .unwrap();
    let order = household
        .use_until_order(T0, 8 * HOUR_MS, 1000.0, 50.0, 20)
        .await
        .unwrap();
    (household, order)
}

async fn sandbox(clock: Arc<ManualClock>, beans_cents: u64) -> (SandboxShop, ShopServer) {
    let mut config = SandboxConfig::default();
    for item in &mut config.catalog {
        if item.consumable == "coffee_beans" {
            item.price_cents = beans_cents;
        }
    }
    let shop = SandboxShop::new(config, clock);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = shop.spawn(listener).await.unwrap();
    (shop, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_orders_at_the_cheaper_of_two_shops_and_follows_the_order_there() {
    // One clock for the shops and the agent.
    let clock = ManualClock::new(T0);
    let (dear, dear_server) = sandbox(clock.clone(), 999).await;
    let (cheap, cheap_server) = sandbox(clock.clone(), 799).await;

    let shops = [
        ("dear", "Shop Dear", &dear_server),
        ("cheap", "Shop Cheap", &cheap_server),
    ]
    .into_iter()
    .map(|(id, name, server)| ShopConfig {
        id: id.into(),
        name: name.into(),
        platform: ShopPlatform::Sandbox,
        url: format!("http://{}", server.addr()),
        timeout_secs: 5,
        vendure: None,
    })
    .collect();
    let config = AgentConfig {
        shops,
        ..AgentConfig::default()
    };
    config.validate().unwrap();
    let (household, order) = beans_until_order(config, &clock, 2).await;
    assert_eq!(order.shop, "cheap", "{}", order.first_line().reason);
    assert!(
        order.first_line().reason.contains("Shop Cheap"),
        "{}",
        order.first_line().reason
    );
    assert_eq!(cheap.orders().len(), 1);
    assert!(
        dear.orders().is_empty(),
        "nothing is ordered at the dearer shop"
    );
    let placed = household.order(&order.id).await.unwrap().unwrap();
    assert_eq!(placed.state, OrderState::Placed);
    assert_eq!(placed.shop_order_id, Some(cheap.orders()[0].id.clone()));

    // Two days later the cheap shop has delivered it; the agent asks that shop and learns so.
    household.clock.advance(3 * DAY_MS);
    household.handle().ask(Event::Tick).await.unwrap();
    household.handle().settle(0).await.unwrap();
    let delivered = household.order(&order.id).await.unwrap().unwrap();
    assert_eq!(delivered.state, OrderState::Delivered);
    household.agent.shutdown().await;
}

/// The shop sends another bag of beans than the one ordered (a `substitute` fault). The
/// household allows both: the agent accepts it, and its order now says what comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_substitution_within_the_household_rules_is_accepted_and_followed() {
    use replenish_sim::shop_faults::{FaultSpec, Faults};
    let clock = ManualClock::new(T0);
    let mut shop_config = SandboxConfig::default();
    shop_config
        .catalog
        .push(replenish_sim::shop::beans_1kg(100));
    let shop = SandboxShop::new(shop_config, clock.clone());
    shop.set_faults(Some(Faults::new(
        FaultSpec::parse("substitute=1").unwrap(),
        1,
    )));
    let (_server, mut config) = replenish_tests::serve_shop(&shop).await.unwrap();
    config.consumables.insert(
        "coffee_beans".into(),
        replenish_agent::config::ConsumableSection {
            products: vec!["coffee-beans-500g".into(), "coffee-beans-1kg".into()],
            ..Default::default()
        },
    );
    let (household, order) = beans_until_order(config, &clock, 1).await;
    let placed = household.order(&order.id).await.unwrap().unwrap();
    assert_eq!(shop.injected_faults().get("substitute"), Some(&1));
    // Whichever bag the agent asked for, the shop sent the other, and the agent's order says
    // what comes.
    let sent = shop.orders()[0].items[0].clone();
    assert_eq!(
        placed.first_line().sku,
        sent.sku,
        "the order follows the shop's substitution"
    );
    assert_eq!(placed.first_line().packs, sent.quantity);
    let substituted: Vec<String> = household
        .handle()
        .read(|e, _| {
            e.audit()
                .filter(|a| a.action == "substituted")
                .map(|a| a.detail.clone())
                .collect()
        })
        .await
        .unwrap();
    assert_eq!(substituted.len(), 1, "{substituted:?}");
    assert!(
        substituted[0].contains("Accepted, as your rules allow")
            && substituted[0].contains(" instead of "),
        "{}",
        substituted[0]
    );
    household.agent.shutdown().await;
}

/// The household's only allowed beans are out at both shops; each has another bag. The agent
/// proposes one for approval (never orders it by itself), lists both side by side, and a
/// person takes the other shop's: the order goes there, and only there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_usual_product_out_everywhere_a_person_picks_from_the_options_side_by_side() {
    let clock = ManualClock::new(T0);
    let other_beans = |sku: &str, name: &str, pack_size: f64, price_cents: u64| {
        replenish_commerce::sandbox::wire::CatalogItem {
            sku: sku.into(),
            name: name.into(),
            consumable: "coffee_beans".into(),
            pack_size,
            unit: Unit::G,
            price_cents,
            currency: "EUR".into(),
            stock: 100,
        }
    };
    let mut servers = Vec::new();
    let mut shops = Vec::new();
    for (id, extra) in [
        (
            "corner",
            other_beans("coffee-beans-1kg", "Coffee beans, 1 kg", 1000.0, 1649),
        ),
        (
            "bigbox",
            other_beans("espresso-500g", "Espresso beans, 500 g", 500.0, 999),
        ),
    ] {
        let mut config = SandboxConfig::default();
        for item in &mut config.catalog {
            if item.sku == "coffee-beans-500g" {
                item.stock = 0;
            }
        }
        config.catalog.push(extra);
        let shop = SandboxShop::new(config, clock.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = shop.spawn(listener).await.unwrap();
        shops.push(ShopConfig {
            id: id.into(),
            name: format!("Shop {id}"),
            platform: ShopPlatform::Sandbox,
            url: format!("http://{}", server.addr()),
            timeout_secs: 5,
            vendure: None,
        });
        servers.push((shop, server));
    }
    let mut config = AgentConfig {
        shops,
        ..AgentConfig::default()
    };
    config.consumables.insert(
        "coffee_beans".into(),
        replenish_agent::config::ConsumableSection {
            products: vec!["coffee-beans-500g".into()],
            ..Default::default()
        },
    );
    config.validate().unwrap();
    let (household, order) = beans_until_order(config, &clock, 2).await;
    assert_eq!(
        order.state,
        OrderState::Proposed,
        "{}",
        order.first_line().reason
    );
    assert!(
        servers.iter().all(|(shop, _)| shop.orders().is_empty()),
        "nothing the household did not choose is ordered by itself"
    );
    let id = order.id.clone();
    let options = household
        .handle()
        .read(move |e, now| e.order_options(&id, now))
        .await
        .unwrap()
        .unwrap();
    let listed: Vec<(&str, &str, u32, u64)> = options
        .iter()
        .map(|o| (o.shop.as_str(), o.sku.as_str(), o.packs, o.total_minor))
        .collect();
    // The same amount each (the order's), cheapest per gram first; neither is on the list.
    let wanted = f64::from(order.first_line().packs) * order.first_line().pack_size;
    assert!(
        options
            .iter()
            .all(|o| f64::from(o.packs) * o.pack_size >= wanted)
    );
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(options.iter().all(|o| !o.allowed), "{listed:?}");
    assert_eq!(options.iter().filter(|o| o.current).count(), 1);
    let per_gram = |o: &replenish_agent::engine::options::OrderOption| {
        o.total_minor as f64 / (f64::from(o.packs) * o.pack_size)
    };
    assert!(per_gram(&options[0]) <= per_gram(&options[1]), "{listed:?}");

    // A person takes the option the agent did not propose.
    let chosen = options.iter().find(|o| !o.current).unwrap().clone();
    household
        .handle()
        .ask(Event::Approve {
            order_id: order.id.clone(),
            by: replenish_agent::engine::household::Actor::Console,
            edit: Some(replenish_agent::engine::OrderEdit {
                shop: Some(chosen.shop.to_string()),
                sku: Some(chosen.sku.clone()),
                fulfilment: chosen.fulfilment.as_ref().map(|f| f.id.clone()),
                packs: Some(chosen.packs),
            }),
        })
        .await
        .unwrap();
    household.handle().settle(0).await.unwrap();
    let placed = household.order(&order.id).await.unwrap().unwrap();
    assert_eq!(placed.state, OrderState::Placed, "{:?}", placed.last_error);
    assert_eq!(
        (placed.shop.as_str(), placed.first_line().sku.as_str()),
        (chosen.shop.as_str(), chosen.sku.as_str())
    );
    for ((shop, _), config) in servers.iter().zip(["corner", "bigbox"]) {
        let orders = shop.orders();
        if config == chosen.shop {
            assert_eq!(orders.len(), 1);
            assert_eq!(orders[0].items[0].sku, chosen.sku);
            assert_eq!(orders[0].items[0].quantity, chosen.packs);
        } else {
            assert!(orders.is_empty(), "{config} got an order");
        }
    }
    household.agent.shutdown().await;
}

/// A member cancels an order the sandbox shop has taken: the shop cancels it and the agent's
/// order says so. Once the next order has shipped, the shop refuses and the household is told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_cancels_an_unsent_order_at_the_shop_and_a_shipped_one_is_refused() {
    use replenish_agent::engine::household::Actor;
    let clock = ManualClock::new(T0);
    let (shop, server) = sandbox(clock.clone(), 899).await;
    let mut config = AgentConfig::default();
    config.commerce.url = format!("http://{}", server.addr());
    let (mut household, order) = beans_until_order(config, &clock, 1).await;
    assert_eq!(order.state, OrderState::Placed);
    let cancel = |id: &str| Event::Cancel {
        order_id: replenish_agent::engine::order::OrderId::parse(id).unwrap(),
        by: Actor::Console,
    };
    household.handle().ask(cancel(&order.id)).await.unwrap();
    household.handle().settle(0).await.unwrap();
    let cancelled = household.order(&order.id).await.unwrap().unwrap();
    assert_eq!(cancelled.state, OrderState::Cancelled);
    assert_eq!(
        shop.orders()[0].status,
        replenish_commerce::sandbox::wire::ShopOrderStatus::Cancelled
    );
    // Cancelled is final: asking again is refused by the agent itself.
    assert!(household.handle().ask(cancel(&order.id)).await.is_err());

    // The agent orders again. The shop ships it (at half its lead time) before the agent has
    // heard: the member's cancel reaches the shop, which refuses; the household is told.
    let now = replenish_agent::clock::Clock::now_ms(&*clock);
    let mut next = None;
    for day in 1..6u64 {
        let t = now - now % DAY_MS + day * DAY_MS + 8 * HOUR_MS;
        let newest = household.level(t, 350.0 - 50.0 * day as f32).await.unwrap();
        if let Some(newest) = newest.filter(|o| o.id != order.id) {
            next = Some(newest);
            break;
        }
    }
    let next = next.expect("a second order once the beans run low again");
    assert_eq!(next.state, OrderState::Placed);
    household.clock.advance(DAY_MS + DAY_MS / 2);
    household.handle().ask(cancel(&next.id)).await.unwrap();
    household.handle().settle(0).await.unwrap();
    let id = next.id.clone();
    let refused: Vec<String> = household
        .handle()
        .read(move |e, _| {
            e.audit()
                .filter(|a| a.action == "cancel refused" && a.subject == id.as_str())
                .map(|a| a.detail.clone())
                .collect()
        })
        .await
        .unwrap();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(refused[0].contains("contact"), "{}", refused[0]);
    household.handle().ask(Event::Tick).await.unwrap();
    household.handle().settle(0).await.unwrap();
    let shipped = household.order(&next.id).await.unwrap().unwrap();
    assert_eq!(shipped.state, OrderState::Shipped);
    assert!(
        household.handle().ask(cancel(&next.id)).await.is_err(),
        "a shipped order is not even asked for"
    );
    household.agent.shutdown().await;
}
