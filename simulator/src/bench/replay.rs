//! Scenarios from a recorded consumption trace (CSV) and the slots it was recorded on (TOML),
//! for `replenish-sim replay`. The formats are documented in `docs/replay.md`.
//!
//! Timestamps are parsed with `jiff` (BurntSushi's date-time crate, actively maintained): its
//! `Timestamp` parser takes RFC 3339 / ISO 8601 instants with a `Z` or numeric offset and refuses
//! civil times without one, which is exactly what a trace needs, with no time-zone database.
//! The CSV is read with the `csv` crate (same author) for quoting and line numbers.

use std::path::Path;

use anyhow::{Context, anyhow, bail};
use replenish_agent::clock::{DAY_MS, UnixMs};
use replenish_agent::engine::forecast::day_of;
use replenish_protocol::{Id, Unit};
use serde::Deserialize;

use super::scenario::{Scenario, SlotPlan, Use};

/// Longest trace replayed, in days.
pub const MAX_DAYS: i64 = 3660;
/// The columns of a trace.
pub const COLUMNS: [&str; 5] = ["timestamp", "household", "slot", "unit", "amount"];
/// Price of a pack in replayed catalogs (cents); no metric depends on it.
const PRICE_CENTS: u64 = 100;

/// One `[[slot]]` of the slot file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotEntry {
    /// The household (an id: `a-z`, `0-9`, `_`, `-`).
    pub household: String,
    /// The slot (an id), unique within its household.
    pub slot: String,
    /// `g`, `ml` or `count`.
    pub unit: Unit,
    /// What the appliance holds at most.
    pub capacity: f64,
    /// What it holds when the trace starts (the cupboard starts empty).
    pub initial_level: f64,
    /// Amount in one pack the shop sells.
    pub pack_size: f64,
    /// Most the household keeps at home (appliance plus cupboard).
    pub max_stock: f64,
    /// Delivery time of every order, in days (fractions allowed).
    pub lead_time_days: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SlotsFile {
    slot: Vec<toml::Spanned<SlotEntry>>,
}

/// Reads and checks both files; one scenario per household and delivery time.
pub fn load(trace: &Path, slots: &Path) -> anyhow::Result<Vec<Scenario>> {
    let trace_text = std::fs::read_to_string(trace)
        .with_context(|| format!("reading the trace {}", trace.display()))?;
    let slots_text = std::fs::read_to_string(slots)
        .with_context(|| format!("reading the slots {}", slots.display()))?;
    parse(
        &trace_text,
        &trace.display().to_string(),
        &slots_text,
        &slots.display().to_string(),
    )
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(0, |before| before.matches('\n').count())
        + 1
}

/// Parses the slot file `text` (named `name` in errors).
pub fn parse_slots(text: &str, name: &str) -> anyhow::Result<Vec<SlotEntry>> {
    let file: SlotsFile = toml::from_str(text).map_err(|e| anyhow!("{name}: {e}"))?;
    if file.slot.is_empty() {
        bail!("{name}: no [[slot]] entries");
    }
    let mut entries: Vec<SlotEntry> = Vec::new();
    for spanned in file.slot {
        let line = line_of(text, spanned.span().start);
        let e = spanned.into_inner();
        let at = format!(
            "{name}:{line}: slot {:?} of household {:?}",
            e.slot, e.household
        );
        Id::new(&e.household).map_err(|err| anyhow!("{at}: household: {err}"))?;
        Id::new(&e.slot).map_err(|err| anyhow!("{at}: slot: {err}"))?;
        let positive = |what: &str, v: f64, max: f64| {
            if v.is_finite() && v > 0.0 && v <= max {
                Ok(())
            } else {
                Err(anyhow!(
                    "{at}: {what} must be above 0 and at most {max}, not {v}"
                ))
            }
        };
        positive("capacity", e.capacity, 1e9)?;
        positive("pack_size", e.pack_size, 1e9)?;
        positive("max_stock", e.max_stock, 1e12)?;
        positive("lead_time_days", e.lead_time_days, 365.0)?;
        if !(e.initial_level.is_finite() && (0.0..=e.capacity).contains(&e.initial_level)) {
            bail!(
                "{at}: initial_level must be between 0 and the capacity {}, not {}",
                e.capacity,
                e.initial_level
            );
        }
        if entries
            .iter()
            .any(|o| o.household == e.household && o.slot == e.slot)
        {
            bail!("{at}: listed twice");
        }
        entries.push(e);
    }
    Ok(entries)
}

