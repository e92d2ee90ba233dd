//! Every metric the agent exports, defined once: its name, kind, labels and meaning. Only the
//! [internal events](crate::internal_events) move them, through these constants
//! (`counter!(metric::ORDER_ATTEMPTS.name)`); the Prometheus exporter gives each its help text,
//! and docs/operations.md's table is this list rendered ([`markdown_table`];
//! `agent/tests/docs_match_code.rs` checks all three).

/// What kind of series a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Samples in fixed buckets.
    Histogram,
}

/// One exported metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    /// Its Prometheus name.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: Kind,
    /// Its labels and their values, as the docs show them (empty: none).
    pub labels: &'static str,
    /// What it counts, for people.
    pub help: &'static str,
}

/// `replenish_telemetry_received_total`: valid MQTT messages handed to the engine.
pub const TELEMETRY_RECEIVED: Metric = Metric {
    name: "replenish_telemetry_received_total",
    kind: Kind::Counter,
    labels: "",
    help: "valid MQTT messages handed to the engine",
};
/// `replenish_telemetry_refused_total`: messages dropped before the engine.
pub const TELEMETRY_REFUSED: Metric = Metric {
    name: "replenish_telemetry_refused_total",
    kind: Kind::Counter,
    labels: "`reason`: bad_topic, oversized, malformed, invalid",
    help: "messages dropped before the engine",
};
/// `replenish_events_refused_total`: events the engine refused.
pub const EVENTS_REFUSED: Metric = Metric {
    name: "replenish_events_refused_total",
    kind: Kind::Counter,
    labels: "`reason`: unknown_device, unknown_slot, duplicate, too_old, value_out_of_range, timestamp_out_of_range, unmatched_ack, unknown_order, invalid_transition, not_accepted, denied, invalid",
    help: "events the engine refused",
};
/// `replenish_ingest_pending`: messages received and not yet acknowledged.
pub const INGEST_PENDING: Metric = Metric {
    name: "replenish_ingest_pending",
    kind: Kind::Gauge,
    labels: "",
    help: "messages received and not yet acknowledged",
};
/// `replenish_ingest_stalled`: whether ingest is stalled now (0/1): messages pending and no progress.
pub const INGEST_STALLED: Metric = Metric {
    name: "replenish_ingest_stalled",
    kind: Kind::Gauge,
    labels: "",
    help: "whether ingest is stalled now (0/1): messages pending and no progress",
};
/// `replenish_ingest_stalls_total`: stalls so far.
pub const INGEST_STALLS: Metric = Metric {
    name: "replenish_ingest_stalls_total",
    kind: Kind::Counter,
    labels: "",
    help: "stalls so far",
};
/// `replenish_mqtt_outbox_depth`: acks and commands waiting to be sent.
pub const MQTT_OUTBOX_DEPTH: Metric = Metric {
    name: "replenish_mqtt_outbox_depth",
    kind: Kind::Gauge,
    labels: "",
    help: "acks and commands waiting to be sent",
};
/// `replenish_mqtt_stale_acks_total`: acks of a dropped connection, left to the broker's redelivery.
pub const MQTT_STALE_ACKS: Metric = Metric {
    name: "replenish_mqtt_stale_acks_total",
    kind: Kind::Counter,
    labels: "",
    help: "acks of a dropped connection, left to the broker's redelivery",
};
/// `replenish_mqtt_outbox_closed_total`: outbox entries refused after shutdown.
pub const MQTT_OUTBOX_CLOSED: Metric = Metric {
    name: "replenish_mqtt_outbox_closed_total",
    kind: Kind::Counter,
    labels: "",
    help: "outbox entries refused after shutdown",
};
/// `replenish_mqtt_acks_per_write`: acks sent per socket write.
pub const MQTT_ACKS_PER_WRITE: Metric = Metric {
    name: "replenish_mqtt_acks_per_write",
    kind: Kind::Histogram,
    labels: "",
    help: "acks sent per socket write",
};
/// `replenish_mqtt_connected`: the ingest connection is up (0/1).
pub const MQTT_CONNECTED: Metric = Metric {
    name: "replenish_mqtt_connected",
    kind: Kind::Gauge,
    labels: "",
    help: "the ingest connection is up (0/1)",
};
/// `replenish_mqtt_out_connected`: the second connection (Home Assistant, notifications) is up (0/1).
pub const MQTT_OUT_CONNECTED: Metric = Metric {
    name: "replenish_mqtt_out_connected",
    kind: Kind::Gauge,
    labels: "",
    help: "the second connection (Home Assistant, notifications) is up (0/1)",
};
/// `replenish_commands_sent_total`: commands published to devices.
pub const COMMANDS_SENT: Metric = Metric {
    name: "replenish_commands_sent_total",
    kind: Kind::Counter,
    labels: "",
    help: "commands published to devices",
};
/// `replenish_commands_unsent_total`: commands with no MQTT connection to go on.
pub const COMMANDS_UNSENT: Metric = Metric {
    name: "replenish_commands_unsent_total",
    kind: Kind::Counter,
    labels: "",
    help: "commands with no MQTT connection to go on",
};
/// `replenish_commands_dropped_total`: commands not queued because the outbox was full (the engine sends them again if no ack comes).
pub const COMMANDS_DROPPED: Metric = Metric {
    name: "replenish_commands_dropped_total",
    kind: Kind::Counter,
    labels: "",
    help: "commands not queued because the outbox was full (the engine sends them again if no ack comes)",
};
/// `replenish_pairing_dropped_total`: devices dropped from a full waiting list.
pub const PAIRING_DROPPED: Metric = Metric {
    name: "replenish_pairing_dropped_total",
    kind: Kind::Counter,
    labels: "",
    help: "devices dropped from a full waiting list",
};
/// `replenish_http_unauthorized_total`: requests without a valid token.
pub const HTTP_UNAUTHORIZED: Metric = Metric {
    name: "replenish_http_unauthorized_total",
    kind: Kind::Counter,
    labels: "",
    help: "requests without a valid token",
};
/// `replenish_http_refused_total`: requests the engine refused.
pub const HTTP_REFUSED: Metric = Metric {
    name: "replenish_http_refused_total",
    kind: Kind::Counter,
    labels: "`reason`",
    help: "requests the engine refused",
};
/// `replenish_http_csrf_refused_total`: forms without a valid CSRF token.
pub const HTTP_CSRF_REFUSED: Metric = Metric {
    name: "replenish_http_csrf_refused_total",
    kind: Kind::Counter,
    labels: "",
    help: "forms without a valid CSRF token",
};
/// `replenish_http_auth_throttled_total`: logins slowed after failures.
pub const HTTP_AUTH_THROTTLED: Metric = Metric {
    name: "replenish_http_auth_throttled_total",
    kind: Kind::Counter,
    labels: "",
    help: "logins slowed after failures",
};
/// `replenish_http_connections_refused_total`: connections refused over `http.max_connections`.
pub const HTTP_CONNECTIONS_REFUSED: Metric = Metric {
    name: "replenish_http_connections_refused_total",
    kind: Kind::Counter,
    labels: "",
    help: "connections refused over `http.max_connections`",
};
/// `replenish_http_connections_closed_total`: connections that ended in an error.
pub const HTTP_CONNECTIONS_CLOSED: Metric = Metric {
    name: "replenish_http_connections_closed_total",
    kind: Kind::Counter,
    labels: "`reason`: timeout, incomplete, bad_request, other",
    help: "connections that ended in an error",
};
/// `replenish_order_attempts_total`: order placements sent to the shop.
pub const ORDER_ATTEMPTS: Metric = Metric {
    name: "replenish_order_attempts_total",
    kind: Kind::Counter,
    labels: "",
    help: "order placements sent to the shop",
};
/// `replenish_order_failures_total`: failed placements.
pub const ORDER_FAILURES: Metric = Metric {
    name: "replenish_order_failures_total",
    kind: Kind::Counter,
    labels: "`retryable`",
    help: "failed placements",
};
/// `replenish_notices_total`: timeline events (orders, refills, forecasts...).
pub const NOTICES: Metric = Metric {
    name: "replenish_notices_total",
    kind: Kind::Counter,
    labels: "`kind`",
    help: "timeline events (orders, refills, forecasts...)",
};
/// `replenish_mqtt_connections_total`: broker connections of the ingest.
pub const MQTT_CONNECTIONS: Metric = Metric {
    name: "replenish_mqtt_connections_total",
    kind: Kind::Counter,
    labels: "",
    help: "broker connections of the ingest",
};
/// `replenish_mqtt_errors_total`: broker connections of the ingest lost.
pub const MQTT_ERRORS: Metric = Metric {
    name: "replenish_mqtt_errors_total",
    kind: Kind::Counter,
    labels: "",
    help: "broker connections of the ingest lost",
};
/// `replenish_store_errors_total`: storage failures.
pub const STORE_ERRORS: Metric = Metric {
    name: "replenish_store_errors_total",
    kind: Kind::Counter,
    labels: "`table`",
    help: "storage failures",
};
/// `replenish_store_unreadable_records_total`: records that could not be read (kept, skipped).
pub const STORE_UNREADABLE_RECORDS: Metric = Metric {
    name: "replenish_store_unreadable_records_total",
    kind: Kind::Counter,
    labels: "`table`",
    help: "records that could not be read (kept, skipped)",
};
/// `replenish_store_checkpoints_total`: journal checkpoints into sled.
pub const STORE_CHECKPOINTS: Metric = Metric {
    name: "replenish_store_checkpoints_total",
    kind: Kind::Counter,
    labels: "",
    help: "journal checkpoints into sled",
};
/// `replenish_store_flush_seconds`: time to make a batch durable, in seconds.
pub const STORE_FLUSH_SECONDS: Metric = Metric {
    name: "replenish_store_flush_seconds",
    kind: Kind::Histogram,
    labels: "",
    help: "time to make a batch durable, in seconds",
};
/// `replenish_broker_refused_total`: clients the embedded broker's gate refused or closed.
pub const BROKER_REFUSED: Metric = Metric {
    name: "replenish_broker_refused_total",
    kind: Kind::Counter,
    labels: "`reason`: malformed, login, publish_denied, subscribe_denied, connect_timeout",
    help: "clients the embedded broker's gate refused or closed",
};
/// `replenish_mqtt_out_errors_total`: the second connection's losses.
pub const MQTT_OUT_ERRORS: Metric = Metric {
    name: "replenish_mqtt_out_errors_total",
    kind: Kind::Counter,
    labels: "",
    help: "the second connection's losses",
};
/// `replenish_mqtt_out_dropped_total`: publishes of the second connection that could not be queued.
pub const MQTT_OUT_DROPPED: Metric = Metric {
    name: "replenish_mqtt_out_dropped_total",
    kind: Kind::Counter,
    labels: "",
    help: "publishes of the second connection that could not be queued",
};
/// `replenish_mqtt_out_inbound_dropped_total`: messages to the second connection that found its inbound queue full.
pub const MQTT_OUT_INBOUND_DROPPED: Metric = Metric {
    name: "replenish_mqtt_out_inbound_dropped_total",
    kind: Kind::Counter,
    labels: "",
    help: "messages to the second connection that found its inbound queue full",
};
/// `replenish_ha_publishes_total`: Home Assistant discovery and state publishes.
pub const HA_PUBLISHES: Metric = Metric {
    name: "replenish_ha_publishes_total",
    kind: Kind::Counter,
    labels: "`outcome`",
    help: "Home Assistant discovery and state publishes",
};
/// `replenish_ha_commands_total`: commands from Home Assistant.
pub const HA_COMMANDS: Metric = Metric {
    name: "replenish_ha_commands_total",
    kind: Kind::Counter,
    labels: "`command`, `outcome`",
    help: "commands from Home Assistant",
};
/// `replenish_ha_notices_lagged_total`: notices the Home Assistant bridge missed while behind.
pub const HA_NOTICES_LAGGED: Metric = Metric {
    name: "replenish_ha_notices_lagged_total",
    kind: Kind::Counter,
    labels: "",
    help: "notices the Home Assistant bridge missed while behind",
};
/// `replenish_notifications_total`: approval notifications sent (MQTT, webhooks).
pub const NOTIFICATIONS: Metric = Metric {
    name: "replenish_notifications_total",
    kind: Kind::Counter,
    labels: "`channel`, `outcome`",
    help: "approval notifications sent (MQTT, webhooks)",
};
/// `replenish_notifications_lagged_total`: notices the notifier missed while behind.
pub const NOTIFICATIONS_LAGGED: Metric = Metric {
    name: "replenish_notifications_lagged_total",
    kind: Kind::Counter,
    labels: "",
    help: "notices the notifier missed while behind",
};
/// Every metric, in the order of the docs' table.
pub const ALL: [Metric; 40] = [
    TELEMETRY_RECEIVED,
    TELEMETRY_REFUSED,
    EVENTS_REFUSED,
    INGEST_PENDING,
    INGEST_STALLED,
    INGEST_STALLS,
    MQTT_OUTBOX_DEPTH,
    MQTT_STALE_ACKS,
    MQTT_OUTBOX_CLOSED,
    MQTT_ACKS_PER_WRITE,
    MQTT_CONNECTED,
    MQTT_OUT_CONNECTED,
    COMMANDS_SENT,
    COMMANDS_UNSENT,
    COMMANDS_DROPPED,
    PAIRING_DROPPED,
    HTTP_UNAUTHORIZED,
    HTTP_REFUSED,
    HTTP_CSRF_REFUSED,
    HTTP_AUTH_THROTTLED,
    HTTP_CONNECTIONS_REFUSED,
    HTTP_CONNECTIONS_CLOSED,
    ORDER_ATTEMPTS,
    ORDER_FAILURES,
    NOTICES,
    MQTT_CONNECTIONS,
    MQTT_ERRORS,
    STORE_ERRORS,
    STORE_UNREADABLE_RECORDS,
    STORE_CHECKPOINTS,
    STORE_FLUSH_SECONDS,
    BROKER_REFUSED,
    MQTT_OUT_ERRORS,
    MQTT_OUT_DROPPED,
    MQTT_OUT_INBOUND_DROPPED,
    HA_PUBLISHES,
    HA_COMMANDS,
    HA_NOTICES_LAGGED,
    NOTIFICATIONS,
    NOTIFICATIONS_LAGGED,
];

