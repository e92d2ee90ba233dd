//! Events of ingest: messages in from the devices' broker, refusals, the agent's subscription,
//! acknowledgements, the stall detector and the embedded broker's gate.

use std::fmt::Display;
use std::net::SocketAddr;
use std::time::Duration;

use metrics::{counter, gauge, histogram};

use super::InternalEvent;
use crate::engine::EngineError;
use crate::metric;

/// A valid message was handed to the engine (`replenish_telemetry_received_total`).
pub struct TelemetryReceived;

impl InternalEvent for TelemetryReceived {
    fn emit(self) {
        counter!(metric::TELEMETRY_RECEIVED.name).increment(1);
    }
}

/// A message was refused before the engine (`replenish_telemetry_refused_total`).
pub struct TelemetryRefused<'a> {
    /// Its topic.
    pub topic: &'a str,
    /// Why, for people.
    pub reason: &'a dyn Display,
    /// Why, as the metric's label.
    pub label: &'static str,
    /// Whether to log it (the caller logs a topic and reason once a minute).
    pub log: bool,
}

impl InternalEvent for TelemetryRefused<'_> {
    fn emit(self) {
        counter!(metric::TELEMETRY_REFUSED.name, "reason" => self.label).increment(1);
        if self.log {
            tracing::warn!(topic = %self.topic, reason = %self.reason, "refused an MQTT message (logged once a minute per topic and reason)");
        }
    }
}

/// The engine refused an event (`replenish_events_refused_total`).
pub struct EventRefused<'a> {
    /// Why.
    pub error: &'a EngineError,
    /// Whether to log it, for refusals that are not [expected](Self::expected) (the caller
    /// logs a device and reason once a minute).
    pub log: bool,
}

impl EventRefused<'_> {
    /// Refusals of normal operation (redeliveries, a device waiting to be accepted): counted,
    /// not shouted about on every report.
    pub fn expected(error: &EngineError) -> bool {
        matches!(
            error,
            EngineError::Duplicate { .. } | EngineError::NotAccepted(_)
        )
    }
}

impl InternalEvent for EventRefused<'_> {
    fn emit(self) {
        counter!(metric::EVENTS_REFUSED.name, "reason" => self.error.label()).increment(1);
        if Self::expected(self.error) {
            tracing::debug!(error = %self.error, "dropped a duplicate or a waiting device's report");
        } else if self.log {
            tracing::warn!(error = %self.error, "event refused (logged once a minute per device and reason)");
        }
    }
}

/// The ingest path's depth, sampled by the stall detector (`replenish_ingest_pending`,
/// `replenish_mqtt_outbox_depth`).
pub struct IngestDepth {
    /// Messages received and not yet acknowledged.
    pub pending: u64,
    /// Acks and commands waiting for the MQTT connection.
    pub outbox: u64,
}

impl InternalEvent for IngestDepth {
    fn emit(self) {
        gauge!(metric::INGEST_PENDING.name).set(self.pending as f64);
        gauge!(metric::MQTT_OUTBOX_DEPTH.name).set(self.outbox as f64);
    }
}

/// Messages pending and none acknowledged for `after` (`replenish_ingest_stalls_total`,
/// `replenish_ingest_stalled`).
pub struct IngestStalled {
    /// Messages pending.
    pub pending: u64,
    /// How long nothing moved.
    pub after: Duration,
}

impl InternalEvent for IngestStalled {
    fn emit(self) {
        counter!(metric::INGEST_STALLS.name).increment(1);
        gauge!(metric::INGEST_STALLED.name).set(1.0);
        tracing::error!(
            pending = self.pending,
            seconds = self.after.as_secs(),
            "ingest stalled: messages pending and none acknowledged"
        );
    }
}

/// Ingest moves again after a stall (`replenish_ingest_stalled`).
pub struct IngestResumed;

impl InternalEvent for IngestResumed {
    fn emit(self) {
        tracing::info!("ingest moves again");
        gauge!(metric::INGEST_STALLED.name).set(0.0);
    }
}

/// The ingest connection reached the broker (`replenish_mqtt_connections_total`).
pub struct MqttConnected {
    /// Whether the broker kept the session.
    pub session_present: bool,
}

impl InternalEvent for MqttConnected {
    fn emit(self) {
        counter!(metric::MQTT_CONNECTIONS.name).increment(1);
        tracing::info!(
            session_present = self.session_present,
            "connected to the broker"
        );
    }
}

/// Every subscription of the ingest connection was granted (`replenish_mqtt_connected`).
pub struct MqttSubscribed;

impl InternalEvent for MqttSubscribed {
    fn emit(self) {
        gauge!(metric::MQTT_CONNECTED.name).set(1.0);
    }
}

/// The ingest connection was lost (`replenish_mqtt_connected`, `replenish_mqtt_errors_total`).
pub struct MqttConnectionLost<'a> {
    /// Why.
    pub error: &'a dyn Display,
    /// When the next attempt comes.
    pub retry_in: Duration,
}

impl InternalEvent for MqttConnectionLost<'_> {
    fn emit(self) {
        gauge!(metric::MQTT_CONNECTED.name).set(0.0);
        counter!(metric::MQTT_ERRORS.name).increment(1);
        tracing::warn!(error = %self.error, retry_in_ms = self.retry_in.as_millis() as u64, "MQTT connection lost");
    }
}

/// An ack of a lost connection was not sent (`replenish_mqtt_stale_acks_total`): the broker
/// delivers that message again.
pub struct StaleAck;

impl InternalEvent for StaleAck {
    fn emit(self) {
        counter!(metric::MQTT_STALE_ACKS.name).increment(1);
    }
}

/// Acks written to the broker in one write (`replenish_mqtt_acks_per_write`).
pub struct AcksWritten {
    /// How many.
    pub written: usize,
}

impl InternalEvent for AcksWritten {
    fn emit(self) {
        histogram!(metric::MQTT_ACKS_PER_WRITE.name).record(self.written as f64);
    }
}

/// A command was dropped because the outbox is full (`replenish_commands_dropped_total`); the
/// engine sends it again if its ack does not come.
pub struct CommandDropped;

impl InternalEvent for CommandDropped {
    fn emit(self) {
        counter!(metric::COMMANDS_DROPPED.name).increment(1);
        tracing::debug!("command dropped: the outbox is full (the broker is away)");
    }
}

/// Something was queued after the MQTT task stopped (`replenish_mqtt_outbox_closed_total`).
pub struct OutboxClosed;

impl InternalEvent for OutboxClosed {
    fn emit(self) {
        counter!(metric::MQTT_OUTBOX_CLOSED.name).increment(1);
    }
}

/// The embedded broker refused a client (`replenish_broker_refused_total`).
pub struct BrokerRefused<'a> {
    /// Its address.
    pub peer: SocketAddr,
    /// Its client id.
    pub client: &'a str,
    /// Why, as the metric's label.
    pub reason: &'static str,
    /// Why, for people.
    pub detail: &'a str,
    /// Whether to log it (the gate logs a client and reason once a minute).
    pub log: bool,
}

impl InternalEvent for BrokerRefused<'_> {
    fn emit(self) {
        counter!(metric::BROKER_REFUSED.name, "reason" => self.reason).increment(1);
        if self.log {
            tracing::warn!(peer = %self.peer, client = self.client, reason = self.reason, detail = self.detail, "MQTT client refused (logged once a minute per client and reason)");
        }
    }
}
