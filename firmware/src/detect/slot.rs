//! One level slot: calibration, detection and the reports they produce.

use super::filter::Median;
use super::level::{Detection, DetectorConfig, LevelDetector};
use crate::calibration::{Calibration, CalibrationError};
use replenish_protocol::{Id, ReportBody, SlotSpec};

/// How many recent raw readings a [`SlotMonitor`] keeps to tare and calibrate from (their
/// median).
pub const RAW_WINDOW: usize = 9;

/// A level slot: turns raw readings into [`ReportBody::Level`] and [`ReportBody::Refill`].
///
/// ```
/// use replenish_firmware::{Calibration, DetectorConfig, SlotMonitor};
/// use replenish_protocol::{Id, ReportBody};
///
/// let slot = Id::new("beans").unwrap();
/// let mut monitor = SlotMonitor::new(slot, Calibration::new(1_000, 0.01), DetectorConfig::default());
/// let reports: Vec<_> = (0..40).filter_map(|_| monitor.sample_raw(51_000)).collect();
/// assert!(matches!(&reports[..], [ReportBody::Level { remaining, .. }] if *remaining == 500.0));
/// ```
#[derive(Debug, Clone)]
pub struct SlotMonitor {
    slot: Id,
    calibration: Calibration,
    detector: LevelDetector,
    raw: Median<i32, RAW_WINDOW>,
}

impl SlotMonitor {
    /// A monitor for `slot`.
    pub fn new(slot: Id, calibration: Calibration, config: DetectorConfig) -> Self {
        Self {
            slot,
            calibration,
            detector: LevelDetector::new(config),
            raw: Median::new(RAW_WINDOW),
        }
    }

    /// A monitor for a slot of a birth, tuned for its unit ([`DetectorConfig::for_unit`]).
    pub fn for_spec(spec: &SlotSpec, calibration: Calibration) -> Self {
        Self::new(
            spec.id.clone(),
            calibration,
            DetectorConfig::for_unit(spec.unit),
        )
    }

    /// The slot's id.
    pub fn slot(&self) -> &Id {
        &self.slot
    }

    /// The calibration in use (persist it after [`tare`](Self::tare) and
    /// [`calibrate`](Self::calibrate)).
    pub fn calibration(&self) -> &Calibration {
        &self.calibration
    }

    /// The detector.
    pub fn detector(&self) -> &LevelDetector {
        &self.detector
    }

    /// The last settled level, in the slot's unit.
    pub fn level(&self) -> Option<f32> {
        self.detector.level()
    }

    /// The median of the recent raw readings, `None` before the first.
    pub fn recent_raw(&self) -> Option<i32> {
        self.raw.median()
    }

    /// Feeds one raw reading (an HX711 count).
    pub fn sample_raw(&mut self, raw: i32) -> Option<ReportBody> {
        self.raw.push(raw);
        self.sample_amount(self.calibration.amount(raw))
    }

    /// Feeds one amount that is already calibrated (a sensor that reports amounts itself).
    pub fn sample_amount(&mut self, amount: f32) -> Option<ReportBody> {
        let detection = self.detector.push(amount)?;
        let slot = self.slot.clone();
        Some(match detection {
            Detection::Initial { level } | Detection::Consumed { level, .. } => ReportBody::Level {
                slot,
                remaining: level,
            },
            Detection::Refilled { before, after } => ReportBody::Refill {
                slot,
                before,
                after,
            },
        })
    }

    /// The current level as a report, for periodic heartbeats; `None` before the first settled
    /// level.
    pub fn level_report(&self) -> Option<ReportBody> {
        let remaining = self.detector.level()?;
        Some(ReportBody::Level {
            slot: self.slot.clone(),
            remaining,
        })
    }

    /// Tares on the recent readings (the empty container is in place). The detector starts over,
    /// so the next settled level is reported again.
    pub fn tare(&mut self) -> Result<(), CalibrationError> {
        let raw = self.raw.median().ok_or(CalibrationError::NoReading)?;
        self.calibration.tare(raw);
        self.detector.reset();
        Ok(())
    }

    /// Calibrates on the recent readings: the slot now holds `known` (after a [`tare`](Self::tare)).
    /// On error the calibration and the detector are unchanged.
    pub fn calibrate(&mut self, known: f32) -> Result<(), CalibrationError> {
        let raw = self.raw.median().ok_or(CalibrationError::NoReading)?;
        self.calibration.calibrate(raw, known)?;
        self.detector.reset();
        Ok(())
    }

