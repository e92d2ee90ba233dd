//! VL53L0X time-of-flight distance sensor over I²C, for tank levels.
//!
//! The sensor looks down at the liquid from the tank lid and measures the distance to the surface
//! (up to about 1.2 m on a good surface); [`TankGeometry`](crate::tank::TankGeometry) turns that
//! distance into millilitres.
//!
//! ```
//! use embedded_hal::{delay::DelayNs, i2c::I2c};
//! use replenish_firmware::drivers::vl53l0x::{Error, Vl53l0x};
//!
//! /// Distance to the liquid, if the sensor saw it.
//! fn distance_mm<I: I2c, D: DelayNs>(i2c: I, delay: D) -> Result<Option<u16>, Error<I::Error>> {
//!     let mut tof = Vl53l0x::new(i2c, delay);
//!     tof.init()?;
//!     Ok(tof.measure()?.valid_mm())
//! }
//! ```
//!
//! # What [`init`](Vl53l0x::init) does, and what it leaves out
//!
//! ST publishes no register map, only a C API. This driver follows the register sequence of that
//! API as transcribed by Pololu's VL53L0X library (the reference most drivers use), and does:
//!
//! * *DataInit*: check the model id (`0xEE`), 2.8 V I/O, standard I²C mode, read the "stop
//!   variable", disable the MSRC and pre-range signal checks, final-range signal rate limit
//!   0.25 MCPS;
//! * *StaticInit*: reference SPADs from the chip's NVM, ST's default tuning settings, "new
//!   sample ready" interrupt (active low), sequence steps DSS + pre-range + final range (MSRC and
//!   TCC off);
//! * *PerformRefCalibration*: VHV and phase calibration.
//!
//! Ranging is single shot ([`measure`](Vl53l0x::measure)), polled over I²C.
//!
//! **Not implemented**: the timing-budget recalculation of *StaticInit* (the final-range timeout
//! keeps the chip's power-on value, which was computed with MSRC and TCC on, so a measurement
//! takes a little less than ST's 33 ms and is a little noisier; the level detector takes the
//! median of several readings anyway), setting a timing budget or VCSEL periods (long-range or
//! high-accuracy modes), continuous and timed ranging, reading the `GPIO1` interrupt pin,
//! offset and cross-talk calibration. Not yet checked on hardware: the sequence is tested
//! against recorded transactions only.

use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;

/// The sensor's I²C address after power-up (7-bit).
pub const DEFAULT_ADDRESS: u8 = 0x29;
/// Value of the model id register of a VL53L0X.
pub const MODEL_ID: u8 = 0xEE;
/// Default time to wait for a calibration or a measurement, in ms (a measurement takes about
/// 30 ms).
pub const DEFAULT_TIMEOUT_MS: u32 = 100;

/// Register addresses (the names of ST's API).
mod reg {
    pub const SYSRANGE_START: u8 = 0x00;
    pub const SYSTEM_SEQUENCE_CONFIG: u8 = 0x01;
    pub const SYSTEM_INTERRUPT_CONFIG_GPIO: u8 = 0x0A;
    pub const SYSTEM_INTERRUPT_CLEAR: u8 = 0x0B;
    pub const RESULT_INTERRUPT_STATUS: u8 = 0x13;
    pub const RESULT_RANGE_STATUS: u8 = 0x14;
    pub const FINAL_RANGE_CONFIG_MIN_COUNT_RATE_RTN_LIMIT: u8 = 0x44;
    pub const DYNAMIC_SPAD_NUM_REQUESTED_REF_SPAD: u8 = 0x4E;
    pub const DYNAMIC_SPAD_REF_EN_START_OFFSET: u8 = 0x4F;
    pub const MSRC_CONFIG_CONTROL: u8 = 0x60;
    pub const GPIO_HV_MUX_ACTIVE_HIGH: u8 = 0x84;
    pub const VHV_CONFIG_PAD_SCL_SDA_EXTSUP_HV: u8 = 0x89;
    pub const I2C_SLAVE_DEVICE_ADDRESS: u8 = 0x8A;
    pub const GLOBAL_CONFIG_SPAD_ENABLES_REF_0: u8 = 0xB0;
    pub const GLOBAL_CONFIG_REF_EN_START_SELECT: u8 = 0xB6;
    pub const IDENTIFICATION_MODEL_ID: u8 = 0xC0;
    /// Page select of the undocumented registers.
    pub const PAGE: u8 = 0xFF;
    pub const POWER_MANAGEMENT: u8 = 0x80;
    pub const STOP_VARIABLE: u8 = 0x91;
}

