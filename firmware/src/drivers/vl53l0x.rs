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
//!   TCC off), and the timing-budget recalculation: the budget the chip had with every step on
//!   (about 33 ms) is applied again to the steps left, which lengthens the final range;
//! * *PerformRefCalibration*: VHV and phase calibration.
//!
//! Ranging is single shot ([`measure`](Vl53l0x::measure)), polled over I²C.
//!
//! # Timing budget and VCSEL periods
//!
//! A measurement runs the enabled sequence steps one after the other; each has a timeout in
//! *macro periods* (MCLKs), whose length depends on the step's VCSEL (laser) pulse period. The
//! timing budget is the sum of the steps' timeouts and ST's fixed overheads;
//! [`set_measurement_timing_budget_us`](Vl53l0x::set_measurement_timing_budget_us) gives the
//! final-range step whatever the others leave, as ST's `SetMeasurementTimingBudgetMicroSeconds`
//! does. A longer budget averages more pulses: ST's *high accuracy* mode is 200 ms. Longer VCSEL
//! periods ([`set_vcsel_pulse_period`](Vl53l0x::set_vcsel_pulse_period): 18 pre-range and 14
//! final-range PCLKs, with a lower [signal rate
//! limit](Vl53l0x::set_signal_rate_limit_mcps), is ST's *long range* mode) reach further in the
//! dark at the cost of more noise. The arithmetic is in pure functions ([`decode_timeout`],
//! [`encode_timeout`], [`timeout_mclks_to_us`], [`timeout_us_to_mclks`],
//! [`SequenceSteps::budget_us`], [`SequenceSteps::final_range_mclks_for`]) tested on their own.
//!
//! **Not implemented**: continuous and timed ranging, reading the `GPIO1` interrupt pin,
//! offset and cross-talk calibration. Not yet checked on hardware: the sequence is tested
//! against recorded transactions only.

use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;

/// The sensor's I²C address after power-up (7-bit).
pub const DEFAULT_ADDRESS: u8 = 0x29;
/// Value of the model id register of a VL53L0X.
pub const MODEL_ID: u8 = 0xEE;
/// Default time to wait for a calibration or a measurement, in ms (a measurement takes about
/// 33 ms with the default timing budget).
pub const DEFAULT_TIMEOUT_MS: u32 = 100;
/// The shortest timing budget ST's API accepts, in µs.
pub const MIN_TIMING_BUDGET_US: u32 = 20_000;

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
    pub const MSRC_CONFIG_TIMEOUT_MACROP: u8 = 0x46;
    pub const PRE_RANGE_CONFIG_VALID_PHASE_LOW: u8 = 0x56;
    pub const PRE_RANGE_CONFIG_VALID_PHASE_HIGH: u8 = 0x57;
    pub const PRE_RANGE_CONFIG_VCSEL_PERIOD: u8 = 0x50;
    pub const PRE_RANGE_CONFIG_TIMEOUT_MACROP_HI: u8 = 0x51;
    pub const FINAL_RANGE_CONFIG_VALID_PHASE_LOW: u8 = 0x47;
    pub const FINAL_RANGE_CONFIG_VALID_PHASE_HIGH: u8 = 0x48;
    pub const FINAL_RANGE_CONFIG_VCSEL_PERIOD: u8 = 0x70;
    pub const FINAL_RANGE_CONFIG_TIMEOUT_MACROP_HI: u8 = 0x71;
    pub const GLOBAL_CONFIG_VCSEL_WIDTH: u8 = 0x32;
    /// On page 0.
    pub const ALGO_PHASECAL_CONFIG_TIMEOUT: u8 = 0x30;
    /// On page 1.
    pub const ALGO_PHASECAL_LIM: u8 = 0x30;
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
    /// A timing budget below [`MIN_TIMING_BUDGET_US`], or shorter than the enabled steps other
    /// than the final range take.
    #[error("timing budget of {us} us is too short")]
    InvalidTimingBudget {
        /// The budget asked for, in µs.
        us: u32,
    },
    /// A VCSEL period the step does not support (pre-range: 12, 14, 16, 18; final range: 8,
    /// 10, 12, 14 PCLKs).
    #[error("invalid VCSEL period of {0} PCLKs")]
    InvalidVcselPeriod(u8),
    /// A signal rate limit outside `0.0..512.0` MCPS.
    #[error("invalid signal rate limit")]
    InvalidSignalRateLimit,
}

