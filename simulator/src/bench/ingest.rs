//! `replenish-sim bench ingest`: the agent's MQTT ingest against a real Mosquitto, measured
//! against a null subscriber (rumqttc, acknowledging only) on the same stream.
//!
//! 1. **Rate**: a burst (every device flushing its buffer at once) is published as fast as the
//!    broker takes it, once to the null subscriber and once to the agent (each on its own
//!    household, so neither sees the other's retained births). A consumer's rate is messages
//!    over the time from its first delivery to its last acknowledgement; the agent's counts
//!    only what it stored. Lost = published − stored.
//! 2. **Latency** at fixed rates: one publisher connection paced at R msg/s; a sampler thread
//!    notes when the agent's acknowledged count (hence stored: acks follow the flush) passes
//!    each message. With one connection the broker delivers in publish order, so the k-th ack
//!    belongs to the k-th message.
//! 3. **Memory**: the agent in a process of its own (`replenish-sim serve-agent`), fed by N
//!    devices at a steady rate; its resident set size (VmRSS) is read from /proc at the end.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use indicatif::{ProgressBar, ProgressStyle};
use replenish_agent::clock::SystemClock;
use replenish_agent::config::AgentConfig;
use replenish_agent::engine::Pairing;
use replenish_agent::{Agent, AgentOptions};
use replenish_commerce::Catalog;
use replenish_commerce::MemoryShop;
use replenish_protocol::{Encoding, HouseholdId, topic};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde::Serialize;

use crate::load::{self, FleetPlan, LoadProgress, LoadTarget};
use crate::mosquitto;
use crate::world::free_port;

/// What to measure.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Devices in the burst.
    pub burst_devices: usize,
    /// Reports in the burst (spread over the devices).
    pub burst_reports: u64,
    /// Fixed rates of the latency runs, messages per second.
    pub rates: Vec<f64>,
    /// Seconds per latency run.
    pub rate_secs: f64,
    /// Fleet sizes of the memory runs.
    pub rss_devices: Vec<usize>,
    /// Seconds each memory run feeds the agent before its RSS is read.
    pub rss_secs: u64,
    /// Messages per second during the memory runs.
    pub rss_rate: f64,
    /// Extra lines for mosquitto.conf.
    pub mosquitto_conf: String,
    /// Bursts per consumer; the median rate is reported.
    pub repeat: usize,
}

impl Default for IngestOptions {
    fn default() -> Self {
        Self {
            burst_devices: 1000,
            burst_reports: 50_000,
            rates: vec![1000.0, 2000.0, 5000.0],
            rate_secs: 5.0,
            rss_devices: vec![1000, 10_000],
            rss_secs: 60,
            rss_rate: 1000.0,
            mosquitto_conf: mosquitto::RECOMMENDED.into(),
            repeat: 3,
        }
    }
}

/// One consumer of the burst.
#[derive(Debug, Clone, Serialize)]
pub struct BurstRun {
    /// Messages published (births, reports, duplicates).
    pub published: u64,
    /// Messages the consumer handled (the agent: stored and acknowledged).
    pub handled: u64,
    /// Seconds from its first delivery to its last acknowledgement.
    pub seconds: f64,
    /// Messages per second.
    pub rate: f64,
}

/// One latency run.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyRun {
    /// Target rate, messages per second.
    pub rate: f64,
    /// Messages.
    pub messages: usize,
    /// The null subscriber on the same paced stream: median publish → received, ms.
    pub null_p50_ms: f64,
    /// Its 99th percentile, ms.
    pub null_p99_ms: f64,
    /// Median publish → stored, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Worst, ms.
    pub max_ms: f64,
}