    /// Replaces the calibration (one loaded from flash); the detector starts over.
    pub fn set_calibration(&mut self, calibration: Calibration) {
        self.calibration = calibration;
        self.detector.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use replenish_protocol::{SensorKind, Unit};
    use std::vec::Vec;

    fn id(s: &str) -> Id {
        Id::new(s).unwrap()
    }

    fn monitor() -> SlotMonitor {
        let config = DetectorConfig {
            settle_samples: 5,
            ..DetectorConfig::default()
        };
        SlotMonitor::new(id("milk"), Calibration::new(10_000, 0.1), config)
    }

    fn feed(m: &mut SlotMonitor, raw: i32, n: usize) -> Vec<ReportBody> {
        (0..n).filter_map(|_| m.sample_raw(raw)).collect()
    }

    #[test]
    fn initial_and_consumption_are_level_reports_refill_is_a_refill() {
        let mut m = monitor();
        assert_eq!(m.level_report(), None);
        assert_eq!(
            feed(&mut m, 20_000, 10),
            [ReportBody::Level {
                slot: id("milk"),
                remaining: 1000.0
            }]
        );
        assert_eq!(
            feed(&mut m, 17_500, 10),
            [ReportBody::Level {
                slot: id("milk"),
                remaining: 750.0
            }]
        );
        assert_eq!(
            feed(&mut m, 20_000, 10),
            [ReportBody::Refill {
                slot: id("milk"),
                before: 750.0,
                after: 1000.0
            }]
        );
        assert_eq!(
            m.level_report(),
            Some(ReportBody::Level {
                slot: id("milk"),
                remaining: 1000.0
            })
        );
        assert_eq!(m.level(), Some(1000.0));
    }

    #[test]
    fn tare_and_calibrate_use_recent_readings_and_restart_detection() {
        let mut m = SlotMonitor::new(
            id("beans"),
            Calibration::default(),
            DetectorConfig::default(),
        );
        assert_eq!(m.tare(), Err(CalibrationError::NoReading));
        assert_eq!(m.calibrate(100.0), Err(CalibrationError::NoReading));
        // Empty hopper, with one glitch among the readings.
        for raw in [5_000, 5_002, 4_998, 900_000, 5_001, 4_999] {
            m.sample_raw(raw);
        }
        m.tare().unwrap();
        assert_eq!(m.calibration().offset, 5_000);
        // Calibrating without adding anything is refused and changes nothing.
        assert!(matches!(
            m.calibrate(100.0),
            Err(CalibrationError::TooClose { .. })
        ));
        assert_eq!(m.calibration().offset, 5_000);
        // 100 g put in.
        let reports: Vec<_> = (0..40).filter_map(|_| m.sample_raw(45_000)).collect();
        m.calibrate(100.0).unwrap();
        assert!((m.calibration().amount(45_000) - 100.0).abs() < 1e-3);
        assert_eq!(reports.len(), 1, "uncalibrated initial level: {reports:?}");
        assert_eq!(m.level(), None, "detection restarted");
        let reports: Vec<_> = (0..40).filter_map(|_| m.sample_raw(45_000)).collect();
        assert!(
            matches!(&reports[..], [ReportBody::Level { remaining, .. }] if (*remaining - 100.0).abs() < 1e-3),
            "{reports:?}"
        );
        assert_eq!(m.recent_raw(), Some(45_000));
    }

    #[test]
    fn for_spec_uses_the_unit() {
        let spec = SlotSpec {
            id: id("eggs"),
            consumable: id("eggs"),
            unit: Unit::Count,
            capacity: 10.0,
            sensor: SensorKind::Level,
        };
        let mut m = SlotMonitor::for_spec(&spec, Calibration::new(0, 1.0 / 60.0));
        assert_eq!(m.detector().config().min_change, 0.5);
        assert_eq!(m.slot(), &id("eggs"));
        m.set_calibration(Calibration::new(0, 1.0 / 50.0));
        assert_eq!(m.calibration().scale, 1.0 / 50.0);
        let out: Vec<_> = (0..40).filter_map(|_| m.sample_amount(6.0)).collect();
        assert_eq!(
            out,
            [ReportBody::Level {
                slot: id("eggs"),
                remaining: 6.0
            }]
        );
    }
}
