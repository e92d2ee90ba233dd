//! Backups, restores and the store's format, through `replenish-agent` itself: a store of
//! format 0 (before versions; `tests/fixtures/store-format-0.json`, records in the shapes the
//! first agents wrote) restores, is upgraded on open and reads; a backup round-trips record for
//! record; a restore into a store that holds data, and a store or backup of a newer format, are
//! refused with a clear error and change nothing; the household's history exports.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use replenish_agent::store::backup::{self, Backup, FORMAT};
use replenish_agent::store::{self, SledStore, Store, Table};

fn fixture() -> PathBuf {
    fixture_of(0)
}

fn fixture_of(format: u32) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/store-format-{format}.json"))
}

/// Restores the fixture of `format` with the agent's binary into `dir/data`, which it returns.
fn restored(dir: &Path, format: u32) -> PathBuf {
    let data = dir.join("data");
    let out = agent(
        dir,
        &data,
        &["restore", "--from", fixture_of(format).to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out));
    data
}

/// Opens the restored store in `data` as the agent does: its format was `format` and is the
/// current one after; its records read, with the one order the fixtures hold.
fn opened_as_the_agent_does(
    data: &Path,
    format: u32,
) -> (SledStore, replenish_agent::engine::Snapshot) {
    let store = SledStore::open(data, 1 << 20).unwrap();
    assert_eq!(backup::format_of(&store).unwrap(), Some(format));
    assert_eq!(backup::open(&store).unwrap(), format);
    assert_eq!(backup::format_of(&store).unwrap(), Some(FORMAT));
    let snapshot = store::load_snapshot(&store).unwrap();
    assert_eq!(snapshot.orders.len(), 1);
    (store, snapshot)
}

/// Format 1 (the format mark; before the journal of format 2) restores, is upgraded on open,
/// and reads.
#[test]
fn a_format_1_store_restores_upgrades_and_reads() {
    let dir = tempfile::tempdir().unwrap();
    let data = restored(dir.path(), 1);
    let (store, snapshot) = opened_as_the_agent_does(&data, 1);
    assert_eq!(snapshot.audit.len(), 1);
    assert!(store.journal_entries().unwrap().is_empty());
}

/// Runs the agent's binary with a configuration whose store is `data`.
fn agent(dir: &Path, data: &Path, args: &[&str]) -> Output {
    let config = dir.join("agent.toml");
    std::fs::write(
        &config,
        format!("[storage]\npath = {:?}\n", data.display().to_string()),
    )
    .unwrap();
    Command::new(env!("CARGO_BIN_EXE_replenish-agent"))
        .arg("--config")
        .arg(&config)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn a_format_0_store_restores_upgrades_reads_and_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let data = restored(dir.path(), 0);

    // Opened as the agent opens it: format 0 becomes the current one, and every record reads.
    {
        let (_store, snapshot) = opened_as_the_agent_does(&data, 0);
        let order = &snapshot.orders[0];
        assert_eq!(order.first_line().packs, 2);
        assert_eq!(
            order.total().currency.code(),
            "EUR",
            "orders before currencies were euro"
        );
        assert!(order.first_line().outlook.is_none() && order.bundled().is_empty());
        assert_eq!(snapshot.meta.next_order_no, 2);
        assert!(
            snapshot.meta.catalog.is_some(),
            "the sandbox shop's old catalog is read"
        );
        assert_eq!(snapshot.audit.len(), 1);
    }

    // A backup of it holds every record the fixture had, and the format mark.
    let copy = dir.path().join("copy.json");
    let out = agent(
        dir.path(),
        &data,
        &["backup", "--to", copy.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out));
    let saved: Backup = serde_json::from_str(&std::fs::read_to_string(&copy).unwrap()).unwrap();
    let original: Backup =
        serde_json::from_str(&std::fs::read_to_string(fixture()).unwrap()).unwrap();
    assert_eq!(saved.format, FORMAT);
    for (table, records) in &original.tables {
        assert_eq!(
            saved.tables[table].len() - usize::from(table == "meta"),
            records.len(),
            "{table}"
        );
        for record in records {
            assert!(
                saved.tables[table].contains(record),
                "{table}/{}",
                record.key
            );
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "a backup is its owner's only");
    }

    // Restored elsewhere, the copy is the same store, record for record.
    let again = dir.path().join("again");
    let out = agent(
        dir.path(),
        &again,
        &["restore", "--from", copy.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out));
    let (a, b) = (
        SledStore::open(&data, 1 << 20).unwrap(),
        SledStore::open(&again, 1 << 20).unwrap(),
    );
    for table in Table::ALL {
        assert_eq!(a.scan(table).unwrap(), b.scan(table).unwrap(), "{table:?}");
    }
    drop((a, b));

    // Restoring over data is refused, and changes nothing.
    let out = agent(
        dir.path(),
        &again,
        &["restore", "--from", copy.to_str().unwrap()],
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("already holds data"), "{}", text(&out));

    // The household's history: orders and the audit trail, no members.
    let history = dir.path().join("history.json");
    let out = agent(
        dir.path(),
        &data,
        &["export", "--json", history.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out));
    let history: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&history).unwrap()).unwrap();
    assert_eq!(history["orders"][0]["id"], "o-000001");
    assert_eq!(history["audit"][0]["action"], "approve");
    assert!(history.get("household").is_none());
}

#[test]
fn a_newer_format_is_refused_with_a_clear_error_and_kept_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    // A backup from a newer agent.
    let mut newer: Backup =
        serde_json::from_str(&std::fs::read_to_string(fixture()).unwrap()).unwrap();
    newer.format = FORMAT + 1;
    let file = dir.path().join("newer.json");
    std::fs::write(&file, serde_json::to_string(&newer).unwrap()).unwrap();
    let data = dir.path().join("data");
    let out = agent(
        dir.path(),
        &data,
        &["restore", "--from", file.to_str().unwrap()],
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("newer replenish-agent"),
        "{}",
        text(&out)
    );

    // A store written by a newer agent: the agent does not start, and the store is untouched.
    {
        let store = SledStore::open(&data, 1 << 20).unwrap();
        store
            .put(Table::Meta, "format", (FORMAT + 1).to_string().into_bytes())
            .unwrap();
        store
            .put(Table::Orders, "o-000009", b"{}".to_vec())
            .unwrap();
        store.flush().unwrap();
    }
    let out = agent(dir.path(), &data, &["household", "members"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("newer replenish-agent"),
        "{}",
        text(&out)
    );
    let store = SledStore::open(&data, 1 << 20).unwrap();
    assert_eq!(backup::format_of(&store).unwrap(), Some(FORMAT + 1));
    assert_eq!(store.scan(Table::Orders).unwrap().len(), 1);
}
