//! docs/operations.md against the code, both ways: the metrics table is the catalog of
//! `agent/src/metric.rs` rendered, no metric is named anywhere else and only internal events
//! (`agent/src/internal_events/`) move one; the settings table
//! names every key of the config's sections (as the config's own unknown-key error lists them)
//! and no other.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `replenish_…` names in `text` following one of `markers`.
fn names_after(text: &str, markers: &[&str]) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for marker in markers {
        for (at, _) in text.match_indices(marker) {
            let rest = text[at + marker.len()..].trim_start();
            if let Some(rest) = rest.strip_prefix('"') {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                names.insert(name);
            }
        }
    }
    names
}

#[test]
fn the_metrics_table_is_the_catalog_and_every_metric_is_named_from_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let catalog = replenish_agent::metric::ALL;
    assert!(catalog.len() >= 30);
    let names: BTreeSet<&str> = catalog.iter().map(|m| m.name).collect();
    assert_eq!(names.len(), catalog.len(), "a name defined twice");
    assert!(
        names.iter().all(|n| n.starts_with("replenish_")),
        "{names:?}"
    );
    let mut sources = String::new();
    for file in files.iter().filter(|f| !f.ends_with("metric.rs")) {
        sources.push_str(&std::fs::read_to_string(file).unwrap());
    }
    // No metric named by a literal: a name outside the catalog would escape the docs.
    let literal = names_after(&sources, &["counter!(", "gauge!(", "histogram!("]);
    assert!(
        literal.is_empty(),
        "named outside agent/src/metric.rs: {literal:?}"
    );
    // And every metric of the catalog is recorded somewhere.
    let source = std::fs::read_to_string(root.join("src/metric.rs")).unwrap();
    let unused: Vec<&str> = catalog
        .iter()
        .filter(|m| {
            let constant = source
                .split(&format!("name: \"{}\"", m.name))
                .next()
                .and_then(|before| before.rsplit("pub const ").next())
                .and_then(|decl| decl.split(':').next())
                .unwrap_or("");
            !sources.contains(&format!("metric::{constant}.name"))
        })
        .map(|m| m.name)
        .collect();
    assert!(unused.is_empty(), "defined, never recorded: {unused:?}");
    // Metrics move only through internal events, each with its log line.
    let events = root.join("src/internal_events");
    let outside: Vec<String> = files
        .iter()
        .filter(|f| !f.starts_with(&events) && !f.ends_with("metric.rs"))
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            ["counter!(", "gauge!(", "histogram!("]
                .iter()
                .any(|m| text.contains(m))
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(
        outside.is_empty(),
        "metrics moved outside agent/src/internal_events/: {outside:?}"
    );

    let docs = std::fs::read_to_string(root.join("../docs/operations.md")).unwrap();
    let table = replenish_agent::metric::markdown_table();
    assert!(
        docs.contains(&table),
        "docs/operations.md's metrics table is not agent/src/metric.rs rendered; it should read:\n{table}"
    );
}

/// The fields of config section `section`, from the error that an unknown key there gives
/// (serde lists the fields it expected).
fn section_fields(section: &str) -> Vec<String> {
    let text = format!("[{section}]\nzz_probe = 1\n");
    let problem = replenish_agent::config::AgentConfig::check_text(&text)
        .expect_err("an unknown key is refused")
        .to_string();
    // "expected `a`", "expected `a` or `b`", "expected one of `a`, `b`, `c`".
    let list = problem
        .split("expected ")
        .nth(1)
        .unwrap_or_else(|| panic!("[{section}]: {problem}"));
    list.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

#[test]
fn the_configuration_table_names_every_setting_and_no_other() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let docs = std::fs::read_to_string(root.join("../docs/operations.md")).unwrap();
    // The settings table: rows starting with a backticked key.
    let mut documented = BTreeSet::new();
    for row in docs.lines().filter(|l| l.starts_with("| `")) {
        let first = row.split('|').nth(1).unwrap_or("");
        let mut section = String::new();
        for key in first.split('`').skip(1).step_by(2) {
            if let Some(field) = key.strip_prefix('.') {
                documented.insert(format!("{section}.{field}"));
            } else if let Some((s, _)) = key.split_once('.') {
                section = s.to_string();
                documented.insert(key.to_string());
            }
        }
    }
    let sections = [
        "household",
        "notifications",
        "home_assistant",
        "mqtt",
        "ingest",
        "http",
        "storage",
        "commerce",
        "policy",
    ];
    let mut missing = Vec::new();
    for section in sections {
        let fields = section_fields(section);
        assert!(fields.len() >= 2, "[{section}]: {fields:?}");
        for field in fields {
            let key = format!("{section}.{field}");
            // A whole table documented with `.*` (commerce.vendure.*) covers its fields.
            if !documented.contains(&key) && !documented.contains(&format!("{key}.*")) {
                missing.push(key);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "settings missing from docs/operations.md: {missing:?}"
    );
    // And the other way: a documented key of these sections is one the agent reads.
    let mut stale = Vec::new();
    for key in &documented {
        let Some((section, field)) = key.split_once('.') else {
            continue;
        };
        if !sections.contains(&section) || field.contains('.') || field == "*" {
            continue;
        }
        if !section_fields(section).iter().any(|f| f == field) {
            stale.push(key.clone());
        }
    }
    assert!(
        stale.is_empty(),
        "documented settings the agent does not have: {stale:?}"
    );
}
