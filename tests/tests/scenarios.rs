//! Every scenario file in `simulator/scenarios/`: it reads, each of its events shows in what the
//! appliances do and send (headless, on the real firmware runtime), and it runs against the
//! embedded broker with the agent (the demo's world) without a use lost on the way.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::path::PathBuf;

use replenish_agent::clock::{DAY_MS, UnixMs};
use replenish_firmware::runtime::{Outgoing, OutgoingMessage};
use replenish_protocol::{ReportBody, Status};
use replenish_sim::headless::HeadlessHome;
use replenish_sim::household::{Action, Planned};
use replenish_sim::loadcell::Fidelity;
use replenish_sim::scenario::{self, EventSpec, HouseholdScript, Scenario};
use replenish_sim::world::STEP_MS;

fn scenario_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../simulator/scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

/// One message an appliance sent: (appliance, sent at, message).
type Sent = (usize, UnixMs, Outgoing);

/// Runs a household headless for `days`; what was done and what was sent.
fn run(script: &HouseholdScript, seed: u64, days: f64) -> (HeadlessHome, Vec<Planned>, Vec<Sent>) {
    let start = script.start;
    let end = start + (days * DAY_MS as f64) as UnixMs;
    let mut home = HeadlessHome::new(script.clone(), seed, start, Fidelity::Driver).unwrap();
    let (mut done, mut sent) = (Vec::new(), Vec::new());
    let mut now = start;
    while now < end {
        let since = now;
        now += STEP_MS;
        done.extend(
            home.step(since, now, |n, out, _| sent.push((n, now, out.clone())))
                .unwrap(),
        );
    }
    (home, done, sent)
}

fn is_use(p: &Planned) -> bool {
    matches!(
        p.action,
        Action::Brew { .. } | Action::PourMilk { .. } | Action::TakeEggs { .. }
    )
}

/// Whether a planned use takes from `slot`.
fn takes_from(p: &Planned, slot: &str) -> bool {
    match p.action {
        Action::Brew { .. } => ["beans", "water", "brews"].contains(&slot),
        Action::PourMilk { .. } => slot == "milk",
        Action::TakeEggs { .. } => slot == "eggs",
        Action::Refill { .. } => false,
    }
}

fn report(out: &Outgoing) -> Option<&replenish_protocol::Report> {
    match &out.message {
        OutgoingMessage::Report(r) => Some(r),
        _ => None,
    }
}

