//! The sled-backed store.
//!
//! sled buffers writes and syncs every 500 ms by default; the agent calls [`Store::flush`]
//! wherever durability matters (before an order leaves the house, before acknowledging MQTT
//! messages). Its page cache defaults to 1 GiB, so the size is always set explicitly.
//!
//! The write-ahead journal ([`super::journal`]) is a file of its own in the same directory,
//! `journal.log`: frames of `length: u32, crc32: u32, bytes`, appended, synced with
//! `fdatasync`, truncated at each checkpoint.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::{Store, StoreError, Table};

/// A store in a sled database directory.
#[derive(Debug, Clone)]
pub struct SledStore {
    db: sled::Db,
    /// The trees, opened once (opening looks the name up on every call).
    trees: std::collections::HashMap<Table, sled::Tree>,
    /// The journal file, opened for appending.
    journal: Arc<Mutex<File>>,
}

/// The journal's file name in the data directory.
pub const JOURNAL_FILE: &str = "journal.log";

fn io_error(what: &str, error: std::io::Error) -> StoreError {
    StoreError::Backend(format!("journal: {what}: {error}"))
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
        let journal = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path.join(JOURNAL_FILE))
            .map_err(|e| io_error("cannot open", e))?;
        make_private_files(path)?;
        Ok(Self {
            db,
            trees,
            journal: Arc::new(Mutex::new(journal)),
        })
    }

    fn journal(&self) -> std::sync::MutexGuard<'_, File> {
        // Appends are whole frames written by one call; a panic mid-call cannot leave a half
        // frame that a later append would hide (the reader stops at a torn frame either way).
        self.journal.lock().unwrap_or_else(|e| e.into_inner())
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

    fn journal_append(&self, entry: &[u8]) -> Result<(), StoreError> {
        let length = u32::try_from(entry.len())
            .map_err(|_| StoreError::Backend("journal: an entry over 4 GiB".into()))?;
        let mut frame = Vec::with_capacity(entry.len() + 8);
        frame.extend_from_slice(&length.to_le_bytes());
        frame.extend_from_slice(&crc32fast::hash(entry).to_le_bytes());
        frame.extend_from_slice(entry);
        self.journal()
            .write_all(&frame)
            .map_err(|e| io_error("cannot append", e))
    }

    fn sync_journal(&self) -> Result<(), StoreError> {
        self.journal()
            .sync_data()
            .map_err(|e| io_error("cannot sync", e))
    }

    fn journal_entries(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut bytes = Vec::new();
        {
            let mut file = self.journal();
            file.rewind().map_err(|e| io_error("cannot read", e))?;
            file.read_to_end(&mut bytes)
                .map_err(|e| io_error("cannot read", e))?;
        }
        read_frames(&bytes)
    }

    fn clear_journal(&self) -> Result<(), StoreError> {
        let file = self.journal();
        file.set_len(0).map_err(|e| io_error("cannot empty", e))?;
        file.sync_all().map_err(|e| io_error("cannot sync", e))
    }
}

/// The journal's entries. A last frame cut short or failing its checksum is a torn append
/// (never synced, so never acknowledged) and is left out; a bad frame with more after it is
/// damage, and an error.
fn read_frames(mut bytes: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
    let mut entries = Vec::new();
    while !bytes.is_empty() {
        let header = bytes.get(..8);
        let torn = |entries: &Vec<Vec<u8>>| {
            tracing::warn!(
                entries = entries.len(),
                "the journal ends in a torn entry (a crash while appending it); it is left out"
            );
        };
        let Some(header) = header else {
            torn(&entries);
            break;
        };
        let word = |at: usize| {
            u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
        };
        let (length, crc) = (word(0) as usize, word(4));
        let Some(entry) = bytes.get(8..8 + length) else {
            torn(&entries);
            break;
        };
        let rest = &bytes[8 + length..];
        if crc32fast::hash(entry) != crc {
            if rest.is_empty() {
                torn(&entries);
                break;
            }
            return Err(StoreError::Backend(format!(
                "journal entry {} fails its checksum and more follow: the journal is damaged; \
                 it is kept as it is for recovery",
                entries.len()
            )));
        }
        entries.push(entry.to_vec());
        bytes = rest;
    }
    Ok(entries)
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

#[cfg(test)]
mod journal_tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn the_journal_survives_reopening_and_a_torn_tail_is_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path(), 1 << 20).unwrap();
        store.journal_append(b"first").unwrap();
        store.journal_append(b"second").unwrap();
        store.sync_journal().unwrap();
        drop(store);
        // A crash in the middle of a third append.
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join(JOURNAL_FILE))
            .unwrap();
        file.write_all(&[9, 0, 0, 0, 1, 2]).unwrap();
        drop(file);
        let store = SledStore::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(
            store.journal_entries().unwrap(),
            [b"first".to_vec(), b"second".to_vec()]
        );
        store.clear_journal().unwrap();
        assert!(store.journal_entries().unwrap().is_empty());
        store.journal_append(b"third").unwrap();
        assert_eq!(store.journal_entries().unwrap(), [b"third".to_vec()]);
    }

    #[test]
    fn damage_before_the_last_entry_is_an_error() {
        let mut bytes = Vec::new();
        for entry in [&b"one"[..], b"two"] {
            bytes.extend_from_slice(&(entry.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&crc32fast::hash(entry).to_le_bytes());
            bytes.extend_from_slice(entry);
        }
        assert_eq!(read_frames(&bytes).unwrap().len(), 2);
        bytes[8] ^= 0xff;
        assert!(read_frames(&bytes).is_err());
        // The same damage in the last entry is a torn append.
        let last = bytes.len() - 1;
        bytes[8] ^= 0xff;
        bytes[last] ^= 0xff;
        assert_eq!(read_frames(&bytes).unwrap().len(), 1);
    }
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
