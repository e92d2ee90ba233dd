//! From runs to the numbers of the report: per policy, over all runs, reduced in run order so
//! that the result does not depend on which thread finished first.

use std::collections::BTreeMap;
use std::io::{self, Write};

use serde::{Deserialize, Serialize};

use super::harness::{ForecastTally, HorizonTally, RunResult};
use super::policies::PolicyKind;

/// The five numbers of one policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PolicyMetrics {
    /// Item-days with unmet demand per 1000 item-days.
    pub stockout_item_days_per_1000: f64,
    /// Demand served over demand, averaged over items (each item of each run weighs the same,
    /// whatever its unit).
    pub fill_rate: f64,
    /// Mean stock at home (appliance plus cupboard) over mean daily demand, averaged over items.
    pub mean_days_of_supply: f64,
    /// Orders per item and year.
    pub orders_per_item_year: f64,
    /// Approval prompts per item and year (every proposed order would be one in manual mode).
    pub prompts_per_item_year: f64,
    /// Share of orders (lines) that arrived after their slot's stock had run out: for the
    /// agent, the risk per order it was set to keep, as it turned out.
    #[serde(default)]
    pub late_order_share: f64,
}

/// The four policies, in report order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Policies {
    /// The agent's policy.
    pub agent: PolicyMetrics,
    /// Dash-style threshold.
    pub threshold: PolicyMetrics,
    /// Static (s, Q).
    pub reorder_point: PolicyMetrics,
    /// Perfect foresight.
    pub oracle: PolicyMetrics,
}

impl Policies {
    /// The metrics of `kind`.
    pub fn get(&self, kind: PolicyKind) -> &PolicyMetrics {
        match kind {
            PolicyKind::Agent => &self.agent,
            PolicyKind::Threshold => &self.threshold,
            PolicyKind::ReorderPoint => &self.reorder_point,
            PolicyKind::Oracle => &self.oracle,
        }
    }

    fn get_mut(&mut self, kind: PolicyKind) -> &mut PolicyMetrics {
        match kind {
            PolicyKind::Agent => &mut self.agent,
            PolicyKind::Threshold => &mut self.threshold,
            PolicyKind::ReorderPoint => &mut self.reorder_point,
            PolicyKind::Oracle => &mut self.oracle,
        }
    }
}

/// Accuracy of the agent's forecast model, from its runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ForecastMetrics {
    /// Mean |predicted − true empty date| in days, one day before the true one.
    pub mae_days_at_1: Option<f64>,
    /// The same, three days before.
    pub mae_days_at_3: Option<f64>,
    /// The same, seven days before.
    pub mae_days_at_7: Option<f64>,
    /// Share of sampled days whose true empty date lay between the predicted P10 and P90.
    pub coverage_p10_p90: Option<f64>,
}

/// Counts behind the forecast metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ForecastCounts {
    /// Days sampled 1, 3 and 7 days before the true empty date.
    pub samples: [u64; 3],
    /// Of those, days the model predicted no empty date (too little history, or no use).
    pub unpredicted: [u64; 3],
    /// Coverage at each horizon.
    pub coverage: [Option<f64>; 3],
}

/// Totals behind the policy metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    /// Runs (scenario × policy).
    pub runs: u64,
    /// Item-days per policy.
    pub item_days: u64,
    /// Item-days with unmet demand, per policy in report order.
    pub stockout_item_days: [u64; 4],
    /// Orders, per policy in report order.
    pub orders: [u64; 4],
}

/// The whole report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Per policy, over every run.
    pub policies: Policies,
    /// The agent's forecast accuracy.
    pub forecast: ForecastMetrics,
    /// Per scenario name (archetype or household), per policy.
    pub breakdown: BTreeMap<String, Policies>,
    /// Per consumable over every scenario, per policy.
    pub by_consumable: BTreeMap<String, Policies>,
    /// Totals.
    pub counts: Counts,
    /// Forecast sample counts.
    pub forecast_counts: ForecastCounts,
}

