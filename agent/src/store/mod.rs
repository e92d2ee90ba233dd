//! Storage behind a small trait: sled in the daemon, memory in tests.
//!
//! Records are JSON, one per key, in a few tables. [`save_effect`] and [`load_snapshot`] map the
//! engine's records to tables; a record that cannot be read back is logged, counted and
//! skipped, never deleted, so a bug in one version cannot destroy data another can read.

pub mod backup;
pub mod hooked;
pub mod journal;
mod memory;
mod sled_store;

pub use hooked::{DurableWrite, Hooked};
pub use memory::MemoryStore;
pub use sled_store::SledStore;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::clock::UnixMs;
use crate::engine::dedup::Dedup;
use crate::engine::household::{AuditEntry, Household};
use crate::engine::inventory::{DeviceState, SlotState};
use crate::engine::order::Order;
use crate::engine::{AUDIT_IN_MEMORY, Effect, Engine, Meta, Snapshot};
use crate::internal_events::{UnreadableRecord, emit};
use replenish_protocol::DeviceId;

/// The tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// Devices by id.
    Devices,
    /// Slots by `device/slot`.
    Slots,
    /// Orders by id.
    Orders,
    /// Engine counters, the catalog and the installation id.
    Meta,
    /// The household record (members, rules).
    Household,
    /// The audit trail by zero-padded sequence number.
    Audit,
}

impl Table {
    /// Every table.
    pub const ALL: [Table; 6] = [
        Table::Devices,
        Table::Slots,
        Table::Orders,
        Table::Meta,
        Table::Household,
        Table::Audit,
    ];

    /// The table's name in storage.
    pub fn name(self) -> &'static str {
        match self {
            Table::Devices => "devices",
            Table::Slots => "slots",
            Table::Orders => "orders",
            Table::Meta => "meta",
            Table::Household => "household",
            Table::Audit => "audit",
        }
    }

    /// The table's number in journal entries.
    pub fn code(self) -> u8 {
        match self {
            Table::Devices => 0,
            Table::Slots => 1,
            Table::Orders => 2,
            Table::Meta => 3,
            Table::Household => 4,
            Table::Audit => 5,
        }
    }

    /// The table numbered `code`.
    pub fn from_code(code: u8) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.code() == code)
    }
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend failed.
    #[error("storage backend: {0}")]
    Backend(String),
    /// A record could not be encoded.
    #[error("cannot encode record {key} in {table}: {source}")]
    Encode {
        /// The table.
        table: &'static str,
        /// The key.
        key: String,
        /// The encoder's error.
        source: serde_json::Error,
    },
    /// A record could not be encoded for the journal.
    #[error("cannot encode record {key} in {table} for the journal: {source}")]
    EncodeCompact {
        /// The table.
        table: &'static str,
        /// The key.
        key: String,
        /// The encoder's error.
        source: rmp_serde::encode::Error,
    },
}

/// A key-value store with tables. Writes may be buffered until [`Store::flush`].
pub trait Store: Send + Sync + 'static {
    /// Writes a value.
    fn put(&self, table: Table, key: &str, value: Vec<u8>) -> Result<(), StoreError>;
    /// Reads a value.
    fn get(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Every entry of a table, in key order.
    fn scan(&self, table: Table) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// Removes a value (nothing happens if there is none).
    fn delete(&self, table: Table, key: &str) -> Result<(), StoreError>;
    /// Makes every write so far durable.
    fn flush(&self) -> Result<(), StoreError>;
    /// Appends an entry to the write-ahead journal ([`journal`]), durable at the next
    /// [`Store::sync_journal`].
    fn journal_append(&self, entry: &[u8]) -> Result<(), StoreError>;
    /// Makes every journal entry appended so far durable.
    fn sync_journal(&self) -> Result<(), StoreError>;
    /// The journal's entries in order. A torn last entry (a crash in the middle of appending
    /// it, so never synced nor acknowledged) is left out; damage anywhere else is an error.
    fn journal_entries(&self) -> Result<Vec<Vec<u8>>, StoreError>;
    /// Empties the journal, durably.
    fn clear_journal(&self) -> Result<(), StoreError>;
}

