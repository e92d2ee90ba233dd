//! Converting raw sensor counts to amounts: `amount = (raw - offset) * scale`.
//!
//! A load cell is calibrated in two steps, as the `Tare` and `Calibrate` commands do:
//!
//! 1. [`Calibration::tare`] with the empty container in place: that reading becomes zero.
//! 2. [`Calibration::calibrate`] with a known amount in the container: the scale follows from the
//!    difference to the tare reading.
//!
//! The device persists the result (it derives `serde`), so a reboot does not need a new
//! calibration.

use serde::{Deserialize, Serialize};

/// Smallest difference, in raw counts, between the tare reading and the reading of a known amount
/// that [`Calibration::calibrate`] accepts. Below it the scale would mostly measure noise.
pub const MIN_SPAN_COUNTS: u32 = 64;

/// Why a calibration was refused. The calibration is left unchanged.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum CalibrationError {
    /// The known amount is NaN or infinite.
    #[error("the known amount must be a finite number")]
    NotFinite,
    /// The known amount is zero or negative.
    #[error("the known amount must be greater than zero")]
    NotPositive,
    /// The reading with the known amount is too close to the tare reading: nothing was added, or
    /// the slot was never tared.
    #[error("reading differs from the tare by {span} counts; at least {MIN_SPAN_COUNTS} needed")]
    TooClose {
        /// The difference seen, in raw counts.
        span: u32,
    },
    /// There is no raw reading to take yet.
    #[error("no reading available yet")]
    NoReading,
}

/// A linear calibration: `amount = (raw - offset) * scale`.
///
/// The default is the identity (`offset` 0, `scale` 1): amounts are raw counts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// The raw reading of an empty slot.
    pub offset: i32,
    /// Amount per raw count (negative when the load cell is wired the other way round).
    pub scale: f32,
}

impl Default for Calibration {
    fn default() -> Self {
        Self::IDENTITY
    }
}

impl Calibration {
    /// The identity calibration: amounts are raw counts.
    pub const IDENTITY: Calibration = Calibration {
        offset: 0,
        scale: 1.0,
    };

    /// A calibration from a known offset and scale.
    pub const fn new(offset: i32, scale: f32) -> Self {
        Self { offset, scale }
    }

    /// Whether the scale is usable: finite and not zero. A deserialized calibration should be
    /// checked before use.
    pub fn is_valid(&self) -> bool {
        self.scale.is_finite() && self.scale != 0.0
    }

    /// The amount a raw reading stands for.
    pub fn amount(&self, raw: i32) -> f32 {
        (i64::from(raw) - i64::from(self.offset)) as f32 * self.scale
    }

    /// The raw reading that stands for `amount`, rounded to the nearest count and saturated to
    /// the `i32` range; the inverse of [`amount`](Self::amount). Returns `offset` when the
    /// calibration is not [valid](Self::is_valid) or `amount` is not finite.
    pub fn raw_for(&self, amount: f32) -> i32 {
        if !self.is_valid() || !amount.is_finite() {
            return self.offset;
        }
        let counts = f64::from(amount) / f64::from(self.scale);
        let rounded = if counts >= 0.0 {
            counts + 0.5
        } else {
            counts - 0.5
        };
        // `as` saturates; the sum cannot overflow i64 since both parts fit in i32-ish ranges.
        let raw = i64::from(self.offset).saturating_add(rounded as i64);
        raw.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
    }

    /// Takes `raw` as the reading of an empty slot. The scale is kept.
    pub fn tare(&mut self, raw: i32) {
        self.offset = raw;
    }

    /// Second calibration point: `raw_at_known` is the reading with `known_amount` in the slot
    /// (after [`tare`](Self::tare)). Sets the scale so that reading maps to `known_amount`.
    ///
    /// Refuses a non-finite or non-positive amount and a reading closer than
    /// [`MIN_SPAN_COUNTS`] to the offset; the calibration is then unchanged.
    pub fn calibrate(
        &mut self,
        raw_at_known: i32,
        known_amount: f32,
    ) -> Result<(), CalibrationError> {
        if !known_amount.is_finite() {
            return Err(CalibrationError::NotFinite);
        }
        if known_amount <= 0.0 {
            return Err(CalibrationError::NotPositive);
        }
        let span = i64::from(raw_at_known) - i64::from(self.offset);
        let abs_span = u32::try_from(span.unsigned_abs()).unwrap_or(u32::MAX);
        if abs_span < MIN_SPAN_COUNTS {
            return Err(CalibrationError::TooClose { span: abs_span });
        }
        let scale = known_amount / span as f32;
        if !scale.is_finite() || scale == 0.0 {
            return Err(CalibrationError::TooClose { span: abs_span });
        }
        self.scale = scale;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use replenish_protocol::codec;
    use replenish_protocol::{Validate, ValidationError};

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() <= 1e-3 * b.abs().max(1.0)
    }

