//! `replenish-sim bench` and `replenish-sim replay`: the agent's pure engine, driven directly (no
//! broker, no HTTP, no async), under four reorder policies, on seeded household archetypes or on
//! a recorded consumption trace.
//!
//! * [`scenario`]: households, their true demand and the delivery time of every order.
//! * [`harness`]: one scenario under one policy, day by day, through [`Engine`](replenish_agent::engine::Engine).
//! * [`policies`]: `agent`, `threshold`, `reorder_point` and `oracle`.
//! * [`metrics`]: the report, reduced in run order (the same for a seed, however threads run).
//! * [`replay`]: scenarios from a CSV trace and a TOML slot list.
//! * [`plot`]: the SVG picture.
//! * [`ingest`]: the agent's MQTT ingest against Mosquitto (`bench ingest`).
//! * [`appliances`]: the virtual appliances headless, in appliance-days per second
//!   (`bench appliances`).

pub mod appliances;
pub mod harness;
pub mod ingest;
pub mod metrics;
pub mod plot;
pub mod policies;
pub mod replay;
pub mod scenario;

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::anyhow;
use indicatif::{ProgressBar, ProgressStyle};

pub use harness::{RunResult, run_scenario};
pub use metrics::{Summary, summarize, targets};
pub use policies::PolicyKind;
pub use scenario::{Archetype, LeadSetting, Scenario};

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Seeds 0..seeds.
    pub seeds: u64,
    /// Days per run.
    pub days: usize,
    /// Archetypes.
    pub archetypes: Vec<Archetype>,
    /// Households of a scenario file, run instead of the archetypes when there are any.
    pub households: Vec<crate::scenario::HouseholdScript>,
    /// Delivery-time settings.
    pub leads: Vec<LeadSetting>,
    /// Worker threads.
    pub workers: usize,
    /// Whether to draw a progress bar on stderr.
    pub progress: bool,
    /// The agent's bundling window in days (`None`: the default).
    pub bundle_days: Option<f64>,
    /// The agent's risk setting (`None`: the default, 2%).
    pub risk: Option<f64>,
    /// The policies to run (default: all four).
    pub policies: Vec<PolicyKind>,
    /// Multiplies the days between uses every product declares to the agent (1: as
    /// declared; 2: the maker's figure twice the household's; 0: no priors at all).
    pub prior_scale: f64,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            seeds: 20,
            days: 365,
            archetypes: Archetype::ALL.to_vec(),
            households: Vec::new(),
            leads: LeadSetting::ALL.to_vec(),
            workers: 2,
            progress: false,
            bundle_days: None,
            risk: None,
            policies: PolicyKind::ALL.to_vec(),
            prior_scale: 1.0,
        }
    }
}

/// Runs every archetype × seed × delivery setting under every policy; results in that order.
pub fn run_bench(options: &BenchOptions) -> anyhow::Result<Vec<RunResult>> {
    // What a job simulates: an archetype, or a household of a scenario file.
    #[derive(Clone, Copy)]
    enum Who {
        Archetype(Archetype),
        Household(usize),
    }
    let who: Vec<Who> = if options.households.is_empty() {
        options
            .archetypes
            .iter()
            .map(|&a| Who::Archetype(a))
            .collect()
    } else {
        (0..options.households.len()).map(Who::Household).collect()
    };
    let mut jobs = Vec::new();
    for &w in &who {
        for seed in 0..options.seeds {
            for &lead in &options.leads {
                jobs.push((w, seed, lead));
            }
        }
    }
    let bar = progress_bar(
        options.progress,
        jobs.len() * options.policies.len(),
        "runs",
    );
    let results = run_jobs(jobs.len(), options.workers, |i| {
        let (who, seed, lead) = jobs[i];
        let mut scenario = match who {
            Who::Archetype(archetype) => archetype.scenario(seed, lead, options.days),
            Who::Household(n) => {
                scenario::from_household(&options.households[n], seed, lead, options.days)
            }
        };
        if let Some(days) = options.bundle_days {
            scenario.bundle_days = days;
        }
        if let Some(risk) = options.risk {
            scenario.risk = risk;
        }
        for slot in &mut scenario.slots {
            slot.use_every_days = slot
                .use_every_days
                .map(|d| d * options.prior_scale)
                .filter(|d| *d > 0.0);
            if let Some(link) = &mut slot.driven_by {
                link.every *= options.prior_scale;
            }
            if options.prior_scale <= 0.0 {
                slot.driven_by = None;
            }
        }
        run_policies(&scenario, &options.policies, &bar)
    });
    bar.finish_and_clear();
    Ok(results?.into_iter().flatten().collect())
}

/// Runs scenarios under every policy; results in scenario order, then policy order.
pub fn run_scenarios(
    scenarios: &[Scenario],
    workers: usize,
    progress: bool,
) -> anyhow::Result<Vec<RunResult>> {
    let bar = progress_bar(progress, scenarios.len() * PolicyKind::ALL.len(), "runs");
    let results = run_jobs(scenarios.len(), workers, |i| {
        run_policies(&scenarios[i], &PolicyKind::ALL, &bar)
    });
    bar.finish_and_clear();
    Ok(results?.into_iter().flatten().collect())
}

/// One point of the agent's trade-off between stockouts and stock.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct FrontierPoint {
    /// The risk setting of every consumable.
    pub risk: f64,
    /// The agent's metrics at that setting.
    pub agent: metrics::PolicyMetrics,
}

/// Runs the agent alone at each risk setting (every other option as in `options`): where its
/// trade-off between running out and holding stock lies against the baselines.
pub fn risk_frontier(options: &BenchOptions, risks: &[f64]) -> anyhow::Result<Vec<FrontierPoint>> {
    risks
        .iter()
        .map(|&risk| {
            let runs = run_bench(&BenchOptions {
                risk: Some(risk),
                policies: vec![PolicyKind::Agent],
                ..options.clone()
            })?;
            Ok(FrontierPoint {
                risk,
                agent: summarize(&runs).policies.agent,
            })
        })
        .collect()
}

fn run_policies(
    scenario: &Scenario,
    policies: &[PolicyKind],
    bar: &ProgressBar,
) -> anyhow::Result<Vec<RunResult>> {
    policies
        .iter()
        .map(|&policy| {
            let result = run_scenario(scenario, policy);
            bar.inc(1);
            result
        })
        .collect()
}

fn progress_bar(visible: bool, len: usize, what: &str) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len as u64);
    let template =
        format!("{{spinner}} [{{bar:40}}] {{pos}}/{{len}} {what} ({{elapsed}}, eta {{eta}})");
    bar.set_style(
        ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Runs `job(0..n)` on `workers` threads and returns the results in index order, or the first
/// error by index.
fn run_jobs<T: Send>(
    n: usize,
    workers: usize,
    job: impl Fn(usize) -> anyhow::Result<T> + Sync,
) -> anyhow::Result<Vec<T>> {
    let next = AtomicUsize::new(0);
    let done: Vec<Mutex<Option<anyhow::Result<T>>>> = (0..n).map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..workers.clamp(1, n.max(1)) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let result = job(i);
                    if let Ok(mut slot) = done[i].lock() {
                        *slot = Some(result);
                    }
                }
            });
        }
    });
    done.into_iter()
        .enumerate()
        .map(|(i, m)| {
            m.into_inner()
                .ok()
                .flatten()
                .unwrap_or_else(|| Err(anyhow!("job {i} did not finish")))
        })
        .collect()
}

#[cfg(test)]
mod tests;
