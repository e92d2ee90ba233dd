//! The embedded broker speaks MQTT 3.1.1 and MQTT 5 on loopback, and a v5 client's messages
//! reach v4 subscribers (a device on rust-mqtt, the agent on rumqttc v4).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::net::SocketAddr;
use std::time::Duration;

use replenish_agent::broker::packet::{Version, probe_connect};
use rumqttc::v5::mqttbytes::QoS as QoS5;
use rumqttc::v5::{AsyncClient as Client5, MqttOptions as Options5};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

/// Any free port on loopback: the broker says which it got.
const ANY: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

/// The probe that says the broker has started: it takes a CONNACK on either version for a
/// broker, and neither a server of another protocol nor a silent listener for one.
#[test]
fn the_probe_tells_a_broker_from_whatever_else_holds_the_port() {
    use replenish_agent::broker::probe_mqtt;
    let listening = replenish_agent::broker::start(ANY, Some(ANY), 64 * 1024, None).unwrap();
    let (v4, v5) = (listening.v4, listening.v5.unwrap());
    assert!(v4.port() != 0 && v5.port() != 0 && v4 != v5);
    assert_eq!(probe_mqtt(v4, Version::V4, None), Some(true));
    assert_eq!(probe_mqtt(v5, Version::V5, None), Some(true));

    // A web server: it answers, but not in MQTT.
    let web = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let web_addr = web.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in web.incoming() {
            let _ = std::io::Write::write_all(
                &mut stream.unwrap(),
                b"HTTP/1.1 400 Bad Request\r\n\r\n",
            );
        }
    });
    assert_eq!(probe_mqtt(web_addr, Version::V4, None), None);
    // A listener that never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    assert_eq!(
        probe_mqtt(silent.local_addr().unwrap(), Version::V4, None),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v5_publish_reaches_a_v4_subscriber() {
    let listening = replenish_agent::broker::start(ANY, Some(ANY), 64 * 1024, None).unwrap();
    let (v4, v5) = (listening.v4.port(), listening.v5.unwrap().port());

    let (subscriber, mut sub_loop) = AsyncClient::new(MqttOptions::new("sub", "127.0.0.1", v4), 16);
    subscriber
        .subscribe("replenish/v1/home/+/report", QoS::AtLeastOnce)
        .await
        .unwrap();
    // Wait until the subscription is acknowledged.
    loop {
        match tokio::time::timeout(Duration::from_secs(10), sub_loop.poll())
            .await
            .unwrap()
        {
            Ok(Event::Incoming(Packet::SubAck(_))) => break,
            Ok(_) => {}
            Err(e) => panic!("v4 subscriber: {e}"),
        }
    }

    let (device, mut device_loop) = Client5::new(Options5::new("dev", "127.0.0.1", v5), 16);
    let payload = br#"{"boot":1,"seq":1,"ts":0,"body":{"level":{"slot":"beans","remaining":12}}}"#;
    device
        .publish(
            "replenish/v1/home/coffee/report",
            QoS5::AtLeastOnce,
            false,
            payload.to_vec(),
        )
        .await
        .unwrap();
    tokio::spawn(async move {
        loop {
            if let Err(e) = device_loop.poll().await {
                panic!("v5 device: {e}");
            }
        }
    });
    let received = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Event::Incoming(Packet::Publish(p)) = sub_loop.poll().await.unwrap() {
                return p;
            }
        }
    })
    .await
    .expect("the v5 message arrived");
    assert_eq!(received.topic, "replenish/v1/home/coffee/report");
    assert_eq!(&received.payload[..], &payload[..]);
}

/// A client that sends a packet over the broker's limit loses its own connection; another
/// client's messages keep flowing to the subscriber.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_packet_over_the_limit_closes_only_its_sender() {
    let port = replenish_agent::broker::start(ANY, None, 4096, None)
        .unwrap()
        .v4
        .port();
    let connect = |id: &str| {
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        options.set_max_packet_size(64 * 1024, 64 * 1024);
        AsyncClient::new(options, 16)
    };
    let (subscriber, mut sub_loop) = connect("sub");
    subscriber
        .subscribe("replenish/v1/home/+/report", QoS::AtLeastOnce)
        .await
        .unwrap();
    loop {
        if let Event::Incoming(Packet::SubAck(_)) = sub_loop.poll().await.unwrap() {
            break;
        }
    }
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sub_task = {
        let received = received.clone();
        tokio::spawn(async move {
            loop {
                if let Ok(Event::Incoming(Packet::Publish(p))) = sub_loop.poll().await {
                    received.lock().unwrap().push(p.topic.clone());
                }
            }
        })
    };
    // The offender: 5 KB against a 4 KB limit.
    let (offender, mut offender_loop) = connect("offender");
    offender
        .publish(
            "replenish/v1/home/big/report",
            QoS::AtLeastOnce,
            false,
            vec![b' '; 5000],
        )
        .await
        .unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if offender_loop.poll().await.is_err() {
                return;
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the broker closed the offender's connection"
    );
    // A well-behaved device, before and after: its messages arrive.
    let (device, mut device_loop) = connect("device");
    tokio::spawn(async move {
        loop {
            if device_loop.poll().await.is_err() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });
    for _ in 0..3 {
        device
            .publish(
                "replenish/v1/home/small/report",
                QoS::AtLeastOnce,
                false,
                b"{}".to_vec(),
            )
            .await
            .unwrap();
    }
    let all_arrived = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if received.lock().unwrap().len() >= 3 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(all_arrived.is_ok(), "the other client's messages flowed");
    assert!(
        received
            .lock()
            .unwrap()
            .iter()
            .all(|t| t.contains("/small/")),
        "nothing of the offender's reached the subscriber"
    );
    sub_task.abort();
}

/// Whether `id` gets a CONNACK from the broker on `port` within five seconds.
async fn connack(port: u16, id: &str) -> bool {
    let (_client, mut event_loop) = AsyncClient::new(MqttOptions::new(id, "127.0.0.1", port), 4);
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match event_loop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    })
    .await
    .unwrap_or(false)
}

/// A device that vanishes between its CONNECT and the broker's CONNACK (Wi-Fi gone) and
/// comes back under the same client id; then any other client. rumqttd 0.20 leaves a stale
/// will handler behind the first and panics on the second while holding a lock every later
/// connection needs (rumqtt issue 1062).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_gone_before_its_connack_can_come_back() {
    let port = replenish_agent::broker::start(ANY, None, 4096, None)
        .unwrap()
        .v4
        .port();
    assert!(connack(port, "first").await, "the broker is up");
    for round in 0..50 {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        use tokio::io::AsyncWriteExt;
        stream
            .write_all(&probe_connect(Version::V4, "flaky", None))
            .await
            .unwrap();
        if round % 2 == 1 {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        stream.set_zero_linger().unwrap();
        drop(stream);
    }
    assert!(connack(port, "flaky").await, "the device comes back");
    assert!(
        connack(port, "another").await,
        "another device still gets in"
    );
}