/// A record as it is stored.
pub(crate) fn encode_json<T: Serialize>(
    table: Table,
    key: &str,
    value: &T,
) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|source| StoreError::Encode {
        table: table.name(),
        key: key.to_string(),
        source,
    })
}

/// Carries out a storage effect straight into the tables (the command-line tools; the running
/// agent goes through its [`journal::Journal`]); other effects are ignored. Returns whether it
/// was one. The device and slot records an effect names are as `current` encodes them (see
/// [`engine_record`]).
pub fn save_effect(
    store: &dyn Store,
    current: &journal::CurrentRecord<'_>,
    effect: &Effect,
) -> Result<bool, StoreError> {
    let ops = journal::record_ops(effect, current)?;
    journal::apply(store, &ops)?;
    Ok(!ops.is_empty())
}

/// A device or slot record as the engine holds it, for storage to encode: as JSON for the
/// tables, compactly for the journal.
#[derive(Debug, Clone, Copy)]
pub enum EngineRecord<'a> {
    /// A device.
    Device(&'a DeviceState),
    /// A slot.
    Slot(&'a SlotState),
}

impl EngineRecord<'_> {
    /// As the tables store it: JSON.
    pub fn json(self, table: Table, key: &str) -> Result<Vec<u8>, StoreError> {
        match self {
            EngineRecord::Device(device) => encode_json(table, key, device),
            EngineRecord::Slot(slot) => encode_json(table, key, slot),
        }
    }

    /// As the journal stores it, appended to `out`: MessagePack with field names, which reads
    /// back like JSON (defaults, skipped fields, tagged enums) at a fraction of the cost (no
    /// float formatting, no string escaping).
    pub fn compact_into(
        self,
        table: Table,
        key: &str,
        out: &mut Vec<u8>,
    ) -> Result<(), StoreError> {
        let written = match self {
            EngineRecord::Device(device) => rmp_serde::encode::write_named(out, device),
            EngineRecord::Slot(slot) => rmp_serde::encode::write_named(out, slot),
        };
        written.map_err(|source| StoreError::EncodeCompact {
            table: table.name(),
            key: key.to_string(),
            source,
        })
    }
}

/// What a report changes in a device's record ([`Effect::SaveDeviceSeen`]), as the journal
/// writes it: MessagePack with field names, like whole records.
#[derive(Serialize)]
struct DeviceSeenRef<'a> {
    last_seen: UnixMs,
    dedup: &'a Dedup,
}

/// [`DeviceSeenRef`] read back.
#[derive(Deserialize)]
struct DeviceSeen {
    last_seen: UnixMs,
    dedup: Dedup,
}

/// Appends what a report changes in `device`'s record to `out`, compactly.
pub(crate) fn compact_seen_into(
    device: &DeviceState,
    key: &str,
    out: &mut Vec<u8>,
) -> Result<(), StoreError> {
    let seen = DeviceSeenRef {
        last_seen: device.last_seen,
        dedup: &device.dedup,
    };
    rmp_serde::encode::write_named(out, &seen).map_err(|source| StoreError::EncodeCompact {
        table: Table::Devices.name(),
        key: key.to_string(),
        source,
    })
}

/// The device record `whole` (JSON, as the tables hold it) with what a report changed in it
/// ([`compact_seen_into`]) applied: the JSON to store.
pub(crate) fn seen_onto_json(whole: &[u8], compact_seen: &[u8]) -> Result<Vec<u8>, String> {
    let mut device: DeviceState =
        serde_json::from_slice(whole).map_err(|e| format!("the device record: {e}"))?;
    let seen: DeviceSeen = rmp_serde::from_slice(compact_seen)
        .map_err(|e| format!("what a report changed in a device record: {e}"))?;
    device.last_seen = seen.last_seen;
    device.dedup = seen.dedup;
    serde_json::to_vec(&device).map_err(|e| e.to_string())
}

