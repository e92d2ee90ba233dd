//! Events of notifications to the household: deliveries, failures, retries and the queue.

use std::fmt::Display;
use std::time::Duration;

use metrics::counter;

use super::InternalEvent;
use crate::metric;
use crate::notify::Announcement;

/// What became of one attempt to deliver a notification.
pub enum Delivery<'a> {
    /// Delivered.
    Delivered,
    /// Failed for good (not retryable, or out of attempts).
    Failed(&'a dyn Display),
    /// Failed; tried again after `retry_in`.
    Retried {
        /// Why.
        error: &'a dyn Display,
        /// When the next attempt comes.
        retry_in: Duration,
    },
}

/// One attempt to deliver a notification on a channel (`replenish_notifications_total`).
pub struct NotificationAttempt<'a> {
    /// The channel's name.
    pub channel: &'static str,
    /// The notification.
    pub message: &'a Announcement,
    /// Which attempt.
    pub attempt: u32,
    /// What became of it.
    pub delivery: Delivery<'a>,
}

impl InternalEvent for NotificationAttempt<'_> {
    fn emit(self) {
        let (channel, message, attempt) = (self.channel, self.message, self.attempt);
        let (kind, order_id) = (&message.kind, &message.order_id);
        match self.delivery {
            Delivery::Delivered => {
                counter!(metric::NOTIFICATIONS.name, "channel" => channel, "outcome" => "delivered").increment(1);
                tracing::info!(channel, ?kind, ?order_id, attempt, "notification delivered");
            }
            Delivery::Failed(error) => {
                counter!(metric::NOTIFICATIONS.name, "channel" => channel, "outcome" => "failed")
                    .increment(1);
                tracing::warn!(channel, ?kind, ?order_id, attempt, %error, "notification failed");
            }
            Delivery::Retried { error, retry_in } => {
                counter!(metric::NOTIFICATIONS.name, "channel" => channel, "outcome" => "retried")
                    .increment(1);
                tracing::debug!(channel, ?kind, ?order_id, attempt, %error, retry_in_ms = retry_in.as_millis() as u64, "notification attempt failed");
            }
        }
    }
}

/// A notification was dropped: the queue is full (`replenish_notifications_total`, channel
/// `queue`).
pub struct NotificationDropped<'a> {
    /// The notification.
    pub message: &'a Announcement,
}

impl InternalEvent for NotificationDropped<'_> {
    fn emit(self) {
        counter!(metric::NOTIFICATIONS.name, "channel" => "queue", "outcome" => "dropped")
            .increment(1);
        tracing::warn!(kind = ?self.message.kind, order_id = ?self.message.order_id, "notification queue full; dropped");
    }
}

/// Notifications still in flight at shutdown were abandoned (`replenish_notifications_total`,
/// channel `queue`).
pub struct NotificationsAbandoned;

impl InternalEvent for NotificationsAbandoned {
    fn emit(self) {
        counter!(metric::NOTIFICATIONS.name, "channel" => "queue", "outcome" => "abandoned")
            .increment(1);
        tracing::warn!("notifications still in flight at shutdown were abandoned");
    }
}

/// Notifications fell behind the engine's notices (`replenish_notifications_lagged_total`).
pub struct NotificationsLagged {
    /// Notices missed.
    pub missed: u64,
}

impl InternalEvent for NotificationsLagged {
    fn emit(self) {
        counter!(metric::NOTIFICATIONS_LAGGED.name).increment(self.missed);
        tracing::warn!(
            missed = self.missed,
            "notifications fell behind the engine's notices"
        );
    }
}
