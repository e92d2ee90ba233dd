//! `replenish-sim`: the demo, the sandbox shop on its own, the policy benchmark and trace
//! replay.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use replenish_agent::clock::{DAY_MS, SystemClock};
use replenish_agent::engine::household::Mode;
use replenish_sim::bench::{self, Archetype, BenchOptions, PolicyKind, metrics};
use replenish_sim::demo::{self, DemoOptions};
use replenish_sim::shop::{SandboxShop, ShopConfig};

// jemalloc instead of glibc's malloc: sled copies a node (about 9 KB) on every insert, and under
// that churn glibc's malloc and free took a tenth of the agent's CPU (bench ingest: 0.6-0.7 of
// the null subscriber's rate with glibc, 0.9-1.0 with jemalloc, on the machine of 2026-12-04).
// Its settings are in .cargo/config.toml.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Simulated households and a sandbox shop for replenish.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the embedded broker, the agent, the sandbox shop and one household in this process.
    Demo {
        /// A scenario file (docs/scenarios.md): the household (its first), its appliances,
        /// habits and events, and the shops. Default: simulator/scenarios/default.toml.
        #[arg(long)]
        scenario: Option<PathBuf>,
        /// Simulated days (default: the scenario's).
        #[arg(long)]
        days: Option<u64>,
        /// At most this many simulated seconds per real second (0: as fast as possible).
        #[arg(long, default_value_t = 0.0)]
        speed: f64,
        /// Seed of the household's habits and the sensors' noise (default: the scenario's).
        #[arg(long)]
        seed: Option<u64>,
        /// Approval mode of the agent (`manual` keeps the household running afterwards, for
        /// approving on the web page, until Ctrl-C).
        #[arg(long, value_enum, default_value = "auto")]
        approval: Approval,
        /// Keep the household running after the simulated days, until Ctrl-C.
        #[arg(long)]
        serve: bool,
        /// Where the agent keeps its data (default: a new temporary directory).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Also write the summary as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Write an HTML report with a chart per consumable into this directory.
        #[arg(long)]
        report: Option<PathBuf>,
    },
    /// Runs only the sandbox shop, on the wall clock, for an agent of your own.
    Shop {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8088")]
        listen: SocketAddr,
        /// Delivery time in days.
        #[arg(long, default_value_t = 2.0)]
        lead_time_days: f64,
        /// Faults to inject, e.g. `all=0.3` or `5xx=0.1,timeout=0.05,slow_ms=1500` (kinds:
        /// 5xx, slow, out_of_stock, timeout, reset, cancel, duplicate_delivery).
        #[arg(long)]
        faults: Option<String>,
        /// Seed of the injected faults.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Compares the agent's reorder policy with a threshold, a static reorder point and a
    /// perfect-foresight oracle on seeded household archetypes, through the pure engine.
    Bench(BenchArgs),
    /// Publishes a fleet of virtual devices speaking the real protocol to a broker: births,
    /// reports, reboots, out-of-order flushes and duplicates, as fast as it takes or paced.
    Load(LoadArgs),
    /// Runs virtual appliances (a coffee maker and a fridge per household, on the real firmware
    /// runtime) against any MQTT broker, in real time or faster, until Ctrl-C or --days.
    Devices(DevicesArgs),
    /// Kills the agent (SIGKILL) again and again while it orders from a faulty sandbox shop,
    /// then checks for double and lost orders.
    Chaos(ChaosArgs),
    /// Runs the agent daemon alone on a configuration file (what `bench ingest` measures
    /// the memory of).
    #[command(hide = true)]
    ServeAgent {
        /// The agent's configuration file.
        #[arg(long)]
        config: PathBuf,
        /// How often the engine ticks (retries, status polls), in milliseconds.
        #[arg(long, default_value_t = 60_000)]
        tick_ms: u64,
    },
    /// Replays a recorded consumption trace through the same engine and policies.
    Replay {
        /// The trace: CSV with header timestamp,household,slot,unit,amount.
        #[arg(long)]
        trace: PathBuf,
        /// The slots: TOML with one [[slot]] per household slot.
        #[arg(long)]
        slots: PathBuf,
        /// Write the metrics as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Worker threads.
        #[arg(long, default_value_t = 2)]
        jobs: usize,
        /// The agent's bundling window in days (0: one line per order).
        #[arg(long, default_value_t = bench::scenario::DEFAULT_BUNDLE_DAYS)]
        bundle_days: f64,
    },
}

