//! MQTT ingest with rumqttc: QoS 1, a persistent session, manual acknowledgements sent only once
//! what a message caused is flushed to storage, re-subscription on every connection and
//! back-off with jitter while the broker is away.
//!
//! The path, and why it never stalls nor drops:
//!
//! ```text
//! broker ─► event loop task ──(bounded engine queue: a full queue stops the loop reading,
//!            ▲    ▲             so the broker holds messages in its QoS 1 window)──► engine
//!            │    │                                                                    │
//!            │    └── acks, written by the loop itself, many per socket write ◄────────┤
//!            └── rumqttc request queue ◄── command pump task ◄── commands ◄────────────┘
//! ```
//!
//! The engine never waits on the way out: it hands acks and commands to the [`Outbox`]. Acks
//! go to the event loop task, which writes every ack that is ready into rumqttc's connection and
//! flushes them with one write (rumqttc's own `ack()` flushes the socket once per ack; batching
//! saves those writes, though draining a backlog stays bound by storing, not by acks). Commands go
//! through a pump that waits for room in rumqttc's request queue (`publish().await`, never a
//! `try_`). The outbox is bounded by construction: it holds one ack per message the broker
//! delivered and the agent has not acknowledged (no more than the broker's in-flight window, as
//! the broker sends nothing beyond it), and at most 10,000 commands (more are dropped, counted
//! and sent again later).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use replenish_protocol::{Ack, Channel, DeviceId, HouseholdId, Report, Status, codec, topic};
use rumqttc::{
    AsyncClient, Event as MqttEvent, EventLoop, MqttOptions, Packet, PubAck, Publish, QoS, Request,
};
use tokio::sync::{mpsc, watch};

use crate::backoff::Backoff;
use crate::engine::Telemetry;
use crate::internal_events::{
    AcksWritten, CommandDropped, IngestDepth, IngestResumed, IngestStalled, MqttConnected,
    MqttConnectionLost, MqttSubscribed, OutboxClosed, StaleAck, emit,
};
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
    pub household: HouseholdId,
    /// Keep-alive.
    pub keep_alive: Duration,
    /// Largest MQTT packet sent or accepted.
    pub max_packet_bytes: usize,
    /// Messages pending with no ack for this long mark the ingest stalled.
    pub stall_after: Duration,
    /// User name and password, if the broker wants them.
    pub login: Option<(String, String)>,
}

/// Whether `topic_name` is one the agent publishes on for the household (availability,
/// approvals, Home Assistant state).
fn is_agents_own(prefix: &str, household: &HouseholdId, topic_name: &str) -> bool {
    topic_name
        .strip_prefix(&topic::agent_root(prefix, household.as_str()))
        .is_some_and(|rest| rest.starts_with('/'))
}

/// Decodes one publish into what the engine understands.
pub fn decode(prefix: &str, household: &HouseholdId, topic_name: &str, payload: &[u8]) -> Incoming {
    let refused = |reason| Incoming::Refused {
        topic: topic_name.to_string(),
        reason,
    };
    let parsed = match topic::parse(prefix, topic_name) {
        Ok(parsed) => parsed,
        // The agent's own topics (`…/{household}/agent/…`) share the household's subscription.
        Err(_) if is_agents_own(prefix, household, topic_name) => return Incoming::Own,
        Err(e) => return refused(RefusedReason::Topic(e.to_string())),
    };
    if parsed.household != household.as_str() {
        return refused(RefusedReason::Topic(format!(
            "household {} is not ours",
            parsed.household
        )));
    }
    let Ok(device) = DeviceId::new(parsed.device) else {
        return refused(RefusedReason::Topic("bad device id".into()));
    };
    let message = match parsed.channel {
        Channel::Status => codec::decode::<Status>(payload).map(|s| Telemetry::Status(Box::new(s))),
        Channel::Report => codec::decode::<Report>(payload).map(Telemetry::Report),
        Channel::Ack => codec::decode::<Ack>(payload).map(Telemetry::Ack),
        // A command the agent sent, back on the household's subscription.
        Channel::Cmd => return Incoming::Own,
    };
    match message {
        Ok(message) => Incoming::Telemetry { device, message },
        Err(e) => refused(RefusedReason::Payload(e)),
    }
}

