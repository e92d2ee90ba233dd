//! The sled-backed store.
//!
//! sled buffers writes and syncs every 500 ms by default; the agent calls [`Store::flush`]
//! wherever durability matters (before an order leaves the house, before acknowledging MQTT
//! messages). Its page cache defaults to 1 GiB, so the size is always set explicitly.

use std::path::Path;

use super::{Store, StoreError, Table};

/// A store in a sled database directory.
#[derive(Debug, Clone)]
pub struct SledStore {
    db: sled::Db,
    /// The trees, opened once (opening looks the name up on every call).
    trees: std::collections::HashMap<Table, sled::Tree>,
}

fn backend(e: sled::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl SledStore {
    /// Opens (or creates) the database at `path` with a page cache of `cache_bytes`.
    pub fn open(path: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .open()
            .map_err(backend)?;
        let mut trees = std::collections::HashMap::new();
        for table in Table::ALL {
            trees.insert(table, db.open_tree(table.name()).map_err(backend)?);
        }
        Ok(Self { db, trees })
    }

    fn tree(&self, table: Table) -> Result<&sled::Tree, StoreError> {
        self.trees
            .get(&table)
            .ok_or_else(|| StoreError::Backend(format!("no tree {}", table.name())))
    }
}

impl Store for SledStore {
    fn put(&self, table: Table, key: &str, value: Vec<u8>) -> Result<(), StoreError> {
        self.tree(table)?
            .insert(key.as_bytes(), value)
            .map_err(backend)?;
        Ok(())
    }

    fn get(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .tree(table)?
            .get(key.as_bytes())
            .map_err(backend)?
            .map(|v| v.to_vec()))
    }

    fn scan(&self, table: Table) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.tree(table)?
            .iter()
            .map(|entry| {
                let (k, v) = entry.map_err(backend)?;
                Ok((String::from_utf8_lossy(&k).into_owned(), v.to_vec()))
            })
            .collect()
    }

    fn delete(&self, table: Table, key: &str) -> Result<(), StoreError> {
        self.tree(table)?.remove(key.as_bytes()).map_err(backend)?;
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map_err(backend)?;
        Ok(())
    }
}
