//! Simulated hardware, so simulated appliances read their sensors through the real firmware
//! drivers.
//!
//! [`SimulatedHx711`] is an HX711 load-cell ADC: its `DOUT` ([`SimDout`], an `embedded-hal` 1.0
//! `InputPin`) and `PD_SCK` ([`SimSck`], an `OutputPin`) share the chip's state, and it speaks the
//! chip's real protocol: `DOUT` low when a conversion is ready, each rising edge of `PD_SCK`
//! shifts out the next bit (24, most significant first, two's complement), and 1 to 3 extra
//! pulses choose the gain of the next conversion. [`SimDelay`] keeps virtual time (it never
//! sleeps), so holding `PD_SCK` high for more than 60 µs powers the chip down, as on the bench.
//!
//! ```text
//! let scale = SimulatedHx711::new();
//! scale.set_amount(480.0, &calibration);          // what the load cell carries
//! let mut hx711 = scale.driver();                  // the real firmware driver
//! let raw = hx711.read_raw()?;                     // -> monitor.sample_raw(raw)
//! ```

use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use embedded_hal::delay::DelayNs;
use embedded_hal::digital::{ErrorType, InputPin, OutputPin};
use replenish_firmware::Calibration;
use replenish_firmware::drivers::hx711::{Gain, Hx711, RAW_MAX, RAW_MIN};

/// `PD_SCK` high for longer than this powers the chip down, in ns.
const POWER_DOWN_AFTER_NS: u64 = 60_000;

/// The HX711 driver over simulated pins.
pub type SimulatedHx711Driver = Hx711<SimDout, SimSck, SimDelay>;

#[derive(Debug)]
struct Chip {
    /// Channel A input, as a reading at gain 128.
    channel_a: i32,
    /// Channel B input, as a reading at gain 32.
    channel_b: i32,
    /// Input and gain of the conversion that is ready (chosen by the previous read).
    gain: Gain,
    /// `false` makes the chip look disconnected: `DOUT` stays high.
    available: bool,
    powered_down: bool,
    sck_high: bool,
    /// `PD_SCK` pulses in the read under way; 0 when none.
    pulses: u8,
    /// The conversion being shifted out.
    word: u32,
    /// `DOUT` during a read.
    bit: bool,
    /// Virtual time, advanced by [`SimDelay`].
    now_ns: u64,
    high_since_ns: u64,
    reads: u64,
}

impl Default for Chip {
    fn default() -> Self {
        Self {
            channel_a: 0,
            channel_b: 0,
            gain: Gain::A128,
            available: true,
            powered_down: false,
            sck_high: false,
            pulses: 0,
            word: 0,
            bit: false,
            now_ns: 0,
            high_since_ns: 0,
            reads: 0,
        }
    }
}

impl Chip {
    /// The reading the conversion at the current gain gives.
    fn conversion(&self) -> i32 {
        match self.gain {
            Gain::A128 => self.channel_a,
            Gain::A64 => self.channel_a / 2,
            Gain::B32 => self.channel_b,
        }
    }

    /// Ends a read once its gain pulses are done and the clock is back low: the pulse count
    /// chooses the next gain, and the next conversion is ready at once.
    fn finish_read(&mut self) {
        if !self.sck_high && self.pulses >= 25 {
            self.gain = Gain::from_pulses(self.pulses.min(27)).unwrap_or(Gain::A128);
            self.pulses = 0;
            self.reads += 1;
        }
    }

    fn dout_high(&mut self) -> bool {
        self.finish_read();
        if self.powered_down || !self.available {
            return true;
        }
        match self.pulses {
            0 => false,
            1..=24 => self.bit,
            // The 25th pulse pulls DOUT high until the next conversion.
            _ => true,
        }
    }

    fn rising_edge(&mut self) {
        // After 25 or 26 pulses this edge may be another gain pulse; after 27 a new read begins.
        // (Drivers check DOUT before a read, which ends the previous one.)
        if self.pulses >= 27 {
            self.finish_read();
        }
        self.sck_high = true;
        self.high_since_ns = self.now_ns;
        if self.powered_down || (self.pulses == 0 && !self.available) {
            return;
        }
        if self.pulses == 0 {
            self.word = (self.conversion().clamp(RAW_MIN, RAW_MAX) as u32) & 0xFF_FFFF;
        }
        self.pulses = self.pulses.saturating_add(1);
        if self.pulses <= 24 {
            self.bit = (self.word >> (24 - u32::from(self.pulses))) & 1 == 1;
        }
    }

    fn falling_edge(&mut self) {
        self.sck_high = false;
        if self.powered_down {
            // Power up: the chip resets to channel A, gain 128.
            self.powered_down = false;
            self.gain = Gain::A128;
            self.pulses = 0;
        }
    }

