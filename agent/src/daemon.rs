//! Wiring: the embedded broker, storage, the engine task, MQTT, HTTP and the clock tick, all
//! stopped by one shutdown signal.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::broker::{self, BrokerError, gate};
use crate::clock::Clock;
use crate::config::ShopPlatform;
use crate::config::{AgentConfig, ConfigError};
use crate::engine::Engine;
use crate::mqtt::{self, MqttSettings};
use crate::runtime::{self, AgentHandle, RuntimeParts};
use crate::store::{self, SledStore, Store, StoreError};
use replenish_commerce::sandbox::SandboxShop;
use replenish_commerce::vendure::VendureShop;
use replenish_commerce::{CommerceError, Shop};

/// What to plug in instead of the configured adapters.
pub struct AgentOptions {
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// The store; `None` opens sled at `storage.path`.
    pub store: Option<Arc<dyn Store>>,
    /// The first shop's adapter; `None` uses the configured ones.
    pub commerce: Option<Arc<dyn Shop>>,
    /// Tick the engine this often; `None` leaves ticking to the caller (the simulator).
    pub tick_every: Option<Duration>,
}

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Storage could not be opened.
    #[error("storage at {path}: {source}")]
    Store {
        /// Where.
        path: String,
        /// Why.
        source: StoreError,
    },
    /// The store's format cannot be used by this version.
    #[error("storage at {path}: {source}")]
    Format {
        /// Where.
        path: String,
        /// Why.
        source: crate::store::backup::FormatError,
    },
    /// The embedded broker could not start.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// The HTTP port is taken.
    #[error("cannot listen on {addr} for HTTP: {source}")]
    Http {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// The shop client could not be built.
    #[error(transparent)]
    Commerce(#[from] CommerceError),
    /// The system gave no randomness for a secret.
    #[error(transparent)]
    Randomness(#[from] crate::auth::NoRandomness),
    /// The MQTT TLS certificate or key is unusable.
    #[error(transparent)]
    Tls(#[from] broker::tls::TlsError),
    /// Notifications or Home Assistant could not start.
    #[error(transparent)]
    Integrations(#[from] crate::integrations::IntegrationError),
}

/// Starts the gate in front of the embedded broker (`behind`, which accepts only `login`) on
/// the public MQTT addresses, and on `mqtt.tls_listen` with TLS.
async fn start_gate(
    config: &AgentConfig,
    login: (String, String),
    behind: broker::Listening,
    handle: &AgentHandle,
    shutdown: &watch::Receiver<bool>,
) -> Result<Vec<JoinHandle<()>>, StartError> {
    let gate = gate::Gate {
        settings: Arc::new(gate::GateSettings {
            upstream: behind.v4,
            upstream_v5: behind.v5,
            upstream_login: login,
            agent: config
                .mqtt_login()
                .map(|(user, password)| (user, crate::auth::hash_token(&password))),
            acl: gate::Acl::new(&config.mqtt.prefix, &config.household.id),
            max_packet_bytes: config.mqtt.max_packet_bytes,
            connect_timeout: Duration::from_secs(10),
        }),
        devices: handle.device_logins(),
        shutdown: shutdown.clone(),
    };
    let bind = |addr: SocketAddr| async move {
        tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| BrokerError::Bind { addr, source })
    };
    let public_v5 = config
        .mqtt
        .embedded_v5
        .then_some(config.mqtt.embedded_listen_v5);
    let mut tasks = Vec::new();
    for addr in std::iter::once(config.mqtt.embedded_listen).chain(public_v5) {
        tasks.push(gate.spawn(bind(addr).await?, |stream| std::future::ready(Ok(stream))));
    }
    if let (Some(addr), Some(cert), Some(key)) = (
        config.mqtt.tls_listen,
        &config.mqtt.tls_cert,
        &config.mqtt.tls_key,
    ) {
        let acceptor = tokio_rustls::TlsAcceptor::from(broker::tls::server_config(cert, key)?);
        tasks.push(gate.spawn(bind(addr).await?, move |stream| acceptor.accept(stream)));
        tracing::info!(%addr, "MQTT over TLS listening");
    }
    tracing::info!(listen = %config.mqtt.embedded_listen, v5 = ?public_v5, "MQTT gate: logins and topic rights enforced");
    Ok(tasks)
}

/// A running agent.
pub struct Agent {
    handle: AgentHandle,
    http_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    mqtt_ready: watch::Receiver<bool>,
    ingest: Arc<mqtt::IngestHealth>,
    engine_task: Option<JoinHandle<()>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Agent {
    /// Starts every part of the agent.
    pub async fn start(config: &AgentConfig, options: AgentOptions) -> Result<Agent, StartError> {
        config.validate()?;
        let own_login;
        let config =
            if config.mqtt.embedded && config.mqtt.embedded_auth && config.mqtt_login().is_none() {
                // Nobody else needs the agent's login: one for this run, known to this process only.
                let mut with_login = config.clone();
                with_login.mqtt.username = Some("replenish-agent".into());
                with_login.mqtt.password = Some(crate::auth::random_secret()?);
                own_login = with_login;
                &own_login
            } else {
                config
            };
        let metrics = crate::telemetry::prometheus();
        let public_v5 = config
            .mqtt
            .embedded_v5
            .then_some(config.mqtt.embedded_listen_v5);
        // With logins on, the broker sits behind the gate and accepts only the gate's own
        // login, a secret of this process.
        let gate_login = if config.mqtt.embedded && config.mqtt.embedded_auth {
            let secret = crate::auth::random_secret()?;
            Some(("replenish-gate".to_string(), secret))
        } else {
            None
        };
        let embedded = if config.mqtt.embedded {
            Some(broker::start(
                config.mqtt.embedded_listen,
                public_v5,
                config.mqtt.max_packet_bytes,
                gate_login.clone(),
            )?)
        } else {
            None
        };
        let store: Arc<dyn Store> = match options.store {
            Some(store) => store,
            None => {
                let path = &config.storage.path;
                let sled =
                    SledStore::open(path, config.storage.cache_mb << 20).map_err(|source| {
                        StartError::Store {
                            path: path.display().to_string(),
                            source,
                        }
                    })?;
                Arc::new(sled)
            }
        };
        let store_error = |source| StartError::Store {
            path: config.storage.path.display().to_string(),
            source,
        };
        store::backup::open(&*store).map_err(|source| StartError::Format {
            path: config.storage.path.display().to_string(),
            source,
        })?;
        let installation = store::installation_id(&*store).map_err(store_error)?;
        let snapshot = store::load_snapshot(&*store).map_err(store_error)?;
        tracing::info!(
            devices = snapshot.devices.len(),
            slots = snapshot.slots.len(),
            orders = snapshot.orders.len(),
            "state loaded"
        );
        let engine = Engine::new(config.engine_config(installation)?, snapshot);
        let mut shops: Vec<(String, Arc<dyn Shop>)> = Vec::new();
        for shop in config.shop_list() {
            let timeout = Duration::from_secs(shop.timeout_secs);
            let adapter: Arc<dyn Shop> = match (shop.platform, &shop.vendure) {
                (ShopPlatform::Vendure, Some(account)) => {
                    Arc::new(VendureShop::new(&shop.url, account.clone(), timeout)?)
                }
                // Validation refuses vendure without an account.
                _ => Arc::new(SandboxShop::new(&shop.url, timeout)?),
            };
            shops.push((shop.id, adapter));
        }
        // A shop given by the caller (tests, the simulator) stands in for the first one.
        if let (Some(commerce), Some(first)) = (options.commerce, shops.first_mut()) {
            first.1 = commerce;
        }
        let (shutdown, shutdown_rx) = watch::channel(false);
        let ingest = Arc::new(mqtt::IngestHealth::default());
        let (outbox, outbox_rx) = mqtt::outbox(ingest.clone());
        let parts = RuntimeParts {
            engine,
            store,
            shops,
            clock: options.clock,
            outbox: Some(outbox.clone()),
            prefix: config.mqtt.prefix.clone(),
        };
        let (handle, engine_task) = runtime::spawn(parts, shutdown_rx.clone());
        let gate_tasks = match (gate_login, embedded) {
            (Some(login), Some(behind)) => {
                start_gate(config, login, behind, &handle, &shutdown_rx).await?
            }
            _ => Vec::new(),
        };

        let listener = tokio::net::TcpListener::bind(config.http.listen)
            .await
            .map_err(|source| StartError::Http {
                addr: config.http.listen,
                source,
            })?;
        let http_addr = listener.local_addr().map_err(|source| StartError::Http {
            addr: config.http.listen,
            source,
        })?;
        let public_url = config
            .http
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{http_addr}"));
        let upkeep = metrics.clone();
        let client_timeout = Duration::from_secs(config.http.client_timeout_secs);
        let app = crate::http::router(
            crate::http::AppState::new(handle.clone(), metrics, &public_url, ingest.clone())
                .with_request_timeout(client_timeout)
                .with_failed_login_limit(config.http.max_failed_logins),
        );
        let limits = crate::http::ServeLimits {
            client_timeout,
            max_connections: config.http.max_connections,
        };
        let mut http_shutdown = shutdown_rx.clone();
        let http_task = tokio::spawn(crate::http::serve(listener, app, limits, async move {
            runtime::stopped(&mut http_shutdown).await;
        }));
        tracing::info!(%http_addr, "HTTP API listening");

        let broker = config.broker_address()?;
        let settings = MqttSettings {
            host: broker.host,
            port: broker.port,
            client_id: config.client_id(),
            prefix: config.mqtt.prefix.clone(),
            household: config.household_id()?,
            keep_alive: Duration::from_secs(config.mqtt.keep_alive_secs),
            max_packet_bytes: config.mqtt.max_packet_bytes,
            stall_after: Duration::from_secs(config.ingest.stall_secs),
            login: broker.login,
        };
        let (subscribed, mqtt_ready) = watch::channel(false);
        let mqtt_task = tokio::spawn(mqtt::run(
            settings,
            handle.clone(),
            (outbox, outbox_rx),
            subscribed,
            shutdown_rx.clone(),
        ));
        // Histograms keep every sample until the exporter's upkeep folds them in: without it
        // they grow for as long as nobody scrapes /metrics.
        let mut upkeep_stop = shutdown_rx.clone();
        let upkeep_task = tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(5));
            loop {
                tokio::select! {
                    _ = every.tick() => upkeep.run_upkeep(),
                    _ = runtime::stopped(&mut upkeep_stop) => break,
                }
            }
        });
        let mut tasks = vec![http_task, mqtt_task, upkeep_task];
        tasks.extend(gate_tasks);
        // Notifications and Home Assistant (their own MQTT connection; stopped by the same signal).
        tasks.extend(crate::integrations::start(
            config,
            &handle,
            http_addr,
            &ingest,
            &shutdown_rx,
        )?);
        if let Some(every) = options.tick_every {
            let ticker = handle.clone();
            let mut stop = shutdown_rx;
            tasks.push(tokio::spawn(async move {
                let mut interval = tokio::time::interval(every);
                interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = interval.tick() => if ticker.tick().await.is_err() { break },
                        _ = runtime::stopped(&mut stop) => break,
                    }
                }
            }));
        }
        Ok(Agent {
            handle,
            http_addr,
            shutdown,
            mqtt_ready,
            ingest,
            engine_task: Some(engine_task),
            tasks,
        })
    }

    /// A handle to the engine.
    pub fn handle(&self) -> &AgentHandle {
        &self.handle
    }

    /// Waits until the agent is subscribed to its topics (messages published before that,
    /// other than retained ones, never reach it). False if `timeout` passes first.
    pub async fn wait_subscribed(&self, timeout: Duration) -> bool {
        let mut ready = self.mqtt_ready.clone();
        matches!(
            tokio::time::timeout(timeout, ready.wait_for(|r| *r)).await,
            Ok(Ok(_))
        )
    }

    /// Counters of the MQTT ingest: received, acknowledged (hence stored), pending, stalled.
    pub fn ingest(&self) -> Arc<mqtt::IngestHealth> {
        self.ingest.clone()
    }

    /// Where the HTTP API listens.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Stops every task, lets in-flight work finish and flushes storage.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        if let Some(engine) = self.engine_task.take() {
            let _ = engine.await;
        }
    }

    /// Stops everything at once, flushing nothing: what a power cut does. For crash tests.
    pub async fn crash(mut self) {
        for task in self.tasks.drain(..).chain(self.engine_task.take()) {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        for task in self.tasks.iter().chain(self.engine_task.iter()) {
            task.abort();
        }
    }
}
