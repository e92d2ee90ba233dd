//! The write-ahead journal: one append and one sync per batch instead of a sled insert per
//! record.
//!
//! A report changes its device's record and its slot's: written one by one into sled, those two
//! inserts were two thirds of the agent's time per report (bench ingest). Instead, each batch's
//! changed records are appended to the journal ([`Store::journal_append`], a plain file beside
//! sled's) and synced before the batch is acknowledged; the tables themselves are brought up to
//! date at a *checkpoint*, once the journal holds [`CHECKPOINT_BYTES`], where each record
//! changed since the last one is written once, however many reports changed it. Device and slot
//! records are never copied for that: the engine's effects name them, and a commit (and a
//! checkpoint) encodes the engine's copy as it is then, the newest. (A journal inside
//! sled was tried first: as fast, but sled kept the entries in memory, +5 MiB at 1,000 devices.)
//! The sync, half of the time per batch, runs off the engine task while it handles the next
//! batch ([`Journal::write`]); the next entry is appended only once it is done, so at most one
//! entry is ever unsynced and a crash can tear only the last.
//!
//! On start, [`recover`] applies the journal's entries in order to the tables (each entry is a
//! list of record writes and deletions, so applying one twice is harmless), flushes, and then
//! empties it. A damaged entry before the last stops the agent with an error and the journal
//! is kept: it is never dropped silently.
//!
//! Order: a checkpoint writes the tables and flushes sled *before* emptying the journal, so a
//! crash at any point leaves either the entries (applied again on start) or the tables they
//! produced.
//!
//! Entry format (little-endian), a sequence of operations:
//! `table: u8, key_len: u32, key, present: u8, [value_len: u32, value]`, where `present` is 0
//! for a deletion, 1 for a value as the tables hold it (JSON), 2 for a device or slot record in
//! MessagePack (encoding JSON was a quarter of the agent's time per report; recovery turns
//! them into JSON for the tables), 3 for only what a report changes in a device record (its
//! de-dup state and when it was last heard, [`Effect::SaveDeviceSeen`]), in MessagePack:
//! recovery applies it to the record as the tables hold it by then (the whole record was
//! journaled with the birth that made it, or written at a checkpoint). Re-encoding the whole
//! device record, birth and all, for every report was half the cost of journaling one.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use foldhash::fast::RandomState;

use super::{
    EngineRecord, Store, StoreError, Table, audit_key, compact_seen_into, compact_to_json,
    encode_json, seen_onto_json,
};
use crate::engine::Effect;
use crate::internal_events::{Checkpointed, emit};

/// Journal bytes after which the tables are brought up to date.
pub const CHECKPOINT_BYTES: usize = 16 << 20;

/// The engine's current encoding of a device or slot record, by table and key (`None`: it is
/// gone), asked for at a commit and a checkpoint.
pub type CurrentRecord<'a> = dyn Fn(Table, &str) -> Option<EngineRecord<'a>> + 'a;

/// One record written (`Some`) or deleted (`None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordOp {
    /// Its table.
    pub table: Table,
    /// Its key.
    pub key: String,
    /// Its new value, or `None` when it is deleted.
    pub value: Option<Vec<u8>>,
}

/// The record writes a storage effect stands for (none for other effects); device and slot
/// records as `current` encodes them.
pub fn record_ops(
    effect: &Effect,
    current: &CurrentRecord<'_>,
) -> Result<Vec<RecordOp>, StoreError> {
    let put = |table: Table, key: String, value: Vec<u8>| RecordOp {
        table,
        key,
        value: Some(value),
    };
    Ok(match effect {
        Effect::SaveDevice(id) | Effect::SaveDeviceSeen(id) => {
            vec![engine_op(Table::Devices, id.as_str(), current)?]
        }
        Effect::SaveSlot(key) => vec![engine_op(Table::Slots, key, current)?],
        Effect::SaveOrder(o) => vec![put(
            Table::Orders,
            o.id.to_string(),
            encode_json(Table::Orders, &o.id, o)?,
        )],
        Effect::SaveMeta(m) => vec![put(
            Table::Meta,
            "engine".into(),
            encode_json(Table::Meta, "engine", m)?,
        )],
        Effect::SaveHousehold(h) => vec![put(
            Table::Household,
            "household".into(),
            encode_json(Table::Household, "household", h)?,
        )],
        Effect::Audit(entry) => {
            let key = audit_key(entry.seq);
            let value = encode_json(Table::Audit, &key, entry)?;
            vec![put(Table::Audit, key, value)]
        }
        Effect::DeleteDevice { device, slots } => {
            let mut ops = vec![RecordOp {
                table: Table::Devices,
                key: device.to_string(),
                value: None,
            }];
            ops.extend(slots.iter().map(|key| RecordOp {
                table: Table::Slots,
                key: key.to_string(),
                value: None,
            }));
            ops
        }
        _ => Vec::new(),
    })
}

