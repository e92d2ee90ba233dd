//! Logs and metrics set-up, shared by the daemon and the simulator.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide Prometheus recorder, installed on first use.
pub fn prometheus() -> PrometheusHandle {
    PROMETHEUS
        .get_or_init(|| {
            // Histograms with fixed buckets rather than the exporter's default summaries: a
            // summary keeps a sketch per time window that grows with the spread of its samples
            // (0.8 MiB for these two under bench ingest), buckets stay a few counters, and
            // Prometheus can aggregate them.
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(crate::metric::STORE_FLUSH_SECONDS.name.into()),
                    &[
                        0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
                    ],
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(crate::metric::MQTT_ACKS_PER_WRITE.name.into()),
                        &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0],
                    )
                });
            let recorder = match builder {
                Ok(builder) => builder.build_recorder(),
                // Only for an empty bucket list, which the lists above are not.
                Err(_) => PrometheusBuilder::new().build_recorder(),
            };
            let handle = recorder.handle();
            // Fails only if another recorder is installed; metrics then go there instead.
            let _ = metrics::set_global_recorder(recorder);
            crate::metric::describe();
            handle
        })
        .clone()
}

/// Logs to stderr, filtered by `RUST_LOG` (default `default_filter`).
pub fn init_logging(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    // Colours only on a terminal: the journal (and any log file) would keep the escape codes.
    let colours = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colours)
        .try_init();
}
