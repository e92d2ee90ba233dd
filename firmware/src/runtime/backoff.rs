//! Reconnect back-off: exponential, capped, with optional deterministic jitter.

/// How reconnect delays grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffConfig {
    /// The first delay, in ms.
    pub initial_ms: u64,
    /// The largest delay, in ms.
    pub max_ms: u64,
    /// Up to this percentage is taken off each delay (`0..=100`), varying with the seed (the boot
    /// number) so that devices cut off together do not all come back at the same instant.
    pub jitter_percent: u8,
}

impl Default for BackoffConfig {
    /// 1 s doubling up to 60 s, with up to 20% jitter.
    fn default() -> Self {
        Self {
            initial_ms: 1_000,
            max_ms: 60_000,
            jitter_percent: 20,
        }
    }
}

/// Exponential back-off state: `initial, 2×, 4×, …` up to the maximum, minus jitter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    config: BackoffConfig,
    attempt: u32,
    seed: u32,
}

impl Backoff {
    /// A back-off whose jitter derives from `seed`.
    pub fn new(config: BackoffConfig, seed: u32) -> Self {
        Self {
            config,
            attempt: 0,
            seed,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &BackoffConfig {
        &self.config
    }

    /// Failed attempts since the last [`reset`](Self::reset).
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// The delay before the next attempt; each call counts one more failed attempt.
    pub fn next_delay_ms(&mut self) -> u64 {
        let factor = 1u64.checked_shl(self.attempt).unwrap_or(u64::MAX);
        let base = self
            .config
            .initial_ms
            .saturating_mul(factor)
            .min(self.config.max_ms);
        self.attempt = self.attempt.saturating_add(1);
        let jitter = u64::from(self.config.jitter_percent.min(100));
        if jitter == 0 {
            return base;
        }
        let r = u64::from(mix(self.seed, self.attempt)) % (jitter + 1);
        base - base / 100 * r - base % 100 * r / 100
    }

    /// Back to the initial delay (after a successful connection).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// A small integer hash (lowbias32) of the seed and the attempt.
fn mix(seed: u32, attempt: u32) -> u32 {
    let mut x = seed ^ attempt.wrapping_mul(0x9E37_79B9);
    x ^= x >> 16;
    x = x.wrapping_mul(0x7FEB_352D);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846C_A68B);
    x ^ (x >> 16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let config = BackoffConfig {
            initial_ms: 500,
            max_ms: 5_000,
            jitter_percent: 0,
        };
        let mut b = Backoff::new(config, 1);
        let delays: Vec<_> = (0..7).map(|_| b.next_delay_ms()).collect();
        assert_eq!(delays, [500, 1_000, 2_000, 4_000, 5_000, 5_000, 5_000]);
        assert_eq!(b.attempts(), 7);
        b.reset();
        assert_eq!(b.next_delay_ms(), 500);
    }

    #[test]
    fn never_overflows() {
        let config = BackoffConfig {
            initial_ms: u64::MAX / 3,
            max_ms: u64::MAX,
            jitter_percent: 100,
        };
        let mut b = Backoff::new(config, 9);
        let delays: Vec<_> = (0..200).map(|_| b.next_delay_ms()).collect();
        assert!(delays[0] <= u64::MAX / 3);
        assert!(
            delays.iter().any(|d| *d > u64::MAX / 2),
            "saturates instead of wrapping"
        );
        assert_eq!(b.config().jitter_percent, 100);
    }

    #[test]
    fn jitter_stays_within_its_percentage_and_varies_by_seed() {
        let config = BackoffConfig {
            initial_ms: 10_000,
            max_ms: 10_000,
            jitter_percent: 20,
        };
        let mut firsts = Vec::new();
        for seed in 0..50 {
            let mut b = Backoff::new(config, seed);
            for _ in 0..10 {
                let d = b.next_delay_ms();
                assert!((8_000..=10_000).contains(&d), "{d}");
            }
            firsts.push(Backoff::new(config, seed).next_delay_ms());
        }
        firsts.sort_unstable();
        firsts.dedup();
        assert!(firsts.len() > 10, "{firsts:?}");
    }
}
