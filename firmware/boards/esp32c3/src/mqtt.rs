//! One MQTT 5 session over TCP (rust-mqtt): connect with the last will, subscribe to commands,
//! publish what the runtime queues, keep the connection alive.
//!
//! Publishing is QoS 1 with one message in flight: a message leaves the runtime
//! ([`DeviceRuntime::confirm_sent`](replenish_firmware::DeviceRuntime::confirm_sent)) only when its
//! PUBACK arrives, so one lost with the connection is sent again after the next connect. Every
//! connection starts a clean session; nothing of MQTT's session state needs to survive.

use core::net::Ipv4Addr;
use core::num::NonZero;

use embassy_futures::select::{Either, select};
#[cfg(feature = "dns")]
use embassy_net::dns::DnsQueryType;
use embassy_net::tcp::TcpSocket;
use embassy_net::{IpAddress, IpEndpoint, Stack};
use embassy_time::{Duration, Timer};
use esp_println::println;
use heapless::String;
use replenish_firmware::Outgoing;
use replenish_protocol::{Channel, DeviceId, HouseholdId, MAX_PAYLOAD, Status, codec, topic};
use rust_mqtt::Bytes;
use rust_mqtt::buffer::AllocBuffer;
use rust_mqtt::client::event::Event;
use rust_mqtt::client::options::{
    ConnectOptions, PublicationOptions, SubscriptionOptions, TopicReference, WillOptions,
};
use rust_mqtt::client::{Client, MqttError};
use rust_mqtt::config::KeepAlive;
use rust_mqtt::types::{MqttBinary, MqttString, PacketIdentifier, TopicFilter, TopicName};

use crate::app::{App, TICK_MS, now_ms};
use crate::config;

/// Keep-alive announced to the broker, in seconds.
const KEEP_ALIVE_S: u16 = 60;
/// Send a PINGREQ after this long without sending anything, in ms.
const PING_AFTER_MS: u64 = 30_000;
/// Give up on the connection when a PUBACK takes longer, in ms.
const PUBACK_TIMEOUT_MS: u64 = 15_000;
/// TCP connect timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Close the socket after this long without receiving anything (1.5 × keep-alive).
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Size of each TCP buffer; rust-mqtt keeps its own copy of received packets.
const SOCKET_BUFFER: usize = 1536;

/// A topic string.
pub type Topic = String<128>;

/// The topics of this device.
pub struct Topics {
    status: Topic,
    report: Topic,
    ack: Topic,
    cmd: Topic,
}

impl Topics {
    /// `{prefix}/{household}/{device}/{channel}` for every channel, or `None` if too long.
    pub fn new(household: &HouseholdId, device: &DeviceId) -> Option<Self> {
        let one = |channel| {
            let mut s = Topic::new();
            topic::write(&mut s, config::PREFIX, household, device, channel).ok()?;
            Some(s)
        };
        Some(Self {
            status: one(Channel::Status)?,
            report: one(Channel::Report)?,
            ack: one(Channel::Ack)?,
            cmd: one(Channel::Cmd)?,
        })
    }

    fn of(&self, channel: Channel) -> &str {
        match channel {
            Channel::Status => &self.status,
            Channel::Report => &self.report,
            Channel::Ack => &self.ack,
            Channel::Cmd => &self.cmd,
        }
    }
}

/// Why a session ended (the details were printed).
#[derive(Debug)]
pub struct SessionEnded;

/// Prints what failed and ends the session.
fn ended(what: &str, detail: &dyn core::fmt::Debug) -> SessionEnded {
    println!("MQTT: {what} failed: {detail:?}");
    SessionEnded
}