/// Parses a trace and its slots into scenarios: one per household and delivery time (slots of
/// a household with the same delivery time share an agent, whose prior is that time).
pub fn parse(
    trace: &str,
    trace_name: &str,
    slots: &str,
    slots_name: &str,
) -> anyhow::Result<Vec<Scenario>> {
    let entries = parse_slots(slots, slots_name)?;
    let mut uses: Vec<Vec<Use>> = vec![Vec::new(); entries.len()];
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(trace.as_bytes());
    let header = reader
        .headers()
        .map_err(|e| anyhow!("{trace_name}: {e}"))?
        .clone();
    let mut column = [0usize; 5];
    for (i, name) in COLUMNS.iter().enumerate() {
        column[i] = header.iter().position(|h| h == *name).ok_or_else(|| {
            anyhow!(
                "{trace_name}:1: the header has no column {name:?}; it must be {}",
                COLUMNS.join(",")
            )
        })?;
    }
    if let Some(other) = header.iter().find(|h| !COLUMNS.contains(h)) {
        bail!(
            "{trace_name}:1: unknown column {other:?}; the header must be {}",
            COLUMNS.join(",")
        );
    }
    let mut span: Option<(i64, i64)> = None;
    for record in reader.records() {
        let record = record.map_err(|e| anyhow!("{trace_name}: {e}"))?;
        let line = record.position().map_or(0, |p| p.line());
        let at = |what: String| anyhow!("{trace_name}:{line}: {what}");
        let field = |i: usize| record.get(column[i]).unwrap_or("");
        let (ts, household, slot, unit, amount) =
            (field(0), field(1), field(2), field(3), field(4));
        let t: jiff::Timestamp = ts
            .parse()
            .map_err(|e| at(format!("timestamp {ts:?} is not RFC 3339: {e}")))?;
        let ms = UnixMs::try_from(t.as_millisecond())
            .map_err(|_| at(format!("timestamp {ts:?} is before 1970")))?;
        let index = entries
            .iter()
            .position(|e| e.household == household && e.slot == slot)
            .ok_or_else(|| {
                at(format!(
                    "slot {slot:?} of household {household:?} is not in {slots_name}"
                ))
            })?;
        let expected = entries[index].unit.symbol();
        if unit != expected {
            return Err(at(format!(
                "unit {unit:?} differs from the slot's unit {expected:?} in {slots_name}"
            )));
        }
        let amount: f64 = amount
            .parse()
            .map_err(|_| at(format!("amount {amount:?} is not a number")))?;
        if !amount.is_finite() || amount < 0.0 {
            return Err(at(format!(
                "amount {amount} must be a finite number, 0 or more"
            )));
        }
        let day = day_of(ms);
        span = Some(span.map_or((day, day), |(a, b)| (a.min(day), b.max(day))));
        uses[index].push(Use { at: ms, amount });
    }
    let Some((first, last)) = span else {
        bail!("{trace_name}: no rows after the header");
    };
    let days = last - first + 1;
    if days > MAX_DAYS {
        bail!("{trace_name}: the trace spans {days} days; at most {MAX_DAYS} are replayed");
    }
    let start = first as UnixMs * DAY_MS;
    let mut groups: Vec<Scenario> = Vec::new();
    for (entry, mut slot_uses) in entries.into_iter().zip(uses) {
        slot_uses.sort_by_key(|u| u.at);
        let mut by_day = vec![Vec::new(); days as usize];
        for u in slot_uses {
            by_day[(day_of(u.at) - first) as usize].push(u);
        }
        let lead = (entry.lead_time_days * DAY_MS as f64).round() as UnixMs;
        let plan = SlotPlan {
            device: entry.slot.clone(),
            slot: entry.slot.clone(),
            consumable: entry.slot.clone(),
            unit: entry.unit,
            capacity: entry.capacity,
            initial_level: entry.initial_level,
            pack_size: entry.pack_size,
            price_cents: PRICE_CENTS,
            max_stock: entry.max_stock,
            uses: by_day,
            lead_times_ms: vec![lead],
            use_every_days: None,
            driven_by: None,
            metered: false,
        };
        match groups
            .iter_mut()
            .find(|g| g.household == entry.household && g.prior_lead_ms == lead)
        {
            Some(group) => group.slots.push(plan),
            None => groups.push(Scenario {
                name: entry.household.clone(),
                household: entry.household,
                start,
                days: days as usize,
                warmup_days: 0,
                bundle_days: super::scenario::DEFAULT_BUNDLE_DAYS,
                risk: super::scenario::default_risk(),
                prior_lead_ms: lead,
                slots: vec![plan],
            }),
        }
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLOTS: &str = r#"
[[slot]]
household = "flat-12"
slot = "beans"
unit = "g"
capacity = 250
initial_level = 200
pack_size = 500
max_stock = 1000
lead_time_days = 2
"#;

    fn err(trace: &str, slots: &str) -> String {
        match parse(trace, "t.csv", slots, "s.toml") {
            Ok(s) => panic!("accepted: {s:?}"),
            Err(e) => format!("{e:#}"),
        }
    }

    #[test]
    fn a_good_trace_becomes_days_of_uses() {
        let trace = "timestamp,household,slot,unit,amount\n\
                     2026-03-02T07:30:00+01:00,flat-12,beans,g,9\n\
                     2026-03-03T23:30:00Z,flat-12,beans,g,18.5\n\
                     2026-03-02T08:00:00Z,flat-12,beans,g,9\n";
        let scenarios = parse(trace, "t.csv", SLOTS, "s.toml").unwrap();
        assert_eq!(scenarios.len(), 1);
        let s = &scenarios[0];
        assert_eq!((s.days, s.prior_lead_ms), (2, 2 * DAY_MS));
        let uses = &s.slots[0].uses;
        // 07:30+01:00 is 06:30Z, before the 08:00Z use; 23:30Z on the 3rd is the second day.
        assert_eq!(uses[0].len(), 2);
        assert!(uses[0][0].at < uses[0][1].at);
        assert_eq!(uses[1][0].amount, 18.5);
    }

    #[test]
    fn malformed_rows_are_refused_with_their_line() {
        let head = "timestamp,household,slot,unit,amount\n";
        let ok = "2026-03-02T07:30:00Z,flat-12,beans,g,9\n";
        let cases = [
            ("2026-03-02 07:30,flat-12,beans,g,9\n", "t.csv:3: timestamp"),
            (
                "2026-03-02T07:30:00,flat-12,beans,g,9\n",
                "t.csv:3: timestamp",
            ),
            (
                "2026-03-02T07:30:00Z,flat-12,milk,g,9\n",
                "t.csv:3: slot \"milk\"",
            ),
            (
                "2026-03-02T07:30:00Z,flat-12,beans,ml,9\n",
                "t.csv:3: unit \"ml\"",
            ),
            (
                "2026-03-02T07:30:00Z,flat-12,beans,g,-1\n",
                "t.csv:3: amount -1",
            ),
            (
                "2026-03-02T07:30:00Z,flat-12,beans,g,lots\n",
                "t.csv:3: amount \"lots\"",
            ),
            (
                "2026-03-02T07:30:00Z,flat-12,beans,g,NaN\n",
                "t.csv:3: amount NaN",
            ),
            ("2026-03-02T07:30:00Z,flat-12,beans\n", "line: 3"),
        ];
        for (row, expected) in cases {
            let e = err(&format!("{head}{ok}{row}"), SLOTS);
            assert!(e.contains(expected), "{row:?}: {e}");
        }
        assert!(
            err("time,household,slot,unit,amount\n", SLOTS).contains("no column \"timestamp\"")
        );
        assert!(err(head, SLOTS).contains("no rows"));
        let with_extra = "timestamp,household,slot,unit,amount,note\n";
        assert!(err(with_extra, SLOTS).contains("unknown column \"note\""));
    }

    #[test]
    fn malformed_slot_files_are_refused_with_their_line() {
        let trace =
            "timestamp,household,slot,unit,amount\n2026-03-02T07:30:00Z,flat-12,beans,g,9\n";
        let e = err(trace, &SLOTS.replace("unit = \"g\"", "unit = \"kg\""));
        assert!(e.contains("s.toml") && e.contains("kg"), "{e}");
        let e = err(trace, &SLOTS.replace("capacity = 250", "capacity = -5"));
        assert!(e.contains("s.toml:2:") && e.contains("capacity"), "{e}");
        let e = err(trace, &SLOTS.replace("max_stock = 1000\n", ""));
        assert!(e.contains("max_stock"), "{e}");
        let e = err(
            trace,
            &SLOTS.replace("lead_time_days = 2", "lead_time_days = 2\ncolour = 1"),
        );
        assert!(e.contains("colour"), "{e}");
        let e = err(
            trace,
            &SLOTS.replace("initial_level = 200", "initial_level = 300"),
        );
        assert!(e.contains("initial_level"), "{e}");
        let e = err(trace, &format!("{SLOTS}{SLOTS}"));
        assert!(e.contains("s.toml:12:") && e.contains("twice"), "{e}");
        let e = err(trace, &SLOTS.replace("flat-12", "Flat 12"));
        assert!(e.contains("household"), "{e}");
        assert!(err(trace, "").contains("slot"));
    }
}