/// Checks that `event` shows in the run.
fn check_event(
    name: &str,
    home: &HeadlessHome,
    event: &EventSpec,
    done: &[Planned],
    sent: &[Sent],
) {
    let script = &home.script;
    let (from, to) = script.event_span(event);
    let device_index = |id: &str| {
        home.devices
            .iter()
            .position(|d| d.id.as_str() == id)
            .unwrap()
    };
    let covers = |device: &Option<String>, n: usize| {
        device
            .as_deref()
            .is_none_or(|d| home.devices[n].id.as_str() == d)
    };
    let uses_per_day = |from: UnixMs, to: UnixMs| {
        let n = done
            .iter()
            .filter(|p| is_use(p) && p.at >= from && p.at < to)
            .count();
        n as f64 / ((to - from) as f64 / DAY_MS as f64)
    };
    match event {
        EventSpec::Vacation { .. } => {
            assert_eq!(uses_per_day(from, to), 0.0, "{name}: used while away");
            assert!(
                uses_per_day(script.start, from) > 0.0,
                "{name}: no use at all"
            );
        }
        EventSpec::Guests { factor, .. } | EventSpec::HabitChange { factor, .. } => {
            let before = uses_per_day(script.start, from);
            let end = to.min(script.start + done.last().unwrap().at - script.start + 1);
            let during = uses_per_day(from, end);
            if *factor >= 1.5 {
                assert!(
                    during > before * 1.2,
                    "{name}: {during:.1} uses a day during, {before:.1} before"
                );
            }
        }
        EventSpec::WifiOutage { days, device, .. } => {
            let mut made_inside_sent_later = 0;
            for d in 0..u64::from(*days) {
                let (from, to) = (from + d * DAY_MS, to + d * DAY_MS);
                for (n, at, out) in sent {
                    if !covers(device, *n) {
                        continue;
                    }
                    assert!(
                        !(*at > from && *at < to),
                        "{name}: appliance {n} sent at {at} while its Wi-Fi was down"
                    );
                    if let Some(r) = report(out)
                        && r.ts >= from
                        && r.ts < to
                    {
                        assert!(*at >= to, "{name}: a report made offline was sent offline");
                        made_inside_sent_later += 1;
                    }
                }
            }
            assert!(
                made_inside_sent_later > 0,
                "{name}: nothing measured while offline came through after"
            );
        }
        EventSpec::PowerLoss { device, .. } => {
            for n in (0..home.devices.len()).filter(|n| covers(device, *n)) {
                let boot_of = |range: &dyn Fn(UnixMs) -> bool| {
                    sent.iter()
                        .filter(|(m, at, _)| *m == n && range(*at))
                        .find_map(|(_, _, out)| report(out).map(|r| r.boot))
                };
                let before = boot_of(&|at| at < from);
                let after = boot_of(&|at| at >= to);
                if let (Some(before), Some(after)) = (before, after) {
                    assert_eq!(after, before + 1, "{name}: appliance {n} booted again once");
                } else {
                    panic!("{name}: appliance {n} sent nothing before or after the power cut");
                }
                // It announced itself again after the cut.
                assert!(
                    sent.iter().any(|(m, at, out)| *m == n
                        && *at >= to
                        && matches!(&out.message, OutgoingMessage::Status(Status::Online(b)) if b.boot == before.unwrap() + 1)),
                    "{name}: appliance {n} sent no birth after the power cut"
                );
            }
        }
        EventSpec::SensorDrift {
            device,
            slot,
            per_day,
            ..
        } => {
            // The level it reports runs away from the truth as the drift grows: compare its
            // heartbeat levels late in the run with the slot's true amount at the end.
            let n = device_index(device);
            let end = sent.last().unwrap().1;
            let expected = script.sensor_bias(device, slot, end);
            assert!(
                expected.abs() >= per_day.abs(),
                "{name}: no drift by the end"
            );
            let last_level = sent
                .iter()
                .rev()
                .filter(|(m, _, _)| *m == n)
                .find_map(|(_, _, out)| match report(out).map(|r| &r.body) {
                    Some(ReportBody::Level { slot: s, remaining }) if s.as_str() == slot => {
                        Some(f64::from(*remaining))
                    }
                    _ => None,
                })
                .unwrap();
            let truth = home.devices[n]
                .slots
                .iter()
                .find(|s| s.spec.id.as_str() == slot)
                .unwrap()
                .amount;
            let seen = last_level - truth;
            assert!(
                (seen - expected).abs() < expected.abs() * 0.5 + 15.0,
                "{name}: reported {last_level:.1}, true {truth:.1}: off by {seen:.1}, drift {expected:.1}"
            );
        }
        EventSpec::StuckSensor { device, slot, .. } => {
            // Whatever is taken meanwhile, it reports one and the same level (its last).
            let n = device_index(device);
            let levels: std::collections::BTreeSet<u32> = sent
                .iter()
                .filter(|(m, _, _)| *m == n)
                .filter_map(|(_, _, out)| report(out))
                .filter(|r| {
                    r.ts >= from && r.ts < to && r.body.slot().is_some_and(|s| s.as_str() == slot)
                })
                .map(|r| match &r.body {
                    ReportBody::Level { remaining, .. } => remaining.to_bits(),
                    other => panic!("{name}: a stuck sensor saw a change: {other:?}"),
                })
                .collect();
            assert!(
                levels.len() <= 1,
                "{name}: a stuck sensor reported {} levels",
                levels.len()
            );
            let taken = done
                .iter()
                .filter(|p| p.at >= from && p.at < to && takes_from(p, slot))
                .count();
            assert!(
                taken > 0,
                "{name}: nothing taken from {slot} while its sensor was stuck"
            );
        }
        EventSpec::ShopRefill { device, slot, .. } => {
            let refilled = done.iter().any(|p| {
                p.at == from
                    && matches!(&p.action, Action::Refill { device: d, slot: s, .. } if d == device && s == slot)
            });
            assert!(refilled, "{name}: the refill bought by hand did not happen");
            let n = device_index(device);
            let seen = sent.iter().any(|(m, _, out)| {
                *m == n
                    && matches!(report(out).map(|r| (&r.body, r.ts)), Some((ReportBody::Refill { slot: s, .. }, ts)) if s.as_str() == slot && ts >= from && ts < from + STEP_MS + 1)
            });
            assert!(seen, "{name}: the appliance did not report the refill");
        }
    }
}