/// Where `load` and `devices` publish, and as whom.
#[derive(Debug, clap::Args)]
struct BrokerArgs {
    /// The broker: `mqtt://host:port` (`devices` also `mqtts://host:port`, TLS).
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    broker: String,
    /// User name every connection presents (the embedded broker lets in only logins: for
    /// `load`, the agent's `mqtt.username`).
    #[arg(long, requires = "password")]
    username: Option<String>,
    /// Its password.
    #[arg(long, requires = "username")]
    password: Option<String>,
    /// The household the devices belong to (`load`: default `home`; `devices`: instead of
    /// the scenario's ids, `{household}-{n}` with several).
    #[arg(long)]
    household: Option<String>,
    /// Topic prefix.
    #[arg(long, default_value = replenish_protocol::DEFAULT_PREFIX)]
    prefix: String,
}

/// Options of `devices`.
#[derive(Debug, clap::Args)]
struct DevicesArgs {
    #[command(flatten)]
    target: BrokerArgs,
    /// The CA certificates (PEM) to trust for `mqtts://` (default: the system's).
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Each appliance's own login (user name: its device id), from a TOML file of
    /// `"household/device" = "password"` (or `device = "password"`).
    #[arg(long)]
    logins: Option<PathBuf>,
    /// A scenario file (docs/scenarios.md): households, appliances, habits, events. Default:
    /// simulator/scenarios/default.toml (one household, a coffee maker and a fridge).
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// Households to run, cycling through the scenario's (default: the scenario's own).
    #[arg(long)]
    households: Option<usize>,
    /// Simulated seconds per real second (3600: an hour a second).
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Simulated days to run (default: until Ctrl-C).
    #[arg(long)]
    days: Option<f64>,
    /// Seed of the habits and the sensors' noise (default: the scenario's).
    #[arg(long)]
    seed: Option<u64>,
    /// Seconds of real time between two views of the devices.
    #[arg(long, default_value_t = 5.0)]
    every: f64,
    /// One JSON object per view (the fleet at that moment) instead of lines of text.
    #[arg(long)]
    json_log: bool,
}