/// An acknowledgement owed to the broker: what the message caused is durable.
#[derive(Debug)]
struct PendingAck {
    /// The message.
    publish: Publish,
    /// The connection it came on ([`IngestHealth::connection`]); an ack of an earlier
    /// connection is not sent (the broker redelivers that message, and its packet id may
    /// already name another one).
    connection: u64,
    /// A device's message (counted in [`IngestHealth::acked`]), not the agent's own echo.
    counted: bool,
}

/// A command to publish (QoS 1, not retained).
#[derive(Debug)]
struct PendingCommand {
    topic: String,
    payload: Vec<u8>,
}

/// The engine's way out to the broker: never blocks, never drops. See the module docs for why
/// its queues are bounded.
#[derive(Debug, Clone)]
pub struct Outbox {
    acks: mpsc::UnboundedSender<PendingAck>,
    commands: mpsc::UnboundedSender<PendingCommand>,
    health: Arc<IngestHealth>,
}

/// The receiving ends of an [`Outbox`], for [`run`].
#[derive(Debug)]
pub struct OutboxReceiver {
    acks: mpsc::UnboundedReceiver<PendingAck>,
    commands: mpsc::UnboundedReceiver<PendingCommand>,
}

/// A new outbox and its receiver.
pub fn outbox(health: Arc<IngestHealth>) -> (Outbox, OutboxReceiver) {
    let (acks, acks_rx) = mpsc::unbounded_channel();
    let (commands, commands_rx) = mpsc::unbounded_channel();
    (
        Outbox {
            acks,
            commands,
            health,
        },
        OutboxReceiver {
            acks: acks_rx,
            commands: commands_rx,
        },
    )
}

impl Outbox {
    /// Queues an acknowledgement.
    pub fn ack(&self, publish: Publish, connection: u64, counted: bool) {
        self.health.outbox_depth.fetch_add(1, Ordering::Relaxed);
        if self
            .acks
            .send(PendingAck {
                publish,
                connection,
                counted,
            })
            .is_err()
        {
            self.closed();
        }
    }

    /// Queues a command, unless [`OUTBOX_COMMANDS`] already wait (the broker is away): then it
    /// is dropped and counted; the engine sends it again if its ack does not come.
    pub fn command(&self, topic: String, payload: Vec<u8>) {
        if self.health.outbox_commands.fetch_add(1, Ordering::Relaxed) >= OUTBOX_COMMANDS {
            self.health.outbox_commands.fetch_sub(1, Ordering::Relaxed);
            emit(CommandDropped);
            return;
        }
        self.health.outbox_depth.fetch_add(1, Ordering::Relaxed);
        if self
            .commands
            .send(PendingCommand { topic, payload })
            .is_err()
        {
            self.closed();
        }
    }

    fn closed(&self) {
        // Only after the MQTT task stopped (shutdown): the broker redelivers what was not
        // acknowledged.
        self.health.outbox_depth.fetch_sub(1, Ordering::Relaxed);
        emit(OutboxClosed);
    }
}