/// The JSON of a device or slot record the journal holds compactly.
pub(crate) fn compact_to_json(table: Table, compact: &[u8]) -> Result<Vec<u8>, String> {
    fn as_json<T: DeserializeOwned + Serialize>(compact: &[u8]) -> Result<Vec<u8>, String> {
        let record: T = rmp_serde::from_slice(compact).map_err(|e| e.to_string())?;
        serde_json::to_vec(&record).map_err(|e| e.to_string())
    }
    let json = match table {
        Table::Devices => as_json::<DeviceState>(compact),
        Table::Slots => as_json::<SlotState>(compact),
        other => return Err(format!("no compact records in {}", other.name())),
    };
    json.map_err(|why| format!("a compact {} record: {why}", table.name()))
}

/// The engine's device or slot record under `key` (`None`: it is gone, or another table).
pub fn engine_record<'a>(engine: &'a Engine, table: Table, key: &str) -> Option<EngineRecord<'a>> {
    match table {
        Table::Devices => DeviceId::new(key)
            .ok()
            .and_then(|id| engine.device_by_id(&id))
            .map(EngineRecord::Device),
        Table::Slots => engine.slot(key).map(EngineRecord::Slot),
        _ => None,
    }
}

fn audit_key(seq: u64) -> String {
    format!("{seq:020}")
}

fn load_table<T: DeserializeOwned>(store: &dyn Store, table: Table) -> Result<Vec<T>, StoreError> {
    load_table_with(store, table, |bytes| serde_json::from_slice(bytes))
}

/// Every record of `table` that `read` reads; one that it cannot is logged, counted and left
/// in place (a fixed version may read it), not loaded.
fn load_table_with<T>(
    store: &dyn Store,
    table: Table,
    read: impl Fn(&[u8]) -> Result<T, serde_json::Error>,
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    for (key, bytes) in store.scan(table)? {
        match read(&bytes) {
            Ok(value) => out.push(value),
            Err(error) => {
                emit(UnreadableRecord {
                    table: table.name(),
                    key: &key,
                    error: &error,
                });
            }
        }
    }
    Ok(out)
}

/// The engine's counters as stored. Agents before replenish-commerce stored the sandbox shop's
/// wire catalog under `catalog`: it becomes the contract's catalog here, at the storage edge;
/// one that reads as neither is dropped (the next fetch replaces it) rather than making the
/// counters beside it unreadable.
pub fn read_meta(bytes: &[u8]) -> Result<Meta, serde_json::Error> {
    let mut value: serde_json::Value = serde_json::from_slice(bytes)?;
    if let Some(object) = value.as_object_mut()
        && let Some(stored) = object.remove("catalog")
    {
        let catalog = serde_json::from_value::<replenish_commerce::Catalog>(stored.clone())
            .ok()
            .or_else(|| {
                serde_json::from_value::<replenish_commerce::sandbox::wire::Catalog>(stored)
                    .ok()
                    .map(replenish_commerce::sandbox::catalog_from_wire)
            });
        if let Some(catalog) = catalog {
            object.insert("catalog".into(), serde_json::to_value(catalog)?);
        }
    }
    serde_json::from_value(value)
}