/// Options of `load`.
#[derive(Debug, clap::Args)]
struct LoadArgs {
    #[command(flatten)]
    target: BrokerArgs,
    /// Devices.
    #[arg(long, default_value_t = 1000)]
    devices: usize,
    /// Devices sharing one MQTT connection (1: one connection per device).
    #[arg(long, default_value_t = 100)]
    per_connection: usize,
    /// Reports per device.
    #[arg(long, default_value_t = 100)]
    reports: u32,
    /// Messages per second over all connections (0: as fast as the broker takes them).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// A device reboots after this many reports (0: never).
    #[arg(long, default_value_t = 0)]
    reboot_every: u32,
    /// Reports go out in shuffled blocks of this size, as an offline flush out of order.
    #[arg(long, default_value_t = 1)]
    reorder_block: usize,
    /// Share of reports sent twice (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    duplicates: f64,
    /// JSON payloads instead of binary.
    #[arg(long)]
    json_payloads: bool,
    /// Stamp reports with the wall clock (default: ts 0, "the device does not know the time").
    #[arg(long)]
    stamp: bool,
    /// Seed of shuffles and duplicates.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also write the outcome as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Options of `bench ingest`.
#[derive(Debug, clap::Args)]
struct IngestArgs {
    /// Devices in the burst.
    #[arg(long, default_value_t = 1000)]
    devices: usize,
    /// Reports in the burst.
    #[arg(long, default_value_t = 50_000)]
    reports: u64,
    /// Fixed rates of the latency runs (msg/s).
    #[arg(long, value_delimiter = ',', default_values_t = [1000.0, 2000.0, 5000.0])]
    rates: Vec<f64>,
    /// Seconds per latency run.
    #[arg(long, default_value_t = 5.0)]
    rate_secs: f64,
    /// Fleet sizes of the memory runs (0: the agent idle, a baseline).
    #[arg(long, value_delimiter = ',', default_values_t = [0usize, 1000, 10_000])]
    rss_devices: Vec<usize>,
    /// Seconds each memory run feeds the agent.
    #[arg(long, default_value_t = 60)]
    rss_secs: u64,
    /// Messages per second during memory runs.
    #[arg(long, default_value_t = 1000.0)]
    rss_rate: f64,
    /// Run Mosquitto with its defaults instead of the settings docs/operations.md recommends.
    #[arg(long)]
    mosquitto_defaults: bool,
    /// Mosquitto's in-flight window per subscriber (`max_inflight_messages`; 0: no limit),
    /// instead of the recommended one.
    #[arg(long, conflicts_with = "mosquitto_defaults")]
    inflight: Option<u32>,
    /// Bursts per consumer (alternating); the median rate is reported.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Also write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// What `bench` measures.
#[derive(Debug, Subcommand)]
enum BenchWhat {
    /// The agent's MQTT ingest against Mosquitto, as a ratio to a null subscriber: rate, loss,
    /// stalls, latency at fixed rates and memory at fleet sizes.
    Ingest(IngestArgs),
    /// The virtual appliances headless (firmware runtime, sensors, households; no broker), in
    /// appliance-days per second on one core, against the households' schedules alone.
    Appliances(AppliancesArgs),
}

/// Options of `bench appliances`.
#[derive(Debug, clap::Args)]
struct AppliancesArgs {
    /// A scenario file (docs/scenarios.md); default: simulator/scenarios/default.toml.
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// Households to run, cycling through the scenario's (default: 20 with the default
    /// scenario, the scenario's own with a file).
    #[arg(long)]
    households: Option<usize>,
    /// Simulated days.
    #[arg(long, default_value_t = 365)]
    days: u64,
    /// Seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Also write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Options of `bench`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
struct BenchArgs {
    /// Without a subcommand: the reorder policy benchmark.
    #[command(subcommand)]
    what: Option<BenchWhat>,
    /// Seeds per archetype and delivery setting (seeds 0..N).
    #[arg(long, default_value_t = 20)]
    seeds: u64,
    /// Days per run.
    #[arg(long, default_value_t = 365)]
    days: usize,
    /// Write the metrics as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write a plot (SVG) of stockouts against days of supply here.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Only these archetypes (comma-separated; default: all).
    #[arg(long, value_delimiter = ',')]
    archetypes: Vec<String>,
    /// Worker threads.
    #[arg(long, default_value_t = 2)]
    jobs: usize,
    /// Only these delivery settings (comma-separated days, a range for a random one: `2,1-5`;
    /// default: 1, 2, 5 and 1-5).
    #[arg(long, value_delimiter = ',')]
    leads: Vec<String>,
    /// The agent's bundling window in days (0: one line per order).
    #[arg(long, default_value_t = bench::scenario::DEFAULT_BUNDLE_DAYS)]
    bundle_days: f64,
    /// The agent's risk of running out before a delivery (default 0.02), for every
    /// consumable: shows what the household trades for stock.
    #[arg(long, default_value_t = bench::scenario::default_risk())]
    risk: f64,
    /// Also run the agent alone at each of `--frontier-risks` and draw its trade-off between
    /// stockouts and stock, with the baselines, here (SVG); the table is printed and the
    /// points go into `--json` as `frontier`.
    #[arg(long)]
    frontier: Option<PathBuf>,
    /// The risk settings of `--frontier`.
    #[arg(
        long,
        value_delimiter = ',',
        requires = "frontier",
        default_values_t = [0.005, 0.01, 0.02, 0.05, 0.1, 0.2]
    )]
    frontier_risks: Vec<f64>,
    /// The households of a scenario file (docs/scenarios.md; each once, not its copies)
    /// instead of the archetypes: their habits and events make the demand.
    #[arg(long, conflicts_with = "archetypes")]
    scenario: Option<PathBuf>,
    /// Multiplies what each product declares to the agent (the descaler's "about monthly",
    /// "every 200 brews", a filter's 150 litres): 1 as declared, 2 a maker's figure twice the
    /// household's, 0 nothing declared (the agent learns from use alone).
    #[arg(long, default_value_t = 1.0)]
    prior_scale: f64,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Approval {
    Auto,
    Manual,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    replenish_agent::telemetry::init_logging("warn,rumqttd=off");
    match args.command {
        Command::Demo {
            scenario,
            days,
            speed,
            seed,
            approval,
            serve,
            data_dir,
            json,
            report,
        } => {
            let scenario = load_scenario(scenario.as_deref())?;
            let options = DemoOptions {
                days: days.unwrap_or(scenario.days.ceil() as u64),
                speed,
                seed: seed.unwrap_or(scenario.seed),
                scenario,
                report,
                approval: match approval {
                    Approval::Auto => Mode::Auto,
                    Approval::Manual => Mode::Approve,
                },
                data_dir,
                serve: serve || matches!(approval, Approval::Manual),
                progress: true,
            };
            let mut stdout = std::io::stdout();
            let summary = demo::run(options, &mut stdout).await?;
            if let Some(path) = json {
                let text = serde_json::to_string_pretty(&summary)?;
                std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
        Command::Shop {
            listen,
            lead_time_days,
            faults,
            seed,
        } => {
            let config = ShopConfig {
                lead_time_ms: (lead_time_days * DAY_MS as f64) as u64,
                ..ShopConfig::default()
            };
            let shop = SandboxShop::new(config, Arc::new(SystemClock));
            if let Some(spec) = faults {
                let spec = replenish_sim::shop_faults::FaultSpec::parse(&spec)
                    .map_err(|e| anyhow::anyhow!("--faults: {e}"))?;
                shop.set_faults(Some(replenish_sim::shop_faults::Faults::new(spec, seed)));
            }
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("binding {listen}"))?;
            let server = shop.spawn(listener).await?;
            tracing::info!(url = %server.url(), "sandbox shop running; Ctrl-C stops it");
            tokio::signal::ctrl_c().await?;
            server.shutdown().await?;
        }
        Command::Bench(BenchArgs {
            what: Some(BenchWhat::Ingest(args)),
            ..
        }) => run_bench_ingest(args).await?,
        Command::Bench(BenchArgs {
            what: Some(BenchWhat::Appliances(args)),
            ..
        }) => {
            use replenish_sim::bench::appliances::{self, AppliancesOptions};
            let households = match (&args.scenario, args.households) {
                (_, Some(n)) => Some(n),
                (None, None) => Some(20),
                (Some(_), None) => None,
            };
            let report = appliances::run(&AppliancesOptions {
                scenario: load_scenario(args.scenario.as_deref())?,
                households,
                days: args.days,
                seed: args.seed,
            })?;
            let mut stdout = std::io::stdout();
            write!(stdout, "{}", appliances::table(&report))?;
            if let Some(path) = args.json {
                write_json(&path, &serde_json::to_value(&report)?)?;
            }
        }
        Command::Bench(args) => run_bench(args)?,
        Command::Load(args) => run_load(args).await?,
        Command::Devices(args) => run_devices(args).await?,
        Command::Chaos(args) => run_chaos(args).await?,
        Command::ServeAgent { config, tick_ms } => serve_agent(&config, tick_ms).await?,
        Command::Replay {
            trace,
            slots,
            json,
            jobs,
            bundle_days,
        } => {
            anyhow::ensure!(
                (0.0..=30.0).contains(&bundle_days),
                "--bundle-days must be 0 to 30"
            );
            let started = std::time::Instant::now();
            let mut scenarios = bench::replay::load(&trace, &slots)?;
            for scenario in &mut scenarios {
                scenario.bundle_days = bundle_days;
            }
            let runs = bench::run_scenarios(&scenarios, jobs, true)?;
            let summary = bench::summarize(&runs);
            let mut out = std::io::stdout().lock();
            metrics::write_table(&mut out, &summary)?;
            writeln!(
                out,
                "stockouts per 1000 item-days / mean days of supply / orders that came late (%), per household:"
            )?;
            metrics::write_breakdown(&mut out, &summary, "household")?;
            if let Some(path) = json {
                let extra = [
                    (
                        "runtime_s",
                        serde_json::json!(started.elapsed().as_secs_f64()),
                    ),
                    ("trace", serde_json::json!(trace.display().to_string())),
                ];
                write_json(&path, &metrics::to_json(&summary, &extra))?;
            }
        }
    }
    Ok(())
}

/// `replenish-sim chaos`.
#[derive(Debug, clap::Args)]
struct ChaosArgs {
    /// SIGKILLs before the last round.
    #[arg(long, default_value_t = 50)]
    kills: u32,
    /// The shop's faults (see `replenish-sim shop --help`).
    #[arg(long, default_value = "all=0.3")]
    faults: String,
    /// Seed of the faults and the kill times.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Orders approved before the first start (one more follows every kill).
    #[arg(long, default_value_t = 10)]
    orders: u32,
    /// Longest a round runs before its kill, in milliseconds.
    #[arg(long, default_value_t = 1500)]
    max_round_ms: u64,
    /// Also write the outcome as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

async fn run_chaos(args: ChaosArgs) -> anyhow::Result<()> {
    let program = std::env::current_exe().context("finding this program")?;
    let plan = replenish_sim::chaos::ChaosPlan {
        kills: args.kills,
        faults: args.faults.clone(),
        seed: args.seed,
        initial_orders: args.orders,
        max_round_ms: args.max_round_ms,
        program,
        serve_agent: true,
    };
    let outcome = replenish_sim::chaos::run(&plan, |line| eprintln!("{line}")).await?;
    let injected: Vec<String> = outcome
        .injected
        .iter()
        .map(|(kind, n)| format!("{kind} {n}"))
        .collect();
    #[allow(clippy::print_stdout)] // the report is the output
    {
        println!(
            "chaos: {} SIGKILLs, faults {:?} (seed {}), {:.0} s",
            outcome.kills, args.faults, args.seed, outcome.seconds
        );
        println!(
            "orders {}: placed {}, refused for good and told {}; double {}; lost {}",
            outcome.orders, outcome.placed, outcome.failed_told, outcome.doubles, outcome.lost
        );
        println!(
            "order requests at the shop {}; faults injected: {}",
            outcome.requests,
            injected.join(", ")
        );
        for problem in &outcome.problems {
            println!("problem: {problem}");
        }
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&outcome)?)?;
    }
    anyhow::ensure!(
        outcome.doubles == 0 && outcome.lost == 0,
        "{} double and {} lost orders",
        outcome.doubles,
        outcome.lost
    );
    Ok(())
}

async fn run_load(args: LoadArgs) -> anyhow::Result<()> {
    use replenish_sim::load::{self, FleetPlan, LoadProgress, LoadTarget};
    let url = reqwest_free_url(&args.target.broker)?;
    anyhow::ensure!(args.devices >= 1, "--devices must be at least 1");
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.duplicates),
        "--duplicates must be 0 to 1"
    );
    let plan = FleetPlan {
        prefix: args.target.prefix,
        household: args.target.household.unwrap_or_else(|| "home".into()),
        devices: args.devices,
        per_connection: args.per_connection.max(1),
        reports_per_device: args.reports,
        reboot_every: args.reboot_every,
        reorder_block: args.reorder_block.max(1),
        duplicate_share: args.duplicates,
        encoding: if args.json_payloads {
            replenish_protocol::Encoding::Json
        } else {
            replenish_protocol::Encoding::Binary
        },
        ts: if args.stamp {
            replenish_agent::clock::Clock::now_ms(&SystemClock)
        } else {
            0
        },
        seed: args.seed,
        ..FleetPlan::default()
    };
    let target = LoadTarget {
        host: url.0,
        port: url.1,
        rate: (args.rate > 0.0).then_some(args.rate),
        client_prefix: format!("replenish-load-{}", std::process::id()),
        login: args.target.username.zip(args.target.password),
    };
    let progress = Arc::new(LoadProgress::default());
    let expected: u64 = {
        let per = args.reports as u64 + args.reports as u64 / args.reboot_every.max(1) as u64;
        args.devices as u64 * (per + 1)
    };
    let bar = indicatif::ProgressBar::new(expected);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed:>4} [{bar:40}] {pos}/{len} acknowledged by the broker ({per_sec})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let ticker = {
        let (bar, progress) = (bar.clone(), progress.clone());
        tokio::spawn(async move {
            loop {
                bar.set_position(progress.acked.load(std::sync::atomic::Ordering::Relaxed));
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        })
    };
    let outcome = load::run(&plan, &target, progress, false).await?;
    ticker.abort();
    bar.finish_and_clear();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{} devices on {} connections: {} births, {} reports, {} duplicates; {} acknowledged by the broker in {:.2} s: {:.0} msg/s",
        plan.devices,
        plan.connections().len(),
        outcome.totals.births,
        outcome.totals.reports,
        outcome.totals.duplicates,
        outcome.acked,
        outcome.seconds,
        outcome.rate
    )?;
    if let Some(path) = args.json {
        write_json(&path, &serde_json::to_value(&outcome)?)?;
    }
    Ok(())
}

