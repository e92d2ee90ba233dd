//! The appliance without the network: sensors, detection and the device runtime.
//!
//! [`App::tick`] is called every [`TICK_MS`], online or not: readings keep turning into reports,
//! which wait in the runtime's store-and-forward buffer while the device is offline.

use core::convert::Infallible;
#[cfg(feature = "tank")]
use core::fmt::Write as _;

use embassy_time::Instant;
#[cfg(feature = "tank")]
use esp_hal::Blocking;
use esp_hal::delay::Delay;
use esp_hal::gpio::{Input, Output};
#[cfg(feature = "tank")]
use esp_hal::i2c::master::I2c;
use esp_hal::peripherals::USB_DEVICE;
use esp_println::println;
use heapless::String;
#[cfg(feature = "tank")]
use replenish_firmware::TankGeometry;
use replenish_firmware::console::{ConsoleCommand, LineReader};
use replenish_firmware::drivers::hx711::{self, Hx711};
#[cfg(feature = "tank")]
use replenish_firmware::drivers::vl53l0x::{self, Vl53l0x};
use replenish_firmware::persist::Login;
use replenish_firmware::{Calibration, CommandAction, DeviceRuntime, SlotMonitor};
#[cfg(feature = "tank")]
use replenish_protocol::message::Detail;
use replenish_protocol::{Command, FaultCode, Id, ReportBody, codec};

use crate::storage::Storage;

/// Reports kept while offline (about 150 bytes each); older ones are dropped and counted.
pub const REPORT_BUFFER: usize = 32;
/// Interval of the main loop, in ms. The HX711 converts 10 times a second.
pub const TICK_MS: u64 = 25;
#[cfg(feature = "tank")]
/// Interval of tank measurements, in ms (one takes about 30 ms).
const TANK_INTERVAL_MS: u64 = 500;
/// Without a conversion for this long, the load cell is reported unavailable.
const SCALE_SILENCE_MS: u64 = 2_000;
#[cfg(feature = "tank")]
/// After this many failed or invalid tank measurements in a row, the tank sensor is reported.
const TANK_FAILURES: u32 = 20;
#[cfg(feature = "tank")]
/// Interval of attempts to initialise a tank sensor that failed to, in ms.
const TANK_RETRY_MS: u64 = 10_000;

/// Index of the load cell's calibration in the stored record.
pub const SCALE_SLOT: usize = 0;
/// Index of the tank's calibration in the stored record.
#[cfg_attr(not(feature = "tank"), allow(dead_code))]
pub const TANK_SLOT: usize = 1;

/// The device runtime of this board.
pub type Runtime = DeviceRuntime<REPORT_BUFFER>;

/// Milliseconds since boot: the runtime's monotonic clock.
pub fn now_ms() -> u64 {
    Instant::now().as_millis()
}

/// The HX711 of this board.
pub type LoadCell = Hx711<Input<'static>, Output<'static>, Delay>;
#[cfg(feature = "tank")]
/// The VL53L0X of this board.
pub type RangeSensor = Vl53l0x<I2c<'static, Blocking>, Delay>;

/// A load-cell slot.
pub struct Scale {
    /// The ADC.
    pub hx: LoadCell,
    /// Calibration and detection.
    pub monitor: SlotMonitor,
    last_reading_ms: u64,
    faulty: bool,
}

impl Scale {
    /// A scale slot.
    pub fn new(hx: LoadCell, monitor: SlotMonitor) -> Self {
        Self {
            hx,
            monitor,
            last_reading_ms: 0,
            faulty: false,
        }
    }
}

#[cfg(feature = "tank")]
/// A tank slot measured by a time-of-flight sensor on the lid.
pub struct Tank {
    /// The sensor.
    pub tof: RangeSensor,
    /// Distance to volume.
    pub geometry: TankGeometry,
    /// Detection (fed with volumes).
    pub monitor: SlotMonitor,
    next_ms: u64,
    failures: u32,
    faulty: bool,
}

#[cfg(feature = "tank")]
impl Tank {
    /// A tank slot; its sensor is initialised on the first tick.
    pub fn new(tof: RangeSensor, geometry: TankGeometry, monitor: SlotMonitor) -> Self {
        Self {
            tof,
            geometry,
            monitor,
            next_ms: 0,
            failures: 0,
            faulty: false,
        }
    }
}

/// Sensors, detection and the runtime.
pub struct App {
    /// The protocol state; the MQTT session drains it.
    pub runtime: Runtime,
    scale: Scale,
    #[cfg(feature = "tank")]
    tank: Option<Tank>,
    storage: Option<Storage>,
    /// The chip's own USB port, whose serial console is where a person gives the device its
    /// MQTT login (`firmware/README.md`): held so that no driver takes it over; read here,
    /// written by esp-println.
    _console: USB_DEVICE<'static>,
    line: LineReader,
}

