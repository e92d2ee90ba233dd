//! Turning sensor samples into protocol reports.
//!
//! * [`LevelDetector`]: pure signal processing for level slots (load cells, level sensors). One
//!   calibrated amount per sample in, a [`Detection`] out when a settled level changes.
//! * [`SlotMonitor`]: a slot's [`Calibration`](crate::Calibration) and detector together, taking
//!   raw counts and producing [`ReportBody`](replenish_protocol::ReportBody)s; it also tares and
//!   calibrates from its recent readings.
//! * [`UsageCounter`]: usage slots (brews, dispenses) that count what they consumed.
//! * [`LifespanTracker`]: lifespan slots (a water filter's litres and days).

mod filter;
mod level;
mod lifespan;
mod slot;
mod usage;

#[cfg(test)]
mod trace_tests;

pub use level::{Detection, DetectorConfig, LevelDetector, MAX_MEDIAN_WINDOW};
pub use lifespan::LifespanTracker;
pub use slot::{RAW_WINDOW, SlotMonitor};
pub use usage::UsageCounter;
