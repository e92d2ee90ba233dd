//! Events of the agent's own MQTT connection (Home Assistant, notifications): its state,
//! what it could not queue or take in.

use std::fmt::Display;
use std::time::Duration;

use metrics::{counter, gauge};

use super::InternalEvent;
use crate::metric;

/// The agent's own connection reached the broker (`replenish_mqtt_out_connected`).
pub struct OutConnected;

impl InternalEvent for OutConnected {
    fn emit(self) {
        gauge!(metric::MQTT_OUT_CONNECTED.name).set(1.0);
        tracing::info!("connected to the broker");
    }
}

/// The agent's own connection was lost (`replenish_mqtt_out_connected`,
/// `replenish_mqtt_out_errors_total`).
pub struct OutConnectionLost<'a> {
    /// Why.
    pub error: &'a dyn Display,
    /// When the next attempt comes.
    pub retry_in: Duration,
}

impl InternalEvent for OutConnectionLost<'_> {
    fn emit(self) {
        gauge!(metric::MQTT_OUT_CONNECTED.name).set(0.0);
        counter!(metric::MQTT_OUT_ERRORS.name).increment(1);
        tracing::warn!(error = %self.error, retry_in_ms = self.retry_in.as_millis() as u64, "MQTT connection lost");
    }
}

/// The agent's own connection was closed on the way down (`replenish_mqtt_out_connected`).
pub struct OutClosed;

impl InternalEvent for OutClosed {
    fn emit(self) {
        gauge!(metric::MQTT_OUT_CONNECTED.name).set(0.0);
        tracing::info!("outgoing MQTT connection closed");
    }
}

/// A message for the agent's integrations was dropped: their queue is full
/// (`replenish_mqtt_out_inbound_dropped_total`).
pub struct OutInboundDropped<'a> {
    /// Its topic.
    pub topic: &'a str,
}

impl InternalEvent for OutInboundDropped<'_> {
    fn emit(self) {
        counter!(metric::MQTT_OUT_INBOUND_DROPPED.name).increment(1);
        tracing::warn!(topic = %self.topic, "inbound queue full; message dropped");
    }
}

/// A publish could not be queued (`replenish_mqtt_out_dropped_total`).
pub struct OutPublishDropped<'a> {
    /// Its topic.
    pub topic: &'a str,
    /// Why.
    pub error: &'a dyn Display,
}

impl InternalEvent for OutPublishDropped<'_> {
    fn emit(self) {
        counter!(metric::MQTT_OUT_DROPPED.name).increment(1);
        tracing::warn!(topic = %self.topic, error = %self.error, "cannot queue a publish; dropped");
    }
}