    #[test]
    fn identity_by_default() {
        let c = Calibration::default();
        assert_eq!(c.amount(1234), 1234.0);
        assert_eq!(c.raw_for(-17.0), -17);
    }

    #[test]
    fn tare_then_two_point_calibration() {
        let mut c = Calibration::default();
        c.tare(8_000);
        assert_eq!(c.amount(8_000), 0.0);
        c.calibrate(8_000 + 42_000, 100.0).unwrap();
        assert!(close(c.amount(8_000 + 42_000), 100.0));
        assert!(close(c.amount(8_000 + 21_000), 50.0));
        assert!(close(c.amount(8_000 - 4_200), -10.0));
        // Tare again (a different container): the scale is kept.
        c.tare(9_000);
        assert!(close(c.amount(9_000 + 42_000), 100.0));
    }

    #[test]
    fn reversed_load_cell_gets_a_negative_scale() {
        let mut c = Calibration::new(-1_000, 1.0);
        c.calibrate(-1_000 - 5_000, 250.0).unwrap();
        assert!(c.scale < 0.0);
        assert!(close(c.amount(-6_000), 250.0));
        assert_eq!(c.raw_for(250.0), -6_000);
    }

    #[test]
    fn refuses_degenerate_input_and_keeps_the_old_calibration() {
        let mut c = Calibration::new(100, 0.5);
        let before = c;
        assert_eq!(
            c.calibrate(100, 10.0),
            Err(CalibrationError::TooClose { span: 0 })
        );
        assert_eq!(
            c.calibrate(100 + 63, 10.0),
            Err(CalibrationError::TooClose { span: 63 })
        );
        assert_eq!(
            c.calibrate(100 - 63, 10.0),
            Err(CalibrationError::TooClose { span: 63 })
        );
        assert_eq!(c.calibrate(10_000, 0.0), Err(CalibrationError::NotPositive));
        assert_eq!(
            c.calibrate(10_000, -5.0),
            Err(CalibrationError::NotPositive)
        );
        assert_eq!(
            c.calibrate(10_000, f32::NAN),
            Err(CalibrationError::NotFinite)
        );
        assert_eq!(
            c.calibrate(10_000, f32::INFINITY),
            Err(CalibrationError::NotFinite)
        );
        assert_eq!(c, before);
        assert!(c.calibrate(100 + 64, 10.0).is_ok());
    }

    #[test]
    fn extreme_raw_values_do_not_overflow() {
        let c = Calibration::new(i32::MAX, 1.0);
        assert_eq!(c.amount(i32::MIN), -4_294_967_296.0);
        let mut c = Calibration::new(i32::MIN, 1.0);
        assert!(c.calibrate(i32::MAX, 1.0).is_ok());
        assert_eq!(Calibration::new(0, 1.0).raw_for(1e12), i32::MAX);
        assert_eq!(Calibration::new(0, 1.0).raw_for(f32::NAN), 0);
        assert_eq!(Calibration::new(5, 0.0).raw_for(3.0), 5);
    }

    #[test]
    fn raw_for_inverts_amount() {
        let c = Calibration::new(-123_456, 0.0042);
        for raw in [-8_388_608, -123_456, -1, 0, 77, 8_388_607] {
            // f32 amounts carry 24 bits: the round trip is exact to one count.
            assert!((c.raw_for(c.amount(raw)) - raw).abs() <= 1, "{raw}");
        }
        assert_eq!(c.raw_for(c.amount(-100_000)), -100_000);
    }

    #[test]
    fn invalid_scales_are_detected() {
        assert!(Calibration::new(0, 0.01).is_valid());
        assert!(!Calibration::new(0, 0.0).is_valid());
        assert!(!Calibration::new(0, f32::NAN).is_valid());
        assert!(!Calibration::new(0, f32::INFINITY).is_valid());
    }

    /// What the device writes to flash: the calibration through the protocol's binary codec.
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    #[serde(transparent)]
    struct Stored(Calibration);

    impl Validate for Stored {
        fn validate(&self) -> Result<(), ValidationError> {
            if self.0.is_valid() {
                Ok(())
            } else {
                Err(ValidationError::NotFinite("scale"))
            }
        }
    }

    #[test]
    fn persists_through_serde() {
        let c = Calibration::new(-8_123, 0.00731);
        let mut buf = [0u8; 32];
        let bytes = codec::encode_binary(&Stored(c), &mut buf).unwrap();
        assert!(bytes.len() < 16, "{} bytes", bytes.len());
        let back: Stored = codec::decode(bytes).unwrap();
        assert_eq!(back.0, c);
    }
}