/// Writes the engine's record under `key` as JSON, or deletes it when the engine has none.
fn engine_op(table: Table, key: &str, current: &CurrentRecord<'_>) -> Result<RecordOp, StoreError> {
    Ok(RecordOp {
        table,
        key: key.to_string(),
        value: current(table, key)
            .map(|record| record.json(table, key))
            .transpose()?,
    })
}

/// Applies record operations to the tables.
pub fn apply(store: &dyn Store, ops: &[RecordOp]) -> Result<(), StoreError> {
    for op in ops {
        match &op.value {
            Some(value) => store.put(op.table, &op.key, value.clone())?,
            None => store.delete(op.table, &op.key)?,
        }
    }
    Ok(())
}

/// An operation's table, key and presence byte.
fn encode_op_head(table: Table, key: &str, present: u8, out: &mut Vec<u8>) {
    out.push(table.code());
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(key.as_bytes());
    out.push(present);
}

fn encode_op(op: &RecordOp, out: &mut Vec<u8>) {
    match &op.value {
        Some(value) => {
            encode_op_head(op.table, &op.key, 1, out);
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
            out.extend_from_slice(value);
        }
        None => encode_op_head(op.table, &op.key, 0, out),
    }
}

/// Appends an operation whose value `encode` writes compactly (presence byte 2 or 3); on
/// failure `out` is left as it was.
fn encode_compact_op(
    table: Table,
    key: &str,
    present: u8,
    out: &mut Vec<u8>,
    encode: impl FnOnce(&mut Vec<u8>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let start = out.len();
    encode_op_head(table, key, present, out);
    let length_at = out.len();
    out.extend_from_slice(&[0; 4]);
    if let Err(error) = encode(out) {
        out.truncate(start);
        return Err(error);
    }
    let length = (out.len() - length_at - 4) as u32;
    out[length_at..length_at + 4].copy_from_slice(&length.to_le_bytes());
    Ok(())
}

/// Reads one journal entry back (compact records as the JSON the tables hold); what a report
/// changed in a device record is applied to the record `store` holds, so apply the entries
/// before this one first.
pub fn decode_entry(mut bytes: &[u8], store: &dyn Store) -> Result<Vec<RecordOp>, String> {
    fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
        if bytes.len() < n {
            return Err(format!("cut short: {n} bytes wanted, {} left", bytes.len()));
        }
        let (head, rest) = bytes.split_at(n);
        *bytes = rest;
        Ok(head)
    }
    fn length(bytes: &mut &[u8]) -> Result<usize, String> {
        let raw = take(bytes, 4)?;
        let mut word = [0u8; 4];
        word.copy_from_slice(raw);
        Ok(u32::from_le_bytes(word) as usize)
    }
    let mut ops = Vec::new();
    while !bytes.is_empty() {
        let code = take(&mut bytes, 1)?[0];
        let table = Table::from_code(code).ok_or_else(|| format!("no table {code}"))?;
        let key_len = length(&mut bytes)?;
        let key = String::from_utf8(take(&mut bytes, key_len)?.to_vec())
            .map_err(|_| "a key is not UTF-8".to_string())?;
        let value = match take(&mut bytes, 1)?[0] {
            0 => None,
            1 => {
                let len = length(&mut bytes)?;
                Some(take(&mut bytes, len)?.to_vec())
            }
            2 => {
                let len = length(&mut bytes)?;
                Some(compact_to_json(table, take(&mut bytes, len)?)?)
            }
            3 => {
                let len = length(&mut bytes)?;
                let seen = take(&mut bytes, len)?;
                let whole = store
                    .get(table, &key)
                    .map_err(|e| format!("reading {key} to update it: {e}"))?;
                // No record: the device was deleted since, and what it last saw goes with it.
                let Some(whole) = whole else { continue };
                Some(seen_onto_json(&whole, seen)?)
            }
            other => return Err(format!("bad presence byte {other}")),
        };
        ops.push(RecordOp { table, key, value });
    }
    Ok(ops)
}

