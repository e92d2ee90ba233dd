//! Keeps `docs/protocol.md` honest: every example in it must decode with this crate.
//!
//! * Fenced blocks tagged ```` ```json status ````, `report`, `command` or `ack` hold one message
//!   each; plain ```` ```json ```` is refused, so no example escapes the check.
//! * Blocks tagged ```` ```text hex <type> ```` hold a binary payload; it must decode to the JSON
//!   example of that type just before it, and be exactly what the encoder produces for it.
//! * The `mosquitto_pub` lines publish to topics whose channel says how to decode their payload.
//! * Together the examples must show every kind of message.
#![allow(clippy::expect_used, reason = "test helpers fail by panicking")]

use std::collections::BTreeSet;

use replenish_protocol::codec::{self, Encoding};
use replenish_protocol::topic::{self, Channel};
use replenish_protocol::{Ack, Command, CommandBody, DEFAULT_PREFIX, Report, ReportBody, Status};

/// A decoded example of any type.
#[derive(Debug, PartialEq)]
#[allow(clippy::large_enum_variant)] // test-only, a handful of values
enum Message {
    Status(Status),
    Report(Report),
    Command(Command),
    Ack(Ack),
}

impl Message {
    /// Decodes `payload` as the message type named `kind` (`status`, `report`, `command`, `ack`).
    fn decode(kind: &str, payload: &[u8]) -> Result<Self, String> {
        let err = |e: codec::DecodeError| e.to_string();
        Ok(match kind {
            "status" => Self::Status(codec::decode(payload).map_err(err)?),
            "report" => Self::Report(codec::decode(payload).map_err(err)?),
            "command" => Self::Command(codec::decode(payload).map_err(err)?),
            "ack" => Self::Ack(codec::decode(payload).map_err(err)?),
            other => return Err(format!("unknown message type {other:?}")),
        })
    }

    fn to_binary(&self) -> Vec<u8> {
        let bytes = match self {
            Self::Status(m) => codec::encode(m, Encoding::Binary),
            Self::Report(m) => codec::encode(m, Encoding::Binary),
            Self::Command(m) => codec::encode(m, Encoding::Binary),
            Self::Ack(m) => codec::encode(m, Encoding::Binary),
        };
        bytes.expect("every example encodes")
    }

    /// Which kind of message this is, to check that the doc shows them all. The matches are
    /// exhaustive on purpose: a new message kind does not compile here until it is documented.
    fn variant(&self) -> &'static str {
        match self {
            Self::Status(Status::Online(_)) => "status online",
            Self::Status(Status::Offline) => "status offline",
            Self::Report(r) => match r.body {
                ReportBody::Level { .. } => "report level",
                ReportBody::Usage { .. } => "report usage",
                ReportBody::Refill { .. } => "report refill",
                ReportBody::Fault { .. } => "report fault",
            },
            Self::Command(c) => match c.body {
                CommandBody::Tare { .. } => "command tare",
                CommandBody::Calibrate { .. } => "command calibrate",
                CommandBody::ReportInterval { .. } => "command report_interval",
                CommandBody::TimeSync { .. } => "command time_sync",
            },
            Self::Ack(a) if a.ok => "ack ok",
            Self::Ack(_) => "ack error",
        }
    }
}

/// A fenced code block: its info string, its text and the line its fence opens on.
struct Block {
    info: String,
    text: String,
    line: usize,
}

fn doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md");
    std::fs::read_to_string(path).expect("docs/protocol.md is readable")
}