    fn advance(&mut self, ns: u64) {
        self.now_ns = self.now_ns.saturating_add(ns);
        if self.sck_high
            && !self.powered_down
            && self.now_ns.saturating_sub(self.high_since_ns) > POWER_DOWN_AFTER_NS
        {
            self.powered_down = true;
            self.pulses = 0;
        }
    }
}

/// A simulated HX711: a handle to set what the load cell carries, and the pins and delay to give
/// the real [`Hx711`] driver. Clones share the same chip.
#[derive(Debug, Clone, Default)]
pub struct SimulatedHx711 {
    chip: Arc<Mutex<Chip>>,
}

impl SimulatedHx711 {
    /// A chip reading 0 on both channels, powered up, gain A128.
    pub fn new() -> Self {
        Self::default()
    }

    fn chip(&self) -> MutexGuard<'_, Chip> {
        lock(&self.chip)
    }

    /// The `DOUT` and `PD_SCK` pins.
    pub fn pins(&self) -> (SimDout, SimSck) {
        (
            SimDout {
                chip: Arc::clone(&self.chip),
            },
            SimSck {
                chip: Arc::clone(&self.chip),
            },
        )
    }

    /// A delay that advances the chip's virtual time (it does not sleep).
    pub fn delay(&self) -> SimDelay {
        SimDelay {
            chip: Arc::clone(&self.chip),
        }
    }

    /// The real firmware driver on this chip's pins and delay.
    pub fn driver(&self) -> SimulatedHx711Driver {
        let (dout, sck) = self.pins();
        Hx711::new(dout, sck, self.delay())
    }

    /// Sets channel A's reading (at gain 128), clamped to the 24-bit range. Takes effect from the
    /// next conversion; a read under way finishes with the old value.
    pub fn set_raw(&self, raw: i32) {
        self.chip().channel_a = raw.clamp(RAW_MIN, RAW_MAX);
    }

    /// Sets channel A to the reading that `calibration` maps to `amount`.
    pub fn set_amount(&self, amount: f32, calibration: &Calibration) {
        self.set_raw(calibration.raw_for(amount));
    }

    /// Channel A's reading at gain 128.
    pub fn raw(&self) -> i32 {
        self.chip().channel_a
    }

    /// Sets channel B's reading (at gain 32), clamped to the 24-bit range.
    pub fn set_channel_b_raw(&self, raw: i32) {
        self.chip().channel_b = raw.clamp(RAW_MIN, RAW_MAX);
    }

    /// With `false` the chip looks disconnected: `DOUT` stays high and reads time out.
    pub fn set_available(&self, available: bool) {
        self.chip().available = available;
    }

    /// Input and gain of the next conversion, as chosen by the last read (or the power-up reset).
    pub fn gain(&self) -> Gain {
        let mut chip = self.chip();
        chip.finish_read();
        chip.gain
    }

    /// Whether `PD_SCK` was held high long enough to power the chip down.
    pub fn is_powered_down(&self) -> bool {
        self.chip().powered_down
    }

    /// Completed reads since creation.
    pub fn reads(&self) -> u64 {
        let mut chip = self.chip();
        chip.finish_read();
        chip.reads
    }

    /// Virtual time passed through [`SimDelay`], in ns.
    pub fn elapsed_ns(&self) -> u64 {
        self.chip().now_ns
    }
}

fn lock(chip: &Mutex<Chip>) -> MutexGuard<'_, Chip> {
    // A panic elsewhere while holding the lock leaves a consistent chip: keep going.
    chip.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The simulated `DOUT` pin (an input for the driver).
#[derive(Debug, Clone)]
pub struct SimDout {
    chip: Arc<Mutex<Chip>>,
}

impl ErrorType for SimDout {
    type Error = Infallible;
}

impl InputPin for SimDout {
    fn is_high(&mut self) -> Result<bool, Infallible> {
        Ok(lock(&self.chip).dout_high())
    }

    fn is_low(&mut self) -> Result<bool, Infallible> {
        Ok(!lock(&self.chip).dout_high())
    }
}

/// The simulated `PD_SCK` pin (an output for the driver).
#[derive(Debug, Clone)]
pub struct SimSck {
    chip: Arc<Mutex<Chip>>,
}

impl ErrorType for SimSck {
    type Error = Infallible;
}

impl OutputPin for SimSck {
    fn set_low(&mut self) -> Result<(), Infallible> {
        let mut chip = lock(&self.chip);
        if chip.sck_high {
            chip.falling_edge();
        }
        Ok(())
    }

    fn set_high(&mut self) -> Result<(), Infallible> {
        let mut chip = lock(&self.chip);
        if !chip.sck_high {
            chip.rising_edge();
        }
        Ok(())
    }
}

