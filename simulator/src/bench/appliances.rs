//! `replenish-sim bench appliances`: how fast the virtual appliances run headless, in
//! appliance-days per second on one core.
//!
//! The households of a scenario file (the default: a coffee maker and a fridge each), stocked by
//! hand as `devices` stocks them, on the real firmware runtime and simulated sensors, without a
//! broker: what they would send is encoded (binary for the coffee maker, JSON for the fridge)
//! and counted. The scenario's events happen (Wi-Fi outages buffer reports, power cuts reboot).
//! Time is stepped five simulated minutes at a time, as in the demo. The baseline measured in
//! the same run is the household alone (its schedule and the slot arithmetic, no sensors or
//! firmware), so the report says what the firmware and sensor simulation cost over it.

use std::time::Instant;

use replenish_agent::clock::{DAY_MS, UnixMs};

use crate::headless::HeadlessHome;
use crate::household::Action;
use crate::loadcell::Fidelity;
use crate::scenario::{self, HouseholdScript, Scenario};
use crate::world::STEP_MS;

/// What to run.
#[derive(Debug, Clone)]
pub struct AppliancesOptions {
    /// The households (cycled through, copies included, when `households` asks for more).
    pub scenario: Scenario,
    /// Households to run; `None`: the scenario's.
    pub households: Option<usize>,
    /// Simulated days.
    pub days: u64,
    /// Seed.
    pub seed: u64,
}

/// The figures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AppliancesReport {
    /// The scenario's name.
    pub scenario: String,
    /// Households simulated.
    pub households: usize,
    /// Appliances simulated.
    pub appliances: usize,
    /// Simulated days each.
    pub days: u64,
    /// Appliance-days in all.
    pub appliance_days: u64,
    /// Wall-clock seconds of the appliances run.
    pub seconds: f64,
    /// Appliance-days per second (one core), load cells' readings handed to the firmware.
    pub appliance_days_per_second: f64,
    /// Wall-clock seconds of the same run with every load cell read through the HX711 driver.
    pub driver_seconds: f64,
    /// Appliance-days per second of that run.
    pub driver_appliance_days_per_second: f64,
    /// Messages the appliances encoded (births, reports).
    pub messages: u64,
    /// Their payload bytes.
    pub bytes: u64,
    /// Planned actions carried out.
    pub actions: u64,
    /// The baseline: household-days per second of the schedule alone, the same run.
    pub baseline_household_days_per_second: f64,
    /// Appliance-days per second over the baseline's household-days per second.
    pub ratio_to_baseline: f64,
}

/// Runs the appliances, then the baseline, on this thread.
pub fn run(options: &AppliancesOptions) -> anyhow::Result<AppliancesReport> {
    anyhow::ensure!(options.days > 0, "--days must be at least 1");
    let start = options.scenario.start_ms()?;
    let end = start + options.days * DAY_MS;
    let fleet = scenario::fleet(
        &options.scenario,
        options.seed,
        start,
        options.households,
        None,
    );
    let households = fleet.len();
    anyhow::ensure!(households > 0, "--households must be at least 1");
    let plan = |n: usize| -> (&HouseholdScript, u64) { (&fleet[n].0, fleet[n].1) };

    // Readings handed to the firmware's detection (the headless figure), then the same run
    // with every load cell read bit by bit through the HX711 driver; both must send the same.
    let fast = run_fleet(&fleet, start, end, Fidelity::Reading)?;
    let driver = run_fleet(&fleet, start, end, Fidelity::Driver)?;
    anyhow::ensure!(
        (fast.messages, fast.bytes, fast.actions)
            == (driver.messages, driver.bytes, driver.actions),
        "the two fidelities differ: {fast:?} against {driver:?}"
    );
    let appliances = fast.appliances;
    let (seconds, messages, bytes, actions) =
        (fast.seconds, fast.messages, fast.bytes, fast.actions);
    let appliance_days = appliances as u64 * options.days;

    // The baseline: the same schedules and amounts, without sensors or firmware.
    let baseline_started = Instant::now();
    let mut baseline_actions = 0u64;
    for n in 0..households {
        let (script, seed) = plan(n);
        let mut schedule = script.schedule(seed, start);
        let mut beans = 600.0f64;
        let mut now: UnixMs = start;
        while now < end {
            now += STEP_MS;
            for planned in schedule.due(now) {
                baseline_actions += 1;
                if let Action::Brew { beans: dose, .. } = planned.action {
                    beans = if beans < dose { 1000.0 } else { beans } - dose;
                }
            }
        }
        std::hint::black_box(beans);
    }
    let baseline_seconds = baseline_started.elapsed().as_secs_f64();
    anyhow::ensure!(
        baseline_actions == actions,
        "the baseline planned {baseline_actions} actions, the appliances {actions}"
    );
    let per_second = appliance_days as f64 / seconds.max(1e-9);
    let driver_per_second = appliance_days as f64 / driver.seconds.max(1e-9);
    let baseline = (households as u64 * options.days) as f64 / baseline_seconds.max(1e-9);
    Ok(AppliancesReport {
        scenario: options.scenario.name.clone(),
        households,
        appliances,
        days: options.days,
        appliance_days,
        seconds,
        appliance_days_per_second: per_second,
        driver_seconds: driver.seconds,
        driver_appliance_days_per_second: driver_per_second,
        messages,
        bytes,
        actions,
        baseline_household_days_per_second: baseline,
        ratio_to_baseline: per_second / baseline,
    })
}