async fn run_devices(args: DevicesArgs) -> anyhow::Result<()> {
    use replenish_sim::devices::{self, DeviceLogin, DevicesOptions};
    let scenario = load_scenario(args.scenario.as_deref())?;
    let (host, port, tls) = broker_url(&args.target.broker)?;
    anyhow::ensure!(
        args.every.is_finite() && args.every > 0.0,
        "--every must be a positive number of seconds"
    );
    anyhow::ensure!(
        tls || args.ca.is_none(),
        "--ca is for a TLS broker: give --broker mqtts://host:port"
    );
    let tls = match tls {
        true => Some(replenish_sim::appliance::tls_config(args.ca.as_deref())?),
        false => None,
    };
    let login = match (args.target.username, args.target.password, &args.logins) {
        (Some(_), Some(_), Some(_)) => {
            anyhow::bail!("--logins or --username/--password: one way for the appliances to log in")
        }
        (_, _, Some(path)) => DeviceLogin::from_file(path)?,
        (Some(username), Some(password), None) => DeviceLogin::Shared { username, password },
        _ => DeviceLogin::None,
    };
    let options = DevicesOptions {
        host,
        port,
        login,
        tls,
        prefix: args.target.prefix,
        household: args.target.household,
        households: args.households,
        speed: args.speed,
        days: args.days,
        seed: args.seed.unwrap_or(scenario.seed),
        scenario,
        start: replenish_agent::clock::Clock::now_ms(&SystemClock),
        view_every: std::time::Duration::from_secs_f64(args.every),
    };
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = stop_tx.send(true);
        }
    });
    let json_log = args.json_log;
    // An accelerated run with an end shows how far it is (on stderr, kept below the views).
    let bar = match options.days {
        Some(days) if options.speed > 1.0 && !json_log => {
            let bar = indicatif::ProgressBar::new((days * 24.0).ceil() as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} simulated hour {pos}/{len} [{bar:30}] {percent}% ({elapsed}, {eta} left)",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(std::time::Duration::from_millis(250));
            bar
        }
        _ => indicatif::ProgressBar::hidden(),
    };
    let start = options.start;
    devices::run(&options, stop, |view| {
        let text = if json_log {
            serde_json::to_string(view)
                .map(|line| line + "\n")
                .unwrap_or_default()
        } else {
            devices::lines(view)
        };
        bar.set_position(view.at.saturating_sub(start) / replenish_agent::clock::HOUR_MS);
        bar.suspend(|| {
            let mut stdout = std::io::stdout().lock();
            // A closed pipe (`| head`) is not a reason to stop the appliances mid-step.
            let _ = stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush());
        });
    })
    .await?;
    bar.finish_and_clear();
    Ok(())
}

