//! The engine's owner: one task holds the [`Engine`] and the store, reached through a cheap
//! [`AgentHandle`] over a bounded channel. It runs effects: saves (flushed before an order
//! leaves and before MQTT messages are acknowledged), shop calls in their own tasks whose
//! results come back as events, and notices.

use crate::broker::gate::DeviceLogins;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use std::collections::HashMap;

use replenish_protocol::{Channel, DecodeError, DeviceId, Encoding, codec, topic};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::clock::{Clock, HOUR_MS, MINUTE_MS, UnixMs};
use crate::engine::order::{Order, OrderId};
use crate::engine::{Effect, Engine, EngineError, Event, Notice, ShopId, Telemetry};
use crate::internal_events::{
    CommandSent, CommandUnsent, EventRefused, NoticeRaised, OrderPlacementFailed, OrderPlacing,
    PairingDropped, StoreFailed, StoreFlushed, StoreStep, TelemetryReceived, TelemetryRefused,
    emit,
};
use crate::mqtt::Outbox;
use crate::store::journal::Journal;
use crate::store::{self, Store, StoreError};
use crate::wire::{StatusView, status_view};
use replenish_commerce::{CommerceError, Shop};

/// Acknowledges an MQTT message once what it caused is durable.
pub type Acker = Box<dyn FnOnce() + Send>;

/// What arrived on an MQTT topic, decoded or not.
pub enum Incoming {
    /// A valid message from a device.
    Telemetry {
        /// The device.
        device: DeviceId,
        /// The message.
        message: Telemetry,
    },
    /// The agent's own message come back on the household's subscription (a command it sent,
    /// its availability): acknowledged in turn, nothing else.
    Own,
    /// A payload or topic that was refused, with why.
    Refused {
        /// The topic it came on.
        topic: String,
        /// Why.
        reason: RefusedReason,
    },
}

/// Why an incoming message was refused before reaching the engine.
#[derive(Debug, thiserror::Error)]
pub enum RefusedReason {
    /// The topic is malformed or of another household.
    #[error("topic: {0}")]
    Topic(String),
    /// The payload did not decode.
    #[error("payload: {0}")]
    Payload(#[from] DecodeError),
}

impl RefusedReason {
    fn label(&self) -> &'static str {
        match self {
            Self::Topic(_) => "bad_topic",
            Self::Payload(DecodeError::TooLarge { .. }) => "oversized",
            Self::Payload(DecodeError::Invalid(_)) => "invalid",
            Self::Payload(_) => "malformed",
        }
    }
}

/// What a call to the shop came back with.
enum ShopOutcome {
    /// An event for the engine (boxed: it is large, the other outcomes are empty).
    Event(Box<Event>),
    /// A shop's catalog could not be fetched: try again at the next tick.
    CatalogFailed(ShopId),
    /// Nothing to do (a status poll failed; the next poll will ask again).
    Nothing,
}

enum Request {
    Incoming(Incoming, Option<Acker>),
    Event(Event),
    Ask(Event, oneshot::Sender<Result<(), EngineError>>),
    ShopDone(ShopOutcome),
    Status(oneshot::Sender<StatusView>),
    Order(String, oneshot::Sender<Option<Order>>),
    Settle(u64, oneshot::Sender<()>),
    Read(EngineRead),
    Backup(oneshot::Sender<Result<crate::store::backup::Backup, String>>),
}

/// A read of the engine's state, run inside its task.
type EngineRead = Box<dyn FnOnce(&Engine, UnixMs) + Send>;

/// A cheap, cloneable way to talk to the running engine.
#[derive(Clone)]
pub struct AgentHandle {
    tx: mpsc::Sender<Request>,
    notices: broadcast::Sender<Notice>,
    changes: Arc<watch::Sender<u64>>,
    ready: Arc<AtomicBool>,
    device_logins: Arc<watch::Sender<DeviceLogins>>,
}

/// Room for one MQTT message in the engine's queue, from [`AgentHandle::room`].
#[derive(Debug)]
pub struct IncomingRoom<'a>(mpsc::Permit<'a, Request>);

impl IncomingRoom<'_> {
    /// Hands the message to the engine; `ack` runs once it is durable.
    pub fn incoming(self, incoming: Incoming, ack: Option<Acker>) {
        self.0.send(Request::Incoming(incoming, ack));
    }
}

