//! Loopback tests of notifications and Home Assistant: a real agent with its embedded broker,
//! an in-memory shop and a manual clock; a device, Home Assistant and a webhook receiver played
//! by MQTT clients and a local HTTP server.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use replenish_agent::broker::EmbeddedBroker;
use replenish_agent::clock::{DAY_MS, HOUR_MS, ManualClock, UnixMs};
use replenish_agent::config::AgentConfig;
use replenish_agent::engine::household::{Actor, Mode};
use replenish_agent::engine::order::OrderState;
use replenish_agent::engine::{Event, NoticeKind, Pairing};
use replenish_agent::store::MemoryStore;
use replenish_agent::{Agent, AgentOptions};
use replenish_commerce::MemoryShop;
use replenish_commerce::{Catalog, Offer};
use replenish_protocol::{DeviceId, Unit};
use rumqttc::{AsyncClient, Event as MqttEvent, MqttOptions, Packet, QoS};
use serde_json::Value;
use tokio::sync::{broadcast, mpsc};

const T0: UnixMs = 20_458 * DAY_MS;
const WAIT: Duration = Duration::from_secs(10);

fn catalog() -> Catalog {
    let item = |sku: &str, consumable: &str, unit, pack_size, price_cents| Offer {
        sku: sku.into(),
        name: sku.into(),
        consumable: consumable.into(),
        pack_size,
        unit,
        price: replenish_commerce::Money::new(price_cents, replenish_commerce::Currency::EUR),
        stock: 100,
    };
    Catalog {
        fulfilment: Vec::new(),
        offers: vec![
            item("BEANS-1KG", "coffee_beans", Unit::G, 1000.0, 1299),
            item("MILK-1L", "milk", Unit::Ml, 1000.0, 119),
        ],
    }
}

/// A message seen by a test client.
#[derive(Debug, Clone)]
struct Seen {
    topic: String,
    payload: Vec<u8>,
}

impl Seen {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.payload).unwrap_or(Value::Null)
    }
}

/// The agent's login to its embedded broker, which these tests' clients use too.
const TOOLS_LOGIN: (&str, &str) = ("replenish-agent", "a-password-only-these-tests-know");

/// An MQTT client that records what arrives on its filters (like Home Assistant would).
struct Client {
    client: AsyncClient,
    rx: mpsc::UnboundedReceiver<Seen>,
    log: Vec<Seen>,
}