#[test]
fn every_example_scenario_reads_and_each_of_its_events_shows() {
    let files = scenario_files();
    assert!(files.len() >= 4, "{files:?}");
    let mut checked = std::collections::BTreeSet::new();
    for path in &files {
        let scenario = Scenario::load(path).unwrap();
        let start = scenario.start_ms().unwrap();
        // Every household kind of the file once (copies live alike).
        for spec in &scenario.households {
            let script = HouseholdScript::new(&spec.id, spec, start);
            let (home, done, sent) = run(&script, scenario.seed, scenario.days);
            let name = format!("{}: {}", path.display(), spec.id);
            assert!(done.iter().any(is_use), "{name}: nothing used");
            assert!(!sent.is_empty(), "{name}: nothing sent");
            for event in &spec.events {
                check_event(&name, &home, event, &done, &sent);
                checked.insert(event.kind());
            }
        }
    }
    // The examples show every kind of event there is.
    for kind in [
        "vacation",
        "guests",
        "habit_change",
        "wifi_outage",
        "power_loss",
        "sensor_drift",
        "stuck_sensor",
        "shop_refill",
    ] {
        assert!(checked.contains(kind), "no example has a {kind} event");
    }
}

#[test]
fn a_fleet_cycles_through_the_households_with_seeds_and_ids_of_their_own() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../simulator/scenarios/fleet.toml");
    let scenario = Scenario::load(&path).unwrap();
    let start = scenario.start_ms().unwrap();
    let own = scenario::fleet(&scenario, 3, start, None, None);
    assert_eq!(own.len(), 100);
    let ids: std::collections::BTreeSet<_> = own.iter().map(|(s, _)| s.household.clone()).collect();
    assert_eq!(ids.len(), 100, "ids differ");
    assert!(ids.contains("home-1") && ids.contains("espresso-50"));
    let seeds: std::collections::BTreeSet<_> = own.iter().map(|(_, seed)| *seed).collect();
    assert_eq!(seeds.len(), 100, "seeds differ");
    let espresso = own
        .iter()
        .find(|(s, _)| s.household == "espresso-1")
        .unwrap();
    assert_eq!(espresso.0.appliances.len(), 1, "a coffee maker only");
    let renamed = scenario::fleet(&scenario, 3, start, Some(3), Some("sim"));
    let names: Vec<_> = renamed.iter().map(|(s, _)| s.household.as_str()).collect();
    assert_eq!(names, ["sim-1", "sim-2", "sim-3"]);
}

