//! The agent's second MQTT connection, for what it tells people and Home Assistant: approval
//! notifications, discovery configs and entity states, and the few command topics Home
//! Assistant publishes on. Kept apart from the ingest connection ([`crate::mqtt`]) so that a
//! slow or broken integration never delays device telemetry or its acknowledgements.
//!
//! Publishing goes through the [`Publish`] trait (never waits: a full queue is an error the
//! caller counts), with [`MemoryPublisher`] as its in-memory twin for tests. The connection has
//! a last will: `offline` (retained) on [`availability_topic`], and publishes `online` there on
//! every connection, so Home Assistant marks the entities unavailable when the agent is gone.

use std::sync::Mutex;
use std::time::Duration;

use rumqttc::{AsyncClient, Event as MqttEvent, LastWill, MqttOptions, Outgoing as MqttOutgoing};
use rumqttc::{Packet, QoS};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::internal_events::{
    OutClosed, OutConnected, OutConnectionLost, OutInboundDropped, OutPublishDropped, emit,
};

/// A message to publish with QoS 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The topic.
    pub topic: String,
    /// The payload (empty with `retain` clears a retained message).
    pub payload: Vec<u8>,
    /// Whether the broker keeps it for later subscribers.
    pub retain: bool,
}

/// A message that arrived on one of the link's subscriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// The topic.
    pub topic: String,
    /// The payload.
    pub payload: Vec<u8>,
    /// Whether the broker delivered it as a retained message.
    pub retain: bool,
}

/// What the link hands its consumer: messages on its subscriptions, and a counter of
/// connections made (it changes on every (re)connection: a broker that restarted has lost its
/// retained messages, so everything retained should be published again).
#[derive(Debug)]
pub struct LinkInput {
    /// Messages on the subscriptions.
    pub messages: mpsc::Receiver<Inbound>,
    /// Connections made so far.
    pub connections: watch::Receiver<u64>,
}

/// Why a message could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// The outgoing queue is full (the broker is away or slow).
    #[error("the outgoing MQTT queue is full")]
    Full,
    /// The connection task stopped.
    #[error("the outgoing MQTT connection is closed")]
    Closed,
    /// Larger than the broker takes (`mqtt.max_packet_bytes`): sending it would only get the
    /// connection closed.
    #[error("a message of {0} bytes exceeds mqtt.max_packet_bytes")]
    TooLarge(usize),
}

/// Publishes messages with QoS 1 without waiting for the broker.
pub trait Publish: Send + Sync {
    /// Queues one message.
    fn publish(&self, message: Outgoing) -> Result<(), PublishError>;
}

/// The in-memory twin of the MQTT connection: records every message.
#[derive(Debug, Default)]
pub struct MemoryPublisher {
    sent: Mutex<Vec<Outgoing>>,
}