/// The two sequence steps whose VCSEL pulse period can be set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VcselPeriod {
    /// The pre-range step (12, 14, 16 or 18 PCLKs; 14 after [`Vl53l0x::init`]).
    PreRange,
    /// The final-range step (8, 10, 12 or 14 PCLKs; 10 after [`Vl53l0x::init`]).
    FinalRange,
}

/// Which steps a measurement runs (`SYSTEM_SEQUENCE_CONFIG`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SequenceSteps {
    /// Target centre check.
    pub tcc: bool,
    /// Dynamic SPAD selection.
    pub dss: bool,
    /// Minimum signal rate check.
    pub msrc: bool,
    /// Pre-range.
    pub pre_range: bool,
    /// Final range.
    pub final_range: bool,
}

/// The timeouts of the sequence steps, as the chip holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct StepTimeouts {
    /// Pre-range VCSEL period, in PCLKs.
    pub pre_range_vcsel_pclks: u8,
    /// Final-range VCSEL period, in PCLKs.
    pub final_range_vcsel_pclks: u8,
    /// MSRC, DSS and TCC timeout (one register for the three), in MCLKs.
    pub msrc_dss_tcc_mclks: u32,
    /// The same in µs (pre-range VCSEL period).
    pub msrc_dss_tcc_us: u32,
    /// Pre-range timeout, in MCLKs.
    pub pre_range_mclks: u32,
    /// The same in µs.
    pub pre_range_us: u32,
    /// Final-range timeout without the pre-range part, in MCLKs.
    pub final_range_mclks: u32,
    /// The same in µs (final-range VCSEL period).
    pub final_range_us: u32,
}

impl StepTimeouts {
    /// The timeouts from the registers: VCSEL period registers (`0x50`, `0x70`), MSRC timeout
    /// (`0x46`), pre-range and final-range timeout registers (`0x51`, `0x71`, 16 bits). The
    /// final-range register counts the pre-range too when that step is enabled; this is taken
    /// out.
    pub fn from_registers(
        steps: SequenceSteps,
        pre_vcsel: u8,
        msrc: u8,
        pre_timeout: u16,
        final_vcsel: u8,
        final_timeout: u16,
    ) -> Self {
        let pre_range_vcsel_pclks = decode_vcsel_period(pre_vcsel);
        let final_range_vcsel_pclks = decode_vcsel_period(final_vcsel);
        let msrc_dss_tcc_mclks = u32::from(msrc) + 1;
        let pre_range_mclks = decode_timeout(pre_timeout);
        let mut final_range_mclks = decode_timeout(final_timeout);
        if steps.pre_range {
            final_range_mclks = final_range_mclks.saturating_sub(pre_range_mclks);
        }
        Self {
            pre_range_vcsel_pclks,
            final_range_vcsel_pclks,
            msrc_dss_tcc_mclks,
            msrc_dss_tcc_us: timeout_mclks_to_us(msrc_dss_tcc_mclks, pre_range_vcsel_pclks),
            pre_range_mclks,
            pre_range_us: timeout_mclks_to_us(pre_range_mclks, pre_range_vcsel_pclks),
            final_range_mclks,
            final_range_us: timeout_mclks_to_us(final_range_mclks, final_range_vcsel_pclks),
        }
    }
}

/// ST's fixed overheads of a measurement and its steps, in µs (`vl53l0x_api.c`).
mod overhead {
    /// Start overhead when the budget is read.
    pub const START_GET: u32 = 1910;
    /// Start overhead when the budget is set (ST's API uses a different value here).
    pub const START_SET: u32 = 1320;
    pub const END: u32 = 960;
    pub const MSRC: u32 = 660;
    pub const TCC: u32 = 590;
    pub const DSS: u32 = 690;
    pub const PRE_RANGE: u32 = 660;
    pub const FINAL_RANGE: u32 = 550;
}

impl SequenceSteps {
    /// Decodes `SYSTEM_SEQUENCE_CONFIG`.
    pub const fn from_register(value: u8) -> Self {
        Self {
            tcc: value & 0x10 != 0,
            dss: value & 0x08 != 0,
            msrc: value & 0x04 != 0,
            pre_range: value & 0x40 != 0,
            final_range: value & 0x80 != 0,
        }
    }

