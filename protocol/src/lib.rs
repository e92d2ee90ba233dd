//! The replenish device protocol, version 1: the contract between appliances and the edge agent.
//!
//! * [`topic`] builds and parses MQTT topics (`{prefix}/{household}/{device}/{channel}`).
//! * [`message`] defines what travels on them: a retained birth/offline [`Status`], [`Report`]s
//!   (level, usage, refill, fault), [`Command`]s and [`Ack`]s.
//! * [`codec`] turns messages into bytes and back: JSON (readable, what `docs/protocol.md` shows)
//!   and a compact binary form (postcard behind a two-byte header), told apart by their first byte.
//!
//! The crate is `no_std`. Without features it offers the types, topic parsing and the binary
//! codec with no allocation; `alloc` adds the JSON codec and owned topic strings; `std` (default)
//! is `alloc` plus std integrations.
#![cfg_attr(not(feature = "std"), no_std)]

#[cfg(feature = "alloc")]
extern crate alloc;

pub mod codec;
pub mod id;
pub mod message;
pub mod topic;

pub use codec::{DecodeError, EncodeError, Encoding, MAX_PAYLOAD};
pub use id::{DeviceId, HouseholdId, Id, IdError};
pub use message::{
    Ack, Birth, Command, CommandBody, DriverMeasure, FaultCode, Report, ReportBody, SensorKind,
    SlotDriver, SlotSpec, SlotUse, Status, Unit, Validate, ValidationError,
};
pub use topic::{Channel, TopicError, TopicRef};

/// The protocol version carried in the default topic prefix and the binary header.
pub const PROTOCOL_VERSION: u8 = 1;

/// The default topic prefix; deployments may choose another one.
pub const DEFAULT_PREFIX: &str = "replenish/v1";
