//! The agent is killed (SIGKILL) ten times at seeded random moments while it orders from a
//! sandbox shop that fails 30 % of requests in every way `--faults all=0.3` knows (5xx, slow,
//! out of stock, taken then timed out or cut, cancelled, deliveries reported twice). No order
//! may be placed twice or lost; every order ends placed or refused with a reason.
//! `replenish-sim chaos --kills 50` is the longer run (README).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::path::PathBuf;

use replenish_sim::chaos::{ChaosPlan, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_sigkills_at_30_percent_shop_faults_lose_and_double_no_order() {
    let plan = ChaosPlan {
        kills: 10,
        faults: "all=0.3".into(),
        seed: 7,
        initial_orders: 10,
        max_round_ms: 1200,
        program: PathBuf::from(env!("CARGO_BIN_EXE_replenish-sim")),
        serve_agent: true,
    };
    let outcome = run(&plan, |line| eprintln!("{line}")).await.unwrap();
    eprintln!("{outcome:?}");
    assert_eq!(outcome.kills, 10);
    assert_eq!(
        outcome.orders, 20,
        "10 before the first start, one after each kill"
    );
    assert_eq!(outcome.doubles, 0, "{:?}", outcome.problems);
    assert_eq!(outcome.lost, 0, "{:?}", outcome.problems);
    assert_eq!(outcome.placed + outcome.failed_told, outcome.orders);
    assert!(outcome.problems.is_empty(), "{:?}", outcome.problems);
    // The faults did happen: a run without them would prove nothing.
    let injected: u64 = outcome.injected.values().sum();
    assert!(injected >= 5, "{:?}", outcome.injected);
    assert!(outcome.requests > outcome.orders, "retries were needed");
}