impl MemoryPublisher {
    /// Everything published so far, oldest first.
    pub fn sent(&self) -> Vec<Outgoing> {
        self.sent.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Forgets what was published.
    pub fn clear(&self) {
        self.sent.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

impl Publish for MemoryPublisher {
    fn publish(&self, message: Outgoing) -> Result<(), PublishError> {
        self.sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(message);
        Ok(())
    }
}

/// Publishes through a running [`spawn`]ed connection. The connection closes (cleanly, after
/// sending what was queued) once every clone is dropped.
#[derive(Debug, Clone)]
pub struct MqttPublisher {
    tx: mpsc::Sender<Outgoing>,
    max_packet_bytes: usize,
}

/// Bytes of an MQTT PUBLISH beyond its topic and payload, at most (fixed header, lengths,
/// packet id).
const PUBLISH_OVERHEAD: usize = 16;

impl Publish for MqttPublisher {
    fn publish(&self, message: Outgoing) -> Result<(), PublishError> {
        let size = message.topic.len() + message.payload.len() + PUBLISH_OVERHEAD;
        if size > self.max_packet_bytes {
            return Err(PublishError::TooLarge(size));
        }
        self.tx.try_send(message).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => PublishError::Full,
            mpsc::error::TrySendError::Closed(_) => PublishError::Closed,
        })
    }
}

/// Where and how the link connects.
#[derive(Debug, Clone)]
pub struct LinkSettings {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// Client id (distinct from the ingest connection's).
    pub client_id: String,
    /// Keep-alive.
    pub keep_alive: Duration,
    /// Where `online`/`offline` is published (retained), with `offline` as the last will.
    pub availability_topic: String,
    /// Topic filters to subscribe to (QoS 1) on every connection.
    pub subscriptions: Vec<String>,
    /// Largest packet the broker takes.
    pub max_packet_bytes: usize,
    /// Set while connected (for `/healthz`).
    pub connected: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// User name and password, if the broker wants them.
    pub login: Option<(String, String)>,
}

/// The agent's availability topic: `{prefix}/{household}/agent/availability`.
pub fn availability_topic(prefix: &str, household: &str) -> String {
    format!(
        "{}/availability",
        replenish_protocol::topic::agent_root(prefix, household)
    )
}

/// Messages queued for the broker at most.
const QUEUE: usize = 256;
/// Inbound messages waiting for their handler at most; more are dropped and counted.
const INBOUND_QUEUE: usize = 64;
/// After the shutdown signal, how long to wait for the publishers to finish their work.
const CLOSE_GRACE: Duration = Duration::from_secs(10);
/// How long the final `offline` and disconnect may take.
const DISCONNECT_WAIT: Duration = Duration::from_secs(2);

/// Starts the connection. It publishes what the returned publisher queues, hands messages on
/// its subscriptions to the returned [`LinkInput`], and stops when every publisher is dropped, or
/// [`CLOSE_GRACE`] after `shutdown` turns true, publishing `offline` before it disconnects.
pub fn spawn(
    settings: LinkSettings,
    shutdown: watch::Receiver<bool>,
) -> (MqttPublisher, LinkInput, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(QUEUE);
    let (inbound_tx, inbound_rx) = mpsc::channel(INBOUND_QUEUE);
    let (connections_tx, connections) = watch::channel(0);
    let max_packet_bytes = settings.max_packet_bytes;
    let task = tokio::spawn(run(settings, rx, inbound_tx, connections_tx, shutdown));
    let input = LinkInput {
        messages: inbound_rx,
        connections,
    };
    (
        MqttPublisher {
            tx,
            max_packet_bytes,
        },
        input,
        task,
    )
}

async fn run(
    settings: LinkSettings,
    mut outgoing: mpsc::Receiver<Outgoing>,
    inbound: mpsc::Sender<Inbound>,
    connections: watch::Sender<u64>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut options = MqttOptions::new(&settings.client_id, &settings.host, settings.port);
    options
        .set_keep_alive(settings.keep_alive)
        .set_clean_session(true)
        .set_max_packet_size(settings.max_packet_bytes, settings.max_packet_bytes)
        .set_last_will(LastWill::new(
            &settings.availability_topic,
            "offline",
            QoS::AtLeastOnce,
            true,
        ));
    if let Some((username, password)) = &settings.login {
        options.set_credentials(username, password);
    }
    let (client, mut eventloop) = AsyncClient::new(options, QUEUE);
    let span =
        tracing::info_span!("mqtt_out", broker = %format!("{}:{}", settings.host, settings.port));
    let _enter = span.enter();
    let mut backoff = crate::backoff::Backoff::new();
    let set_connected = |up: bool| {
        settings
            .connected
            .store(up, std::sync::atomic::Ordering::SeqCst);
    };
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let grace_at = deadline;
        let grace = async move {
            match grace_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            polled = eventloop.poll() => match polled {
                Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => {
                    backoff.connected(std::time::Instant::now());
                    set_connected(true);
                    emit(OutConnected);
                    for filter in &settings.subscriptions {
                        if let Err(error) = client.try_subscribe(filter.clone(), QoS::AtLeastOnce) {
                            tracing::error!(%filter, %error, "cannot subscribe");
                        }
                    }
                    if let Err(error) = client.try_publish(
                        settings.availability_topic.clone(),
                        QoS::AtLeastOnce,
                        true,
                        "online",
                    ) {
                        tracing::warn!(%error, "cannot publish availability");
                    }
                    connections.send_modify(|n| *n += 1);
                }
                Ok(MqttEvent::Incoming(Packet::Publish(publish))) => {
                    let message = Inbound {
                        topic: publish.topic.clone(),
                        payload: publish.payload.to_vec(),
                        retain: publish.retain,
                    };
                    if inbound.try_send(message).is_err() {
                        emit(OutInboundDropped { topic: &publish.topic });
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    set_connected(false);
                    let delay = backoff.failed(std::time::Instant::now());
                    emit(OutConnectionLost { error: &error, retry_in: delay });
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = crate::runtime::stopped(&mut shutdown), if deadline.is_none() => {
                            deadline = Some(tokio::time::Instant::now() + CLOSE_GRACE);
                        }
                    }
                }
            },
            message = outgoing.recv() => match message {
                Some(message) => {
                    if let Err(error) = client.try_publish(message.topic.clone(), QoS::AtLeastOnce, message.retain, message.payload) {
                        emit(OutPublishDropped { topic: &message.topic, error: &error });
                    }
                }
                None => break,
            },
            _ = crate::runtime::stopped(&mut shutdown), if deadline.is_none() => {
                deadline = Some(tokio::time::Instant::now() + CLOSE_GRACE);
            }
            _ = grace => {
                tracing::warn!("publishers did not finish in time; closing anyway");
                break;
            }
        }
    }
    // Say goodbye: a clean disconnect suppresses the last will.
    let _ = client.try_publish(
        settings.availability_topic.clone(),
        QoS::AtLeastOnce,
        true,
        "offline",
    );
    let _ = client.try_disconnect();
    let _ = tokio::time::timeout(DISCONNECT_WAIT, async {
        loop {
            match eventloop.poll().await {
                Ok(MqttEvent::Outgoing(MqttOutgoing::Disconnect)) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    set_connected(false);
    emit(OutClosed);
}
