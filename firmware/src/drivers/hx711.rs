//! HX711 24-bit load-cell ADC, bit-banged over two GPIOs.
//!
//! The chip pulls `DOUT` low when a conversion is ready. Each rising edge on `PD_SCK` then shifts
//! out one bit, most significant first, 24 in all (two's complement). One to three more pulses
//! choose the input and gain of the *next* conversion ([`Gain`]): 25 pulses channel A ×128, 26
//! channel B ×32, 27 channel A ×64. Holding `PD_SCK` high for more than 60 µs powers the chip
//! down; bringing it low again resets it (channel A ×128).
//!
//! ```
//! # use embedded_hal_mock::eh1::{delay::NoopDelay, digital::{Mock, State, Transaction}};
//! use replenish_firmware::drivers::hx711::Hx711;
//! # let mut dout_tx = vec![Transaction::get(State::Low)];
//! # dout_tx.extend((0..24).map(|_| Transaction::get(State::Low)));
//! # let sck_tx: Vec<_> = (0..25)
//! #     .flat_map(|_| [Transaction::set(State::High), Transaction::set(State::Low)])
//! #     .collect();
//! # let (dout, sck) = (Mock::new(&dout_tx), Mock::new(&sck_tx));
//! let mut hx = Hx711::new(dout, sck, NoopDelay::new());
//! let raw: i32 = hx.read_raw()?;
//! # assert_eq!(raw, 0);
//! # let (mut dout, mut sck, _) = hx.release();
//! # dout.done();
//! # sck.done();
//! # Ok::<(), replenish_firmware::drivers::hx711::Error<embedded_hal_mock::eh1::MockError>>(())
//! ```
//!
//! Timing: `PD_SCK` stays high about 1 µs per bit. An interrupt that keeps it high for more than
//! 60 µs mid-read powers the chip down and corrupts that reading; read from a context that is not
//! preempted for that long, or treat an isolated wild reading as noise (the
//! [`LevelDetector`](crate::LevelDetector) rejects outliers).

use embedded_hal::delay::DelayNs;
use embedded_hal::digital::{InputPin, OutputPin};

/// Smallest reading; the chip also outputs it when the input is below its range.
pub const RAW_MIN: i32 = -0x80_0000;
/// Largest reading; the chip also outputs it when the input is above its range.
pub const RAW_MAX: i32 = 0x7F_FFFF;

/// Time `PD_SCK` is held high and low for each pulse, in ns (datasheet minimum 200 ns; high must
/// stay below 60 µs).
pub const PULSE_NS: u32 = 1_000;
/// Time `PD_SCK` is held high to power the chip down, in µs (datasheet: more than 60 µs).
pub const POWER_DOWN_US: u32 = 100;
/// Default time [`Hx711::read_raw`] waits for a conversion, in ms. At 10 samples per second a
/// conversion takes 100 ms, and the first one after power-up or a gain change 400 ms.
pub const DEFAULT_TIMEOUT_MS: u32 = 500;

/// Input channel and gain of a conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Gain {
    /// Channel A, gain 128 (the default after power-up): 25 pulses.
    #[default]
    A128,
    /// Channel B, gain 32: 26 pulses.
    B32,
    /// Channel A, gain 64: 27 pulses.
    A64,
}

impl Gain {
    /// Total `PD_SCK` pulses of a read that selects this gain for the next conversion.
    pub const fn pulses(self) -> u8 {
        match self {
            Gain::A128 => 25,
            Gain::B32 => 26,
            Gain::A64 => 27,
        }
    }

    /// The gain selected by a read of `pulses` pulses, if any.
    pub const fn from_pulses(pulses: u8) -> Option<Self> {
        match pulses {
            25 => Some(Gain::A128),
            26 => Some(Gain::B32),
            27 => Some(Gain::A64),
            _ => None,
        }
    }
}

