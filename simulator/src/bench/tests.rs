//! The bench's own tests: hand-computed runs, determinism, the oracle and the threshold rule.

use replenish_agent::clock::{DAY_MS, HOUR_MS};
use replenish_protocol::Unit;

use super::harness::OrderRecord;
use super::scenario::{SlotPlan, Use};
use super::*;

/// One 100-unit slot used 10 units a day at noon, refilled by packs of 100, 2-day delivery.
fn ten_days(initial: f64) -> Scenario {
    let start = scenario::BENCH_START;
    let uses = (0..10)
        .map(|d| {
            vec![Use {
                at: start + d * DAY_MS + 12 * HOUR_MS,
                amount: 10.0,
            }]
        })
        .collect();
    Scenario {
        name: "hand".into(),
        household: "home".into(),
        start,
        days: 10,
        warmup_days: 0,
        bundle_days: 3.0,
        risk: scenario::default_risk(),
        prior_lead_ms: 2 * DAY_MS,
        slots: vec![SlotPlan {
            device: "shelf".into(),
            slot: "rice".into(),
            consumable: "rice".into(),
            unit: Unit::G,
            capacity: 100.0,
            initial_level: initial,
            pack_size: 100.0,
            price_cents: 100,
            max_stock: 300.0,
            uses,
            lead_times_ms: vec![2 * DAY_MS],
            use_every_days: None,
            driven_by: None,
            metered: false,
        }],
    }
}

#[test]
fn threshold_orders_when_a_fifth_of_capacity_remains() {
    // 50 at the start, 10 a day: 40, 30, 20 left at the ends of days 0, 1, 2.
    let run = run_scenario(&ten_days(50.0), PolicyKind::Threshold).unwrap();
    assert_eq!(
        run.orders,
        [OrderRecord {
            slot: 0,
            day: 2,
            packs: 1,
            on_hand: 20.0,
            lead_ms: 2 * DAY_MS,
            bundled: false,
        }]
    );
    assert_eq!(run.slots[0].stockout_days, 0);
    // It came with 10 still at home: in time.
    assert_eq!((run.slots[0].arrived, run.slots[0].arrived_late), (1, 0));
}

#[test]
fn a_hand_computed_run_gives_the_hand_computed_metrics() {
    // 45 at the start: 35, 25, 15 at the ends of days 0-2; the order placed at the end of day 2
    // (15 <= 20) arrives at the end of day 4. Day 3 leaves 5; day 4 wants 10 and gets 5 (a
    // stockout); the pack goes into the cupboard, loaded on day 5: 90, 80, 70, 60, 50.
    let run = run_scenario(&ten_days(45.0), PolicyKind::Threshold).unwrap();
    let s = &run.slots[0];
    assert_eq!(s.stockouts, [4]);
    assert_eq!((s.days, s.orders, s.prompts, s.refills), (10, 1, 1, 1));
    assert_eq!((s.demanded, s.served), (100.0, 95.0));
    // The one order came after day 4's use went short: late.
    assert_eq!((s.arrived, s.arrived_late), (1, 1));
    assert_eq!(
        s.on_hand_sum,
        35.0 + 25.0 + 15.0 + 5.0 + 100.0 + 90.0 + 80.0 + 70.0 + 60.0 + 50.0
    );
    let m = summarize(std::slice::from_ref(&run)).policies.threshold;
    assert_eq!(m.stockout_item_days_per_1000, 100.0);
    assert_eq!(m.fill_rate, 0.95);
    assert!((m.mean_days_of_supply - 5.3).abs() < 1e-12);
    assert!((m.orders_per_item_year - 36.5).abs() < 1e-12);
    assert!((m.prompts_per_item_year - 36.5).abs() < 1e-12);
    assert_eq!(m.late_order_share, 1.0);
}

#[test]
fn the_warm_up_is_left_out_of_the_metrics() {
    let mut scenario = ten_days(45.0);
    scenario.warmup_days = 5;
    let run = run_scenario(&scenario, PolicyKind::Threshold).unwrap();
    let s = &run.slots[0];
    // The stockout (day 4) and the order (day 2) fall in the warm-up.
    assert_eq!((s.days, s.stockout_days, s.orders), (5, 0, 0));
    assert_eq!((s.arrived, s.arrived_late), (0, 0));
    assert_eq!(s.on_hand_sum, 90.0 + 80.0 + 70.0 + 60.0 + 50.0);
}

#[test]
fn the_oracle_orders_at_the_last_moment_and_never_runs_out() {
    // 45 lasts through day 3 and leaves 5; an order at the end of day 2 is the last one that
    // arrives (end of day 4) before day 4's use... which needs 10 and finds 5: too late. The
    // oracle orders at the end of day 1 (25 left, days 2-4 need 30).
    let run = run_scenario(&ten_days(45.0), PolicyKind::Oracle).unwrap();
    assert_eq!(run.slots[0].stockout_days, 0);
    assert_eq!(run.orders[0].day, 1);
    // It covers the 14-day target within the maximum stock: days 4-9 need 60 minus the 5 left.
    assert_eq!(run.orders[0].packs, 1);
}

