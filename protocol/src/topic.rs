//! MQTT topics: `{prefix}/{household}/{device}/{channel}`, built and parsed only here.
//!
//! The prefix may have several segments (`replenish/v1` by default); household and device are
//! [`Id`](crate::Id)s, so they never hold `/`, `+` or `#`.

use core::fmt;

use crate::id::{DeviceId, HouseholdId, Id};

/// The last segment of a topic: what kind of message travels on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// Device → agent, retained: the birth or `offline` (also the last will).
    Status,
    /// Device → agent: level, usage, refill and fault reports.
    Report,
    /// Agent → device: commands.
    Cmd,
    /// Device → agent: answers to commands.
    Ack,
}

impl Channel {
    /// Every channel, in topic order of the docs.
    pub const ALL: [Channel; 4] = [Channel::Status, Channel::Report, Channel::Cmd, Channel::Ack];

    /// The segment as it appears in a topic.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Status => "status",
            Channel::Report => "report",
            Channel::Cmd => "cmd",
            Channel::Ack => "ack",
        }
    }

    fn parse(segment: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == segment)
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed topic, borrowing from the topic string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicRef<'a> {
    /// The household segment.
    pub household: &'a str,
    /// The device segment.
    pub device: &'a str,
    /// The channel segment.
    pub channel: Channel,
}

/// Why a topic or a prefix was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// The topic does not start with the configured prefix.
    #[error("topic is not under the prefix")]
    WrongPrefix,
    /// The topic has too few or too many segments after the prefix.
    #[error("expected {{prefix}}/{{household}}/{{device}}/{{channel}}")]
    WrongShape,
    /// The household or device segment is not a valid identifier.
    #[error("household or device segment is not a valid identifier")]
    BadSegment,
    /// The last segment is not one of status, report, cmd, ack.
    #[error("unknown channel segment")]
    UnknownChannel,
    /// A prefix is empty, has an empty segment or holds a wildcard.
    #[error("prefix must be non-empty segments without '+', '#' or empty parts")]
    BadPrefix,
}

/// Checks a topic prefix (`replenish/v1`): non-empty segments with no wildcard.
pub fn validate_prefix(prefix: &str) -> Result<(), TopicError> {
    if prefix.is_empty()
        || prefix
            .split('/')
            .any(|s| s.is_empty() || s.contains(['+', '#']))
    {
        return Err(TopicError::BadPrefix);
    }
    Ok(())
}

/// Parses `topic` under `prefix`.
pub fn parse<'a>(prefix: &str, topic: &'a str) -> Result<TopicRef<'a>, TopicError> {
    let rest = topic
        .strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('/'))
        .ok_or(TopicError::WrongPrefix)?;
    let mut parts = rest.split('/');
    let (Some(household), Some(device), Some(channel), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TopicError::WrongShape);
    };
    if Id::new(household).is_err() || Id::new(device).is_err() {
        return Err(TopicError::BadSegment);
    }
    let channel = Channel::parse(channel).ok_or(TopicError::UnknownChannel)?;
    Ok(TopicRef {
        household,
        device,
        channel,
    })
}

/// Writes a topic into any `fmt::Write` sink, such as a `heapless::String`, without allocating.
pub fn write<W: fmt::Write>(
    out: &mut W,
    prefix: &str,
    household: &HouseholdId,
    device: &DeviceId,
    channel: Channel,
) -> fmt::Result {
    write!(out, "{prefix}/{household}/{device}/{channel}")
}

/// The topic of one device's channel.
#[cfg(feature = "alloc")]
pub fn build(
    prefix: &str,
    household: &HouseholdId,
    device: &DeviceId,
    channel: Channel,
) -> alloc::string::String {
    alloc::format!("{prefix}/{household}/{device}/{channel}")
}

/// Where the agent publishes for a household (`{prefix}/{household}/agent`: availability,
/// approvals, Home Assistant state); its topics have more or other segments than a device's, so
/// they never parse as device topics.
#[cfg(feature = "alloc")]
pub fn agent_root(prefix: &str, household: &str) -> alloc::string::String {
    alloc::format!("{prefix}/{household}/agent")
}

/// The filter matching every channel of every device in a household (`…/{household}/+/+`), in
/// one subscription: a broker keeps the order of one client's messages within a subscription
/// (rumqttd only within one filter), so a device's birth reaches the agent before the reports
/// it sent after it.
#[cfg(feature = "alloc")]
pub fn household_filter(prefix: &str, household: &HouseholdId) -> alloc::string::String {
    alloc::format!("{prefix}/{household}/+/+")
}

/// The filter matching one channel of every device in a household (`…/{household}/+/report`).
#[cfg(feature = "alloc")]
pub fn filter(prefix: &str, household: &HouseholdId, channel: Channel) -> alloc::string::String {
    alloc::format!("{prefix}/{household}/+/{channel}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id<T: From<Id>>(s: &str) -> T {
        Id::new(s).unwrap().into()
    }

    #[test]
    fn build_and_parse_round_trip_for_every_channel() {
        for channel in Channel::ALL {
            let topic = build("replenish/v1", &id("home-1"), &id("coffee"), channel);
            let parsed = parse("replenish/v1", &topic).unwrap();
            assert_eq!(
                parsed,
                TopicRef {
                    household: "home-1",
                    device: "coffee",
                    channel
                }
            );
        }
    }

    #[test]
    fn write_matches_build() {
        let mut s: heapless::String<64> = heapless::String::new();
        write(&mut s, "p", &id("h"), &id("d"), Channel::Ack).unwrap();
        assert_eq!(s.as_str(), build("p", &id("h"), &id("d"), Channel::Ack));
    }

    #[test]
    fn refuses_malformed_topics() {
        let p = "replenish/v1";
        assert_eq!(
            parse(p, "other/v1/h/d/report"),
            Err(TopicError::WrongPrefix)
        );
        assert_eq!(
            parse(p, "replenish/v10/h/d/report"),
            Err(TopicError::WrongPrefix)
        );
        assert_eq!(parse(p, "replenish/v1/h/d"), Err(TopicError::WrongShape));
        assert_eq!(
            parse(p, "replenish/v1/h/d/report/x"),
            Err(TopicError::WrongShape)
        );
        assert_eq!(
            parse(p, "replenish/v1/H/d/report"),
            Err(TopicError::BadSegment)
        );
        assert_eq!(
            parse(p, "replenish/v1/h//report"),
            Err(TopicError::BadSegment)
        );
        assert_eq!(
            parse(p, "replenish/v1/h/d/reports"),
            Err(TopicError::UnknownChannel)
        );
    }

    #[test]
    fn filter_uses_a_single_level_wildcard() {
        assert_eq!(
            filter("replenish/v1", &id("h"), Channel::Report),
            "replenish/v1/h/+/report"
        );
    }

    #[test]
    fn prefixes_are_checked() {
        assert!(validate_prefix("replenish/v1").is_ok());
        for bad in ["", "a//b", "a/+", "#", "/a"] {
            assert_eq!(validate_prefix(bad), Err(TopicError::BadPrefix), "{bad}");
        }
    }
}