/// An order as stored. Agents before orders held a list of lines kept the first line's fields
/// on the order itself, the other lines under `bundled`, every price in cents (`total_cents`,
/// the order's covering every line) and one `currency` (none: euro); such an order becomes
/// lines here, at the storage edge, and is written in the new shape when it next changes.
pub fn read_order(bytes: &[u8]) -> Result<Order, serde_json::Error> {
    use serde_json::{Map, Value, json};
    const FIRST_LINE: [&str; 9] = [
        "device",
        "slot",
        "consumable",
        "sku",
        "packs",
        "pack_size",
        "unit",
        "reason",
        "outlook",
    ];
    let mut value: Value = serde_json::from_slice(bytes)?;
    if let Some(order) = value.as_object_mut()
        && !order.contains_key("lines")
    {
        let currency = order.remove("currency").unwrap_or_else(|| json!("EUR"));
        let cents = |line: &Value| line.get("total_cents").and_then(Value::as_u64);
        let bundled = match order.remove("bundled") {
            Some(Value::Array(lines)) => lines,
            _ => Vec::new(),
        };
        let bundled_cents: u64 = bundled.iter().filter_map(cents).sum();
        let mut first = Map::new();
        for field in FIRST_LINE {
            if let Some(value) = order.remove(field) {
                first.insert(field.into(), value);
            }
        }
        let order_cents = order.remove("total_cents").and_then(|v| v.as_u64());
        let first_cents = order_cents.unwrap_or(0).saturating_sub(bundled_cents);
        first.insert("total_cents".into(), json!(first_cents));
        let lines: Vec<Value> = std::iter::once(Value::Object(first))
            .chain(bundled)
            .map(|mut line| {
                if let Some(line) = line.as_object_mut() {
                    let minor = line.remove("total_cents").unwrap_or_else(|| json!(0));
                    line.insert(
                        "total".into(),
                        json!({ "minor": minor, "currency": currency }),
                    );
                }
                line
            })
            .collect();
        order.insert("lines".into(), Value::Array(lines));
    }
    serde_json::from_value(value)
}

/// Reads everything the engine needs to resume, after applying what the last run left in the
/// journal.
pub fn load_snapshot(store: &dyn Store) -> Result<Snapshot, StoreError> {
    journal::recover(store)?;
    let meta = match store.get(Table::Meta, "engine")? {
        Some(bytes) => read_meta(&bytes).unwrap_or_else(|error| {
            tracing::error!(%error, "engine counters unreadable; starting them afresh");
            Meta::default()
        }),
        None => Meta::default(),
    };
    let orders = load_table_with(store, Table::Orders, read_order)?;
    // Never reuse an order number, even if the counters were unreadable.
    let highest = orders
        .iter()
        .filter_map(|o| o.id.number())
        .max()
        .unwrap_or(0);
    let meta = Meta {
        next_order_no: meta.next_order_no.max(highest),
        ..meta
    };
    let household = match store.get(Table::Household, "household")? {
        Some(bytes) => match serde_json::from_slice::<Household>(&bytes) {
            Ok(household) => Some(household),
            Err(error) => {
                // Refusing to start beats starting with no members and default rules: the
                // record stays as it is for a fixed version to read.
                return Err(StoreError::Backend(format!(
                    "the household record (members, rules) is unreadable: {error}"
                )));
            }
        },
        None => None,
    };
    let mut audit: Vec<AuditEntry> = load_table(store, Table::Audit)?;
    if audit.len() > AUDIT_IN_MEMORY {
        audit.drain(..audit.len() - AUDIT_IN_MEMORY);
    }
    Ok(Snapshot {
        devices: load_table(store, Table::Devices)?,
        slots: load_table(store, Table::Slots)?,
        orders,
        meta,
        household,
        audit,
    })
}