/// ST's `DefaultTuningSettings` (`vl53l0x_tuning.h`): `(register, value)` in write order.
#[rustfmt::skip]
const TUNING: [(u8, u8); 80] = [
    (0xFF, 0x01), (0x00, 0x00), (0xFF, 0x00), (0x09, 0x00), (0x10, 0x00), (0x11, 0x00),
    (0x24, 0x01), (0x25, 0xFF), (0x75, 0x00), (0xFF, 0x01), (0x4E, 0x2C), (0x48, 0x00),
    (0x30, 0x20), (0xFF, 0x00), (0x30, 0x09), (0x54, 0x00), (0x31, 0x04), (0x32, 0x03),
    (0x40, 0x83), (0x46, 0x25), (0x60, 0x00), (0x27, 0x00), (0x50, 0x06), (0x51, 0x00),
    (0x52, 0x96), (0x56, 0x08), (0x57, 0x30), (0x61, 0x00), (0x62, 0x00), (0x64, 0x00),
    (0x65, 0x00), (0x66, 0xA0), (0xFF, 0x01), (0x22, 0x32), (0x47, 0x14), (0x49, 0xFF),
    (0x4A, 0x00), (0xFF, 0x00), (0x7A, 0x0A), (0x7B, 0x00), (0x78, 0x21), (0xFF, 0x01),
    (0x23, 0x34), (0x42, 0x00), (0x44, 0xFF), (0x45, 0x26), (0x46, 0x05), (0x40, 0x40),
    (0x0E, 0x06), (0x20, 0x1A), (0x43, 0x40), (0xFF, 0x00), (0x34, 0x03), (0x35, 0x44),
    (0xFF, 0x01), (0x31, 0x04), (0x4B, 0x09), (0x4C, 0x05), (0x4D, 0x04), (0xFF, 0x00),
    (0x44, 0x00), (0x45, 0x20), (0x47, 0x08), (0x48, 0x28), (0x67, 0x00), (0x70, 0x04),
    (0x71, 0x01), (0x72, 0xFE), (0x76, 0x00), (0x77, 0x00), (0xFF, 0x01), (0x0D, 0x01),
    (0xFF, 0x00), (0x80, 0x01), (0x01, 0xF8), (0xFF, 0x01), (0x8E, 0x01), (0x00, 0x01),
    (0xFF, 0x00), (0x80, 0x00),
];

/// A VL53L0X error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error<E> {
    /// The I²C bus failed.
    #[error("VL53L0X I2C error: {0:?}")]
    I2c(E),
    /// The device at the address is not a VL53L0X (its model id follows).
    #[error("not a VL53L0X: model id 0x{0:02x}")]
    WrongDevice(u8),
    /// The sensor did not finish a calibration or a measurement in time.
    #[error("VL53L0X did not answer within {ms} ms")]
    Timeout {
        /// How long the driver waited.
        ms: u32,
    },
    /// [`Vl53l0x::measure`] before a successful [`Vl53l0x::init`].
    #[error("VL53L0X is not initialised")]
    NotInitialized,
    /// A 7-bit address outside `0x08..=0x77`.
    #[error("invalid I2C address 0x{0:02x}")]
    InvalidAddress(u8),
}

