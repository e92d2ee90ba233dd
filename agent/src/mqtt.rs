//! MQTT ingest with rumqttc: QoS 1, a persistent session, manual acknowledgements sent only once
//! what a message caused is flushed to storage, re-subscription on every connection and
//! back-off with jitter while the broker is away.
//!
//! The path, and why it never stalls nor drops:
//!
//! ```text
//! broker ─► event loop task ──(bounded engine queue: a full queue stops the loop reading,
//!                │              so the broker holds messages in its QoS 1 window)──► engine
//!                │                                                                      │
//!                ◄── rumqttc request queue ◄── outbox pump task ◄── Outbox (acks after ──┘
//!                                                                    flush, commands)
//! ```
//!
//! The engine never waits on the way out: it hands acks and commands to the [`Outbox`], whose
//! pump waits for room in rumqttc's request queue (`ack().await`, never `try_ack`). The outbox
//! is bounded by construction: it holds one ack per message the broker delivered and the agent
//! has not acknowledged (no more than the broker's in-flight window, as the broker sends nothing
//! beyond it), and at most 10,000 commands (more are dropped, counted and sent again later).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use replenish_protocol::{Ack, Channel, Id, Report, Status, codec, topic};
use rumqttc::{AsyncClient, Event as MqttEvent, MqttOptions, Packet, Publish, QoS};
use tokio::sync::{mpsc, watch};

use crate::backoff::Backoff;
use crate::engine::Telemetry;
use crate::runtime::{AgentHandle, Incoming, RefusedReason};

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct MqttSettings {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// Client id; the session is kept under it across reconnects.
    pub client_id: String,
    /// Topic prefix.
    pub prefix: String,
    /// The household whose devices to listen to.
    pub household: Id,
    /// Keep-alive.
    pub keep_alive: Duration,
    /// Largest MQTT packet sent or accepted.
    pub max_packet_bytes: usize,
    /// Messages pending with no ack for this long mark the ingest stalled.
    pub stall_after: Duration,
}

const CHANNELS: [Channel; 3] = [Channel::Status, Channel::Report, Channel::Ack];

/// Decodes one publish into what the engine understands.
pub fn decode(prefix: &str, household: &Id, topic_name: &str, payload: &[u8]) -> Incoming {
    let refused = |reason| Incoming::Refused {
        topic: topic_name.to_string(),
        reason,
    };
    let parsed = match topic::parse(prefix, topic_name) {
        Ok(parsed) => parsed,
        Err(e) => return refused(RefusedReason::Topic(e.to_string())),
    };
    if parsed.household != household.as_str() {
        return refused(RefusedReason::Topic(format!(
            "household {} is not ours",
            parsed.household
        )));
    }
    let Ok(device) = Id::new(parsed.device) else {
        return refused(RefusedReason::Topic("bad device id".into()));
    };
    let message = match parsed.channel {
        Channel::Status => codec::decode::<Status>(payload).map(|s| Telemetry::Status(Box::new(s))),
        Channel::Report => codec::decode::<Report>(payload).map(Telemetry::Report),
        Channel::Ack => codec::decode::<Ack>(payload).map(Telemetry::Ack),
        Channel::Cmd => {
            return refused(RefusedReason::Topic(
                "commands are not for the agent".into(),
            ));
        }
    };
    match message {
        Ok(message) => Incoming::Telemetry { device, message },
        Err(e) => refused(RefusedReason::Payload(e)),
    }
}

/// Something for the broker that must not be lost.
#[derive(Debug)]
pub enum Outbound {
    /// Acknowledge a message: what it caused is durable.
    Ack {
        /// The message.
        publish: Publish,
        /// The connection it came on ([`IngestHealth::connection`]); an ack of an earlier
        /// connection is not sent (the broker redelivers that message, and its packet id may
        /// already name another one).
        connection: u64,
    },
    /// Publish a command (QoS 1, not retained).
    Command {
        /// The topic.
        topic: String,
        /// The encoded command.
        payload: Vec<u8>,
    },
}

/// The engine's way out to the broker: never blocks, never drops. See the module docs for why
/// its queue is bounded.
#[derive(Debug, Clone)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<Outbound>,
    health: Arc<IngestHealth>,
}

