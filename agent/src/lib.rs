//! The replenish edge agent.
//!
//! Telemetry arrives over MQTT ([`mqtt`]), is decoded with the device protocol and handed to
//! the pure [`engine`], which forecasts depletion and decides reorders. Its effects are carried
//! out by the [`runtime`] task: storage ([`store`]), the shop ([`commerce`]) and notices. The
//! [`http`] API shows the state and takes approvals; [`notify`] and [`home_assistant`] tell the
//! household and Home Assistant (see [`integrations`]); [`daemon`] wires it all together.

pub mod auth;
pub mod backoff;
pub mod broker;
pub mod clock;
pub use replenish_commerce as commerce;
pub mod config;
pub mod daemon;
pub mod engine;
pub mod home_assistant;
pub mod http;
pub mod integrations;
pub mod internal_events;
pub mod metric;
pub mod mqtt;
pub mod mqtt_out;
pub mod notify;
pub mod runtime;
pub mod store;
pub mod telemetry;
pub mod wire;

pub use daemon::{Agent, AgentOptions, StartError};
pub use runtime::AgentHandle;
