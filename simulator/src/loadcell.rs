//! A simulated load cell: the real weight goes into a simulated HX711, and the firmware's
//! HX711 driver reads it back bit by bit, as on the device ([`Fidelity::Driver`]), or, where
//! speed matters more than the wire (`bench appliances`), the same reading is handed to the
//! firmware's detection without the bit-banging ([`Fidelity::Reading`]: the same numbers, a
//! test holds both to it).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use replenish_firmware::calibration::Calibration;

use replenish_firmware::drivers::hx711::{RAW_MAX, RAW_MIN};

use crate::hardware::{SimulatedHx711, SimulatedHx711Driver};

/// A failed read.
pub type ReadError = replenish_firmware::drivers::hx711::Error<core::convert::Infallible>;

/// How a load cell is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fidelity {
    /// Through the firmware's HX711 driver, bit by bit, on a simulated chip.
    #[default]
    Driver,
    /// The chip's reading handed over directly (24-bit clamped, as the driver returns it).
    Reading,
}

/// A load cell with noise on an HX711, read through the real driver.
pub struct LoadCell {
    chip: SimulatedHx711,
    driver: SimulatedHx711Driver,
    rng: ChaCha8Rng,
    noise_counts: f64,
    fidelity: Fidelity,
}

impl LoadCell {
    /// A load cell whose readings carry noise of about `noise_counts` ADC counts, read through
    /// the driver.
    pub fn new(seed: u64, noise_counts: f64) -> Self {
        Self::with_fidelity(seed, noise_counts, Fidelity::Driver)
    }

    /// The same, read as `fidelity` says.
    pub fn with_fidelity(seed: u64, noise_counts: f64, fidelity: Fidelity) -> Self {
        let chip = SimulatedHx711::new();
        let driver = chip.driver();
        Self {
            chip,
            driver,
            rng: ChaCha8Rng::seed_from_u64(seed),
            noise_counts,
            fidelity,
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
        let raw = calibration
            .raw_for(amount as f32)
            .saturating_add(noise.round() as i32);
        match self.fidelity {
            Fidelity::Driver => {
                self.chip.set_raw(raw);
                self.driver.read_raw()
            }
            Fidelity::Reading => Ok(raw.clamp(RAW_MIN, RAW_MAX)),
        }
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

    #[test]
    fn both_fidelities_give_the_same_readings() {
        let calibration = Calibration::new(84_000, 0.01);
        let mut driver = LoadCell::with_fidelity(5, 30.0, Fidelity::Driver);
        let mut reading = LoadCell::with_fidelity(5, 30.0, Fidelity::Reading);
        for amount in [0.0, 1.5, 250.0, 999.9, -3.0, 1e9] {
            for _ in 0..20 {
                assert_eq!(
                    driver.read(&calibration, amount).unwrap(),
                    reading.read(&calibration, amount).unwrap(),
                    "{amount}"
                );
            }
        }
        assert_eq!(driver.chip.reads(), 120);
        assert_eq!(reading.chip.reads(), 0, "the chip was not clocked");
    }
}
