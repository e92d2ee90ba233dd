//! Time, injected: the daemon reads the system clock, tests and the simulator a manual one.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Milliseconds since the Unix epoch, the one time unit used across replenish.
pub type UnixMs = u64;

/// One hour in milliseconds.
pub const HOUR_MS: UnixMs = 3_600_000;
/// One minute in ms.
pub const MINUTE_MS: UnixMs = 60_000;
/// One day in milliseconds.
pub const DAY_MS: UnixMs = 24 * HOUR_MS;

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now_ms(&self) -> UnixMs;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> UnixMs {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as UnixMs)
            .unwrap_or(0)
    }
}

/// A clock that moves only when told to: the simulator's accelerated time and tests.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: UnixMs) -> Arc<Self> {
        Arc::new(Self(AtomicU64::new(start)))
    }

    /// Moves the clock to `t`; time never goes backwards, so an earlier `t` is ignored.
    pub fn set(&self, t: UnixMs) {
        self.0.fetch_max(t, Ordering::SeqCst);
    }

    /// Moves the clock forward by `by` milliseconds.
    pub fn advance(&self, by: UnixMs) {
        self.0.fetch_add(by, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> UnixMs {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_never_goes_backwards() {
        let clock = ManualClock::new(1_000);
        clock.advance(500);
        clock.set(200);
        assert_eq!(clock.now_ms(), 1_500);
    }
}
