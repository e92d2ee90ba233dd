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

/// How long opening waits for a lock this process's last database may still hold.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

fn backend(e: sled::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl SledStore {
    /// Opens (or creates) the database at `path` with a page cache of `cache_bytes`.
    pub fn open(path: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        make_private_dir(path)?;
        let config = sled::Config::new().path(path).cache_capacity(cache_bytes);
        // A database of this process that was just dropped holds its lock until sled's own
        // threads let go of the file (the simulator restarts its agent on the same data; tests
        // reopen): wait a little for that. Another live process keeps it: the error stands.
        let started = std::time::Instant::now();
        let db = loop {
            match config.open() {
                Ok(db) => break db,
                Err(sled::Error::Io(error))
                    if error.to_string().contains("could not acquire lock")
                        && started.elapsed() < LOCK_WAIT =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(error) => return Err(backend(error)),
            }
        };
        let mut trees = std::collections::HashMap::new();
        for table in Table::ALL {
            trees.insert(table, db.open_tree(table.name()).map_err(backend)?);
        }
        make_private_files(path)?;
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

/// The household's data is for the agent's user only: the directory is created (or set) 0700,
/// so that files sled creates later are out of reach of others whatever their mode.
fn make_private_dir(path: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        let private = |e: std::io::Error| {
            StoreError::Backend(format!("cannot make {} private: {e}", path.display()))
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .map_err(private)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(private)?;
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(path)
        .map_err(|e| StoreError::Backend(format!("cannot create {}: {e}", path.display())))?;
    Ok(())
}

/// Sets the files sled has made so far to 0600 (their directories 0700).
fn make_private_files(path: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mut dirs = vec![path.to_path_buf()];
        while let Some(dir) = dirs.pop() {
            let entries = std::fs::read_dir(&dir)
                .map_err(|e| StoreError::Backend(format!("cannot read {}: {e}", dir.display())))?;
            for entry in entries.flatten() {
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                let mode = if kind.is_dir() {
                    dirs.push(entry.path());
                    0o700
                } else if kind.is_file() {
                    0o600
                } else {
                    continue;
                };
                std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(mode))
                    .map_err(|e| {
                        StoreError::Backend(format!(
                            "cannot make {} private: {e}",
                            entry.path().display()
                        ))
                    })?;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_data_directory_is_0700_and_its_files_0600() {
        let parent = tempfile::tempdir().unwrap();
        let path = parent.path().join("data");
        // Even a directory that exists world-readable is made private.
        std::fs::create_dir(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        let store = SledStore::open(&path, 1 << 20).unwrap();
        store.put(Table::Meta, "k", b"v".to_vec()).unwrap();
        store.flush().unwrap();
        drop(store);
        let _reopened = SledStore::open(&path, 1 << 20).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o700);
        let mut files = 0;
        for entry in std::fs::read_dir(&path).unwrap().flatten() {
            if entry.file_type().unwrap().is_file() {
                files += 1;
                assert_eq!(mode(&entry.path()), 0o600, "{}", entry.path().display());
            }
        }
        assert!(files > 0, "sled wrote files");
    }
}