/// Prints what failed in the MQTT client and ends the session. Not the error's `Debug`: that
/// formats the broker's reason string with Unicode escaping, about 3.5 KiB of flash.
fn client_failed<const P: usize, A>(what: &str, e: &MqttError<'_, P, A>) -> SessionEnded {
    let why = match e {
        MqttError::Network(kind) => {
            println!("MQTT: {what} failed: network: {kind:?}");
            return SessionEnded;
        }
        MqttError::Disconnect {
            reason,
            reason_string,
            ..
        } => {
            let text = reason_string.as_ref().map_or("", |s| s.as_str());
            // Reason codes as numbers (MQTT 5, section 2.4): their names would cost about
            // 1 KiB of flash.
            println!(
                "MQTT: {what}: the broker disconnected: reason 0x{:02x} {text}",
                reason.value()
            );
            return SessionEnded;
        }
        MqttError::Server => "protocol error by the broker",
        MqttError::Alloc => "out of heap",
        MqttError::RecoveryRequired => "connection unusable",
        MqttError::ServerMaximumPacketSizeExceeded => "packet larger than the broker accepts",
        MqttError::SendQuotaExceeded => "send quota exceeded",
        MqttError::UnsupportedByServer => "not supported by the broker",
        _ => "client error",
    };
    ended_because(what, why)
}

/// Prints what failed and why, in words, and ends the session.
fn ended_because(what: &str, why: &str) -> SessionEnded {
    println!("MQTT: {what} failed: {why}");
    SessionEnded
}

/// The broker's address: [`config::MQTT_HOST`] as an IPv4 address, or (with the `dns` feature)
/// resolved by DNS.
pub async fn resolve_broker(stack: Stack<'static>, port: u16) -> Option<IpEndpoint> {
    let ip = match config::MQTT_HOST.parse::<Ipv4Addr>() {
        Ok(ip) => ip,
        #[cfg(feature = "dns")]
        Err(_) => match stack.dns_query(config::MQTT_HOST, DnsQueryType::A).await {
            Ok(addresses) => match addresses.first() {
                Some(IpAddress::Ipv4(ip)) => *ip,
                None => {
                    println!("DNS: no address for {}", config::MQTT_HOST);
                    return None;
                }
            },
            Err(e) => {
                println!("DNS: cannot resolve {}: {e:?}", config::MQTT_HOST);
                return None;
            }
        },
        #[cfg(not(feature = "dns"))]
        Err(_) => {
            let _ = stack;
            println!(
                "REPLENISH_MQTT_HOST {} is not an IPv4 address; build with --features dns",
                config::MQTT_HOST
            );
            return None;
        }
    };
    Some(IpEndpoint::new(IpAddress::Ipv4(ip), port))
}

