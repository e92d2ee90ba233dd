//! Ingest against a real Mosquitto: a burst through a slow engine loses nothing and never
//! stalls; every kind of report survives a crash right after its acknowledgement; an oversize
//! payload is refused by name and leaves other traffic alone.
//!
//! Skips (saying so) when Mosquitto is not installed, except in CI (`CI=true`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)] // tests: a panic is the failure report

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use replenish_agent::clock::ManualClock;
use replenish_agent::config::AgentConfig;
use replenish_agent::engine::Pairing;
use replenish_agent::store::{Hooked, SledStore, Store};
use replenish_agent::{Agent, AgentOptions};
use replenish_commerce::Catalog;
use replenish_commerce::MemoryShop;
use replenish_protocol::{Encoding, ReportBody};
use replenish_sim::load::{self, FleetPlan, LoadProgress, LoadTarget};
use replenish_sim::mosquitto;
use replenish_sim::world::DEFAULT_START;
use replenish_tests::mosquitto_or_skip;

fn agent_config(dir: &Path, port: u16) -> AgentConfig {
    let mut config = AgentConfig::default();
    config.household.pairing = Pairing::Open;
    config.mqtt.embedded = false;
    config.mqtt.url = format!("mqtt://127.0.0.1:{port}");
    config.http.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.storage.path = dir.join("agent");
    config.storage.cache_mb = 8;
    config.home_assistant.discovery = false;
    config.notifications.mqtt = false;
    config.ingest.stall_secs = 5;
    config
}

fn options(clock: &Arc<ManualClock>, store: Option<Arc<dyn Store>>) -> AgentOptions {
    AgentOptions {
        clock: clock.clone(),
        store,
        commerce: Some(Arc::new(MemoryShop::new(Catalog::default()))),
        tick_every: None,
        broker: None,
    }
}

/// Mosquitto (the recommended settings) and an agent's configuration for it, in a directory of
/// their own; `None` (the test is skipped) without Mosquitto.
fn setup() -> Option<(tempfile::TempDir, mosquitto::Mosquitto, AgentConfig)> {
    let dir = tempfile::tempdir().unwrap();
    let broker = mosquitto_or_skip(dir.path(), mosquitto::RECOMMENDED, &[])?;
    let config = agent_config(dir.path(), broker.port());
    Some((dir, broker, config))
}

/// The agent started on `config` (with `store`, or sled) and subscribed.
async fn subscribed(
    config: &AgentConfig,
    clock: &Arc<ManualClock>,
    store: Option<Arc<dyn Store>>,
) -> Agent {
    let agent = Agent::start(config, options(clock, store)).await.unwrap();
    assert!(agent.wait_subscribed(Duration::from_secs(10)).await);
    agent
}

async fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn total_uses(agent: &Agent) -> u64 {
    load::stored_uses(agent).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_through_a_slow_engine_loses_nothing_and_never_stalls() {
    let Some((_dir, broker, config)) = setup() else {
        return;
    };
    // Every flush and journal sync made slow: an engine that falls behind the burst.
    let store = Hooked::new(
        SledStore::open(&config.storage.path, 8 << 20).unwrap(),
        |_| {
            std::thread::sleep(Duration::from_millis(15));
            Ok(())
        },
    );
    let clock = ManualClock::new(DEFAULT_START);
    let agent = subscribed(&config, &clock, Some(Arc::new(store))).await;
    let health = agent.ingest();

    // 200 devices flush their offline buffers at once: out of order, some twice, rebooting.
    let plan = FleetPlan {
        household: config.household.id.clone(),
        devices: 200,
        per_connection: 25,
        reports_per_device: 100,
        reboot_every: 40,
        reorder_block: 16,
        duplicate_share: 0.05,
        encoding: Encoding::Binary,
        ts: DEFAULT_START,
        seed: 7,
        ..FleetPlan::default()
    };
    let target = LoadTarget {
        host: "127.0.0.1".into(),
        port: broker.port(),
        rate: None,
        client_prefix: "burst".into(),
        login: None,
    };
    let outcome = load::run(&plan, &target, Arc::new(LoadProgress::default()), false)
        .await
        .unwrap();
    let published = outcome.totals.published();
    assert_eq!(outcome.acked, published, "the broker took every message");

    let mut stalled = false;
    wait_until(
        "every message acknowledged",
        Duration::from_secs(120),
        || {
            stalled |= health.stalled.load(Ordering::SeqCst);
            health.acked.load(Ordering::SeqCst) >= published
        },
    )
    .await;
    assert!(!stalled, "the ingest never stalled");
    assert_eq!(health.pending(), 0);
    assert_eq!(
        total_uses(&agent).await,
        outcome.totals.uses,
        "every use counted exactly once"
    );
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_killed_mid_burst_counts_every_use_exactly_once_after_restart() {
    let Some((_dir, broker, config)) = setup() else {
        return;
    };
    let clock = ManualClock::new(DEFAULT_START);
    let agent = subscribed(&config, &clock, None).await;
    let health = agent.ingest();
    let plan = FleetPlan {
        household: config.household.id.clone(),
        devices: 100,
        per_connection: 25,
        reports_per_device: 150,
        reboot_every: 60,
        reorder_block: 8,
        duplicate_share: 0.02,
        encoding: Encoding::Binary,
        ts: DEFAULT_START,
        seed: 9,
        ..FleetPlan::default()
    };
    let target = LoadTarget {
        host: "127.0.0.1".into(),
        port: broker.port(),
        rate: Some(5000.0),
        client_prefix: "killed".into(),
        login: None,
    };
    let publisher = {
        let plan = plan.clone();
        tokio::spawn(async move {
            load::run(&plan, &target, Arc::new(LoadProgress::default()), false).await
        })
    };
    // Dies mid-stream, with no chance to flush or acknowledge what it holds.
    wait_until("part of the burst stored", Duration::from_secs(60), || {
        health.acked.load(Ordering::SeqCst) > 3000
    })
    .await;
    agent.crash().await;
    let outcome = publisher.await.unwrap().unwrap();
    assert!(
        outcome.totals.published() > 3000 * 2,
        "the burst went on while the agent was down"
    );
    // Restarted on the same storage and session: the broker redelivers what was not
    // acknowledged, and de-dup drops what was stored before the kill.
    let agent = Agent::start(&config, options(&clock, None)).await.unwrap();
    let start = Instant::now();
    loop {
        let uses = total_uses(&agent).await;
        if uses >= outcome.totals.uses && agent.ingest().pending() == 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "only {uses} of {} uses counted",
            outcome.totals.uses
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Settled, without waiting on the wall clock: a message published now reaches the agent
    // after every redelivery the broker sent it (one connection, in order), so once it is
    // acknowledged nothing more can be counted. It repeats a report already stored: the
    // de-dup drops it and it is acknowledged all the same.
    let restarted = agent.ingest();
    let acked = restarted.acked.load(Ordering::SeqCst);
    let (messages, _) = plan.messages(0, 1).unwrap();
    let mut sender = rumqttc_client::Device::connect(broker.port()).await;
    rumqttc_client::publish(&mut sender, &messages[1].topic, &messages[1].payload, false).await;
    wait_until(
        "the repeated report acknowledged",
        Duration::from_secs(30),
        || restarted.acked.load(Ordering::SeqCst) > acked,
    )
    .await;
    assert_eq!(total_uses(&agent).await, outcome.totals.uses);
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_report_survives_a_crash_after_its_ack() {
    use replenish_protocol::{Channel, DeviceId, HouseholdId, Id, Report, codec, topic};
    use rumqttc_client::{Device, publish};

    let Some((_dir, broker, config)) = setup() else {
        return;
    };
    let clock = ManualClock::new(DEFAULT_START);
    let household = HouseholdId::new(&config.household.id).unwrap();
    let device = DeviceId::new(&load::device_id(0)).unwrap();
    let report_topic = topic::build(&config.mqtt.prefix, &household, &device, Channel::Report);

    // The device's birth: the first message of the load plan.
    let plan = FleetPlan {
        household: config.household.id.clone(),
        devices: 1,
        reports_per_device: 0,
        encoding: Encoding::Json,
        ..FleetPlan::default()
    };
    let (messages, _) = plan.messages(0, 1).unwrap();
    let mut sender = Device::connect(broker.port()).await;
    publish(&mut sender, &messages[0].topic, &messages[0].payload, true).await;

    let slot = |s: &str| Id::new(s).unwrap();
    let kinds: Vec<(&str, ReportBody)> = vec![
        (
            "usage before any level",
            ReportBody::Usage {
                slot: slot("brews"),
                amount: 1.0,
                uses: 1,
            },
        ),
        (
            "level",
            ReportBody::Level {
                slot: slot("beans"),
                remaining: 400.0,
            },
        ),
        (
            "refill",
            ReportBody::Refill {
                slot: slot("beans"),
                before: 400.0,
                after: 900.0,
            },
        ),
        (
            "fault",
            ReportBody::Fault {
                slot: None,
                code: replenish_protocol::FaultCode::Other,
                detail: "test".try_into().unwrap(),
            },
        ),
    ];
    for (seq, (kind, body)) in kinds.into_iter().enumerate() {
        let agent = subscribed(&config, &clock, None).await;
        let health = agent.ingest();
        // The retained birth comes with every subscription: let its ack pass first, or it
        // would be taken for the report's.
        wait_until("the retained birth", Duration::from_secs(20), || {
            health.received.load(Ordering::SeqCst) >= 1 && health.pending() == 0
        })
        .await;
        let report = Report {
            boot: 1,
            seq: seq as u32 + 1,
            ts: DEFAULT_START,
            body,
        };
        let payload = codec::encode(&report, Encoding::Json).unwrap();
        let acked_before = health.acked.load(Ordering::SeqCst);
        publish(&mut sender, &report_topic, &payload, false).await;
        wait_until(kind, Duration::from_secs(20), || {
            health.acked.load(Ordering::SeqCst) > acked_before
        })
        .await;
        // Dies at once after the ack: nothing flushed on the way down.
        agent.crash().await;

        let agent = Agent::start(&config, options(&clock, None)).await.unwrap();
        let state = agent
            .handle()
            .read(|engine, _| {
                let brews = engine.slot("load-00000/brews").map(|s| s.uses);
                let beans = engine.slot("load-00000/beans").cloned();
                let device = engine.devices().next().cloned();
                (brews, beans, device)
            })
            .await
            .unwrap();
        let (brews, beans, device) = state;
        let device = device.expect("the device survives");
        assert_eq!(brews, Some(1), "after {kind}: the use is kept");
        let beans = beans.unwrap();
        match kind {
            "level" => assert_eq!(beans.level, Some(400.0)),
            "refill" | "fault" => {
                assert_eq!(beans.level, Some(900.0), "after {kind}");
                assert!(beans.last_refill_at.is_some());
            }
            _ => assert_eq!(beans.level, None),
        }
        // The report is remembered: sent again, it is a duplicate.
        assert_eq!(
            device.dedup.check(1, seq as u32 + 1),
            replenish_agent::engine::dedup::Unseen::Duplicate,
            "after {kind}"
        );
        agent.shutdown().await;
    }
    drop(sender);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_payload_is_refused_by_name_and_other_traffic_flows() {
    use rumqttc_client::{Device, publish};

    let Some((_dir, broker, config)) = setup() else {
        return;
    };
    let clock = ManualClock::new(DEFAULT_START);
    let agent = subscribed(&config, &clock, None).await;
    let health = agent.ingest();
    let plan = FleetPlan {
        household: config.household.id.clone(),
        devices: 1,
        reports_per_device: 3,
        encoding: Encoding::Json,
        ..FleetPlan::default()
    };
    let (messages, totals) = plan.messages(0, 1).unwrap();
    let mut sender = Device::connect(broker.port()).await;
    publish(&mut sender, &messages[0].topic, &messages[0].payload, true).await;
    // 5 KB on the device's report topic: under the broker's limit, over the protocol's.
    publish(&mut sender, &messages[1].topic, &vec![b' '; 5000], false).await;
    for m in &messages[1..] {
        publish(&mut sender, &m.topic, &m.payload, false).await;
    }
    let expected = totals.published() + 1;
    wait_until("everything settled", Duration::from_secs(20), || {
        health.acked.load(Ordering::SeqCst) >= expected
    })
    .await;
    assert_eq!(total_uses(&agent).await, totals.uses);
    let metrics = replenish_agent::telemetry::prometheus().render();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("replenish_telemetry_refused_total{reason=\"oversized\"}")),
        "{metrics}"
    );
    agent.shutdown().await;
}

/// A minimal MQTT device for these tests: publishes with QoS 1 and waits for the PUBACK.
mod rumqttc_client {
    use std::time::Duration;

    use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};

    pub struct Device {
        client: AsyncClient,
        eventloop: EventLoop,
    }

    impl Device {
        pub async fn connect(port: u16) -> Device {
            let mut options = MqttOptions::new("test-device", "127.0.0.1", port);
            options.set_max_packet_size(64 * 1024, 64 * 1024);
            let (client, eventloop) = AsyncClient::new(options, 16);
            Device { client, eventloop }
        }
    }

    pub async fn publish(device: &mut Device, topic: &str, payload: &[u8], retain: bool) {
        device
            .client
            .publish(topic, QoS::AtLeastOnce, retain, payload.to_vec())
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Event::Incoming(Packet::PubAck(_)) = device.eventloop.poll().await.unwrap() {
                    return;
                }
            }
        })
        .await
        .expect("PUBACK");
    }
}