/// One memory run.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryRun {
    /// Devices.
    pub devices: usize,
    /// Seconds fed before reading.
    pub seconds: f64,
    /// Messages stored.
    pub messages: u64,
    /// Resident set size at the end, MiB.
    pub rss_mib: f64,
    /// Peak resident set size, MiB.
    pub peak_rss_mib: f64,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct IngestReport {
    /// Mosquitto's version and the settings used.
    pub broker: String,
    /// The null subscriber on the burst.
    pub null_subscriber: BurstRun,
    /// The agent on the burst.
    pub agent: BurstRun,
    /// agent rate / null subscriber rate, live burst.
    pub rate_ratio: f64,
    /// The null subscriber draining the burst as a backlog.
    pub null_backlog: BurstRun,
    /// The agent draining the burst as a backlog.
    pub agent_backlog: BurstRun,
    /// agent rate / null subscriber rate, backlog: the ingest's capacity.
    pub backlog_ratio: f64,
    /// Every backlog's rates, msg/s, in run order: (null subscriber, agent).
    pub backlog_rates: Vec<(f64, f64)>,
    /// Usage reports published and not counted by the agent, over every burst.
    pub lost: u64,
    /// Uses the bursts carried minus uses the agent counted (0: every use exactly once; below
    /// 0: some counted twice).
    pub uses_missing: i64,
    /// Times the agent reported a stall.
    pub stalls: u64,
    /// Every burst's rate, msg/s, in run order: (null subscriber, agent).
    pub burst_rates: Vec<(f64, f64)>,
    /// Mean time of one storage flush (group commit) in the agent, ms.
    pub mean_flush_ms: f64,
    /// Messages the agent stored per flush (group commit) in its bursts: live, backlog.
    pub messages_per_flush: [f64; 2],
    /// Latency at fixed rates.
    pub latency: Vec<LatencyRun>,
    /// Memory at fleet sizes.
    pub memory: Vec<MemoryRun>,
    /// The program whose memory was measured.
    pub memory_program: String,
}

fn spinner(message: String) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(message);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// The program the memory runs start: the agent's own binary when it was built beside this
/// one (`cargo build --release -p replenish-agent`), else this program's `serve-agent`, whose
/// larger binary adds a little to the resident set.
#[derive(Debug, Clone)]
pub struct AgentProgram {
    /// The executable.
    pub path: PathBuf,
    /// Whether it needs the `serve-agent` subcommand (this program) or not (the agent's).
    pub serve_agent: bool,
}

impl AgentProgram {
    /// `replenish-agent` beside `this_exe` if it exists, else `this_exe serve-agent`.
    pub fn find(this_exe: &Path) -> Self {
        let agent = this_exe.with_file_name("replenish-agent");
        if agent.is_file() {
            Self {
                path: agent,
                serve_agent: false,
            }
        } else {
            Self {
                path: this_exe.to_path_buf(),
                serve_agent: true,
            }
        }
    }

    fn describe(&self) -> String {
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if self.serve_agent {
            format!("{name} serve-agent")
        } else {
            name
        }
    }
}

