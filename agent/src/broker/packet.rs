//! Just enough of MQTT 3.1.1 and 5 to guard a broker: framing, the CONNECT's identity (and
//! rewriting its login), a PUBLISH's topic and a SUBSCRIBE's filters. Pure functions over
//! bytes; anything malformed is an error, never a panic.

/// A packet the guard cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// The packet ends inside a field.
    #[error("packet truncated")]
    Truncated,
    /// The remaining length is longer than four bytes.
    #[error("malformed remaining length")]
    Length,
    /// A string is not UTF-8.
    #[error("a string is not UTF-8")]
    Utf8,
    /// Not a CONNECT of MQTT 3.1.1 or 5.
    #[error("not an MQTT 3.1.1 or 5 CONNECT")]
    NotConnect,
    /// The packet is larger than allowed.
    #[error("packet of {0} bytes is larger than allowed")]
    TooLarge(usize),
}

/// The protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// MQTT 3.1.1 (level 4).
    V4,
    /// MQTT 5.
    V5,
}

/// Where the next packet in `buf` ends: `Ok(None)` when more bytes are needed. Refuses a
/// packet larger than `max` before it arrives.
pub fn frame(buf: &[u8], max: usize) -> Result<Option<usize>, PacketError> {
    let mut remaining = 0usize;
    for i in 0..4 {
        let Some(&byte) = buf.get(1 + i) else {
            return Ok(None);
        };
        remaining |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            let total = 2 + i + remaining;
            if total > max {
                return Err(PacketError::TooLarge(total));
            }
            return Ok((buf.len() >= total).then_some(total));
        }
    }
    Err(PacketError::Length)
}

/// The packet type (the high nibble of the first byte).
pub fn kind(packet: &[u8]) -> u8 {
    packet.first().map_or(0, |b| b >> 4)
}

/// CONNECT.
pub const CONNECT: u8 = 1;
/// PUBLISH.
pub const PUBLISH: u8 = 3;
/// SUBSCRIBE.
pub const SUBSCRIBE: u8 = 8;

/// A reader over a packet's bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    /// Starts after the fixed header.
    fn body(packet: &'a [u8]) -> Result<Self, PacketError> {
        let mut at = 1;
        loop {
            let byte = *packet.get(at).ok_or(PacketError::Truncated)?;
            at += 1;
            if byte & 0x80 == 0 {
                break;
            }
            if at > 4 {
                return Err(PacketError::Length);
            }
        }
        Ok(Self { bytes: packet, at })
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], PacketError> {
        let end = self.at.checked_add(n).ok_or(PacketError::Truncated)?;
        let out = self.bytes.get(self.at..end).ok_or(PacketError::Truncated)?;
        self.at = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, PacketError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<usize, PacketError> {
        let b = self.take(2)?;
        Ok(usize::from(b[0]) << 8 | usize::from(b[1]))
    }

    fn binary(&mut self) -> Result<&'a [u8], PacketError> {
        let n = self.u16()?;
        self.take(n)
    }

    fn string(&mut self) -> Result<&'a str, PacketError> {
        std::str::from_utf8(self.binary()?).map_err(|_| PacketError::Utf8)
    }

    fn varint(&mut self) -> Result<usize, PacketError> {
        let mut value = 0usize;
        for i in 0..4 {
            let byte = self.u8()?;
            value |= usize::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(PacketError::Length)
    }

    /// Skips an MQTT 5 property block.
    fn properties(&mut self) -> Result<(), PacketError> {
        let n = self.varint()?;
        self.take(n).map(drop)
    }

    fn done(&self) -> bool {
        self.at >= self.bytes.len()
    }
}

/// What a CONNECT says about who is connecting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect<'a> {
    /// Its protocol.
    pub version: Version,
    /// The client id.
    pub client_id: &'a str,
    /// The user name, if given.
    pub username: Option<&'a str>,
    /// The password, if given.
    pub password: Option<&'a [u8]>,
    /// The last will's topic, if any (it is published on the client's behalf).
    pub will_topic: Option<&'a str>,
    /// Offset of the connect-flags byte.
    flags_at: usize,
    /// Offset where the user name (or, without one, the end of the packet) starts.
    login_at: usize,
}

