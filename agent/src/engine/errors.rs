//! Why an event was refused ([`EngineError`]): nothing changed, and the caller gets a label
//! for its counter and the device to blame, if any.

use replenish_protocol::{DeviceId, Id};

use super::household::{Denied, InvalidRules};
use super::order::InvalidTransition;

/// Why an event was refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    /// A report from a device that never sent a birth.
    #[error("device {0} is unknown: no birth received")]
    UnknownDevice(DeviceId),
    /// A report about a slot the device did not announce.
    #[error("device {device} has no slot {slot}")]
    UnknownSlot {
        /// The device.
        device: DeviceId,
        /// The slot.
        slot: Id,
    },
    /// A report already received (an MQTT redelivery).
    #[error("duplicate report boot {boot} seq {seq} from {device}")]
    Duplicate {
        /// The device.
        device: DeviceId,
        /// Its boot.
        boot: u32,
        /// The sequence number.
        seq: u32,
    },
    /// A report older than what is remembered of its device (a boot before the recent ones,
    /// or a hole given up as lost): it cannot be told from a duplicate.
    #[error("report boot {boot} seq {seq} from {device} is older than its de-dup state")]
    TooOld {
        /// The device.
        device: DeviceId,
        /// Its boot.
        boot: u32,
        /// The sequence number.
        seq: u32,
    },
    /// A timestamp before 2020 or ahead of the agent's clock by more than the allowed skew.
    #[error("report from {device} stamped {ts} ms: outside 2020-01-01 .. now + skew")]
    TimestampOutOfRange {
        /// The device.
        device: DeviceId,
        /// The timestamp.
        ts: u64,
    },
    /// An amount no slot of this capacity can hold.
    #[error("report from {device}: {field} {value} is outside 0..={most}")]
    ValueOutOfRange {
        /// The device.
        device: DeviceId,
        /// The field.
        field: &'static str,
        /// The value.
        value: f64,
        /// The most allowed (a multiple of the slot's capacity).
        most: f64,
    },
    /// An ack of no command under way (late, after the agent gave up, or made up).
    #[error("ack {id} from {device} matches no command under way")]
    UnmatchedAck {
        /// The device.
        device: DeviceId,
        /// The ack's id.
        id: u32,
    },
    /// No such order.
    #[error("no order {0}")]
    UnknownOrder(String),
    /// The order is not in a state that allows this.
    #[error(transparent)]
    Transition(#[from] InvalidTransition),
    /// The actor may not do this.
    #[error(transparent)]
    Denied(#[from] Denied),
    /// Rules that cannot be used.
    #[error(transparent)]
    InvalidRules(#[from] InvalidRules),
    /// A request that cannot be carried out as asked (an edit out of range).
    #[error("{0}")]
    Invalid(String),
    /// A request that clashes with what exists (a name already taken).
    #[error("{0}")]
    Conflict(String),
    /// No such member.
    #[error("no member {0}")]
    UnknownMember(String),
    /// A device that waits for an owner's acceptance.
    #[error("device {0} waits for an owner to accept it")]
    NotAccepted(DeviceId),
}

impl EngineError {
    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::UnknownDevice(_) => "unknown_device",
            Self::UnknownSlot { .. } => "unknown_slot",
            Self::Duplicate { .. } => "duplicate",
            Self::TooOld { .. } => "too_old",
            Self::TimestampOutOfRange { .. } => "timestamp_out_of_range",
            Self::ValueOutOfRange { .. } => "value_out_of_range",
            Self::UnmatchedAck { .. } => "unmatched_ack",
            Self::UnknownOrder(_) => "unknown_order",
            Self::Transition(_) => "invalid_transition",
            Self::Denied(_) => "denied",
            Self::InvalidRules(_) | Self::Invalid(_) => "invalid",
            Self::Conflict(_) => "conflict",
            Self::UnknownMember(_) => "unknown_member",
            Self::NotAccepted(_) => "not_accepted",
        }
    }
}

impl EngineError {
    /// The device a refused message came from, if it is about one.
    pub fn device(&self) -> Option<&DeviceId> {
        match self {
            Self::UnknownDevice(device)
            | Self::NotAccepted(device)
            | Self::UnknownSlot { device, .. }
            | Self::Duplicate { device, .. }
            | Self::TooOld { device, .. }
            | Self::TimestampOutOfRange { device, .. }
            | Self::ValueOutOfRange { device, .. }
            | Self::UnmatchedAck { device, .. } => Some(device),
            _ => None,
        }
    }
}
