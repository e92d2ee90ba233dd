//! Notifications: a pending approval (and an order scheduled in `notify` mode) is told to the
//! household on MQTT (`{prefix}/{household}/agent/approvals`) and POSTed to every configured
//! webhook as an ntfy-compatible request, with a link to approve it. Turns a person must know
//! about go the same ways (MQTT: `{prefix}/{household}/agent/notices`): nothing in stock at any
//! shop, a pickup ready or still waiting, a shop's cancellation or substitution, an order that
//! could not be placed.
//!
//! A task follows the engine's notices; it never blocks the engine: notices come over the
//! broadcast channel (a lag is logged and counted) and deliveries wait in a bounded queue (a
//! full queue drops the message, logged and counted). Every delivery has a timeout and a few
//! retries with back-off, and ends in `replenish_notifications_total{channel, outcome}`.
//! Channels sit behind the small [`Channel`] trait; [`MemoryChannel`] is its in-memory twin.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;

use crate::clock::UnixMs;
use crate::engine::household::PendingKind;
use crate::engine::order::{Order, OrderState};
use crate::engine::words::{Names, announcement_title, order_names};
use crate::engine::{Notice, NoticeKind};
use crate::internal_events::{
    Delivery, NotificationAttempt, NotificationDropped, NotificationsAbandoned,
    NotificationsLagged, emit,
};
use crate::mqtt_out::{Outgoing, Publish};
use crate::runtime::AgentHandle;

/// What is announced: a pending approval or scheduled order, or a turn a person must know about
/// ([`ATTENTION`]). The order's fields are there when the notice is about an order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Announcement {
    /// `approval_requested`, `order_scheduled`, or one of [`ATTENTION`].
    pub kind: NoticeKind,
    /// The agent's order id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    /// The appliance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Its slot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot: Option<String>,
    /// The consumable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumable: Option<String>,
    /// Total in cents.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_cents: Option<u64>,
    /// Its first line, for a push notification's title: `Approve a reorder of Coffee beans?`
    /// (display names, as every sentence; docs/words.md).
    pub title: String,
    /// A readable sentence.
    pub text: String,
    /// Where to act: the order's page (`{public_url}/orders/{order_id}`), else the home page.
    pub url: String,
    /// When the approval takes its default (or the scheduled order is placed).
    pub expires_at_ms: Option<UnixMs>,
    /// When the notice was raised.
    pub at_ms: UnixMs,
}

/// Notices announced besides approvals: turns a person must know about or act on.
pub const ATTENTION: [NoticeKind; 6] = [
    NoticeKind::NothingInStock,
    NoticeKind::PickupReady,
    NoticeKind::CancelledByShop,
    NoticeKind::SubstitutedByShop,
    NoticeKind::OrderFailed,
    NoticeKind::CancelRefused,
];

impl Announcement {
    /// Whether it goes to the approvals topic (else the notices topic).
    pub fn is_approval(&self) -> bool {
        matches!(
            self.kind,
            NoticeKind::ApprovalRequested | NoticeKind::OrderScheduled
        )
    }
}

/// Builds the announcement of an [`ATTENTION`] notice (`order`: the order it is about, if
/// any), or `None` for any other notice.
pub fn attention_message(
    notice: &Notice,
    order: Option<&Order>,
    public_url: &str,
    names: &Names,
) -> Option<Announcement> {
    if !ATTENTION.contains(&notice.kind) {
        return None;
    }
    let what = order.map(|o| order_names(names, o));
    Some(Announcement {
        kind: notice.kind,
        title: announcement_title(notice.kind, what.as_deref()),
        order_id: order.map(|o| o.id.to_string()),
        device: order.map(|o| o.first_line().device.to_string()),
        slot: order.map(|o| o.first_line().slot.to_string()),
        consumable: order.map(|o| o.first_line().consumable.to_string()),
        total_cents: order.map(|o| o.total().minor),
        text: notice.text.clone(),
        url: match order {
            Some(order) => order_url(public_url, &order.id),
            None => format!("{}/", public_url.trim_end_matches('/')),
        },
        expires_at_ms: None,
        at_ms: notice.at,
    })
}