/// Runs every part; the memory runs start `agent`.
pub async fn run(options: &IngestOptions, agent: &AgentProgram) -> anyhow::Result<IngestReport> {
    let dir = tempfile::tempdir().context("a temporary directory")?;
    let broker = mosquitto::start_on_free_port(dir.path(), &options.mosquitto_conf)
        .context("starting mosquitto (apt-get install mosquitto)")?;
    let version = std::process::Command::new("mosquitto")
        .arg("-h")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_string))
        .unwrap_or_else(|| "mosquitto".into());
    let reports_per_device =
        (options.burst_reports / options.burst_devices.max(1) as u64).max(1) as u32;
    let burst = |household: &str| FleetPlan {
        household: household.into(),
        devices: options.burst_devices,
        per_connection: 100,
        reports_per_device,
        reorder_block: 8,
        duplicate_share: 0.01,
        reboot_every: 0,
        encoding: Encoding::Binary,
        ts: 0,
        seed: 11,
        ..FleetPlan::default()
    };

    // Alternate the consumers, so neither gains from going first; report the medians.
    let mut runs: [(Vec<BurstRun>, Vec<BurstRun>); 2] = Default::default();
    let (mut uses_missing, mut stalls, mut lost) = (0i64, 0u64, 0u64);
    // Messages and storage flushes of the agent's bursts, live and backlog.
    let mut batching = [FlushStats::default(); 2];
    for round in 0..options.repeat.max(1) {
        for (i, mode) in [Burst::Live, Burst::Backlog].into_iter().enumerate() {
            let name = format!("{mode:?}-{round}").to_lowercase();
            let bar = spinner(format!("{mode:?} burst {} → null subscriber", round + 1));
            runs[i].0.push(
                null_subscriber_burst(&burst(&format!("bench-null-{name}")), broker.port(), mode)
                    .await?,
            );
            bar.finish_and_clear();
            let bar = spinner(format!("{mode:?} burst {} → agent", round + 1));
            let before = FlushStats::now();
            let (run, missing, stalled) = agent_burst(
                &burst(&format!("bench-agent-{name}")),
                broker.port(),
                dir.path(),
                mode,
            )
            .await?;
            bar.finish_and_clear();
            batching[i] = batching[i].plus(FlushStats::now().minus(before));
            uses_missing += missing;
            stalls += stalled;
            // Loss is counted in uses: each usage report carries one, counted once by the
            // agent (acknowledgement counts include redelivered births, so they cannot show it).
            lost += missing.max(0) as u64;
            runs[i].1.push(run);
        }
    }
    let median = |runs: &[BurstRun]| {
        let mut sorted = runs.to_vec();
        sorted.sort_by(|a, b| a.rate.total_cmp(&b.rate));
        sorted[sorted.len() / 2].clone()
    };
    let ratios = |(null, agent): &(Vec<BurstRun>, Vec<BurstRun>)| -> Vec<(f64, f64)> {
        null.iter()
            .zip(agent)
            .map(|(n, a)| (n.rate, a.rate))
            .collect()
    };
    let burst_rates = ratios(&runs[0]);
    let backlog_rates = ratios(&runs[1]);
    let null_run = median(&runs[0].0);
    let agent_run = median(&runs[0].1);
    let null_backlog = median(&runs[1].0);
    let agent_backlog = median(&runs[1].1);

    let mut latency = Vec::new();
    for &rate in &options.rates {
        let bar = spinner(format!("latency at {rate:.0} msg/s"));
        latency.push(latency_run(rate, options.rate_secs, broker.port(), dir.path()).await?);
        bar.finish_and_clear();
    }
    let mut memory = Vec::new();
    for &devices in &options.rss_devices {
        let bar = spinner(format!(
            "memory with {devices} devices for {} s",
            options.rss_secs
        ));
        memory.push(
            memory_run(
                devices,
                options.rss_secs,
                options.rss_rate,
                broker.port(),
                dir.path(),
                agent,
            )
            .await?,
        );
        bar.finish_and_clear();
    }
    Ok(IngestReport {
        broker: format!(
            "{version}; {}",
            options.mosquitto_conf.trim().replace('\n', ", ")
        ),
        rate_ratio: agent_run.rate / null_run.rate.max(1e-9),
        backlog_ratio: agent_backlog.rate / null_backlog.rate.max(1e-9),
        backlog_rates,
        null_backlog,
        agent_backlog,
        lost,
        uses_missing,
        stalls,
        burst_rates,
        mean_flush_ms: mean_flush_ms(),
        messages_per_flush: [
            batching[0].messages_per_flush(),
            batching[1].messages_per_flush(),
        ],
        null_subscriber: null_run,
        agent: agent_run,
        latency,
        memory,
        memory_program: agent.describe(),
    })
}

/// Publishes `plan` to the broker on loopback `port`, at `rate` messages a second (or as
/// fast as it goes) from clients named after `prefix`, keeping each message's send time if
/// asked.
async fn publish(
    plan: &FleetPlan,
    port: u16,
    rate: Option<f64>,
    prefix: &str,
    keep_send_times: bool,
) -> anyhow::Result<load::LoadOutcome> {
    let target = LoadTarget {
        host: "127.0.0.1".into(),
        port,
        rate,
        client_prefix: prefix.into(),
        login: None,
    };
    load::run(
        plan,
        &target,
        Arc::new(LoadProgress::default()),
        keep_send_times,
    )
    .await
}