/// What the ingest path looks like from outside: counters shared by the MQTT tasks, the engine
/// task and `/healthz`.
#[derive(Debug, Default)]
pub struct IngestHealth {
    /// Messages received from the broker.
    pub received: AtomicU64,
    /// When the first of them came (a benchmark's start of the clock).
    pub first_received: std::sync::OnceLock<std::time::Instant>,
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
    let (
        outbox,
        OutboxReceiver {
            acks: mut acks_rx,
            commands: commands_rx,
        },
    ) = outbox;
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
    if let Some((username, password)) = &settings.login {
        options.set_credentials(username, password);
    }
    let (client, mut eventloop) = AsyncClient::new(options, REQUEST_QUEUE);
    let pump = tokio::spawn(pump(client.clone(), commands_rx, health.clone()));
    let flush_timeout = Duration::from_secs(eventloop.network_options.connection_timeout());
    let watchdog = tokio::spawn(watch_stalls(
        health.clone(),
        settings.stall_after,
        shutdown.clone(),
    ));
    // One subscription for status, report and ack: within it the broker keeps each device's
    // order (with one per channel, rumqttd could deliver a report before the birth before it).
    let filters = [topic::household_filter(
        &settings.prefix,
        &settings.household,
    )];
    let mut backoff = Backoff::new();
    let mut pending_subacks = 0usize;
    let span =
        tracing::info_span!("mqtt", broker = %format!("{}:{}", settings.host, settings.port));
    let _enter = span.enter();
    loop {
        // Acks first: each one lets the broker send another message. Giving up a pending
        // `poll()` for them is safe: what it read stays in rumqttc's buffers and events.
        let polled = tokio::select! {
            biased;
            _ = crate::runtime::stopped(&mut shutdown) => break,
            Some(ack) = acks_rx.recv() => {
                send_acks(&mut eventloop, ack, &mut acks_rx, &health, flush_timeout).await;
                continue;
            }
            polled = eventloop.poll() => polled,
        };
        match polled {
            Ok(MqttEvent::Incoming(Packet::ConnAck(ack))) => {
                backoff.connected(Instant::now());
                emit(MqttConnected {
                    session_present: ack.session_present,
                });
                // Earlier builds subscribed once per channel; a session an external broker
                // kept for them would deliver every message twice.
                if ack.session_present {
                    for channel in [Channel::Status, Channel::Report, Channel::Ack] {
                        let old = topic::filter(&settings.prefix, &settings.household, channel);
                        let _ = client.try_unsubscribe(old);
                    }
                }
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
                    emit(MqttSubscribed);
                    subscribed.send_replace(true);
                }
            }
            Ok(MqttEvent::Incoming(Packet::Publish(publish))) => {
                let incoming = decode(
                    &settings.prefix,
                    &settings.household,
                    &publish.topic,
                    &publish.payload,
                );
                // The agent's own echoes are not the devices' messages: not counted as received
                // or settled, but acknowledged in their turn (PUBACKs go out in order).
                let counted = !matches!(incoming, Incoming::Own);
                if counted {
                    health.received.fetch_add(1, Ordering::Relaxed);
                    health.first_received.get_or_init(std::time::Instant::now);
                }
                let connection = health.connection.load(Ordering::SeqCst);
                let outbox = outbox.clone();
                let ack: crate::runtime::Acker =
                    Box::new(move || outbox.ack(publish, connection, counted));
                // Waits while the engine's queue is full: the loop stops reading, and the
                // broker keeps what it cannot deliver. Acks still go out meanwhile.
                let room = loop {
                    tokio::select! {
                        biased;
                        Some(ack) = acks_rx.recv() => {
                            send_acks(&mut eventloop, ack, &mut acks_rx, &health, flush_timeout)
                                .await;
                        }
                        room = agent.room() => break room,
                    }
                };
                match room {
                    Ok(room) => room.incoming(incoming, Some(ack)),
                    Err(_) => break,
                }
            }
            Ok(_) => {}
            Err(error) => {
                // Acks still queued belong to the lost connection: the pump drops them from
                // now on (the broker redelivers those messages) rather than send them on the
                // next connection, where a packet id may name another message.
                health.connection.fetch_add(1, Ordering::SeqCst);
                health.connected.store(false, Ordering::SeqCst);
                subscribed.send_replace(false);
                let delay = backoff.failed(Instant::now());
                emit(MqttConnectionLost {
                    error: &error,
                    retry_in: delay,
                });
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
            tokio::select! {
                Some(ack) = acks_rx.recv() => {
                    send_acks(&mut eventloop, ack, &mut acks_rx, &health, flush_timeout).await;
                }
                polled = tokio::time::timeout(Duration::from_millis(20), eventloop.poll()) => {
                    if polled.is_ok_and(|polled| polled.is_err()) {
                        break;
                    }
                }
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

/// Acks written before one flush at most: bounds how long the loop is away from reading.
const ACK_BATCH: usize = 1024;

/// Writes `first` and every other ack that is ready into the connection, then flushes them with
/// one socket write. Every ack taken is settled: sent, or left for the broker to redeliver (an
/// ack of an earlier connection, or one whose connection fails now: rumqttc's next poll sees
/// the failure and the loop reconnects).
async fn send_acks(
    eventloop: &mut EventLoop,
    first: PendingAck,
    rx: &mut mpsc::UnboundedReceiver<PendingAck>,
    health: &IngestHealth,
    flush_timeout: Duration,
) {
    let current = health.connection.load(Ordering::SeqCst);
    let mut next = Some(first);
    let mut settled = 0u64;
    let mut counted_settled = 0u64;
    let mut written = 0usize;
    while let Some(PendingAck {
        publish,
        connection,
        counted,
    }) = next.take()
    {
        settled += 1;
        counted_settled += u64::from(counted);
        if connection != current {
            emit(StaleAck);
        } else if publish.qos != QoS::AtMostOnce
            && let Some(network) = eventloop.network.as_mut()
        {
            // The same path rumqttc's `ack()` takes, without its flush per ack.
            let request = Request::PubAck(PubAck::new(publish.pkid));
            match eventloop.state.handle_outgoing_packet(request) {
                Ok(Some(packet)) => match network.write(packet).await {
                    Ok(()) => written += 1,
                    Err(error) => tracing::debug!(%error, "ack not written"),
                },
                Ok(None) => {}
                Err(error) => tracing::debug!(%error, "ack refused by the session state"),
            }
        }
        if (settled as usize) < ACK_BATCH {
            next = rx.try_recv().ok();
        }
    }
    if written > 0
        && let Some(network) = eventloop.network.as_mut()
    {
        match tokio::time::timeout(flush_timeout, network.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::debug!(%error, "acks not flushed"),
            Err(_) => tracing::debug!("acks not flushed in time"),
        }
    }
    emit(AcksWritten { written });
    health.outbox_depth.fetch_sub(settled, Ordering::Relaxed);
    health.acked.fetch_add(counted_settled, Ordering::Relaxed);
}

/// Moves commands into rumqttc's request queue, waiting for room (the event loop drains it
/// whenever it polls).
async fn pump(
    client: AsyncClient,
    mut rx: mpsc::UnboundedReceiver<PendingCommand>,
    health: Arc<IngestHealth>,
) {
    while let Some(PendingCommand { topic, payload }) = rx.recv().await {
        health.outbox_commands.fetch_sub(1, Ordering::Relaxed);
        let sent = client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await;
        health.outbox_depth.fetch_sub(1, Ordering::Relaxed);
        // An error: the event loop is gone, the agent is stopping.
        if sent.is_err() {
            break;
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
        emit(IngestDepth {
            pending,
            outbox: health.outbox_depth.load(Ordering::Relaxed),
        });
        if acked != last_acked || pending == 0 {
            last_acked = acked;
            since = Instant::now();
            if health.stalled.swap(false, Ordering::SeqCst) {
                emit(IngestResumed);
            }
        } else if since.elapsed() >= after && !health.stalled.swap(true, Ordering::SeqCst) {
            emit(IngestStalled { pending, after });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn household() -> HouseholdId {
        HouseholdId::new("home").unwrap()
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

    #[test]
    fn the_agents_own_messages_are_told_apart_from_bad_ones() {
        let own = |topic: &str| {
            matches!(
                decode("replenish/v1", &household(), topic, b"{}"),
                Incoming::Own
            )
        };
        assert!(own("replenish/v1/home/coffee/cmd"));
        assert!(own("replenish/v1/home/agent/availability"));
        assert!(own("replenish/v1/home/agent/approvals"));
        assert!(own("replenish/v1/home/agent/ha/coffee/state"));
        // Not the agent's: a device's junk channel, another household's agent, another prefix.
        assert!(!own("replenish/v1/home/coffee/junk"));
        assert!(!own("replenish/v1/other/agent/availability"));
        assert!(!own("replenish/v2/home/agent/availability"));
        assert!(!own("replenish/v1/homely/agent/availability"));
    }
}