/// Builds the message for a notice about `order`, or `None` when the notice is not one to
/// announce or the order no longer waits.
pub fn approval_message(
    notice: &Notice,
    order: &Order,
    public_url: &str,
    names: &Names,
) -> Option<Announcement> {
    if !matches!(
        notice.kind,
        NoticeKind::ApprovalRequested | NoticeKind::OrderScheduled
    ) || order.state != OrderState::Proposed
    {
        return None;
    }
    let pending = order.pending.as_ref();
    let expected = match notice.kind {
        NoticeKind::OrderScheduled => PendingKind::CancelWindow,
        _ => PendingKind::Approval,
    };
    if pending.is_some_and(|p| p.kind != expected) {
        return None;
    }
    Some(Announcement {
        kind: notice.kind,
        title: announcement_title(notice.kind, Some(&order_names(names, order))),
        order_id: Some(order.id.to_string()),
        device: Some(order.first_line().device.to_string()),
        slot: Some(order.first_line().slot.to_string()),
        consumable: Some(order.first_line().consumable.to_string()),
        total_cents: Some(order.total().minor),
        text: notice.text.clone(),
        url: order_url(public_url, &order.id),
        expires_at_ms: pending.and_then(|p| p.expires_at),
        at_ms: notice.at,
    })
}

/// The page of an order: `{public_url}/orders/{order_id}`.
pub fn order_url(public_url: &str, order_id: &str) -> String {
    format!("{}/orders/{order_id}", public_url.trim_end_matches('/'))
}

/// The MQTT topic of approval messages: `{prefix}/{household}/agent/approvals`.
pub fn approvals_topic(prefix: &str, household: &str) -> String {
    format!(
        "{}/approvals",
        replenish_protocol::topic::agent_root(prefix, household)
    )
}

/// The MQTT topic of the other announcements: `{prefix}/{household}/agent/notices`.
pub fn notices_topic(prefix: &str, household: &str) -> String {
    format!("{prefix}/{household}/agent/notices")
}

/// Why one delivery attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth trying again (a timeout, a refused connection, a 5xx, 408 or 429).
    #[error("{0} (will retry)")]
    Retryable(String),
    /// Trying again would fail the same way (a 4xx, a bad header).
    #[error("{0}")]
    Permanent(String),
}

/// One way of telling the household.
#[async_trait::async_trait]
pub trait Channel: Send + Sync {
    /// A label for metrics and logs: `mqtt`, `webhook`, `memory`.
    fn name(&self) -> &'static str;
    /// Delivers one message, once.
    async fn send(&self, message: &Announcement) -> Result<(), SendError>;
}

/// Publishes messages as JSON (QoS 1, not retained): approvals on one topic, the other
/// announcements on another.
pub struct MqttChannel {
    publisher: Arc<dyn Publish>,
    approvals: String,
    notices: String,
}

impl MqttChannel {
    /// A channel publishing approvals on `approvals` and the rest on `notices`.
    pub fn new(publisher: Arc<dyn Publish>, approvals: String, notices: String) -> Self {
        Self {
            publisher,
            approvals,
            notices,
        }
    }
}

#[async_trait::async_trait]
impl Channel for MqttChannel {
    fn name(&self) -> &'static str {
        "mqtt"
    }

    async fn send(&self, message: &Announcement) -> Result<(), SendError> {
        let payload =
            serde_json::to_vec(message).map_err(|e| SendError::Permanent(e.to_string()))?;
        self.publisher
            .publish(Outgoing {
                topic: if message.is_approval() {
                    self.approvals.clone()
                } else {
                    self.notices.clone()
                },
                payload,
                retain: false,
            })
            .map_err(|e| SendError::Retryable(e.to_string()))
    }
}

/// POSTs an ntfy-compatible request: the text as body, `Title`, `Click` (the link), `Tags` and
/// an `Actions` header with a view action to the link. An ntfy topic URL works as is.
pub struct WebhookChannel {
    client: reqwest::Client,
    url: String,
}

/// The webhook client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the webhook client: {0}")]
pub struct WebhookClientError(String);

impl WebhookChannel {
    /// A channel POSTing to `url` with a per-request `timeout`.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, WebhookClientError> {
        crate::commerce::ensure_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("replenish-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| WebhookClientError(e.to_string()))?;
        Ok(Self {
            client,
            url: url.to_string(),
        })
    }
}