/// The null subscriber: the agent's subscriptions and session, acknowledging everything at
/// once (rumqttc's automatic acks), doing nothing else but note when each message came.
struct NullSubscriber {
    client: AsyncClient,
    task: tokio::task::JoinHandle<()>,
    times: Arc<std::sync::Mutex<Vec<Instant>>>,
}

impl NullSubscriber {
    async fn connect(plan: &FleetPlan, port: u16) -> anyhow::Result<Self> {
        let client_id = format!("null-{}", plan.household);
        let mut options = MqttOptions::new(client_id, "127.0.0.1", port);
        options
            .set_clean_session(false)
            .set_keep_alive(Duration::from_secs(30))
            .set_max_packet_size(64 * 1024, 64 * 1024);
        let (client, mut eventloop) = AsyncClient::new(options, 256);
        let household = HouseholdId::new(&plan.household)?;
        for channel in [
            replenish_protocol::Channel::Status,
            replenish_protocol::Channel::Report,
            replenish_protocol::Channel::Ack,
        ] {
            client
                .subscribe(
                    topic::filter(&plan.prefix, &household, channel),
                    QoS::AtLeastOnce,
                )
                .await?;
        }
        // Messages count from the first poll: with a session present, the broker sends queued
        // ones before it answers the subscriptions.
        let times = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (subscribed_tx, mut subscribed) = tokio::sync::watch::channel(0usize);
        let task = {
            let times = times.clone();
            tokio::spawn(async move {
                loop {
                    match eventloop.poll().await {
                        Ok(Event::Incoming(Packet::Publish(_))) => times
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(Instant::now()),
                        Ok(Event::Incoming(Packet::SubAck(_))) => {
                            subscribed_tx.send_modify(|n| *n += 1);
                        }
                        Ok(_) => {}
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
            })
        };
        tokio::time::timeout(Duration::from_secs(10), subscribed.wait_for(|n| *n >= 3))
            .await
            .context("the null subscriber's subscriptions were not acknowledged")??;
        Ok(Self {
            client,
            task,
            times,
        })
    }

    fn received(&self) -> u64 {
        self.times.lock().unwrap_or_else(|e| e.into_inner()).len() as u64
    }

    /// Waits (up to `timeout`) until `n` messages came, then disconnects; their arrival times.
    async fn finish(self, n: u64, timeout: Duration) -> Vec<Instant> {
        let deadline = Instant::now() + timeout;
        while self.received() < n && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.task.abort();
        let _ = self.client.disconnect().await;
        std::mem::take(&mut *self.times.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// How a burst meets its consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Burst {
    /// The consumer is connected while the devices publish.
    Live,
    /// The consumer is away while the devices publish (the broker queues for its session),
    /// then connects and drains the backlog: its capacity, whatever the publisher's speed.
    Backlog,
}

async fn null_subscriber_burst(
    plan: &FleetPlan,
    port: u16,
    burst: Burst,
) -> anyhow::Result<BurstRun> {
    // Subscribed first either way: the session exists, the broker queues for it.
    let connected = NullSubscriber::connect(plan, port).await?;
    let live = match burst {
        Burst::Live => Some(connected),
        Burst::Backlog => {
            connected.finish(0, Duration::ZERO).await;
            None
        }
    };
    let outcome = publish(plan, port, None, "bench-null-pub", false).await?;
    let published = outcome.totals.published();
    let (subscriber, expected) = match live {
        Some(subscriber) => (subscriber, published),
        // Subscribing again, it also gets every device's retained birth again.
        None => (
            NullSubscriber::connect(plan, port).await?,
            published + plan.devices as u64,
        ),
    };
    let times = subscriber.finish(expected, Duration::from_secs(120)).await;
    let (Some(first), Some(last)) = (times.first(), times.last()) else {
        return Err(anyhow!("the null subscriber received nothing"));
    };
    let seconds = last.duration_since(*first).as_secs_f64();
    let handled = times.len() as u64;
    Ok(BurstRun {
        published,
        handled,
        seconds,
        rate: handled as f64 / seconds.max(1e-9),
    })
}

fn agent_config(household: &str, port: u16, dir: &Path) -> AgentConfig {
    let mut config = AgentConfig::default();
    config.household.id = household.into();
    config.household.pairing = Pairing::Open;
    config.mqtt.embedded = false;
    config.mqtt.url = format!("mqtt://127.0.0.1:{port}");
    config.mqtt.client_id = Some(format!("bench-{household}"));
    config.http.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    config.storage.path = dir.join(household);
    config.home_assistant.discovery = false;
    config.notifications.mqtt = false;
    config
}

async fn start_agent(household: &str, port: u16, dir: &Path) -> anyhow::Result<Agent> {
    let config = agent_config(household, port, dir);
    let options = AgentOptions {
        clock: Arc::new(SystemClock),
        store: None,
        commerce: Some(Arc::new(MemoryShop::new(Catalog::default()))),
        tick_every: None,
        broker: None,
    };
    let agent = Agent::start(&config, options).await?;
    if !agent.wait_subscribed(Duration::from_secs(20)).await {
        return Err(anyhow!("the agent did not subscribe"));
    }
    Ok(agent)
}

/// Samples the agent's acknowledged count from a thread of its own: (seconds since `start`,
/// count) at every change.
struct AckSampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<(f64, u64)>>,
}

impl AckSampler {
    fn start(acked: Arc<replenish_agent::mqtt::IngestHealth>, start: Instant) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut samples = Vec::new();
            let mut last = acked.acked.load(Ordering::Relaxed);
            samples.push((start.elapsed().as_secs_f64(), last));
            while !flag.load(Ordering::Relaxed) {
                let now = acked.acked.load(Ordering::Relaxed);
                if now != last {
                    samples.push((start.elapsed().as_secs_f64(), now));
                    last = now;
                }
                std::thread::sleep(Duration::from_micros(50));
            }
            // Asked to stop while asleep (a busy machine may keep this thread off the CPU for
            // longer than the caller's poll): the count it stopped at is a sample too.
            let now = acked.acked.load(Ordering::Relaxed);
            if now != last {
                samples.push((start.elapsed().as_secs_f64(), now));
            }
            samples
        });
        Self { stop, thread }
    }

