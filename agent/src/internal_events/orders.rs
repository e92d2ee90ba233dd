//! Events of what the engine asks the runtime to do: orders sent to a shop, commands to
//! devices, the pairing list, notices to the household.

use std::fmt::Display;

use metrics::counter;

use super::InternalEvent;
use crate::engine::Notice;
use crate::metric;

/// An order is being sent to its shop (`replenish_order_attempts_total`).
pub struct OrderPlacing<'a> {
    /// The agent's order id.
    pub order: &'a str,
    /// Its idempotency key.
    pub key: &'a str,
    /// Which attempt this is.
    pub attempt: u32,
}

impl InternalEvent for OrderPlacing<'_> {
    fn emit(self) {
        counter!(metric::ORDER_ATTEMPTS.name).increment(1);
        tracing::info!(order = %self.order, key = %self.key, attempt = self.attempt, "placing order");
    }
}

/// Placing an order failed (`replenish_order_failures_total`).
pub struct OrderPlacementFailed<'a> {
    /// The agent's order id.
    pub order: &'a str,
    /// Why.
    pub error: &'a dyn Display,
    /// Whether it is tried again.
    pub retryable: bool,
}

impl InternalEvent for OrderPlacementFailed<'_> {
    fn emit(self) {
        let retryable = if self.retryable { "true" } else { "false" };
        counter!(metric::ORDER_FAILURES.name, "retryable" => retryable).increment(1);
        tracing::warn!(order_id = %self.order, error = %self.error, retryable = self.retryable, "placing the order failed");
    }
}

/// A command was queued for a device (`replenish_commands_sent_total`).
pub struct CommandSent<'a> {
    /// The device.
    pub device: &'a str,
    /// The command's id.
    pub id: u32,
}

impl InternalEvent for CommandSent<'_> {
    fn emit(self) {
        counter!(metric::COMMANDS_SENT.name).increment(1);
        tracing::debug!(device = %self.device, id = self.id, "sending a command");
    }
}

/// A command could not be sent: no MQTT connection is configured
/// (`replenish_commands_unsent_total`).
pub struct CommandUnsent<'a> {
    /// The device.
    pub device: &'a str,
}

impl InternalEvent for CommandUnsent<'_> {
    fn emit(self) {
        counter!(metric::COMMANDS_UNSENT.name).increment(1);
        tracing::debug!(device = %self.device, "no MQTT connection to send a command on");
    }
}

/// A device waiting to join was dropped: the waiting list is full
/// (`replenish_pairing_dropped_total`).
pub struct PairingDropped<'a> {
    /// The device.
    pub device: &'a str,
}

impl InternalEvent for PairingDropped<'_> {
    fn emit(self) {
        counter!(metric::PAIRING_DROPPED.name).increment(1);
        tracing::warn!(device = %self.device, "dropped a device waiting to join: the waiting list is full");
    }
}

/// The engine told the household something (`replenish_notices_total`).
pub struct NoticeRaised<'a> {
    /// The notice.
    pub notice: &'a Notice,
}

impl InternalEvent for NoticeRaised<'_> {
    fn emit(self) {
        let notice = self.notice;
        counter!(metric::NOTICES.name, "kind" => format!("{:?}", notice.kind)).increment(1);
        tracing::info!(kind = ?notice.kind, subject = %notice.subject, "{}", notice.text);
    }
}
