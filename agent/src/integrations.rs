//! Starts what tells the world outside: notifications ([`crate::notify`]) and Home Assistant
//! ([`crate::home_assistant`]), over their own MQTT connection ([`crate::mqtt_out`]), as the
//! `[notifications]` and `[home_assistant]` sections say.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{AgentConfig, ConfigError};
use crate::home_assistant::{self, HaSettings};
use crate::mqtt_out::{self, LinkSettings, Publish};
use crate::notify::{self, Channel, MqttChannel, NotifySettings, WebhookChannel};
use crate::runtime::AgentHandle;

/// Why the integrations could not start.
#[derive(Debug, thiserror::Error)]
pub enum IntegrationError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A webhook client could not be built.
    #[error(transparent)]
    Webhook(#[from] notify::WebhookClientError),
}

/// How often Home Assistant states are refreshed without a notice.
const HA_REFRESH: Duration = Duration::from_secs(60);

/// The base of links to the web page: `http.public_url`, else `http://{http_addr}`.
pub fn public_url(config: &AgentConfig, http_addr: SocketAddr) -> String {
    config
        .http
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{http_addr}"))
        .trim_end_matches('/')
        .to_string()
}

/// Starts the configured tasks; all stop on `shutdown` (notifications deliver what is queued
/// first, then the MQTT connection sends what is left and says `offline`). Await the handles in
/// the order given.
pub fn start(
    config: &AgentConfig,
    agent: &AgentHandle,
    http_addr: SocketAddr,
    ingest: &crate::mqtt::IngestHealth,
    shutdown: &watch::Receiver<bool>,
) -> Result<Vec<JoinHandle<()>>, IntegrationError> {
    let household = config.household_id()?.to_string();
    let prefix = config.mqtt.prefix.clone();
    let public_url = public_url(config, http_addr);
    // Discovery off still runs the task: it withdraws what an earlier run announced. So the
    // outgoing MQTT connection is always there.
    let ha = HaSettings {
        prefix: prefix.clone(),
        household: household.clone(),
        ha_prefix: config.home_assistant.prefix.clone(),
        announce: config.home_assistant.discovery,
        control: config.home_assistant.control,
        public_url: public_url.clone(),
        refresh: HA_REFRESH,
    };
    let timeout = Duration::from_secs(config.notifications.timeout_secs);
    let mut channels: Vec<Arc<dyn Channel>> = Vec::new();
    for url in &config.notifications.webhooks {
        channels.push(Arc::new(WebhookChannel::new(url, timeout)?));
    }
    let mut tasks = Vec::new();
    let broker = config.broker_address()?;
    let link_settings = LinkSettings {
        host: broker.host,
        port: broker.port,
        client_id: format!("{}-out", config.client_id()),
        keep_alive: Duration::from_secs(config.mqtt.keep_alive_secs),
        availability_topic: mqtt_out::availability_topic(&prefix, &household),
        subscriptions: ha.subscriptions(),
        max_packet_bytes: config.mqtt.max_packet_bytes,
        connected: ingest.out_connected.clone(),
        login: broker.login.clone(),
    };
    let (publisher, input, link_task) = mqtt_out::spawn(link_settings, shutdown.clone());
    let publisher = Arc::new(publisher) as Arc<dyn Publish>;
    if config.notifications.mqtt {
        channels.push(Arc::new(MqttChannel::new(
            publisher.clone(),
            notify::approvals_topic(&prefix, &household),
            notify::notices_topic(&prefix, &household),
        )));
    }
    if !channels.is_empty() {
        let settings = NotifySettings {
            names: config.names.clone(),
            ..NotifySettings::new(public_url.clone())
        };
        tracing::info!(
            channels = channels.len(),
            "notifications of pending approvals and turns on"
        );
        tasks.push(notify::spawn(
            settings,
            channels,
            agent.clone(),
            shutdown.clone(),
        ));
    }
    if ha.announce {
        tracing::info!(
            prefix = %ha.ha_prefix,
            control = ha.control,
            "Home Assistant discovery on"
        );
    } else {
        tracing::info!(
            prefix = %ha.ha_prefix,
            "Home Assistant discovery off; removing what an earlier run announced"
        );
    }
    tasks.push(home_assistant::spawn(
        ha,
        publisher,
        input,
        agent.clone(),
        shutdown.clone(),
    ));
    tasks.push(link_task);
    Ok(tasks)
}