/// Applies what an earlier run left in the journal (it stopped without a checkpoint) and
/// empties it; the number of entries applied.
pub fn recover(store: &dyn Store) -> Result<usize, StoreError> {
    let entries = store.journal_entries()?;
    if entries.is_empty() {
        return Ok(0);
    }
    for (n, bytes) in entries.iter().enumerate() {
        let ops = decode_entry(bytes, store).map_err(|why| {
            StoreError::Backend(format!(
                "journal entry {n} is unreadable ({why}); the journal is kept as it is for recovery"
            ))
        })?;
        apply(store, &ops)?;
    }
    store.flush()?;
    store.clear_journal()?;
    tracing::info!(
        entries = entries.len(),
        "applied the journal of the last run"
    );
    Ok(entries.len())
}

/// What waits to be written: the newest save of each record since the last commit.
#[derive(Debug)]
enum Staged {
    /// A device or slot record, encoded from the engine at commit (a batch may change it many
    /// times).
    FromEngine,
    /// Only what a report changes in a device record ([`Effect::SaveDeviceSeen`]), encoded
    /// from the engine at commit.
    DeviceSeen,
    /// Any other record, encoded already.
    Op(Option<Vec<u8>>),
}

/// A record changed since the last checkpoint.
#[derive(Debug)]
enum Dirty {
    /// A device or slot: encoded again from the engine's state at the checkpoint.
    FromEngine,
    /// Any other record: its newest value (or its deletion).
    Value(Option<Vec<u8>>),
}

/// The write-ahead journal of one running agent. Owned by the engine task.
#[derive(Debug, Default)]
pub struct Journal {
    staged: HashMap<(Table, String), Staged, RandomState>,
    dirty: HashMap<(Table, String), Dirty, RandomState>,
    /// Entries appended since the last checkpoint.
    entries: usize,
    /// Bytes appended since the last checkpoint.
    bytes: usize,
    /// A commit failed: the file may end in a torn entry that later ones would follow, so the
    /// next commit that succeeds checkpoints (and so empties the file).
    failed: bool,
    /// Entries appended, and of those the ones known durable ([`Journal::synced`]), since the
    /// journal was made: the difference is at most one entry, being synced off the engine task.
    appended: u64,
    synced_through: u64,
}

impl Journal {
    /// A journal for a store whose journal [`recover`] emptied.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes a storage effect, to be written at the next [`Journal::commit`]; any other effect
    /// is handed back.
    pub fn stage(&mut self, effect: Effect) -> Result<Option<Effect>, StoreError> {
        let from_engine = match &effect {
            Effect::SaveDevice(device) => {
                Some((Table::Devices, device.as_str(), Staged::FromEngine))
            }
            Effect::SaveDeviceSeen(device) => {
                Some((Table::Devices, device.as_str(), Staged::DeviceSeen))
            }
            Effect::SaveSlot(slot) => Some((Table::Slots, slot.as_str(), Staged::FromEngine)),
            _ => None,
        };
        if let Some((table, key, staged)) = from_engine {
            match self.staged.entry((table, key.to_owned())) {
                // Whatever else is staged for the device already covers what a report changed
                // (a whole record), or cannot be followed by a report (a deletion).
                Entry::Occupied(_) if matches!(staged, Staged::DeviceSeen) => {}
                Entry::Occupied(mut waiting) => {
                    waiting.insert(staged);
                }
                Entry::Vacant(slot) => {
                    slot.insert(staged);
                }
            }
            return Ok(None);
        }
        // Not a device or slot: nothing to ask the engine for.
        let ops = record_ops(&effect, &|_, _| None)?;
        if ops.is_empty() {
            return Ok(Some(effect));
        }
        for op in ops {
            self.staged.insert((op.table, op.key), Staged::Op(op.value));
        }
        Ok(None)
    }

