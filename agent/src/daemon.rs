//! Wiring: the embedded broker, storage, the engine task, MQTT, HTTP and the clock tick, all
//! stopped by one shutdown signal.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::broker::{BrokerError, EmbeddedBroker};
use crate::clock::Clock;
use crate::config::ShopPlatform;
use crate::config::{AgentConfig, ConfigError};
use crate::engine::{Engine, ShopId};
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
    /// An embedded broker started earlier in this process, used instead of starting one (the
    /// simulator restarts its agent while appliances stay connected); `None` starts one when
    /// `mqtt.embedded` is on.
    pub broker: Option<Arc<EmbeddedBroker>>,
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
    /// Notifications or Home Assistant could not start.
    #[error(transparent)]
    Integrations(#[from] crate::integrations::IntegrationError),
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
    /// Held for as long as the agent runs: the gate stops when its last holder drops it.
    broker: Option<Arc<EmbeddedBroker>>,
}

impl Agent {
    /// Starts every part of the agent.
    pub async fn start(config: &AgentConfig, options: AgentOptions) -> Result<Agent, StartError> {
        config.validate()?;
        let broker = match options.broker {
            Some(broker) => Some(broker),
            None if config.mqtt.embedded => Some(Arc::new(EmbeddedBroker::start(config).await?)),
            None => None,
        };
        // The agent's clients connect where the embedded broker listens (a port 0 in the
        // config is the port the system gave) and, behind the gate, present its login for
        // the agent.
        let with_broker;
        let config = match broker.as_deref() {
            Some(broker) => {
                let mut edited = config.clone();
                let listening = broker.listening();
                edited.mqtt.embedded_listen = listening.v4;
                if let Some(v5) = listening.v5 {
                    edited.mqtt.embedded_listen_v5 = v5;
                }
                if let Some((user, password)) = broker.agent_login() {
                    edited.mqtt.username = Some(user.clone());
                    edited.mqtt.password = Some(password.clone());
                }
                with_broker = edited;
                &with_broker
            }
            None => config,
        };
        let metrics = crate::telemetry::prometheus();
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
        let mut shops: Vec<(ShopId, Arc<dyn Shop>)> = Vec::new();
        // The engine's shops are the configured ones, in order, their ids checked.
        let ids: Vec<ShopId> = engine.config().shops.iter().map(|s| s.id.clone()).collect();
        for (shop, id) in config.shop_list().into_iter().zip(ids) {
            let timeout = Duration::from_secs(shop.timeout_secs);
            let adapter: Arc<dyn Shop> = match (shop.platform, &shop.vendure) {
                (ShopPlatform::Vendure, Some(account)) => {
                    Arc::new(VendureShop::new(&shop.url, account.clone(), timeout)?)
                }
                // Validation refuses vendure without an account.
                _ => Arc::new(SandboxShop::new(&shop.url, timeout)?),
            };
            shops.push((id, adapter));
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
            device_logins: broker.as_deref().map(EmbeddedBroker::device_logins),
        };
        let (handle, engine_task) = runtime::spawn(parts, shutdown_rx.clone());

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

        let address = config.broker_address()?;
        let settings = MqttSettings {
            host: address.host,
            port: address.port,
            client_id: config.client_id(),
            prefix: config.mqtt.prefix.clone(),
            household: config.household_id()?,
            keep_alive: Duration::from_secs(config.mqtt.keep_alive_secs),
            max_packet_bytes: config.mqtt.max_packet_bytes,
            stall_after: Duration::from_secs(config.ingest.stall_secs),
            login: address.login,
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
            broker,
        })
    }

    /// Where the embedded broker listens, if the agent runs one (with a port 0 configured,
    /// the port the system gave).
    pub fn broker_listening(&self) -> Option<crate::broker::Listening> {
        self.broker.as_deref().map(EmbeddedBroker::listening)
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