/// The engine task stopped; the agent is shutting down.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the agent is shutting down")]
pub struct Stopped;

/// Why an approval or rejection through the API failed.
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    /// The engine refused it.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The agent is stopping.
    #[error(transparent)]
    Stopped(#[from] Stopped),
}

/// Why a device login could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum DeviceLoginError {
    /// The system gave no randomness for the password.
    #[error(transparent)]
    Randomness(#[from] crate::auth::NoRandomness),
    /// The engine refused it (not an owner) or is stopping.
    #[error(transparent)]
    Ask(#[from] AskError),
}

impl AgentHandle {
    async fn request<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Request,
    ) -> Result<T, Stopped> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(make(reply)).await.map_err(|_| Stopped)?;
        rx.await.map_err(|_| Stopped)
    }

    /// Hands a decoded (or refused) MQTT message to the engine; `ack` runs once it is durable.
    pub async fn incoming(&self, incoming: Incoming, ack: Option<Acker>) -> Result<(), Stopped> {
        self.tx
            .send(Request::Incoming(incoming, ack))
            .await
            .map_err(|_| Stopped)
    }

    /// Waits for room in the engine's queue for one MQTT message. Unlike
    /// [`incoming`](Self::incoming) this can be given up (in a `select!`) without losing the
    /// message, which the caller still holds.
    pub async fn room(&self) -> Result<IncomingRoom<'_>, Stopped> {
        self.tx
            .reserve()
            .await
            .map(IncomingRoom)
            .map_err(|_| Stopped)
    }

    /// Sends an event without waiting for its outcome.
    pub async fn send(&self, event: Event) -> Result<(), Stopped> {
        self.tx
            .send(Request::Event(event))
            .await
            .map_err(|_| Stopped)
    }

    /// Lets simulated or real time pass: retries and polls come due.
    pub async fn tick(&self) -> Result<(), Stopped> {
        self.send(Event::Tick).await
    }

    /// Hands the engine an event on behalf of a person and waits for its verdict (a refused
    /// approval, a member who may not change rules). The store is flushed before it answers.
    pub async fn ask(&self, event: Event) -> Result<(), AskError> {
        Ok(self.request(|reply| Request::Ask(event, reply)).await??)
    }

    /// Gives `device` a new MQTT login on behalf of `by` and returns its password, which is
    /// kept nowhere: the household record holds only its SHA-256.
    pub async fn issue_device_login(
        &self,
        device: DeviceId,
        by: crate::engine::household::Actor,
    ) -> Result<String, DeviceLoginError> {
        let password = crate::auth::random_secret()?;
        self.ask(Event::IssueDeviceLogin {
            device,
            password_hash: crate::auth::hash_token(&password),
            by,
        })
        .await?;
        Ok(password)
    }

    /// Reads from the engine's state at its current time: views for the API and the web page.
    pub async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Engine, UnixMs) -> T + Send + 'static,
    ) -> Result<T, Stopped> {
        let (reply, rx) = oneshot::channel();
        let request = Request::Read(Box::new(move |engine, now| {
            let _ = reply.send(read(engine, now));
        }));
        self.tx.send(request).await.map_err(|_| Stopped)?;
        rx.await.map_err(|_| Stopped)
    }

    /// The current state, for the API and the simulator.
    pub async fn status(&self) -> Result<StatusView, Stopped> {
        self.request(Request::Status).await
    }

    /// One order.
    pub async fn order(&self, id: &str) -> Result<Option<Order>, Stopped> {
        self.request(|reply| Request::Order(id.to_string(), reply))
            .await
    }

    /// Waits until at least `telemetry` MQTT messages were handled and no shop call is under
    /// way. The simulator uses it to step virtual time without sleeping.
    pub async fn settle(&self, telemetry: u64) -> Result<(), Stopped> {
        self.request(|reply| Request::Settle(telemetry, reply))
            .await
    }

    /// A consistent copy of the whole store, made by the engine task between two events
    /// (after flushing); `Err` says why the store could not be read.
    pub async fn backup(&self) -> Result<Result<crate::store::backup::Backup, String>, Stopped> {
        self.request(Request::Backup).await
    }

    /// Every notice from now on.
    pub fn notices(&self) -> broadcast::Receiver<Notice> {
        self.notices.subscribe()
    }

    /// Changes when the engine's state did (a level, a forecast, an order, a device, the
    /// rules); the value counts changes, and a burst is seen as one.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// The devices' MQTT logins (id → password hash), for the embedded broker's gate; it
    /// changes when an owner issues or removes one.
    pub fn device_logins(&self) -> watch::Receiver<DeviceLogins> {
        self.device_logins.subscribe()
    }

    /// True once the engine has loaded its state and runs.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}

