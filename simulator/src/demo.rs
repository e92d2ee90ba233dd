//! `replenish-sim demo`: one household, 30 simulated days, everything real but the clock.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use replenish_agent::clock::{Clock, DAY_MS, HOUR_MS, UnixMs};
use replenish_agent::engine::household::Mode;
use serde::Serialize;

use crate::report::{self, Recorder};
use crate::scenario::{HouseholdScript, Scenario};
use crate::world::{TimelineEntry, World, WorldConfig};

/// Options of a demo run.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Simulated days.
    pub days: u64,
    /// At most this many simulated seconds per real second; 0 = as fast as possible.
    pub speed: f64,
    /// Seed.
    pub seed: u64,
    /// Approval mode.
    pub approval: Mode,
    /// Where the agent keeps its data; a new temporary directory if `None`.
    pub data_dir: Option<PathBuf>,
    /// After the run, keep the household living (a simulated hour per real minute) until
    /// Ctrl-C, so a person can approve orders on the web page.
    pub serve: bool,
    /// Show a progress bar.
    pub progress: bool,
    /// The household (the scenario's first), its appliances, events and shops.
    pub scenario: Scenario,
    /// Write an HTML report with charts into this directory (`index.html`).
    pub report: Option<PathBuf>,
}

/// The summary of one consumable.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConsumableSummary {
    /// Device.
    pub device: String,
    /// Slot.
    pub slot: String,
    /// Orders the agent placed at the shop with a line for this slot (a bundled order counts
    /// for each of its slots).
    pub orders_placed: u32,
    /// Orders delivered and unpacked.
    pub orders_delivered: u32,
    /// Hours with not enough for one use, in the appliance and the cupboard.
    pub stockout_hours: f64,
    /// Whether it ran low: below a quarter of its capacity at some point, or ordered.
    pub ran_low: bool,
    /// Lowest level seen, as a share of capacity.
    pub min_share: f64,
}

/// The summary of a run.
#[derive(Debug, Clone, Serialize)]
pub struct DemoSummary {
    /// Per consumable.
    pub consumables: Vec<ConsumableSummary>,
    /// Simulated days.
    pub days: u64,
    /// Seed.
    pub seed: u64,
    /// Where the agent's data is.
    pub data_dir: String,
    /// Shop orders, and how many distinct idempotency keys they have.
    pub shop_orders: usize,
    /// Distinct idempotency keys among shop orders.
    pub shop_keys: usize,
    /// Real seconds the run took.
    pub wall_seconds: f64,
}

fn clock_label(start: UnixMs, t: UnixMs) -> String {
    let elapsed = t.saturating_sub(start);
    let day = elapsed / DAY_MS + 1;
    let minutes = (elapsed % DAY_MS) / 60_000;
    format!("day {day:>2} {:02}:{:02}", minutes / 60, minutes % 60)
}

/// Whether a timeline entry goes on screen: orders, deliveries, refills and a weekly forecast.
fn shown(entry: &TimelineEntry, start: UnixMs) -> bool {
    match entry.kind.as_str() {
        "Forecast" => (entry.at.saturating_sub(start) / DAY_MS) % 7 == 1,
        _ => true,
    }
}