/// What the sensor says about a measurement (the "device range status" of ST's API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RangeStatus {
    /// The distance is valid.
    Valid,
    /// Too little light came back: no target within range (an empty, deep tank; a dark or
    /// foaming surface).
    SignalFail,
    /// The phase is out of bounds: the target is beyond the unambiguous range.
    PhaseFail,
    /// The target is closer than the minimum range (about 30 mm).
    MinRangeFail,
    /// The chip reported a hardware failure (VCSEL or watchdog).
    HardwareFail,
    /// Any other code (ST's API reports these as "none").
    Other(u8),
}

impl RangeStatus {
    /// Decodes bits 6..3 of `RESULT_RANGE_STATUS`.
    pub const fn from_register(value: u8) -> Self {
        match (value >> 3) & 0x0F {
            11 => RangeStatus::Valid,
            4 => RangeStatus::SignalFail,
            6 | 9 => RangeStatus::PhaseFail,
            8 | 10 => RangeStatus::MinRangeFail,
            1..=3 => RangeStatus::HardwareFail,
            other => RangeStatus::Other(other),
        }
    }
}

/// One measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Measurement {
    /// The distance in mm as reported, whatever the status (8190 or more means "nothing seen").
    pub distance_mm: u16,
    /// Whether the distance can be trusted.
    pub status: RangeStatus,
}

impl Measurement {
    /// The distance in mm if the sensor called it valid.
    pub fn valid_mm(&self) -> Option<u16> {
        (self.status == RangeStatus::Valid).then_some(self.distance_mm)
    }
}

/// VL53L0X driver: owns the I²C bus (or a shared-bus handle) and a delay for polling.
#[derive(Debug)]
pub struct Vl53l0x<I2C, D> {
    i2c: I2C,
    delay: D,
    address: u8,
    timeout_ms: u32,
    /// Read during `init` and written back before each measurement, as ST's API does.
    stop_variable: Option<u8>,
}