/// Reads a CONNECT.
pub fn parse_connect(packet: &[u8]) -> Result<Connect<'_>, PacketError> {
    if kind(packet) != CONNECT {
        return Err(PacketError::NotConnect);
    }
    let mut r = Reader::body(packet)?;
    if r.string()? != "MQTT" {
        return Err(PacketError::NotConnect);
    }
    let version = match r.u8()? {
        4 => Version::V4,
        5 => Version::V5,
        _ => return Err(PacketError::NotConnect),
    };
    let flags_at = r.at;
    let flags = r.u8()?;
    let _keep_alive = r.u16()?;
    if version == Version::V5 {
        r.properties()?;
    }
    let client_id = r.string()?;
    let mut will_topic = None;
    if flags & 0x04 != 0 {
        if version == Version::V5 {
            r.properties()?;
        }
        will_topic = Some(r.string()?);
        r.binary()?;
    }
    let login_at = r.at;
    let username = if flags & 0x80 != 0 {
        Some(r.string()?)
    } else {
        None
    };
    let password = if flags & 0x40 != 0 {
        Some(r.binary()?)
    } else {
        None
    };
    if !r.done() {
        return Err(PacketError::NotConnect);
    }
    Ok(Connect {
        version,
        client_id,
        username,
        password,
        will_topic,
        flags_at,
        login_at,
    })
}

/// The remaining-length encoding of `n`.
fn remaining_length(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let mut byte = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if n == 0 {
            break;
        }
    }
}

/// The same CONNECT with another user name and password.
pub fn with_login(
    packet: &[u8],
    connect: &Connect<'_>,
    username: &str,
    password: &[u8],
) -> Vec<u8> {
    let body_at = Reader::body(packet).map_or(2, |r| r.at);
    let mut body = Vec::with_capacity(packet.len() + username.len() + password.len());
    body.extend_from_slice(&packet[body_at..connect.login_at]);
    let flags = &mut body[connect.flags_at - body_at];
    *flags |= 0xc0;
    for field in [username.as_bytes(), password] {
        body.extend_from_slice(&(field.len() as u16).to_be_bytes());
        body.extend_from_slice(field);
    }
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(packet[0]);
    remaining_length(body.len(), &mut out);
    out.extend_from_slice(&body);
    out
}

/// A PUBLISH's topic.
pub fn publish_topic(packet: &[u8]) -> Result<&str, PacketError> {
    Reader::body(packet)?.string()
}

/// A SUBSCRIBE's topic filters.
pub fn subscribe_filters(packet: &[u8], version: Version) -> Result<Vec<&str>, PacketError> {
    let mut r = Reader::body(packet)?;
    let _packet_id = r.u16()?;
    if version == Version::V5 {
        r.properties()?;
    }
    let mut filters = Vec::new();
    while !r.done() {
        filters.push(r.string()?);
        let _options = r.u8()?;
    }
    Ok(filters)
}

/// A CONNECT for a probe: a clean session, keep-alive 10 s, `client_id`, and `login` if given.
pub fn probe_connect(version: Version, client_id: &str, login: Option<(&str, &str)>) -> Vec<u8> {
    let level = match version {
        Version::V4 => 4,
        Version::V5 => 5,
    };
    // Clean session (clean start in MQTT 5), plus user name and password with a login.
    let flags = if login.is_some() { 0xc2 } else { 0x02 };
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', level, flags, 0, 10];
    if version == Version::V5 {
        // No properties.
        body.push(0);
    }
    let login = login
        .into_iter()
        .flat_map(|(user, password)| [user, password]);
    for field in std::iter::once(client_id).chain(login) {
        let len = u16::try_from(field.len()).unwrap_or(u16::MAX);
        body.extend_from_slice(&len.to_be_bytes());
        body.extend_from_slice(&field.as_bytes()[..usize::from(len)]);
    }
    let mut out = vec![CONNECT << 4];
    remaining_length(body.len(), &mut out);
    out.extend_from_slice(&body);
    out
}

/// The return code (MQTT 5: reason code) of a CONNACK from its first four bytes (type 2, the
/// remaining length, the session-present flag, the code), in either version; `None` if they
/// are not a CONNACK. 0 accepts the connection.
pub fn connack_code(connack: &[u8; 4]) -> Option<u8> {
    (connack[0] == 0x20).then_some(connack[3])
}