/// The receiving end of an [`Outbox`], for [`run`].
#[derive(Debug)]
pub struct OutboxReceiver(mpsc::UnboundedReceiver<Outbound>);

/// A new outbox and its receiver.
pub fn outbox(health: Arc<IngestHealth>) -> (Outbox, OutboxReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Outbox { tx, health }, OutboxReceiver(rx))
}

impl Outbox {
    /// Queues an acknowledgement.
    pub fn ack(&self, publish: Publish, connection: u64) {
        self.send(Outbound::Ack {
            publish,
            connection,
        });
    }

    /// Queues a command, unless [`OUTBOX_COMMANDS`] already wait (the broker is away): then it
    /// is dropped and counted; the engine sends it again if its ack does not come.
    pub fn command(&self, topic: String, payload: Vec<u8>) {
        if self.health.outbox_commands.fetch_add(1, Ordering::Relaxed) >= OUTBOX_COMMANDS {
            self.health.outbox_commands.fetch_sub(1, Ordering::Relaxed);
            metrics::counter!("replenish_commands_dropped_total").increment(1);
            return;
        }
        self.send(Outbound::Command { topic, payload });
    }

    fn send(&self, out: Outbound) {
        self.health.outbox_depth.fetch_add(1, Ordering::Relaxed);
        if self.tx.send(out).is_err() {
            // Only after the MQTT task stopped (shutdown): the broker redelivers what was not
            // acknowledged.
            self.health.outbox_depth.fetch_sub(1, Ordering::Relaxed);
            metrics::counter!("replenish_mqtt_outbox_closed_total").increment(1);
        }
    }
}

/// What the ingest path looks like from outside: counters shared by the MQTT tasks, the engine
/// task and `/healthz`.
#[derive(Debug, Default)]
pub struct IngestHealth {
    /// Messages received from the broker.
    pub received: AtomicU64,
    /// Messages settled: acknowledged to the broker, or left for it to redeliver (an ack of a
    /// connection that has since dropped).
    pub acked: AtomicU64,
    /// Acks and commands waiting in the outbox.
    pub outbox_depth: AtomicU64,
    /// Connected to the broker and subscribed.
    pub connected: AtomicBool,
    /// The id of the current connection: changes when one is lost.
    pub connection: AtomicU64,
    /// Commands waiting in the outbox.
    pub outbox_commands: AtomicU64,
    /// Messages pending and no ack for the stall threshold.
    pub stalled: AtomicBool,
    /// The second connection (notifications, Home Assistant) is up.
    pub out_connected: Arc<AtomicBool>,
}

impl IngestHealth {
    /// Received and not yet acknowledged.
    pub fn pending(&self) -> u64 {
        self.received
            .load(Ordering::Relaxed)
            .saturating_sub(self.acked.load(Ordering::Relaxed))
    }
}

