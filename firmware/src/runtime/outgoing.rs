//! Typed outgoing messages: the transport picks the topic from the channel and the encoding.

use replenish_protocol::codec::{self, EncodeError};
use replenish_protocol::{Ack, Channel, Report, Status};
use serde::{Serialize, Serializer};

/// A message the device publishes.
///
/// It serializes as the message inside (no wrapper), so
/// `replenish_protocol::codec::encode(&outgoing.message, Encoding::Json)` gives exactly what the
/// agent decodes as a [`Status`], [`Report`] or [`Ack`].
#[derive(Debug, Clone, PartialEq)]
#[expect(
    clippy::large_enum_variant,
    reason = "no allocator to box the birth; a message lives on the stack only while published"
)]
pub enum OutgoingMessage {
    /// Birth or offline, on `status`.
    Status(Status),
    /// A report, on `report`.
    Report(Report),
    /// An answer to a command, on `ack`.
    Ack(Ack),
}

impl Serialize for OutgoingMessage {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            OutgoingMessage::Status(status) => status.serialize(serializer),
            OutgoingMessage::Report(report) => report.serialize(serializer),
            OutgoingMessage::Ack(ack) => ack.serialize(serializer),
        }
    }
}

/// A message with where and how to publish it.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    /// The channel: the last topic segment (`{prefix}/{household}/{device}/{channel}`).
    pub channel: Channel,
    /// Publish with the MQTT retain flag.
    pub retain: bool,
    /// The message.
    pub message: OutgoingMessage,
}

impl Outgoing {
    /// A status (birth or offline): on [`Channel::Status`], retained.
    pub fn status(status: Status) -> Self {
        Self {
            channel: Channel::Status,
            retain: true,
            message: OutgoingMessage::Status(status),
        }
    }

    /// A report: on [`Channel::Report`], not retained.
    pub fn report(report: Report) -> Self {
        Self {
            channel: Channel::Report,
            retain: false,
            message: OutgoingMessage::Report(report),
        }
    }

    /// An ack: on [`Channel::Ack`], not retained.
    pub fn ack(ack: Ack) -> Self {
        Self {
            channel: Channel::Ack,
            retain: false,
            message: OutgoingMessage::Ack(ack),
        }
    }

    /// Encodes the message in the protocol's binary form into `buf`, returning the used part.
    /// Allocation-free; [`replenish_protocol::MAX_PAYLOAD`] bytes always suffice.
    pub fn encode<'b>(&self, buf: &'b mut [u8]) -> Result<&'b mut [u8], EncodeError> {
        codec::encode_binary(&self.message, buf)
    }
}
