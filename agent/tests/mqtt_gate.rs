//! The embedded broker behind its gate: only logins get in, and a device publishes and
//! subscribes only to its own topics (rumqttd on loopback, rumqttc clients, MQTT 3.1.1 and 5).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use replenish_agent::auth::hash_token;
use replenish_agent::broker::gate::{self, Acl, DeviceLogins, GateSettings};
use rumqttc::{AsyncClient, ConnectReturnCode, ConnectionError, Event, MqttOptions, Packet, QoS};
use tokio::sync::watch;

const KETTLE_PASSWORD: &str = "kettle-password-0123456789";
const AGENT_PASSWORD: &str = "agent-password-0123456789";

struct Gate {
    port: u16,
    devices: watch::Sender<DeviceLogins>,
    _shutdown: watch::Sender<bool>,
}

async fn gate() -> Gate {
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let behind = replenish_agent::broker::start(
        any,
        Some(any),
        64 * 1024,
        Some(("gate".into(), "inner-secret".into())),
    )
    .unwrap();
    let settings = Arc::new(GateSettings {
        upstream: behind.v4,
        upstream_v5: behind.v5,
        upstream_login: ("gate".into(), "inner-secret".into()),
        agent: Some(("agent".into(), hash_token(AGENT_PASSWORD))),
        acl: Acl::new("replenish/v1", "home"),
        max_packet_bytes: 64 * 1024,
        connect_timeout: Duration::from_secs(5),
    });
    let logins: DeviceLogins = Arc::new(BTreeMap::from([(
        "kettle".to_string(),
        hash_token(KETTLE_PASSWORD),
    )]));
    let (devices, devices_rx) = watch::channel(logins);
    let (shutdown, shutdown_rx) = watch::channel(false);
    let listener = tokio::net::TcpListener::bind(any).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(gate::serve(
        listener,
        settings,
        devices_rx,
        |stream| std::future::ready(Ok(stream)),
        shutdown_rx,
    ));
    Gate {
        port,
        devices,
        _shutdown: shutdown,
    }
}

fn client(port: u16, id: &str, login: Option<(&str, &str)>) -> (AsyncClient, rumqttc::EventLoop) {
    let mut options = MqttOptions::new(id, "127.0.0.1", port);
    if let Some((user, password)) = login {
        options.set_credentials(user, password);
    }
    AsyncClient::new(options, 16)
}

/// Polls until the connection is answered: Ok on ConnAck, the error otherwise.
async fn connected(event_loop: &mut rumqttc::EventLoop) -> Result<(), ConnectionError> {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match event_loop.poll().await? {
                Event::Incoming(Packet::ConnAck(_)) => return Ok(()),
                _ => continue,
            }
        }
    })
    .await
    .expect("an answer within 10 s")
}

/// Polls until `predicate` holds for an incoming packet, or the connection ends (Err).
async fn until(
    event_loop: &mut rumqttc::EventLoop,
    mut predicate: impl FnMut(&Packet) -> bool,
) -> Result<Packet, ConnectionError> {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Event::Incoming(packet) = event_loop.poll().await?
                && predicate(&packet)
            {
                return Ok(packet);
            }
        }
    })
    .await
    .expect("within 10 s")
}