#[test]
fn the_oracle_never_runs_out_when_delivery_times_are_known() {
    for archetype in Archetype::ALL {
        for lead in LeadSetting::ALL {
            for seed in 0..2 {
                let scenario = archetype.scenario(seed, lead, 365);
                let run = run_scenario(&scenario, PolicyKind::Oracle).unwrap();
                for (slot, plan) in run.slots.iter().zip(&scenario.slots) {
                    assert_eq!(
                        slot.stockouts,
                        Vec::<usize>::new(),
                        "{} {} seed {seed} {}",
                        archetype.name(),
                        lead.label(),
                        plan.slot
                    );
                    assert!(slot.orders > 0 || plan.slot == "descaler" || plan.metered);
                }
            }
        }
    }
}

#[test]
fn a_bench_is_the_same_for_a_seed_whatever_the_threads() {
    let options = BenchOptions {
        seeds: 2,
        days: 60,
        archetypes: vec![
            Archetype::Family,
            Archetype::ShiftWorker,
            Archetype::SparseDescaler,
        ],
        workers: 2,
        ..BenchOptions::default()
    };
    let a = run_bench(&options).unwrap();
    let b = run_bench(&options).unwrap();
    let c = run_bench(&BenchOptions {
        workers: 1,
        ..options.clone()
    })
    .unwrap();
    assert_eq!(a.len(), 3 * 2 * 4 * 4);
    assert_eq!(a, b);
    assert_eq!(a, c);
    assert_eq!(summarize(&a), summarize(&c));
    // Another seed range gives other numbers: the comparison above can fail.
    let d = run_bench(&BenchOptions {
        seeds: 3,
        ..options.clone()
    })
    .unwrap();
    assert_ne!(summarize(&a), summarize(&d));
}

#[test]
fn every_policy_faces_the_same_demand() {
    let scenario = Archetype::GuestSpike.scenario(7, LeadSetting::Days(2), 120);
    let runs: Vec<RunResult> = PolicyKind::ALL
        .iter()
        .map(|&p| run_scenario(&scenario, p).unwrap())
        .collect();
    for run in &runs[1..] {
        for (a, b) in run.slots.iter().zip(&runs[0].slots) {
            assert_eq!(a.demanded, b.demanded);
        }
    }
}

#[test]
fn the_agent_run_scores_its_forecasts() {
    let scenario = Archetype::SingleEspresso.scenario(1, LeadSetting::Days(1), 120);
    let run = run_scenario(&scenario, PolicyKind::Agent).unwrap();
    let samples: u64 = run.forecast.horizons.iter().map(|h| h.samples).sum();
    assert!(samples > 0);
    let summary = summarize(std::slice::from_ref(&run));
    let coverage = summary.forecast.coverage_p10_p90.unwrap();
    assert!((0.0..=1.0).contains(&coverage));
    let threshold = run_scenario(&scenario, PolicyKind::Threshold).unwrap();
    assert_eq!(threshold.forecast, Default::default());
}

#[test]
fn json_has_the_issue_shape() {
    let runs = run_bench(&BenchOptions {
        seeds: 1,
        days: 30,
        archetypes: vec![Archetype::SingleEspresso],
        leads: vec![LeadSetting::Days(1)],
        ..BenchOptions::default()
    })
    .unwrap();
    let json = metrics::to_json(&summarize(&runs), &[]);
    let policies = json["policies"].as_object().unwrap();
    let names: Vec<&str> = policies.keys().map(String::as_str).collect();
    assert_eq!(names.len(), 4);
    for name in ["agent", "threshold", "reorder_point", "oracle"] {
        let p = policies[name].as_object().unwrap();
        for key in [
            "stockout_item_days_per_1000",
            "fill_rate",
            "mean_days_of_supply",
            "orders_per_item_year",
            "prompts_per_item_year",
            "late_order_share",
        ] {
            assert!(p[key].is_number(), "{name}.{key}");
        }
        assert_eq!(p.len(), 6);
    }
    for key in [
        "mae_days_at_1",
        "mae_days_at_3",
        "mae_days_at_7",
        "coverage_p10_p90",
    ] {
        assert!(json["forecast"].get(key).is_some(), "{key}");
    }
}

