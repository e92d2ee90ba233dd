//! docs/examples/mosquitto (mosquitto.conf and acl) as written, in a real Mosquitto: logins
//! from a password file, each device only on its own topics, appliances over TLS, and the agent
//! logging in with its own account.
//!
//! Skips (saying so) when Mosquitto or openssl is missing, except in CI (`CI=true`), where that
//! fails the test.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use replenish_agent::clock::ManualClock;
use replenish_agent::config::AgentConfig;
use replenish_agent::engine::Pairing;
use replenish_agent::{Agent, AgentOptions};
use replenish_sim::mosquitto::{self, Mosquitto};
use replenish_sim::world::free_port;
use replenish_tests::{peer_ready, programs_missing};
use rumqttc::{AsyncClient, ConnectionError, Event, MqttOptions, Packet, QoS};

const AGENT_PASSWORD: &str = "agent-password-0123456789";
const KETTLE_PASSWORD: &str = "kettle-password-0123456789";
const WAIT: Duration = Duration::from_secs(10);

fn run(command: &mut Command) -> Output {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// A CA and a server certificate for 127.0.0.1 and localhost, made with openssl.
fn certificates(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(Command::new("openssl")
        .current_dir(dir)
        .args(["req", "-x509"])
        .args(ec)
        .args(["-keyout", "ca.key", "-out", "ca.crt", "-days", "2"])
        .args(["-subj", "/CN=replenish test CA"]));
    run(Command::new("openssl")
        .current_dir(dir)
        .arg("req")
        .args(ec)
        .args([
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ]));
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    run(Command::new("openssl").current_dir(dir).args([
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]));
}

/// Mosquitto with the documented files, moved to `dir` and the given ports.
fn start(dir: &Path, plain: u16, tls: u16) -> Mosquitto {
    start_with_accounts(dir, plain, tls, &[])
}

/// The same, with more accounts (user, password) in its password file.
fn start_with_accounts(dir: &Path, plain: u16, tls: u16, accounts: &[(&str, &str)]) -> Mosquitto {
    use std::os::unix::fs::PermissionsExt;
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/examples/mosquitto");
    let conf = std::fs::read_to_string(docs.join("mosquitto.conf")).unwrap();
    let at = format!("{}/", dir.display());
    let conf = conf
        .replace("/etc/mosquitto/replenish/", &at)
        .replace(
            "listener 1883 127.0.0.1",
            &format!("listener {plain} 127.0.0.1"),
        )
        .replace("listener 8883", &format!("listener {tls} 127.0.0.1"))
        .replace("persistence true", "persistence false")
        .replace("persistence_location /var/lib/mosquitto/\n", "");
    assert!(!conf.contains("/etc/mosquitto"), "every path moved");
    std::fs::copy(docs.join("acl"), dir.join("acl")).unwrap();
    certificates(dir);
    let passwd = dir.join("passwd");
    run(Command::new("mosquitto_passwd")
        .args(["-c", "-b"])
        .arg(&passwd)
        .args(["replenish-agent", AGENT_PASSWORD]));
    run(Command::new("mosquitto_passwd")
        .arg("-b")
        .arg(&passwd)
        .args(["kettle", KETTLE_PASSWORD]));
    for (user, password) in accounts {
        run(Command::new("mosquitto_passwd")
            .arg("-b")
            .arg(&passwd)
            .args([user, password]));
    }
    // Mosquitto started as root reads its files as the mosquitto user.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    mosquitto::start_with(dir, plain, &conf).unwrap()
}

fn client(port: u16, id: &str, user: &str, password: &str) -> (AsyncClient, rumqttc::EventLoop) {
    let mut options = MqttOptions::new(id, "127.0.0.1", port);
    options.set_credentials(user, password);
    AsyncClient::new(options, 16)
}

async fn until(
    event_loop: &mut rumqttc::EventLoop,
    mut predicate: impl FnMut(&Packet) -> bool,
) -> Result<Packet, ConnectionError> {
    tokio::time::timeout(WAIT, async {
        loop {
            if let Event::Incoming(packet) = event_loop.poll().await?
                && predicate(&packet)
            {
                return Ok(packet);
            }
        }
    })
    .await
    .expect("an answer within 10 s")
}

/// `mosquitto_pub` over TLS, trusting the test CA.
fn publish_tls(
    port: u16,
    user: &str,
    password: &str,
    topic: &str,
    message: &str,
    dir: &Path,
) -> Output {
    Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
        .arg("--cafile")
        .arg(dir.join("ca.crt"))
        .args([
            "-u", user, "-P", password, "-i", user, "-t", topic, "-m", message,
        ])
        .output()
        .unwrap()
}

fn installed() -> bool {
    peer_ready(programs_missing(
        &["mosquitto", "mosquitto_passwd", "mosquitto_pub", "openssl"],
        "mosquitto mosquitto-clients openssl",
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_mosquitto_enforces_logins_topics_and_tls() {
    if !installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (plain, tls) = (free_port().unwrap(), free_port().unwrap());
    let _mosquitto = start(dir.path(), plain, tls);

    // The agent's account reads every report of the household.
    let (agent, mut agent_loop) = client(plain, "agent", "replenish-agent", AGENT_PASSWORD);
    agent
        .subscribe("replenish/v1/home/+/report", QoS::AtLeastOnce)
        .await
        .unwrap();
    until(&mut agent_loop, |p| matches!(p, Packet::SubAck(_)))
        .await
        .unwrap();

    // A wrong password and no login are refused.
    let (_c, mut wrong) = client(plain, "kettle", "kettle", "not-the-password");
    let refused = until(&mut wrong, |p| matches!(p, Packet::ConnAck(_))).await;
    assert!(
        matches!(refused, Err(ConnectionError::ConnectionRefused(_))),
        "{refused:?}"
    );
    let anonymous = AsyncClient::new(MqttOptions::new("anon", "127.0.0.1", plain), 16);
    let (_c, mut anonymous) = anonymous;
    let refused = until(&mut anonymous, |p| matches!(p, Packet::ConnAck(_))).await;
    assert!(
        matches!(refused, Err(ConnectionError::ConnectionRefused(_))),
        "{refused:?}"
    );
    wrong_password_is_refused_over_tls(tls, dir.path());

    // Over TLS the kettle reports on its own topic, and its report arrives.
    let output = publish_tls(
        tls,
        "kettle",
        KETTLE_PASSWORD,
        "replenish/v1/home/kettle/report",
        "own",
        dir.path(),
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let Packet::Publish(first) = until(&mut agent_loop, |p| matches!(p, Packet::Publish(_)))
        .await
        .unwrap()
    else {
        unreachable!()
    };
    assert_eq!(
        (first.topic.as_str(), &first.payload[..]),
        ("replenish/v1/home/kettle/report", &b"own"[..])
    );

    // Posing as the fridge: Mosquitto drops it (MQTT 3.1.1 cannot say no to a publish), so the
    // next report the agent sees is the kettle's own that follows.
    let output = publish_tls(
        tls,
        "kettle",
        KETTLE_PASSWORD,
        "replenish/v1/home/fridge/report",
        "spoofed",
        dir.path(),
    );
    assert!(output.status.success());
    let output = publish_tls(
        tls,
        "kettle",
        KETTLE_PASSWORD,
        "replenish/v1/home/kettle/report",
        "after",
        dir.path(),
    );
    assert!(output.status.success());
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

    // The kettle may read its own commands, not the fridge's: Mosquitto grants the
    // subscription but delivers nothing it may not read, so of two commands sent (the fridge's
    // first), the first the kettle receives is its own.
    let (kettle, mut kettle_loop) = client(plain, "kettle", "kettle", KETTLE_PASSWORD);
    for filter in [
        "replenish/v1/home/fridge/cmd",
        "replenish/v1/home/kettle/cmd",
    ] {
        kettle.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
        until(&mut kettle_loop, |p| matches!(p, Packet::SubAck(_)))
            .await
            .unwrap();
    }
    for device in ["fridge", "kettle"] {
        agent
            .publish(
                format!("replenish/v1/home/{device}/cmd"),
                QoS::AtLeastOnce,
                false,
                device,
            )
            .await
            .unwrap();
        until(&mut agent_loop, |p| matches!(p, Packet::PubAck(_)))
            .await
            .unwrap();
    }
    let Packet::Publish(command) = until(&mut kettle_loop, |p| matches!(p, Packet::Publish(_)))
        .await
        .unwrap()
    else {
        unreachable!()
    };
    assert_eq!(command.topic, "replenish/v1/home/kettle/cmd");
}

/// The agent with its own login (`edit` says where its broker is), subscribed.
async fn start_agent(edit: impl FnOnce(&mut AgentConfig)) -> Agent {
    let mut config = AgentConfig::default();
    config.mqtt.username = Some("replenish-agent".into());
    config.mqtt.password = Some(AGENT_PASSWORD.into());
    config.http.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.home_assistant.discovery = false;
    edit(&mut config);
    let agent = Agent::start(
        &config,
        AgentOptions {
            clock: ManualClock::new(replenish_sim::world::DEFAULT_START),
            store: Some(Arc::new(replenish_agent::store::MemoryStore::default())),
            commerce: None,
            tick_every: None,
            broker: None,
        },
    )
    .await
    .unwrap();
    assert!(
        agent.wait_subscribed(WAIT).await,
        "the agent logged in and subscribed"
    );
    agent
}

/// `mosquitto_pub` over TLS with a wrong password fails.
fn wrong_password_is_refused_over_tls(tls: u16, dir: &Path) {
    let output = publish_tls(
        tls,
        "kettle",
        "not-the-password",
        "replenish/v1/home/kettle/report",
        "x",
        dir,
    );
    assert!(
        !output.status.success(),
        "a wrong password over TLS is refused"
    );
}

/// The kettle sends its birth and a level over TLS as itself; the agent stores the level.
async fn kettle_reports_over_tls(agent: &Agent, tls: u16, dir: &Path) {
    let birth = r#"{"online":{"model":"kettle","firmware":"1.0.0","boot":1,"slots":[{"id":"water","consumable":"water","unit":"ml","capacity":2000,"sensor":"level"}]}}"#;
    let report = r#"{"boot":1,"seq":1,"ts":0,"body":{"level":{"slot":"water","remaining":1500}}}"#;
    for (topic, message) in [
        ("replenish/v1/home/kettle/status", birth),
        ("replenish/v1/home/kettle/report", report),
    ] {
        let output = publish_tls(tls, "kettle", KETTLE_PASSWORD, topic, message, dir);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    tokio::time::timeout(WAIT, agent.handle().settle(2))
        .await
        .expect("the agent took both in")
        .unwrap();
    let status = agent.handle().status().await.unwrap();
    let slot = status
        .slots
        .iter()
        .find(|s| s.device == "kettle" && s.slot == "water")
        .unwrap_or_else(|| panic!("the kettle's slot: {status:?}"));
    assert_eq!(slot.level, Some(1500.0));
}

/// The agent logs in with `mqtt.username`/`mqtt.password` and takes in what a logged-in
/// appliance sends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_logs_in_to_the_documented_mosquitto() {
    if !installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (plain, tls) = (free_port().unwrap(), free_port().unwrap());
    let _mosquitto = start(dir.path(), plain, tls);
    let agent = start_agent(|config| {
        config.household.pairing = Pairing::Open;
        config.mqtt.embedded = false;
        config.mqtt.url = format!("mqtt://127.0.0.1:{plain}");
    })
    .await;
    kettle_reports_over_tls(&agent, tls, dir.path()).await;
    agent.shutdown().await;
}

/// The embedded broker's TLS listener (`mqtt.tls_listen`), reached by Mosquitto's own client:
/// a device's login works over TLS, a wrong password does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_broker_speaks_tls_to_devices_with_a_login() {
    use replenish_agent::auth::hash_token;
    use replenish_agent::engine::Event;
    use replenish_agent::engine::household::Actor;
    use replenish_protocol::DeviceId;
    if !installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let (plain, tls) = (free_port().unwrap(), free_port().unwrap());
    let agent = start_agent(|config| {
        config.mqtt.embedded_listen = SocketAddr::from(([127, 0, 0, 1], plain));
        config.mqtt.embedded_v5 = false;
        config.mqtt.embedded_auth = true;
        config.mqtt.tls_listen = Some(SocketAddr::from(([127, 0, 0, 1], tls)));
        config.mqtt.tls_cert = Some(dir.path().join("server.crt"));
        config.mqtt.tls_key = Some(dir.path().join("server.key"));
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
    wrong_password_is_refused_over_tls(tls, dir.path());
    kettle_reports_over_tls(&agent, tls, dir.path()).await;
    agent.shutdown().await;
}

/// `replenish-sim devices` against the documented Mosquitto: the appliances connect over TLS
/// (trusting the test CA), each with its own login from a logins file, and everything they
/// count as sent reaches the agent's account, on their own topics only (the ACL would drop
/// anything else).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_appliances_log_in_over_tls_with_their_own_accounts() {
    use replenish_sim::devices::{self, DeviceLogin, DevicesOptions};
    if !installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (plain, tls) = (free_port().unwrap(), free_port().unwrap());
    let _mosquitto = start_with_accounts(
        dir.path(),
        plain,
        tls,
        &[
            ("coffee-maker", "coffee-maker-password-0123456789"),
            ("fridge", "fridge-password-0123456789"),
        ],
    );
    let logins = dir.path().join("logins.toml");
    std::fs::write(
        &logins,
        "\"home/coffee-maker\" = \"coffee-maker-password-0123456789\"\nfridge = \"fridge-password-0123456789\"\n",
    )
    .unwrap();

    let (agent, mut agent_loop) = client(plain, "agent", "replenish-agent", AGENT_PASSWORD);
    agent
        .subscribe("replenish/v1/home/+/+", QoS::AtLeastOnce)
        .await
        .unwrap();
    until(&mut agent_loop, |p| matches!(p, Packet::SubAck(_)))
        .await
        .unwrap();
    let received = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = received.clone();
    let listener = tokio::spawn(async move {
        while let Ok(event) = agent_loop.poll().await {
            if let Event::Incoming(Packet::Publish(p)) = event {
                sink.lock().unwrap().push(p.topic.clone());
            }
        }
    });

    let options = DevicesOptions {
        host: "127.0.0.1".into(),
        port: tls,
        login: DeviceLogin::from_file(&logins).unwrap(),
        tls: Some(replenish_sim::appliance::tls_config(Some(&dir.path().join("ca.crt"))).unwrap()),
        prefix: replenish_protocol::DEFAULT_PREFIX.into(),
        scenario: replenish_sim::scenario::Scenario::default_scenario().unwrap(),
        households: Some(1),
        household: Some("home".into()),
        speed: 10_000_000.0,
        days: Some(1.0),
        seed: 5,
        start: replenish_sim::world::DEFAULT_START,
        view_every: Duration::ZERO,
    };
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let last = devices::run(&options, stop, |_| {}).await.unwrap();
    let expected: usize = last.devices.iter().map(|d| d.published as usize + 1).sum();
    assert!(expected > 10, "{expected} messages");
    let deadline = tokio::time::Instant::now() + WAIT;
    while received.lock().unwrap().len() < expected && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    listener.abort();
    let topics = received.lock().unwrap().clone();
    assert_eq!(
        topics.len(),
        expected,
        "every message through TLS and the ACL"
    );
    for device in ["coffee-maker", "fridge"] {
        assert!(
            topics
                .iter()
                .any(|t| t == &format!("replenish/v1/home/{device}/report")),
            "{device} reported"
        );
    }
    // A wrong CA is refused: the appliances cannot connect.
    let other = tempfile::tempdir().unwrap();
    certificates(other.path());
    let mut wrong = options.clone();
    wrong.tls =
        Some(replenish_sim::appliance::tls_config(Some(&other.path().join("ca.crt"))).unwrap());
    wrong.days = Some(0.01);
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    assert!(
        devices::run(&wrong, stop, |_| {}).await.is_err(),
        "an untrusted server certificate is refused"
    );
}
