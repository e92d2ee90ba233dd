//! A store that runs a hook before each durable write of another: a disk that is slow, full
//! or held, for tests and benchmarks of what the engine does meanwhile.

use super::{Store, StoreError, Table};

/// The durable write a hook runs before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurableWrite {
    /// [`Store::flush`].
    Flush,
    /// [`Store::sync_journal`].
    JournalSync,
}

/// What runs before a durable write; an error is that write's error (the inner store is not
/// asked).
pub type BeforeDurableWrite = Box<dyn Fn(DurableWrite) -> Result<(), StoreError> + Send + Sync>;

/// `inner`, with `before` run ahead of each of its flushes and journal syncs; every other call
/// goes straight through.
pub struct Hooked<S> {
    inner: S,
    before: BeforeDurableWrite,
}

impl<S: Store> Hooked<S> {
    /// `inner` with `before` ahead of its durable writes.
    pub fn new(
        inner: S,
        before: impl Fn(DurableWrite) -> Result<(), StoreError> + Send + Sync + 'static,
    ) -> Self {
        Self {
            inner,
            before: Box::new(before),
        }
    }

    /// The store underneath, to look at without the hook.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: Store> Store for Hooked<S> {
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
        (self.before)(DurableWrite::Flush)?;
        self.inner.flush()
    }
    fn journal_append(&self, entry: &[u8]) -> Result<(), StoreError> {
        self.inner.journal_append(entry)
    }
    fn sync_journal(&self) -> Result<(), StoreError> {
        (self.before)(DurableWrite::JournalSync)?;
        self.inner.sync_journal()
    }
    fn journal_entries(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        self.inner.journal_entries()
    }
    fn clear_journal(&self) -> Result<(), StoreError> {
        self.inner.clear_journal()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
    use std::sync::Mutex;

    #[test]
    fn the_hook_runs_before_durable_writes_only_and_its_error_stops_them() {
        let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let store = Hooked::new(MemoryStore::default(), move |write| {
            log.lock().unwrap().push(write);
            match write {
                DurableWrite::Flush => Err(StoreError::Backend("disk full".into())),
                DurableWrite::JournalSync => Ok(()),
            }
        });
        store.put(Table::Meta, "k", b"v".to_vec()).unwrap();
        store.journal_append(b"entry").unwrap();
        assert!(store.flush().is_err(), "the hook's error is the flush's");
        store.sync_journal().unwrap();
        assert_eq!(
            *seen.lock().unwrap(),
            [DurableWrite::Flush, DurableWrite::JournalSync]
        );
        assert_eq!(
            store.inner().journal_entries().unwrap(),
            [b"entry".to_vec()]
        );
    }
}
