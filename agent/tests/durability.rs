//! Nothing is acknowledged before it is durable: when storing fails, the engine task withholds
//! the batch's acknowledgements (the broker keeps the messages); when it works, it sends them.
//! The journal's sync runs off the engine task, which meanwhile handles the next batch but
//! appends it only once that sync is done.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use replenish_agent::clock::{DAY_MS, ManualClock};
use replenish_agent::engine::{Engine, EngineConfig, Pairing, Snapshot, Telemetry};
use replenish_agent::runtime::{self, Incoming, RuntimeParts};
use replenish_agent::store::{DurableWrite, Hooked, MemoryStore, Store, StoreError};
use replenish_commerce::Catalog;
use replenish_commerce::MemoryShop;
use replenish_protocol::{Birth, DeviceId, HouseholdId, Id, SlotSpec, Status, Unit};

/// A disk that can be told to fail its flushes, as a full one would, or to hold its journal
/// syncs, as a slow one would.
#[derive(Default)]
struct Disk {
    failing: AtomicBool,
    /// Tells those waiting when a journal sync starts.
    sync_started: tokio::sync::Notify,
    /// While set, a journal sync waits for a message on it (or for its sender to go).
    sync_gate: Mutex<Option<mpsc::Receiver<()>>>,
}

impl Disk {
    fn before(&self, write: DurableWrite) -> Result<(), StoreError> {
        if write == DurableWrite::JournalSync {
            self.sync_started.notify_waiters();
            if let Some(gate) = self.sync_gate.lock().unwrap().as_ref() {
                let _ = gate.recv();
            }
        }
        if self.failing.load(Ordering::SeqCst) {
            Err(StoreError::Backend("disk full".into()))
        } else {
            Ok(())
        }
    }
}

/// Memory on `disk`.
fn flaky_store(disk: &Arc<Disk>) -> Arc<Hooked<MemoryStore>> {
    let disk = disk.clone();
    Arc::new(Hooked::new(MemoryStore::default(), move |write| {
        disk.before(write)
    }))
}

fn birth(boot: u32) -> Incoming {
    let id = |s: &str| Id::new(s).unwrap();
    let beans = SlotSpec::level(id("beans"), id("coffee_beans"), Unit::G, 500.0);
    let birth = Birth::new(
        id("coffee-maker"),
        "0.1.0".try_into().unwrap(),
        boot,
        [beans].into_iter().collect(),
    );
    Incoming::Telemetry {
        device: DeviceId::new("coffee").unwrap(),
        message: Telemetry::Status(Box::new(Status::Online(birth))),
    }
}

/// The engine task on `store`, and a count of the acknowledgements it sent.
fn start(
    store: Arc<Hooked<MemoryStore>>,
) -> (
    runtime::AgentHandle,
    Arc<AtomicUsize>,
    tokio::sync::watch::Sender<bool>,
) {
    let mut config = EngineConfig::new(HouseholdId::new("home").unwrap(), "key".into());
    config.pairing = Pairing::Open;
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let parts = RuntimeParts {
        engine: Engine::new(config, Snapshot::default()),
        store,
        shops: vec![(
            replenish_agent::engine::ShopId::default_shop(),
            Arc::new(MemoryShop::new(Catalog::default())),
        )],
        clock: ManualClock::new(20_458 * DAY_MS),
        outbox: None,
        prefix: "replenish/v1".into(),
        device_logins: None,
    };
    let (handle, _task) = runtime::spawn(parts, shutdown);
    (handle, Arc::new(AtomicUsize::new(0)), stop)
}

fn acker(acks: &Arc<AtomicUsize>) -> Option<runtime::Acker> {
    let acks = acks.clone();
    Some(Box::new(move || {
        acks.fetch_add(1, Ordering::SeqCst);
    }))
}

#[tokio::test]
async fn acks_wait_for_a_successful_flush() {
    let disk = Arc::new(Disk::default());
    let (handle, acks, _stop) = start(flaky_store(&disk));

    disk.failing.store(true, Ordering::SeqCst);
    handle.incoming(birth(1), acker(&acks)).await.unwrap();
    handle.settle(1).await.unwrap();
    assert_eq!(
        acks.load(Ordering::SeqCst),
        0,
        "not durable: not acknowledged"
    );

    disk.failing.store(false, Ordering::SeqCst);
    handle.incoming(birth(2), acker(&acks)).await.unwrap();
    handle.settle(2).await.unwrap();
    assert_eq!(acks.load(Ordering::SeqCst), 1, "durable: acknowledged");
}

// Two workers: an engine that synced on its own task would then block one, not the test's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_batch_is_handled_during_a_sync_and_appended_after_it() {
    let disk = Arc::new(Disk::default());
    let store = flaky_store(&disk);
    let (handle, acks, _stop) = start(store.clone());
    // The catalog's fetch at start is journalled too: past that, the only sync is the test's.
    handle.settle(0).await.unwrap();
    let before = store.inner().journal_entries().unwrap().len();
    let (release, gate) = mpsc::channel();
    *disk.sync_gate.lock().unwrap() = Some(gate);
    let mut changes = handle.changes();

    let sync_started = disk.sync_started.notified();
    handle.incoming(birth(1), acker(&acks)).await.unwrap();
    sync_started.await;
    changes.borrow_and_update();
    handle.incoming(birth(2), acker(&acks)).await.unwrap();
    // The engine took in the second birth while the first one's sync is held.
    tokio::time::timeout(std::time::Duration::from_secs(10), changes.changed())
        .await
        .expect("the engine handles the next batch while a sync runs")
        .unwrap();
    assert_eq!(acks.load(Ordering::SeqCst), 0, "nothing is durable yet");
    assert_eq!(
        store.inner().journal_entries().unwrap().len(),
        before + 1,
        "the second entry waits for the first one's sync"
    );

    drop(release);
    handle.settle(2).await.unwrap();
    assert_eq!(
        acks.load(Ordering::SeqCst),
        2,
        "both synced: both acknowledged"
    );
    assert_eq!(store.inner().journal_entries().unwrap().len(), before + 2);
}
