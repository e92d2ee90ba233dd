//! The gate in front of the embedded broker: every client logs in, and each may publish and
//! subscribe only where the household's rules say (rumqttd checks logins but has no ACL).
//!
//! rumqttd listens on loopback only and accepts one login, the gate's own; the gate reads each
//! client's CONNECT, checks its user name and password, hands the CONNECT on with its own login,
//! and then forwards bytes both ways, reading the client's PUBLISH and SUBSCRIBE packets on the
//! way in. A packet outside the client's rights closes its connection (MQTT 3.1.1 lets a server
//! either acknowledge and drop an unauthorised publish or close; closing makes the fault visible
//! to the device's owner instead of losing its data in silence).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use replenish_protocol::topic::Channel;

use super::packet::{self, PacketError, Version};

/// Device id → SHA-256 of its password (hex), as the engine keeps them.
pub type DeviceLogins = Arc<BTreeMap<String, String>>;
use crate::auth::{hash_token, same_secret};
use crate::internal_events::{BrokerRefused, emit};

/// Who a logged-in client is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The agent itself (or a tool with its account): any topic under the household.
    Agent,
    /// One device: only its own topics.
    Device(String),
}

/// Where each principal may publish and subscribe.
#[derive(Debug, Clone)]
pub struct Acl {
    /// The topic prefix.
    prefix: String,
    /// The household.
    household: String,
}

impl Acl {
    /// The rules for a household's topics.
    pub fn new(prefix: &str, household: &str) -> Self {
        Self {
            prefix: prefix.to_string(),
            household: household.to_string(),
        }
    }

    /// The channel of `topic` if it is one of device `id`'s topics in this household (the
    /// protocol's own parser: a wildcard is no device id, so filters with one never match).
    fn own_channel(&self, id: &str, topic: &str) -> Option<Channel> {
        let parsed = replenish_protocol::topic::parse(&self.prefix, topic).ok()?;
        (parsed.household == self.household && parsed.device == id).then_some(parsed.channel)
    }

    /// Whether `who` may publish to `topic`: a device only to its own status, report and ack.
    pub fn may_publish(&self, who: &Principal, topic: &str) -> bool {
        match who {
            Principal::Agent => true,
            Principal::Device(id) => matches!(
                self.own_channel(id, topic),
                Some(Channel::Status | Channel::Report | Channel::Ack)
            ),
        }
    }

    /// Whether `who` may subscribe to `filter`: a device only to its own command topic.
    pub fn may_subscribe(&self, who: &Principal, filter: &str) -> bool {
        match who {
            Principal::Agent => true,
            Principal::Device(id) => self.own_channel(id, filter) == Some(Channel::Cmd),
        }
    }
}

/// The logins the gate accepts: the agent's and one per device, as SHA-256 hashes of random
/// secrets (high-entropy, so a fast hash is enough; no password a person chose is stored).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Logins {
    /// The agent's user name and password hash.
    pub agent: Option<(String, String)>,
    /// Device id → password hash.
    pub devices: DeviceLogins,
}

impl Logins {
    /// Who this login is, if it is one.
    pub fn check(&self, username: &str, password: &[u8]) -> Option<Principal> {
        let password = std::str::from_utf8(password).ok()?;
        let hash = hash_token(password);
        if let Some((user, agent_hash)) = &self.agent
            && user == username
        {
            return same_secret(agent_hash, &hash).then_some(Principal::Agent);
        }
        let device_hash = self.devices.get(username)?;
        same_secret(device_hash, &hash).then(|| Principal::Device(username.to_string()))
    }
}