impl<I2C, D, E> Vl53l0x<I2C, D>
where
    I2C: I2c<Error = E>,
    D: DelayNs,
{
    /// A driver for a sensor at [`DEFAULT_ADDRESS`]. Nothing is sent until
    /// [`init`](Self::init).
    pub fn new(i2c: I2C, delay: D) -> Self {
        Self::with_address(i2c, delay, DEFAULT_ADDRESS)
    }

    /// A driver for a sensor whose address was changed with [`set_address`](Self::set_address)
    /// (the chip forgets it on power-down).
    pub fn with_address(i2c: I2C, delay: D, address: u8) -> Self {
        Self {
            i2c,
            delay,
            address,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            stop_variable: None,
        }
    }

    /// Gives back the bus and the delay.
    pub fn release(self) -> (I2C, D) {
        (self.i2c, self.delay)
    }

    /// The 7-bit address the driver talks to.
    pub fn address(&self) -> u8 {
        self.address
    }

    /// How long a calibration or measurement may take, in ms.
    pub fn timeout_ms(&self) -> u32 {
        self.timeout_ms
    }

    /// Sets how long a calibration or measurement may take, in ms.
    pub fn set_timeout_ms(&mut self, timeout_ms: u32) {
        self.timeout_ms = timeout_ms;
    }

    /// Whether [`init`](Self::init) succeeded.
    pub fn is_initialized(&self) -> bool {
        self.stop_variable.is_some()
    }

    /// Reads the model id register ([`MODEL_ID`] on a VL53L0X).
    pub fn model_id(&mut self) -> Result<u8, Error<E>> {
        self.read(reg::IDENTIFICATION_MODEL_ID)
    }

    /// Checks the model id and configures the sensor for single-shot ranging (see the
    /// [module docs](self) for the steps, and what is left out). Call once after power-up; it
    /// takes two short calibrations (well under 100 ms).
    pub fn init(&mut self) -> Result<(), Error<E>> {
        self.stop_variable = None;
        let id = self.model_id()?;
        if id != MODEL_ID {
            return Err(Error::WrongDevice(id));
        }

        // DataInit: 2.8 V I/O (most breakout boards), standard-mode I²C.
        let pad = self.read(reg::VHV_CONFIG_PAD_SCL_SDA_EXTSUP_HV)?;
        self.write(reg::VHV_CONFIG_PAD_SCL_SDA_EXTSUP_HV, pad | 0x01)?;
        self.write(0x88, 0x00)?;
        self.write(reg::POWER_MANAGEMENT, 0x01)?;
        self.write(reg::PAGE, 0x01)?;
        self.write(0x00, 0x00)?;
        let stop_variable = self.read(reg::STOP_VARIABLE)?;
        self.write(0x00, 0x01)?;
        self.write(reg::PAGE, 0x00)?;
        self.write(reg::POWER_MANAGEMENT, 0x00)?;
        // Disable the MSRC (bit 1) and pre-range (bit 4) signal rate checks.
        let msrc = self.read(reg::MSRC_CONFIG_CONTROL)?;
        self.write(reg::MSRC_CONFIG_CONTROL, msrc | 0x12)?;
        // Final-range signal rate limit 0.25 MCPS, in Q9.7 fixed point.
        self.write16(reg::FINAL_RANGE_CONFIG_MIN_COUNT_RATE_RTN_LIMIT, 32)?;
        self.write(reg::SYSTEM_SEQUENCE_CONFIG, 0xFF)?;

        // StaticInit: reference SPADs as recorded in the chip's NVM.
        let (spad_count, aperture) = self.spad_info()?;
        let mut map = [0u8; 6];
        self.i2c
            .write_read(
                self.address,
                &[reg::GLOBAL_CONFIG_SPAD_ENABLES_REF_0],
                &mut map,
            )
            .map_err(Error::I2c)?;
        self.write(reg::PAGE, 0x01)?;
        self.write(reg::DYNAMIC_SPAD_REF_EN_START_OFFSET, 0x00)?;
        self.write(reg::DYNAMIC_SPAD_NUM_REQUESTED_REF_SPAD, 0x2C)?;
        self.write(reg::PAGE, 0x00)?;
        self.write(reg::GLOBAL_CONFIG_REF_EN_START_SELECT, 0xB4)?;
        let map = reference_spad_map(map, spad_count, aperture);
        let mut frame = [0u8; 7];
        frame[0] = reg::GLOBAL_CONFIG_SPAD_ENABLES_REF_0;
        frame[1..].copy_from_slice(&map);
        self.i2c.write(self.address, &frame).map_err(Error::I2c)?;

        for (register, value) in TUNING {
            self.write(register, value)?;
        }

        // Interrupt on "new sample ready", active low, cleared.
        self.write(reg::SYSTEM_INTERRUPT_CONFIG_GPIO, 0x04)?;
        let mux = self.read(reg::GPIO_HV_MUX_ACTIVE_HIGH)?;
        self.write(reg::GPIO_HV_MUX_ACTIVE_HIGH, mux & !0x10)?;
        self.write(reg::SYSTEM_INTERRUPT_CLEAR, 0x01)?;
        // Sequence steps DSS, pre-range and final range; MSRC and TCC off. (The timing-budget
        // recalculation that follows here in ST's API is not implemented.)
        self.write(reg::SYSTEM_SEQUENCE_CONFIG, 0xE8)?;

        // PerformRefCalibration: VHV, then phase; then restore the sequence.
        self.write(reg::SYSTEM_SEQUENCE_CONFIG, 0x01)?;
        self.single_ref_calibration(0x40)?;
        self.write(reg::SYSTEM_SEQUENCE_CONFIG, 0x02)?;
        self.single_ref_calibration(0x00)?;
        self.write(reg::SYSTEM_SEQUENCE_CONFIG, 0xE8)?;

        self.stop_variable = Some(stop_variable);
        Ok(())
    }

    /// Starts one measurement, waits for it and reads it.
    pub fn measure(&mut self) -> Result<Measurement, Error<E>> {
        let stop_variable = self.stop_variable.ok_or(Error::NotInitialized)?;
        self.write(reg::POWER_MANAGEMENT, 0x01)?;
        self.write(reg::PAGE, 0x01)?;
        self.write(0x00, 0x00)?;
        self.write(reg::STOP_VARIABLE, stop_variable)?;
        self.write(0x00, 0x01)?;
        self.write(reg::PAGE, 0x00)?;
        self.write(reg::POWER_MANAGEMENT, 0x00)?;
        self.write(reg::SYSRANGE_START, 0x01)?;
        // The start bit clears when the measurement has started.
        self.wait_for(reg::SYSRANGE_START, |v| v & 0x01 == 0)?;
        self.wait_for(reg::RESULT_INTERRUPT_STATUS, |v| v & 0x07 != 0)?;
        // Status at +0, distance (big-endian mm) at +10: one burst read, as ST's API does.
        let mut result = [0u8; 12];
        self.i2c
            .write_read(self.address, &[reg::RESULT_RANGE_STATUS], &mut result)
            .map_err(Error::I2c)?;
        self.write(reg::SYSTEM_INTERRUPT_CLEAR, 0x01)?;
        Ok(Measurement {
            distance_mm: u16::from_be_bytes([result[10], result[11]]),
            status: RangeStatus::from_register(result[0]),
        })
    }

    /// Moves the sensor to another 7-bit address (`0x08..=0x77`), to put several on one bus
    /// (hold the others in reset with `XSHUT` meanwhile). The chip forgets it on power-down.
    pub fn set_address(&mut self, address: u8) -> Result<(), Error<E>> {
        if !(0x08..=0x77).contains(&address) {
            return Err(Error::InvalidAddress(address));
        }
        self.write(reg::I2C_SLAVE_DEVICE_ADDRESS, address)?;
        self.address = address;
        Ok(())
    }

    /// Count and type of the reference SPADs, from the chip's NVM.
    fn spad_info(&mut self) -> Result<(u8, bool), Error<E>> {
        self.write(reg::POWER_MANAGEMENT, 0x01)?;
        self.write(reg::PAGE, 0x01)?;
        self.write(0x00, 0x00)?;
        self.write(reg::PAGE, 0x06)?;
        let v = self.read(0x83)?;
        self.write(0x83, v | 0x04)?;
        self.write(reg::PAGE, 0x07)?;
        self.write(0x81, 0x01)?;
        self.write(reg::POWER_MANAGEMENT, 0x01)?;
        self.write(0x94, 0x6B)?;
        self.write(0x83, 0x00)?;
        self.wait_for(0x83, |v| v != 0)?;
        self.write(0x83, 0x01)?;
        let info = self.read(0x92)?;
        self.write(0x81, 0x00)?;
        self.write(reg::PAGE, 0x06)?;
        let v = self.read(0x83)?;
        self.write(0x83, v & !0x04)?;
        self.write(reg::PAGE, 0x01)?;
        self.write(0x00, 0x01)?;
        self.write(reg::PAGE, 0x00)?;
        self.write(reg::POWER_MANAGEMENT, 0x00)?;
        Ok((info & 0x7F, info & 0x80 != 0))
    }

    fn single_ref_calibration(&mut self, vhv_init: u8) -> Result<(), Error<E>> {
        self.write(reg::SYSRANGE_START, 0x01 | vhv_init)?;
        self.wait_for(reg::RESULT_INTERRUPT_STATUS, |v| v & 0x07 != 0)?;
        self.write(reg::SYSTEM_INTERRUPT_CLEAR, 0x01)?;
        self.write(reg::SYSRANGE_START, 0x00)
    }

    /// Polls `register` every millisecond until `done` holds, up to the timeout.
    fn wait_for(&mut self, register: u8, done: impl Fn(u8) -> bool) -> Result<(), Error<E>> {
        let mut waited_ms = 0;
        while !done(self.read(register)?) {
            if waited_ms >= self.timeout_ms {
                return Err(Error::Timeout { ms: waited_ms });
            }
            self.delay.delay_ms(1);
            waited_ms += 1;
        }
        Ok(())
    }

    fn write(&mut self, register: u8, value: u8) -> Result<(), Error<E>> {
        self.i2c
            .write(self.address, &[register, value])
            .map_err(Error::I2c)
    }

    fn write16(&mut self, register: u8, value: u16) -> Result<(), Error<E>> {
        let [hi, lo] = value.to_be_bytes();
        self.i2c
            .write(self.address, &[register, hi, lo])
            .map_err(Error::I2c)
    }

    fn read(&mut self, register: u8) -> Result<u8, Error<E>> {
        let mut value = [0u8];
        self.i2c
            .write_read(self.address, &[register], &mut value)
            .map_err(Error::I2c)?;
        Ok(value[0])
    }
}

