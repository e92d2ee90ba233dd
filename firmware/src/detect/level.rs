//! Settled-level detection for load-cell and level slots.
//!
//! (The algorithm is described on [`LevelDetector`].)

use super::filter::Median;
use replenish_protocol::Unit;

/// Largest median window a [`LevelDetector`] supports.
pub const MAX_MEDIAN_WINDOW: usize = 15;

/// Tuning of a [`LevelDetector`]. Amounts are in the slot's unit; counts are samples.
///
/// The defaults assume about 10 samples per second (the HX711's slow rate):
/// [`settle_samples`](Self::settle_samples) = 30 is three seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectorConfig {
    /// Hysteresis: a settled level must differ from the committed one by more than this to count
    /// as consumption or refill.
    pub min_change: f32,
    /// Filtered values within this band (max − min) count as steady.
    pub settle_band: f32,
    /// How many consecutive steady values make a settled reading.
    pub settle_samples: u8,
    /// Median filter length, `1..=`[`MAX_MEDIAN_WINDOW`].
    pub median_window: u8,
    /// A sample this far from the current median is an outlier.
    pub outlier_limit: f32,
    /// After this many outliers in a row the level is taken to have moved.
    pub max_outlier_run: u8,
    /// A settled reading below this means the container is off the scale.
    pub removed_below: f32,
}

impl Default for DetectorConfig {
    /// Tuned for grams (and millilitres): [`DetectorConfig::for_unit`] with [`Unit::G`].
    fn default() -> Self {
        Self::for_unit(Unit::G)
    }
}

impl DetectorConfig {
    /// A configuration whose thresholds all derive from `min_change`, the smallest change worth
    /// reporting: settle band `0.75 ×`, outlier limit `12.5 ×`, container-removed threshold
    /// `−10 ×`; 30 settle samples, a median of 5, and up to 3 outliers in a row.
    pub fn scaled(min_change: f32) -> Self {
        let min_change = if min_change.is_finite() {
            min_change.abs()
        } else {
            0.0
        };
        Self {
            min_change,
            settle_band: 0.75 * min_change,
            settle_samples: 30,
            median_window: 5,
            outlier_limit: 12.5 * min_change,
            max_outlier_run: 3,
            removed_below: -10.0 * min_change,
        }
    }

    /// Sensible defaults per unit: 2 g, 2 ml, or half a piece.
    pub fn for_unit(unit: Unit) -> Self {
        match unit {
            Unit::G | Unit::Ml => Self::scaled(2.0),
            Unit::Count => Self::scaled(0.5),
        }
    }

    /// The configuration with out-of-range values brought into range: thresholds made finite and
    /// non-negative, `settle_samples >= 1`, `median_window` in `1..=`[`MAX_MEDIAN_WINDOW`].
    pub fn sanitized(mut self) -> Self {
        let non_negative = |v: f32| if v.is_finite() { v.abs() } else { 0.0 };
        self.min_change = non_negative(self.min_change);
        self.settle_band = non_negative(self.settle_band);
        self.outlier_limit = if self.outlier_limit.is_nan() {
            f32::INFINITY
        } else {
            self.outlier_limit.abs()
        };
        if self.removed_below.is_nan() {
            self.removed_below = f32::NEG_INFINITY;
        }
        self.settle_samples = self.settle_samples.max(1);
        self.median_window = self.median_window.clamp(1, MAX_MEDIAN_WINDOW as u8);
        self
    }
}

/// What a [`LevelDetector`] saw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Detection {
    /// The first settled level since start or [`reset`](LevelDetector::reset).
    Initial {
        /// The level.
        level: f32,
    },
    /// The level dropped: something was taken.
    Consumed {
        /// How much was taken.
        amount: f32,
        /// The level now.
        level: f32,
    },
    /// The level rose: the slot was refilled.
    Refilled {
        /// The level before.
        before: f32,
        /// The level now.
        after: f32,
    },
}

/// Consecutive steady filtered values.
#[derive(Debug, Clone, Copy, Default)]
struct Run {
    count: u16,
    first: f32,
    min: f32,
    max: f32,
    /// Sum of `value - first`, for a precise mean.
    sum: f32,
}

impl Run {
    fn start(value: f32) -> Self {
        Self {
            count: 1,
            first: value,
            min: value,
            max: value,
            sum: 0.0,
        }
    }

    fn mean(&self) -> f32 {
        self.first + self.sum / f32::from(self.count.max(1))
    }
}