#[derive(Debug, Default, Clone)]
struct Tally {
    item_days: u64,
    stockout_days: u64,
    fill_sum: f64,
    fill_n: u64,
    dos_sum: f64,
    dos_n: u64,
    orders: u64,
    prompts: u64,
    arrived: u64,
    arrived_late: u64,
}

impl Tally {
    fn add(&mut self, run: &RunResult) {
        for s in &run.slots {
            self.add_slot(s);
        }
    }

    fn add_slot(&mut self, s: &super::harness::SlotOutcome) {
        {
            self.item_days += s.days;
            self.stockout_days += s.stockout_days;
            if let Some(f) = s.fill_rate() {
                self.fill_sum += f;
                self.fill_n += 1;
            }
            if let Some(d) = s.days_of_supply() {
                self.dos_sum += d;
                self.dos_n += 1;
            }
            self.orders += s.orders;
            self.arrived += s.arrived;
            self.arrived_late += s.arrived_late;
            self.prompts += s.prompts;
        }
    }

    fn metrics(&self) -> PolicyMetrics {
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        let years = self.item_days as f64 / 365.0;
        PolicyMetrics {
            stockout_item_days_per_1000: ratio(
                self.stockout_days as f64 * 1000.0,
                self.item_days as f64,
            ),
            fill_rate: ratio(self.fill_sum, self.fill_n as f64),
            mean_days_of_supply: ratio(self.dos_sum, self.dos_n as f64),
            orders_per_item_year: ratio(self.orders as f64, years),
            prompts_per_item_year: ratio(self.prompts as f64, years),
            late_order_share: ratio(self.arrived_late as f64, self.arrived as f64),
        }
    }
}

fn index(kind: PolicyKind) -> usize {
    match kind {
        PolicyKind::Agent => 0,
        PolicyKind::Threshold => 1,
        PolicyKind::ReorderPoint => 2,
        PolicyKind::Oracle => 3,
    }
}

/// Reduces runs, in the order given, to the report.
pub fn summarize(runs: &[RunResult]) -> Summary {
    let mut total: [Tally; 4] = Default::default();
    let mut by_name: BTreeMap<String, [Tally; 4]> = BTreeMap::new();
    let mut by_consumable: BTreeMap<String, [Tally; 4]> = BTreeMap::new();
    let mut forecast = ForecastTally::default();
    let mut counts = Counts::default();
    for run in runs {
        let i = index(run.policy);
        total[i].add(run);
        by_name.entry(run.scenario.clone()).or_default()[i].add(run);
        for slot in run.slots.iter().filter(|s| s.days > 0) {
            by_consumable.entry(slot.consumable.clone()).or_default()[i].add_slot(slot);
        }
        if run.policy == PolicyKind::Agent {
            for (sum, h) in forecast.horizons.iter_mut().zip(&run.forecast.horizons) {
                sum.add(h);
            }
        }
        counts.runs += 1;
    }
    let policies = |t: &[Tally; 4]| {
        let mut p = Policies::default();
        for kind in PolicyKind::ALL {
            *p.get_mut(kind) = t[index(kind)].metrics();
        }
        p
    };
    counts.item_days = total[0].item_days;
    for kind in PolicyKind::ALL {
        counts.stockout_item_days[index(kind)] = total[index(kind)].stockout_days;
        counts.orders[index(kind)] = total[index(kind)].orders;
    }
    let mae = |h: &HorizonTally| (h.predicted > 0).then(|| h.abs_error_days / h.predicted as f64);
    let coverage = |h: &HorizonTally| (h.samples > 0).then(|| h.covered as f64 / h.samples as f64);
    let mut all = HorizonTally::default();
    for h in &forecast.horizons {
        all.add(h);
    }
    let [h1, h3, h7] = &forecast.horizons;
    Summary {
        policies: policies(&total),
        forecast: ForecastMetrics {
            mae_days_at_1: mae(h1),
            mae_days_at_3: mae(h3),
            mae_days_at_7: mae(h7),
            coverage_p10_p90: coverage(&all),
        },
        breakdown: by_name
            .iter()
            .map(|(name, t)| (name.clone(), policies(t)))
            .collect(),
        by_consumable: by_consumable
            .iter()
            .map(|(name, t)| (name.clone(), policies(t)))
            .collect(),
        counts,
        forecast_counts: ForecastCounts {
            samples: forecast.horizons.clone().map(|h| h.samples),
            unpredicted: forecast.horizons.clone().map(|h| h.samples - h.predicted),
            coverage: [coverage(h1), coverage(h3), coverage(h7)],
        },
    }
}