    /// Whether anything waits to be committed.
    pub fn has_staged(&self) -> bool {
        !self.staged.is_empty()
    }

    /// Writes what was staged to the journal and makes it durable (one flush). Past
    /// [`CHECKPOINT_BYTES`] it then brings the tables up to date, asking `current` for the
    /// engine's encoding of each changed device and slot record.
    pub fn commit(
        &mut self,
        store: &dyn Store,
        current: &CurrentRecord<'_>,
    ) -> Result<(), StoreError> {
        // An entry still syncing off the engine task is made durable before another follows
        // it, so a crash can only ever tear the last entry (which recovery leaves out).
        self.sync(store)?;
        self.write(store, current)?;
        self.sync(store)
    }

    /// Writes what was staged to the journal without waiting for it to be durable: the
    /// caller syncs it ([`Store::sync_journal`], off the engine task) and then reports
    /// [`Journal::synced`] with the [`Journal::appended`] it read before. Call only while
    /// nothing is [`Journal::unsynced`]. Past [`CHECKPOINT_BYTES`] it brings the tables up to
    /// date as [`Journal::commit`] does.
    pub fn write(
        &mut self,
        store: &dyn Store,
        current: &CurrentRecord<'_>,
    ) -> Result<(), StoreError> {
        let written = self.append_staged(store, current);
        if written.is_err() {
            self.failed = true;
        }
        written?;
        if self.bytes >= CHECKPOINT_BYTES || self.failed {
            self.checkpoint(store, current)?;
            self.failed = false;
        }
        Ok(())
    }

    /// Entries appended so far (what a sync started now covers).
    pub fn appended(&self) -> u64 {
        self.appended
    }

    /// Whether an appended entry is not yet known durable.
    pub fn unsynced(&self) -> bool {
        self.synced_through < self.appended
    }

    /// What a sync of the entries up to `through` ([`Journal::appended`] when it started)
    /// ended with. A failure leaves them unsynced and makes the next write checkpoint.
    pub fn synced(&mut self, through: u64, result: &Result<(), StoreError>) {
        match result {
            Ok(()) => self.synced_through = self.synced_through.max(through),
            Err(_) => self.failed = true,
        }
    }

    /// Syncs here, on the caller's thread, what is not yet known durable.
    fn sync(&mut self, store: &dyn Store) -> Result<(), StoreError> {
        if !self.unsynced() {
            return Ok(());
        }
        let through = self.appended;
        let synced = store.sync_journal();
        self.synced(through, &synced);
        synced
    }

    fn append_staged(
        &mut self,
        store: &dyn Store,
        current: &CurrentRecord<'_>,
    ) -> Result<(), StoreError> {
        let mut entry = Vec::new();
        let mut failure = None;
        for (key, staged) in std::mem::take(&mut self.staged) {
            // Marked dirty whatever happens next, so a checkpoint writes it in any case.
            if let Staged::Op(value) = staged {
                self.dirty.insert(key.clone(), Dirty::Value(value.clone()));
                let (table, key) = key;
                encode_op(&RecordOp { table, key, value }, &mut entry);
                continue;
            }
            self.dirty.insert(key.clone(), Dirty::FromEngine);
            let (table, name) = (key.0, key.1.as_str());
            let encoded = match current(table, name) {
                Some(EngineRecord::Device(device)) if matches!(staged, Staged::DeviceSeen) => {
                    encode_compact_op(table, name, 3, &mut entry, |out| {
                        compact_seen_into(device, name, out)
                    })
                }
                Some(record) => encode_compact_op(table, name, 2, &mut entry, |out| {
                    record.compact_into(table, name, out)
                }),
                // Gone from the engine: deleted.
                None => {
                    encode_op_head(table, name, 0, &mut entry);
                    Ok(())
                }
            };
            if let Err(error) = encoded {
                failure = Some(error);
            }
        }
        if let Some(error) = failure {
            return Err(error);
        }
        if !entry.is_empty() {
            self.bytes += entry.len();
            self.entries += 1;
            store.journal_append(&entry)?;
            self.appended += 1;
        }
        Ok(())
    }