/// Whether a reading is at the end of the range (the input is out of range, or the bridge is
/// disconnected).
pub const fn is_saturated(raw: i32) -> bool {
    raw <= RAW_MIN || raw >= RAW_MAX
}

/// Sign-extends a 24-bit two's complement word.
pub const fn sign_extend_24(word: u32) -> i32 {
    ((word << 8) as i32) >> 8
}

/// An HX711 error: a pin failed, or no conversion was ready.
///
/// `D` is the `DOUT` pin's error type, `S` the `PD_SCK` pin's (the same by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error<D, S = D> {
    /// Reading `DOUT` failed.
    #[error("HX711 DOUT pin error: {0:?}")]
    Dout(D),
    /// Driving `PD_SCK` failed.
    #[error("HX711 PD_SCK pin error: {0:?}")]
    Sck(S),
    /// No conversion is ready (`DOUT` is high); try again later.
    #[error("HX711 has no conversion ready")]
    NotReady,
    /// No conversion became ready in time: the chip is powered down, disconnected or broken.
    #[error("HX711 had no conversion ready within {ms} ms")]
    Timeout {
        /// How long the driver waited.
        ms: u32,
    },
}

/// HX711 driver: `DOUT` is an input, `PD_SCK` an output, `D` provides the short delays.
///
/// `PD_SCK` must be low for the chip to run; it is low after a microcontroller reset on most
/// boards, and [`power_up`](Self::power_up) drives it low.
#[derive(Debug)]
pub struct Hx711<DOUT, SCK, D> {
    dout: DOUT,
    sck: SCK,
    delay: D,
    gain: Gain,
    timeout_ms: u32,
}