fn fenced_blocks(doc: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in doc.lines().enumerate() {
        match (open.take(), line.strip_prefix("```")) {
            (None, Some(info)) => {
                open = Some(Block {
                    info: info.trim().to_owned(),
                    text: String::new(),
                    line: i + 1,
                })
            }
            (Some(block), Some("")) => blocks.push(block),
            (Some(mut block), _) => {
                block.text.push_str(line);
                block.text.push('\n');
                open = Some(block);
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "unclosed code block");
    blocks
}

fn parse_hex(text: &str) -> Vec<u8> {
    text.split_whitespace()
        .map(|byte| {
            u8::from_str_radix(byte, 16).unwrap_or_else(|_| panic!("bad hex byte {byte:?}"))
        })
        .collect()
}

#[test]
fn json_and_hex_examples_decode() {
    let mut variants = BTreeSet::new();
    let mut json_examples = 0;
    let mut hex_examples = 0;
    // The last JSON example of each type, for the hex blocks that follow one.
    let mut last_json: Vec<(String, Message)> = Vec::new();

    for block in fenced_blocks(&doc()) {
        let where_ = format!("docs/protocol.md:{} ({})", block.line, block.info);
        let words: Vec<&str> = block.info.split_whitespace().collect();
        match words.as_slice() {
            ["json", kind] => {
                let message = Message::decode(kind, block.text.as_bytes())
                    .unwrap_or_else(|e| panic!("{where_}: {e}\n{}", block.text));
                variants.insert(message.variant());
                last_json.retain(|(k, _)| k != kind);
                last_json.push((kind.to_string(), message));
                json_examples += 1;
            }
            ["json", ..] => {
                panic!("{where_}: tag JSON blocks with their type, e.g. ```json report")
            }
            ["text", "hex", kind] => {
                let bytes = parse_hex(&block.text);
                let decoded =
                    Message::decode(kind, &bytes).unwrap_or_else(|e| panic!("{where_}: {e}"));
                let (_, expected) = last_json
                    .iter()
                    .find(|(k, _)| k == kind)
                    .unwrap_or_else(|| panic!("{where_}: no ```json {kind} example before it"));
                assert_eq!(
                    &decoded, expected,
                    "{where_}: the hex is not the JSON example above it"
                );
                assert_eq!(
                    expected.to_binary(),
                    bytes,
                    "{where_}: the encoder writes other bytes"
                );
                hex_examples += 1;
            }
            _ => {}
        }
    }

    let all = [
        "status online",
        "status offline",
        "report level",
        "report usage",
        "report refill",
        "report fault",
        "command tare",
        "command calibrate",
        "command report_interval",
        "command time_sync",
        "ack ok",
        "ack error",
    ];
    let missing: Vec<_> = all.iter().filter(|v| !variants.contains(*v)).collect();
    assert!(missing.is_empty(), "the doc has no example of {missing:?}");
    assert!(
        json_examples >= 18,
        "only {json_examples} JSON examples found"
    );
    assert!(hex_examples >= 2, "only {hex_examples} hex examples found");
}

#[test]
fn mosquitto_pub_lines_publish_valid_messages() {
    let doc = doc();
    let lines: Vec<&str> = doc
        .lines()
        .filter(|l| l.starts_with("mosquitto_pub "))
        .collect();
    assert_eq!(lines.len(), 2, "expected a birth and a report: {lines:#?}");

    let mut channels = Vec::new();
    for line in lines {
        assert!(
            line.starts_with("mosquitto_pub -h localhost -p 1883 -q 1 "),
            "{line}"
        );
        let (args, payload) = line.split_once(" -m '").expect("a -m '...' payload");
        let payload = payload
            .strip_suffix('\'')
            .expect("the payload ends the line");
        assert!(
            !payload.contains('\''),
            "a single quote would end the payload early: {line}"
        );
        let topic = args
            .split_once(" -t ")
            .and_then(|(_, t)| t.split(' ').next())
            .expect("a -t topic");
        let topic = topic::parse(DEFAULT_PREFIX, topic).unwrap_or_else(|e| panic!("{topic}: {e}"));
        assert_eq!((topic.household, topic.device), ("demo", "kettle"));

        let retained = args.split(' ').any(|a| a == "-r");
        let message = match topic.channel {
            Channel::Status => Message::decode("status", payload.as_bytes()),
            Channel::Report => Message::decode("report", payload.as_bytes()),
            other => panic!("devices do not publish on {other}"),
        };
        let message = message.unwrap_or_else(|e| panic!("{line}\n{e}"));
        assert_eq!(
            retained,
            topic.channel == Channel::Status,
            "only status is retained: {line}"
        );
        channels.push((topic.channel, message));
    }

    let [
        (Channel::Status, Message::Status(Status::Online(birth))),
        (Channel::Report, Message::Report(report)),
    ] = channels.as_slice()
    else {
        panic!("expected a birth, then a report: {channels:#?}");
    };
    assert_eq!(
        report.boot, birth.boot,
        "the report belongs to the birth's boot"
    );
    let slot = report.body.slot().expect("the report names a slot");
    assert!(
        birth.slots.iter().any(|s| &s.id == slot),
        "slot {slot} is not in the birth"
    );
}