/// The scenario file at `path`, or the built-in default.
fn load_scenario(
    path: Option<&std::path::Path>,
) -> anyhow::Result<replenish_sim::scenario::Scenario> {
    match path {
        Some(path) => replenish_sim::scenario::Scenario::load(path),
        None => replenish_sim::scenario::Scenario::default_scenario(),
    }
}

/// `mqtt://host:port` → (host, port).
fn reqwest_free_url(url: &str) -> anyhow::Result<(String, u16)> {
    let (host, port, tls) = broker_url(url)?;
    anyhow::ensure!(
        !tls,
        "--broker {url:?}: this command speaks plain MQTT (mqtt://)"
    );
    Ok((host, port))
}

/// `mqtt://host[:1883]` or `mqtts://host[:8883]` → (host, port, TLS).
fn broker_url(url: &str) -> anyhow::Result<(String, u16, bool)> {
    let (rest, tls) = match url.strip_prefix("mqtts://") {
        Some(rest) => (rest, true),
        None => (
            url.strip_prefix("mqtt://")
                .or_else(|| url.strip_prefix("tcp://"))
                .with_context(|| {
                    format!("--broker {url:?}: expected mqtt://host:port or mqtts://host:port")
                })?,
            false,
        ),
    };
    let default_port = if tls { "8883" } else { "1883" };
    let (host, port) = rest.rsplit_once(':').unwrap_or((rest, default_port));
    let port = port
        .trim_end_matches('/')
        .parse()
        .with_context(|| format!("--broker {url:?}: bad port"))?;
    Ok((host.trim_matches(['[', ']']).to_string(), port, tls))
}