impl App {
    /// An appliance with a load cell; calibrations and the login are saved in `storage` if
    /// there is one.
    pub fn new(
        runtime: Runtime,
        scale: Scale,
        storage: Option<Storage>,
        console: USB_DEVICE<'static>,
    ) -> Self {
        Self {
            runtime,
            scale,
            #[cfg(feature = "tank")]
            tank: None,
            storage,
            _console: console,
            line: LineReader::new(),
        }
    }

    /// The MQTT login given on the console, if any.
    pub fn login(&self) -> Option<Login> {
        self.storage.as_ref().and_then(Storage::login)
    }

    /// A byte typed on the console, if one is waiting. The RX FIFO is read as esp-hal's
    /// `UsbSerialJtag::read_byte` does, without the driver: its set-up (clock, reset and
    /// pull-up handling, about 0.5 KiB of flash) is for writing, which esp-println already
    /// does on the peripheral as the boot ROM left it.
    fn console_byte(&self) -> Option<u8> {
        let registers = USB_DEVICE::regs();
        let available = registers
            .ep1_conf()
            .read()
            .serial_out_ep_data_avail()
            .bit_is_set();
        available.then(|| registers.ep1().read().rdwr_byte().bits())
    }

    /// Reads what was typed on the console since the last tick.
    fn poll_console(&mut self) {
        while let Some(byte) = self.console_byte() {
            let command = match self.line.push(byte) {
                None => continue,
                Some(Err(refusal)) => {
                    println!("{}", refusal.message());
                    continue;
                }
                Some(Ok(command)) => command,
            };
            let login = match command {
                ConsoleCommand::Login(login) => Some(login),
                ConsoleCommand::Logout => None,
            };
            // Used from the next connection on: a session up now stays up.
            let saved = self.storage.as_mut().is_some_and(|s| s.save_login(login));
            println!(
                "login {}",
                match (saved, login.is_some()) {
                    (false, _) => "not saved: the flash cannot be written",
                    (true, true) => "saved",
                    (true, false) => "forgotten",
                }
            );
        }
    }

    /// Adds a tank slot (its slot must be in the birth).
    #[cfg(feature = "tank")]
    pub fn with_tank(mut self, tank: Tank) -> Self {
        self.tank = Some(tank);
        self
    }

    /// Samples what is due, turns detections into reports and queues periodic level reports.
    pub fn tick(&mut self, now: u64) {
        self.poll_console();
        self.poll_scale(now);
        #[cfg(feature = "tank")]
        self.poll_tank(now);
        if self.runtime.level_report_due(now) {
            let levels = [
                self.scale.monitor.level_report(),
                #[cfg(feature = "tank")]
                self.tank.as_ref().and_then(|t| t.monitor.level_report()),
            ];
            for body in levels.into_iter().flatten() {
                self.report(body, now);
            }
            self.runtime.mark_levels_reported(now);
        }
    }

    /// Handles a command payload from the `cmd` topic (JSON or binary).
    pub fn command(&mut self, payload: &[u8], now: u64) {
        let command: Command = match codec::decode(payload) {
            Ok(command) => command,
            Err(e) => {
                println!("ignoring a command that does not decode: {e}");
                return;
            }
        };
        match self.runtime.handle_command(&command, now) {
            CommandAction::Tare { id, slot } => {
                let result = self
                    .monitor_mut(&slot)
                    .map(|(index, m)| (index, m.tare().map(|()| *m.calibration())));
                self.complete(id, result);
            }
            CommandAction::Calibrate { id, slot, known } => {
                let result = self
                    .monitor_mut(&slot)
                    .map(|(index, m)| (index, m.calibrate(known).map(|()| *m.calibration())));
                self.complete(id, result);
            }
            CommandAction::ReportIntervalChanged { interval_ms } => {
                println!("report interval now {interval_ms} ms (until reboot)");
            }
            CommandAction::TimeSynced { unix_ms } => println!("clock set to {unix_ms} ms"),
            CommandAction::Rejected { error } => {
                println!("command {} rejected: {error}", command.id)
            }
        }
    }

    /// The monitor of `slot`, with the index of its calibration in the stored record.
    fn monitor_mut(&mut self, slot: &Id) -> Option<(usize, &mut SlotMonitor)> {
        if self.scale.monitor.slot() == slot {
            return Some((SCALE_SLOT, &mut self.scale.monitor));
        }
        #[cfg(feature = "tank")]
        if let Some(tank) = self.tank.as_mut().filter(|t| t.monitor.slot() == slot) {
            return Some((TANK_SLOT, &mut tank.monitor));
        }
        None
    }

