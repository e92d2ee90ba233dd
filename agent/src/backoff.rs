//! Reconnect back-off shared by the agent's MQTT connections: exponential with jitter, reset
//! only once a connection has stayed up for a while, so "connect, get kicked, reconnect"
//! (a broker refusing a packet, a duplicate client id) slows down instead of spinning.

use std::time::{Duration, Instant};

/// First delay.
pub const INITIAL: Duration = Duration::from_millis(100);
/// Longest delay.
pub const MAX: Duration = Duration::from_secs(30);
/// A connection that lasted this long resets the back-off.
pub const STABLE: Duration = Duration::from_secs(30);

/// Delays between reconnection attempts.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
    connected_at: Option<Instant>,
    rng: u64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

impl Backoff {
    /// Starts at [`INITIAL`], with its own jitter seed.
    pub fn new() -> Self {
        let mut seed = [0u8; 8];
        // Without OS randomness the jitter is merely the same for every agent; still bounded.
        let _ = getrandom::fill(&mut seed);
        Self {
            next: INITIAL,
            connected_at: None,
            rng: u64::from_le_bytes(seed) | 1,
        }
    }

    /// The broker accepted the connection.
    pub fn connected(&mut self, now: Instant) {
        self.connected_at = Some(now);
    }

    /// The connection failed or dropped: how long to wait before the next attempt. The delay
    /// doubles unless the connection had been up for [`STABLE`]; it is jittered between half
    /// and all of it so that agents (and devices) do not reconnect in step.
    pub fn failed(&mut self, now: Instant) -> Duration {
        if self
            .connected_at
            .take()
            .is_some_and(|at| now.duration_since(at) >= STABLE)
        {
            self.next = INITIAL;
        }
        let base = self.next;
        self.next = (self.next * 2).min(MAX);
        // xorshift64: enough for jitter.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let fraction = (self.rng >> 11) as f64 / (1u64 << 53) as f64;
        base.mul_f64(0.5 + 0.5 * fraction)
    }

    /// The un-jittered delay the next failure will use.
    pub fn current(&self) -> Duration {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_when_kicked_right_after_connecting() {
        let mut backoff = Backoff::new();
        let mut now = Instant::now();
        let mut delays = Vec::new();
        for _ in 0..12 {
            backoff.connected(now);
            now += Duration::from_millis(10);
            let delay = backoff.failed(now);
            delays.push(delay);
            now += delay;
        }
        assert!(delays[0] <= INITIAL && delays[0] >= INITIAL / 2);
        assert!(delays[11] >= MAX / 2 && delays[11] <= MAX, "{delays:?}");
        assert!(delays.windows(2).all(|w| w[1] * 2 >= w[0]), "{delays:?}");
    }

    #[test]
    fn a_stable_connection_starts_over() {
        let mut backoff = Backoff::new();
        let now = Instant::now();
        for _ in 0..8 {
            backoff.failed(now);
        }
        backoff.connected(now);
        assert!(backoff.failed(now + STABLE) <= INITIAL);
    }
}