impl Client {
    async fn connect(id: &str, port: u16, filters: &[&str]) -> Client {
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        // The agent's account (the embedded broker's gate lets only logins in).
        options.set_credentials(TOOLS_LOGIN.0, TOOLS_LOGIN.1);
        options.set_max_packet_size(256 * 1024, 256 * 1024);
        let (client, mut eventloop) = AsyncClient::new(options, 64);
        for filter in filters {
            client.subscribe(*filter, QoS::AtLeastOnce).await.unwrap();
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let (subscribed_tx, mut subscribed) = mpsc::unbounded_channel();
        let wanted = filters.len();
        tokio::spawn(async move {
            let mut subacks = 0;
            loop {
                match eventloop.poll().await {
                    Ok(MqttEvent::Incoming(Packet::SubAck(_))) => {
                        subacks += 1;
                        if subacks == wanted {
                            let _ = subscribed_tx.send(());
                        }
                    }
                    Ok(MqttEvent::Incoming(Packet::Publish(p))) => {
                        let seen = Seen {
                            topic: p.topic.clone(),
                            payload: p.payload.to_vec(),
                        };
                        if tx.send(seen).is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        if wanted > 0 {
            tokio::time::timeout(WAIT, subscribed.recv())
                .await
                .expect("subscribed");
        }
        Client {
            client,
            rx,
            log: Vec::new(),
        }
    }

    async fn publish(&self, topic: &str, payload: &str, retain: bool) {
        self.client
            .publish(topic, QoS::AtLeastOnce, retain, payload.as_bytes().to_vec())
            .await
            .unwrap();
    }

    /// Waits for the next message matching `want` (earlier ones stay in the log).
    async fn wait_for(&mut self, what: &str, want: impl Fn(&Seen) -> bool) -> Seen {
        let found = tokio::time::timeout(WAIT, async {
            loop {
                let seen = self.rx.recv().await.expect("client running");
                self.log.push(seen.clone());
                if want(&seen) {
                    return seen;
                }
            }
        })
        .await;
        match found {
            Ok(seen) => seen,
            Err(_) => panic!(
                "timed out waiting for {what}; seen: {:?}",
                self.log.iter().map(|s| &s.topic).collect::<Vec<_>>()
            ),
        }
    }
}

struct Rig {
    agent: Agent,
    /// Held here so that the broker outlives the agent: clients see what it says on shutdown.
    _broker: Arc<EmbeddedBroker>,
    clock: Arc<ManualClock>,
    shop: Arc<MemoryShop>,
    port: u16,
    device: Client,
    handled: u64,
    seq: u32,
}

impl Rig {
    async fn start(edit: impl FnOnce(&mut AgentConfig)) -> Rig {
        Self::selling(catalog(), edit).await
    }

    async fn selling(catalog: Catalog, edit: impl FnOnce(&mut AgentConfig)) -> Rig {
        let mut config = AgentConfig::default();
        // Any free port: the broker says which it got.
        config.mqtt.embedded_listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.mqtt.embedded_v5 = false;
        config.http.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.http.public_url = Some("https://home.example/".into());
        config.rules.default_mode = Mode::Approve.into();
        config.household.pairing = Pairing::Open;
        config.mqtt.username = Some(TOOLS_LOGIN.0.into());
        config.mqtt.password = Some(TOOLS_LOGIN.1.into());
        edit(&mut config);
        let clock = ManualClock::new(T0);
        let shop = Arc::new(MemoryShop::new(catalog));
        let broker = Arc::new(EmbeddedBroker::start(&config).await.unwrap());
        let port = broker.listening().v4.port();
        let options = AgentOptions {
            clock: clock.clone(),
            store: Some(Arc::new(MemoryStore::default())),
            commerce: Some(shop.clone()),
            tick_every: None,
            broker: Some(broker.clone()),
        };
        let agent = Agent::start(&config, options).await.unwrap();
        assert!(agent.wait_subscribed(WAIT).await);
        let device = Client::connect("device", port, &[]).await;
        Rig {
            agent,
            _broker: broker,
            clock,
            shop,
            port,
            device,
            handled: 0,
            seq: 0,
        }
    }

    async fn settle(&mut self) {
        tokio::time::timeout(WAIT, self.agent.handle().settle(self.handled))
            .await
            .expect("the agent settles")
            .unwrap();
    }

    async fn birth(&mut self, device: &str, slot: &str, consumable: &str, unit: &str) {
        let birth = format!(
            r#"{{"online":{{"model":"{device}-model","firmware":"1.2.3","boot":1,"slots":[{{"id":"{slot}","consumable":"{consumable}","unit":"{unit}","capacity":1000,"sensor":"level"}}]}}}}"#
        );
        self.device
            .publish(&format!("replenish/v1/home/{device}/status"), &birth, true)
            .await;
        self.handled += 1;
        self.settle().await;
    }

    async fn level(&mut self, device: &str, slot: &str, remaining: f64) {
        self.seq += 1;
        let report = format!(
            r#"{{"boot":1,"seq":{},"ts":{},"body":{{"level":{{"slot":"{slot}","remaining":{remaining}}}}}}}"#,
            self.seq,
            self.clock.now_ms_value()
        );
        self.device
            .publish(
                &format!("replenish/v1/home/{device}/report"),
                &report,
                false,
            )
            .await;
        self.handled += 1;
        self.settle().await;
    }

    /// 50 g a day from 600 g, one report each morning, until `done` says stop.
    async fn use_coffee_until(
        &mut self,
        client: &mut Client,
        what: &str,
        done: impl Fn(&Seen) -> bool,
    ) -> Seen {
        let mut remaining = 600.0;
        // The engine's own notices say on which day an order is proposed (or none can be):
        // only then is a message due, and it is awaited without a guess at how long
        // publishing takes.
        let mut notices = self.agent.handle().notices();
        for day in 0..14 {
            self.clock.set(T0 + day * DAY_MS + 8 * HOUR_MS);
            self.level("coffee", "beans", remaining).await;
            // The daemon's tick, once the slot has had no report for the settling time.
            self.clock.set(
                T0 + day * DAY_MS + 8 * HOUR_MS + AgentConfig::default().policy.settle_secs * 1000,
            );
            self.agent.handle().ask(Event::Tick).await.unwrap();
            remaining -= 50.0;
            let mut due = false;
            loop {
                match notices.try_recv() {
                    Ok(notice) => {
                        due |= matches!(
                            notice.kind,
                            NoticeKind::OrderProposed | NoticeKind::NothingInStock
                        )
                    }
                    Err(broadcast::error::TryRecvError::Lagged(_)) => {}
                    Err(_) => break,
                }
            }
            if !due {
                continue;
            }
            return tokio::time::timeout(WAIT, async {
                loop {
                    let seen = client.rx.recv().await.expect("client running");
                    client.log.push(seen.clone());
                    if done(&seen) {
                        return seen;
                    }
                }
            })
            .await
            .unwrap_or_else(|_| panic!("no {what} within {WAIT:?} of day {day}'s notice"));
        }
        panic!("no {what} within 14 days");
    }
}

trait ClockExt {
    fn now_ms_value(&self) -> UnixMs;
}

impl ClockExt for ManualClock {
    fn now_ms_value(&self) -> UnixMs {
        replenish_agent::clock::Clock::now_ms(self)
    }
}

/// Runs `test` on a runtime whose every thread records metrics into the test's own recorder
/// (handed to it), not the process's: tests running side by side cannot see each other's.
fn with_own_metrics<F, Fut>(test: F)
where
    F: FnOnce(PrometheusHandle) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    // Leaked: the runtime's threads hold it until they end, and a test process is short.
    let recorder: &'static PrometheusRecorder =
        Box::leak(Box::new(PrometheusBuilder::new().build_recorder()));
    let handle = recorder.handle();
    let _this_thread = metrics::set_default_local_recorder(recorder);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(move || std::mem::forget(metrics::set_default_local_recorder(recorder)))
        .build()
        .unwrap();
    runtime.block_on(test(handle));
}

/// Waits until this test's Prometheus output contains `series`.
async fn wait_for_metric(handle: &PrometheusHandle, series: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let metrics = handle.render();
        if metrics.contains(series) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {series} in\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

type Recorded = Arc<Mutex<Vec<(axum::http::HeaderMap, String)>>>;

async fn webhook_server() -> (String, Recorded) {
    webhook_server_answering_after(Duration::ZERO).await
}

/// A webhook receiver on loopback that answers `delay` after each request, and records it
/// once answered; its URL and the record.
async fn webhook_server_answering_after(delay: Duration) -> (String, Recorded) {
    let seen: Recorded = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let app = axum::Router::new().route(
        "/ntfy/replenish",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let record = record.clone();
            async move {
                tokio::time::sleep(delay).await;
                record.lock().unwrap().push((headers, body));
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/ntfy/replenish"), seen)
}

#[test]
fn a_pending_approval_is_published_on_mqtt_and_posted_to_the_webhook() {
    with_own_metrics(a_pending_approval_is_published_on_mqtt_and_posted_to_the_webhook_body);
}

async fn a_pending_approval_is_published_on_mqtt_and_posted_to_the_webhook_body(
    metrics: PrometheusHandle,
) {
    let (url, requests) = webhook_server().await;
    let mut rig = Rig::start(|c| {
        c.notifications.webhooks = vec![url];
        c.home_assistant.discovery = false;
        c.names.insert("coffee_beans".into(), "Röstkaffee".into());
    })
    .await;
    let mut listener =
        Client::connect("listener", rig.port, &["replenish/v1/home/agent/approvals"]).await;
    rig.birth("coffee", "beans", "coffee_beans", "g").await;
    let seen = rig
        .use_coffee_until(&mut listener, "approval message", |s| {
            s.topic == "replenish/v1/home/agent/approvals"
        })
        .await;
    let message = seen.json();
    let order_id = message["order_id"].as_str().unwrap().to_string();
    assert_eq!(message["kind"], "approval_requested");
    assert_eq!(message["consumable"], "coffee_beans");
    assert_eq!(message["title"], "Approve a reorder of Röstkaffee?");
    assert_eq!(
        message["url"],
        format!("https://home.example/orders/{order_id}")
    );
    assert!(
        message["text"]
            .as_str()
            .unwrap()
            .starts_with("Approve? Order "),
        "{message}"
    );
    let order = rig.agent.handle().order(&order_id).await.unwrap().unwrap();
    assert_eq!(order.state, OrderState::Proposed);
    let expires = order.pending.as_ref().and_then(|p| p.expires_at).unwrap();
    assert_eq!(message["expires_at_ms"], expires);

    // The webhook got the ntfy request (delivery is asynchronous: wait for it).
    let deadline = tokio::time::Instant::now() + WAIT;
    while requests.lock().unwrap().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no webhook request");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (headers, body) = requests.lock().unwrap()[0].clone();
    assert_eq!(body, message["text"].as_str().unwrap());
    assert_eq!(
        headers["click"],
        format!("https://home.example/orders/{order_id}").as_str()
    );
    // The household's name, in an encoded word (ntfy decodes it; HTTP headers are ASCII).
    assert_eq!(
        headers["title"],
        replenish_agent::notify::header_text("Approve a reorder of Röstkaffee?").as_str()
    );
    assert!(headers["title"].to_str().unwrap().starts_with("=?UTF-8?B?"));
    assert!(
        headers["actions"]
            .to_str()
            .unwrap()
            .starts_with("view, Approve, https://")
    );
    // Counted once the answer is read, just after the server recorded the request.
    wait_for_metric(
        &metrics,
        r#"replenish_notifications_total{channel="webhook",outcome="delivered"}"#,
    )
    .await;
    rig.agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_in_stock_anywhere_is_told_on_mqtt_and_to_the_webhook() {
    let (url, requests) = webhook_server().await;
    let mut sold_out = catalog();
    for offer in &mut sold_out.offers {
        offer.stock = 0;
    }
    let mut rig = Rig::selling(sold_out, |c| {
        c.notifications.webhooks = vec![url];
        c.home_assistant.discovery = false;
    })
    .await;
    let mut listener = Client::connect("listener", rig.port, &["replenish/v1/home/agent/#"]).await;
    rig.birth("coffee", "beans", "coffee_beans", "g").await;
    let seen = rig
        .use_coffee_until(&mut listener, "nothing-in-stock message", |s| {
            s.topic == "replenish/v1/home/agent/notices"
        })
        .await;
    let message = seen.json();
    assert_eq!(message["kind"], "nothing_in_stock", "{message}");
    assert_eq!(message["url"], "https://home.example/");
    assert!(message.get("order_id").is_none(), "{message}");
    assert!(
        listener
            .log
            .iter()
            .all(|s| s.topic != "replenish/v1/home/agent/approvals"),
        "nothing to approve: nothing is in stock"
    );
    let deadline = tokio::time::Instant::now() + WAIT;
    while requests.lock().unwrap().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no webhook request");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (headers, body) = requests.lock().unwrap()[0].clone();
    assert_eq!(body, message["text"].as_str().unwrap());
    assert_eq!(headers["title"], "Out of stock at every shop");
    rig.agent.shutdown().await;
}

/// An owner accepts `device`; its discovery document as Home Assistant receives it.
async fn accepted_config(
    handle: &replenish_agent::runtime::AgentHandle,
    ha: &mut Client,
    device: &str,
) -> Value {
    handle
        .ask(Event::AcceptDevice {
            device: DeviceId::new(device).unwrap(),
            by: Actor::Console,
        })
        .await
        .unwrap();
    ha.wait_for(&format!("{device} config"), |s| {
        s.topic == config_topic(device)
    })
    .await
    .json()
}

fn config_topic(device: &str) -> String {
    format!("homeassistant/device/home_{device}/config")
}

fn state_topic(device: &str) -> String {
    format!("replenish/v1/home/agent/ha/{device}/state")
}

#[test]
fn home_assistant_sees_appliances_and_its_button_approves_the_pending_order() {
    with_own_metrics(home_assistant_sees_appliances_and_its_button_approves_the_pending_order_body);
}

async fn home_assistant_sees_appliances_and_its_button_approves_the_pending_order_body(
    metrics: PrometheusHandle,
) {
    let mut rig = Rig::start(|c| {
        c.household.pairing = Pairing::Owner;
        c.notifications.mqtt = false;
    })
    .await;
    let mut ha = Client::connect(
        "home-assistant",
        rig.port,
        &[
            "homeassistant/device/+/config",
            "replenish/v1/home/agent/ha/+/state",
            "replenish/v1/home/agent/availability",
        ],
    )
    .await;
    let handle = rig.agent.handle().clone();

    // The agent says it is online; a first appliance is announced once an owner accepts it.
    ha.wait_for("availability", |s| {
        s.topic == "replenish/v1/home/agent/availability" && s.payload == b"online"
    })
    .await;
    rig.birth("fridge", "milk", "milk", "ml").await;
    let config = accepted_config(&handle, &mut ha, "fridge").await;
    assert_eq!(config["dev"]["model"], "fridge-model");
    assert_eq!(config["cmps"]["milk_level"]["unit_of_measurement"], "ml");
    assert_eq!(config["cmps"]["milk_mode"]["p"], "select");
    let state = ha
        .wait_for("fridge state", |s| s.topic == state_topic("fridge"))
        .await
        .json();
    assert_eq!(state["online"], true);
    assert_eq!(state["slots"]["milk"]["mode"], "approve");

    // A device waiting to be paired is not announced, not even when Home Assistant restarts
    // and everything is announced again.
    rig.birth("coffee", "beans", "coffee_beans", "g").await;
    ha.publish("homeassistant/status", "online", false).await;
    ha.wait_for("fridge config announced again", |s| {
        s.topic == config_topic("fridge")
    })
    .await;
    assert!(
        !ha.log.iter().any(|s| s.topic == config_topic("coffee")),
        "a device waiting for pairing was announced"
    );
    let config = accepted_config(&handle, &mut ha, "coffee").await;
    let button = config["cmps"]["beans_approve"].clone();
    assert_eq!(button["p"], "button");
    let approve_topic = button["command_topic"].as_str().unwrap().to_string();
    let mode_topic = config["cmps"]["beans_mode"]["command_topic"]
        .as_str()
        .unwrap()
        .to_string();

    // Use coffee until an order waits for approval; its state says so.
    let state = rig
        .use_coffee_until(&mut ha, "pending order in the state", |s| {
            s.topic == state_topic("coffee")
                && !s.json()["slots"]["beans"]["pending_order"].is_null()
        })
        .await
        .json();
    let beans = &state["slots"]["beans"];
    let order_id = beans["pending_order"].as_str().unwrap().to_string();
    assert!(beans["level"].as_f64().unwrap() < 600.0, "{state}");
    assert!(beans["days_to_empty"].as_f64().unwrap() > 0.0, "{state}");
    assert!(
        beans["empty_at"].as_str().unwrap().ends_with('Z'),
        "{state}"
    );
    assert_eq!(beans["mode"], "approve");

    // Pressing the button approves it as Home Assistant, and the shop gets it.
    ha.publish(&approve_topic, "PRESS", false).await;
    ha.wait_for("no pending order any more", |s| {
        s.topic == state_topic("coffee") && s.json()["slots"]["beans"]["pending_order"].is_null()
    })
    .await;
    let order = handle.order(&order_id).await.unwrap().unwrap();
    assert_ne!(order.state, OrderState::Proposed);
    assert_eq!(
        order.decided_by.as_deref(),
        Some("home-assistant"),
        "{order:?}"
    );
    rig.settle().await;
    assert_eq!(rig.shop.orders_by_key().len(), 1, "the shop got the order");

    // The select changes the consumable's mode.
    ha.publish(&mode_topic, "off", false).await;
    ha.wait_for("mode off in the state", |s| {
        s.topic == state_topic("coffee") && s.json()["slots"]["beans"]["mode"] == "off"
    })
    .await;
    let mode = handle
        .read(|engine, _| engine.household().rules.mode_of("coffee_beans"))
        .await
        .unwrap();
    assert_eq!(mode, Mode::Off);

    // Removing the device removes its entities.
    handle
        .ask(Event::RemoveDevice {
            device: DeviceId::new("coffee").unwrap(),
            by: Actor::Console,
        })
        .await
        .unwrap();
    ha.wait_for("empty coffee config", |s| {
        s.topic == config_topic("coffee") && s.payload.is_empty()
    })
    .await;
    // A Home Assistant connecting afresh gets the fridge's retained config, not the coffee's.
    let mut fresh = Client::connect(
        "home-assistant-2",
        rig.port,
        &[
            "homeassistant/device/+/config",
            "replenish/v1/home/agent/ha/+/state",
        ],
    )
    .await;
    fresh
        .wait_for("retained fridge config", |s| {
            s.topic == config_topic("fridge")
        })
        .await;
    fresh
        .wait_for("retained fridge state", |s| {
            s.topic == state_topic("fridge")
        })
        .await;
    assert!(
        !fresh
            .log
            .iter()
            .any(|s| s.topic.contains("coffee") && !s.payload.is_empty()),
        "the removed device's config or state is still retained"
    );

    wait_for_metric(
        &metrics,
        r#"replenish_ha_commands_total{command="approve",outcome="applied"}"#,
    )
    .await;
    rig.agent.shutdown().await;
    ha.wait_for("offline on shutdown", |s| {
        s.topic == "replenish/v1/home/agent/availability" && s.payload == b"offline"
    })
    .await;
}

#[test]
fn without_control_home_assistant_cannot_approve() {
    with_own_metrics(without_control_home_assistant_cannot_approve_body);
}

async fn without_control_home_assistant_cannot_approve_body(metrics: PrometheusHandle) {
    let mut rig = Rig::start(|c| {
        c.home_assistant.control = false;
        c.notifications.mqtt = false;
    })
    .await;
    let mut ha = Client::connect(
        "home-assistant",
        rig.port,
        &["replenish/v1/home/agent/ha/+/state"],
    )
    .await;
    rig.birth("coffee", "beans", "coffee_beans", "g").await;
    let state = rig
        .use_coffee_until(&mut ha, "pending order in the state", |s| {
            !s.json()["slots"]["beans"]["pending_order"].is_null()
        })
        .await
        .json();
    let order_id = state["slots"]["beans"]["pending_order"]
        .as_str()
        .unwrap()
        .to_string();
    ha.publish(
        "replenish/v1/home/agent/ha/coffee/beans/approve",
        "PRESS",
        false,
    )
    .await;
    // The refusal is counted; wait for the counter rather than for time.
    wait_for_metric(
        &metrics,
        r#"replenish_ha_commands_total{command="approve",outcome="disabled"}"#,
    )
    .await;
    let order = rig.agent.handle().order(&order_id).await.unwrap().unwrap();
    assert_eq!(order.state, OrderState::Proposed);
    // This test's own counters: the other tests' approvals (run alongside) are not in them.
    assert!(
        !metrics
            .render()
            .contains(r#"replenish_ha_commands_total{command="approve",outcome="applied"}"#),
        "{}",
        metrics.render()
    );
    rig.agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_a_notification_in_flight() {
    // A slow receiver: the request is recorded only once it has been answered, well inside
    // the 5 s the agent gives notifications at shutdown.
    let (url, answered) = webhook_server_answering_after(Duration::from_secs(2)).await;
    let mut rig = Rig::start(|c| {
        c.notifications.webhooks = vec![url];
        c.home_assistant.discovery = false;
    })
    .await;
    let mut listener =
        Client::connect("listener", rig.port, &["replenish/v1/home/agent/approvals"]).await;
    rig.birth("coffee", "beans", "coffee_beans", "g").await;
    rig.use_coffee_until(&mut listener, "approval message", |s| {
        s.topic == "replenish/v1/home/agent/approvals"
    })
    .await;
    // The webhook request is under way (the MQTT message went out at the same time).
    assert!(answered.lock().unwrap().is_empty());
    rig.agent.shutdown().await;
    assert_eq!(
        answered.lock().unwrap().len(),
        1,
        "shutdown returned before the notification in flight was delivered"
    );
}