/// Detects settled levels and their changes in a stream of amounts. Pure: no clock, no I/O.
///
/// Each sample goes through three stages:
///
/// 1. **Outlier rejection**: a sample further than [`DetectorConfig::outlier_limit`] from the
///    current median is dropped (an electrical glitch, a knock), unless more than
///    [`DetectorConfig::max_outlier_run`] such samples arrive in a row: then the level really
///    moved and the filter restarts from the new value. NaN and infinite samples are dropped.
/// 2. **Median filter** over [`DetectorConfig::median_window`] samples.
/// 3. **Settling**: the reading is settled once [`DetectorConfig::settle_samples`] consecutive
///    filtered values lie within [`DetectorConfig::settle_band`] (max − min). Its value is their
///    mean.
///
/// Each settled value is then compared with the last *committed* level, once per settled run:
///
/// * within [`DetectorConfig::min_change`] of it: nothing happened (noise, creep, or a transient
///   that returned to where it was: a hand on the shelf, a container lifted and put back);
/// * lower by more: [`Detection::Consumed`]; higher by more: [`Detection::Refilled`];
/// * below [`DetectorConfig::removed_below`]: the container is off the scale (its empty weight
///   was tared out). Nothing is committed; when it comes back, its new level is compared with
///   the level before it was lifted, so pouring from a lifted carton counts as consumption.
///
/// A transient shorter than the settle time never settles and so never reaches the comparison.
/// Committed levels only move by whole detected changes, so the detected consumption between two
/// refills adds up to the difference of two settled levels: small errors do not accumulate.
#[derive(Debug, Clone)]
pub struct LevelDetector {
    config: DetectorConfig,
    filter: Median<f32, MAX_MEDIAN_WINDOW>,
    outliers_in_row: u8,
    run: Run,
    committed: Option<f32>,
    present: bool,
}

