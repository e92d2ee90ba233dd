//! The replenish edge agent.
//!
//! Telemetry arrives over MQTT ([`mqtt`]), is decoded with the device protocol and handed to
//! the pure [`engine`], which forecasts depletion and decides reorders. Its effects are carried
//! out by the [`runtime`] task: storage ([`store`]), the shop ([`commerce`]) and notices. The
//! [`http`] API shows the state and takes approvals; [`daemon`] wires it all together.

pub mod auth;
pub mod broker;
pub mod clock;
pub mod commerce;
pub mod config;
pub mod daemon;
pub mod engine;
pub mod http;
pub mod mqtt;
pub mod runtime;
pub mod store;
pub mod telemetry;

pub use daemon::{Agent, AgentOptions, StartError};
pub use runtime::AgentHandle;