/// This installation's id, created on first use: the prefix of idempotency keys.
pub fn installation_id(store: &dyn Store) -> Result<String, StoreError> {
    if let Some(bytes) = store.get(Table::Meta, "installation")?
        && let Ok(id) = String::from_utf8(bytes)
    {
        return Ok(id);
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    store.put(Table::Meta, "installation", id.clone().into_bytes())?;
    store.flush()?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_stored_with_the_sandbox_wire_catalog_still_loads() {
        let legacy = r#"{"next_order_no":7,"catalog":{"items":[{"sku":"beans-500","name":"Beans",
            "consumable":"coffee_beans","pack_size":500.0,"unit":"g","price_cents":899,
            "currency":"EUR","stock":3}]},"lead_times":{}}"#;
        let meta = read_meta(legacy.as_bytes()).unwrap();
        assert_eq!(meta.next_order_no, 7);
        let offer = &meta.catalog.unwrap().offers[0];
        assert_eq!(
            offer.price,
            replenish_commerce::Money::new(899, replenish_commerce::Currency::EUR)
        );
        assert_eq!(offer.stock, 3);
        let garbled = read_meta(br#"{"next_order_no":7,"catalog":{"items":"?"}}"#).unwrap();
        assert_eq!((garbled.next_order_no, garbled.catalog), (7, None));
    }

    #[test]
    fn orders_stored_as_a_first_line_and_a_bundle_load_as_lines() {
        let legacy = r#"{"id":"o-000003","idempotency_key":"k","device":"coffee","slot":"beans",
            "consumable":"coffee_beans","sku":"beans-500","packs":2,"pack_size":500.0,"unit":"g",
            "total_cents":2036,"state":"placed","reason":"beans run low","created_at":1,
            "updated_at":2,"shop_order_id":"so-1","expected_delivery_at":3,"delivered_at":null,
            "attempts":1,"retry_at":null,"last_error":null,"currency":"GBP",
            "bundled":[{"device":"fridge","slot":"milk","consumable":"milk","sku":"milk-1l",
            "packs":2,"pack_size":1000.0,"unit":"ml","total_cents":238,"reason":"milk joins"}]}"#;
        let order = read_order(legacy.as_bytes()).unwrap();
        let gbp = replenish_commerce::Currency::new("GBP").unwrap();
        let lines: Vec<(&str, u32, u64)> = order
            .lines()
            .iter()
            .map(|l| (l.sku.as_str(), l.packs, l.total.minor))
            .collect();
        assert_eq!(lines, [("beans-500", 2, 1798), ("milk-1l", 2, 238)]);
        assert!(order.lines().iter().all(|l| l.total.currency == gbp));
        assert_eq!(order.total(), replenish_commerce::Money::new(2036, gbp));
        assert_eq!(order.first_line().reason, "beans run low");
        // Written back in the new shape, it reads the same.
        let again = read_order(&serde_json::to_vec(&order).unwrap()).unwrap();
        assert_eq!(again, order);
        // No currency stored: euro, as every order was before currencies.
        let euro = read_order(legacy.replace(r#""currency":"GBP","#, "").as_bytes()).unwrap();
        assert_eq!(euro.total().currency.code(), "EUR");
        // An order of no lines is no order.
        let mut empty = serde_json::to_value(&order).unwrap();
        empty["lines"] = serde_json::json!([]);
        assert!(read_order(&serde_json::to_vec(&empty).unwrap()).is_err());
    }

    fn round_trip(store: &dyn Store) {
        store.put(Table::Orders, "b", b"2".to_vec()).unwrap();
        store.put(Table::Orders, "a", b"1".to_vec()).unwrap();
        store.put(Table::Slots, "a", b"x".to_vec()).unwrap();
        store.flush().unwrap();
        assert_eq!(store.get(Table::Orders, "a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(store.get(Table::Orders, "zz").unwrap(), None);
        let keys: Vec<String> = store
            .scan(Table::Orders)
            .unwrap()
            .into_iter()
            .map(|e| e.0)
            .collect();
        assert_eq!(keys, ["a", "b"]);
    }

    #[test]
    fn memory_and_sled_behave_alike() {
        round_trip(&MemoryStore::default());
        let dir = tempfile::tempdir().unwrap();
        round_trip(&SledStore::open(dir.path(), 8 << 20).unwrap());
    }

    #[test]
    fn installation_id_is_stable_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let first = installation_id(&SledStore::open(dir.path(), 8 << 20).unwrap()).unwrap();
        let again = installation_id(&SledStore::open(dir.path(), 8 << 20).unwrap()).unwrap();
        assert_eq!(first, again);
        assert_ne!(first, installation_id(&MemoryStore::default()).unwrap());
    }

    #[test]
    fn unreadable_records_are_skipped_and_kept() {
        let store = MemoryStore::default();
        store
            .put(Table::Orders, "o-000009", b"{not json".to_vec())
            .unwrap();
        let snapshot = load_snapshot(&store).unwrap();
        assert!(snapshot.orders.is_empty());
        assert!(store.get(Table::Orders, "o-000009").unwrap().is_some());
    }
}