    /// Writes every record changed since the last checkpoint to its table, flushes, and drops
    /// the journal entries that covered them. Call [`Journal::commit`] first.
    pub fn checkpoint(
        &mut self,
        store: &dyn Store,
        current: &CurrentRecord<'_>,
    ) -> Result<(), StoreError> {
        if self.entries == 0 && !self.failed {
            return Ok(());
        }
        // The last entry is made durable before any table holds what it brought: sled may
        // write the tables out at any time, and tables ahead of a journal whose last entry a
        // power cut tore would keep part of a batch that was never acknowledged (its messages,
        // delivered again, could then count twice).
        self.sync(store)?;
        let records = self.dirty.len();
        // Kept until the journal is emptied: a failure half-way leaves every record dirty, to
        // be written by the next checkpoint.
        // In key order: sled then fills its leaves one after another instead of touching every
        // page at once (10,000 devices: 94 MiB resident after a checkpoint instead of 105).
        let mut order: Vec<_> = self.dirty.iter().collect();
        order.sort_unstable_by(|a, b| a.0.cmp(b.0));
        for ((table, key), dirty) in order {
            let value = match dirty {
                Dirty::FromEngine => engine_op(*table, key, current)?.value,
                Dirty::Value(value) => value.clone(),
            };
            match value {
                Some(value) => store.put(*table, key, value)?,
                None => store.delete(*table, key)?,
            }
        }
        store.flush()?;
        store.clear_journal()?;
        // What the entries held is in the flushed tables now.
        self.synced_through = self.appended;
        self.dirty.clear();
        emit(Checkpointed {
            records,
            entries: self.entries,
            bytes: self.bytes,
        });
        self.entries = 0;
        self.bytes = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn op(table: Table, key: &str, value: Option<&str>) -> RecordOp {
        RecordOp {
            table,
            key: key.into(),
            value: value.map(|v| v.as_bytes().to_vec()),
        }
    }

    #[test]
    fn entries_read_back_and_refuse_garbage() {
        let ops = vec![
            op(Table::Devices, "coffee", Some("{\"id\":\"coffee\"}")),
            op(Table::Slots, "coffee/beans", None),
            op(Table::Audit, "", Some("")),
        ];
        let mut bytes = Vec::new();
        for o in &ops {
            encode_op(o, &mut bytes);
        }
        let store = MemoryStore::default();
        assert_eq!(decode_entry(&bytes, &store).unwrap(), ops);
        assert!(decode_entry(&bytes[..bytes.len() - 1], &store).is_err());
        assert!(decode_entry(&[42], &store).is_err());
        // A compact record reads back as the tables' JSON; one that is not MessagePack of a
        // device is refused, not stored as garbage.
        let coffee = device(7);
        let mut compact = Vec::new();
        encode_compact_op(Table::Devices, "coffee", 2, &mut compact, |out| {
            EngineRecord::Device(&coffee).compact_into(Table::Devices, "coffee", out)
        })
        .unwrap();
        let read = decode_entry(&compact, &store).unwrap();
        assert_eq!(read[0].value, Some(serde_json::to_vec(&coffee).unwrap()));
        let mut garbage = compact[..compact.len() - 8].to_vec();
        let at = 1 + 4 + "coffee".len() + 1;
        let length = (garbage.len() - at - 4) as u32;
        garbage[at..at + 4].copy_from_slice(&length.to_le_bytes());
        assert!(decode_entry(&garbage, &store).is_err(), "a cut record");
    }

    #[test]
    fn what_a_report_changed_is_journaled_alone_and_applied_to_the_stored_record() {
        let store = MemoryStore::default();
        let mut journal = Journal::new();
        let coffee = || replenish_protocol::DeviceId::new("coffee").unwrap();
        // A birth and a report in one batch: the whole record, once.
        journal.stage(Effect::SaveDevice(coffee())).unwrap();
        journal.stage(Effect::SaveDeviceSeen(coffee())).unwrap();
        let born = device(1);
        journal
            .commit(&store, &|_, _| Some(EngineRecord::Device(&born)))
            .unwrap();
        // Then reports only: what they changed, not the birth again.
        let mut heard = device(5);
        heard.dedup.birth(1);
        heard.dedup.accept(1, 1);
        heard.dedup.accept(1, 3);
        journal.stage(Effect::SaveDeviceSeen(coffee())).unwrap();
        journal.stage(Effect::SaveDeviceSeen(coffee())).unwrap();
        journal
            .commit(&store, &|_, _| Some(EngineRecord::Device(&heard)))
            .unwrap();
        let entries = store.journal_entries().unwrap();
        assert_eq!(entries.len(), 2);
        let present = |entry: &[u8]| entry[1 + 4 + "coffee".len()];
        assert_eq!(present(&entries[0]), 2, "the whole record");
        assert_eq!(present(&entries[1]), 3, "what the reports changed");
        assert!(
            // (This birth declares no slots, so even the whole record is small here.)
            entries[1].len() < entries[0].len(),
            "{} bytes for a report, {} for the whole record",
            entries[1].len(),
            entries[0].len()
        );
        // A crash: recovery gives back the whole record as the engine holds it.
        assert_eq!(recover(&store).unwrap(), 2);
        assert_eq!(
            store.get(Table::Devices, "coffee").unwrap(),
            Some(serde_json::to_vec(&heard).unwrap())
        );
        // Over a deleted record there is nothing to change: it stays deleted.
        store.delete(Table::Devices, "coffee").unwrap();
        store.journal_append(&entries[1]).unwrap();
        assert_eq!(recover(&store).unwrap(), 1);
        assert_eq!(store.get(Table::Devices, "coffee").unwrap(), None);
    }

    #[test]
    fn recovery_applies_entries_in_order_and_empties_the_journal() {
        let store = MemoryStore::default();
        store
            .put(Table::Slots, "coffee/beans", b"old".to_vec())
            .unwrap();
        let mut first = Vec::new();
        encode_op(&op(Table::Devices, "coffee", Some("v1")), &mut first);
        encode_op(&op(Table::Slots, "coffee/beans", None), &mut first);
        let mut second = Vec::new();
        encode_op(&op(Table::Devices, "coffee", Some("v2")), &mut second);
        store.journal_append(&first).unwrap();
        store.journal_append(&second).unwrap();
        assert_eq!(recover(&store).unwrap(), 2);
        assert_eq!(
            store.get(Table::Devices, "coffee").unwrap(),
            Some(b"v2".to_vec())
        );
        assert_eq!(store.get(Table::Slots, "coffee/beans").unwrap(), None);
        assert!(store.journal_entries().unwrap().is_empty());
        assert_eq!(recover(&store).unwrap(), 0);
    }

    fn device(last_seen: u64) -> crate::engine::inventory::DeviceState {
        use replenish_protocol::{Birth, DeviceId, Id};
        let birth = Birth {
            model: Id::new("coffee-maker").unwrap(),
            firmware: "0.1.0".try_into().unwrap(),
            boot: 1,
            slots: Default::default(),
            buffer: None,
            usage: None,
        };
        crate::engine::inventory::DeviceState::new(
            DeviceId::new("coffee").unwrap(),
            birth.into(),
            last_seen,
        )
    }

    fn stored_last_seen(store: &dyn Store) -> Option<u64> {
        let bytes = store.get(Table::Devices, "coffee").unwrap()?;
        let d: crate::engine::inventory::DeviceState = serde_json::from_slice(&bytes).unwrap();
        Some(d.last_seen)
    }

    #[test]
    fn a_commit_is_in_the_journal_only_and_a_crash_then_recovers_it() {
        let store = MemoryStore::default();
        let mut journal = Journal::new();
        let coffee = || Effect::SaveDevice(replenish_protocol::DeviceId::new("coffee").unwrap());
        for _ in 0..2 {
            assert!(journal.stage(coffee()).unwrap().is_none());
        }
        let other = Effect::Notice(crate::engine::Notice {
            at: 0,
            kind: crate::engine::NoticeKind::DeviceOffline,
            subject: "coffee".into(),
            text: String::new(),
        });
        assert!(
            journal.stage(other).unwrap().is_some(),
            "not a storage effect"
        );
        // The engine's copy when the batch commits (it saw two reports), asked for once.
        let asked = std::cell::Cell::new(0);
        let second = device(2);
        let engine = |table, key: &str| {
            assert_eq!((table, key), (Table::Devices, "coffee"));
            asked.set(asked.get() + 1);
            Some(EngineRecord::Device(&second))
        };
        journal.commit(&store, &engine).unwrap();
        assert_eq!(
            asked.get(),
            1,
            "one record per batch, however often it changed"
        );
        assert!(!journal.has_staged());
        // Durable in the journal, one entry holding the newest copy; not in the table yet.
        assert_eq!(store.journal_entries().unwrap().len(), 1);
        assert_eq!(stored_last_seen(&store), None);
        // The agent dies here; the next start applies the journal.
        let snapshot = crate::store::load_snapshot(&store).unwrap();
        assert_eq!(snapshot.devices.len(), 1);
        assert_eq!(snapshot.devices[0].last_seen, 2);
        assert!(store.journal_entries().unwrap().is_empty());
    }

    #[test]
    fn a_checkpoint_writes_the_engines_newest_copy_and_empties_the_journal() {
        let store = MemoryStore::default();
        let mut journal = Journal::new();
        journal
            .stage(Effect::SaveDevice(
                replenish_protocol::DeviceId::new("coffee").unwrap(),
            ))
            .unwrap();
        let third = device(3);
        journal
            .commit(&store, &|_, _| Some(EngineRecord::Device(&third)))
            .unwrap();
        let newest = device(4);
        journal
            .checkpoint(&store, &|table, key| {
                assert_eq!((table, key), (Table::Devices, "coffee"));
                Some(EngineRecord::Device(&newest))
            })
            .unwrap();
        assert_eq!(stored_last_seen(&store), Some(4));
        assert!(store.journal_entries().unwrap().is_empty());
        // A deletion journaled later wins over the record.
        journal
            .stage(Effect::DeleteDevice {
                device: replenish_protocol::DeviceId::new("coffee").unwrap(),
                slots: Vec::new(),
            })
            .unwrap();
        journal.commit(&store, &|_, _| None).unwrap();
        crate::store::load_snapshot(&store).unwrap();
        assert_eq!(stored_last_seen(&store), None);
    }

    #[test]
    fn a_checkpoint_makes_the_last_entry_durable_before_writing_the_tables() {
        use crate::store::{DurableWrite, Hooked};
        use std::sync::{Arc, Mutex};
        let order = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&order);
        let store = Hooked::new(MemoryStore::default(), move |write| {
            seen.lock().unwrap().push(write);
            Ok(())
        });
        let mut journal = Journal::new();
        let coffee = replenish_protocol::DeviceId::new("coffee").unwrap();
        journal.stage(Effect::SaveDevice(coffee)).unwrap();
        let heard = device(3);
        let current = |_, _: &str| Some(EngineRecord::Device(&heard));
        // Appended, its sync left to the caller (off the engine task), and a checkpoint now.
        journal.write(&store, &current).unwrap();
        assert!(journal.unsynced());
        journal.checkpoint(&store, &current).unwrap();
        assert_eq!(
            *order.lock().unwrap(),
            [DurableWrite::JournalSync, DurableWrite::Flush]
        );
        assert!(!journal.unsynced());
        assert_eq!(stored_last_seen(&store), Some(3));
    }

    #[test]
    fn an_unreadable_entry_stops_recovery_and_is_kept() {
        let store = MemoryStore::default();
        store.journal_append(&[99]).unwrap();
        let error = recover(&store).unwrap_err().to_string();
        assert!(error.contains("kept"), "{error}");
        assert_eq!(store.journal_entries().unwrap().len(), 1);
    }
}
