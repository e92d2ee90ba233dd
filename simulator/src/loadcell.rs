//! A simulated load cell: real weight in, the ADC's raw counts out.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use replenish_firmware::calibration::Calibration;

/// A load cell with noise, read as raw counts.
pub struct LoadCell {
    rng: ChaCha8Rng,
    noise_counts: f64,
}

/// A failed read.
#[derive(Debug, thiserror::Error)]
#[error("load cell read failed")]
pub struct ReadError;

impl LoadCell {
    /// A load cell with Gaussian-like noise of about `noise_counts` counts.
    pub fn new(seed: u64, noise_counts: f64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            noise_counts,
        }
    }

    /// The raw reading for `amount` on the scale, as the device's calibration maps it.
    pub fn read(&mut self, calibration: &Calibration, amount: f64) -> Result<i32, ReadError> {
        let noise = (0..3)
            .map(|_| self.rng.random_range(-1.0..1.0))
            .sum::<f64>()
            * self.noise_counts
            / 3.0;
        Ok(calibration.raw_for(amount as f32) + noise.round() as i32)
    }
}