fn refused_login(result: Result<(), ConnectionError>) -> bool {
    matches!(
        result,
        Err(ConnectionError::ConnectionRefused(
            ConnectReturnCode::BadUserNamePassword
        ))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_logins_get_in() {
    let gate = gate().await;
    let (_c, mut anonymous) = client(gate.port, "kettle", None);
    assert!(refused_login(connected(&mut anonymous).await), "anonymous");
    let (_c, mut wrong) = client(gate.port, "kettle", Some(("kettle", "not-the-password")));
    assert!(refused_login(connected(&mut wrong).await), "wrong password");
    let (_c, mut unknown) = client(gate.port, "fridge", Some(("fridge", KETTLE_PASSWORD)));
    assert!(
        refused_login(connected(&mut unknown).await),
        "unknown device"
    );
    let (_c, mut borrowed) = client(gate.port, "fridge", Some(("kettle", KETTLE_PASSWORD)));
    assert!(
        refused_login(connected(&mut borrowed).await),
        "a device's login under another client id"
    );
    let (_c, mut kettle) = client(gate.port, "kettle", Some(("kettle", KETTLE_PASSWORD)));
    connected(&mut kettle)
        .await
        .expect("the kettle's own login");
    let (_c, mut agent) = client(
        gate.port,
        "replenish-agent",
        Some(("agent", AGENT_PASSWORD)),
    );
    connected(&mut agent).await.expect("the agent's login");

    // A login issued later works at once; one removed stops working for new connections.
    gate.devices.send_modify(|logins| {
        let mut more = (**logins).clone();
        more.insert("fridge".into(), hash_token("fridge-password-0123456789"));
        more.remove("kettle");
        *logins = Arc::new(more);
    });
    let (_c, mut fridge) = client(
        gate.port,
        "fridge",
        Some(("fridge", "fridge-password-0123456789")),
    );
    connected(&mut fridge)
        .await
        .expect("the fridge's new login");
    let (_c, mut kettle) = client(gate.port, "kettle", Some(("kettle", KETTLE_PASSWORD)));
    assert!(refused_login(connected(&mut kettle).await), "removed login");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_publishes_only_its_own_topics() {
    let gate = gate().await;
    let (agent, mut agent_loop) = client(
        gate.port,
        "replenish-agent",
        Some(("agent", AGENT_PASSWORD)),
    );
    agent
        .subscribe("replenish/v1/home/+/report", QoS::AtLeastOnce)
        .await
        .unwrap();
    until(&mut agent_loop, |p| matches!(p, Packet::SubAck(_)))
        .await
        .unwrap();

    let (kettle, mut kettle_loop) = client(gate.port, "kettle", Some(("kettle", KETTLE_PASSWORD)));
    connected(&mut kettle_loop).await.unwrap();
    // Its own topic: delivered.
    kettle
        .publish(
            "replenish/v1/home/kettle/report",
            QoS::AtLeastOnce,
            false,
            "own",
        )
        .await
        .unwrap();
    // (rumqttc sends while its loop is polled: the kettle's first.)
    until(&mut kettle_loop, |p| matches!(p, Packet::PubAck(_)))
        .await
        .expect("its own report is acknowledged");
    let got = until(&mut agent_loop, |p| matches!(p, Packet::Publish(_)))
        .await
        .unwrap();
    let Packet::Publish(publish) = got else {
        unreachable!()
    };
    assert_eq!(publish.topic, "replenish/v1/home/kettle/report");

    // Another device's topic: the connection ends and nothing reaches the agent.
    kettle
        .publish(
            "replenish/v1/home/fridge/report",
            QoS::AtLeastOnce,
            false,
            "spoofed",
        )
        .await
        .unwrap();
    assert!(
        until(&mut kettle_loop, |_| false).await.is_err(),
        "the spoofing connection is closed"
    );
    // The kettle comes back and reports again: that is the next thing the agent receives, so
    // the spoofed report never reached the broker.
    let (kettle, mut kettle_loop) = client(gate.port, "kettle", Some(("kettle", KETTLE_PASSWORD)));
    kettle
        .publish(
            "replenish/v1/home/kettle/report",
            QoS::AtLeastOnce,
            false,
            "after",
        )
        .await
        .unwrap();
    until(&mut kettle_loop, |p| matches!(p, Packet::PubAck(_)))
        .await
        .unwrap();
    let Packet::Publish(next) = until(&mut agent_loop, |p| matches!(p, Packet::Publish(_)))
        .await
        .unwrap()
    else {
        unreachable!()
    };
    assert_eq!(
        (next.topic.as_str(), &next.payload[..]),
        ("replenish/v1/home/kettle/report", &b"after"[..]),
        "the spoofed report was delivered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_subscribes_only_to_its_own_commands() {
    let gate = gate().await;
    let (kettle, mut kettle_loop) = client(gate.port, "kettle", Some(("kettle", KETTLE_PASSWORD)));
    kettle
        .subscribe("replenish/v1/home/kettle/cmd", QoS::AtLeastOnce)
        .await
        .unwrap();
    until(&mut kettle_loop, |p| matches!(p, Packet::SubAck(_)))
        .await
        .expect("its own commands");
    kettle
        .subscribe("replenish/v1/home/+/cmd", QoS::AtLeastOnce)
        .await
        .unwrap();
    assert!(
        until(&mut kettle_loop, |p| matches!(p, Packet::SubAck(_)))
            .await
            .is_err(),
        "every device's commands: the connection is closed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_5_devices_pass_the_same_gate() {
    use rumqttc::v5::mqttbytes::v5::ConnectReturnCode as Code5;
    use rumqttc::v5::{AsyncClient as Client5, ConnectionError as Error5, MqttOptions as Options5};
    let gate = gate().await;
    let connect = |password: &str| {
        let mut options = Options5::new("kettle", "127.0.0.1", gate.port);
        options.set_credentials("kettle", password);
        Client5::new(options, 16)
    };
    let (_c, mut wrong) = connect("wrong");
    let refused = loop {
        match wrong.poll().await {
            Ok(rumqttc::v5::Event::Incoming(rumqttc::v5::mqttbytes::v5::Packet::ConnAck(_))) => {
                break None;
            }
            Ok(_) => {}
            Err(error) => break Some(error),
        }
    };
    assert!(
        matches!(
            refused,
            Some(Error5::ConnectionRefused(Code5::BadUserNamePassword))
        ),
        "{refused:?}"
    );
    let (_c, mut right) = connect(KETTLE_PASSWORD);
    let answered = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let rumqttc::v5::Event::Incoming(rumqttc::v5::mqttbytes::v5::Packet::ConnAck(ack)) =
                right.poll().await.unwrap()
            {
                return ack.code;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(answered, Code5::Success);
}

/// The whole agent with logins on (`edit` may set more), on a free port; returns it and the port.
async fn agent_with_logins(
    edit: impl FnOnce(&mut replenish_agent::config::AgentConfig),
) -> (replenish_agent::Agent, u16) {
    use replenish_agent::clock::ManualClock;
    use replenish_agent::config::AgentConfig;
    use replenish_agent::store::MemoryStore;
    use replenish_agent::{Agent, AgentOptions};

    let mut config = AgentConfig::default();
    // Any free port: the agent's broker says which it got.
    config.mqtt.embedded_listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.mqtt.embedded_v5 = false;
    config.mqtt.embedded_auth = true;
    config.http.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.home_assistant.discovery = false;
    edit(&mut config);
    let agent = Agent::start(
        &config,
        AgentOptions {
            clock: ManualClock::new(1_767_571_200_000),
            store: Some(Arc::new(MemoryStore::default())),
            commerce: None,
            tick_every: None,
            broker: None,
        },
    )
    .await
    .unwrap();
    assert!(
        agent.wait_subscribed(Duration::from_secs(20)).await,
        "the agent's own clients logged in through the gate"
    );
    let port = agent.broker_listening().unwrap().v4.port();
    (agent, port)
}

/// The whole agent with `mqtt.embedded_auth`: its own clients log in through the gate, an
/// owner's login for a device lets it in (and accepts it at its first birth), a device without
/// one is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_lets_in_devices_an_owner_gave_a_login() {
    use replenish_agent::engine::Event;
    use replenish_agent::engine::household::Actor;
    use replenish_protocol::DeviceId;

    let (agent, port) = agent_with_logins(|config| {
        config.mqtt.username = Some("replenish-agent".into());
        config.mqtt.password = Some(AGENT_PASSWORD.into());
    })
    .await;
    agent
        .handle()
        .ask(Event::IssueDeviceLogin {
            device: DeviceId::new("kettle").unwrap(),
            password_hash: hash_token(KETTLE_PASSWORD),
            by: Actor::Console,
        })
        .await
        .unwrap();

    let (_c, mut stranger) = client(port, "stranger", None);
    assert!(refused_login(connected(&mut stranger).await), "no login");

    let (kettle, mut kettle_loop) = client(port, "kettle", Some(("kettle", KETTLE_PASSWORD)));
    let birth = r#"{"online":{"model":"kettle","firmware":"1.0.0","boot":1,"slots":[{"id":"water","consumable":"water","unit":"ml","capacity":2000,"sensor":"level"}]}}"#;
    kettle
        .publish(
            "replenish/v1/home/kettle/status",
            QoS::AtLeastOnce,
            true,
            birth,
        )
        .await
        .unwrap();
    let report = r#"{"boot":1,"seq":1,"ts":0,"body":{"level":{"slot":"water","remaining":1500}}}"#;
    kettle
        .publish(
            "replenish/v1/home/kettle/report",
            QoS::AtLeastOnce,
            false,
            report,
        )
        .await
        .unwrap();
    let mut acks = 0;
    while acks < 2 {
        until(&mut kettle_loop, |p| matches!(p, Packet::PubAck(_)))
            .await
            .unwrap();
        acks += 1;
    }
    // Once the agent has taken both in, the level is there, on a device nobody had to accept.
    tokio::time::timeout(Duration::from_secs(10), agent.handle().settle(2))
        .await
        .expect("the agent took both messages in")
        .unwrap();
    let status = agent.handle().status().await.unwrap();
    let device = status
        .devices
        .iter()
        .find(|d| d.id == "kettle")
        .unwrap_or_else(|| panic!("the kettle is known: {status:?}"));
    assert!(device.accepted, "accepted by its login");
    let slot = status
        .slots
        .iter()
        .find(|s| s.device == "kettle" && s.slot == "water")
        .expect("its slot");
    assert_eq!(slot.level, Some(1500.0));
    agent.shutdown().await;
}

/// With logins on and no login configured, the agent makes itself one: its own clients get in,
/// an anonymous client does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_configured_login_the_agent_makes_its_own() {
    let (agent, port) = agent_with_logins(|_| {}).await;
    let (_c, mut anonymous) = client(port, "replenish-agent", None);
    assert!(refused_login(connected(&mut anonymous).await));
    agent.shutdown().await;
}

/// Devices joining at once, each sending its birth and then its reports without waiting: every
/// report counts. (With one subscription per channel, rumqttd could hand the agent a report
/// before the birth sent ahead of it, and the report was refused: the device was unknown.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_sent_right_after_a_birth_all_count() {
    const DEVICES: usize = 20;
    const REPORTS: u32 = 25;
    let (agent, port) = agent_with_logins(|config| {
        config.mqtt.username = Some("replenish-agent".into());
        config.mqtt.password = Some(AGENT_PASSWORD.into());
        config.household.pairing = replenish_agent::engine::Pairing::Open;
    })
    .await;
    // A tool with the agent's account speaks for many devices on one connection.
    let (fleet, mut fleet_loop) = client(port, "fleet", Some(("replenish-agent", AGENT_PASSWORD)));
    let poller = tokio::spawn(async move { while fleet_loop.poll().await.is_ok() {} });
    for n in 0..DEVICES {
        let device = format!("grinder-{n:02}");
        let birth = r#"{"online":{"model":"grinder","firmware":"1.0.0","boot":1,"slots":[{"id":"beans","consumable":"coffee_beans","unit":"g","capacity":1000,"sensor":"usage"}]}}"#;
        fleet
            .publish(
                format!("replenish/v1/home/{device}/status"),
                QoS::AtLeastOnce,
                true,
                birth,
            )
            .await
            .unwrap();
        for seq in 1..=REPORTS {
            let report = format!(
                r#"{{"boot":1,"seq":{seq},"ts":0,"body":{{"usage":{{"slot":"beans","amount":9,"uses":1}}}}}}"#
            );
            fleet
                .publish(
                    format!("replenish/v1/home/{device}/report"),
                    QoS::AtLeastOnce,
                    false,
                    report,
                )
                .await
                .unwrap();
        }
    }
    let messages = DEVICES as u64 * (1 + u64::from(REPORTS));
    tokio::time::timeout(Duration::from_secs(20), agent.handle().settle(messages))
        .await
        .expect("the agent took in every message")
        .unwrap();
    let status = agent.handle().status().await.unwrap();
    let uses: Vec<(String, u64)> = status
        .slots
        .iter()
        .map(|s| (s.device.clone(), s.uses))
        .collect();
    assert_eq!(uses.len(), DEVICES, "{uses:?}");
    assert!(
        uses.iter().all(|(_, n)| *n == u64::from(REPORTS)),
        "every report counted once: {uses:?}"
    );
    poller.abort();
    agent.shutdown().await;
}

/// A device whose Wi-Fi drops right after its CONNECT, again and again, then comes back; the
/// agent and the device both still get in. Straight to rumqttd this used to lock everyone out
/// (rumqtt issue 1062, see vendor/README.md); the gate closes its side to rumqttd with a FIN, so
/// rumqttd's CONNACK is still written and the fault never showed through the gate, with or
/// without the patch: this keeps it so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_gone_before_its_connack_can_come_back() {
    use tokio::io::AsyncWriteExt;
    let gate = gate().await;
    let connect = replenish_agent::broker::packet::probe_connect(
        replenish_agent::broker::packet::Version::V4,
        "kettle",
        Some(("kettle", KETTLE_PASSWORD)),
    );
    for round in 0..50 {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", gate.port))
            .await
            .unwrap();
        stream.write_all(&connect).await.unwrap();
        // Half the rounds give the gate time to pass the CONNECT on before the reset.
        if round % 2 == 1 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        stream.set_zero_linger().unwrap();
        drop(stream);
    }
    let (_kettle, mut kettle_loop) = client(gate.port, "kettle", Some(("kettle", KETTLE_PASSWORD)));
    assert!(
        connected(&mut kettle_loop).await.is_ok(),
        "the kettle is back"
    );
    let (_agent, mut agent_loop) = client(gate.port, "agent", Some(("agent", AGENT_PASSWORD)));
    assert!(
        connected(&mut agent_loop).await.is_ok(),
        "the agent gets in"
    );
}