    fn finish(self) -> anyhow::Result<Vec<(f64, u64)>> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .map_err(|_| anyhow!("the sampler thread panicked"))
    }
}

async fn agent_burst(
    plan: &FleetPlan,
    port: u16,
    dir: &Path,
    burst: Burst,
) -> anyhow::Result<(BurstRun, i64, u64)> {
    // The clock starts before the agent does: in a backlog, the broker delivers as soon as it
    // connects, before `start_agent` returns.
    let start = Instant::now();
    let mut agent = start_agent(&plan.household, port, dir).await?;
    let published_before = if burst == Burst::Backlog {
        agent.shutdown().await;
        let outcome = publish(plan, port, None, "bench-agent-pub", false).await?;
        agent = start_agent(&plan.household, port, dir).await?;
        Some(outcome)
    } else {
        None
    };
    let health = agent.ingest();
    // A 1 ms watch (no busy sampler here: it would take CPU from the agent it measures). Its
    // goal is set once the publisher knows what it sent.
    let goal = Arc::new(AtomicU64::new(u64::MAX));
    if let Some(outcome) = &published_before {
        // Subscribing again, the agent also gets every device's retained birth again.
        goal.store(
            outcome.totals.published() + plan.devices as u64,
            Ordering::Relaxed,
        );
    }
    let watcher = {
        let (health, goal) = (health.clone(), goal.clone());
        tokio::spawn(async move {
            let (mut stalls, mut was_stalled) = (0u64, false);
            loop {
                let now = start.elapsed().as_secs_f64();
                let stalled = health.stalled.load(Ordering::Relaxed);
                if stalled && !was_stalled {
                    stalls += 1;
                }
                was_stalled = stalled;
                if health.acked.load(Ordering::Relaxed) >= goal.load(Ordering::Relaxed) {
                    // The agent noted its first delivery itself: this watch may wake late
                    // while the agent's tasks keep the runtime busy.
                    let first = health
                        .first_received
                        .get()
                        .map_or(now, |at| at.saturating_duration_since(start).as_secs_f64());
                    return (first, now, stalls);
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    let outcome = match published_before {
        Some(outcome) => outcome,
        None => {
            let outcome = publish(plan, port, None, "bench-agent-pub", false).await?;
            goal.store(outcome.totals.published(), Ordering::Relaxed);
            outcome
        }
    };
    let (first, done, stalls) = tokio::time::timeout(Duration::from_secs(300), watcher)
        .await
        .context("the agent did not store the burst within 300 s")??;
    let handled = health.acked.load(Ordering::Relaxed);
    let seconds = done - first;
    let uses = load::stored_uses(&agent).await?;
    agent.shutdown().await;
    Ok((
        BurstRun {
            published: outcome.totals.published(),
            handled,
            seconds,
            rate: handled as f64 / seconds.max(1e-9),
        },
        outcome.totals.uses as i64 - uses as i64,
        stalls,
    ))
}

fn latency_plan(household: &str, rate: f64, secs: f64) -> FleetPlan {
    let devices = 100;
    let messages = (rate * secs) as u64;
    FleetPlan {
        household: household.into(),
        devices,
        per_connection: devices,
        reports_per_device: (messages / devices as u64).max(1) as u32,
        encoding: Encoding::Binary,
        seed: 3,
        ..FleetPlan::default()
    }
}

/// Sorted latencies in ms: message k's `done[k] − sent[k]`.
fn percentiles(mut latencies: Vec<f64>) -> impl Fn(f64) -> f64 {
    latencies.sort_by(f64::total_cmp);
    move |q: f64| {
        latencies
            .get(((latencies.len().saturating_sub(1)) as f64 * q).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    }
}

async fn latency_run(rate: f64, secs: f64, port: u16, dir: &Path) -> anyhow::Result<LatencyRun> {
    // The baseline: the same paced stream to the null subscriber.
    let null_plan = latency_plan(&format!("bench-latency-null-{}", rate as u64), rate, secs);
    let subscriber = NullSubscriber::connect(&null_plan, port).await?;
    let start = Instant::now();
    let outcome = publish(&null_plan, port, Some(rate), "bench-latency-null-pub", true).await?;
    let times = subscriber
        .finish(outcome.totals.published(), Duration::from_secs(60))
        .await;
    let sent = outcome.sent_at.concat();
    let origin = outcome.started.unwrap_or(start);
    let null_latencies: Vec<f64> = sent
        .iter()
        .zip(&times)
        .map(|(sent_at, got)| (got.duration_since(origin).as_secs_f64() - sent_at) * 1000.0)
        .collect();
    let null_at = percentiles(null_latencies);

    let household = format!("bench-latency-{}", rate as u64);
    let agent = start_agent(&household, port, dir).await?;
    let health = agent.ingest();
    let plan = latency_plan(&household, rate, secs);
    let acked_base = health.acked.load(Ordering::Relaxed);
    let start = Instant::now();
    let sampler = AckSampler::start(health.clone(), start);
    let outcome = publish(
        &plan,
        port,
        Some(rate),
        &format!("bench-latency-{}", rate as u64),
        true,
    )
    .await?;
    let published = outcome.totals.published();
    let deadline = Instant::now() + Duration::from_secs(60);
    while health.acked.load(Ordering::Relaxed) - acked_base < published && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let samples = sampler.finish()?;
    agent.shutdown().await;
    let sent = outcome.sent_at.concat();
    // Samples count from `start`, sends from the publisher's own start, a little later.
    let offset = outcome
        .started
        .map_or(0.0, |at| at.duration_since(start).as_secs_f64());
    let mut latencies = Vec::with_capacity(sent.len());
    let mut cursor = 0;
    for (k, sent_at) in sent.iter().enumerate() {
        let needed = acked_base + k as u64 + 1;
        while cursor < samples.len() && samples[cursor].1 < needed {
            cursor += 1;
        }
        let Some((stored_at, _)) = samples.get(cursor) else {
            break;
        };
        latencies.push((stored_at - offset - sent_at) * 1000.0);
    }
    if latencies.len() < sent.len() {
        return Err(anyhow!(
            "only {} of {} messages were stored at {rate} msg/s",
            latencies.len(),
            sent.len()
        ));
    }
    let messages = latencies.len();
    let at = percentiles(latencies);
    Ok(LatencyRun {
        rate,
        messages,
        null_p50_ms: null_at(0.5),
        null_p99_ms: null_at(0.99),
        p50_ms: at(0.5),
        p99_ms: at(0.99),
        max_ms: at(1.0),
    })
}

/// A value of this process's metrics (the in-process agents'), 0 if absent.
fn metric_value(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0)
}

/// Messages received and storage flushes of this process's agents so far.
#[derive(Debug, Clone, Copy, Default)]
struct FlushStats {
    messages: f64,
    flushes: f64,
}

impl FlushStats {
    fn now() -> Self {
        let text = replenish_agent::telemetry::prometheus().render();
        Self {
            messages: metric_value(&text, replenish_agent::metric::TELEMETRY_RECEIVED.name),
            flushes: metric_value(&text, "replenish_store_flush_seconds_count"),
        }
    }

    fn minus(self, earlier: Self) -> Self {
        Self {
            messages: self.messages - earlier.messages,
            flushes: self.flushes - earlier.flushes,
        }
    }

    fn plus(self, other: Self) -> Self {
        Self {
            messages: self.messages + other.messages,
            flushes: self.flushes + other.flushes,
        }
    }

    fn messages_per_flush(self) -> f64 {
        self.messages / self.flushes.max(1.0)
    }
}

/// The mean of `replenish_store_flush_seconds` in this process's metrics, in ms.
fn mean_flush_ms() -> f64 {
    let text = replenish_agent::telemetry::prometheus().render();
    let value = |name: &str| metric_value(&text, name);
    let count = value("replenish_store_flush_seconds_count");
    if count > 0.0 {
        value("replenish_store_flush_seconds_sum") / count * 1000.0
    } else {
        0.0
    }
}

/// VmRSS and VmHWM of a process, in KiB.
fn rss_kib(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok((field("VmRSS:"), field("VmHWM:")))
}

/// Kills the child when dropped.
struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn memory_run(
    devices: usize,
    secs: u64,
    rate: f64,
    port: u16,
    dir: &Path,
    agent: &AgentProgram,
) -> anyhow::Result<MemoryRun> {
    let household = format!("bench-memory-{devices}");
    let mut config = agent_config(&household, port, dir);
    let http_port = free_port()?;
    config.http.listen = std::net::SocketAddr::from(([127, 0, 0, 1], http_port));
    let config_path: PathBuf = dir.join(format!("{household}.toml"));
    std::fs::write(&config_path, toml::to_string(&config)?)?;
    let mut command = std::process::Command::new(&agent.path);
    if agent.serve_agent {
        command.arg("serve-agent");
    }
    let child = command
        .arg("--config")
        .arg(&config_path)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", agent.describe()))?;
    let child = ChildGuard(child);
    let pid = child.0.id();
    // Ready when /healthz says so (engine up, subscribed).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if healthz_ok(http_port).await {
            break;
        }
        if Instant::now() > deadline {
            return Err(anyhow!("the agent process did not become healthy"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let messages = (rate * secs as f64) as u64;
    if devices == 0 {
        // The baseline: the agent idle for the same time.
        tokio::time::sleep(Duration::from_secs(secs)).await;
        let (rss, peak) = rss_kib(pid)?;
        return Ok(MemoryRun {
            devices,
            seconds: secs as f64,
            messages: 0,
            rss_mib: rss as f64 / 1024.0,
            peak_rss_mib: peak as f64 / 1024.0,
        });
    }
    let plan = FleetPlan {
        household,
        devices,
        per_connection: 500,
        reports_per_device: (messages / devices as u64).max(1) as u32,
        encoding: Encoding::Binary,
        seed: 5,
        ..FleetPlan::default()
    };
    let outcome = publish(
        &plan,
        port,
        Some(rate),
        &format!("bench-memory-{devices}"),
        false,
    )
    .await?;
    // Let the agent finish and settle, then read.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (rss, peak) = rss_kib(pid)?;
    drop(child);
    Ok(MemoryRun {
        devices,
        seconds: outcome.seconds,
        messages: outcome.acked,
        rss_mib: rss as f64 / 1024.0,
        peak_rss_mib: peak as f64 / 1024.0,
    })
}

/// Whether `GET /healthz` on the port answers 200 (a bare HTTP/1.0 request: no client needed).
async fn healthz_ok(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    if stream
        .write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await.is_ok() && head.ends_with(b" 200")
}

/// The report as a table.
pub fn table(report: &IngestReport) -> String {
    let mut out = String::new();
    out.push_str(&format!("broker: {}\n", report.broker));
    out.push_str("burst    consumer          published   handled   seconds   msg/s\n");
    for (name, run) in [
        ("live     null subscriber", &report.null_subscriber),
        ("live     agent          ", &report.agent),
        ("backlog  null subscriber", &report.null_backlog),
        ("backlog  agent          ", &report.agent_backlog),
    ] {
        out.push_str(&format!(
            "{name} {:>10} {:>9} {:>9.2} {:>7.0}\n",
            run.published, run.handled, run.seconds, run.rate
        ));
    }
    let each = |rates: &[(f64, f64)]| {
        rates
            .iter()
            .map(|(n, a)| format!("{:.2}", a / n.max(1e-9)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    out.push_str(&format!(
        "agent / null subscriber rate: live {:.2} (median of {}: {}), backlog {:.2} (median of {}: {})\n",
        report.rate_ratio,
        report.burst_rates.len(),
        each(&report.burst_rates),
        report.backlog_ratio,
        report.backlog_rates.len(),
        each(&report.backlog_rates),
    ));
    out.push_str(&format!(
        "lost (usage reports published and not counted, all bursts): {}; uses counted minus published: {}; stalls: {}; mean storage flush: {:.2} ms\n",
        report.lost, -report.uses_missing, report.stalls, report.mean_flush_ms
    ));
    out.push_str(&format!(
        "messages per storage flush (group commit) in the agent's bursts: live {:.1}, backlog {:.1}\n",
        report.messages_per_flush[0], report.messages_per_flush[1]
    ));
    out.push_str("publish -> stored (agent) and publish -> received (null subscriber), ms\n");
    out.push_str(
        "rate msg/s   messages   null p50   null p99   agent p50   agent p99   agent max\n",
    );
    for l in &report.latency {
        out.push_str(&format!(
            "{:>10.0} {:>10} {:>10.2} {:>10.2} {:>11.2} {:>11.2} {:>11.2}\n",
            l.rate, l.messages, l.null_p50_ms, l.null_p99_ms, l.p50_ms, l.p99_ms, l.max_ms
        ));
    }
    out.push_str(&format!(
        "memory of the agent process ({}; 0 devices: idle)\n",
        report.memory_program
    ));
    out.push_str("devices   seconds   messages   RSS MiB   peak MiB\n");
    for m in &report.memory {
        out.push_str(&format!(
            "{:>7} {:>9.1} {:>10} {:>9.1} {:>10.1}\n",
            m.devices, m.seconds, m.messages, m.rss_mib, m.peak_rss_mib
        ));
    }
    out
}
