//! Internal events: everything the agent reports about itself, one type per event, each
//! emitting both its log line and its metric, so a metric is moved in exactly one place and
//! its log line cannot drift from it (vector's `internal_events`). Call sites say what
//! happened (`emit(StoreFailed { step: StoreStep::Sync, error: &e })`); the event decides the
//! level, the words and the counter. The metric names and their help text live in
//! [`crate::metric`]; `agent/tests/docs_match_code.rs` checks that no metric is moved outside
//! this module.

mod home_assistant;
mod http;
mod ingest;
mod notify;
mod orders;
mod outgoing;
mod store;

pub use home_assistant::*;
pub use http::*;
pub use ingest::*;
pub use notify::*;
pub use orders::*;
pub use outgoing::*;
pub use store::*;

/// Something the agent reports about itself: a log line and a metric, together.
pub trait InternalEvent {
    /// Writes the log line (if the event has one at its level) and moves the metric.
    fn emit(self);
}

/// Emits `event`.
pub fn emit(event: impl InternalEvent) {
    event.emit();
}