/// Everything the engine task needs.
pub struct RuntimeParts {
    /// The engine, restored from the store.
    pub engine: Engine,
    /// The store.
    pub store: Arc<dyn Store>,
    /// The shops by id, in configuration order.
    pub shops: Vec<(ShopId, Arc<dyn Shop>)>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Where acks and commands go to the broker; `None` without MQTT (tests, benches).
    pub outbox: Option<Outbox>,
    /// Topic prefix, for command topics.
    pub prefix: String,
    /// Where the devices' logins go for the embedded broker's gate; `None` keeps them here.
    pub device_logins: Option<Arc<watch::Sender<DeviceLogins>>>,
}

/// The devices' login hashes of a household record.
fn device_logins_of(household: &crate::engine::household::Household) -> DeviceLogins {
    Arc::new(
        household
            .device_logins
            .iter()
            .map(|(id, login)| (id.clone(), login.password_hash.clone()))
            .collect(),
    )
}

/// How often the catalog is fetched again.
const CATALOG_REFRESH_MS: UnixMs = 6 * HOUR_MS;

/// Starts the engine task. It stops when `shutdown` turns true, after flushing the store.
pub fn spawn(
    parts: RuntimeParts,
    shutdown: watch::Receiver<bool>,
) -> (AgentHandle, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(1024);
    let (notices, _) = broadcast::channel(4096);
    let changes = Arc::new(watch::Sender::new(0));
    let device_logins = parts.device_logins.unwrap_or_default();
    // An earlier agent in this process may have left other logins in a shared gate.
    device_logins.send_replace(device_logins_of(parts.engine.household()));
    let handle = AgentHandle {
        tx: tx.clone(),
        notices: notices.clone(),
        changes: changes.clone(),
        ready: Arc::new(AtomicBool::new(false)),
        device_logins: device_logins.clone(),
    };
    let task = EngineTask {
        engine: parts.engine,
        store: parts.store,
        shops: parts.shops,
        clock: parts.clock,
        tx: tx.downgrade(),
        notices,
        changes,
        device_logins,
        shop_calls: 0,
        telemetry_seen: 0,
        settle_waiters: Vec::new(),
        catalog_fetched_at: HashMap::new(),
        outbox: parts.outbox,
        prefix: parts.prefix,
        refusals_logged: HashMap::new(),
        store_failed: false,
        journal: Journal::new(),
        shop_news: false,
        changed: false,
    };
    let ready = handle.ready.clone();
    let join = tokio::spawn(task.run(rx, shutdown, ready));
    (handle, join)
}

