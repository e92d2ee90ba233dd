//! Home Assistant discovery through a real Mosquitto, read with `mosquitto_sub` the way Home
//! Assistant subscribes: the config is retained, comes back after Mosquitto restarts (and so
//! forgets everything retained), availability turns `offline` when the agent stops, and an
//! agent started with discovery off removes what the last one announced.
//!
//! Skips (saying so) when Mosquitto is not installed, except in CI (`CI=true`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use replenish_agent::clock::ManualClock;
use replenish_agent::config::AgentConfig;
use replenish_agent::engine::Pairing;
use replenish_agent::store::MemoryStore;
use replenish_agent::{Agent, AgentOptions};
use replenish_commerce::Catalog;
use replenish_commerce::MemoryShop;
use replenish_sim::world::DEFAULT_START;
use replenish_tests::{mosquitto_or_skip, start_mosquitto};

/// The first message on `topic` (a retained one arrives at once), or `None` after `secs`.
async fn first_message(port: u16, topic: &str, secs: u32) -> Option<String> {
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || {
        let output = Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
            .args(["-t", &topic, "-C", "1", "-W", &secs.to_string()])
            .output()
            .unwrap();
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
    })
    .await
    .unwrap()
}

/// An agent of its own: a fresh store, an empty shop, a clock standing still.
fn options() -> AgentOptions {
    AgentOptions {
        clock: ManualClock::new(DEFAULT_START),
        store: Some(Arc::new(MemoryStore::default())),
        commerce: Some(Arc::new(MemoryShop::new(Catalog::default()))),
        tick_every: None,
        broker: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_survives_a_mosquitto_restart_and_availability_follows_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let clients = ["mosquitto_sub", "mosquitto_pub"];
    let Some(mosquitto) = mosquitto_or_skip(dir.path(), "", &clients) else {
        return;
    };
    let port = mosquitto.port();

    let mut agent_config = AgentConfig::default();
    agent_config.household.pairing = Pairing::Open;
    agent_config.mqtt.embedded = false;
    agent_config.mqtt.url = format!("mqtt://127.0.0.1:{port}");
    agent_config.http.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    let agent = Agent::start(&agent_config, options()).await.unwrap();
    assert!(agent.wait_subscribed(Duration::from_secs(20)).await);

    let birth = r#"{"online":{"model":"kettle","firmware":"0.1.0","boot":1,"slots":[{"id":"tea","consumable":"tea_bags","unit":"count","capacity":80,"sensor":"level"}]}}"#;
    let status = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
        .args(["-t", "replenish/v1/home/kettle/status", "-m", birth])
        .status()
        .unwrap();
    assert!(status.success());
    tokio::time::timeout(Duration::from_secs(20), agent.handle().settle(1))
        .await
        .expect("the agent got the birth")
        .unwrap();

    let config_topic = "homeassistant/device/home_kettle/config";
    let config: serde_json::Value =
        serde_json::from_str(&first_message(port, config_topic, 10).await.expect("config"))
            .unwrap();
    assert_eq!(config["cmps"]["tea_level"]["unit_of_measurement"], "count");
    // The rig's shop sells nothing: tea is watched, never ordered, so nothing to approve.
    assert!(config["cmps"].get("tea_approve").is_none(), "{config}");
    assert_eq!(config["cmps"]["tea_low"]["p"], "binary_sensor");
    let availability = "replenish/v1/home/agent/availability";
    assert_eq!(
        first_message(port, availability, 10).await.as_deref(),
        Some("online")
    );

    // Mosquitto restarts without persistence: every retained message is gone until the agent
    // reconnects and publishes them again.
    drop(mosquitto);
    let _mosquitto = start_mosquitto(dir.path(), port).unwrap();
    let again = first_message(port, config_topic, 20)
        .await
        .expect("the config was published again after the broker restarted");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&again).unwrap(),
        config
    );
    let state = first_message(port, "replenish/v1/home/agent/ha/kettle/state", 10)
        .await
        .expect("the state was published again");
    assert!(state.contains("\"tea\""), "{state}");

    agent.shutdown().await;
    assert_eq!(
        first_message(port, availability, 10).await.as_deref(),
        Some("offline")
    );

    // The integration turned off: the next start removes what the last one announced, so
    // Home Assistant keeps no stale appliance.
    agent_config.home_assistant.discovery = false;
    let agent = Agent::start(&agent_config, options()).await.unwrap();
    let mut withdrawn = false;
    for _ in 0..20 {
        if first_message(port, config_topic, 1).await.is_none() {
            withdrawn = true;
            break;
        }
    }
    assert!(withdrawn, "the retained discovery config was removed");
    agent.shutdown().await;
}