impl<DOUT, SCK, D> Hx711<DOUT, SCK, D>
where
    DOUT: InputPin,
    SCK: OutputPin,
    D: DelayNs,
{
    /// A driver selecting [`Gain::A128`], waiting up to [`DEFAULT_TIMEOUT_MS`] in
    /// [`read_raw`](Self::read_raw).
    pub fn new(dout: DOUT, sck: SCK, delay: D) -> Self {
        Self {
            dout,
            sck,
            delay,
            gain: Gain::A128,
            timeout_ms: DEFAULT_TIMEOUT_MS,
        }
    }

    /// Gives back the pins and the delay.
    pub fn release(self) -> (DOUT, SCK, D) {
        (self.dout, self.sck, self.delay)
    }

    /// The gain requested for future conversions.
    pub fn gain(&self) -> Gain {
        self.gain
    }

    /// Requests `gain` for future conversions. The chip learns it during the next read, so that
    /// read still returns a conversion at the previous gain, and (per the datasheet) the one
    /// after it needs time to settle: discard both.
    pub fn set_gain(&mut self, gain: Gain) {
        self.gain = gain;
    }

    /// How long [`read_raw`](Self::read_raw) waits for a conversion, in ms.
    pub fn timeout_ms(&self) -> u32 {
        self.timeout_ms
    }

    /// Sets how long [`read_raw`](Self::read_raw) waits for a conversion, in ms.
    pub fn set_timeout_ms(&mut self, timeout_ms: u32) {
        self.timeout_ms = timeout_ms;
    }

    /// Whether a conversion is ready (`DOUT` low).
    pub fn is_ready(&mut self) -> Result<bool, Error<DOUT::Error, SCK::Error>> {
        self.dout.is_low().map_err(Error::Dout)
    }

    /// Reads a conversion if one is ready, or fails with [`Error::NotReady`] at once.
    pub fn try_read_raw(&mut self) -> Result<i32, Error<DOUT::Error, SCK::Error>> {
        if !self.is_ready()? {
            return Err(Error::NotReady);
        }
        self.shift_in()
    }

    /// Waits (polling every millisecond, up to the [timeout](Self::set_timeout_ms)) for a
    /// conversion and reads it: a signed count in [`RAW_MIN`]`..=`[`RAW_MAX`].
    pub fn read_raw(&mut self) -> Result<i32, Error<DOUT::Error, SCK::Error>> {
        let mut waited_ms = 0;
        while !self.is_ready()? {
            if waited_ms >= self.timeout_ms {
                return Err(Error::Timeout { ms: waited_ms });
            }
            self.delay.delay_ms(1);
            waited_ms += 1;
        }
        self.shift_in()
    }

    /// Powers the chip down: `PD_SCK` high for [`POWER_DOWN_US`]. It draws under 1 µA until
    /// [`power_up`](Self::power_up).
    pub fn power_down(&mut self) -> Result<(), Error<DOUT::Error, SCK::Error>> {
        self.sck.set_high().map_err(Error::Sck)?;
        self.delay.delay_us(POWER_DOWN_US);
        Ok(())
    }

    /// Powers the chip up (`PD_SCK` low). It resets to channel A ×128: the first conversion uses
    /// that gain, whatever [`gain`](Self::gain) says; the read of it selects the gain for the
    /// next one.
    pub fn power_up(&mut self) -> Result<(), Error<DOUT::Error, SCK::Error>> {
        self.sck.set_low().map_err(Error::Sck)
    }

    /// One `PD_SCK` pulse; with `sample`, returns `DOUT` as read while the clock is high.
    fn pulse(&mut self, sample: bool) -> Result<bool, Error<DOUT::Error, SCK::Error>> {
        self.sck.set_high().map_err(Error::Sck)?;
        self.delay.delay_ns(PULSE_NS);
        let bit = if sample {
            self.dout.is_high().map_err(Error::Dout)
        } else {
            Ok(false)
        };
        // Bring the clock down even if the read failed: high too long powers the chip down.
        self.sck.set_low().map_err(Error::Sck)?;
        self.delay.delay_ns(PULSE_NS);
        bit
    }

    fn shift_in(&mut self) -> Result<i32, Error<DOUT::Error, SCK::Error>> {
        let mut word: u32 = 0;
        for _ in 0..24 {
            word = (word << 1) | u32::from(self.pulse(true)?);
        }
        for _ in 24..self.gain.pulses() {
            self.pulse(false)?;
        }
        Ok(sign_extend_24(word))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_hal_mock::eh1::MockError;
    use embedded_hal_mock::eh1::delay::NoopDelay;
    use embedded_hal_mock::eh1::digital::{Mock, State, Transaction as Tx};
    use std::io::ErrorKind;
    use std::vec;
    use std::vec::Vec;

    type Driver = Hx711<Mock, Mock, NoopDelay>;

    /// The pin transactions of one read of `word` selecting `gain`: `DOUT` checked low, then per
    /// pulse `PD_SCK` high, `DOUT` sampled (for the first 24), `PD_SCK` low.
    fn read(word: u32, gain: Gain) -> (Vec<Tx>, Vec<Tx>) {
        let mut dout = vec![Tx::get(State::Low)];
        let mut sck = Vec::new();
        for i in 0..gain.pulses() {
            sck.push(Tx::set(State::High));
            if i < 24 {
                let bit = (word >> (23 - i)) & 1 == 1;
                dout.push(Tx::get(if bit { State::High } else { State::Low }));
            }
            sck.push(Tx::set(State::Low));
        }
        (dout, sck)
    }

    fn driver(dout: &[Tx], sck: &[Tx]) -> Driver {
        Hx711::new(Mock::new(dout), Mock::new(sck), NoopDelay::new())
    }

    fn done(hx: Driver) {
        let (mut dout, mut sck, _) = hx.release();
        dout.done();
        sck.done();
    }

    #[test]
    fn sign_extension() {
        assert_eq!(sign_extend_24(0x00_0000), 0);
        assert_eq!(sign_extend_24(0x7F_FFFF), RAW_MAX);
        assert_eq!(sign_extend_24(0x80_0000), RAW_MIN);
        assert_eq!(sign_extend_24(0xFF_FFFF), -1);
        assert_eq!(sign_extend_24(0xFF_FF38), -200);
        assert!(is_saturated(RAW_MAX) && is_saturated(RAW_MIN) && !is_saturated(-1));
    }

    #[test]
    fn reads_a_positive_value_msb_first_with_25_pulses() {
        let (dout, sck) = read(0x12_3456, Gain::A128);
        assert_eq!(sck.len(), 2 * 25);
        let mut hx = driver(&dout, &sck);
        assert_eq!(hx.read_raw().unwrap(), 0x12_3456);
        done(hx);
    }

    #[test]
    fn reads_negative_values() {
        for (word, value) in [
            (0xFF_FF38, -200),
            (0x80_0000, RAW_MIN),
            (0xED_CBAA, -0x12_3456),
        ] {
            let (dout, sck) = read(word, Gain::A128);
            let mut hx = driver(&dout, &sck);
            assert_eq!(hx.try_read_raw().unwrap(), value);
            done(hx);
        }
    }

    #[test]
    fn gain_selects_26_or_27_pulses() {
        for (gain, pulses) in [(Gain::B32, 26), (Gain::A64, 27)] {
            assert_eq!(Gain::from_pulses(pulses), Some(gain));
            let (dout, sck) = read(0x00_0101, gain);
            assert_eq!(sck.len(), 2 * usize::from(pulses));
            let mut hx = driver(&dout, &sck);
            hx.set_gain(gain);
            assert_eq!(hx.gain(), gain);
            assert_eq!(hx.read_raw().unwrap(), 0x101);
            done(hx);
        }
        assert_eq!(Gain::from_pulses(24), None);
        assert_eq!(Gain::default().pulses(), 25);
    }

    #[test]
    fn waits_for_data_ready() {
        let (ready, sck) = read(42, Gain::A128);
        let mut dout = vec![Tx::get(State::High), Tx::get(State::High)];
        dout.extend(ready);
        let mut hx = driver(&dout, &sck);
        assert_eq!(hx.read_raw().unwrap(), 42);
        done(hx);
    }

    #[test]
    fn not_ready_and_timeout() {
        let dout = vec![Tx::get(State::High); 4];
        let mut hx = driver(&dout, &[]);
        assert_eq!(hx.is_ready(), Ok(false));
        assert_eq!(hx.try_read_raw(), Err(Error::NotReady));
        hx.set_timeout_ms(1);
        assert_eq!(hx.timeout_ms(), 1);
        assert_eq!(hx.read_raw(), Err(Error::Timeout { ms: 1 }));
        done(hx);
    }

    #[test]
    fn power_down_holds_the_clock_high_and_power_up_releases_it() {
        let sck = [Tx::set(State::High), Tx::set(State::Low)];
        let mut hx = driver(&[], &sck);
        hx.power_down().unwrap();
        hx.power_up().unwrap();
        done(hx);
    }

    #[test]
    fn pin_errors_are_wrapped_and_the_clock_is_brought_low() {
        let err = MockError::Io(ErrorKind::NotConnected);
        let dout = [
            Tx::get(State::Low),
            Tx::get(State::High).with_error(err.clone()),
        ];
        let sck = [Tx::set(State::High), Tx::set(State::Low)];
        let mut hx = driver(&dout, &sck);
        assert_eq!(hx.read_raw(), Err(Error::Dout(err.clone())));
        done(hx);

        let sck = [Tx::set(State::High).with_error(err.clone())];
        let mut hx = driver(&[Tx::get(State::Low)], &sck);
        let e = hx.read_raw().unwrap_err();
        assert_eq!(e, Error::Sck(err));
        assert_eq!(
            std::format!("{e}"),
            "HX711 PD_SCK pin error: Io(NotConnected)"
        );
        done(hx);
    }
}