struct EngineTask {
    engine: Engine,
    store: Arc<dyn Store>,
    shops: Vec<(ShopId, Arc<dyn Shop>)>,
    clock: Arc<dyn Clock>,
    tx: mpsc::WeakSender<Request>,
    notices: broadcast::Sender<Notice>,
    /// Bumped by every saved change of state (see [`AgentHandle::changes`]).
    changes: Arc<watch::Sender<u64>>,
    /// The devices' MQTT logins as the broker's gate reads them.
    device_logins: Arc<watch::Sender<DeviceLogins>>,
    shop_calls: usize,
    telemetry_seen: u64,
    settle_waiters: Vec<(u64, oneshot::Sender<()>)>,
    /// When each shop's catalog was last asked for.
    catalog_fetched_at: HashMap<ShopId, UnixMs>,
    outbox: Option<Outbox>,
    prefix: String,
    /// When a refusal was last logged, per device (or topic) and reason: a flood of bad input
    /// is counted in full but logged once a minute.
    refusals_logged: HashMap<(String, &'static str), UnixMs>,
    /// A shop answered since the last flush.
    shop_news: bool,
    /// A record was saved since the watchers of `changes` were last told.
    changed: bool,
    /// A save or flush failed since the last acknowledged batch.
    store_failed: bool,
    /// Saves since the last flush, and records changed since the last checkpoint.
    journal: Journal,
}

/// A journal sync running off the engine task, and the acknowledgements waiting for it.
struct Syncing {
    done: tokio::task::JoinHandle<Result<(), StoreError>>,
    /// The journal's entries it covers ([`Journal::appended`] when it started).
    through: u64,
    acks: Vec<Acker>,
    started: std::time::Instant,
}

/// The result of the sync in flight; never ready without one.
async fn sync_done(syncing: &mut Option<Syncing>) -> Result<(), StoreError> {
    match syncing {
        Some(syncing) => (&mut syncing.done).await.unwrap_or_else(|stopped| {
            Err(StoreError::Backend(format!(
                "the journal's sync stopped: {stopped}"
            )))
        }),
        None => std::future::pending().await,
    }
}

/// Messages one journal entry (a group commit) covers at most: acks held while a sync runs.
/// It bounds the entry too (each report rewrites its device's and slot's records, about
/// 2.7 KB: at most about 5.5 MB); a backlog's batches hold 850-1,300 on this machine.
const GROUP_COMMIT_MAX: usize = 2048;

/// Refusal log entries remembered at most (spoofed ids could otherwise grow the map).
const REFUSAL_LOG_KEYS: usize = 4096;

impl EngineTask {
    /// Whether to log this refusal now: once per minute per subject and reason.
    fn log_refusal_now(&mut self, subject: &str, reason: &'static str) -> bool {
        let now = self.clock.now_ms();
        if self.refusals_logged.len() >= REFUSAL_LOG_KEYS {
            self.refusals_logged.clear();
        }
        let key = (subject.to_string(), reason);
        match self.refusals_logged.get(&key) {
            Some(&at) if now < at + MINUTE_MS => false,
            _ => {
                self.refusals_logged.insert(key, now);
                true
            }
        }
    }

    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Request>,
        mut shutdown: watch::Receiver<bool>,
        ready: Arc<AtomicBool>,
    ) {
        self.handle_event(Event::Started);
        self.refresh_catalog();
        ready.store(true, Ordering::SeqCst);
        let mut acks: Vec<Acker> = Vec::new();
        let mut syncing: Option<Syncing> = None;
        loop {
            // A full batch waits for the sync in flight; the engine's queue then fills and
            // the MQTT task stops reading (backpressure). (Without a sync in flight the batch
            // was written: nothing to wait for.)
            let taking = acks.len() < GROUP_COMMIT_MAX || syncing.is_none();
            let request = tokio::select! {
                request = rx.recv(), if taking => request,
                synced = sync_done(&mut syncing) => {
                    if let Some(done) = syncing.take() {
                        self.finish_sync(done, synced);
                    }
                    self.write_pending(&mut syncing, &mut acks);
                    self.wake_settled(&syncing);
                    continue;
                }
                _ = stopped(&mut shutdown) => None,
            };
            let Some(request) = request else { break };
            self.serve(request, &mut acks);
            // Group commit: take whatever else is queued, then journal it once and acknowledge
            // it once that is durable. While a sync runs the engine goes on taking messages,
            // and they all follow in the next entry: the batch grows with the sync's time.
            while acks.len() < GROUP_COMMIT_MAX {
                match rx.try_recv() {
                    Ok(request) => self.serve(request, &mut acks),
                    Err(_) => break,
                }
            }
            self.tell_changes();
            if syncing.is_none() {
                self.write_pending(&mut syncing, &mut acks);
            }
            self.wake_settled(&syncing);
        }
        // Acks of what was synced on the way down go out before the goodbye.
        self.end_sync(&mut syncing).await;
        match self.checkpoint() {
            // What the engine took since is in the tables now.
            Ok(()) => acks.into_iter().for_each(|ack| ack()),
            Err(error) => emit(StoreFailed::at(StoreStep::Shutdown, &error)),
        }
        tracing::info!("engine stopped; state flushed");
    }