#[test]
fn a_bundled_order_is_one_order_with_a_line_per_slot() {
    let family = Archetype::Family.scenario(0, LeadSetting::Days(2), 120);
    let bundled = run_scenario(&family, PolicyKind::Agent).unwrap();
    let lines = bundled.orders.iter().filter(|o| o.bundled).count();
    assert!(lines > 0, "three slots, 120 days: something joins");
    // Each bundled line follows its order's first line: same day, same delivery time.
    for (i, line) in bundled.orders.iter().enumerate().filter(|(_, o)| o.bundled) {
        let first = bundled.orders[..i]
            .iter()
            .rev()
            .find(|o| !o.bundled)
            .unwrap();
        assert_eq!((line.day, line.lead_ms), (first.day, first.lead_ms));
        assert_ne!(line.slot, first.slot);
    }
    // Orders count shipments: the lines that joined are not orders of their own.
    let counted = |run: &RunResult| run.slots.iter().map(|s| s.orders).sum::<u64>();
    let joined: u64 = bundled.slots.iter().map(|s| s.bundled_lines).sum();
    let after_warmup = |o: &&OrderRecord| o.day >= family.warmup_days;
    let records = bundled.orders.iter().filter(after_warmup).count() as u64;
    assert_eq!(counted(&bundled) + joined, records);
    // Without the window every order has one line, and there are more of them.
    let single = run_scenario(
        &Scenario {
            bundle_days: 0.0,
            ..family.clone()
        },
        PolicyKind::Agent,
    )
    .unwrap();
    assert!(single.orders.iter().all(|o| !o.bundled));
    assert!(counted(&single) > counted(&bundled));
    // The baselines do not bundle.
    let threshold = run_scenario(&family, PolicyKind::Threshold).unwrap();
    assert!(threshold.orders.iter().all(|o| !o.bundled));
}

#[test]
fn a_higher_risk_setting_trades_stockouts_for_less_stock() {
    let options = BenchOptions {
        seeds: 2,
        days: 120,
        archetypes: vec![Archetype::Family, Archetype::WeekendHeavy],
        ..BenchOptions::default()
    };
    let at = |risk: f64| {
        let runs = run_bench(&BenchOptions {
            risk: Some(risk),
            ..options.clone()
        })
        .unwrap();
        summarize(&runs).policies
    };
    let (careful, daring) = (at(0.02), at(0.3));
    assert!(
        daring.agent.mean_days_of_supply < careful.agent.mean_days_of_supply,
        "{daring:?} {careful:?}"
    );
    assert!(
        daring.agent.stockout_item_days_per_1000 > careful.agent.stockout_item_days_per_1000,
        "{daring:?} {careful:?}"
    );
    // The setting is the agent's: the baselines do not move.
    assert_eq!(daring.threshold, careful.threshold);
    assert_eq!(daring.oracle, careful.oracle);
}

#[test]
fn the_risk_frontier_runs_the_agent_alone_and_draws_it() {
    let options = BenchOptions {
        seeds: 1,
        days: 90,
        archetypes: vec![Archetype::WeekendHeavy],
        ..BenchOptions::default()
    };
    let points = risk_frontier(&options, &[0.02, 0.3]).unwrap();
    assert_eq!(points.len(), 2);
    // Alone, the agent gives what it gives next to the other policies: nothing is shared.
    let full = summarize(&run_bench(&options).unwrap()).policies;
    assert_eq!(points[0].risk, 0.02);
    assert_eq!(points[0].agent, full.agent);
    assert!(points[1].agent.mean_days_of_supply < points[0].agent.mean_days_of_supply);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("frontier.svg");
    plot::write_frontier_svg(&path, &points, &full, "test").unwrap();
    let svg = std::fs::read_to_string(&path).unwrap();
    assert!(
        svg.contains("risk 0.3") && svg.contains("threshold ("),
        "{svg}"
    );
}

#[test]
fn declared_links_let_the_agent_hold_less_of_what_they_drive() {
    use scenario::{Archetype, LeadSetting};
    for archetype in [Archetype::DescalerByBrews, Archetype::FilterByVolume] {
        let (mut linked, mut unlinked) = (0.0, 0.0);
        for seed in 0..3 {
            let with = archetype.scenario(seed, LeadSetting::Days(2), 365);
            let mut without = with.clone();
            for slot in &mut without.slots {
                slot.driven_by = None;
            }
            // The meter is reported and never scored; the driven slot is the last.
            assert!(with.slots.iter().any(|s| s.driven_by.is_some()));
            for (scenario, total) in [(&with, &mut linked), (&without, &mut unlinked)] {
                let run = run_scenario(scenario, PolicyKind::Agent).unwrap();
                let driven = run.slots.last().unwrap();
                assert_eq!(
                    driven.stockouts,
                    Vec::<usize>::new(),
                    "{}",
                    archetype.name()
                );
                *total += driven.days_of_supply().unwrap();
            }
        }
        assert!(
            linked < 0.9 * unlinked,
            "{}: {linked:.1} days of supply with the link, {unlinked:.1} without",
            archetype.name()
        );
    }
}
