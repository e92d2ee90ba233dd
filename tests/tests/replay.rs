//! `replenish-sim replay` on the example in docs/examples: known numbers, computed once with
//! `cargo run -p replenish-sim -- replay --trace docs/examples/replay-trace.csv --slots
//! docs/examples/replay-slots.toml --json out.json` and asserted exactly.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::path::PathBuf;

use replenish_sim::bench::metrics::{PolicyMetrics, Summary};
use replenish_sim::bench::{replay, run_scenarios, summarize};

fn example() -> Summary {
    let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/examples");
    let scenarios = replay::load(
        &docs.join("replay-trace.csv"),
        &docs.join("replay-slots.toml"),
    )
    .expect("the example parses");
    // Beans (2-day delivery) and milk (1-day) get an agent each; 21 days.
    assert_eq!(scenarios.len(), 2);
    assert!(scenarios.iter().all(|s| s.days == 21));
    summarize(&run_scenarios(&scenarios, 2, false).expect("the example replays"))
}

#[test]
fn the_example_replays_to_known_numbers_for_the_baselines() {
    let s = example();
    assert_eq!(s.counts.runs, 8);
    assert_eq!(s.counts.item_days, 42);
    // agent, threshold, reorder_point, oracle
    assert_eq!(s.counts.stockout_item_days[1..], [5, 3, 0]);
    assert_eq!(s.counts.orders[1..], [8, 6, 5]);
    assert_eq!(
        s.policies.threshold,
        PolicyMetrics {
            stockout_item_days_per_1000: 119.04761904761905,
            fill_rate: 0.9283453186508931,
            mean_days_of_supply: 4.63732341688958,
            orders_per_item_year: 69.52380952380952,
            prompts_per_item_year: 69.52380952380952,
            // 4 of its 7 orders arrived after a use had gone short.
            late_order_share: 4.0 / 7.0,
        }
    );
    assert_eq!(
        s.policies.reorder_point,
        PolicyMetrics {
            stockout_item_days_per_1000: 71.42857142857143,
            fill_rate: 0.9603494623655914,
            mean_days_of_supply: 6.002927921016246,
            orders_per_item_year: 52.142857142857146,
            prompts_per_item_year: 52.142857142857146,
            late_order_share: 0.5,
        }
    );
    assert_eq!(
        s.policies.oracle,
        PolicyMetrics {
            stockout_item_days_per_1000: 0.0,
            fill_rate: 1.0,
            mean_days_of_supply: 6.13397630811302,
            orders_per_item_year: 43.452380952380956,
            prompts_per_item_year: 43.452380952380956,
            late_order_share: 0.0,
        }
    );
}

/// These follow the agent's forecast model and policy: when either changes on purpose, rerun
/// the command above and update them.
#[test]
fn the_example_replays_to_known_numbers_for_the_agent() {
    let s = example();
    assert_eq!((s.counts.stockout_item_days[0], s.counts.orders[0]), (0, 6));
    assert_eq!(
        s.policies.agent,
        PolicyMetrics {
            stockout_item_days_per_1000: 0.0,
            fill_rate: 1.0,
            mean_days_of_supply: 7.995174226111626,
            orders_per_item_year: 52.142857142857146,
            prompts_per_item_year: 52.142857142857146,
            late_order_share: 0.0,
        }
    );
    assert_eq!(s.forecast_counts.samples, [0, 3, 2]);
    assert_eq!(s.forecast.mae_days_at_3, Some(0.4812924382716049));
    assert_eq!(s.forecast.mae_days_at_7, Some(1.0360011574074075));
    assert_eq!(s.forecast.coverage_p10_p90, Some(0.8));
}