/// A header value as ntfy reads it: printable ASCII as it is, anything else (a display name
/// with an umlaut) as RFC 2047 encoded words, `=?UTF-8?B?…?=`, which ntfy decodes: HTTP
/// headers carry no UTF-8, and the request would be refused before it left.
pub fn header_text(text: &str) -> String {
    use base64::Engine as _;
    if text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return text.to_string();
    }
    let encode = |chunk: &str| {
        format!(
            "=?UTF-8?B?{}?=",
            base64::engine::general_purpose::STANDARD.encode(chunk)
        )
    };
    // An encoded word is at most 75 characters: 45 bytes of text, 60 in base64, and its frame.
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in text.chars() {
        if chunk.len() + c.len_utf8() > 45 {
            words.push(encode(&chunk));
            chunk.clear();
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        words.push(encode(&chunk));
    }
    words.join(" ")
}

/// The ntfy headers of a message, as `(name, value)`.
pub fn ntfy_headers(message: &Announcement) -> Vec<(&'static str, String)> {
    let (tags, action) = match message.kind {
        NoticeKind::OrderScheduled => ("shopping_cart,hourglass", "Review"),
        NoticeKind::ApprovalRequested => ("shopping_cart,question", "Approve"),
        NoticeKind::PickupReady => ("package", "Open"),
        _ => ("warning", "Open"),
    };
    vec![
        ("Title", header_text(&message.title)),
        ("Click", message.url.clone()),
        ("Tags", tags.to_string()),
        ("Actions", format!("view, {action}, {}", message.url)),
    ]
}

#[async_trait::async_trait]
impl Channel for WebhookChannel {
    fn name(&self) -> &'static str {
        "webhook"
    }

    async fn send(&self, message: &Announcement) -> Result<(), SendError> {
        let mut request = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(message.text.clone());
        for (name, value) in ntfy_headers(message) {
            let value = reqwest::header::HeaderValue::from_str(&value)
                .map_err(|e| SendError::Permanent(format!("header {name}: {e}")))?;
            request = request.header(name, value);
        }
        let response = request
            .send()
            .await
            .map_err(|e| SendError::Retryable(e.to_string()))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else if status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429 {
            Err(SendError::Retryable(format!("HTTP {status}")))
        } else {
            Err(SendError::Permanent(format!("HTTP {status}")))
        }
    }
}

/// The in-memory twin of a channel: records messages, and fails as scripted.
#[derive(Debug, Default)]
pub struct MemoryChannel {
    sent: Mutex<Vec<Announcement>>,
    script: Mutex<VecDeque<SendError>>,
    attempts: Mutex<u32>,
}

impl MemoryChannel {
    /// The next attempts fail with these errors, in order; later ones succeed.
    pub fn fail_next(&self, errors: impl IntoIterator<Item = SendError>) {
        self.script
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(errors);
    }

    /// Messages delivered so far.
    pub fn sent(&self) -> Vec<Announcement> {
        self.sent.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Attempts so far, failed ones included.
    pub fn attempts(&self) -> u32 {
        *self.attempts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait::async_trait]
impl Channel for MemoryChannel {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn send(&self, message: &Announcement) -> Result<(), SendError> {
        *self.attempts.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        if let Some(error) = self
            .script
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()
        {
            return Err(error);
        }
        self.sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(message.clone());
        Ok(())
    }
}

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// Wait before the second attempt; doubled each time.
    pub first_backoff: Duration,
    /// Longest wait.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 4,
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// How a delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered after this many attempts.
    Delivered(u32),
    /// Given up after this many attempts, with the last error.
    Failed(u32, SendError),
}

/// Delivers `message` over `channel`, retrying retryable failures with exponential back-off.
pub async fn deliver(channel: &dyn Channel, message: &Announcement, retry: RetryPolicy) -> Outcome {
    let mut backoff = retry.first_backoff;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let error = match channel.send(message).await {
            Ok(()) => {
                emit(NotificationAttempt {
                    channel: channel.name(),
                    message,
                    attempt,
                    delivery: Delivery::Delivered,
                });
                return Outcome::Delivered(attempt);
            }
            Err(error) => error,
        };
        let retryable = matches!(error, SendError::Retryable(_));
        if !retryable || attempt >= retry.attempts.max(1) {
            emit(NotificationAttempt {
                channel: channel.name(),
                message,
                attempt,
                delivery: Delivery::Failed(&error),
            });
            return Outcome::Failed(attempt, error);
        }
        emit(NotificationAttempt {
            channel: channel.name(),
            message,
            attempt,
            delivery: Delivery::Retried {
                error: &error,
                retry_in: backoff,
            },
        });
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(retry.max_backoff);
    }
}