/// Keeps the first `count` good SPADs of the NVM map, starting at SPAD 12 for aperture SPADs
/// and at 0 otherwise, and clears every other bit (ST's `set_reference_spads`, assuming the NVM
/// values are valid).
pub fn reference_spad_map(mut map: [u8; 6], count: u8, aperture: bool) -> [u8; 6] {
    let first = if aperture { 12 } else { 0 };
    let mut enabled = 0u8;
    for i in 0..48usize {
        let (byte, bit) = (i / 8, i % 8);
        if i < first || enabled == count {
            map[byte] &= !(1 << bit);
        } else if map[byte] & (1 << bit) != 0 {
            enabled += 1;
        }
    }
    map
}

/// Transaction builders for the tests.
#[cfg(test)]
mod tests_support {
    use super::*;
    use embedded_hal_mock::eh1::i2c::Transaction as Tx;
    use std::vec;
    use std::vec::Vec;

    const A: u8 = DEFAULT_ADDRESS;

    fn w(register: u8, value: u8) -> Tx {
        Tx::write(A, vec![register, value])
    }

    fn r(register: u8, value: u8) -> Tx {
        Tx::write_read(A, vec![register], vec![value])
    }

    /// A successful `init` of a chip whose stop variable is `stop`, with `spad_info` in register
    /// 0x92 and `nvm_map` as its SPAD map; each wait succeeds at the first poll.
    pub fn init_transactions(stop: u8, spad_info: u8, nvm_map: [u8; 6]) -> Vec<Tx> {
        let mut t = vec![
            r(0xC0, MODEL_ID),
            r(0x89, 0x00),
            w(0x89, 0x01),
            w(0x88, 0x00),
            w(0x80, 0x01),
            w(0xFF, 0x01),
            w(0x00, 0x00),
            r(0x91, stop),
            w(0x00, 0x01),
            w(0xFF, 0x00),
            w(0x80, 0x00),
            r(0x60, 0x00),
            w(0x60, 0x12),
            Tx::write(A, vec![0x44, 0x00, 0x20]),
            w(0x01, 0xFF),
            // spad_info
            w(0x80, 0x01),
            w(0xFF, 0x01),
            w(0x00, 0x00),
            w(0xFF, 0x06),
            r(0x83, 0x10),
            w(0x83, 0x14),
            w(0xFF, 0x07),
            w(0x81, 0x01),
            w(0x80, 0x01),
            w(0x94, 0x6B),
            w(0x83, 0x00),
            r(0x83, 0x10),
            w(0x83, 0x01),
            r(0x92, spad_info),
            w(0x81, 0x00),
            w(0xFF, 0x06),
            r(0x83, 0x14),
            w(0x83, 0x10),
            w(0xFF, 0x01),
            w(0x00, 0x01),
            w(0xFF, 0x00),
            w(0x80, 0x00),
            // reference SPADs
            Tx::write_read(A, vec![0xB0], nvm_map.to_vec()),
            w(0xFF, 0x01),
            w(0x4F, 0x00),
            w(0x4E, 0x2C),
            w(0xFF, 0x00),
            w(0xB6, 0xB4),
        ];
        let map = reference_spad_map(nvm_map, spad_info & 0x7F, spad_info & 0x80 != 0);
        let mut frame = vec![0xB0];
        frame.extend(map);
        t.push(Tx::write(A, frame));
        t.extend(TUNING.iter().map(|&(reg, value)| w(reg, value)));
        t.extend([
            w(0x0A, 0x04),
            r(0x84, 0x11),
            w(0x84, 0x01),
            w(0x0B, 0x01),
            w(0x01, 0xE8),
            // VHV calibration
            w(0x01, 0x01),
            w(0x00, 0x41),
            r(0x13, 0x07),
            w(0x0B, 0x01),
            w(0x00, 0x00),
            // phase calibration
            w(0x01, 0x02),
            w(0x00, 0x01),
            r(0x13, 0x07),
            w(0x0B, 0x01),
            w(0x00, 0x00),
            w(0x01, 0xE8),
        ]);
        t
    }