/// Gives every metric its help text in the installed recorder.
pub fn describe() {
    for metric in ALL {
        match metric.kind {
            Kind::Counter => metrics::describe_counter!(metric.name, metric.help),
            Kind::Gauge => metrics::describe_gauge!(metric.name, metric.help),
            Kind::Histogram => metrics::describe_histogram!(metric.name, metric.help),
        }
    }
}

/// docs/operations.md's metrics table: one row per metric.
pub fn markdown_table() -> String {
    let mut table = String::from("| metric | kind | labels | counts |\n|---|---|---|---|\n");
    for metric in ALL {
        let kind = match metric.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        table.push_str(&format!(
            "| `{}` | {kind} | {} | {} |\n",
            metric.name, metric.labels, metric.help
        ));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_shows_each_metric_with_its_help_and_kind() {
        // A recorder of this test's own: no global state shared with other tests.
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            describe();
            metrics::counter!(ORDER_ATTEMPTS.name).increment(2);
            metrics::gauge!(INGEST_PENDING.name).set(5.0);
        });
        let text = handle.render();
        assert!(
            text.contains(
                "# HELP replenish_order_attempts_total order placements sent to the shop"
            ),
            "{text}"
        );
        assert!(
            text.contains("# TYPE replenish_order_attempts_total counter"),
            "{text}"
        );
        assert!(text.contains("replenish_order_attempts_total 2"), "{text}");
        assert!(
            text.contains("# TYPE replenish_ingest_pending gauge"),
            "{text}"
        );
    }

    #[test]
    fn the_table_has_one_row_per_metric() {
        let table = markdown_table();
        assert_eq!(table.lines().count(), ALL.len() + 2);
        assert!(table.contains("| `replenish_store_flush_seconds` | histogram |  | time to make a batch durable, in seconds |"));
    }
}