/// The bounded queue between the notice follower and the delivery worker.
#[derive(Debug, Clone)]
pub struct Queue {
    tx: mpsc::Sender<Announcement>,
}

impl Queue {
    /// A queue holding at most `capacity` messages, and its receiving end.
    pub fn new(capacity: usize) -> (Self, mpsc::Receiver<Announcement>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (Self { tx }, rx)
    }

    /// Queues without waiting; false (logged and counted) when full or closed.
    pub fn push(&self, message: Announcement) -> bool {
        match self.tx.try_send(message) {
            Ok(()) => true,
            Err(error) => {
                let message = match &error {
                    mpsc::error::TrySendError::Full(m) | mpsc::error::TrySendError::Closed(m) => m,
                };
                emit(NotificationDropped { message });
                false
            }
        }
    }
}

/// Settings of the notification task.
#[derive(Debug, Clone)]
pub struct NotifySettings {
    /// Base of links: `http://host:port`, no trailing slash needed.
    pub public_url: String,
    /// Retries per delivery.
    pub retry: RetryPolicy,
    /// Messages waiting for delivery at most.
    pub queue: usize,
    /// After the shutdown signal, how long queued deliveries may still take.
    pub drain_timeout: Duration,
    /// Display names by id (`[names]`), for titles.
    pub names: Names,
}

impl NotifySettings {
    /// Defaults with links to `public_url`.
    pub fn new(public_url: String) -> Self {
        Self {
            public_url,
            retry: RetryPolicy::default(),
            queue: 64,
            drain_timeout: Duration::from_secs(5),
            names: Names::new(),
        }
    }
}

/// Starts the task: it follows `agent`'s notices and delivers each announcement over every
/// channel (concurrently), until `shutdown`; then it delivers what is queued, for at most
/// `drain_timeout`.
pub fn spawn(
    settings: NotifySettings,
    channels: Vec<Arc<dyn Channel>>,
    agent: AgentHandle,
    shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let notices = agent.notices();
    tokio::spawn(run(settings, channels, agent, notices, shutdown))
}

async fn run(
    settings: NotifySettings,
    channels: Vec<Arc<dyn Channel>>,
    agent: AgentHandle,
    mut notices: broadcast::Receiver<Notice>,
    mut shutdown: watch::Receiver<bool>,
) {
    let (queue, rx) = Queue::new(settings.queue);
    let retry = settings.retry;
    let mut worker = tokio::spawn(work(rx, channels, retry));
    loop {
        let notice = tokio::select! {
            notice = notices.recv() => notice,
            _ = crate::runtime::stopped(&mut shutdown) => break,
        };
        let notice = match notice {
            Ok(notice) => notice,
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                emit(NotificationsLagged { missed });
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => break,
        };
        if ATTENTION.contains(&notice.kind) {
            // Most are about an order; nothing in stock is about a slot.
            let order = match agent.order(&notice.subject).await {
                Ok(order) => order,
                Err(_) => break,
            };
            if let Some(message) = attention_message(
                &notice,
                order.as_ref(),
                &settings.public_url,
                &settings.names,
            ) {
                queue.push(message);
            }
            continue;
        }
        if !matches!(
            notice.kind,
            NoticeKind::ApprovalRequested | NoticeKind::OrderScheduled
        ) {
            continue;
        }
        let order = match agent.order(&notice.subject).await {
            Ok(Some(order)) => order,
            Ok(None) => {
                tracing::warn!(order_id = %notice.subject, "notice about an unknown order");
                continue;
            }
            Err(_) => break,
        };
        match approval_message(&notice, &order, &settings.public_url, &settings.names) {
            Some(message) => {
                queue.push(message);
            }
            None => {
                tracing::debug!(order_id = %order.id, "the order no longer waits; not announced")
            }
        }
    }
    drop(queue);
    if tokio::time::timeout(settings.drain_timeout, &mut worker)
        .await
        .is_err()
    {
        worker.abort();
        emit(NotificationsAbandoned);
    }
    tracing::info!("notifications stopped");
}