/// One of the targets, checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// What is required, with the numbers.
    pub text: String,
    /// Whether it is met.
    pub met: bool,
}

/// The targets (issue 16's, stricter than issue 10's 1/10 and 1.3×): stockouts at most a
/// twentieth of the threshold policy's with no more days of supply; days of supply at most
/// 1.15× the oracle's; P10-P90 coverage in [0.75, 0.85]; prompts no more than the threshold
/// policy's.
pub fn targets(summary: &Summary) -> Vec<Target> {
    let a = &summary.policies.agent;
    let t = &summary.policies.threshold;
    let o = &summary.policies.oracle;
    let coverage = summary.forecast.coverage_p10_p90;
    vec![
        Target {
            text: format!(
                "agent stockouts <= 1/20 of threshold's ({:.2} vs {:.2} per 1000 item-days) with \
                 days of supply <= threshold's ({:.1} vs {:.1})",
                a.stockout_item_days_per_1000,
                t.stockout_item_days_per_1000,
                a.mean_days_of_supply,
                t.mean_days_of_supply
            ),
            met: a.stockout_item_days_per_1000 * 20.0 <= t.stockout_item_days_per_1000
                && a.mean_days_of_supply <= t.mean_days_of_supply,
        },
        Target {
            text: format!(
                "agent days of supply <= 1.15x oracle's ({:.2} vs {:.2}, limit {:.2})",
                a.mean_days_of_supply,
                o.mean_days_of_supply,
                1.15 * o.mean_days_of_supply
            ),
            met: a.mean_days_of_supply <= 1.15 * o.mean_days_of_supply,
        },
        Target {
            text: format!(
                "P10-P90 coverage in [0.75, 0.85] ({})",
                coverage.map_or_else(|| "no samples".to_string(), |c| format!("{c:.3}"))
            ),
            met: coverage.is_some_and(|c| (0.75..=0.85).contains(&c)),
        },
        Target {
            text: format!(
                "agent prompts <= threshold's ({:.1} vs {:.1} per item-year)",
                a.prompts_per_item_year, t.prompts_per_item_year
            ),
            met: a.prompts_per_item_year <= t.prompts_per_item_year,
        },
    ]
}

fn opt(x: Option<f64>, digits: usize) -> String {
    x.map_or_else(|| "n/a".to_string(), |v| format!("{v:.digits$}"))
}

/// Prints the agent's metrics at each risk setting.
pub fn write_frontier(out: &mut dyn Write, points: &[super::FrontierPoint]) -> io::Result<()> {
    writeln!(
        out,
        "{:<14} {:>16} {:>10} {:>15} {:>17} {:>12}",
        "agent at risk",
        "stockouts/1000",
        "fill rate",
        "days of supply",
        "orders/item-year",
        "late orders"
    )?;
    for p in points {
        let m = &p.agent;
        writeln!(
            out,
            "{:<14} {:>16.2} {:>10.4} {:>15.2} {:>17.2} {:>11.2}%",
            p.risk,
            m.stockout_item_days_per_1000,
            m.fill_rate,
            m.mean_days_of_supply,
            m.orders_per_item_year,
            m.late_order_share * 100.0
        )?;
    }
    Ok(())
}