async fn run_bench_ingest(args: IngestArgs) -> anyhow::Result<()> {
    use replenish_sim::bench::ingest::{self, IngestOptions};
    let options = IngestOptions {
        burst_devices: args.devices.max(1),
        burst_reports: args.reports.max(1),
        rates: args.rates,
        rate_secs: args.rate_secs,
        rss_devices: args.rss_devices,
        rss_secs: args.rss_secs,
        rss_rate: args.rss_rate,
        mosquitto_conf: match (args.mosquitto_defaults, args.inflight) {
            (true, _) => String::new(),
            (false, Some(window)) => {
                format!("max_queued_messages 0\nmax_inflight_messages {window}\n")
            }
            (false, None) => replenish_sim::mosquitto::RECOMMENDED.into(),
        },
        repeat: args.repeat,
    };
    let exe = std::env::current_exe().context("finding this program to start the agent with")?;
    let report = ingest::run(&options, &ingest::AgentProgram::find(&exe)).await?;
    let mut out = std::io::stdout().lock();
    write!(out, "{}", ingest::table(&report))?;
    if let Some(path) = args.json {
        write_json(&path, &serde_json::to_value(&report)?)?;
    }
    Ok(())
}

async fn serve_agent(config: &std::path::Path, tick_ms: u64) -> anyhow::Result<()> {
    use replenish_agent::config::AgentConfig;
    use replenish_agent::{Agent, AgentOptions};
    let config = AgentConfig::load(Some(config)).context("loading the configuration")?;
    let options = AgentOptions {
        clock: Arc::new(SystemClock),
        store: None,
        commerce: None,
        tick_every: Some(std::time::Duration::from_millis(tick_ms.max(10))),
        broker: None,
    };
    let agent = Agent::start(&config, options)
        .await
        .context("starting the agent")?;
    tokio::signal::ctrl_c().await?;
    agent.shutdown().await;
    Ok(())
}

