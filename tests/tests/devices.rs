//! `replenish-sim devices` against a real Mosquitto: every message the appliances count as
//! published arrives, each appliance is born first and left `offline` (retained) at the end,
//! and a stop request ends the run.
//!
//! Skips (saying so) when Mosquitto is not installed, except in CI (`CI=true`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::collections::BTreeMap;
use std::time::Duration;

use replenish_protocol::{Status, codec};
use replenish_sim::devices::{self, DeviceLogin, DevicesOptions};
use replenish_sim::world::DEFAULT_START;
use replenish_tests::mosquitto_or_skip;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::watch;

fn options(port: u16, households: usize, days: Option<f64>) -> DevicesOptions {
    DevicesOptions {
        host: "127.0.0.1".into(),
        port,
        login: DeviceLogin::None,
        tls: None,
        prefix: replenish_protocol::DEFAULT_PREFIX.into(),
        scenario: replenish_sim::scenario::Scenario::default_scenario().unwrap(),
        household: Some("sim".into()),
        households: Some(households),
        // A day in well under a second: the test waits for the run, not for the clock.
        speed: 10_000_000.0,
        days,
        seed: 7,
        start: DEFAULT_START,
        view_every: Duration::ZERO,
    }
}

/// Subscribes to every household's topics; messages arrive on the returned channel.
async fn listen(
    port: u16,
) -> (
    AsyncClient,
    tokio::sync::mpsc::UnboundedReceiver<(String, Vec<u8>)>,
) {
    let mut mqtt = MqttOptions::new("devices-test-listener", "127.0.0.1", port);
    mqtt.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(mqtt, 64);
    client
        .subscribe(
            format!("{}/#", replenish_protocol::DEFAULT_PREFIX),
            QoS::AtLeastOnce,
        )
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let (subscribed_tx, mut subscribed) = watch::channel(false);
    tokio::spawn(async move {
        while let Ok(event) = eventloop.poll().await {
            match event {
                Event::Incoming(Packet::SubAck(_)) => {
                    let _ = subscribed_tx.send(true);
                }
                Event::Incoming(Packet::Publish(p)) => {
                    let _ = tx.send((p.topic.clone(), p.payload.to_vec()));
                }
                _ => {}
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(5), subscribed.wait_for(|s| *s))
        .await
        .expect("subscribed within 5 s")
        .unwrap();
    (client, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_published_message_arrives_births_first_offline_last() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mosquitto) = mosquitto_or_skip(dir.path(), "", &[]) else {
        return;
    };
    let port = mosquitto.port();
    let (_listener, mut messages) = listen(port).await;

    let (_stop_tx, stop) = watch::channel(false);
    let last = devices::run(&options(port, 2, Some(2.0)), stop, |_| {})
        .await
        .unwrap();
    assert_eq!(last.devices.len(), 4, "two households of two appliances");
    assert_eq!(last.at, DEFAULT_START + 2 * replenish_agent::clock::DAY_MS);

    // Everything published (plus the `offline` each says at the end) arrives, in order per
    // device: the birth first.
    let expected: u64 = last.devices.iter().map(|d| d.published + 1).sum();
    let mut per_device: BTreeMap<String, Vec<(String, Vec<u8>)>> = BTreeMap::new();
    let mut received = 0u64;
    while received < expected {
        let (topic, payload) = tokio::time::timeout(Duration::from_secs(10), messages.recv())
            .await
            .unwrap_or_else(|_| panic!("{received} of {expected} messages arrived"))
            .unwrap();
        // {prefix}/{household}/{device}/{channel}
        let (device, channel) = topic.rsplit_once('/').unwrap();
        per_device
            .entry(device.to_string())
            .or_default()
            .push((channel.to_string(), payload));
        received += 1;
    }
    assert_eq!(per_device.len(), 4, "{:?}", per_device.keys());
    for d in &last.devices {
        let topic = format!(
            "{}/{}/{}",
            replenish_protocol::DEFAULT_PREFIX,
            d.household,
            d.device
        );
        let got = per_device.get(&topic).map_or(0, Vec::len) as u64;
        // No message lost and none twice (a will published on top of the `offline` said).
        assert_eq!(got, d.published + 1, "{topic}");
    }
    for (device, messages) in &per_device {
        let (first_channel, first) = &messages[0];
        assert_eq!(first_channel, "status", "{device}: the birth comes first");
        assert!(
            matches!(codec::decode::<Status>(first), Ok(Status::Online(_))),
            "{device}: first message is a birth"
        );
        let (last_channel, last) = messages.last().unwrap();
        assert_eq!(last_channel, "status", "{device}");
        assert!(
            matches!(codec::decode::<Status>(last), Ok(Status::Offline)),
            "{device}: says offline last"
        );
        let reports = messages.iter().filter(|(c, _)| c == "report").count();
        // Two days of habits: brews and levels on the coffee maker, milk and eggs on the fridge.
        assert!(reports >= 10, "{device}: {reports} reports in two days");
    }
    // The household used its appliances: brews were counted, milk was drunk.
    let coffee = last
        .devices
        .iter()
        .find(|d| d.household == "sim-1" && d.device == "coffee-maker")
        .unwrap();
    let brews = coffee.slots.iter().find(|s| s.0 == "brews").unwrap().1;
    assert!(brews >= 4.0, "{brews} brews in two days");

    // Retained: a newcomer reads every appliance as offline.
    // Each of the four appliances' status topics holds one retained message: wait for four
    // offline ones (one missing fails after ten seconds), not for a quiet spell.
    let (_late, mut retained) = listen(port).await;
    let mut offline = std::collections::BTreeSet::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some((topic, payload)) = retained.recv().await {
            if topic.ends_with("/status")
                && matches!(codec::decode::<Status>(&payload), Ok(Status::Offline))
            {
                offline.insert(topic);
                if offline.len() == 4 {
                    return;
                }
            }
        }
    })
    .await;
    assert!(read.is_ok(), "retained offline statuses: {offline:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_request_ends_an_endless_run() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mosquitto) = mosquitto_or_skip(dir.path(), "", &[]) else {
        return;
    };
    let port = mosquitto.port();
    let (stop_tx, stop) = watch::channel(false);
    let mut views = 0;
    // No --days: it runs until stopped, here after the tenth view (a step each).
    let last = tokio::time::timeout(
        Duration::from_secs(30),
        devices::run(&options(port, 1, None), stop, |_| {
            views += 1;
            if views == 10 {
                let _ = stop_tx.send(true);
            }
        }),
    )
    .await
    .expect("the run stops when asked")
    .unwrap();
    assert_eq!(views, 11, "ten views, then the last one");
    assert!(last.at > DEFAULT_START);
    assert!(last.at <= DEFAULT_START + 10 * replenish_sim::world::STEP_MS);
}

/// A scenario's power cut (day 8, 03:00 to 05:00) against Mosquitto: each appliance announces
/// itself once per boot, the second time with the next boot number, and every message it
/// counted arrives once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scenario_power_cut_shows_as_a_new_boot_at_the_broker() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mosquitto) = mosquitto_or_skip(dir.path(), "", &[]) else {
        return;
    };
    let port = mosquitto.port();
    let (_listener, mut messages) = listen(port).await;
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../simulator/scenarios/faults.toml");
    let mut options = options(port, 1, Some(9.0));
    options.scenario = replenish_sim::scenario::Scenario::load(&path).unwrap();
    options.households = None;
    let (_stop_tx, stop) = watch::channel(false);
    let last = devices::run(&options, stop, |_| {}).await.unwrap();
    let expected: u64 = last.devices.iter().map(|d| d.published + 1).sum();
    let mut births: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for received in 0..expected {
        let (topic, payload) = tokio::time::timeout(Duration::from_secs(10), messages.recv())
            .await
            .unwrap_or_else(|_| panic!("{received} of {expected} messages arrived"))
            .unwrap();
        if let Some(device) = topic.strip_suffix("/status")
            && let Ok(Status::Online(birth)) = codec::decode::<Status>(&payload)
        {
            births
                .entry(device.to_string())
                .or_default()
                .push(birth.boot);
        }
    }
    assert_eq!(births.len(), 2, "{births:?}");
    for (device, boots) in &births {
        assert_eq!(boots.len(), 2, "{device}: a birth per boot: {boots:?}");
        assert_eq!(boots[1], boots[0] + 1, "{device}: the next boot number");
    }
}
