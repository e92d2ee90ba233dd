//! The embedded MQTT broker (rumqttd), so a household needs nothing else installed, and with
//! `mqtt.embedded_auth` the gate in front of it ([`EmbeddedBroker`]).
//!
//! rumqttd's `start` blocks and has no shutdown, so it gets its own thread for the life of the
//! process; it keeps sessions and retained messages in memory only.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::AgentConfig;
use gate::DeviceLogins;

pub mod gate;
pub mod packet;
pub mod tls;

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The port is taken.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// The broker thread could not start.
    #[error("cannot start the broker thread: {0}")]
    Thread(std::io::Error),
    /// The system gave no randomness for the gate's or the agent's secret.
    #[error(transparent)]
    Randomness(#[from] crate::auth::NoRandomness),
    /// The MQTT TLS certificate or key is unusable.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

/// The embedded broker as clients see it: rumqttd and, with `mqtt.embedded_auth`, the gate in
/// front of it. The agent starts one, or is handed one (`AgentOptions::broker`) by a process
/// that restarts agents while the broker lives on, as the simulator does: rumqttd cannot be
/// stopped, so it cannot be started twice on one port.
pub struct EmbeddedBroker {
    /// The login the agent's own clients use; `None` without `embedded_auth`.
    agent_login: Option<(String, String)>,
    /// The devices' logins the gate accepts; the running agent's engine sends them.
    device_logins: Arc<watch::Sender<DeviceLogins>>,
    /// Stops the gate (its listeners and connections watch it) when the broker is dropped.
    stop: watch::Sender<bool>,
    /// Where clients connect: the gate's listeners, or rumqttd's without the gate (a port 0
    /// in the config is the port the system gave).
    listening: Listening,
}

impl EmbeddedBroker {
    /// Starts rumqttd on `mqtt.embedded_listen` (and `embedded_listen_v5`) or, with
    /// `mqtt.embedded_auth`, behind the gate on those addresses (and on `mqtt.tls_listen`).
    /// The agent's login is `mqtt.username`/`password`, or one made for this process.
    pub async fn start(config: &AgentConfig) -> Result<Self, BrokerError> {
        let mqtt = &config.mqtt;
        let public_v5 = mqtt.embedded_v5.then_some(mqtt.embedded_listen_v5);
        let (stop, stopped) = watch::channel(false);
        let device_logins = Arc::new(watch::Sender::new(DeviceLogins::default()));
        if !mqtt.embedded_auth {
            let listening = start(mqtt.embedded_listen, public_v5, mqtt.max_packet_bytes, None)?;
            return Ok(Self {
                agent_login: None,
                device_logins,
                stop,
                listening,
            });
        }
        let agent_login = match config.mqtt_login() {
            Some(login) => login,
            // Nobody else needs the agent's login: one for this process, known to it only.
            None => ("replenish-agent".to_string(), crate::auth::random_secret()?),
        };
        // rumqttd accepts only the gate's own login, a secret of this process.
        let gate_login = ("replenish-gate".to_string(), crate::auth::random_secret()?);
        let behind = start(
            mqtt.embedded_listen,
            public_v5,
            mqtt.max_packet_bytes,
            Some(gate_login.clone()),
        )?;
        let gate = gate::Gate {
            settings: Arc::new(gate::GateSettings {
                upstream: behind.v4,
                upstream_v5: behind.v5,
                upstream_login: gate_login,
                agent: Some((
                    agent_login.0.clone(),
                    crate::auth::hash_token(&agent_login.1),
                )),
                acl: gate::Acl::new(&mqtt.prefix, &config.household.id),
                max_packet_bytes: mqtt.max_packet_bytes,
                connect_timeout: Duration::from_secs(10),
            }),
            devices: device_logins.subscribe(),
            shutdown: stopped,
        };
        let bind = |addr: SocketAddr| async move {
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| BrokerError::Bind { addr, source })
        };
        let mut bound = Vec::new();
        for addr in std::iter::once(mqtt.embedded_listen).chain(public_v5) {
            let listener = bind(addr).await?;
            bound.push(
                listener
                    .local_addr()
                    .map_err(|source| BrokerError::Bind { addr, source })?,
            );
            gate.spawn(listener, |stream| std::future::ready(Ok(stream)));
        }
        let listening = Listening {
            v4: bound[0],
            v5: bound.get(1).copied(),
        };
        if let (Some(addr), Some(cert), Some(key)) =
            (mqtt.tls_listen, &mqtt.tls_cert, &mqtt.tls_key)
        {
            let acceptor = tokio_rustls::TlsAcceptor::from(tls::server_config(cert, key)?);
            gate.spawn(bind(addr).await?, move |stream| acceptor.accept(stream));
            tracing::info!(%addr, "MQTT over TLS listening");
        }
        tracing::info!(listen = %listening.v4, v5 = ?listening.v5, "MQTT gate: logins and topic rights enforced");
        Ok(Self {
            agent_login: Some(agent_login),
            device_logins,
            stop,
            listening,
        })
    }

    /// Where clients connect (with a port 0 configured, the port the system gave).
    pub fn listening(&self) -> Listening {
        self.listening
    }

    /// The login the agent's own clients present; `None` when the broker takes anyone.
    pub fn agent_login(&self) -> Option<&(String, String)> {
        self.agent_login.as_ref()
    }

    /// Where the engine sends the devices' logins for the gate.
    pub fn device_logins(&self) -> Arc<watch::Sender<DeviceLogins>> {
        self.device_logins.clone()
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Where a started broker listens.
#[derive(Debug, Clone, Copy)]
pub struct Listening {
    /// MQTT 3.1.1.
    pub v4: SocketAddr,
    /// MQTT 5, if offered.
    pub v5: Option<SocketAddr>,
}

/// What an MQTT broker on `addr` answers a CONNECT of `version` (with `login`, if given):
/// `Some(true)` if it accepts it, `Some(false)` if it refuses it, `None` if no CONNACK comes
/// within a quarter of a second. A bare TCP connect would take whatever listens there for the
/// broker.
pub fn probe_mqtt(
    addr: SocketAddr,
    version: packet::Version,
    login: Option<(&str, &str)>,
) -> Option<bool> {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicU64, Ordering};
    // A client id of its own each time, so a probe never takes over another client's session.
    // (The first version reused one and, in CI, met rumqtt issue 1062: see vendor/README.md.)
    static PROBES: AtomicU64 = AtomicU64::new(0);
    let client_id = format!(
        "replenish-probe-{}-{}",
        std::process::id(),
        PROBES.fetch_add(1, Ordering::Relaxed)
    );
    let patience = Duration::from_millis(250);
    let mut stream = std::net::TcpStream::connect_timeout(&addr, patience).ok()?;
    stream.set_read_timeout(Some(patience)).ok()?;
    stream
        .write_all(&packet::probe_connect(version, &client_id, login))
        .ok()?;
    let mut connack = [0u8; 4];
    stream.read_exact(&mut connack).ok()?;
    packet::connack_code(&connack).map(|code| code == 0)
}

/// A free port on `ip` (rumqttd takes an address, not a listener, so the port is found first
/// and bound again by rumqttd a moment later: [`start`] tries again if another program took
/// it in between).
fn free_port_on(ip: std::net::IpAddr) -> Result<SocketAddr, BrokerError> {
    let any = SocketAddr::new(ip, 0);
    let listener = std::net::TcpListener::bind(any)
        .map_err(|source| BrokerError::Bind { addr: any, source })?;
    listener
        .local_addr()
        .map_err(|source| BrokerError::Bind { addr: any, source })
}

/// Starts a broker listening on `addr` (MQTT 3.1.1) and, if given, on `v5` (MQTT 5, for
/// devices whose client speaks only v5) in a background thread. A client that sends a packet
/// larger than `max_packet_bytes` is disconnected. With `gate_login`, the broker listens on
/// loopback ports of its own instead and accepts only that login: the gate
/// ([`gate::serve`]) then listens on `addr` and `v5`.
#[cfg(feature = "embedded-broker")]
pub fn start(
    addr: SocketAddr,
    v5: Option<SocketAddr>,
    max_packet_bytes: usize,
    gate_login: Option<(String, String)>,
) -> Result<Listening, BrokerError> {
    use std::collections::HashMap;

    use rumqttd::{Config, ConnectionSettings, RouterConfig, ServerSettings};

    // Behind the gate rumqttd gets loopback ports of its own; a port 0 asks for any port.
    // Ports this function picks may be taken by another program before rumqttd binds them,
    // which the MQTT probe below notices: then it tries again with others.
    let loopback = std::net::IpAddr::from([127, 0, 0, 1]);
    let choose = |wanted: SocketAddr| -> Result<(SocketAddr, bool), BrokerError> {
        if gate_login.is_some() {
            Ok((free_port_on(loopback)?, true))
        } else if wanted.port() == 0 {
            Ok((free_port_on(wanted.ip())?, true))
        } else {
            Ok((wanted, false))
        }
    };
    let probe_login = gate_login.clone();
    let auth = gate_login
        .clone()
        .map(|(user, password)| HashMap::from([(user, password)]));
    let connections = || ConnectionSettings {
        connection_timeout_ms: 60_000,
        // A larger packet closes the sender's connection (rumqttd's rule), never another's.
        max_payload_size: max_packet_bytes,
        max_inflight_count: 500,
        auth: auth.clone(),
        external_auth: None,
        dynamic_filters: true,
    };
    let server = |name: &str, listen: SocketAddr| ServerSettings {
        name: name.into(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections: connections(),
    };
    let probe_login = probe_login
        .as_ref()
        .map(|(user, password)| (user.as_str(), password.as_str()));
    const ATTEMPTS: usize = 3;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (v4_listen, v4_picked) = choose(addr)?;
        let (v5_listen, v5_picked) = match v5 {
            Some(wanted) => {
                let (listen, picked) = choose(wanted)?;
                (Some(listen), picked)
            }
            None => (None, false),
        };
        let picked = v4_picked || v5_picked;
        // rumqttd reports a taken port only in its own thread's log: check it here first (a
        // port picked here and taken since is another try).
        let taken = std::iter::once(v4_listen)
            .chain(v5_listen)
            .find_map(|listen| match std::net::TcpListener::bind(listen) {
                Ok(_) => None,
                Err(source) => Some(BrokerError::Bind {
                    addr: listen,
                    source,
                }),
            });
        match taken {
            Some(_) if picked && attempt < ATTEMPTS => continue,
            Some(error) => return Err(error),
            None => {}
        }
        let config = Config {
            id: 0,
            router: RouterConfig {
                max_connections: 1_000,
                max_outgoing_packet_count: 200,
                max_segment_size: 10 * 1024 * 1024,
                max_segment_count: 10,
                custom_segment: None,
                initialized_filters: None,
                shared_subscriptions_strategy: Default::default(),
            },
            v4: Some(HashMap::from([("1".to_string(), server("v4", v4_listen))])),
            v5: v5_listen.map(|listen| HashMap::from([("1".to_string(), server("v5", listen))])),
            ..Default::default()
        };
        let mut broker = rumqttd::Broker::new(config);
        std::thread::Builder::new()
            .name("mqtt-broker".into())
            .spawn(move || {
                if let Err(error) = broker.start() {
                    tracing::error!(%error, "embedded MQTT broker stopped");
                }
            })
            .map_err(BrokerError::Thread)?;
        // Return once it answers MQTT, so clients do not start with a refusal, and so a
        // program that took the port between the check above and rumqttd's bind is an error
        // (or, on a port picked here, another try), not a broker.
        let listeners = std::iter::once((v4_listen, packet::Version::V4))
            .chain(v5_listen.map(|listen| (listen, packet::Version::V5)));
        let mut silent = None;
        for (listen, version) in listeners {
            let started = std::time::Instant::now();
            while probe_mqtt(listen, version, probe_login) != Some(true) {
                if started.elapsed() > std::time::Duration::from_secs(5) {
                    silent = Some(listen);
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            if silent.is_some() {
                break;
            }
        }
        match silent {
            None => {
                tracing::info!(v4 = %v4_listen, v5 = ?v5_listen, "embedded MQTT broker started");
                return Ok(Listening {
                    v4: v4_listen,
                    v5: v5_listen,
                });
            }
            Some(listen) if picked && attempt < ATTEMPTS => {
                // The rumqttd that lost its port keeps its thread (it cannot be stopped).
                tracing::warn!(%listen, attempt, "embedded MQTT broker: a port it picked was taken before it bound it; trying others");
            }
            Some(listen) => {
                return Err(BrokerError::Bind {
                    addr: listen,
                    source: std::io::Error::other(
                        "no MQTT broker answered there within 5 s: is another program listening on it?",
                    ),
                });
            }
        }
    }
}

/// Without the `embedded-broker` feature, asking for the broker is a configuration error.
#[cfg(not(feature = "embedded-broker"))]
pub fn start(
    addr: SocketAddr,
    _v5: Option<SocketAddr>,
    _max_packet_bytes: usize,
    _gate_login: Option<(String, String)>,
) -> Result<Listening, BrokerError> {
    Err(BrokerError::Bind {
        addr,
        source: std::io::Error::other(
            "built without the embedded-broker feature; set mqtt.embedded = false",
        ),
    })
}