/// A delay in the chip's virtual time: returns at once, and holding `PD_SCK` high across more
/// than 60 µs of it powers the chip down.
#[derive(Debug, Clone)]
pub struct SimDelay {
    chip: Arc<Mutex<Chip>>,
}

impl DelayNs for SimDelay {
    fn delay_ns(&mut self, ns: u32) {
        lock(&self.chip).advance(u64::from(ns));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use replenish_firmware::drivers::hx711::Error;
    use replenish_firmware::{DetectorConfig, SlotMonitor};
    use replenish_protocol::{Id, ReportBody};

    #[test]
    fn the_real_driver_reads_positive_and_negative_values() {
        let scale = SimulatedHx711::new();
        let mut hx = scale.driver();
        for raw in [123_456, -200, -1, 0, RAW_MAX, RAW_MIN, -0x12_3456] {
            scale.set_raw(raw);
            assert_eq!(hx.read_raw(), Ok(raw));
        }
        scale.set_raw(i32::MAX);
        assert_eq!(hx.read_raw(), Ok(RAW_MAX), "clamped to 24 bits");
        assert_eq!(scale.reads(), 8);
        assert!(scale.elapsed_ns() > 0);
    }

    #[test]
    fn set_amount_goes_through_the_calibration() {
        let calibration = Calibration::new(-52_000, 0.0021);
        let scale = SimulatedHx711::new();
        let mut hx = scale.driver();
        scale.set_amount(480.0, &calibration);
        let raw = hx.read_raw().unwrap();
        assert_eq!(raw, scale.raw());
        assert!((calibration.amount(raw) - 480.0).abs() < 0.002);
        scale.set_amount(0.0, &calibration);
        assert_eq!(hx.read_raw(), Ok(-52_000));
    }

    #[test]
    fn extra_pulses_choose_the_gain_of_the_next_conversion() {
        let scale = SimulatedHx711::new();
        scale.set_raw(10_000);
        scale.set_channel_b_raw(-3_000);
        let mut hx = scale.driver();
        hx.set_gain(Gain::B32);
        assert_eq!(
            hx.read_raw(),
            Ok(10_000),
            "this conversion was still at A128"
        );
        assert_eq!(scale.gain(), Gain::B32);
        assert_eq!(hx.read_raw(), Ok(-3_000));
        hx.set_gain(Gain::A64);
        assert_eq!(hx.read_raw(), Ok(-3_000));
        assert_eq!(scale.gain(), Gain::A64);
        assert_eq!(hx.read_raw(), Ok(5_000));
    }

    #[test]
    fn power_down_and_up_reset_the_gain() {
        let scale = SimulatedHx711::new();
        scale.set_raw(7_777);
        let mut hx = scale.driver();
        hx.set_gain(Gain::A64);
        hx.read_raw().unwrap();
        assert_eq!(scale.gain(), Gain::A64);
        hx.power_down().unwrap();
        assert!(scale.is_powered_down());
        hx.set_timeout_ms(5);
        assert_eq!(hx.try_read_raw(), Err(Error::NotReady));
        assert_eq!(hx.read_raw(), Err(Error::Timeout { ms: 5 }));
        hx.power_up().unwrap();
        assert!(!scale.is_powered_down());
        assert_eq!(scale.gain(), Gain::A128);
        assert_eq!(hx.read_raw(), Ok(7_777));
    }

    #[test]
    fn a_disconnected_chip_times_out() {
        let scale = SimulatedHx711::new();
        scale.set_available(false);
        let mut hx = scale.driver();
        hx.set_timeout_ms(3);
        assert_eq!(hx.read_raw(), Err(Error::Timeout { ms: 3 }));
        scale.set_available(true);
        scale.set_raw(42);
        assert_eq!(hx.read_raw(), Ok(42));
        let (_dout, _sck, _delay) = hx.release();
    }

    #[test]
    fn a_slot_monitor_reads_its_level_through_the_driver() {
        let calibration = Calibration::new(8_000, 0.005);
        let scale = SimulatedHx711::new();
        let mut hx = scale.driver();
        let mut monitor = SlotMonitor::new(
            Id::new("beans").unwrap(),
            calibration,
            DetectorConfig::default(),
        );
        scale.set_amount(350.0, &calibration);
        let reports: Vec<ReportBody> = (0..40)
            .filter_map(|_| monitor.sample_raw(hx.read_raw().unwrap()))
            .collect();
        assert!(
            matches!(&reports[..], [ReportBody::Level { remaining, .. }] if (*remaining - 350.0).abs() < 0.01),
            "{reports:?}"
        );
    }
}
