//! Events of the store and the journal: failures, flushes, checkpoints, unreadable records.

use std::fmt::Display;

use metrics::{counter, histogram};

use super::InternalEvent;
use crate::metric;

/// Which step of storing failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreStep {
    /// Appending a batch to the journal.
    Write,
    /// Making the journal durable (`fdatasync`).
    Sync,
    /// Flushing the store.
    Flush,
    /// Saving the engine's changes.
    Save,
    /// Making an approved order durable before sending it.
    OrderDurable,
    /// The last checkpoint on the way down.
    Shutdown,
}

impl StoreStep {
    fn message(self) -> &'static str {
        match self {
            Self::Write => "writing the journal failed",
            Self::Sync => "syncing the journal failed: these messages stay unacknowledged",
            Self::Flush => "flushing the store failed",
            Self::Save => "saving failed",
            Self::OrderDurable => "cannot make the order durable; not sending it now",
            Self::Shutdown => {
                "storing on the way down failed; what was acknowledged is in the journal or the broker keeps it"
            }
        }
    }
}

/// A store operation failed (`replenish_store_errors_total`).
pub struct StoreFailed<'a> {
    /// What was being done.
    pub step: StoreStep,
    /// Why it failed.
    pub error: &'a dyn Display,
    /// The order concerned ([`StoreStep::OrderDurable`]).
    pub order: Option<&'a str>,
    /// Messages left unacknowledged because of it.
    pub messages: usize,
}

impl<'a> StoreFailed<'a> {
    /// A failure of `step` with nothing more to say than `error`.
    pub fn at(step: StoreStep, error: &'a dyn Display) -> Self {
        Self {
            step,
            error,
            order: None,
            messages: 0,
        }
    }
}

impl InternalEvent for StoreFailed<'_> {
    fn emit(self) {
        counter!(metric::STORE_ERRORS.name).increment(1);
        tracing::error!(
            error = %self.error,
            order = self.order,
            messages = self.messages,
            "{}",
            self.step.message()
        );
    }
}

/// A flush or a journal sync took `seconds` (`replenish_store_flush_seconds`).
pub struct StoreFlushed {
    /// How long it took.
    pub seconds: f64,
}

impl InternalEvent for StoreFlushed {
    fn emit(self) {
        histogram!(metric::STORE_FLUSH_SECONDS.name).record(self.seconds);
    }
}

/// The journal was folded into the store (`replenish_store_checkpoints_total`).
pub struct Checkpointed {
    /// Records written to the store.
    pub records: usize,
    /// Journal entries folded in.
    pub entries: usize,
    /// Their size.
    pub bytes: usize,
}

impl InternalEvent for Checkpointed {
    fn emit(self) {
        tracing::debug!(
            records = self.records,
            entries = self.entries,
            bytes = self.bytes,
            "checkpoint"
        );
        counter!(metric::STORE_CHECKPOINTS.name).increment(1);
    }
}

/// A stored record could not be read; it is left as it is
/// (`replenish_store_unreadable_records_total`).
pub struct UnreadableRecord<'a> {
    /// Its table.
    pub table: &'static str,
    /// Its key.
    pub key: &'a str,
    /// Why it could not be read.
    pub error: &'a dyn Display,
}

impl InternalEvent for UnreadableRecord<'_> {
    fn emit(self) {
        counter!(metric::STORE_UNREADABLE_RECORDS.name, "table" => self.table).increment(1);
        tracing::error!(
            table = self.table,
            key = %self.key,
            error = %self.error,
            "skipping unreadable record; it is kept as is"
        );
    }
}