fn run_bench(args: BenchArgs) -> anyhow::Result<()> {
    let BenchArgs {
        what: _,
        seeds,
        days,
        json,
        plot,
        archetypes,
        jobs,
        leads,
        bundle_days,
        risk,
        frontier,
        frontier_risks,
        scenario,
        prior_scale,
    } = args;
    anyhow::ensure!(
        (0.0..=10.0).contains(&prior_scale),
        "--prior-scale must be 0 to 10 (1: as declared; 0: no priors)"
    );
    anyhow::ensure!(seeds >= 1, "--seeds must be at least 1");
    let valid_risk = |r: f64| r > 0.0 && r < 0.5;
    anyhow::ensure!(
        valid_risk(risk),
        "--risk must be above 0 and below 0.5 (0.02 is 2%)"
    );
    anyhow::ensure!(
        frontier_risks.iter().all(|&r| valid_risk(r)) && !frontier_risks.is_empty(),
        "--frontier-risks must list risks above 0 and below 0.5, e.g. 0.01,0.02,0.05"
    );
    anyhow::ensure!(
        (0.0..=30.0).contains(&bundle_days),
        "--bundle-days must be 0 to 30"
    );
    anyhow::ensure!((1..=3650).contains(&days), "--days must be 1 to 3650");
    let archetypes = if archetypes.is_empty() {
        Archetype::ALL.to_vec()
    } else {
        archetypes
            .iter()
            .map(|name| {
                Archetype::from_name(name.trim()).with_context(|| {
                    let known: Vec<&str> = Archetype::ALL.iter().map(|a| a.name()).collect();
                    format!("unknown archetype {name:?}; known: {}", known.join(", "))
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?
    };
    let leads = if leads.is_empty() {
        bench::LeadSetting::ALL.to_vec()
    } else {
        leads
            .iter()
            .map(|text| {
                bench::LeadSetting::parse(text).with_context(|| {
                    format!("--leads: {text:?} is not a delivery time in days (2) or a range (1-5), 1 to 60")
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?
    };
    // A scenario file's households (each once, not its copies) instead of the archetypes.
    let households = match &scenario {
        Some(path) => {
            let file = replenish_sim::scenario::Scenario::load(path)?;
            let start = file.start_ms()?;
            file.households
                .iter()
                .map(|h| replenish_sim::scenario::HouseholdScript::new(&h.id, h, start))
                .collect()
        }
        None => Vec::new(),
    };
    let options = BenchOptions {
        seeds,
        days,
        archetypes,
        households,
        leads,
        workers: jobs.max(1),
        progress: true,
        bundle_days: Some(bundle_days),
        risk: Some(risk),
        prior_scale,
        ..BenchOptions::default()
    };
    let started = std::time::Instant::now();
    let runs = bench::run_bench(&options)?;
    let runtime = started.elapsed().as_secs_f64();
    let summary = bench::summarize(&runs);
    let targets = bench::targets(&summary);
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{} x {seeds} seeds x {} delivery settings x {days} days, {} runs in {runtime:.1} s",
        match options.households.len() {
            0 => format!("{} archetypes", options.archetypes.len()),
            n => format!(
                "{n} households of {}",
                scenario
                    .as_ref()
                    .map_or(String::new(), |p| p.display().to_string())
            ),
        },
        options.leads.len(),
        runs.len()
    )?;
    metrics::write_table(&mut out, &summary)?;
    metrics::write_targets(&mut out, &targets)?;
    writeln!(
        out,
        "stockouts per 1000 item-days / mean days of supply / orders that came late (%), per archetype:"
    )?;
    metrics::write_breakdown(&mut out, &summary, "archetype")?;
    writeln!(out, "per consumable:")?;
    metrics::write_by_consumable(&mut out, &summary)?;
    let frontier_points = match &frontier {
        Some(_) => {
            let points = bench::risk_frontier(&options, &frontier_risks)?;
            writeln!(out, "the agent's trade-off at other risk settings:")?;
            metrics::write_frontier(&mut out, &points)?;
            Some(points)
        }
        None => None,
    };
    if let Some(path) = json {
        let mut extra = vec![
            ("runtime_s", serde_json::json!(runtime)),
            (
                "config",
                serde_json::json!({
                    "seeds": seeds,
                    "days": days,
                    "archetypes": options.archetypes.iter().map(|a| a.name()).collect::<Vec<_>>(),
                    "lead_times": options.leads.iter().map(|l| l.label()).collect::<Vec<_>>(),
                    "bundle_days": bundle_days,
                    "risk": risk,
                }),
            ),
            ("targets", serde_json::to_value(&targets)?),
        ];
        if let Some(points) = &frontier_points {
            extra.push(("frontier", serde_json::to_value(points)?));
        }
        write_json(&path, &metrics::to_json(&summary, &extra))?;
    }
    if let Some(path) = plot {
        let title = format!("replenish bench: {} runs of {days} days", runs.len());
        bench::plot::write_svg(&path, &summary, &title)?;
    }
    if let (Some(path), Some(points)) = (frontier, &frontier_points) {
        let title = format!(
            "replenish bench: the agent's risk setting against the baselines ({} runs each)",
            runs.len() / PolicyKind::ALL.len()
        );
        bench::plot::write_frontier_svg(&path, points, &summary.policies, &title)?;
    }
    Ok(())
}

fn write_json(path: &std::path::Path, value: &serde_json::Value) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
}