/// Runs one session until the connection fails; sensors are sampled every [`TICK_MS`]
/// meanwhile. The caller marks the runtime disconnected afterwards and backs off.
pub async fn session(
    stack: Stack<'static>,
    broker: IpEndpoint,
    app: &mut App,
    client_id: &DeviceId,
    topics: &Topics,
) -> Result<(), SessionEnded> {
    let mut rx = [0u8; SOCKET_BUFFER];
    let mut tx = [0u8; SOCKET_BUFFER];
    let mut socket = TcpSocket::new(stack, &mut rx, &mut tx);
    socket.set_timeout(Some(CONNECT_TIMEOUT));
    socket
        .connect(broker)
        .await
        .map_err(|e| ended("TCP connect", &e))?;
    socket.set_timeout(Some(IDLE_TIMEOUT));

    let mut buffer = AllocBuffer;
    // One subscription, one QoS 1 command in flight towards us, one publication in flight from
    // us; no subscription identifiers, user properties or topic aliases kept (smaller code).
    let mut client: Client<'_, '_, _, _, 1, 1, 1, 0, 0, 0, 0> = Client::new(&mut buffer);

    // The last will: `offline`, retained, in binary form.
    let mut will = [0u8; 8];
    let will = codec::encode_binary(&Status::Offline, &mut will)
        .map_err(|_| ended_because("will", "invalid"))?;
    let will_topic =
        topic_name(&topics.status).ok_or_else(|| ended_because("will topic", "invalid"))?;
    let will = WillOptions::new(
        will_topic,
        MqttBinary::from_slice(will).map_err(|_| ended_because("will", "invalid"))?,
    )
    .at_least_once()
    .retain();
    let keep_alive =
        NonZero::new(KEEP_ALIVE_S).ok_or_else(|| ended_because("keep-alive", "invalid"))?;
    let mut options = ConnectOptions::new()
        .clean_start()
        .keep_alive(KeepAlive::Seconds(keep_alive))
        .will(will);
    // The login given on the console; the user name is the device id (the agent's gate and
    // the documented Mosquitto ACL require it).
    let login = app.login();
    if let Some(login) = &login {
        let user = MqttString::from_str(client_id.as_str())
            .map_err(|_| ended_because("user", "invalid"))?;
        let password = MqttBinary::from_slice(login.password())
            .map_err(|_| ended_because("password", "invalid"))?;
        options = options.user_name(user).password(password);
    }
    let id = MqttString::from_str(client_id.as_str())
        .map_err(|_| ended_because("client id", "invalid"))?;
    client
        .connect(&mut socket, &options, Some(id))
        .await
        .map_err(|e| client_failed("MQTT connect", &e))?;
    println!("MQTT: connected to {broker} as {client_id}");
    crate::heap::report("after the MQTT connect");

    let cmd =
        MqttString::from_str(&topics.cmd).map_err(|_| ended_because("cmd topic", "invalid"))?;
    let filter = TopicFilter::new(cmd).ok_or_else(|| ended_because("cmd filter", "invalid"))?;
    client
        .subscribe(filter, &SubscriptionOptions::new().at_least_once())
        .await
        .map_err(|e| client_failed("subscribe", &e))?;

    app.runtime.connected(now_ms());
    let mut in_flight: Option<(PacketIdentifier, Outgoing, u64)> = None;
    let mut last_sent = now_ms();
    let mut payload = [0u8; MAX_PAYLOAD];
    loop {
        let now = now_ms();
        app.tick(now);

        if in_flight.is_none()
            && let Some(out) = app.runtime.peek()
        {
            let bytes = out.encode(&mut payload).map_err(|e| ended("encode", &e))?;
            let name = topic_name(topics.of(out.channel))
                .ok_or_else(|| ended_because("topic", "invalid"))?;
            let mut publication =
                PublicationOptions::new(TopicReference::Name(name)).at_least_once();
            if out.retain {
                publication = publication.retain();
            }
            let pid = client
                .publish(&publication, Bytes::from(&bytes[..]))
                .await
                .map_err(|e| client_failed("publish", &e))?
                .ok_or_else(|| ended_because("publish", "no packet identifier for QoS 1"))?;
            in_flight = Some((pid, out, now));
            last_sent = now;
        }
        if let Some((_, _, since)) = &in_flight
            && now.saturating_sub(*since) > PUBACK_TIMEOUT_MS
        {
            return Err(ended_because("PUBACK", "timed out"));
        }
        if now.saturating_sub(last_sent) > PING_AFTER_MS {
            client.ping().await.map_err(|e| client_failed("ping", &e))?;
            last_sent = now;
        }

        // Wait for the broker or the next tick; reading a header is cancel-safe.
        let polled = select(
            Timer::after(Duration::from_millis(TICK_MS)),
            client.poll_header(),
        )
        .await;
        let header = match polled {
            Either::First(()) => continue,
            Either::Second(header) => header.map_err(|e| client_failed("receive", &e))?,
        };
        let event = client
            .poll_body(header)
            .await
            .map_err(|e| client_failed("receive", &e))?;
        match event {
            Event::Publish(publish) => app.command(publish.message.as_bytes(), now_ms()),
            Event::PublishAcknowledged(ack) => {
                if let Some((_, out, _)) =
                    in_flight.take_if(|(p, _, _)| *p == ack.packet_identifier)
                {
                    app.runtime.confirm_sent(&out);
                }
            }
            Event::PublishRejected(rejection) => {
                // The broker refuses this message (not authorised, quota, …); sending it again
                // would block the queue forever, so it is dropped.
                if let Some((_, out, _)) =
                    in_flight.take_if(|(p, _, _)| *p == rejection.packet_identifier)
                {
                    println!(
                        "MQTT: broker rejected a {:?} message: reason 0x{:02x}",
                        out.channel,
                        rejection.reason_code.value()
                    );
                    app.runtime.confirm_sent(&out);
                }
            }
            Event::Suback(suback) if suback.reason_code.is_erroneous() => {
                println!(
                    "MQTT: command subscription refused: reason 0x{:02x}",
                    suback.reason_code.value()
                );
            }
            _ => {}
        }
    }
}

fn topic_name(topic: &str) -> Option<TopicName<'_>> {
    TopicName::new(MqttString::from_str(topic).ok()?)
}
