//! docs/operations.md against the code, both ways: the metrics table lists every metric the
//! agent's source exports (a `counter!`, `gauge!` or `histogram!` with a literal name) and no
//! other; the settings table names every key of the config's sections (as the config's own
//! unknown-key error lists them) and no other.

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
fn the_metrics_table_lists_exactly_what_the_code_exports() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let mut exported = BTreeSet::new();
    let mut calls = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        calls += ["counter!(", "gauge!(", "histogram!("]
            .iter()
            .map(|m| text.matches(m).count())
            .sum::<usize>();
        exported.extend(names_after(&text, &["counter!(", "gauge!(", "histogram!("]));
    }
    assert!(exported.len() >= 30, "{exported:?}");
    assert!(
        exported.iter().all(|n| n.starts_with("replenish_")),
        "{exported:?}"
    );
    // Every call names its metric with a literal (so this scan sees it).
    let literal_calls: usize = files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            ["counter!(", "gauge!(", "histogram!("]
                .iter()
                .map(|m| {
                    text.match_indices(m)
                        .filter(|(at, _)| text[at + m.len()..].trim_start().starts_with('"'))
                        .count()
                })
                .sum::<usize>()
        })
        .sum();
    assert_eq!(
        literal_calls, calls,
        "a metric named by a variable escapes this check"
    );

    let docs = std::fs::read_to_string(root.join("../docs/operations.md")).unwrap();
    let table = docs
        .split("### Metrics")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .unwrap();
    let documented: BTreeSet<String> = table
        .split('`')
        .filter(|s| {
            s.starts_with("replenish_") && s.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        })
        .map(str::to_string)
        .collect();
    let missing: Vec<_> = exported.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&exported).collect();
    assert!(
        missing.is_empty(),
        "exported, not in docs/operations.md's table: {missing:?}"
    );
    assert!(
        stale.is_empty(),
        "in docs/operations.md's table, exported nowhere: {stale:?}"
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
