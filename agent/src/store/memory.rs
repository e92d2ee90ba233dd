//! The in-memory twin of the store, for tests and throwaway simulator runs.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::{Store, StoreError, Table};

/// A store in memory. Lost when dropped.
#[derive(Debug, Default)]
pub struct MemoryStore {
    tables: Mutex<BTreeMap<(Table, String), Vec<u8>>>,
    journal: Mutex<Vec<Vec<u8>>>,
}

impl MemoryStore {
    fn tables(&self) -> std::sync::MutexGuard<'_, BTreeMap<(Table, String), Vec<u8>>> {
        // A panic while holding the lock cannot leave a half-written map: inserts are atomic.
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl MemoryStore {
    fn journal(&self) -> std::sync::MutexGuard<'_, Vec<Vec<u8>>> {
        self.journal.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Store for MemoryStore {
    fn put(&self, table: Table, key: &str, value: Vec<u8>) -> Result<(), StoreError> {
        self.tables().insert((table, key.to_string()), value);
        Ok(())
    }

    fn get(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tables().get(&(table, key.to_string())).cloned())
    }

    fn scan(&self, table: Table) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        Ok(self
            .tables()
            .iter()
            .filter(|((t, _), _)| *t == table)
            .map(|((_, k), v)| (k.clone(), v.clone()))
            .collect())
    }

    fn delete(&self, table: Table, key: &str) -> Result<(), StoreError> {
        self.tables().remove(&(table, key.to_string()));
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn journal_append(&self, entry: &[u8]) -> Result<(), StoreError> {
        self.journal().push(entry.to_vec());
        Ok(())
    }

    fn sync_journal(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn journal_entries(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        Ok(self.journal().clone())
    }

    fn clear_journal(&self) -> Result<(), StoreError> {
        self.journal().clear();
        Ok(())
    }
}