/// The family away for two weeks with its Wi-Fi down every evening, against the agent and its
/// embedded broker: every brew made offline reaches the agent once the Wi-Fi is back, and the
/// agent orders nothing for a household that is away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scenario_runs_against_the_embedded_broker_without_losing_a_use() {
    use replenish_sim::world::{World, WorldConfig};
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../simulator/scenarios/family-away.toml");
    let scenario = Scenario::load(&path).unwrap();
    let spec = &scenario.households[0];
    let start = scenario.start_ms().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = WorldConfig::new(dir.path().join("agent"), scenario.seed);
    config.household = spec.id.clone();
    config.start = start;
    config.two_shops = true;
    config.script = Some(HouseholdScript::new(&spec.id, spec, start));
    let mut world = World::start(config).await.unwrap();
    // The evenings of days 1 to 9 (the Wi-Fi down from 19:00 to 21:00: reports are buffered),
    // then into the vacation (from day 10).
    let mut pending = 0;
    while world.clock_now() < start + 16 * DAY_MS {
        world.step().await.unwrap();
        pending = pending.max(
            world
                .appliances
                .iter()
                .map(|a| a.device().pending_reports())
                .sum(),
        );
    }
    let brews_made = world
        .appliances
        .iter_mut()
        .find_map(|a| a.slot_mut("brews").map(|s| s.amount))
        .unwrap();
    let status = world.handle().unwrap().status().await.unwrap();
    let brews_counted: u64 = status
        .slots
        .iter()
        .filter(|s| s.slot == "brews")
        .map(|s| s.uses)
        .sum();
    world.shutdown().await;
    assert!(
        pending > 0,
        "nothing was buffered during the evening outage"
    );
    assert!(brews_made > 20.0, "{brews_made} brews");
    assert_eq!(
        brews_counted as f64, brews_made,
        "every brew reached the agent once"
    );
    // Away from day 10 (after one lead time for what was ordered before): nothing new.
    let away_from = start + 9 * DAY_MS + 3 * DAY_MS;
    let ordered_while_away = status
        .orders
        .iter()
        .filter(|o| o.created_at_ms >= away_from && o.created_at_ms < start + 16 * DAY_MS)
        .count();
    assert_eq!(ordered_while_away, 0, "orders for an empty house");
}

/// `demo --report`: one chart per consumable, each showing every order placed, every delivery
/// and the stockouts the summary counts, and the true level hour by hour.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_charts_what_the_run_did() {
    use replenish_agent::engine::household::Mode;
    use replenish_sim::demo::{self, DemoOptions};
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../simulator/scenarios/faults.toml");
    let scenario = Scenario::load(&path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let days = 14;
    let options = DemoOptions {
        days,
        speed: 0.0,
        seed: scenario.seed,
        approval: Mode::Auto,
        data_dir: Some(dir.path().join("agent")),
        serve: false,
        progress: false,
        scenario,
        report: Some(dir.path().join("report")),
    };
    let mut out = Vec::new();
    let summary = demo::run(options, &mut out).await.unwrap();
    let html = std::fs::read_to_string(dir.path().join("report/index.html")).unwrap();
    assert!(html.starts_with("<!doctype html>"));
    assert!(!html.contains("<script"), "self-contained, no scripts");
    let figures: Vec<&str> = html.split("<figure>").skip(1).collect();
    assert_eq!(
        figures.len(),
        summary.consumables.len(),
        "a chart per consumable"
    );
    let mut stockouts_seen = 0;
    for c in &summary.consumables {
        let key = format!("<b>{}/{}</b>", c.device, c.slot);
        let figure = figures
            .iter()
            .find(|f| f.contains(&key))
            .unwrap_or_else(|| panic!("no chart for {key}"));
        assert!(figure.contains("<svg"), "{key}");
        // Colours as replenish_sim::report draws them.
        assert_eq!(
            figure.matches("#E67E22").count() as u32,
            c.orders_placed,
            "{key}: a triangle per order"
        );
        assert_eq!(
            figure.matches("#2CA02C").count() as u32,
            c.orders_delivered,
            "{key}: a line per delivery"
        );
        if c.stockout_hours > 0.0 {
            assert!(figure.contains("#F4B6B6"), "{key}: its stockout is shaded");
            stockouts_seen += 1;
        } else {
            assert!(!figure.contains("#F4B6B6"), "{key}: no stockout drawn");
        }
        // The true level: a line through every simulated hour.
        let truth = figure
            .split("<polyline")
            .find(|p| p.contains("#1F77B4"))
            .unwrap_or_else(|| panic!("{key}: no level line"));
        let points = truth
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert!(
            points.split_whitespace().count() as u64 >= days * 24 - 1,
            "{key}: {} points",
            points.split_whitespace().count()
        );
    }
    assert!(
        summary.consumables.iter().any(|c| c.orders_placed > 0),
        "orders to draw"
    );
    // faults.toml's stuck egg tray in a busy week leaves the eggs out for a while.
    assert!(stockouts_seen > 0, "a stockout to draw");
}