    /// Tells the state's watchers (Home Assistant's states) once per batch that something
    /// changed: once per saved record woke them, and the engine task, 2 times a report
    /// (8% of the agent's CPU in a burst).
    fn tell_changes(&mut self) {
        if std::mem::take(&mut self.changed) {
            self.changes.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Journals what waits (messages taken, a shop's answer) and starts its sync, when no
    /// sync is in flight (at most one journal entry is ever unsynced).
    fn write_pending(&mut self, syncing: &mut Option<Syncing>, acks: &mut Vec<Acker>) {
        debug_assert!(syncing.is_none());
        // What a shop said (placed, refused, shipped) is stored now too: a crash must not
        // send again an order the shop refused for good, nor forget one it took.
        let shop_news = std::mem::take(&mut self.shop_news);
        if acks.is_empty() && !shop_news {
            return;
        }
        *syncing = self.write(std::mem::take(acks));
    }

    /// Journals the batch and starts its sync off the engine task: `acks` go out once it is
    /// durable, at once if nothing was written, and never if storing failed (the broker keeps
    /// those messages and delivers them again on the next connection).
    fn write(&mut self, acks: Vec<Acker>) -> Option<Syncing> {
        let started = std::time::Instant::now();
        let engine = &self.engine;
        let written = self.journal.write(&*self.store, &|table, key| {
            store::engine_record(engine, table, key)
        });
        if let Err(error) = written {
            self.store_failed = true;
            emit(StoreFailed::at(StoreStep::Write, &error));
        }
        if std::mem::take(&mut self.store_failed) {
            if !acks.is_empty() {
                tracing::error!(
                    messages = acks.len(),
                    "storing failed: these messages stay unacknowledged"
                );
            }
            return None;
        }
        if !self.journal.unsynced() {
            acks.into_iter().for_each(|ack| ack());
            return None;
        }
        let store = Arc::clone(&self.store);
        Some(Syncing {
            done: tokio::task::spawn_blocking(move || store.sync_journal()),
            through: self.journal.appended(),
            acks,
            started,
        })
    }

    /// Waits for the sync in flight, if any, and acknowledges what it made durable.
    async fn end_sync(&mut self, syncing: &mut Option<Syncing>) {
        if syncing.is_none() {
            return;
        }
        let synced = sync_done(syncing).await;
        if let Some(done) = syncing.take() {
            self.finish_sync(done, synced);
        }
    }

    fn finish_sync(&mut self, done: Syncing, synced: Result<(), StoreError>) {
        emit(StoreFlushed {
            seconds: done.started.elapsed().as_secs_f64(),
        });
        self.journal.synced(done.through, &synced);
        match synced {
            Ok(()) => done.acks.into_iter().for_each(|ack| ack()),
            Err(error) => {
                emit(StoreFailed {
                    messages: done.acks.len(),
                    ..StoreFailed::at(StoreStep::Sync, &error)
                });
            }
        }
    }

    /// Journals what the engine saved since the last time and makes it durable.
    fn flush_store(&mut self) -> Result<(), StoreError> {
        let engine = &self.engine;
        self.journal.commit(&*self.store, &|table, key| {
            store::engine_record(engine, table, key)
        })
    }

    /// Brings the tables up to date with the journal (before a backup, on the way down).
    fn checkpoint(&mut self) -> Result<(), StoreError> {
        self.flush_store()?;
        let engine = &self.engine;
        self.journal.checkpoint(&*self.store, &|table, key| {
            store::engine_record(engine, table, key)
        })
    }

    fn flush(&mut self) {
        let started = std::time::Instant::now();
        let flushed = self.flush_store();
        emit(StoreFlushed {
            seconds: started.elapsed().as_secs_f64(),
        });
        if let Err(error) = flushed {
            self.store_failed = true;
            emit(StoreFailed::at(StoreStep::Flush, &error));
        }
    }

    fn serve(&mut self, request: Request, acks: &mut Vec<Acker>) {
        match request {
            Request::Incoming(incoming, ack) => {
                match incoming {
                    Incoming::Own => {}
                    Incoming::Telemetry { device, message } => {
                        self.telemetry_seen += 1;
                        emit(TelemetryReceived);
                        self.handle_event(Event::Telemetry { device, message });
                    }
                    Incoming::Refused { topic, reason } => {
                        self.telemetry_seen += 1;
                        let label = reason.label();
                        emit(TelemetryRefused {
                            topic: &topic,
                            reason: &reason,
                            label,
                            log: self.log_refusal_now(&topic, label),
                        });
                    }
                }
                acks.extend(ack);
            }
            Request::Event(event) => {
                if matches!(event, Event::Tick) {
                    self.refresh_catalog();
                }
                self.handle_event(event);
            }
            Request::ShopDone(outcome) => {
                self.shop_calls = self.shop_calls.saturating_sub(1);
                self.shop_news = true;
                match outcome {
                    ShopOutcome::Event(event) => self.handle_event(*event),
                    ShopOutcome::CatalogFailed(shop) => {
                        self.catalog_fetched_at.remove(&shop);
                    }
                    ShopOutcome::Nothing => {}
                }
            }
            Request::Ask(event, reply) => {
                let result = self.try_event(event);
                self.flush();
                let _ = reply.send(result);
            }
            Request::Status(reply) => {
                let _ = reply.send(status_view(&self.engine, self.clock.now_ms()));
            }
            Request::Order(id, reply) => {
                let _ = reply.send(self.engine.order(&id).cloned());
            }
            Request::Settle(telemetry, reply) => self.settle_waiters.push((telemetry, reply)),
            Request::Backup(reply) => {
                let copy = self
                    .checkpoint()
                    .map_err(crate::store::backup::FormatError::from)
                    .and_then(|()| crate::store::backup::export(&*self.store))
                    .map_err(|e| e.to_string());
                let _ = reply.send(copy);
            }
            Request::Read(read) => read(&self.engine, self.clock.now_ms()),
        }
    }

    /// Answers those waiting for the engine to have handled (and durably stored) their
    /// telemetry, with no shop call and no sync in flight.
    fn wake_settled(&mut self, syncing: &Option<Syncing>) {
        if self.shop_calls > 0 || syncing.is_some() {
            return;
        }
        let seen = self.telemetry_seen;
        let (settled, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.settle_waiters)
            .into_iter()
            .partition(|(n, _)| *n <= seen);
        self.settle_waiters = waiting;
        for (_, reply) in settled {
            let _ = reply.send(());
        }
    }

    fn handle_event(&mut self, event: Event) {
        if let Err(error) = self.try_event(event) {
            let device = error.device().cloned();
            let log = !EventRefused::expected(&error)
                && self
                    .log_refusal_now(device.as_ref().map_or("", DeviceId::as_str), error.label());
            emit(EventRefused { error: &error, log });
            if let (EngineError::TimestampOutOfRange { .. }, Some(device)) = (&error, device) {
                self.handle_event(Event::ClockOff { device });
            }
        }
    }

    fn try_event(&mut self, event: Event) -> Result<(), EngineError> {
        let now = self.clock.now_ms();
        let effects = self.engine.handle(event, now)?;
        for effect in effects {
            self.run_effect(effect);
        }
        Ok(())
    }

    fn run_effect(&mut self, effect: Effect) {
        if let Effect::SaveHousehold(household) = &effect {
            let logins = device_logins_of(household);
            self.device_logins.send_if_modified(|current| {
                let changed = **current != *logins;
                if changed {
                    *current = logins;
                }
                changed
            });
        }
        let effect = match self.journal.stage(effect) {
            Ok(None) => {
                self.changed = true;
                return;
            }
            Ok(Some(other)) => other,
            Err(error) => {
                self.store_failed = true;
                emit(StoreFailed::at(StoreStep::Save, &error));
                return;
            }
        };
        match effect {
            Effect::PlaceOrder { order, request } => {
                // Write before send: the order is saved as approved; make it durable first.
                if let Err(error) = self.flush_store() {
                    emit(StoreFailed {
                        order: Some(&order.id),
                        ..StoreFailed::at(StoreStep::OrderDurable, &error)
                    });
                    let event = Event::PlacementFailed {
                        order_id: order.id,
                        error: error.to_string(),
                        retryable: true,
                    };
                    self.handle_event(event);
                    return;
                }
                emit(OrderPlacing {
                    order: &order.id,
                    key: &order.idempotency_key,
                    attempt: order.attempts,
                });
                let Some(commerce) = self.shop(&order.shop) else {
                    let event = Event::PlacementFailed {
                        error: format!("no shop {:?} is configured any more", order.shop),
                        order_id: order.id,
                        retryable: false,
                    };
                    self.handle_event(event);
                    return;
                };
                self.shop_call(async move {
                    match commerce.place_order(&order.idempotency_key, &request).await {
                        Ok(shop_order) => ShopOutcome::Event(Box::new(Event::PlacementSucceeded {
                            order_id: order.id,
                            shop_order,
                        })),
                        Err(error) => {
                            ShopOutcome::Event(Box::new(placement_failed(order.id, &error)))
                        }
                    }
                });
            }
            Effect::FetchOrder {
                shop,
                order_id,
                shop_order_id,
            } => {
                let Some(commerce) = self.shop(&shop) else {
                    tracing::warn!(%order_id, %shop, "the order's shop is no longer configured");
                    return;
                };
                self.shop_call(async move {
                    match commerce.order(&shop_order_id).await {
                        Ok(shop_order) => ShopOutcome::Event(Box::new(Event::ShopStatus { order_id, shop_order })),
                        Err(error) => {
                            tracing::warn!(%order_id, %error, "order status unavailable; will ask again");
                            ShopOutcome::Nothing
                        }
                    }
                });
            }
            Effect::CancelAtShop {
                shop,
                order_id,
                shop_order_id,
            } => {
                let Some(commerce) = self.shop(&shop) else {
                    let answer = Err(format!("no shop {shop:?} is configured any more"));
                    self.handle_event(Event::CancelAnswered { order_id, answer });
                    return;
                };
                self.shop_call(async move {
                    let answer = commerce
                        .cancel(&shop_order_id)
                        .await
                        .map_err(|error| error.to_string());
                    ShopOutcome::Event(Box::new(Event::CancelAnswered { order_id, answer }))
                });
            }
            Effect::SendCommand { device, command } => {
                let Some(outbox) = &self.outbox else {
                    emit(CommandUnsent { device: &device });
                    return;
                };
                let household = &self.engine.config().household;
                let topic = topic::build(&self.prefix, household, &device, Channel::Cmd);
                match codec::encode(&command, Encoding::Json) {
                    Ok(payload) => {
                        emit(CommandSent {
                            device: &device,
                            id: command.id,
                        });
                        outbox.command(topic, payload);
                    }
                    Err(error) => tracing::error!(%device, %error, "cannot encode a command"),
                }
            }
            Effect::PairingDropped { device } => {
                emit(PairingDropped { device: &device });
            }
            Effect::Notice(notice) => {
                emit(NoticeRaised { notice: &notice });
                let _ = self.notices.send(notice);
            }
            Effect::SaveDevice(_)
            | Effect::SaveDeviceSeen(_)
            | Effect::SaveSlot(_)
            | Effect::SaveOrder(_)
            | Effect::SaveMeta(_)
            | Effect::SaveHousehold(_)
            | Effect::Audit(_)
            | Effect::DeleteDevice { .. } => {}
        }
    }

    /// The adapter of the shop with this id.
    fn shop(&self, id: &str) -> Option<Arc<dyn Shop>> {
        self.shops
            .iter()
            .find(|(shop, _)| shop == id)
            .map(|(_, adapter)| adapter.clone())
    }

    fn refresh_catalog(&mut self) {
        let now = self.clock.now_ms();
        for (shop, adapter) in self.shops.clone() {
            if self
                .catalog_fetched_at
                .get(&shop)
                .is_some_and(|at| now < at + CATALOG_REFRESH_MS)
            {
                continue;
            }
            self.catalog_fetched_at.insert(shop.clone(), now);
            self.shop_call(async move {
                match adapter.catalog().await {
                    Ok(catalog) => ShopOutcome::Event(Box::new(Event::Catalog { shop, catalog })),
                    Err(error) => {
                        tracing::warn!(%shop, %error, "catalog unavailable; keeping the last one, retrying at the next tick");
                        ShopOutcome::CatalogFailed(shop)
                    }
                }
            });
        }
    }

    fn shop_call(&mut self, call: impl std::future::Future<Output = ShopOutcome> + Send + 'static) {
        let Some(tx) = self.tx.upgrade() else { return };
        self.shop_calls += 1;
        tokio::spawn(async move {
            let event = call.await;
            let _ = tx.send(Request::ShopDone(event)).await;
        });
    }
}

fn placement_failed(order_id: OrderId, error: &CommerceError) -> Event {
    emit(OrderPlacementFailed {
        order: &order_id,
        error,
        retryable: error.retryable(),
    });
    Event::PlacementFailed {
        order_id,
        error: error.to_string(),
        retryable: error.retryable(),
    }
}

/// Resolves once the shutdown signal is given (or its sender is gone).
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not Send; drop it here so callers' futures stay Send.
    let _ = shutdown.wait_for(|stop| *stop).await.map(|_| ());
}