/// Runs a demo, printing the timeline and summary to `out`.
pub async fn run(
    options: DemoOptions,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<DemoSummary> {
    let data_dir = match &options.data_dir {
        Some(dir) => dir.clone(),
        None => tempfile::Builder::new()
            .prefix("replenish-demo-")
            .tempdir()
            .context("creating a data directory")?
            .keep(),
    };
    let scenario = &options.scenario;
    let spec = scenario
        .households
        .first()
        .context("the scenario has no household")?;
    let start = scenario.start_ms()?;
    let mut config = WorldConfig::new(data_dir.clone(), options.seed);
    config.household = spec.id.clone();
    config.start = start;
    config.approval = spec.approval.unwrap_or(options.approval);
    config.two_shops = scenario.shops.is_empty();
    config.shops = scenario.shops.clone();
    config.script = Some(HouseholdScript::new(&spec.id, spec, start));
    let started = std::time::Instant::now();
    let mut world = World::start(config).await?;
    let start = world.clock.now_ms();
    writeln!(
        out,
        "replenish demo: scenario \"{}\", household \"{}\", {} simulated days, seed {}",
        scenario.name, spec.id, options.days, options.seed
    )?;
    let login = match world.broker_login() {
        Some((user, password)) => format!("; log in as {user} / {password}"),
        None => String::new(),
    };
    writeln!(
        out,
        "  broker  mqtt://127.0.0.1:{} (embedded in the agent{login})",
        world.broker_port()
    )?;
    let agent_url = world.agent_url()?;
    writeln!(out, "  web     {agent_url}/  (log in with the token below)")?;
    writeln!(
        out,
        "  api     {agent_url}/api/v1/status  (Authorization: Bearer <token>)"
    )?;
    writeln!(out, "  token   {}  (owner \"demo\")", world.owner_token())?;
    let shops = world.shop_descriptions();
    for (n, (name, url, ways, out_of)) in shops.iter().enumerate() {
        let out_of = match out_of.is_empty() {
            true => String::new(),
            false => format!("; out of {}", out_of.join(", ")),
        };
        let label = if n == 0 { "  shops  " } else { "         " };
        writeln!(out, "{label} {name} {url}/v1/catalog ({ways}{out_of})")?;
    }
    writeln!(out, "  data    {}", data_dir.display())?;
    writeln!(out)?;
    let bar = if options.progress {
        let bar = ProgressBar::new(options.days * 24);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} simulated {msg} [{bar:30}] {percent}% ({elapsed})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let until = start + options.days * DAY_MS;
    let mut printed = 0;
    let mut lines: Vec<String> = Vec::new();
    let mut recorder = options.report.as_ref().map(|_| Recorder::new());
    while world.clock.now_ms() < until {
        let hour_start = std::time::Instant::now();
        world
            .run_until(world.clock.now_ms() + HOUR_MS, |_| {})
            .await?;
        if let Some(recorder) = &mut recorder {
            let status = world.handle()?.status().await?;
            recorder.record(&world, &status);
        }
        for entry in world.timeline[printed..].iter().filter(|e| shown(e, start)) {
            lines.push(format!(
                "{}  {:<9} {}",
                clock_label(start, entry.at),
                entry.source,
                entry.text
            ));
        }
        printed = world.timeline.len();
        for line in lines.drain(..) {
            bar.suspend(|| writeln!(out, "{line}"))?;
        }
        bar.inc(1);
        bar.set_message(clock_label(start, world.clock.now_ms()));
        if options.speed > 0.0 {
            let budget = std::time::Duration::from_secs_f64(3600.0 / options.speed);
            if let Some(rest) = budget.checked_sub(hour_start.elapsed()) {
                tokio::time::sleep(rest).await;
            }
        }
    }
    bar.finish_and_clear();
    if options.serve {
        serve(&mut world, start, printed, out).await?;
    }
    let status = world.handle()?.status().await?;
    let shop_orders: Vec<_> = world.shops().iter().flat_map(|s| s.orders()).collect();
    let by_shop: Vec<(String, usize, usize)> = status
        .orders
        .iter()
        .filter(|o| o.shop_order_id.is_some())
        .fold(std::collections::BTreeMap::new(), |mut acc, o| {
            let entry = acc.entry(o.shop.clone()).or_insert((0, 0));
            entry.0 += 1;
            if o.pickup.is_some() {
                entry.1 += 1;
            }
            acc
        })
        .into_iter()
        .map(|(shop, (n, pickups))| (shop, n, pickups))
        .collect();
    // Orders with a line of a consumable some shop is out of a pack of: the alternative.
    let items: Vec<_> = world
        .shops()
        .iter()
        .flat_map(|s| s.catalog().items)
        .collect();
    let consumable_of = |sku: &str| {
        items
            .iter()
            .find(|i| i.sku == sku)
            .map(|i| i.consumable.as_str())
    };
    let short: Vec<(&str, &str)> = items
        .iter()
        .filter(|i| i.stock == 0)
        .map(|i| (i.consumable.as_str(), i.sku.as_str()))
        .collect();
    let alternatives = status
        .orders
        .iter()
        .filter(|o| {
            o.shop_order_id.is_some()
                && o.lines.iter().any(|l| {
                    short.iter().any(|(consumable, sku)| {
                        consumable_of(&l.sku) == Some(*consumable) && l.sku != *sku
                    })
                })
        })
        .count();
    let keys: std::collections::HashSet<_> = shop_orders
        .iter()
        .map(|o| o.idempotency_key.clone())
        .collect();
    let consumables = world
        .truth
        .iter()
        .map(|(key, truth)| {
            let placed = status
                .orders
                .iter()
                .filter(|o| {
                    o.shop_order_id.is_some()
                        && o.lines
                            .iter()
                            .any(|l| l.device == truth.device && l.slot == truth.slot)
                })
                .count() as u32;
            ConsumableSummary {
                device: truth.device.clone(),
                slot: truth.slot.clone(),
                orders_placed: placed,
                orders_delivered: truth.deliveries,
                stockout_hours: world.stockout_ms(key) as f64 / HOUR_MS as f64,
                ran_low: truth.min_share < 0.25 || placed > 0,
                min_share: truth.min_share,
            }
        })
        .collect::<Vec<_>>();
    let summary = DemoSummary {
        consumables,
        days: options.days,
        seed: options.seed,
        data_dir: data_dir.display().to_string(),
        shop_orders: shop_orders.len(),
        shop_keys: keys.len(),
        wall_seconds: started.elapsed().as_secs_f64(),
    };
    writeln!(out)?;
    writeln!(
        out,
        "Summary after {} days ({:.1} s of real time)",
        options.days, summary.wall_seconds
    )?;
    writeln!(
        out,
        "  {:<22} {:>13} {:>10} {:>15}",
        "consumable", "orders placed", "delivered", "hours out"
    )?;
    for c in &summary.consumables {
        writeln!(
            out,
            "  {:<22} {:>13} {:>10} {:>15.1}",
            format!("{}/{}", c.device, c.slot),
            c.orders_placed,
            c.orders_delivered,
            c.stockout_hours
        )?;
    }
    writeln!(
        out,
        "  shop orders: {} with {} distinct idempotency keys",
        summary.shop_orders, summary.shop_keys
    )?;
    for (shop, n, pickups) in &by_shop {
        writeln!(out, "    at {shop}: orders {n}, to collect {pickups}")?;
    }
    for (name, _, _, out_of) in &shops {
        if !out_of.is_empty() {
            writeln!(out, "  out of stock at {name}: {}", out_of.join(", "))?;
        }
    }
    if !short.is_empty() {
        writeln!(
            out,
            "  orders of another pack of what was out of stock: {alternatives}"
        )?;
    }
    writeln!(out, "  agent data (sled): {}", summary.data_dir)?;
    if let (Some(dir), Some(mut recorder)) = (&options.report, recorder) {
        recorder.finish(&status);
        let path = report::write(
            dir,
            &format!("replenish demo: {}", scenario.name),
            &scenario.description,
            &summary,
            &recorder,
            start,
        )?;
        writeln!(out, "  report: {}", path.display())?;
    }
    world.shutdown().await;
    Ok(summary)
}

/// Keeps the household living, a simulated hour per real minute, until Ctrl-C.
async fn serve(
    world: &mut World,
    start: UnixMs,
    mut printed: usize,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    let url = world.agent_url()?;
    writeln!(out)?;
    writeln!(
        out,
        "The household keeps living (a simulated hour per real minute). Log in at {url}/ with \
         token {} to approve or reject orders; Ctrl-C stops.",
        world.owner_token()
    )?;
    let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
    loop {
        tokio::select! {
            _ = &mut ctrl_c => break,
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {
                world.run_until(world.clock.now_ms() + 60_000, |_| {}).await?;
                for entry in world.timeline[printed..].iter().filter(|e| shown(e, start)) {
                    writeln!(
                        out,
                        "{}  {:<9} {}",
                        clock_label(start, entry.at),
                        entry.source,
                        entry.text
                    )?;
                }
                printed = world.timeline.len();
            }
        }
    }
    writeln!(out, "stopped")?;
    Ok(())
}
