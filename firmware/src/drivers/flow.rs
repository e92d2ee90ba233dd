//! Pulse-counting flow meter (a hall-effect turbine such as the YF-S201, ~450 pulses per litre).
//!
//! The pulses are counted outside this module, by an edge interrupt or a hardware pulse counter;
//! [`FlowMeter`] turns the counts into millilitres and groups them into dispenses: a dispense
//! ends when no pulse arrived for the idle time. Pure: time is passed in.

/// Why a flow meter was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FlowError {
    /// Pulses per litre must be a finite number greater than zero.
    #[error("pulses per litre must be a finite number greater than zero")]
    BadPulsesPerLitre,
}

/// Converts pulse counts to millilitres and detects dispenses.
///
/// ```
/// use replenish_firmware::drivers::flow::FlowMeter;
///
/// let mut meter = FlowMeter::new(450.0, 2_000).unwrap();
/// meter.add_pulses(90, 1_000);
/// meter.add_pulses(45, 1_500);
/// assert_eq!(meter.poll(3_000), None); // still within the idle time
/// assert_eq!(meter.poll(3_500), Some(300.0)); // 135 pulses = 300 ml
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct FlowMeter {
    pulses_per_litre: f32,
    idle_ms: u64,
    total_pulses: u64,
    dispense_pulses: u64,
    last_pulse_ms: Option<u64>,
    last_counter: Option<u32>,
}

impl FlowMeter {
    /// A meter of `pulses_per_litre`, ending a dispense after `idle_ms` without pulses.
    pub fn new(pulses_per_litre: f32, idle_ms: u64) -> Result<Self, FlowError> {
        if !pulses_per_litre.is_finite() || pulses_per_litre <= 0.0 {
            return Err(FlowError::BadPulsesPerLitre);
        }
        Ok(Self {
            pulses_per_litre,
            idle_ms,
            total_pulses: 0,
            dispense_pulses: 0,
            last_pulse_ms: None,
            last_counter: None,
        })
    }

    /// Millilitres for a number of pulses.
    pub fn ml(&self, pulses: u64) -> f32 {
        (pulses as f64 * 1000.0 / f64::from(self.pulses_per_litre)) as f32
    }

    /// Adds `count` pulses seen up to `now_ms` (the edges counted since the last call).
    pub fn add_pulses(&mut self, count: u32, now_ms: u64) {
        if count == 0 {
            return;
        }
        self.total_pulses += u64::from(count);
        self.dispense_pulses += u64::from(count);
        self.last_pulse_ms = Some(now_ms);
    }

    /// Feeds the value of a free-running, wrapping 32-bit pulse counter. The first call only
    /// takes the baseline. (Extend a narrower hardware counter to 32 bits first.)
    pub fn update_counter(&mut self, counter: u32, now_ms: u64) {
        if let Some(last) = self.last_counter {
            self.add_pulses(counter.wrapping_sub(last), now_ms);
        }
        self.last_counter = Some(counter);
    }

    /// Whether a dispense is under way (pulses seen and not yet ended by [`poll`](Self::poll)).
    pub fn dispensing(&self) -> bool {
        self.dispense_pulses > 0
    }

    /// Ends the current dispense if no pulse came for the idle time; returns its millilitres.
    pub fn poll(&mut self, now_ms: u64) -> Option<f32> {
        let last = self.last_pulse_ms?;
        if self.dispense_pulses == 0 || now_ms.saturating_sub(last) < self.idle_ms {
            return None;
        }
        let ml = self.ml(self.dispense_pulses);
        self.dispense_pulses = 0;
        Some(ml)
    }

    /// Millilitres measured since start.
    pub fn total_ml(&self) -> f64 {
        self.total_pulses as f64 * 1000.0 / f64::from(self.pulses_per_litre)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_bad_calibration() {
        for bad in [0.0, -1.0, f32::NAN, f32::INFINITY] {
            assert_eq!(FlowMeter::new(bad, 1), Err(FlowError::BadPulsesPerLitre));
        }
    }

    #[test]
    fn dispenses_end_after_the_idle_time() {
        let mut m = FlowMeter::new(500.0, 1_000).unwrap();
        assert_eq!(m.poll(0), None);
        m.add_pulses(0, 10);
        assert!(!m.dispensing());
        m.add_pulses(100, 100);
        m.add_pulses(25, 900);
        assert!(m.dispensing());
        assert_eq!(m.poll(1_899), None);
        assert_eq!(m.poll(1_900), Some(250.0));
        assert_eq!(m.poll(5_000), None);
        m.add_pulses(5, 6_000);
        assert_eq!(m.poll(7_000), Some(10.0));
        assert_eq!(m.total_ml(), 260.0);
    }

    #[test]
    fn wrapping_counter() {
        let mut m = FlowMeter::new(1000.0, 0).unwrap();
        m.update_counter(u32::MAX - 9, 0);
        assert!(!m.dispensing());
        m.update_counter(10, 5);
        assert_eq!(m.poll(5), Some(20.0));
        m.update_counter(10, 6);
        assert_eq!(m.poll(6), None);
    }
}