    /// Time taken by the enabled steps other than the final range, with the overheads, in µs
    /// (`start` is the start overhead, which ST's API counts differently when it reads and when
    /// it sets a budget).
    fn fixed_us(&self, t: &StepTimeouts, start: u32) -> u32 {
        let mut us = start + overhead::END;
        if self.tcc {
            us += t.msrc_dss_tcc_us + overhead::TCC;
        }
        if self.dss {
            us += 2 * (t.msrc_dss_tcc_us + overhead::DSS);
        } else if self.msrc {
            us += t.msrc_dss_tcc_us + overhead::MSRC;
        }
        if self.pre_range {
            us += t.pre_range_us + overhead::PRE_RANGE;
        }
        us
    }

    /// The measurement timing budget these steps and timeouts make, in µs (ST's
    /// `GetMeasurementTimingBudgetMicroSeconds`).
    pub fn budget_us(&self, t: &StepTimeouts) -> u32 {
        let mut us = self.fixed_us(t, overhead::START_GET);
        if self.final_range {
            us += t.final_range_us + overhead::FINAL_RANGE;
        }
        us
    }

    /// The final-range timeout register value (in MCLKs, the pre-range included when enabled)
    /// that makes the budget `budget_us` (ST's `SetMeasurementTimingBudgetMicroSeconds`), or
    /// `None` if there is no final-range step or the other steps take longer than that.
    pub fn final_range_mclks_for(&self, budget_us: u32, t: &StepTimeouts) -> Option<u32> {
        if !self.final_range {
            return None;
        }
        let used = self.fixed_us(t, overhead::START_SET) + overhead::FINAL_RANGE;
        let final_us = budget_us.checked_sub(used)?;
        let mut mclks = timeout_us_to_mclks(final_us, t.final_range_vcsel_pclks);
        if self.pre_range {
            mclks += t.pre_range_mclks;
        }
        Some(mclks)
    }
}

/// A VCSEL period register value to PCLKs.
pub const fn decode_vcsel_period(register: u8) -> u8 {
    register.wrapping_add(1).wrapping_shl(1)
}

/// PCLKs to a VCSEL period register value.
pub const fn encode_vcsel_period(pclks: u8) -> u8 {
    (pclks >> 1).wrapping_sub(1)
}

/// Length of a macro period in ns for a VCSEL period in PCLKs (2304 PCLKs of 1.655 ns each).
pub const fn macro_period_ns(vcsel_pclks: u8) -> u32 {
    (2304 * vcsel_pclks as u32 * 1655 + 500) / 1000
}

/// A timeout register value (`LSB × 2^MSB + 1`, in MCLKs) to MCLKs.
pub const fn decode_timeout(register: u16) -> u32 {
    let [msb, lsb] = register.to_be_bytes();
    ((lsb as u32) << (msb & 0x1F)) + 1
}

/// MCLKs to a timeout register value (`LSB × 2^MSB + 1`), rounding down.
pub const fn encode_timeout(mclks: u32) -> u16 {
    if mclks == 0 {
        return 0;
    }
    let mut lsb = mclks - 1;
    let mut msb = 0u16;
    while lsb > 0xFF {
        lsb >>= 1;
        msb += 1;
    }
    (msb << 8) | lsb as u16
}

/// A timeout in MCLKs to µs, for a VCSEL period in PCLKs.
pub const fn timeout_mclks_to_us(mclks: u32, vcsel_pclks: u8) -> u32 {
    let ns = macro_period_ns(vcsel_pclks) as u64;
    ((mclks as u64 * ns + 500) / 1000) as u32
}