/// How the gate runs.
#[derive(Debug, Clone)]
pub struct GateSettings {
    /// The broker behind the gate (loopback), MQTT 3.1.1.
    pub upstream: SocketAddr,
    /// Its MQTT 5 listener, if it has one.
    pub upstream_v5: Option<SocketAddr>,
    /// The agent's user name and password hash.
    pub agent: Option<(String, String)>,
    /// The login the broker accepts, which the gate presents for every client.
    pub upstream_login: (String, String),
    /// Who may do what.
    pub acl: Acl,
    /// Largest packet a client may send.
    pub max_packet_bytes: usize,
    /// A client must send its CONNECT within this.
    pub connect_timeout: Duration,
}

/// Why the gate closed a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Malformed,
    Login,
    Publish,
    Subscribe,
    Timeout,
}

impl Refusal {
    fn label(self) -> &'static str {
        match self {
            Refusal::Malformed => "malformed",
            Refusal::Login => "login",
            Refusal::Publish => "publish_denied",
            Refusal::Subscribe => "subscribe_denied",
            Refusal::Timeout => "connect_timeout",
        }
    }
}

/// Logs a refusal at most once a minute per client and reason; counts every one.
#[derive(Debug, Default)]
struct RefusalLog(Mutex<HashMap<(String, &'static str), Instant>>);

impl RefusalLog {
    fn refuse(&self, peer: SocketAddr, client: &str, reason: Refusal, detail: &str) {
        emit(BrokerRefused {
            peer,
            client,
            reason: reason.label(),
            detail,
            log: self.due(client, reason),
        });
    }

    /// Whether a refusal of `client` for `reason` is due to be logged (and marks it logged).
    fn due(&self, client: &str, reason: Refusal) -> bool {
        let key = (client.to_string(), reason.label());
        let now = Instant::now();
        let Ok(mut logged) = self.0.lock() else {
            return false;
        };
        if logged.len() > 10_000 {
            logged.retain(|_, at| now.duration_since(*at) < Duration::from_secs(60));
        }
        let due = logged
            .get(&key)
            .is_none_or(|at| now.duration_since(*at) >= Duration::from_secs(60));
        if due {
            logged.insert(key, now);
        }
        due
    }
}

/// A gate's shared parts, to start it on several listeners (plain and TLS).
#[derive(Debug, Clone)]
pub struct Gate {
    /// How it runs.
    pub settings: Arc<GateSettings>,
    /// The devices' logins as the engine publishes them.
    pub devices: watch::Receiver<DeviceLogins>,
    /// Turns true (or closes) when its [`super::EmbeddedBroker`] is dropped.
    pub shutdown: watch::Receiver<bool>,
}

impl Gate {
    /// Serves `listener` in a task of its own until `shutdown` turns true; `wrap` as in
    /// [`serve`].
    pub fn spawn<S, W, F>(&self, listener: TcpListener, wrap: W)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        W: Fn(TcpStream) -> F + Send + Sync + 'static,
        F: std::future::Future<Output = std::io::Result<S>> + Send + 'static,
    {
        tokio::spawn(serve(
            listener,
            self.settings.clone(),
            self.devices.clone(),
            wrap,
            self.shutdown.clone(),
        ));
    }
}

/// Accepts clients until `shutdown` turns true. `wrap` turns a TCP stream into the client's
/// stream (TLS, or the stream itself).
pub async fn serve<S, W, F>(
    listener: TcpListener,
    settings: Arc<GateSettings>,
    devices: watch::Receiver<DeviceLogins>,
    wrap: W,
    mut shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    W: Fn(TcpStream) -> F + Send + Sync + 'static,
    F: std::future::Future<Output = std::io::Result<S>> + Send + 'static,
{
    let refusals = Arc::new(RefusalLog::default());
    let wrap = Arc::new(wrap);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = crate::runtime::stopped(&mut shutdown) => return,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                // Out of descriptors and the like: wait a little rather than spin.
                tracing::warn!(%error, "MQTT gate: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let settings = settings.clone();
        let logins = Logins {
            agent: settings.agent.clone(),
            devices: devices.borrow().clone(),
        };
        let refusals = refusals.clone();
        let wrap = wrap.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let client = async {
                let stream = tokio::time::timeout(settings.connect_timeout, wrap(stream)).await;
                match stream {
                    Ok(Ok(stream)) => connection(stream, peer, &settings, &logins, &refusals).await,
                    Ok(Err(error)) => tracing::debug!(%peer, %error, "MQTT gate: handshake failed"),
                    Err(_) => refusals.refuse(peer, "", Refusal::Timeout, "handshake"),
                }
            };
            tokio::select! {
                () = client => {}
                _ = crate::runtime::stopped(&mut shutdown) => {}
            }
        });
    }
}

/// Reads one whole packet into `buf` (which may hold the start of it) and returns its length.
async fn read_packet<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> Result<Option<usize>, PacketError> {
    loop {
        if let Some(len) = packet::frame(buf, max)? {
            return Ok(Some(len));
        }
        let mut chunk = [0u8; 4096];
        match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => return Ok(None),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

async fn connection<S: AsyncRead + AsyncWrite + Unpin + Send>(
    mut client: S,
    peer: SocketAddr,
    settings: &GateSettings,
    logins: &Logins,
    refusals: &RefusalLog,
) {
    let max = settings.max_packet_bytes;
    let mut buf = Vec::new();
    let first = tokio::time::timeout(
        settings.connect_timeout,
        read_packet(&mut client, &mut buf, max),
    )
    .await;
    let len = match first {
        Ok(Ok(Some(len))) => len,
        Ok(Ok(None)) => return,
        Ok(Err(error)) => return refusals.refuse(peer, "", Refusal::Malformed, &error.to_string()),
        Err(_) => return refusals.refuse(peer, "", Refusal::Timeout, "no CONNECT"),
    };
    let connect = match packet::parse_connect(&buf[..len]) {
        Ok(connect) => connect,
        Err(error) => return refusals.refuse(peer, "", Refusal::Malformed, &error.to_string()),
    };
    let version = connect.version;
    let principal = match (connect.username, connect.password) {
        (Some(user), Some(password)) => logins.check(user, password),
        _ => None,
    };
    // A device logs in as itself and under its own client id, so it cannot take over another
    // device's session; its last will goes to a topic it may publish to.
    let principal = principal.filter(|who| match who {
        Principal::Agent => true,
        Principal::Device(id) => {
            id == connect.client_id
                && connect
                    .will_topic
                    .is_none_or(|topic| settings.acl.may_publish(who, topic))
        }
    });
    let Some(principal) = principal else {
        let client_id = connect.client_id.to_string();
        refusals.refuse(
            peer,
            &client_id,
            Refusal::Login,
            connect.username.unwrap_or("(none)"),
        );
        let _ = client.write_all(packet::connack_refused(version)).await;
        let _ = client.shutdown().await;
        return;
    };
    let client_id = connect.client_id.to_string();
    let upstream = match version {
        Version::V4 => Some(settings.upstream),
        Version::V5 => settings.upstream_v5,
    };
    let Some(upstream) = upstream else {
        refusals.refuse(
            peer,
            &client_id,
            Refusal::Malformed,
            "MQTT 5 is not offered",
        );
        let _ = client.write_all(packet::connack_unsupported(version)).await;
        return;
    };
    let (user, password) = &settings.upstream_login;
    let forwarded = packet::with_login(&buf[..len], &connect, user, password.as_bytes());
    buf.drain(..len);
    let mut upstream = match TcpStream::connect(upstream).await {
        Ok(stream) => stream,
        Err(error) => {
            tracing::error!(%error, "MQTT gate: the embedded broker is unreachable");
            return;
        }
    };
    let _ = upstream.set_nodelay(true);
    if upstream.write_all(&forwarded).await.is_err() {
        return;
    }
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (mut upstream_read, mut upstream_write) = upstream.into_split();
    let down = tokio::io::copy(&mut upstream_read, &mut client_write);
    let up = async {
        loop {
            let len = match read_packet(&mut client_read, &mut buf, max).await {
                Ok(Some(len)) => len,
                Ok(None) => return,
                Err(error) => {
                    return refusals.refuse(
                        peer,
                        &client_id,
                        Refusal::Malformed,
                        &error.to_string(),
                    );
                }
            };
            let bytes = &buf[..len];
            let denied = match packet::kind(bytes) {
                packet::PUBLISH => match packet::publish_topic(bytes) {
                    Ok(topic) if settings.acl.may_publish(&principal, topic) => None,
                    Ok(topic) => Some((Refusal::Publish, topic.to_string())),
                    Err(error) => Some((Refusal::Malformed, error.to_string())),
                },
                packet::SUBSCRIBE => match packet::subscribe_filters(bytes, version) {
                    Ok(filters) => filters
                        .into_iter()
                        .find(|f| !settings.acl.may_subscribe(&principal, f))
                        .map(|f| (Refusal::Subscribe, f.to_string())),
                    Err(error) => Some((Refusal::Malformed, error.to_string())),
                },
                packet::CONNECT => Some((Refusal::Malformed, "a second CONNECT".into())),
                _ => None,
            };
            if let Some((reason, detail)) = denied {
                return refusals.refuse(peer, &client_id, reason, &detail);
            }
            if upstream_write.write_all(bytes).await.is_err() {
                return;
            }
            buf.drain(..len);
        }
    };
    tokio::select! {
        _ = down => {}
        () = up => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_publishes_and_subscribes_only_its_own_topics() {
        let acl = Acl::new("replenish", "home");
        let dev = Principal::Device("kettle".into());
        assert!(acl.may_publish(&dev, "replenish/home/kettle/report"));
        assert!(acl.may_publish(&dev, "replenish/home/kettle/status"));
        assert!(acl.may_publish(&dev, "replenish/home/kettle/ack"));
        assert!(!acl.may_publish(&dev, "replenish/home/kettle/cmd"));
        assert!(!acl.may_publish(&dev, "replenish/home/fridge/report"));
        assert!(!acl.may_publish(&dev, "replenish/other/kettle/report"));
        assert!(!acl.may_publish(&dev, "replenish/home/kettle/report/x"));
        assert!(!acl.may_publish(&dev, "homeassistant/button/x/config"));
        assert!(acl.may_subscribe(&dev, "replenish/home/kettle/cmd"));
        assert!(!acl.may_subscribe(&dev, "replenish/home/kettle/command"));
        assert!(!acl.may_subscribe(&dev, "replenish/home/kettle/report"));
        assert!(!acl.may_subscribe(&dev, "replenish/home/+/cmd"));
        assert!(!acl.may_subscribe(&dev, "replenish/home/#"));
        assert!(!acl.may_subscribe(&dev, "replenish/home/fridge/cmd"));
        assert!(!acl.may_subscribe(&dev, "#"));
        assert!(acl.may_publish(&Principal::Agent, "homeassistant/button/x/config"));
        assert!(acl.may_subscribe(&Principal::Agent, "replenish/home/+/report"));
    }

    #[test]
    fn logins_are_checked_against_hashes() {
        let logins = Logins {
            agent: Some(("agent".into(), hash_token("agent-secret"))),
            devices: Arc::new(BTreeMap::from([(
                "kettle".into(),
                hash_token("kettle-secret"),
            )])),
        };
        assert_eq!(
            logins.check("agent", b"agent-secret"),
            Some(Principal::Agent)
        );
        assert_eq!(logins.check("agent", b"kettle-secret"), None);
        assert_eq!(
            logins.check("kettle", b"kettle-secret"),
            Some(Principal::Device("kettle".into()))
        );
        assert_eq!(logins.check("kettle", b"wrong"), None);
        assert_eq!(logins.check("fridge", b"kettle-secret"), None);
        assert_eq!(logins.check("kettle", &[0xff, 0xfe]), None);
    }
}
