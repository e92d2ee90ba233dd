//! The store's format version, backups and restores.
//!
//! The format version lives in the meta table (`format`). A store without one was written
//! before versions existed (format 0); it is read as it is (every record of that time reads
//! with the current types, fields added since taking their defaults) and marked with the
//! current format on start. A store written by a newer version is refused, never changed.
//!
//! A backup is one JSON document: the format, then every table's records in key order, each
//! as the JSON it is stored as (or as text, for the few records that are plain text). It is a
//! consistent snapshot when made by the running agent's engine task (`GET /api/v1/backup`),
//! which owns the store, between two events.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Store, StoreError, Table};

/// The format this version writes. 1: the format mark; 2: the journal table
/// ([`super::journal`]), whose entries a format-1 agent would not apply; 3: device and slot
/// records in the journal in MessagePack, which a format-2 agent cannot read; 4: journal
/// operations holding only what a report changed in a device record, which a format-3 agent
/// cannot read.
pub const FORMAT: u32 = 4;

/// The meta key holding the format.
const FORMAT_KEY: &str = "format";

/// Why a store or a backup cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// Written by a newer version of the agent.
    #[error(
        "written by a newer replenish-agent (format {found}; this one reads up to {supported}): \
         run that version or newer; nothing was changed"
    )]
    Newer {
        /// The format found.
        found: u32,
        /// The newest this version reads.
        supported: u32,
    },
    /// The format record is unreadable.
    #[error("its format record is unreadable ({0:?}); nothing was changed")]
    Unreadable(String),
    /// A restore into a store that holds data.
    #[error("the store at the target already holds data: restore into an empty data directory")]
    NotEmpty,
    /// A backup record that cannot be written back.
    #[error("record {key} of {table} in the backup cannot be restored: {why}")]
    Record {
        /// The table.
        table: String,
        /// The key.
        key: String,
        /// Why.
        why: String,
    },
    /// The storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The format a store was written in: `None` for a new, empty store.
pub fn format_of(store: &dyn Store) -> Result<Option<u32>, FormatError> {
    match store.get(Table::Meta, FORMAT_KEY)? {
        Some(bytes) => {
            let text = String::from_utf8_lossy(&bytes).to_string();
            text.trim()
                .parse()
                .map(Some)
                .map_err(|_| FormatError::Unreadable(text))
        }
        None => {
            for table in Table::ALL {
                if !store.scan(table)?.is_empty() {
                    return Ok(Some(0));
                }
            }
            Ok(None)
        }
    }
}

/// Checks the store's format on start and brings an older one to [`FORMAT`]; the format it
/// was in. A newer format is refused and nothing is written.
pub fn open(store: &dyn Store) -> Result<u32, FormatError> {
    let found = format_of(store)?.unwrap_or(FORMAT);
    if found > FORMAT {
        return Err(FormatError::Newer {
            found,
            supported: FORMAT,
        });
    }
    if found < FORMAT {
        // Format 0 → 1 → 2 → 3: records are read as they are; only the mark is new (a store
        // of before 2 has no journal to apply, and a format-2 journal's JSON records are read
        // as they were).
        tracing::info!(from = found, to = FORMAT, "upgrading the store's format");
    }
    store.put(Table::Meta, FORMAT_KEY, FORMAT.to_string().into_bytes())?;
    store.flush()?;
    Ok(found)
}

/// One record of a backup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Record {
    /// Its key.
    pub key: String,
    /// Its value: the stored JSON, or (`text`) a string holding the stored text.
    pub value: serde_json::Value,
    /// Whether the value is stored as plain text rather than JSON.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub text: bool,
}

/// A whole store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Backup {
    /// The store's format.
    pub format: u32,
    /// Every table by name, its records in key order.
    pub tables: BTreeMap<String, Vec<Record>>,
}

/// Reads every record of the store, after applying what the last run left in the journal.
pub fn export(store: &dyn Store) -> Result<Backup, FormatError> {
    super::journal::recover(store)?;
    let format = format_of(store)?.unwrap_or(FORMAT);
    let mut tables = BTreeMap::new();
    for table in Table::ALL {
        let records = store
            .scan(table)?
            .into_iter()
            .map(|(key, bytes)| match serde_json::from_slice(&bytes) {
                Ok(value) => Record {
                    key,
                    value,
                    text: false,
                },
                Err(_) => Record {
                    key,
                    value: serde_json::Value::String(String::from_utf8_lossy(&bytes).into()),
                    text: true,
                },
            })
            .collect();
        tables.insert(table.name().to_string(), records);
    }
    Ok(Backup { format, tables })
}