/// A timeout in µs to MCLKs, for a VCSEL period in PCLKs (rounded to nearest).
pub const fn timeout_us_to_mclks(us: u32, vcsel_pclks: u8) -> u32 {
    let ns = macro_period_ns(vcsel_pclks) as u64;
    if ns == 0 {
        return 0;
    }
    ((us as u64 * 1000 + ns / 2) / ns) as u32
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
    /// The budget last set, in µs; re-applied after a VCSEL period change.
    timing_budget_us: u32,
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
            timing_budget_us: 0,
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
        // The budget with every step on, applied again once MSRC and TCC are off: the final
        // range gets their time.
        let budget_us = self.measurement_timing_budget_us()?;
        // Sequence steps DSS, pre-range and final range; MSRC and TCC off.
        self.write(reg::SYSTEM_SEQUENCE_CONFIG, 0xE8)?;
        self.apply_timing_budget(budget_us)?;

        // PerformRefCalibration: VHV, then phase; then restore the sequence.
        self.write(reg::SYSTEM_SEQUENCE_CONFIG, 0x01)?;
        self.single_ref_calibration(0x40)?;
        self.write(reg::SYSTEM_SEQUENCE_CONFIG, 0x02)?;
        self.single_ref_calibration(0x00)?;
        self.write(reg::SYSTEM_SEQUENCE_CONFIG, 0xE8)?;

        self.stop_variable = Some(stop_variable);
        Ok(())
    }

    /// The measurement timing budget the chip is set to, in µs, read from its sequence steps and
    /// their timeouts.
    pub fn measurement_timing_budget_us(&mut self) -> Result<u32, Error<E>> {
        let (steps, timeouts) = self.steps_and_timeouts()?;
        Ok(steps.budget_us(&timeouts))
    }

    /// Sets how long a measurement takes, in µs (at least [`MIN_TIMING_BUDGET_US`]; about 33 ms
    /// after [`init`](Self::init), 200 ms for ST's high-accuracy mode): the final-range step gets
    /// what the other steps leave. Raise [`set_timeout_ms`](Self::set_timeout_ms) above a long
    /// budget.
    pub fn set_measurement_timing_budget_us(&mut self, budget_us: u32) -> Result<(), Error<E>> {
        if !self.is_initialized() {
            return Err(Error::NotInitialized);
        }
        self.apply_timing_budget(budget_us)
    }

    fn apply_timing_budget(&mut self, budget_us: u32) -> Result<(), Error<E>> {
        if budget_us < MIN_TIMING_BUDGET_US {
            return Err(Error::InvalidTimingBudget { us: budget_us });
        }
        let (steps, timeouts) = self.steps_and_timeouts()?;
        // Without a final range there is nothing to lengthen (as in ST's API).
        if steps.final_range {
            let mclks = steps
                .final_range_mclks_for(budget_us, &timeouts)
                .ok_or(Error::InvalidTimingBudget { us: budget_us })?;
            self.write16(
                reg::FINAL_RANGE_CONFIG_TIMEOUT_MACROP_HI,
                encode_timeout(mclks),
            )?;
        }
        self.timing_budget_us = budget_us;
        Ok(())
    }

    /// The VCSEL pulse period of a step, in PCLKs.
    pub fn vcsel_pulse_period(&mut self, step: VcselPeriod) -> Result<u8, Error<E>> {
        let register = match step {
            VcselPeriod::PreRange => reg::PRE_RANGE_CONFIG_VCSEL_PERIOD,
            VcselPeriod::FinalRange => reg::FINAL_RANGE_CONFIG_VCSEL_PERIOD,
        };
        Ok(decode_vcsel_period(self.read(register)?))
    }

    /// Sets the VCSEL pulse period of a step (pre-range 12 to 18, final range 8 to 14 PCLKs,
    /// even), as ST's `SetVcselPulsePeriod` does: phase limits for the period, the step's
    /// timeouts kept in µs, the timing budget applied again, and a phase calibration.
    pub fn set_vcsel_pulse_period(&mut self, step: VcselPeriod, pclks: u8) -> Result<(), Error<E>> {
        if !self.is_initialized() {
            return Err(Error::NotInitialized);
        }
        // Phase check limits (ST's tables), refused before any bus traffic.
        enum Limits {
            Pre(u8),
            Final {
                high: u8,
                width: u8,
                timeout: u8,
                lim: u8,
            },
        }
        let limits = match (step, pclks) {
            (VcselPeriod::PreRange, 12) => Limits::Pre(0x18),
            (VcselPeriod::PreRange, 14) => Limits::Pre(0x30),
            (VcselPeriod::PreRange, 16) => Limits::Pre(0x40),
            (VcselPeriod::PreRange, 18) => Limits::Pre(0x50),
            (VcselPeriod::FinalRange, 8) => Limits::Final {
                high: 0x10,
                width: 0x02,
                timeout: 0x0C,
                lim: 0x30,
            },
            (VcselPeriod::FinalRange, 10) => Limits::Final {
                high: 0x28,
                width: 0x03,
                timeout: 0x09,
                lim: 0x20,
            },
            (VcselPeriod::FinalRange, 12) => Limits::Final {
                high: 0x38,
                width: 0x03,
                timeout: 0x08,
                lim: 0x20,
            },
            (VcselPeriod::FinalRange, 14) => Limits::Final {
                high: 0x48,
                width: 0x03,
                timeout: 0x07,
                lim: 0x20,
            },
            _ => return Err(Error::InvalidVcselPeriod(pclks)),
        };
        let (steps, timeouts) = self.steps_and_timeouts()?;
        match limits {
            Limits::Pre(high) => {
                self.write(reg::PRE_RANGE_CONFIG_VALID_PHASE_HIGH, high)?;
                self.write(reg::PRE_RANGE_CONFIG_VALID_PHASE_LOW, 0x08)?;
                self.write(
                    reg::PRE_RANGE_CONFIG_VCSEL_PERIOD,
                    encode_vcsel_period(pclks),
                )?;
                let pre = timeout_us_to_mclks(timeouts.pre_range_us, pclks);
                self.write16(reg::PRE_RANGE_CONFIG_TIMEOUT_MACROP_HI, encode_timeout(pre))?;
                let msrc = timeout_us_to_mclks(timeouts.msrc_dss_tcc_us, pclks);
                let msrc = if msrc > 256 {
                    255
                } else {
                    msrc.saturating_sub(1) as u8
                };
                self.write(reg::MSRC_CONFIG_TIMEOUT_MACROP, msrc)?;
            }
            Limits::Final {
                high,
                width,
                timeout,
                lim,
            } => {
                self.write(reg::FINAL_RANGE_CONFIG_VALID_PHASE_HIGH, high)?;
                self.write(reg::FINAL_RANGE_CONFIG_VALID_PHASE_LOW, 0x08)?;
                self.write(reg::GLOBAL_CONFIG_VCSEL_WIDTH, width)?;
                self.write(reg::ALGO_PHASECAL_CONFIG_TIMEOUT, timeout)?;
                self.write(reg::PAGE, 0x01)?;
                self.write(reg::ALGO_PHASECAL_LIM, lim)?;
                self.write(reg::PAGE, 0x00)?;
                self.write(
                    reg::FINAL_RANGE_CONFIG_VCSEL_PERIOD,
                    encode_vcsel_period(pclks),
                )?;
                let mut mclks = timeout_us_to_mclks(timeouts.final_range_us, pclks);
                if steps.pre_range {
                    mclks += timeouts.pre_range_mclks;
                }
                self.write16(
                    reg::FINAL_RANGE_CONFIG_TIMEOUT_MACROP_HI,
                    encode_timeout(mclks),
                )?;
            }
        }
        self.apply_timing_budget(self.timing_budget_us)?;
        // A new VCSEL period needs a new phase calibration.
        let sequence = self.read(reg::SYSTEM_SEQUENCE_CONFIG)?;
        self.write(reg::SYSTEM_SEQUENCE_CONFIG, 0x02)?;
        self.single_ref_calibration(0x00)?;
        self.write(reg::SYSTEM_SEQUENCE_CONFIG, sequence)
    }

    /// Sets the final-range signal rate limit in MCPS (`0.0..512.0`; 0.25 after
    /// [`init`](Self::init), 0.1 for ST's long-range mode): returns weaker than this count as
    /// no target.
    pub fn set_signal_rate_limit_mcps(&mut self, mcps: f32) -> Result<(), Error<E>> {
        if !(0.0..512.0).contains(&mcps) {
            return Err(Error::InvalidSignalRateLimit);
        }
        // Q9.7 fixed point; the range check keeps it within u16.
        let q9_7 = (mcps * 128.0) as u16;
        self.write16(reg::FINAL_RANGE_CONFIG_MIN_COUNT_RATE_RTN_LIMIT, q9_7)
    }

    /// The enabled sequence steps and their timeouts, read from the chip.
    fn steps_and_timeouts(&mut self) -> Result<(SequenceSteps, StepTimeouts), Error<E>> {
        let steps = SequenceSteps::from_register(self.read(reg::SYSTEM_SEQUENCE_CONFIG)?);
        let pre_vcsel = self.read(reg::PRE_RANGE_CONFIG_VCSEL_PERIOD)?;
        let msrc = self.read(reg::MSRC_CONFIG_TIMEOUT_MACROP)?;
        let pre_timeout = self.read16(reg::PRE_RANGE_CONFIG_TIMEOUT_MACROP_HI)?;
        let final_vcsel = self.read(reg::FINAL_RANGE_CONFIG_VCSEL_PERIOD)?;
        let final_timeout = self.read16(reg::FINAL_RANGE_CONFIG_TIMEOUT_MACROP_HI)?;
        let timeouts = StepTimeouts::from_registers(
            steps,
            pre_vcsel,
            msrc,
            pre_timeout,
            final_vcsel,
            final_timeout,
        );
        Ok((steps, timeouts))
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

    fn read16(&mut self, register: u8) -> Result<u16, Error<E>> {
        let mut value = [0u8; 2];
        self.i2c
            .write_read(self.address, &[register], &mut value)
            .map_err(Error::I2c)?;
        Ok(u16::from_be_bytes(value))
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

    pub fn w(register: u8, value: u8) -> Tx {
        Tx::write(A, vec![register, value])
    }

    pub fn r(register: u8, value: u8) -> Tx {
        Tx::write_read(A, vec![register], vec![value])
    }

    /// The chip's registers after ST's tuning: pre-range VCSEL period register 6 (14 PCLKs),
    /// MSRC timeout 0x25, pre-range timeout 0x0096, final-range VCSEL period register 4 (10
    /// PCLKs), final-range timeout 0x01FE.
    pub const TUNED: (u8, u8, u16, u8, u16) = (0x06, 0x25, 0x0096, 0x04, 0x01FE);

    /// The reads of the sequence steps and their timeouts.
    pub fn timing_reads(sequence: u8, regs: (u8, u8, u16, u8, u16)) -> Vec<Tx> {
        let (pre_vcsel, msrc, pre_timeout, final_vcsel, final_timeout) = regs;
        vec![
            r(0x01, sequence),
            r(0x50, pre_vcsel),
            r(0x46, msrc),
            Tx::write_read(A, vec![0x51], pre_timeout.to_be_bytes().to_vec()),
            r(0x70, final_vcsel),
            Tx::write_read(A, vec![0x71], final_timeout.to_be_bytes().to_vec()),
        ]
    }

    /// The final-range timeout that `init` writes for the tuned registers: the 33 849 µs of
    /// every step, given to DSS, pre-range and final range (worked by hand: 16 989 µs for the
    /// others, 16 860 µs = 442 MCLKs of 38 131 ns, plus 151 pre-range MCLKs = 593, encoded
    /// 148 × 2² + 1).
    pub const INIT_FINAL_TIMEOUT: u16 = 0x0294;

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
        t.extend([w(0x0A, 0x04), r(0x84, 0x11), w(0x84, 0x01), w(0x0B, 0x01)]);
        // Timing budget: read with every step on, applied to DSS + pre-range + final range.
        t.extend(timing_reads(0xFF, TUNED));
        t.push(w(0x01, 0xE8));
        t.extend(timing_reads(0xE8, TUNED));
        t.push(Tx::write(A, vec![0x71, 0x02, 0x94]));
        t.extend([
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
    use super::tests_support::{
        INIT_FINAL_TIMEOUT, TUNED, init_transactions, measure_transactions, timing_reads,
    };
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

    fn initialized(t: &[Tx]) -> Driver {
        let mut all = init_transactions(0x2C, 0x85, [0xFF, 0, 0, 0, 0, 0]);
        all.extend_from_slice(t);
        let mut tof = driver(&all);
        tof.init().unwrap();
        tof
    }

    fn tuned_timeouts(sequence: u8) -> (SequenceSteps, StepTimeouts) {
        let (pre_vcsel, msrc, pre, final_vcsel, fin) = TUNED;
        let steps = SequenceSteps::from_register(sequence);
        let t = StepTimeouts::from_registers(steps, pre_vcsel, msrc, pre, final_vcsel, fin);
        (steps, t)
    }

    #[test]
    fn timeout_encoding() {
        // LSB × 2^MSB + 1.
        assert_eq!(decode_timeout(0x0096), 151);
        assert_eq!(decode_timeout(0x01FE), 509);
        assert_eq!(decode_timeout(0x0294), 593);
        assert_eq!(encode_timeout(593), 0x0294);
        assert_eq!(encode_timeout(151), 0x0096);
        assert_eq!(encode_timeout(1), 0x0000);
        assert_eq!(encode_timeout(0), 0);
        // Precision is lost above 256 MCLKs: encoding rounds down.
        assert_eq!(encode_timeout(594), 0x0294);
        for mclks in [1u32, 2, 100, 256, 257, 1000, 65_536, 1 << 20] {
            let back = decode_timeout(encode_timeout(mclks));
            assert!(back <= mclks, "{mclks} -> {back}");
            assert!(mclks - back < mclks / 128 + 1, "{mclks} -> {back}");
        }
        assert_eq!(decode_vcsel_period(6), 14);
        assert_eq!(decode_vcsel_period(4), 10);
        assert_eq!(encode_vcsel_period(18), 8);
        assert_eq!(encode_vcsel_period(8), 3);
    }

    #[test]
    fn macro_periods_and_conversions() {
        // 2304 PCLKs of 1.655 ns.
        assert_eq!(macro_period_ns(14), 53_384);
        assert_eq!(macro_period_ns(10), 38_131);
        assert_eq!(macro_period_ns(18), 68_636);
        assert_eq!(timeout_mclks_to_us(38, 14), 2_029);
        assert_eq!(timeout_mclks_to_us(151, 14), 8_061);
        assert_eq!(timeout_mclks_to_us(358, 10), 13_651);
        assert_eq!(timeout_us_to_mclks(16_860, 10), 442);
        assert_eq!(timeout_us_to_mclks(8_061, 18), 117);
        // No overflow for budgets of seconds.
        assert_eq!(timeout_us_to_mclks(10_000_000, 10), 262_254);
    }

    #[test]
    fn budget_of_the_tuned_chip() {
        // Every step on: 1910 + 960 start/end, TCC 2029 + 590, DSS 2 × (2029 + 690),
        // pre-range 8061 + 660, final range 13651 + 550: the 33.8 ms ST's documents call 33 ms.
        let (steps, t) = tuned_timeouts(0xFF);
        assert_eq!(
            steps,
            SequenceSteps {
                tcc: true,
                dss: true,
                msrc: true,
                pre_range: true,
                final_range: true
            }
        );
        assert_eq!(t.msrc_dss_tcc_mclks, 38);
        assert_eq!(t.pre_range_mclks, 151);
        assert_eq!(t.final_range_mclks, 358);
        assert_eq!(steps.budget_us(&t), 33_849);
        // MSRC and TCC off: the same budget leaves the final range 442 MCLKs.
        let (steps, t) = tuned_timeouts(0xE8);
        assert_eq!(steps.final_range_mclks_for(33_849, &t), Some(593));
        assert_eq!(encode_timeout(593), INIT_FINAL_TIMEOUT);
        // 200 ms (high accuracy): 183 011 µs of final range = 4800 MCLKs, + 151.
        assert_eq!(steps.final_range_mclks_for(200_000, &t), Some(4_951));
        // Shorter than the other steps: impossible.
        assert_eq!(steps.final_range_mclks_for(16_988, &t), None);
        // No final range step: nothing to set.
        let (steps, t) = tuned_timeouts(0x68);
        assert_eq!(steps.final_range_mclks_for(33_849, &t), None);
    }

    #[test]
    fn set_and_read_the_timing_budget() {
        let mut t = timing_reads(0xE8, TUNED);
        // 4951 MCLKs, encoded 154 × 2⁵ + 1 (4929: the encoding rounds down).
        t.push(Tx::write(DEFAULT_ADDRESS, vec![0x71, 0x05, 0x9A]));
        let (pre_vcsel, msrc, pre, final_vcsel, _) = TUNED;
        t.extend(timing_reads(
            0xE8,
            (pre_vcsel, msrc, pre, final_vcsel, 0x059A),
        ));
        let mut tof = initialized(&t);
        tof.set_measurement_timing_budget_us(200_000).unwrap();
        // Read back: 1910 + 960 + DSS 5438 + pre-range 8721 + final (4929 - 151) MCLKs ×
        // 38.131 µs = 182 190, + 550: 199 769 µs. The encoding dropped 22 MCLKs (839 µs); the
        // read counts ST's larger start overhead (590 µs more).
        assert_eq!(tof.measurement_timing_budget_us().unwrap(), 199_769);
        done(tof);
    }

    #[test]
    fn short_budgets_are_refused() {
        let mut tof = initialized(&[]);
        // Below ST's minimum: refused before any bus traffic.
        assert_eq!(
            tof.set_measurement_timing_budget_us(19_999),
            Err(Error::InvalidTimingBudget { us: 19_999 })
        );
        done(tof);
        // Above the minimum but shorter than long pre-range and MSRC timeouts.
        let (pre_vcsel, _, _, final_vcsel, fin) = TUNED;
        let long = (pre_vcsel, 0xFF, 0x0196, final_vcsel, fin);
        let mut tof = initialized(&timing_reads(0xE8, long));
        assert_eq!(
            tof.set_measurement_timing_budget_us(20_000),
            Err(Error::InvalidTimingBudget { us: 20_000 })
        );
        done(tof);
        let mut tof = driver(&[]);
        assert_eq!(
            tof.set_measurement_timing_budget_us(33_000),
            Err(Error::NotInitialized)
        );
        done(tof);
    }

    #[test]
    fn long_range_vcsel_periods() {
        let w = |register: u8, value: u8| Tx::write(DEFAULT_ADDRESS, vec![register, value]);
        let (_, _, _, final_vcsel, _) = TUNED;
        // Pre-range 18 PCLKs: phase limits, period register 8; the pre-range keeps its 8061 µs
        // (117 MCLKs of 68 636 ns, encoded 116) and MSRC its 2029 µs (30 MCLKs, register 29).
        let mut t = timing_reads(0xE8, (0x06, 0x25, 0x0096, final_vcsel, INIT_FINAL_TIMEOUT));
        t.extend([
            w(0x57, 0x50),
            w(0x56, 0x08),
            w(0x50, 0x08),
            Tx::write(DEFAULT_ADDRESS, vec![0x51, 0x00, 0x74]),
            w(0x46, 0x1D),
        ]);
        // The 33 849 µs budget again: others 1320 + 960 + DSS 2 × (2059 + 690) + pre-range
        // 8030 + 660 + 550 = 17 018 µs; final 16 831 µs = 441 MCLKs, + 117 = 558 (0x028B).
        let after_pre = (0x08, 0x1D, 0x0074, final_vcsel, INIT_FINAL_TIMEOUT);
        t.extend(timing_reads(0xE8, after_pre));
        t.push(Tx::write(DEFAULT_ADDRESS, vec![0x71, 0x02, 0x8B]));
        // Phase calibration, sequence restored.
        t.extend([
            r(0x01, 0xE8),
            w(0x01, 0x02),
            w(0x00, 0x01),
            r(0x13, 0x07),
            w(0x0B, 0x01),
            w(0x00, 0x00),
            w(0x01, 0xE8),
        ]);
        // Final range 14 PCLKs: limits (0x30 on page 0, then on page 1), period register 6;
        // the final range keeps its µs: (558 - 117) MCLKs × 38 131 ns = 16 816 µs, which is
        // 315 MCLKs of 53 384 ns, + 117 = 432 (0x01D7).
        let after_pre_budget = (0x08, 0x1D, 0x0074, final_vcsel, 0x028B);
        t.extend(timing_reads(0xE8, after_pre_budget));
        t.extend([
            w(0x48, 0x48),
            w(0x47, 0x08),
            w(0x32, 0x03),
            w(0x30, 0x07),
            w(0xFF, 0x01),
            w(0x30, 0x20),
            w(0xFF, 0x00),
            w(0x70, 0x06),
            Tx::write(DEFAULT_ADDRESS, vec![0x71, 0x01, 0xD7]),
        ]);
        // Budget again with the new period: final 16 831 µs = 315 MCLKs, + 117 = 432.
        t.extend(timing_reads(0xE8, (0x08, 0x1D, 0x0074, 0x06, 0x01D7)));
        t.push(Tx::write(DEFAULT_ADDRESS, vec![0x71, 0x01, 0xD7]));
        t.extend([
            r(0x01, 0xE8),
            w(0x01, 0x02),
            w(0x00, 0x01),
            r(0x13, 0x07),
            w(0x0B, 0x01),
            w(0x00, 0x00),
            w(0x01, 0xE8),
        ]);
        t.push(Tx::write(DEFAULT_ADDRESS, vec![0x44, 0x00, 0x0C]));
        t.push(r(0x50, 0x08));
        let mut tof = initialized(&t);
        tof.set_vcsel_pulse_period(VcselPeriod::PreRange, 18)
            .unwrap();
        tof.set_vcsel_pulse_period(VcselPeriod::FinalRange, 14)
            .unwrap();
        // 0.1 MCPS in Q9.7: 12.
        tof.set_signal_rate_limit_mcps(0.1).unwrap();
        assert_eq!(tof.vcsel_pulse_period(VcselPeriod::PreRange).unwrap(), 18);
        assert_eq!(
            tof.set_vcsel_pulse_period(VcselPeriod::PreRange, 10),
            Err(Error::InvalidVcselPeriod(10))
        );
        assert_eq!(
            tof.set_vcsel_pulse_period(VcselPeriod::FinalRange, 16),
            Err(Error::InvalidVcselPeriod(16))
        );
        assert_eq!(
            tof.set_signal_rate_limit_mcps(512.0),
            Err(Error::InvalidSignalRateLimit)
        );
        assert_eq!(
            tof.set_signal_rate_limit_mcps(-0.1),
            Err(Error::InvalidSignalRateLimit)
        );
        done(tof);
    }
}
