//! Interop with Mosquitto: the agent and a virtual appliance talk through a real Mosquitto,
//! and the two `mosquitto_pub` commands of docs/protocol.md show up in the agent's status.
//!
//! Skips (saying so) when Mosquitto is not installed, except in CI (`CI=true`), where a missing
//! Mosquitto fails the test.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use replenish_agent::clock::ManualClock;
use replenish_agent::{Agent, AgentOptions};
use replenish_protocol::HouseholdId;
use replenish_sim::appliance::{Appliance, Link};
use replenish_sim::shop::{SandboxShop, ShopConfig};
use replenish_sim::world::DEFAULT_START;
use replenish_tests::{
    doc_mosquitto_pub_lines, mosquitto_or_skip, peer_ready, programs_missing, serve_shop,
    shell_words, start_mosquitto_on_free_port,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_and_appliance_work_through_mosquitto_and_the_doc_commands_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mosquitto) = mosquitto_or_skip(dir.path(), "", &["mosquitto_pub"]) else {
        return;
    };
    let port = mosquitto.port();

    let clock = ManualClock::new(DEFAULT_START);
    let shop = SandboxShop::new(ShopConfig::default(), clock.clone());
    let (shop_server, mut config) = serve_shop(&shop).await.unwrap();
    config.household.id = "demo".into();
    config.household.pairing = replenish_agent::engine::Pairing::Open;
    config.mqtt.embedded = false;
    config.mqtt.url = format!("mqtt://127.0.0.1:{port}");
    config.http.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.storage.path = dir.path().join("agent");
    let options = AgentOptions {
        clock: clock.clone(),
        store: None,
        commerce: None,
        tick_every: None,
        broker: None,
    };
    let agent = Agent::start(&config, options).await.unwrap();
    let handle = agent.handle().clone();
    assert!(
        agent.wait_subscribed(Duration::from_secs(20)).await,
        "agent subscribed to mosquitto"
    );

    let link = Link {
        host: "127.0.0.1".into(),
        port,
        prefix: config.mqtt.prefix.clone(),
        household: HouseholdId::new("demo").unwrap(),
        tls: None,
    };
    let mut coffee = Appliance::connect(
        "coffee-maker",
        Appliance::coffee_maker(420.0, 3).unwrap(),
        &link,
        None,
        3,
        DEFAULT_START,
    )
    .await
    .unwrap();
    coffee.sample(DEFAULT_START);
    let mut sent = coffee.flush(DEFAULT_START).await.unwrap();
    assert!(sent >= 2, "birth and at least one level");

    for line in doc_mosquitto_pub_lines() {
        let mut words = shell_words(&line);
        assert_eq!(words.first().map(String::as_str), Some("mosquitto_pub"));
        for i in 0..words.len() {
            if words[i] == "-p" {
                words[i + 1] = port.to_string();
            }
            if words[i] == "-h" {
                words[i + 1] = "127.0.0.1".into();
            }
        }
        let status = Command::new(&words[0]).args(&words[1..]).status().unwrap();
        assert!(status.success(), "{line}");
        sent += 1;
    }
    tokio::time::timeout(Duration::from_secs(20), handle.settle(sent))
        .await
        .expect("agent received everything")
        .unwrap();

    let client = {
        replenish_agent::commerce::ensure_crypto_provider();
        reqwest::Client::new()
    };
    let token = replenish_agent::auth::new_token().unwrap();
    handle
        .ask(replenish_agent::engine::Event::AddMember {
            name: "tester".into(),
            role: replenish_agent::engine::household::Role::Member,
            token_hash: replenish_agent::auth::hash_token(&token),
            by: replenish_agent::engine::household::Actor::Console,
        })
        .await
        .unwrap();
    let unauthorized = client
        .get(format!("http://{}/api/v1/status", agent.http_addr()))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), reqwest::StatusCode::UNAUTHORIZED);
    let status: serde_json::Value = client
        .get(format!("http://{}/api/v1/status", agent.http_addr()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let devices = status["devices"].as_array().unwrap();
    let online = |id: &str| devices.iter().any(|d| d["id"] == id && d["online"] == true);
    assert!(online("coffee-maker") && online("kettle"), "{status:#}");
    let slot = |device: &str, slot: &str| {
        status["slots"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["device"] == device && s["slot"] == slot)
            .cloned()
    };
    assert_eq!(slot("kettle", "tea").unwrap()["level"], 64.0, "{status:#}");
    let beans = slot("coffee-maker", "beans").unwrap()["level"]
        .as_f64()
        .unwrap();
    assert!((beans - 420.0).abs() < 2.0, "beans level {beans}");

    coffee.disconnect().await;
    agent.shutdown().await;
    let _ = Arc::strong_count(&clock);
    shop_server.shutdown().await.unwrap();
}

/// A port taken between picking and binding: Mosquitto exits, and that is reported as such
/// rather than taken for Mosquitto listening (the socket that took it does accept).
#[test]
fn mosquitto_on_a_taken_port_is_an_error_not_a_broker() {
    if !peer_ready(programs_missing(&["mosquitto"], "mosquitto")) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = taken.local_addr().unwrap().port();
    match replenish_sim::mosquitto::start(dir.path(), port, "") {
        Err(replenish_tests::MosquittoError::Exited { port: p, .. }) => assert_eq!(p, port),
        other => panic!("expected Mosquitto to exit, got {other:?}"),
    }
    // On a free port it starts, wherever that is.
    let mosquitto = start_mosquitto_on_free_port(dir.path()).unwrap();
    assert_ne!(mosquitto.port(), port);
}
