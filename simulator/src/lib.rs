//! The replenish simulator: virtual households whose appliances run the real firmware logic on
//! simulated sensors, a sandbox shop that speaks the commerce API, and the one-command demo.

pub mod appliance;
pub mod bench;
pub mod chaos;
pub mod demo;
pub mod devices;
pub mod hardware;
pub mod headless;
pub mod household;
pub mod load;
pub mod loadcell;
pub mod mosquitto;
pub mod opening_hours;
pub mod report;
pub mod scenario;
pub mod shop;
pub mod shop_faults;
pub mod world;
