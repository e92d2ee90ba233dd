//! Sensor drivers over `embedded-hal` 1.0.
//!
//! * [`hx711`]: the HX711 24-bit load-cell ADC (bit-banged `DOUT`/`PD_SCK`).
//! * [`flow`]: a pulse-counting flow meter (the pulses are counted elsewhere, by an interrupt or
//!   a hardware counter; this module turns them into millilitres and dispenses).
//! * [`vl53l0x`]: the VL53L0X time-of-flight distance sensor over I²C, for tank levels (with
//!   [`TankGeometry`](crate::tank::TankGeometry)).

pub mod flow;
pub mod hx711;
pub mod vl53l0x;