    /// One measurement with stop variable `stop`, range status register `status` and `mm`.
    pub fn measure_transactions(stop: u8, status: u8, mm: u16) -> Vec<Tx> {
        let mut result = vec![0u8; 12];
        result[0] = status;
        result[10..].copy_from_slice(&mm.to_be_bytes());
        vec![
            w(0x80, 0x01),
            w(0xFF, 0x01),
            w(0x00, 0x00),
            w(0x91, stop),
            w(0x00, 0x01),
            w(0xFF, 0x00),
            w(0x80, 0x00),
            w(0x00, 0x01),
            r(0x00, 0x00),
            r(0x13, 0x04),
            Tx::write_read(A, vec![0x14], result),
            w(0x0B, 0x01),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::{init_transactions, measure_transactions};
    use super::*;
    use embedded_hal::i2c::ErrorKind;
    use embedded_hal_mock::eh1::delay::NoopDelay;
    use embedded_hal_mock::eh1::i2c::{Mock, Transaction as Tx};
    use std::vec;
    use std::vec::Vec;

    type Driver = Vl53l0x<Mock, NoopDelay>;

    fn driver(t: &[Tx]) -> Driver {
        Vl53l0x::new(Mock::new(t), NoopDelay::new())
    }

    fn done(tof: Driver) {
        let (mut i2c, _) = tof.release();
        i2c.done();
    }

    fn r(register: u8, value: u8) -> Tx {
        Tx::write_read(DEFAULT_ADDRESS, vec![register], vec![value])
    }

    #[test]
    fn tuning_table_is_sts_default() {
        // Spot checks against vl53l0x_tuning.h: first, a few in the middle, last.
        assert_eq!(TUNING[0], (0xFF, 0x01));
        assert_eq!(TUNING[24], (0x52, 0x96));
        assert_eq!(TUNING[74], (0x01, 0xF8));
        assert_eq!(TUNING[79], (0x80, 0x00));
    }

    #[test]
    fn init_then_measure() {
        let mut t = init_transactions(0x2C, 0x85, [0xFF, 0x0F, 0xF0, 0x00, 0x01, 0x80]);
        t.extend(measure_transactions(0x2C, 11 << 3, 0x01F4));
        t.extend(measure_transactions(0x2C, 4 << 3, 8190));
        let mut tof = driver(&t);
        assert!(!tof.is_initialized());
        tof.init().unwrap();
        assert!(tof.is_initialized());
        let m = tof.measure().unwrap();
        assert_eq!(
            m,
            Measurement {
                distance_mm: 500,
                status: RangeStatus::Valid
            }
        );
        assert_eq!(m.valid_mm(), Some(500));
        let m = tof.measure().unwrap();
        assert_eq!(m.status, RangeStatus::SignalFail);
        assert_eq!(m.valid_mm(), None);
        done(tof);
    }

    #[test]
    fn reference_spads_keep_the_first_good_ones() {
        // Non-aperture: the first 5 set bits stay.
        assert_eq!(
            reference_spad_map([0xFF, 0xFF, 0, 0, 0, 0], 5, false),
            [0x1F, 0, 0, 0, 0, 0]
        );
        // Aperture SPADs start at 12: bits 0..12 cleared, then 3 set bits kept (12, 13, 15).
        assert_eq!(
            reference_spad_map([0xFF, 0xBF, 0xFF, 0, 0, 0], 3, true),
            [0x00, 0xB0, 0x00, 0, 0, 0]
        );
        // Fewer good SPADs than requested: all kept.
        assert_eq!(
            reference_spad_map([0x01, 0, 0, 0, 0, 0x80], 10, false),
            [0x01, 0, 0, 0, 0, 0x80]
        );
    }

    #[test]
    fn wrong_device_is_refused() {
        let mut tof = driver(&[r(0xC0, 0xAA)]);
        assert_eq!(tof.init(), Err(Error::WrongDevice(0xAA)));
        assert!(!tof.is_initialized());
        done(tof);
    }

    #[test]
    fn measuring_before_init_is_refused_without_bus_traffic() {
        let mut tof = driver(&[]);
        assert_eq!(tof.measure(), Err(Error::NotInitialized));
        done(tof);
    }

    #[test]
    fn measurement_waits_and_times_out() {
        let mut t = init_transactions(0x11, 0x03, [0x07, 0, 0, 0, 0, 0]);
        // The start bit clears after two polls, then the result never comes.
        let mut m = measure_transactions(0x11, 0, 0);
        m.truncate(8);
        m.extend([r(0x00, 0x01), r(0x00, 0x01), r(0x00, 0x00)]);
        m.extend([r(0x13, 0x00), r(0x13, 0x00), r(0x13, 0x00), r(0x13, 0x00)]);
        t.extend(m);
        let mut tof = driver(&t);
        tof.init().unwrap();
        tof.set_timeout_ms(3);
        assert_eq!(tof.timeout_ms(), 3);
        assert_eq!(tof.measure(), Err(Error::Timeout { ms: 3 }));
        done(tof);
    }

    #[test]
    fn bus_errors_are_wrapped() {
        let t = [Tx::write_read(DEFAULT_ADDRESS, vec![0xC0], vec![0]).with_error(ErrorKind::Other)];
        let mut tof = driver(&t);
        let e = tof.init().unwrap_err();
        assert_eq!(e, Error::I2c(ErrorKind::Other));
        assert!(std::format!("{e}").starts_with("VL53L0X I2C error"));
        done(tof);
    }

    #[test]
    fn address_change() {
        let t = [
            Tx::write(DEFAULT_ADDRESS, vec![0x8A, 0x30]),
            Tx::write_read(0x30, vec![0xC0], vec![MODEL_ID]),
        ];
        let mut tof = driver(&t);
        assert_eq!(tof.set_address(0x78), Err(Error::InvalidAddress(0x78)));
        assert_eq!(tof.set_address(0x07), Err(Error::InvalidAddress(0x07)));
        tof.set_address(0x30).unwrap();
        assert_eq!(tof.address(), 0x30);
        assert_eq!(tof.model_id().unwrap(), MODEL_ID);
        done(tof);
        let tof: Driver = Vl53l0x::with_address(Mock::new(&[]), NoopDelay::new(), 0x31);
        assert_eq!(tof.address(), 0x31);
        done(tof);
    }

    #[test]
    fn range_status_codes() {
        let decode = |code: u8| RangeStatus::from_register(code << 3 | 0x07);
        assert_eq!(decode(11), RangeStatus::Valid);
        assert_eq!(decode(4), RangeStatus::SignalFail);
        assert_eq!(decode(6), RangeStatus::PhaseFail);
        assert_eq!(decode(9), RangeStatus::PhaseFail);
        assert_eq!(decode(8), RangeStatus::MinRangeFail);
        assert_eq!(decode(10), RangeStatus::MinRangeFail);
        assert_eq!(decode(2), RangeStatus::HardwareFail);
        assert_eq!(decode(0), RangeStatus::Other(0));
        let all: Vec<_> = (0..16).map(decode).collect();
        assert_eq!(all.iter().filter(|s| **s == RangeStatus::Valid).count(), 1);
    }
}
