//! MQTT ingest with rumqttc: QoS 1, a persistent session, manual acknowledgements (sent only
//! once what a message caused is flushed to storage), re-subscription on every connection and
//! exponential back-off while the broker is away.

use std::time::Duration;

use replenish_protocol::{Ack, Channel, Id, Report, Status, codec, topic};
use rumqttc::{AsyncClient, Event as MqttEvent, MqttOptions, Packet, QoS};
use tokio::sync::watch;

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
}

const CHANNELS: [Channel; 3] = [Channel::Status, Channel::Report, Channel::Ack];
const MAX_BACKOFF: Duration = Duration::from_secs(30);

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

/// Runs the MQTT client until `shutdown` turns true. `subscribed` turns true once every
/// subscription of the current connection is acknowledged, false while disconnected.
pub async fn run(
    settings: MqttSettings,
    agent: AgentHandle,
    subscribed: watch::Sender<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut options = MqttOptions::new(&settings.client_id, &settings.host, settings.port);
    options
        .set_keep_alive(settings.keep_alive)
        .set_clean_session(false)
        .set_manual_acks(true)
        .set_max_packet_size(
            replenish_protocol::MAX_PAYLOAD * 2,
            replenish_protocol::MAX_PAYLOAD * 2,
        );
    let (client, mut eventloop) = AsyncClient::new(options, 256);
    let filters: Vec<String> = CHANNELS
        .iter()
        .map(|c| topic::filter(&settings.prefix, &settings.household, *c))
        .collect();
    let mut backoff = Duration::from_millis(100);
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
                backoff = Duration::from_millis(100);
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
                let client = client.clone();
                let ack: crate::runtime::Acker = Box::new(move || {
                    if let Err(error) = client.try_ack(&publish) {
                        tracing::warn!(%error, "cannot acknowledge; the broker will redeliver");
                    }
                });
                if agent.incoming(incoming, Some(ack)).await.is_err() {
                    break;
                }
            }
            Ok(_) => {}
            Err(error) => {
                subscribed.send_replace(false);
                metrics::counter!("replenish_mqtt_errors_total").increment(1);
                tracing::warn!(%error, retry_in_ms = backoff.as_millis() as u64, "MQTT connection lost");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = crate::runtime::stopped(&mut shutdown) => break,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    let _ = client.try_disconnect();
    tracing::info!("MQTT client stopped");
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
