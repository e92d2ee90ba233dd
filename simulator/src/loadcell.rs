//! A simulated load cell: the real weight goes into a simulated HX711, and the firmware's
//! HX711 driver reads it back bit by bit, as on the device.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use replenish_firmware::calibration::Calibration;

use crate::hardware::{SimulatedHx711, SimulatedHx711Driver};

/// A failed read.
pub type ReadError = replenish_firmware::drivers::hx711::Error<core::convert::Infallible>;

/// A load cell with noise on an HX711, read through the real driver.
pub struct LoadCell {
    chip: SimulatedHx711,
    driver: SimulatedHx711Driver,
    rng: ChaCha8Rng,
    noise_counts: f64,
}

impl LoadCell {
    /// A load cell whose readings carry noise of about `noise_counts` ADC counts.
    pub fn new(seed: u64, noise_counts: f64) -> Self {
        let chip = SimulatedHx711::new();
        let driver = chip.driver();
        Self {
            chip,
            driver,
            rng: ChaCha8Rng::seed_from_u64(seed),
            noise_counts,
        }
    }

    /// Puts `amount` on the scale (as the device's calibration maps it to counts, plus noise)
    /// and reads one conversion through the driver.
    pub fn read(&mut self, calibration: &Calibration, amount: f64) -> Result<i32, ReadError> {
        // A sum of uniforms: bell-shaped noise without another dependency.
        let noise = (0..3)
            .map(|_| self.rng.random_range(-1.0..1.0))
            .sum::<f64>()
            * self.noise_counts
            / 3.0;
        self.chip
            .set_raw(calibration.raw_for(amount as f32) + noise.round() as i32);
        self.driver.read_raw()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_the_weight_through_the_driver() {
        let calibration = Calibration::new(84_000, 0.01);
        let mut cell = LoadCell::new(1, 0.0);
        let raw = cell.read(&calibration, 250.0).unwrap();
        assert!((calibration.amount(raw) - 250.0).abs() < 0.02);
        assert!(cell.chip.reads() >= 1);
    }
}