/// Runs the MQTT client until `shutdown` turns true. `subscribed` turns true once every
/// subscription of the current connection is acknowledged, false while disconnected.
pub async fn run(
    settings: MqttSettings,
    agent: AgentHandle,
    outbox: (Outbox, OutboxReceiver),
    subscribed: watch::Sender<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let (outbox, OutboxReceiver(outbox_rx)) = outbox;
    let health = outbox.health.clone();
    let mut options = MqttOptions::new(&settings.client_id, &settings.host, settings.port);
    options
        .set_keep_alive(settings.keep_alive)
        .set_clean_session(false)
        .set_manual_acks(true)
        // Incoming: MQTT's own maximum. A packet over a client's limit ends the connection, and
        // with a persistent session the broker would send the same message again after every
        // reconnect, stopping ingest for good; the codec refuses (and counts) any payload over
        // 2048 bytes instead. The broker's limit bounds what can arrive (docs/operations.md).
        .set_max_packet_size(MQTT_MAX_PACKET, settings.max_packet_bytes);
    let (client, mut eventloop) = AsyncClient::new(options, REQUEST_QUEUE);
    let pump = tokio::spawn(pump(client.clone(), outbox_rx, health.clone()));
    let watchdog = tokio::spawn(watch_stalls(
        health.clone(),
        settings.stall_after,
        shutdown.clone(),
    ));
    let filters: Vec<String> = CHANNELS
        .iter()
        .map(|c| topic::filter(&settings.prefix, &settings.household, *c))
        .collect();
    let mut backoff = Backoff::new();
    let mut pending_subacks = 0usize;
    let span =
        tracing::info_span!("mqtt", broker = %format!("{}:{}", settings.host, settings.port));
    let _enter = span.enter();
    loop {
        let polled = tokio::select! {
            polled = eventloop.poll() => polled,
            _ = crate::runtime::stopped(&mut shutdown) => break,
        };
        match polled {
            Ok(MqttEvent::Incoming(Packet::ConnAck(ack))) => {
                backoff.connected(Instant::now());
                metrics::counter!("replenish_mqtt_connections_total").increment(1);
                tracing::info!(
                    session_present = ack.session_present,
                    "connected to the broker"
                );
                // Subscribe every time: cheap, and right even if the broker lost the session.
                pending_subacks = 0;
                for filter in &filters {
                    match client.try_subscribe(filter.clone(), QoS::AtLeastOnce) {
                        Ok(()) => pending_subacks += 1,
                        Err(error) => tracing::error!(%filter, %error, "cannot subscribe"),
                    }
                }
            }
            Ok(MqttEvent::Incoming(Packet::SubAck(_))) => {
                pending_subacks = pending_subacks.saturating_sub(1);
                if pending_subacks == 0 {
                    health.connected.store(true, Ordering::SeqCst);
                    metrics::gauge!("replenish_mqtt_connected").set(1.0);
                    subscribed.send_replace(true);
                }
            }
            Ok(MqttEvent::Incoming(Packet::Publish(publish))) => {
                health.received.fetch_add(1, Ordering::Relaxed);
                let incoming = decode(
                    &settings.prefix,
                    &settings.household,
                    &publish.topic,
                    &publish.payload,
                );
                let connection = health.connection.load(Ordering::SeqCst);
                let outbox = outbox.clone();
                let ack: crate::runtime::Acker = Box::new(move || outbox.ack(publish, connection));
                // Waits while the engine's queue is full: the loop stops reading, and the
                // broker keeps what it cannot deliver.
                if agent.incoming(incoming, Some(ack)).await.is_err() {
                    break;
                }
            }
            Ok(_) => {}
            Err(error) => {
                // Acks still queued belong to the lost connection: the pump drops them from
                // now on (the broker redelivers those messages) rather than send them on the
                // next connection, where a packet id may name another message.
                health.connection.fetch_add(1, Ordering::SeqCst);
                health.connected.store(false, Ordering::SeqCst);
                metrics::gauge!("replenish_mqtt_connected").set(0.0);
                subscribed.send_replace(false);
                metrics::counter!("replenish_mqtt_errors_total").increment(1);
                let delay = backoff.failed(Instant::now());
                tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "MQTT connection lost");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = crate::runtime::stopped(&mut shutdown) => break,
                }
            }
        }
    }
    // Acks of what the engine flushed on its way down go out before the goodbye.
    drop(outbox);
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while health.outbox_depth.load(Ordering::Relaxed) > 0 {
            if tokio::time::timeout(Duration::from_millis(20), eventloop.poll())
                .await
                .is_ok_and(|polled| polled.is_err())
            {
                break;
            }
        }
    })
    .await;
    let _ = client.try_disconnect();
    let _ = tokio::time::timeout(Duration::from_millis(200), eventloop.poll()).await;
    pump.abort();
    watchdog.abort();
    health.connected.store(false, Ordering::SeqCst);
    tracing::info!("MQTT client stopped");
}

/// The largest packet MQTT can carry (a remaining length of 268,435,455 bytes, plus header).
const MQTT_MAX_PACKET: usize = 268_435_460;

/// Commands waiting in the outbox at most (acks are never refused); a command over it is
/// dropped and counted, and the engine sends it again when its ack does not come.
const OUTBOX_COMMANDS: u64 = 10_000;

/// Room in rumqttc's request queue; the pump waits when it is full.
const REQUEST_QUEUE: usize = 256;

