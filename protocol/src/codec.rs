//! Encoding messages as bytes.
//!
//! Two encodings share every topic and are told apart by the first byte, never by guessing:
//!
//! * **JSON**: the first byte that is not ASCII white space is `{` or `"` (a bare `"offline"`).
//!   Readable, and any MQTT tool can send it.
//! * **Binary**: `0xB1`, then the protocol version (`1`), then the message in
//!   [postcard](https://docs.rs/postcard) form. `0xB1` can start no JSON text and no UTF-8 text.
//!
//! Payloads longer than [`MAX_PAYLOAD`] are refused before any parsing. Every decoded message is
//! [validated](crate::Validate).

use serde::{Serialize, de::DeserializeOwned};

use crate::message::{Validate, ValidationError};

/// Largest payload accepted on any topic, in bytes.
pub const MAX_PAYLOAD: usize = 2048;
/// First byte of a binary payload.
pub const BINARY_MAGIC: u8 = 0xB1;

/// The two encodings of protocol v1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// UTF-8 JSON.
    Json,
    /// `0xB1`, version byte, postcard.
    Binary,
}

/// Why a payload could not be decoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// The payload is empty.
    #[error("empty payload")]
    Empty,
    /// The payload is larger than [`MAX_PAYLOAD`].
    #[error("payload of {len} bytes exceeds the maximum of {MAX_PAYLOAD}")]
    TooLarge {
        /// The payload's length.
        len: usize,
    },
    /// The first byte starts neither encoding.
    #[error("unknown encoding: first byte 0x{0:02x} starts neither JSON nor binary")]
    UnknownEncoding(u8),
    /// A binary payload of a protocol version this build does not speak.
    #[error("binary payload of protocol version {0}; this build speaks version 1")]
    UnsupportedVersion(u8),
    /// The binary body is malformed.
    #[error("malformed binary payload: {0}")]
    Binary(postcard::Error),
    /// The JSON is malformed or does not match the message.
    #[cfg(feature = "alloc")]
    #[error("malformed JSON payload: {0}")]
    Json(alloc::string::String),
    /// JSON needs the `alloc` feature.
    #[cfg(not(feature = "alloc"))]
    #[error("JSON payloads need the alloc feature")]
    JsonUnsupported,
    /// The message decoded but breaks a protocol rule.
    #[error("invalid message: {0}")]
    Invalid(#[from] ValidationError),
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EncodeError {
    /// The output buffer is too small, or the message exceeds [`MAX_PAYLOAD`].
    #[error("encoded message does not fit in {0} bytes")]
    TooLarge(usize),
    /// The serializer failed.
    #[error("cannot encode message: {0}")]
    Serialize(postcard::Error),
}

/// Tells which encoding a payload uses, checking only its size and first bytes.
pub fn detect(payload: &[u8]) -> Result<Encoding, DecodeError> {
    if payload.len() > MAX_PAYLOAD {
        return Err(DecodeError::TooLarge { len: payload.len() });
    }
    let first = payload
        .iter()
        .copied()
        .find(|b| !b.is_ascii_whitespace())
        .ok_or(DecodeError::Empty)?;
    match first {
        b'{' | b'"' => Ok(Encoding::Json),
        BINARY_MAGIC => Ok(Encoding::Binary),
        other => Err(DecodeError::UnknownEncoding(other)),
    }
}

/// Decodes and validates a message in either encoding.
pub fn decode<T: DeserializeOwned + Validate>(payload: &[u8]) -> Result<T, DecodeError> {
    let message: T = match detect(payload)? {
        Encoding::Binary => {
            let version = payload.get(1).copied().ok_or(DecodeError::Binary(
                postcard::Error::DeserializeUnexpectedEnd,
            ))?;
            if version != crate::PROTOCOL_VERSION {
                return Err(DecodeError::UnsupportedVersion(version));
            }
            decode_postcard(&payload[2..])?
        }
        #[cfg(feature = "alloc")]
        Encoding::Json => {
            serde_json::from_slice(payload).map_err(|e| DecodeError::Json(alloc::format!("{e}")))?
        }
        #[cfg(not(feature = "alloc"))]
        Encoding::Json => return Err(DecodeError::JsonUnsupported),
    };
    message.validate()?;
    Ok(message)
}

fn decode_postcard<T: DeserializeOwned + Validate>(body: &[u8]) -> Result<T, DecodeError> {
    match postcard::take_from_bytes(body) {
        Ok((message, [])) => Ok(message),
        Ok(_) => Err(DecodeError::Binary(postcard::Error::DeserializeBadEncoding)),
        // A message whose last fields are optional later additions, sent by a device that
        // leaves them out (a birth without `buffer`, or without `usage`): read them as
        // absent, one `None` byte each.
        Err(postcard::Error::DeserializeUnexpectedEnd) if T::TRAILING_OPTIONS > 0 => {
            let mut padded = heapless::Vec::<u8, { MAX_PAYLOAD + 8 }>::new();
            let too_large = DecodeError::TooLarge {
                len: body.len() + 2 + T::TRAILING_OPTIONS,
            };
            padded
                .extend_from_slice(body)
                .map_err(|_| too_large.clone())?;
            for _ in 0..T::TRAILING_OPTIONS {
                padded.push(0).map_err(|_| too_large.clone())?;
                match postcard::take_from_bytes(&padded) {
                    Ok((message, [])) => return Ok(message),
                    Err(postcard::Error::DeserializeUnexpectedEnd) => continue,
                    _ => break,
                }
            }
            Err(DecodeError::Binary(
                postcard::Error::DeserializeUnexpectedEnd,
            ))
        }
        Err(e) => Err(DecodeError::Binary(e)),
    }
}

/// Encodes a message in binary form into `buf`, returning the used part. Allocation-free.
pub fn encode_binary<'b, T: Serialize>(
    message: &T,
    buf: &'b mut [u8],
) -> Result<&'b mut [u8], EncodeError> {
    let capacity = buf.len().min(MAX_PAYLOAD);
    if capacity < 2 {
        return Err(EncodeError::TooLarge(capacity));
    }
    buf[0] = BINARY_MAGIC;
    buf[1] = crate::PROTOCOL_VERSION;
    let body_len = match postcard::to_slice(message, &mut buf[2..capacity]) {
        Ok(body) => body.len(),
        Err(postcard::Error::SerializeBufferFull) => return Err(EncodeError::TooLarge(capacity)),
        Err(e) => return Err(EncodeError::Serialize(e)),
    };
    Ok(&mut buf[..2 + body_len])
}

