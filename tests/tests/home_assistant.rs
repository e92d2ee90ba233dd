//! A real Home Assistant (2025.4 from PyPI, on Python 3.13) against a simulated household: its
//! MQTT integration, added through its own config flow, connects to the agent's embedded
//! broker; the household's appliances appear as devices with their entities and the sentences
//! of the page as attributes; the entities follow the household's changes; the approve button
//! approves the waiting order and the mode select changes the rules; a removed appliance's
//! entities disappear.
//!
//! Needs `tests/home_assistant/.venv` (`.ci/run` makes it from `requirements.txt`); skips,
//! saying so, without it, except in CI (`CI=true`), where that is a failure.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::time::Duration;

use replenish_agent::clock::HOUR_MS;
use replenish_agent::engine::household::Mode;
use replenish_agent::engine::order::OrderState;
use replenish_sim::world::{World, WorldConfig, free_port};
use replenish_tests::home_assistant::{HomeAssistant, home_assistant_missing};
use replenish_tests::peer_ready;
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(60);

fn entity_id(state: &Value) -> &str {
    state["entity_id"].as_str().unwrap_or_default()
}

/// Available: its appliance and the agent are online and a state arrived.
fn available(state: &Value) -> bool {
    !matches!(
        state["state"].as_str(),
        Some("unavailable" | "unknown") | None
    )
}

fn friendly_name(state: &Value) -> &str {
    state["attributes"]["friendly_name"]
        .as_str()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_assistant_shows_the_household_follows_it_and_acts_on_it() {
    if !peer_ready(home_assistant_missing()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut config = WorldConfig::new(dir.path().join("agent"), 7);
    config.approval = Mode::Approve;
    let mut world = World::start(config).await.unwrap();
    let handle = world.handle().unwrap();
    // Live until the agent asks for an approval.
    let order = replenish_tests::until_proposed(&mut world).await.unwrap();

    let ha_dir = dir.path().join("ha");
    std::fs::create_dir_all(&ha_dir).unwrap();
    let ha = HomeAssistant::start(
        &ha_dir,
        free_port().unwrap(),
        world.broker_port(),
        world.broker_login(),
    )
    .await
    .unwrap();

    // Entities appear, named as the household names things, with the page's sentences.
    let level = ha
        .wait_for("the coffee beans level sensor", LIMIT, |s| {
            entity_id(s).starts_with("sensor.")
                && friendly_name(s).ends_with("Coffee beans level")
                && available(s)
        })
        .await
        .unwrap();
    assert_eq!(
        friendly_name(&level),
        "Coffee maker Coffee beans level",
        "{level}"
    );
    let days = ha
        .wait_for("the coffee beans days-to-empty sensor", LIMIT, |s| {
            friendly_name(s).ends_with("Coffee beans days to empty") && available(s)
        })
        .await
        .unwrap();
    // What Home Assistant shows for the household, in the test's output.
    for state in ha.states().await.unwrap() {
        let name = friendly_name(&state);
        if name.starts_with("Coffee maker ") || name.starts_with("Fridge ") {
            let attributes = &state["attributes"];
            eprintln!(
                "HA {} = {} {} {}",
                name,
                state["state"].as_str().unwrap_or_default(),
                attributes["unit_of_measurement"]
                    .as_str()
                    .unwrap_or_default(),
                attributes["summary"].as_str().unwrap_or_default()
            );
        }
    }
    let summary = days["attributes"]["summary"].as_str().unwrap_or_default();
    assert!(summary.starts_with("Coffee beans: "), "{days}");
    let agent_level = |device: &'static str, slot: &'static str| {
        let handle = handle.clone();
        async move {
            handle
                .read(move |engine, _| {
                    engine
                        .slots()
                        .find(|s| s.device.as_str() == device && s.spec.id.as_str() == slot)
                        .and_then(|s| s.level)
                })
                .await
                .unwrap()
        }
    };
    let shown = |state: &Value| state["state"].as_str().and_then(|v| v.parse::<f64>().ok());
    let before = agent_level("coffee-maker", "beans").await.unwrap();
    assert!(
        shown(&level).is_some_and(|v| (v - before).abs() < 0.06),
        "{level} against {before}"
    );

    // The household uses coffee: the level follows, without waiting for a refresh.
    let now = world.clock_now();
    world.run_until(now + 8 * HOUR_MS, |_| {}).await.unwrap();
    let after = agent_level("coffee-maker", "beans").await.unwrap();
    assert!(
        (after - before).abs() > 0.1,
        "coffee was used: {before} → {after}"
    );
    let id = entity_id(&level).to_string();
    ha.wait_for("the new level", Duration::from_secs(20), |s| {
        entity_id(s) == id && shown(s).is_some_and(|v| (v - after).abs() < 0.06)
    })
    .await
    .unwrap();

    // The approve button of the waiting order's slot approves it.
    let label =
        replenish_agent::engine::words::name_from_id(order.first_line().consumable.as_str());
    let button = ha
        .wait_for("the approve button", LIMIT, |s| {
            entity_id(s).starts_with("button.")
                && friendly_name(s).ends_with(&format!("Approve {} order", label.to_lowercase()))
                && s["attributes"]["pending_order"].is_string()
        })
        .await
        .unwrap();
    let pending = button["attributes"]["pending_order"]
        .as_str()
        .unwrap_or_default();
    assert!(pending.starts_with("Order "), "{button}");
    ha.post(
        "/api/services/button/press",
        json!({ "entity_id": entity_id(&button) }),
    )
    .await
    .unwrap();
    let id = order.id.clone();
    let mut decided = None;
    for _ in 0..100 {
        let id = id.clone();
        let now = handle
            .read(move |engine, _| engine.order(&id).cloned())
            .await
            .unwrap()
            .unwrap();
        if now.state != OrderState::Proposed {
            decided = Some(now);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let decided = decided.expect("the button approved the order");
    assert_eq!(decided.decided_by.as_deref(), Some("home-assistant"));

    // The mode select sets the consumable's mode.
    let select = ha
        .wait_for("the coffee beans mode select", LIMIT, |s| {
            entity_id(s).starts_with("select.")
                && friendly_name(s).ends_with("Coffee beans mode")
                && available(s)
        })
        .await
        .unwrap();
    ha.post(
        "/api/services/select/select_option",
        json!({ "entity_id": entity_id(&select), "option": "off" }),
    )
    .await
    .unwrap();
    let mut mode = Mode::Approve;
    for _ in 0..100 {
        mode = handle
            .read(|engine, _| engine.household().rules.mode_of("coffee_beans"))
            .await
            .unwrap();
        if mode == Mode::Off {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(mode, Mode::Off, "the select set the mode");
    let id = entity_id(&select).to_string();
    ha.wait_for("the select showing off", Duration::from_secs(20), |s| {
        entity_id(s) == id && s["state"] == "off"
    })
    .await
    .unwrap();

    // An appliance removed on the page: its entities leave Home Assistant.
    let removed = reqwest::Client::new()
        .delete(format!(
            "{}/api/v1/devices/coffee-maker",
            world.agent_url().unwrap()
        ))
        .bearer_auth(world.owner_token())
        .send()
        .await
        .unwrap();
    assert!(removed.status().is_success(), "{}", removed.status());
    ha.wait_gone("the coffee maker's entities", LIMIT, |s| {
        friendly_name(s).starts_with("Coffee maker ")
    })
    .await
    .unwrap();
    // The fridge stays.
    assert!(
        ha.states()
            .await
            .unwrap()
            .iter()
            .any(|s| friendly_name(s).starts_with("Fridge ")),
        "the other appliance is still there"
    );
    world.shutdown().await;
}
