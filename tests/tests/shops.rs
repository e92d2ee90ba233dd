//! The agent with two shops in `[[shops]]`: two sandbox shops (`replenish-sim`'s, real HTTP on
//! loopback) selling the same beans at different prices. The agent orders from the cheaper
//! one, only there, and asks that shop, not the other, where the order stands.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::sync::Arc;
use std::time::Duration;

use replenish_agent::clock::{DAY_MS, HOUR_MS, ManualClock};
use replenish_agent::config::{AgentConfig, ShopConfig, ShopPlatform};
use replenish_agent::engine::household::Mode;
use replenish_agent::engine::order::OrderState;
use replenish_agent::engine::{Event, Pairing, Telemetry};
use replenish_agent::store::MemoryStore;
use replenish_agent::{Agent, AgentOptions};
use replenish_protocol::{Birth, Id, Report, ReportBody, SensorKind, SlotSpec, Status, Unit};
use replenish_sim::shop::{SandboxShop, ShopConfig as SandboxConfig, ShopServer};

const T0: u64 = 20_458 * DAY_MS;

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
    let clock = ManualClock::new(T0);
    let (dear, dear_server) = sandbox(clock.clone(), 999).await;
    let (cheap, cheap_server) = sandbox(clock.clone(), 799).await;

    let mut config = AgentConfig::default();
    config.household.pairing = Pairing::Open;
    config.rules.default_mode = Mode::Auto;
    config.mqtt.embedded = false;
    config.mqtt.url = "mqtt://127.0.0.1:9".into(); // nothing listens: telemetry is fed directly
    config.http.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    config.shops = [
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
    config.validate().unwrap();
    let agent = Agent::start(
        &config,
        AgentOptions {
            clock: clock.clone(),
            store: Some(Arc::new(MemoryStore::default())),
            commerce: None,
            tick_every: None,
        },
    )
    .await
    .unwrap();
    let handle = agent.handle();
    for _ in 0..500 {
        if handle.read(|e, _| e.catalogs().len() == 2).await.unwrap() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let id = |s: &str| Id::new(s).unwrap();
    let birth = Birth {
        model: id("coffee-maker"),
        firmware: "0.1.0".try_into().unwrap(),
        boot: 1,
        slots: [SlotSpec {
            id: id("beans"),
            consumable: id("coffee_beans"),
            unit: Unit::G,
            capacity: 1000.0,
            sensor: SensorKind::Level,
        }]
        .into_iter()
        .collect(),
        buffer: None,
    };
    handle
        .ask(Event::Telemetry {
            device: id("coffee"),
            message: Telemetry::Status(Box::new(Status::Online(birth))),
        })
        .await
        .unwrap();
    let mut order = None;
    for day in 0..20u32 {
        let t = T0 + u64::from(day) * DAY_MS + 8 * HOUR_MS;
        clock.set(t);
        handle
            .ask(Event::Telemetry {
                device: id("coffee"),
                message: Telemetry::Report(Report {
                    boot: 1,
                    seq: day + 1,
                    ts: t,
                    body: ReportBody::Level {
                        slot: id("beans"),
                        remaining: 1000.0 - 50.0 * day as f32,
                    },
                }),
            })
            .await
            .unwrap();
        handle.settle(0).await.unwrap();
        order = handle
            .read(|e, _| e.orders().last().cloned())
            .await
            .unwrap();
        if order.is_some() {
            break;
        }
    }
    let order = order.expect("no order within 20 days");
    assert_eq!(order.shop, "cheap", "{}", order.reason);
    assert!(order.reason.contains("Shop Cheap"), "{}", order.reason);
    assert_eq!(cheap.orders().len(), 1);
    assert!(
        dear.orders().is_empty(),
        "nothing is ordered at the dearer shop"
    );
    let placed = handle
        .read({
            let id = order.id.clone();
            move |e, _| e.order(&id).cloned()
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(placed.state, OrderState::Placed);
    assert_eq!(placed.shop_order_id, Some(cheap.orders()[0].id.clone()));

    // Two days later the cheap shop has delivered it; the agent asks that shop and learns so.
    clock.advance(3 * DAY_MS);
    handle.ask(Event::Tick).await.unwrap();
    handle.settle(0).await.unwrap();
    let delivered = handle
        .read(move |e, _| e.order(&order.id).cloned())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(delivered.state, OrderState::Delivered);
    agent.shutdown().await;
}