/// Writes a backup into an empty store, in the backup's format (which [`open`] then brings up
/// to date). A backup from a newer version is refused.
pub fn restore(store: &dyn Store, backup: &Backup) -> Result<(), FormatError> {
    if backup.format > FORMAT {
        return Err(FormatError::Newer {
            found: backup.format,
            supported: FORMAT,
        });
    }
    if format_of(store)?.is_some() {
        return Err(FormatError::NotEmpty);
    }
    for (name, records) in &backup.tables {
        let table = Table::ALL
            .into_iter()
            .find(|t| t.name() == name)
            .ok_or_else(|| FormatError::Record {
                table: name.clone(),
                key: String::new(),
                why: "no such table".into(),
            })?;
        for record in records {
            let bytes = match (&record.value, record.text) {
                (serde_json::Value::String(text), true) => text.clone().into_bytes(),
                (value, false) => serde_json::to_vec(value).map_err(|e| FormatError::Record {
                    table: name.clone(),
                    key: record.key.clone(),
                    why: e.to_string(),
                })?,
                (_, true) => {
                    return Err(FormatError::Record {
                        table: name.clone(),
                        key: record.key.clone(),
                        why: "a text record must hold a string".into(),
                    });
                }
            };
            store.put(table, &record.key, bytes)?;
        }
    }
    if backup.format > 0 {
        store.put(
            Table::Meta,
            FORMAT_KEY,
            backup.format.to_string().into_bytes(),
        )?;
    }
    store.flush()?;
    Ok(())
}

/// The household's history, for the household to keep: orders, deliveries, levels and the
/// audit trail, without members' token hashes or the agent's internals.
pub fn history(backup: &Backup) -> serde_json::Value {
    let values = |table: &str| -> Vec<serde_json::Value> {
        backup
            .tables
            .get(table)
            .map(|records| records.iter().map(|r| r.value.clone()).collect())
            .unwrap_or_default()
    };
    serde_json::json!({
        "format": backup.format,
        "orders": values("orders"),
        "audit": values("audit"),
        "slots": values("slots"),
        "devices": values("devices"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    #[test]
    fn a_new_store_is_marked_an_old_one_upgraded_a_newer_one_refused() {
        let fresh = MemoryStore::default();
        assert_eq!(format_of(&fresh).unwrap(), None);
        assert_eq!(open(&fresh).unwrap(), FORMAT);
        assert_eq!(format_of(&fresh).unwrap(), Some(FORMAT));

        let old = MemoryStore::default();
        old.put(Table::Orders, "o-000001", b"{}".to_vec()).unwrap();
        assert_eq!(format_of(&old).unwrap(), Some(0));
        assert_eq!(open(&old).unwrap(), 0);
        assert_eq!(format_of(&old).unwrap(), Some(FORMAT));

        let newer = MemoryStore::default();
        newer.put(Table::Meta, FORMAT_KEY, b"99".to_vec()).unwrap();
        newer
            .put(Table::Orders, "o-000001", b"{}".to_vec())
            .unwrap();
        let error = open(&newer).unwrap_err();
        assert!(
            matches!(error, FormatError::Newer { found: 99, .. }),
            "{error}"
        );
        assert!(
            error.to_string().contains("newer replenish-agent"),
            "{error}"
        );
        assert_eq!(
            newer.get(Table::Meta, FORMAT_KEY).unwrap().as_deref(),
            Some(&b"99"[..]),
            "nothing was changed"
        );
    }

    #[test]
    fn a_backup_restores_the_same_records_and_refuses_what_it_must() {
        let store = MemoryStore::default();
        open(&store).unwrap();
        store
            .put(Table::Meta, "installation", b"abc123".to_vec())
            .unwrap();
        store
            .put(Table::Orders, "o-000001", br#"{"id":"o-000001"}"#.to_vec())
            .unwrap();
        let backup = export(&store).unwrap();
        let text = serde_json::to_string(&backup).unwrap();
        let read: Backup = serde_json::from_str(&text).unwrap();
        let copy = MemoryStore::default();
        restore(&copy, &read).unwrap();
        for table in Table::ALL {
            assert_eq!(
                store.scan(table).unwrap(),
                copy.scan(table).unwrap(),
                "{table:?}"
            );
        }
        assert!(matches!(restore(&copy, &read), Err(FormatError::NotEmpty)));
        let newer = Backup {
            format: FORMAT + 1,
            ..read
        };
        assert!(matches!(
            restore(&MemoryStore::default(), &newer),
            Err(FormatError::Newer { .. })
        ));
    }
}
