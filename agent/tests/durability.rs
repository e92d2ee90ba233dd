//! Nothing is acknowledged before it is durable: when storing fails, the engine task withholds
//! the batch's acknowledgements (the broker keeps the messages); when it works, it sends them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use replenish_agent::clock::{DAY_MS, ManualClock};
use replenish_agent::engine::{Engine, EngineConfig, Pairing, Snapshot, Telemetry};
use replenish_agent::runtime::{self, Incoming, RuntimeParts};
use replenish_agent::store::{MemoryStore, Store, StoreError, Table};
use replenish_commerce::Catalog;
use replenish_commerce::MemoryShop;
use replenish_protocol::{Birth, Id, SensorKind, SlotSpec, Status, Unit};

/// Memory that can be told to fail its flushes, as a full disk would.
#[derive(Default)]
struct FlakyStore {
    inner: MemoryStore,
    failing: AtomicBool,
}

impl Store for FlakyStore {
    fn put(&self, table: Table, key: &str, value: Vec<u8>) -> Result<(), StoreError> {
        self.inner.put(table, key, value)
    }
    fn get(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(table, key)
    }
    fn scan(&self, table: Table) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.inner.scan(table)
    }
    fn delete(&self, table: Table, key: &str) -> Result<(), StoreError> {
        self.inner.delete(table, key)
    }
    fn flush(&self) -> Result<(), StoreError> {
        self.fail_if_told()?;
        self.inner.flush()
    }
    fn journal_append(&self, entry: &[u8]) -> Result<(), StoreError> {
        self.inner.journal_append(entry)
    }
    fn sync_journal(&self) -> Result<(), StoreError> {
        self.fail_if_told()?;
        self.inner.sync_journal()
    }
    fn journal_entries(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        self.inner.journal_entries()
    }
    fn clear_journal(&self) -> Result<(), StoreError> {
        self.inner.clear_journal()
    }
}

impl FlakyStore {
    fn fail_if_told(&self) -> Result<(), StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            Err(StoreError::Backend("disk full".into()))
        } else {
            Ok(())
        }
    }
}

fn birth(boot: u32) -> Incoming {
    let slots = [SlotSpec {
        id: Id::new("beans").unwrap(),
        consumable: Id::new("coffee_beans").unwrap(),
        unit: Unit::G,
        capacity: 500.0,
        sensor: SensorKind::Level,
    }]
    .into_iter()
    .collect();
    Incoming::Telemetry {
        device: Id::new("coffee").unwrap(),
        message: Telemetry::Status(Box::new(Status::Online(Birth {
            model: Id::new("coffee-maker").unwrap(),
            firmware: "0.1.0".try_into().unwrap(),
            boot,
            slots,
            buffer: None,
            usage: None,
        }))),
    }
}

#[tokio::test]
async fn acks_wait_for_a_successful_flush() {
    let store = Arc::new(FlakyStore::default());
    let mut config = EngineConfig::new(Id::new("home").unwrap(), "key".into());
    config.pairing = Pairing::Open;
    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    let parts = RuntimeParts {
        engine: Engine::new(config, Snapshot::default()),
        store: store.clone(),
        shops: vec![("shop".into(), Arc::new(MemoryShop::new(Catalog::default())))],
        clock: ManualClock::new(20_458 * DAY_MS),
        outbox: None,
        prefix: "replenish/v1".into(),
        device_logins: None,
    };
    let (handle, _task) = runtime::spawn(parts, shutdown);
    let acks = Arc::new(AtomicUsize::new(0));
    let acker = || {
        let acks = acks.clone();
        Some(Box::new(move || {
            acks.fetch_add(1, Ordering::SeqCst);
        }) as runtime::Acker)
    };

    store.failing.store(true, Ordering::SeqCst);
    handle.incoming(birth(1), acker()).await.unwrap();
    handle.settle(1).await.unwrap();
    assert_eq!(
        acks.load(Ordering::SeqCst),
        0,
        "not durable: not acknowledged"
    );

    store.failing.store(false, Ordering::SeqCst);
    handle.incoming(birth(2), acker()).await.unwrap();
    handle.settle(2).await.unwrap();
    assert_eq!(acks.load(Ordering::SeqCst), 1, "durable: acknowledged");
}