/// The CONNACK refusing a client: bad user name or password.
pub fn connack_refused(version: Version) -> &'static [u8] {
    match version {
        // Return code 4: bad user name or password.
        Version::V4 => &[0x20, 0x02, 0x00, 0x04],
        // Reason 0x86: bad user name or password; no properties.
        Version::V5 => &[0x20, 0x03, 0x00, 0x86, 0x00],
    }
}

/// The CONNACK refusing a protocol version the broker does not offer.
pub fn connack_unsupported(version: Version) -> &'static [u8] {
    match version {
        // Return code 1: unacceptable protocol version.
        Version::V4 => &[0x20, 0x02, 0x00, 0x01],
        // Reason 0x84: unsupported protocol version.
        Version::V5 => &[0x20, 0x03, 0x00, 0x84, 0x00],
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use bytes::BytesMut;
    use proptest::prelude::*;
    use rumqttc::mqttbytes::v4;

    fn v4_connect(client: &str, login: Option<(&str, &str)>, will: Option<&str>) -> Vec<u8> {
        let mut connect = v4::Connect::new(client);
        if let Some((u, p)) = login {
            connect.set_login(u, p);
        }
        if let Some(topic) = will {
            connect.last_will = Some(v4::LastWill::new(
                topic,
                "offline",
                rumqttc::QoS::AtLeastOnce,
                true,
            ));
        }
        let mut buf = BytesMut::new();
        connect.write(&mut buf).unwrap();
        buf.to_vec()
    }

    #[test]
    fn a_probes_connect_reads_back_in_both_versions_with_and_without_a_login() {
        for version in [Version::V4, Version::V5] {
            for login in [None, Some(("gate", "s3cret"))] {
                let packet = probe_connect(version, "probe", login);
                assert_eq!(frame(&packet, 1024).unwrap(), Some(packet.len()));
                let c = parse_connect(&packet).unwrap();
                assert_eq!(c.version, version);
                assert_eq!(c.client_id, "probe");
                assert_eq!(c.username, login.map(|l| l.0));
                assert_eq!(c.password, login.map(|l| l.1.as_bytes()));
                assert_eq!(c.will_topic, None);
            }
        }
        // The same bytes as rumqttc's encoder.
        assert_eq!(
            probe_connect(Version::V4, "probe", Some(("gate", "s3cret"))),
            {
                let mut connect = v4::Connect::new("probe");
                connect.keep_alive = 10;
                connect.set_login("gate", "s3cret");
                let mut buf = BytesMut::new();
                connect.write(&mut buf).unwrap();
                buf.to_vec()
            }
        );
        assert_eq!(connack_code(&[0x20, 2, 0, 0]), Some(0));
        assert_eq!(
            connack_code(connack_refused(Version::V4)[..4].try_into().unwrap()),
            Some(4)
        );
        assert_eq!(
            connack_code(connack_refused(Version::V5)[..4].try_into().unwrap()),
            Some(0x86)
        );
        assert_eq!(connack_code(b"HTTP"), None);
    }

    #[test]
    fn a_v4_connect_is_read_and_its_login_replaced() {
        let packet = v4_connect("dev-1", Some(("dev-1", "secret")), Some("r/h/dev-1/status"));
        assert_eq!(frame(&packet, 1024).unwrap(), Some(packet.len()));
        let c = parse_connect(&packet).unwrap();
        assert_eq!(c.version, Version::V4);
        assert_eq!(c.client_id, "dev-1");
        assert_eq!(c.username, Some("dev-1"));
        assert_eq!(c.password, Some(&b"secret"[..]));
        assert_eq!(c.will_topic, Some("r/h/dev-1/status"));

        let rewritten = with_login(&packet, &c, "gate", b"internal-secret");
        let again = parse_connect(&rewritten).unwrap();
        assert_eq!(again.username, Some("gate"));
        assert_eq!(again.password, Some(&b"internal-secret"[..]));
        assert_eq!(again.client_id, "dev-1");
        assert_eq!(again.will_topic, Some("r/h/dev-1/status"));
        // rumqttc reads it back too.
        let mut buf = BytesMut::from(&rewritten[..]);
        match v4::Packet::read(&mut buf, 1 << 16).unwrap() {
            v4::Packet::Connect(read) => {
                let login = read.login.unwrap();
                assert_eq!(
                    (login.username.as_str(), login.password.as_str()),
                    ("gate", "internal-secret")
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_anonymous_connect_gets_a_login() {
        let packet = v4_connect("anon", None, None);
        let c = parse_connect(&packet).unwrap();
        assert_eq!((c.username, c.password), (None, None));
        let rewritten = with_login(&packet, &c, "u", b"p");
        let again = parse_connect(&rewritten).unwrap();
        assert_eq!(
            (again.username, again.password),
            (Some("u"), Some(&b"p"[..]))
        );
    }

    #[test]
    fn a_v5_connect_with_properties_is_read() {
        use rumqttc::v5::mqttbytes::v5;
        let mut connect = v5::Connect {
            keep_alive: 30,
            client_id: "dev-5".into(),
            clean_start: true,
            properties: Some(v5::ConnectProperties {
                session_expiry_interval: Some(60),
                ..v5::ConnectProperties::new()
            }),
        };
        connect.client_id = "dev-5".into();
        let will = v5::LastWill::new(
            "r/h/dev-5/status",
            "offline",
            rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
            true,
            None,
        );
        let login = v5::Login::new("dev-5", "pw");
        let mut buf = BytesMut::new();
        v5::Packet::Connect(connect, Some(will), Some(login))
            .write(&mut buf, Some(1 << 16))
            .unwrap();
        let c = parse_connect(&buf).unwrap();
        assert_eq!(c.version, Version::V5);
        assert_eq!(c.client_id, "dev-5");
        assert_eq!(c.username, Some("dev-5"));
        assert_eq!(c.password, Some(&b"pw"[..]));
        assert_eq!(c.will_topic, Some("r/h/dev-5/status"));
        let rewritten = with_login(&buf, &c, "gate", b"x");
        let mut again = BytesMut::from(&rewritten[..]);
        match v5::Packet::read(&mut again, Some(1 << 16)).unwrap() {
            v5::Packet::Connect(read, will, login) => {
                assert_eq!(read.client_id, "dev-5");
                assert_eq!(will.unwrap().topic, "r/h/dev-5/status");
                assert_eq!(login.unwrap().username, "gate");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn publish_topics_and_subscribe_filters_are_read() {
        let mut buf = BytesMut::new();
        let mut publish = v4::Publish::new("r/h/d/report", rumqttc::QoS::AtLeastOnce, vec![1, 2]);
        publish.pkid = 7;
        publish.write(&mut buf).unwrap();
        assert_eq!(kind(&buf), PUBLISH);
        assert_eq!(publish_topic(&buf).unwrap(), "r/h/d/report");

        let mut buf = BytesMut::new();
        let mut sub = v4::Subscribe::new("r/h/d/command", rumqttc::QoS::AtLeastOnce);
        sub.pkid = 8;
        sub.add("r/h/+/report".into(), rumqttc::QoS::AtMostOnce);
        sub.write(&mut buf).unwrap();
        assert_eq!(kind(&buf), SUBSCRIBE);
        assert_eq!(
            subscribe_filters(&buf, Version::V4).unwrap(),
            vec!["r/h/d/command", "r/h/+/report"]
        );
    }

    #[test]
    fn framing_waits_for_bytes_and_refuses_large_packets() {
        assert_eq!(frame(&[0x30], 100).unwrap(), None);
        assert_eq!(frame(&[0x30, 0x03, 1], 100).unwrap(), None);
        assert_eq!(frame(&[0x30, 0x03, 1, 2, 3], 100).unwrap(), Some(5));
        assert_eq!(
            frame(&[0x30, 0xff, 0x7f], 100),
            Err(PacketError::TooLarge(16_386))
        );
        assert_eq!(
            frame(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x7f], usize::MAX),
            Err(PacketError::Length)
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = frame(&bytes, 1 << 16);
            if let Ok(c) = parse_connect(&bytes) {
                let rewritten = with_login(&bytes, &c, "u", b"p");
                prop_assert_eq!(parse_connect(&rewritten).unwrap().username, Some("u"));
            }
            let _ = publish_topic(&bytes);
            let _ = subscribe_filters(&bytes, Version::V4);
            let _ = subscribe_filters(&bytes, Version::V5);
        }
    }
}