/// Writes the policy table and the forecast line.
pub fn write_table(out: &mut dyn Write, summary: &Summary) -> io::Result<()> {
    writeln!(
        out,
        "{:<14} {:>16} {:>10} {:>15} {:>17} {:>18} {:>12}",
        "policy",
        "stockouts/1000",
        "fill rate",
        "days of supply",
        "orders/item-year",
        "prompts/item-year",
        "late orders"
    )?;
    for kind in PolicyKind::ALL {
        let m = summary.policies.get(kind);
        writeln!(
            out,
            "{:<14} {:>16.2} {:>10.4} {:>15.2} {:>17.2} {:>18.2} {:>11.2}%",
            kind.name(),
            m.stockout_item_days_per_1000,
            m.fill_rate,
            m.mean_days_of_supply,
            m.orders_per_item_year,
            m.prompts_per_item_year,
            m.late_order_share * 100.0
        )?;
    }
    let f = &summary.forecast;
    let c = &summary.forecast_counts;
    writeln!(
        out,
        "forecast (agent model): MAE of the empty date {} d at 1 day (n={}), {} d at 3 days \
         (n={}), {} d at 7 days (n={}); P10-P90 coverage {} (1/3/7 days: {}/{}/{})",
        opt(f.mae_days_at_1, 2),
        c.samples[0],
        opt(f.mae_days_at_3, 2),
        c.samples[1],
        opt(f.mae_days_at_7, 2),
        c.samples[2],
        opt(f.coverage_p10_p90, 3),
        opt(c.coverage[0], 2),
        opt(c.coverage[1], 2),
        opt(c.coverage[2], 2),
    )
}

/// Writes the per-scenario breakdown (stockouts and days of supply per policy).
pub fn write_breakdown(out: &mut dyn Write, summary: &Summary, title: &str) -> io::Result<()> {
    write_rows(out, &summary.breakdown, title)
}

/// Writes the breakdown per consumable, over every scenario.
pub fn write_by_consumable(out: &mut dyn Write, summary: &Summary) -> io::Result<()> {
    write_rows(out, &summary.by_consumable, "consumable")
}

fn write_rows(
    out: &mut dyn Write,
    rows: &BTreeMap<String, Policies>,
    title: &str,
) -> io::Result<()> {
    write!(out, "{title:<18}")?;
    for kind in PolicyKind::ALL {
        write!(out, " {:>24}", format!("{} so/dos/late%", kind.name()))?;
    }
    writeln!(out)?;
    for (name, p) in rows {
        write!(out, "{name:<18}")?;
        for kind in PolicyKind::ALL {
            let m = p.get(kind);
            write!(
                out,
                " {:>24}",
                format!(
                    "{:.1} / {:.1} / {:.1}",
                    m.stockout_item_days_per_1000,
                    m.mean_days_of_supply,
                    m.late_order_share * 100.0
                )
            )?;
        }
        writeln!(out)?;
    }
    Ok(())
}

/// Writes the targets, each MET or NOT MET.
pub fn write_targets(out: &mut dyn Write, targets: &[Target]) -> io::Result<()> {
    writeln!(out, "targets:")?;
    for t in targets {
        let verdict = if t.met { "MET" } else { "NOT MET" };
        writeln!(out, "  [{verdict}] {}", t.text)?;
    }
    Ok(())
}

/// The JSON document: `{"policies": …, "forecast": …}` plus details.
pub fn to_json(summary: &Summary, extra: &[(&str, serde_json::Value)]) -> serde_json::Value {
    let mut doc = serde_json::Map::new();
    doc.insert(
        "policies".into(),
        serde_json::to_value(summary.policies).unwrap_or_default(),
    );
    doc.insert(
        "forecast".into(),
        serde_json::to_value(summary.forecast).unwrap_or_default(),
    );
    for (key, value) in extra {
        doc.insert((*key).to_string(), value.clone());
    }
    doc.insert(
        "breakdown".into(),
        serde_json::to_value(&summary.breakdown).unwrap_or_default(),
    );
    doc.insert(
        "by_consumable".into(),
        serde_json::to_value(&summary.by_consumable).unwrap_or_default(),
    );
    doc.insert(
        "counts".into(),
        serde_json::to_value(summary.counts).unwrap_or_default(),
    );
    doc.insert(
        "forecast_counts".into(),
        serde_json::to_value(summary.forecast_counts).unwrap_or_default(),
    );
    serde_json::Value::Object(doc)
}