    /// Acks a tare or calibration and keeps a new calibration in flash.
    fn complete<E: core::fmt::Display>(
        &mut self,
        id: u32,
        result: Option<(usize, Result<Calibration, E>)>,
    ) {
        let Some((index, result)) = result else {
            self.runtime
                .complete_command(id, Err("slot has no monitor"));
            return;
        };
        match &result {
            Err(e) => println!("command {id} failed: {e}"),
            Ok(calibration) => {
                let kept = self
                    .storage
                    .as_mut()
                    .is_some_and(|s| s.save_calibration(index, *calibration));
                let until = if kept { "saved" } else { "kept until reboot" };
                println!("command {id} done (calibration {until})");
            }
        }
        self.runtime.complete_command(id, result.map(|_| ()));
    }

    fn poll_scale(&mut self, now: u64) {
        let scale = &mut self.scale;
        let ready = matches!(scale.hx.is_ready(), Ok(true));
        if ready {
            // Wi-Fi interrupts must not stretch a clock pulse past 60 µs (that powers the chip
            // down mid-read): the 25 pulses take about 60 µs with interrupts off.
            let reading: Result<i32, hx711::Error<Infallible>> =
                critical_section::with(|_| scale.hx.try_read_raw());
            if let Ok(raw) = reading {
                scale.last_reading_ms = now;
                if hx711::is_saturated(raw) {
                    if !scale.faulty {
                        scale.faulty = true;
                        let slot = scale.monitor.slot().clone();
                        self.fault(Some(slot), FaultCode::OutOfRange, "HX711 saturated", now);
                    }
                    return;
                }
                scale.faulty = false;
                if let Some(body) = scale.monitor.sample_raw(raw) {
                    self.report(body, now);
                }
                return;
            }
        }
        if !scale.faulty && now.saturating_sub(scale.last_reading_ms) > SCALE_SILENCE_MS {
            scale.faulty = true;
            let slot = scale.monitor.slot().clone();
            self.fault(
                Some(slot),
                FaultCode::SensorUnavailable,
                "HX711 sends no conversions",
                now,
            );
        }
    }

    #[cfg(feature = "tank")]
    fn poll_tank(&mut self, now: u64) {
        let Some(tank) = self.tank.as_mut() else {
            return;
        };
        if now < tank.next_ms {
            return;
        }
        tank.next_ms = now + TANK_INTERVAL_MS;
        if !tank.tof.is_initialized() {
            if let Err(e) = tank.tof.init() {
                tank.next_ms = now + TANK_RETRY_MS;
                println!("VL53L0X init failed: {e}");
                if !tank.faulty {
                    tank.faulty = true;
                    let slot = tank.monitor.slot().clone();
                    self.fault(
                        Some(slot),
                        FaultCode::SensorUnavailable,
                        "VL53L0X init failed",
                        now,
                    );
                }
            }
            return;
        }
        let measurement = tank.tof.measure();
        match measurement
            .as_ref()
            .ok()
            .and_then(vl53l0x::Measurement::valid_mm)
        {
            Some(mm) => {
                tank.failures = 0;
                tank.faulty = false;
                let ml = tank.geometry.level_ml(f32::from(mm));
                if let Some(body) = tank.monitor.sample_amount(ml) {
                    self.report(body, now);
                }
            }
            None => {
                tank.failures = tank.failures.saturating_add(1);
                if tank.failures >= TANK_FAILURES && !tank.faulty {
                    tank.faulty = true;
                    let slot = tank.monitor.slot().clone();
                    let mut detail = Detail::new();
                    let _ = match &measurement {
                        Ok(m) => write!(detail, "no valid range: {:?}", m.status),
                        Err(e) => write!(detail, "{e}"),
                    };
                    self.fault(Some(slot), FaultCode::SensorUnavailable, &detail, now);
                }
            }
        }
    }

    fn fault(&mut self, slot: Option<Id>, code: FaultCode, detail: &str, now: u64) {
        println!("fault {code:?}: {detail}");
        let mut text: String<{ replenish_protocol::message::MAX_DETAIL_LEN }> = String::new();
        for c in detail.chars() {
            if text.push(c).is_err() {
                break;
            }
        }
        self.report(
            ReportBody::Fault {
                slot,
                code,
                detail: text,
            },
            now,
        );
    }

    fn report(&mut self, body: ReportBody, now: u64) {
        if let Err(e) = self.runtime.report(body, now) {
            println!("report refused: {e}");
        }
    }
}