/// What one pass over the fleet did.
#[derive(Debug)]
struct Pass {
    appliances: usize,
    seconds: f64,
    messages: u64,
    bytes: u64,
    actions: u64,
}

fn run_fleet(
    fleet: &[(HouseholdScript, u64)],
    start: UnixMs,
    end: UnixMs,
    fidelity: Fidelity,
) -> anyhow::Result<Pass> {
    let mut homes = Vec::with_capacity(fleet.len());
    for (script, seed) in fleet {
        homes.push(HeadlessHome::new(script.clone(), *seed, start, fidelity)?);
    }
    let appliances = homes.iter().map(|h| h.devices.len()).sum();
    let (mut messages, mut bytes, mut actions) = (0u64, 0u64, 0u64);
    let started = Instant::now();
    for home in &mut homes {
        let mut now = start;
        while now < end {
            let since = now;
            now += STEP_MS;
            let done = home.step(since, now, |_, _, payload| {
                messages += 1;
                bytes += payload.len() as u64;
            })?;
            actions += done.len() as u64;
        }
    }
    Ok(Pass {
        appliances,
        seconds: started.elapsed().as_secs_f64(),
        messages,
        bytes,
        actions,
    })
}

/// The report as a table.
pub fn table(report: &AppliancesReport) -> String {
    format!(
        "scenario {}: {} households, {} appliances, {} days each\n\
         load cells read      appliance-days  seconds  appliance-days/s  messages  bytes\n\
         reading to firmware  {:>14}  {:>7.2}  {:>16.0}  {:>8}  {}\n\
         HX711 driver, bits   {:>14}  {:>7.2}  {:>16.0}  (the same messages)\n\
         baseline (the households' schedules alone): {:.0} household-days/s; appliances / baseline: {:.4}; driver / reading: {:.3}\n",
        report.scenario,
        report.households,
        report.appliances,
        report.days,
        report.appliance_days,
        report.seconds,
        report.appliance_days_per_second,
        report.messages,
        report.bytes,
        report.appliance_days,
        report.driver_seconds,
        report.driver_appliance_days_per_second,
        report.baseline_household_days_per_second,
        report.ratio_to_baseline,
        report.driver_appliance_days_per_second / report.appliance_days_per_second.max(1e-9),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appliances_report_and_the_baseline_plans_the_same() {
        let report = run(&AppliancesOptions {
            scenario: Scenario::default_scenario().unwrap(),
            households: Some(2),
            days: 3,
            seed: 1,
        })
        .unwrap();
        assert_eq!(report.appliances, 4);
        assert_eq!(report.appliance_days, 12);
        // Three days of a household: brews, milk and eggs, each reported.
        assert!(report.actions >= 2 * 3 * 3, "{} actions", report.actions);
        assert!(report.messages >= report.actions, "{report:?}");
        assert!(report.bytes > report.messages * 10);
        assert!(report.appliance_days_per_second > 0.0);
    }
}
