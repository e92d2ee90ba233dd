//! Appliance firmware logic for replenish, shared by real boards and the simulator.
//!
//! Everything here is `no_std`, allocation-free (fixed capacities from [`heapless`]) and free of
//! I/O and clocks, so the same code runs on a microcontroller, in unit tests and in the simulator:
//!
//! * [`calibration`]: raw ADC counts to amounts (tare and two-point calibration), persisted with
//!   serde.
//! * [`detect`]: turns a noisy stream of amounts into settled levels, consumption and refills
//!   ([`detect::LevelDetector`], [`detect::SlotMonitor`]) and counts uses
//!   ([`detect::UsageCounter`]), producing protocol [`ReportBody`](replenish_protocol::ReportBody)s.
//! * [`runtime`]: the sans-IO device runtime ([`runtime::DeviceRuntime`]): birth and last will,
//!   sequence numbers, store-and-forward of reports while offline, commands and acks, heartbeats
//!   and reconnect back-off. Time is passed in; the caller owns the transport.
//! * [`drivers`]: sensor drivers over `embedded-hal` 1.0: the HX711 load-cell ADC
//!   ([`drivers::hx711`]), a pulse-counting flow meter ([`drivers::flow`]) and the VL53L0X
//!   time-of-flight distance sensor ([`drivers::vl53l0x`]).
//! * [`tank`]: tank geometry, from a distance to the liquid surface to millilitres.
//! * [`persist`]: the boot counter, calibrations and MQTT login kept across reboots, as
//!   CRC-checked records in a two-sector flash journal over `embedded-storage`.
//! * [`console`]: the serial console's lines (`login PASSWORD`, `logout`), typed by a person
//!   giving a device the login the agent issued for it.
#![no_std]

#[cfg(test)]
extern crate std;

pub mod calibration;
pub mod console;
pub mod detect;
pub mod drivers;
pub mod persist;
pub mod runtime;
pub mod tank;

pub use calibration::{Calibration, CalibrationError};
pub use detect::{
    Detection, DetectorConfig, LevelDetector, LifespanTracker, SlotMonitor, UsageCounter,
};
pub use runtime::{CommandAction, DeviceRuntime, Outgoing, OutgoingMessage, RuntimeConfig};
pub use tank::{TankError, TankGeometry};