/// Moves acks and commands into rumqttc's request queue, waiting for room (the event loop
/// drains it whenever it polls).
async fn pump(
    client: AsyncClient,
    mut rx: mpsc::UnboundedReceiver<Outbound>,
    health: Arc<IngestHealth>,
) {
    while let Some(out) = rx.recv().await {
        // `true`: a delivery is settled (acknowledged, or of an earlier connection and so
        // redelivered by the broker, to be settled again).
        let sent = match out {
            Outbound::Ack {
                publish,
                connection,
            } => {
                if connection == health.connection.load(Ordering::SeqCst) {
                    client.ack(&publish).await.map(|()| true)
                } else {
                    metrics::counter!("replenish_mqtt_stale_acks_total").increment(1);
                    Ok(true)
                }
            }
            Outbound::Command { topic, payload } => {
                health.outbox_commands.fetch_sub(1, Ordering::Relaxed);
                client
                    .publish(topic, QoS::AtLeastOnce, false, payload)
                    .await
                    .map(|()| false)
            }
        };
        health.outbox_depth.fetch_sub(1, Ordering::Relaxed);
        match sent {
            Ok(true) => {
                health.acked.fetch_add(1, Ordering::Relaxed);
            }
            Ok(false) => {}
            // The event loop is gone: the agent is stopping.
            Err(_) => break,
        }
    }
}

/// Marks the ingest stalled when messages are pending and none was acknowledged for
/// `after`: a metric, a log line and `/healthz` failing until acks move again.
async fn watch_stalls(
    health: Arc<IngestHealth>,
    after: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut last_acked = health.acked.load(Ordering::Relaxed);
    let mut since = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(500).min(after));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = crate::runtime::stopped(&mut shutdown) => return,
        }
        let acked = health.acked.load(Ordering::Relaxed);
        let pending = health.pending();
        metrics::gauge!("replenish_ingest_pending").set(pending as f64);
        metrics::gauge!("replenish_mqtt_outbox_depth")
            .set(health.outbox_depth.load(Ordering::Relaxed) as f64);
        if acked != last_acked || pending == 0 {
            last_acked = acked;
            since = Instant::now();
            if health.stalled.swap(false, Ordering::SeqCst) {
                tracing::info!("ingest moves again");
                metrics::gauge!("replenish_ingest_stalled").set(0.0);
            }
        } else if since.elapsed() >= after && !health.stalled.swap(true, Ordering::SeqCst) {
            metrics::counter!("replenish_ingest_stalls_total").increment(1);
            metrics::gauge!("replenish_ingest_stalled").set(1.0);
            tracing::error!(
                pending,
                seconds = after.as_secs(),
                "ingest stalled: messages pending and none acknowledged"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn household() -> Id {
        Id::new("home").unwrap()
    }

    #[test]
    fn decodes_reports_and_refuses_foreign_or_bad_input() {
        let report =
            br#"{"boot":1,"seq":1,"ts":0,"body":{"level":{"slot":"beans","remaining":12}}}"#;
        let ok = decode(
            "replenish/v1",
            &household(),
            "replenish/v1/home/coffee/report",
            report,
        );
        assert!(matches!(
            ok,
            Incoming::Telemetry {
                message: Telemetry::Report(_),
                ..
            }
        ));
        let foreign = decode(
            "replenish/v1",
            &household(),
            "replenish/v1/other/coffee/report",
            report,
        );
        assert!(matches!(
            foreign,
            Incoming::Refused {
                reason: RefusedReason::Topic(_),
                ..
            }
        ));
        let garbage = decode(
            "replenish/v1",
            &household(),
            "replenish/v1/home/coffee/report",
            b"\x00\x01",
        );
        assert!(matches!(
            garbage,
            Incoming::Refused {
                reason: RefusedReason::Payload(_),
                ..
            }
        ));
        let huge = vec![b' '; 10_000];
        let huge = decode(
            "replenish/v1",
            &household(),
            "replenish/v1/home/coffee/report",
            &huge,
        );
        assert!(matches!(
            huge,
            Incoming::Refused {
                reason: RefusedReason::Payload(_),
                ..
            }
        ));
    }
}