/// Encodes a message in the given encoding.
#[cfg(feature = "alloc")]
pub fn encode<T: Serialize>(
    message: &T,
    encoding: Encoding,
) -> Result<alloc::vec::Vec<u8>, EncodeError> {
    let bytes = match encoding {
        Encoding::Json => serde_json::to_vec(message)
            .map_err(|_| EncodeError::Serialize(postcard::Error::SerdeSerCustom))?,
        Encoding::Binary => {
            let mut buf = alloc::vec![0u8; MAX_PAYLOAD];
            let len = encode_binary(message, &mut buf)?.len();
            buf.truncate(len);
            buf
        }
    };
    if bytes.len() > MAX_PAYLOAD {
        return Err(EncodeError::TooLarge(MAX_PAYLOAD));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Id;
    use crate::message::*;
    use proptest::prelude::*;

    fn id(s: &str) -> Id {
        Id::new(s).unwrap()
    }

    fn birth() -> Status {
        let mut slots = heapless::Vec::new();
        slots
            .push(SlotSpec {
                id: id("beans"),
                consumable: id("coffee_beans"),
                unit: Unit::G,
                capacity: 500.0,
                sensor: SensorKind::Level,
            })
            .unwrap();
        Status::Online(Birth {
            model: id("coffee-maker"),
            firmware: heapless::String::try_from("0.1.0").unwrap(),
            boot: 7,
            slots,
            buffer: None,
            usage: None,
        })
    }

    #[test]
    fn a_birth_without_buffer_is_the_earlier_binary_layout() {
        let Status::Online(mut with_buffer) = birth() else {
            unreachable!()
        };
        let without = encode(&Status::Online(with_buffer.clone()), Encoding::Binary).unwrap();
        assert_eq!(
            decode::<Status>(&without).unwrap(),
            Status::Online(with_buffer.clone())
        );
        with_buffer.buffer = Some(300);
        let with = encode(&Status::Online(with_buffer.clone()), Encoding::Binary).unwrap();
        assert_eq!(
            with.len(),
            without.len() + 3,
            "Some tag and a two-byte varint"
        );
        assert_eq!(
            decode::<Status>(&with).unwrap(),
            Status::Online(with_buffer)
        );
        // Reports have no optional tail: a truncated one stays refused.
        let report = Report {
            boot: 1,
            seq: 1,
            ts: 0,
            body: ReportBody::Fault {
                slot: None,
                code: FaultCode::Other,
                detail: Detail::new(),
            },
        };
        let mut bytes = encode(&report, Encoding::Binary).unwrap();
        bytes.pop();
        assert!(decode::<Report>(&bytes).is_err());
    }

    /// A coffee maker with a descaler dispenser declared used every 200 brews.
    fn descaling_birth() -> Birth {
        let Status::Online(mut birth) = birth() else {
            unreachable!()
        };
        birth
            .slots
            .push(SlotSpec {
                id: id("descaler"),
                consumable: id("descaler_tablets"),
                unit: Unit::Count,
                capacity: 6.0,
                sensor: SensorKind::Level,
            })
            .unwrap();
        birth.buffer = Some(32);
        let mut usage = heapless::Vec::new();
        usage
            .push(SlotUse {
                slot: id("descaler"),
                every_days: Some(60.0),
                per: Some(SlotDriver {
                    slot: id("beans"),
                    every: 200.0,
                    counts: DriverMeasure::Uses,
                }),
            })
            .unwrap();
        birth.usage = Some(usage);
        birth
    }

    #[test]
    fn declared_usage_trails_the_birth_in_both_encodings() {
        let birth = descaling_birth();
        for enc in [Encoding::Json, Encoding::Binary] {
            let bytes = encode(&Status::Online(birth.clone()), enc).unwrap();
            assert_eq!(
                decode::<Status>(&bytes).unwrap(),
                Status::Online(birth.clone())
            );
        }
        // Without it, the binary form is the layout of a birth with a buffer: byte for byte.
        let mut without = birth.clone();
        without.usage = None;
        let old = encode(&Status::Online(without.clone()), Encoding::Binary).unwrap();
        let new = encode(&Status::Online(birth.clone()), Encoding::Binary).unwrap();
        assert_eq!(&new[..old.len()], &old[..]);
        assert_eq!(
            decode::<Status>(&old).unwrap(),
            Status::Online(without.clone())
        );
        // JSON leaves it out, so agents that do not know it still read such births.
        let json = encode(&Status::Online(without), Encoding::Json).unwrap();
        assert!(!String::from_utf8(json.to_vec()).unwrap().contains("usage"));
    }

    fn usage(b: &mut Birth) -> &mut SlotUse {
        &mut b.usage.as_mut().unwrap()[0]
    }

    #[test]
    fn declared_usage_must_name_real_slots_and_sane_amounts() {
        let refuse = |change: &dyn Fn(&mut Birth), why: ValidationError| {
            let mut birth = descaling_birth();
            change(&mut birth);
            assert_eq!(Status::Online(birth).validate(), Err(why));
        };
        refuse(&|b| b.buffer = None, ValidationError::UsageWithoutBuffer);
        refuse(
            &|b| usage(b).slot = id("milk"),
            ValidationError::UnknownDeclaredSlot,
        );
        refuse(
            &|b| usage(b).per.as_mut().unwrap().slot = id("descaler"),
            ValidationError::UnknownDeclaredSlot,
        );
        refuse(
            &|b| usage(b).per.as_mut().unwrap().every = 0.5,
            ValidationError::OutOfRange("every"),
        );
        refuse(
            &|b| usage(b).every_days = Some(f32::NAN),
            ValidationError::OutOfRange("every_days"),
        );
        refuse(
            &|b| {
                let again = usage(b).clone();
                b.usage.as_mut().unwrap().push(again).unwrap();
            },
            ValidationError::UnknownDeclaredSlot,
        );
        assert_eq!(Status::Online(descaling_birth()).validate(), Ok(()));
    }

    #[test]
    fn both_encodings_round_trip() {
        let report = Report {
            boot: 7,
            seq: 3,
            ts: 1_767_225_600_000,
            body: ReportBody::Usage {
                slot: id("beans"),
                amount: 9.0,
                uses: 1,
            },
        };
        for enc in [Encoding::Json, Encoding::Binary] {
            let bytes = encode(&report, enc).unwrap();
            assert_eq!(detect(&bytes).unwrap(), enc);
            assert_eq!(decode::<Report>(&bytes).unwrap(), report);
            let bytes = encode(&birth(), enc).unwrap();
            assert_eq!(decode::<Status>(&bytes).unwrap(), birth());
        }
    }

    #[test]
    fn binary_is_smaller_than_json() {
        let json = encode(&birth(), Encoding::Json).unwrap();
        let bin = encode(&birth(), Encoding::Binary).unwrap();
        assert!(
            bin.len() * 2 < json.len(),
            "{} vs {}",
            bin.len(),
            json.len()
        );
    }

    #[test]
    fn refuses_oversized_empty_and_unknown_payloads() {
        assert_eq!(
            detect(&[b' '; MAX_PAYLOAD + 1]),
            Err(DecodeError::TooLarge {
                len: MAX_PAYLOAD + 1
            })
        );
        assert_eq!(detect(b"  "), Err(DecodeError::Empty));
        assert_eq!(detect(b"[1]"), Err(DecodeError::UnknownEncoding(b'[')));
        assert_eq!(
            decode::<Report>(&[BINARY_MAGIC, 9, 0]),
            Err(DecodeError::UnsupportedVersion(9))
        );
        assert!(matches!(
            decode::<Report>(&[BINARY_MAGIC]),
            Err(DecodeError::Binary(_))
        ));
    }

    #[test]
    fn refuses_unknown_fields_and_rule_breaking_values() {
        let extra =
            br#"{"boot":1,"seq":1,"ts":0,"body":{"level":{"slot":"beans","remaining":1}},"x":1}"#;
        assert!(matches!(decode::<Report>(extra), Err(DecodeError::Json(_))));
        let negative =
            br#"{"boot":1,"seq":1,"ts":0,"body":{"level":{"slot":"beans","remaining":-1}}}"#;
        assert_eq!(
            decode::<Report>(negative),
            Err(DecodeError::Invalid(ValidationError::Negative("remaining")))
        );
        let bad_slot =
            br#"{"boot":1,"seq":1,"ts":0,"body":{"level":{"slot":"Beans!","remaining":1}}}"#;
        assert!(matches!(
            decode::<Report>(bad_slot),
            Err(DecodeError::Json(_))
        ));
        let ack = br#"{"id":1,"ok":false,"error":null}"#;
        assert_eq!(
            decode::<Ack>(ack),
            Err(DecodeError::Invalid(ValidationError::AckErrorMismatch))
        );
    }

    #[test]
    fn trailing_bytes_after_a_binary_message_are_refused() {
        let mut bytes = encode(&Status::Offline, Encoding::Binary).unwrap();
        bytes.push(0);
        assert!(matches!(
            decode::<Status>(&bytes),
            Err(DecodeError::Binary(_))
        ));
    }

    proptest! {
        // Whatever arrives on the wire, decoding returns a value or an error; it never panics.
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode::<Report>(&bytes);
            let _ = decode::<Status>(&bytes);
            let mut framed = vec![BINARY_MAGIC, 1];
            framed.extend_from_slice(&bytes);
            let _ = decode::<Report>(&framed);
            let _ = decode::<Command>(&framed);
        }

        #[test]
        fn level_reports_round_trip(boot: u32, seq: u32, ts: u64, remaining in 0.0f32..1e6) {
            let report = Report { boot, seq, ts, body: ReportBody::Level { slot: id("milk"), remaining } };
            for enc in [Encoding::Json, Encoding::Binary] {
                prop_assert_eq!(decode::<Report>(&encode(&report, enc).unwrap()).unwrap(), report.clone());
            }
        }
    }
}