async fn work(
    mut rx: mpsc::Receiver<Announcement>,
    channels: Vec<Arc<dyn Channel>>,
    retry: RetryPolicy,
) {
    while let Some(message) = rx.recv().await {
        let message = Arc::new(message);
        let mut deliveries = tokio::task::JoinSet::new();
        for channel in &channels {
            let (channel, message) = (channel.clone(), message.clone());
            deliveries.spawn(async move { deliver(&*channel, &message, retry).await });
        }
        while deliveries.join_next().await.is_some() {}
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::engine::household::{ExpiryDefault, Pending};
    use crate::mqtt_out::MemoryPublisher;
    use replenish_protocol::{Id, Unit};

    fn order() -> Order {
        let first = crate::engine::order::OrderItem {
            device: replenish_protocol::DeviceId::new("coffee").unwrap(),
            slot: Id::new("beans").unwrap(),
            consumable: Id::new("coffee_beans").unwrap(),
            sku: "BEANS-1KG".into(),
            packs: 2,
            pack_size: 1000.0,
            unit: Unit::G,
            total: replenish_commerce::Money::new(2598, replenish_commerce::Currency::EUR),
            reason: "low".into(),
            outlook: None,
        };
        let key = "k".into();
        let mut order = Order::proposed(
            crate::engine::order::OrderId::numbered(7),
            key,
            first,
            Vec::new(),
            "shop".into(),
            1_000,
        );
        order.pending = Some(Pending {
            kind: PendingKind::Approval,
            why: "mode approve".into(),
            prompt_at: 1_000,
            prompted_at: Some(1_000),
            expires_at: Some(86_401_000),
            on_expiry: ExpiryDefault::Skip,
        });
        order
    }

    fn notice(kind: NoticeKind) -> Notice {
        Notice {
            at: 1_000,
            kind,
            subject: "o-000007".into(),
            text: "order o-000007 waits for approval".into(),
        }
    }

    fn message() -> Announcement {
        approval_message(
            &notice(NoticeKind::ApprovalRequested),
            &order(),
            "https://home.example/",
            &Names::new(),
        )
        .unwrap()
    }

    #[test]
    fn a_prompt_becomes_a_message_with_a_link_and_its_expiry() {
        let m = message();
        assert_eq!(m.url, "https://home.example/orders/o-000007");
        assert_eq!(m.expires_at_ms, Some(86_401_000));
        assert_eq!(m.consumable.as_deref(), Some("coffee_beans"));
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["kind"], "approval_requested");
        assert_eq!(json["order_id"], "o-000007");
        assert_eq!(json["text"], "order o-000007 waits for approval");
        let headers = ntfy_headers(&m);
        assert!(headers.contains(&("Click", m.url.clone())));
        assert!(headers.contains(&(
            "Actions",
            "view, Approve, https://home.example/orders/o-000007".to_string()
        )));
        assert!(headers.contains(&("Title", "Approve a reorder of Coffee beans?".to_string())));
    }

    /// The approval message documented in `docs/home-assistant.md` has exactly these fields.
    #[test]
    fn the_documented_message_has_the_same_fields() {
        let doc = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/home-assistant.md"
        ))
        .unwrap();
        let documented: serde_json::Value = doc
            .split("```json")
            .filter_map(|b| serde_json::from_str(b.split("```").next().unwrap()).ok())
            .find(|v: &serde_json::Value| v.get("order_id").is_some())
            .expect("an approval message in the doc");
        let keys = |v: &serde_json::Value| {
            v.as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect::<Vec<String>>()
        };
        let actual = serde_json::to_value(message()).unwrap();
        assert_eq!(keys(&documented), keys(&actual));
        assert_eq!(documented["kind"], actual["kind"]);
    }

    #[test]
    fn other_notices_and_decided_orders_are_not_announced() {
        assert!(
            approval_message(
                &notice(NoticeKind::OrderPlaced),
                &order(),
                "http://x",
                &Names::new()
            )
            .is_none()
        );
        let mut approved = order();
        approved.state = OrderState::Approved;
        assert!(
            approval_message(
                &notice(NoticeKind::ApprovalRequested),
                &approved,
                "http://x",
                &Names::new()
            )
            .is_none()
        );
        // A cancel window is announced as scheduled, not as a prompt.
        let mut scheduled = order();
        if let Some(p) = scheduled.pending.as_mut() {
            p.kind = PendingKind::CancelWindow;
        }
        assert!(
            approval_message(
                &notice(NoticeKind::ApprovalRequested),
                &scheduled,
                "http://x",
                &Names::new()
            )
            .is_none()
        );
        let m = approval_message(
            &notice(NoticeKind::OrderScheduled),
            &scheduled,
            "http://x",
            &Names::new(),
        )
        .unwrap();
        assert_eq!(m.title, "Reorder of Coffee beans scheduled");
    }

    #[test]
    fn turns_a_person_must_know_about_are_announced_with_a_link() {
        let mut n = notice(NoticeKind::NothingInStock);
        n.subject = "coffee/beans".into();
        n.text = "coffee_beans is out of stock at every shop".into();
        let m = attention_message(&n, None, "https://home.example/", &Names::new()).unwrap();
        assert_eq!(m.url, "https://home.example/");
        assert_eq!(m.title, "Out of stock at every shop");
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["kind"], "nothing_in_stock");
        assert!(json.get("order_id").is_none(), "{json}");
        assert!(ntfy_headers(&m).contains(&("Tags", "warning".to_string())));

        let m = attention_message(
            &notice(NoticeKind::CancelledByShop),
            Some(&order()),
            "https://home.example",
            &Names::new(),
        )
        .unwrap();
        assert_eq!(m.url, "https://home.example/orders/o-000007");
        assert_eq!(m.title, "The shop cancelled Coffee beans");
        for quiet in [NoticeKind::OrderPlaced, NoticeKind::ApprovalRequested] {
            assert!(
                attention_message(&notice(quiet), Some(&order()), "x", &Names::new()).is_none()
            );
        }
    }

    #[test]
    fn titles_use_the_households_names_and_reach_ntfy_intact() {
        let names = Names::from([(
            "coffee_beans".to_string(),
            "Röstkaffee für die Siebträgermaschine".to_string(),
        )]);
        let m = approval_message(
            &notice(NoticeKind::ApprovalRequested),
            &order(),
            "https://home.example/",
            &names,
        )
        .unwrap();
        assert_eq!(
            m.title,
            "Approve a reorder of Röstkaffee für die Siebträgermaschine?"
        );
        let (_, header) = ntfy_headers(&m)
            .into_iter()
            .find(|(name, _)| *name == "Title")
            .unwrap();
        assert!(
            reqwest::header::HeaderValue::from_str(&header).is_ok(),
            "{header}"
        );
        // Encoded words of at most 75 characters, which read back as the title.
        use base64::Engine as _;
        let mut decoded = Vec::new();
        for word in header.split(' ') {
            assert!(word.len() <= 75, "{word}");
            let inner = word
                .strip_prefix("=?UTF-8?B?")
                .and_then(|w| w.strip_suffix("?="))
                .unwrap();
            decoded.extend(
                base64::engine::general_purpose::STANDARD
                    .decode(inner)
                    .unwrap(),
            );
        }
        assert_eq!(String::from_utf8(decoded).unwrap(), m.title);
        assert_eq!(
            header_text("Ready to collect: Eggs"),
            "Ready to collect: Eggs"
        );
    }

    fn quick() -> RetryPolicy {
        RetryPolicy {
            attempts: 3,
            first_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
        }
    }

    #[tokio::test]
    async fn retryable_failures_are_retried_and_permanent_ones_are_not() {
        let channel = MemoryChannel::default();
        channel.fail_next([
            SendError::Retryable("503".into()),
            SendError::Retryable("timeout".into()),
        ]);
        assert_eq!(
            deliver(&channel, &message(), quick()).await,
            Outcome::Delivered(3)
        );
        assert_eq!(channel.sent().len(), 1);

        let channel = MemoryChannel::default();
        channel.fail_next([SendError::Permanent("404".into())]);
        assert!(matches!(
            deliver(&channel, &message(), quick()).await,
            Outcome::Failed(1, SendError::Permanent(_))
        ));
        assert_eq!(channel.attempts(), 1);

        let channel = MemoryChannel::default();
        channel.fail_next((0..5).map(|_| SendError::Retryable("down".into())));
        assert!(matches!(
            deliver(&channel, &message(), quick()).await,
            Outcome::Failed(3, SendError::Retryable(_))
        ));
        assert!(channel.sent().is_empty());
    }

    #[tokio::test]
    async fn a_full_queue_drops_instead_of_waiting() {
        let (queue, mut rx) = Queue::new(2);
        assert!(queue.push(message()));
        assert!(queue.push(message()));
        assert!(
            !queue.push(message()),
            "the third must be dropped, not awaited"
        );
        assert!(rx.recv().await.is_some());
        assert!(queue.push(message()));
    }

    #[tokio::test]
    async fn the_mqtt_channel_publishes_json_not_retained() {
        let publisher = Arc::new(MemoryPublisher::default());
        let channel = MqttChannel::new(
            publisher.clone(),
            approvals_topic("replenish/v1", "home"),
            notices_topic("replenish/v1", "home"),
        );
        channel.send(&message()).await.unwrap();
        let pickup = Notice {
            at: 2_000,
            kind: NoticeKind::PickupReady,
            subject: "o-000007".into(),
            text: "order o-000007 ready to collect at Corner Shop".into(),
        };
        let ready = attention_message(
            &pickup,
            Some(&order()),
            "https://home.example",
            &Names::new(),
        )
        .unwrap();
        channel.send(&ready).await.unwrap();
        let sent = publisher.sent();
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0].topic, "replenish/v1/home/agent/approvals");
        assert_eq!(sent[1].topic, "replenish/v1/home/agent/notices");
        assert!(!sent[0].retain);
        let json: serde_json::Value = serde_json::from_slice(&sent[0].payload).unwrap();
        assert_eq!(json["url"], "https://home.example/orders/o-000007");
        assert_eq!(json["expires_at_ms"], 86_401_000);
    }

    /// A real HTTP server on a port bound to 0 that records requests and answers with the
    /// scripted statuses (then 200).
    async fn recording_server(
        statuses: Vec<u16>,
    ) -> (String, Arc<Mutex<Vec<(axum::http::HeaderMap, String)>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(VecDeque::from(statuses)));
        let record = seen.clone();
        let app = axum::Router::new().route(
            "/alerts",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
                let (record, script) = (record.clone(), script.clone());
                async move {
                    record.lock().unwrap().push((headers, body));
                    let status = script.lock().unwrap().pop_front().unwrap_or(200);
                    axum::http::StatusCode::from_u16(status).unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}/alerts"), seen)
    }

    #[tokio::test]
    async fn the_webhook_posts_an_ntfy_request_and_retries_a_503() {
        let (url, seen) = recording_server(vec![503]).await;
        let channel = WebhookChannel::new(&url, Duration::from_secs(5)).unwrap();
        assert_eq!(
            deliver(&channel, &message(), quick()).await,
            Outcome::Delivered(2)
        );
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2, "one 503, one retry");
        let (headers, body) = &seen[1];
        assert_eq!(body, "order o-000007 waits for approval");
        assert_eq!(headers["click"], "https://home.example/orders/o-000007");
        assert_eq!(headers["title"], "Approve a reorder of Coffee beans?");
        assert_eq!(headers["tags"], "shopping_cart,question");
        assert_eq!(
            headers["actions"],
            "view, Approve, https://home.example/orders/o-000007"
        );
    }

    #[tokio::test]
    async fn the_webhook_gives_up_on_a_400_and_on_a_dead_server() {
        let (url, seen) = recording_server(vec![400]).await;
        let channel = WebhookChannel::new(&url, Duration::from_secs(5)).unwrap();
        assert!(matches!(
            deliver(&channel, &message(), quick()).await,
            Outcome::Failed(1, SendError::Permanent(_))
        ));
        assert_eq!(seen.lock().unwrap().len(), 1);

        // Nothing listens on a port just released.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let channel = WebhookChannel::new(
            &format!("http://127.0.0.1:{port}/x"),
            Duration::from_secs(2),
        )
        .unwrap();
        assert!(matches!(
            deliver(&channel, &message(), quick()).await,
            Outcome::Failed(3, SendError::Retryable(_))
        ));
    }
}