impl LevelDetector {
    /// A detector with the given configuration ([sanitized](DetectorConfig::sanitized)).
    pub fn new(config: DetectorConfig) -> Self {
        let config = config.sanitized();
        Self {
            config,
            filter: Median::new(usize::from(config.median_window)),
            outliers_in_row: 0,
            run: Run::default(),
            committed: None,
            present: true,
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &DetectorConfig {
        &self.config
    }

    /// The last committed (settled) level, `None` before the first.
    pub fn level(&self) -> Option<f32> {
        self.committed
    }

    /// `false` while the last settled reading said the container is off the scale.
    pub fn container_present(&self) -> bool {
        self.present
    }

    /// Whether the current reading is settled (steady for `settle_samples`).
    pub fn is_settled(&self) -> bool {
        self.run.count >= u16::from(self.config.settle_samples)
    }

    /// Forgets everything, including the committed level: the next settled level is reported
    /// as [`Detection::Initial`]. Use it after the calibration changed.
    pub fn reset(&mut self) {
        *self = Self::new(self.config);
    }

    /// Feeds one sample; returns a detection when a settled level was just committed.
    pub fn push(&mut self, amount: f32) -> Option<Detection> {
        if !amount.is_finite() {
            return None;
        }
        if let Some(median) = self.filter.median()
            && (amount - median).abs() > self.config.outlier_limit
        {
            if self.outliers_in_row < self.config.max_outlier_run {
                self.outliers_in_row += 1;
                return None;
            }
            // Too many in a row: the level moved. Start over from here.
            self.filter.clear();
        }
        self.outliers_in_row = 0;
        self.filter.push(amount);
        let filtered = self.filter.median()?;

        let run = &mut self.run;
        if run.count == 0 {
            *run = Run::start(filtered);
        } else {
            let min = run.min.min(filtered);
            let max = run.max.max(filtered);
            if max - min > self.config.settle_band {
                *run = Run::start(filtered);
            } else {
                run.min = min;
                run.max = max;
                run.sum += filtered - run.first;
                run.count = run.count.saturating_add(1);
            }
        }
        if run.count == u16::from(self.config.settle_samples) {
            let settled = run.mean();
            self.settled(settled)
        } else {
            None
        }
    }

    fn settled(&mut self, value: f32) -> Option<Detection> {
        if value < self.config.removed_below {
            self.present = false;
            return None;
        }
        self.present = true;
        let level = value.max(0.0);
        let Some(before) = self.committed else {
            self.committed = Some(level);
            return Some(Detection::Initial { level });
        };
        let change = level - before;
        if change < -self.config.min_change {
            self.committed = Some(level);
            Some(Detection::Consumed {
                amount: before - level,
                level,
            })
        } else if change > self.config.min_change {
            self.committed = Some(level);
            Some(Detection::Refilled {
                before,
                after: level,
            })
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn config() -> DetectorConfig {
        DetectorConfig {
            settle_samples: 10,
            ..DetectorConfig::default()
        }
    }

    /// Pushes `n` copies of `value`, collecting detections.
    fn feed(d: &mut LevelDetector, value: f32, n: usize) -> Vec<Detection> {
        (0..n).filter_map(|_| d.push(value)).collect()
    }

    #[test]
    fn first_settled_level_is_initial() {
        let mut d = LevelDetector::new(config());
        assert_eq!(feed(&mut d, 500.0, 9), []);
        assert_eq!(d.level(), None);
        assert_eq!(
            feed(&mut d, 500.0, 1),
            [Detection::Initial { level: 500.0 }]
        );
        assert_eq!(d.level(), Some(500.0));
        assert!(d.is_settled());
        assert_eq!(feed(&mut d, 500.0, 100), []);
    }

    #[test]
    fn drops_and_rises_beyond_hysteresis_are_consumption_and_refill() {
        let mut d = LevelDetector::new(config());
        feed(&mut d, 500.0, 20);
        assert_eq!(
            feed(&mut d, 491.0, 20),
            [Detection::Consumed {
                amount: 9.0,
                level: 491.0
            }]
        );
        assert_eq!(
            feed(&mut d, 900.0, 20),
            [Detection::Refilled {
                before: 491.0,
                after: 900.0
            }]
        );
    }

    #[test]
    fn small_changes_accumulate_until_they_exceed_the_hysteresis() {
        let mut d = LevelDetector::new(config());
        feed(&mut d, 100.0, 20);
        assert_eq!(feed(&mut d, 99.0, 20), []);
        assert_eq!(feed(&mut d, 98.5, 20), []);
        assert_eq!(d.level(), Some(100.0));
        assert_eq!(
            feed(&mut d, 97.5, 20),
            [Detection::Consumed {
                amount: 2.5,
                level: 97.5
            }]
        );
    }

    #[test]
    fn short_press_and_lifted_container_are_ignored() {
        let mut d = LevelDetector::new(config());
        feed(&mut d, 300.0, 20);
        // A hand on the shelf for less than the settle time.
        assert_eq!(feed(&mut d, 800.0, 8), []);
        assert_eq!(feed(&mut d, 300.0, 20), []);
        // The carton lifted for a long time (its empty weight was tared out), then put back.
        assert_eq!(feed(&mut d, -60.0, 200), []);
        assert!(!d.container_present());
        assert_eq!(feed(&mut d, 300.0, 20), []);
        assert!(d.container_present());
        assert_eq!(d.level(), Some(300.0));
    }

    #[test]
    fn pouring_from_a_lifted_container_is_consumption() {
        let mut d = LevelDetector::new(config());
        feed(&mut d, 1000.0, 20);
        feed(&mut d, -35.0, 50);
        assert_eq!(
            feed(&mut d, 750.0, 20),
            [Detection::Consumed {
                amount: 250.0,
                level: 750.0
            }]
        );
    }

    #[test]
    fn single_spikes_and_bad_samples_do_not_break_settling() {
        let mut d = LevelDetector::new(config());
        let mut out = Vec::new();
        for i in 0..10 {
            out.extend(d.push(200.0));
            if i % 3 == 0 {
                out.extend(d.push(5_000.0));
                out.extend(d.push(f32::NAN));
                out.extend(d.push(f32::NEG_INFINITY));
            }
        }
        assert_eq!(out, [Detection::Initial { level: 200.0 }]);
    }

    #[test]
    fn a_step_larger_than_the_outlier_limit_is_accepted_after_a_few_samples() {
        let mut d = LevelDetector::new(config());
        feed(&mut d, 100.0, 20);
        let out = feed(&mut d, 600.0, 12);
        assert_eq!(out, [], "3 rejected, then 10 to settle");
        assert_eq!(
            feed(&mut d, 600.0, 1),
            [Detection::Refilled {
                before: 100.0,
                after: 600.0
            }]
        );
    }

    #[test]
    fn noise_within_the_band_is_averaged() {
        let mut d = LevelDetector::new(config());
        let noise = [0.3, -0.2, 0.1, -0.4, 0.2, 0.0, -0.1, 0.4, -0.3, 0.0];
        let out: Vec<_> = noise
            .iter()
            .cycle()
            .take(30)
            .filter_map(|n| d.push(50.0 + n))
            .collect();
        let [Detection::Initial { level }] = out[..] else {
            panic!("{out:?}")
        };
        assert!((level - 50.0).abs() < 0.2, "{level}");
    }

    #[test]
    fn levels_are_never_negative_and_reset_forgets() {
        let mut d = LevelDetector::new(config());
        assert_eq!(feed(&mut d, -1.0, 20), [Detection::Initial { level: 0.0 }]);
        d.reset();
        assert_eq!(d.level(), None);
        assert_eq!(feed(&mut d, 10.0, 10), [Detection::Initial { level: 10.0 }]);
    }

    #[test]
    fn configs_are_scaled_per_unit_and_sanitized() {
        let g = DetectorConfig::for_unit(Unit::G);
        assert_eq!(g, DetectorConfig::default());
        assert_eq!(g.min_change, 2.0);
        assert_eq!(DetectorConfig::for_unit(Unit::Count).min_change, 0.5);
        let bad = DetectorConfig {
            min_change: f32::NAN,
            settle_band: -1.0,
            settle_samples: 0,
            median_window: 200,
            outlier_limit: f32::NAN,
            max_outlier_run: 0,
            removed_below: f32::NAN,
        };
        let d = LevelDetector::new(bad);
        let c = d.config();
        assert_eq!((c.min_change, c.settle_band), (0.0, 1.0));
        assert_eq!(
            (c.settle_samples, c.median_window),
            (1, MAX_MEDIAN_WINDOW as u8)
        );
        assert_eq!(c.outlier_limit, f32::INFINITY);
        assert_eq!(c.removed_below, f32::NEG_INFINITY);
    }
}
