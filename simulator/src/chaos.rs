//! `replenish-sim chaos`: the agent killed (SIGKILL) again and again while it orders from a
//! faulty sandbox shop, then checked for double and lost orders.
//!
//! The agent runs as a process of its own (`replenish-sim serve-agent`, or `replenish-agent`
//! if given), on its own sled store, against a sandbox shop in this process that injects
//! faults ([`crate::shop_faults`]). Orders reach the agent as a household's approvals do: written
//! to its store as approved, some before the first start and one after every kill. Each round
//! starts the agent, lets it work for a random while (seeded) and kills it without warning.
//! Last rounds let it finish (past the retry time of any order still waiting to be sent).
//! Then every order in the agent's store is compared with the shop's:
//!
//! * **double**: the shop holds more than one order for one of the agent's orders (by its
//!   reference), or an order the agent never made;
//! * **lost**: an order the shop holds that the agent does not know as placed, or an agent
//!   order neither placed nor failed (with a reason the household is told) at the end.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use replenish_agent::clock::{Clock, SystemClock, UnixMs};
use replenish_agent::config::AgentConfig;
use replenish_agent::engine::household::Mode;
use replenish_agent::engine::order::{Order, OrderId, OrderItem, OrderState};
use replenish_agent::engine::{Effect, Meta, Pairing, ShopId};
use replenish_agent::store::{self, SledStore, Store};
use replenish_protocol::{DeviceId, Id, Unit};
use serde::Serialize;

use crate::shop::{SandboxShop, ShopConfig};
use crate::shop_faults::{FaultSpec, Faults};

/// What to run.
#[derive(Debug, Clone)]
pub struct ChaosPlan {
    /// SIGKILLs before the last round.
    pub kills: u32,
    /// The shop's faults (see [`crate::shop_faults`]).
    pub faults: String,
    /// Seed of the faults and of the kill times.
    pub seed: u64,
    /// Orders approved before the first start (one more after every kill).
    pub initial_orders: u32,
    /// Longest a round runs before its kill, in milliseconds (rounds last 10 % to 100 % of it).
    pub max_round_ms: u64,
    /// The agent program: a `replenish-sim` (run with `serve-agent`) or `replenish-agent`.
    pub program: PathBuf,
    /// Whether `program` needs the `serve-agent` subcommand.
    pub serve_agent: bool,
}

/// What came out.
#[derive(Debug, Clone, Serialize)]
pub struct ChaosOutcome {
    /// SIGKILLs done.
    pub kills: u32,
    /// Orders the agent was given.
    pub orders: usize,
    /// Orders placed at the shop, as both agree.
    pub placed: usize,
    /// Orders the shop refused for good, each with the reason the household is told.
    pub failed_told: usize,
    /// Orders the shop holds twice, or that the agent never made.
    pub doubles: usize,
    /// Orders the shop holds that the agent does not know as placed, and orders left
    /// unsettled.
    pub lost: usize,
    /// Order requests the shop received (first tries and retries).
    pub requests: usize,
    /// Faults the shop injected, by kind.
    pub injected: BTreeMap<&'static str, u64>,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// What went wrong, order by order (empty when all is well).
    pub problems: Vec<String>,
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn approved_order(n: u64, key_prefix: &str, now: UnixMs) -> anyhow::Result<Order> {
    let id = OrderId::numbered(n);
    let first = OrderItem {
        device: DeviceId::new("coffee")?,
        slot: Id::new("beans")?,
        consumable: Id::new("coffee_beans")?,
        sku: "coffee-beans-500g".into(),
        packs: 1 + (n % 3) as u32,
        pack_size: 500.0,
        unit: Unit::G,
        total: replenish_commerce::Money::new(0, replenish_commerce::Currency::EUR),
        reason: "chaos: approved by the household".into(),
        outlook: None,
    };
    let key = format!("{key_prefix}-{id}");
    let mut order = Order::proposed(id, key, first, Vec::new(), ShopId::default_shop(), now);
    order.state = OrderState::Approved;
    order.decided_by = Some("chaos".into());
    Ok(order)
}

/// Writes `count` more approved orders into the (stopped) agent's store.
fn approve_more(path: &Path, next: &mut u64, count: u32) -> anyhow::Result<()> {
    let store = SledStore::open(path, 2 << 20).context("opening the agent's store")?;
    let prefix = store::installation_id(&store)?;
    let snapshot = store::load_snapshot(&store)?;
    let now = SystemClock.now_ms();
    // Orders and the engine's counters only: no device or slot record to read from an engine.
    let no_engine = |_: store::Table, _: &str| None;
    for _ in 0..count {
        *next += 1;
        let order = approved_order(*next, &prefix, now)?;
        store::save_effect(&store, &no_engine, &Effect::SaveOrder(order))?;
    }
    let meta = Meta {
        next_order_no: snapshot.meta.next_order_no.max(*next),
        ..snapshot.meta
    };
    store::save_effect(&store, &no_engine, &Effect::SaveMeta(meta))?;
    store.flush()?;
    Ok(())
}

/// Runs the plan; `progress` hears about every round.
pub async fn run(plan: &ChaosPlan, progress: impl Fn(&str)) -> anyhow::Result<ChaosOutcome> {
    let started = Instant::now();
    let dir = tempfile::tempdir()?;
    let shop = SandboxShop::new(ShopConfig::default(), Arc::new(SystemClock));
    let spec = FaultSpec::parse(&plan.faults).map_err(|e| anyhow!("faults: {e}"))?;
    shop.set_faults(Some(Faults::new(spec, plan.seed)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let server = shop.spawn(listener).await?;

    let store_path = dir.path().join("agent");
    let mut config = AgentConfig::default();
    config.household.pairing = Pairing::Open;
    config.rules.default_mode = Mode::Auto.into();
    config.mqtt.embedded = false;
    // No broker: orders are what this is about, not telemetry.
    config.mqtt.url = "mqtt://127.0.0.1:9".into();
    config.http.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    config.home_assistant.discovery = false;
    config.notifications.mqtt = false;
    config.storage.path = store_path.clone();
    config.commerce.url = format!("http://{}", server.addr());
    config.commerce.timeout_secs = 1;
    config.commerce.retry_secs = 1;
    config.validate()?;
    let config_path = dir.path().join("agent.toml");
    std::fs::write(&config_path, toml::to_string(&config)?)?;

    let mut next = 0u64;
    approve_more(&store_path, &mut next, plan.initial_orders)?;
    let mut rng = ChaCha8Rng::seed_from_u64(plan.seed ^ 0x6b69_6c6c);
    let start_agent = |round: u32| -> anyhow::Result<Killed> {
        let log = std::fs::File::create(dir.path().join(format!("agent-{round:03}.log")))?;
        let mut command = Command::new(&plan.program);
        if plan.serve_agent {
            command.args(["serve-agent", "--tick-ms", "100"]);
        }
        let child = command
            .arg("--config")
            .arg(&config_path)
            .env("RUST_LOG", "info,rumqttc=off,replenish_agent::mqtt=off,replenish_agent::internal_events::ingest=error")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", plan.program.display()))?;
        Ok(Killed(child))
    };
    for round in 0..plan.kills {
        let agent = start_agent(round)?;
        let lasts = rng.random_range(plan.max_round_ms / 10..=plan.max_round_ms.max(1));
        tokio::time::sleep(Duration::from_millis(lasts)).await;
        drop(agent); // SIGKILL, then reaped
        approve_more(&store_path, &mut next, 1)?;
        progress(&format!(
            "kill {}/{} after {lasts} ms; shop orders {}, requests {}",
            round + 1,
            plan.kills,
            shop.order_count(),
            shop.order_request_count()
        ));
    }
    // The last rounds: until no order waits to be sent. An order whose send failed waits for
    // its retry time (stored with it), so each round lasts past the latest one it found, and
    // until the shop has heard nothing for 3 s; at most two minutes in all.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut wait_until = Instant::now();
    let mut round = plan.kills;
    loop {
        let agent = start_agent(round)?;
        let mut quiet_since = (Instant::now(), shop.order_request_count());
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let requests = shop.order_request_count();
            if requests != quiet_since.1 {
                quiet_since = (Instant::now(), requests);
            } else if quiet_since.0.elapsed() > Duration::from_secs(3)
                && Instant::now() > wait_until
            {
                break;
            }
        }
        drop(agent);
        let store = SledStore::open(&store_path, 2 << 20)?;
        let waiting: Vec<UnixMs> = store::load_snapshot(&store)?
            .orders
            .iter()
            .filter(|o| o.state == OrderState::Approved)
            .map(|o| o.retry_at.unwrap_or(0))
            .collect();
        drop(store);
        if waiting.is_empty() || Instant::now() >= deadline {
            break;
        }
        let now = SystemClock.now_ms();
        let latest = waiting.into_iter().max().unwrap_or(now);
        wait_until = Instant::now() + Duration::from_millis(latest.saturating_sub(now) + 1000);
        round += 1;
        progress(&format!(
            "orders still waiting to be sent; another round until {:.0} s from now",
            (latest.saturating_sub(now) + 1000) as f64 / 1000.0
        ));
    }
    server.shutdown().await?;

    let store = SledStore::open(&store_path, 2 << 20)?;
    let orders = store::load_snapshot(&store)?.orders;
    let injected = shop.injected_faults();
    let requests = shop.order_request_count();
    let at_shop = shop.orders();
    let mut by_reference: HashMap<&str, Vec<&replenish_commerce::sandbox::wire::ShopOrder>> =
        HashMap::new();
    for order in &at_shop {
        by_reference
            .entry(order.reference.as_str())
            .or_default()
            .push(order);
    }
    let mut outcome = ChaosOutcome {
        kills: plan.kills,
        orders: orders.len(),
        placed: 0,
        failed_told: 0,
        doubles: 0,
        lost: 0,
        requests,
        injected,
        seconds: 0.0,
        problems: Vec::new(),
    };
    let known: std::collections::HashSet<&str> = orders.iter().map(|o| o.id.as_str()).collect();
    for (reference, held) in &by_reference {
        if !known.contains(reference) {
            outcome.doubles += held.len();
            outcome.problems.push(format!(
                "the shop holds {reference}, which the agent never made"
            ));
        } else if held.len() > 1 {
            outcome.doubles += held.len() - 1;
            outcome
                .problems
                .push(format!("the shop holds {reference} {} times", held.len()));
        }
    }
    for order in &orders {
        let held = by_reference.get(order.id.as_str());
        match order.state {
            OrderState::Placed
            | OrderState::Shipped
            | OrderState::Delivered
            | OrderState::Cancelled => {
                let matches = held.is_some_and(|h| {
                    h.iter().any(|s| {
                        Some(&s.id) == order.shop_order_id.as_ref()
                            && s.idempotency_key == order.idempotency_key
                    })
                });
                if matches {
                    outcome.placed += 1;
                } else {
                    outcome.lost += 1;
                    outcome.problems.push(format!(
                        "{} is {:?} in the agent but not at the shop as {:?}",
                        order.id, order.state, order.shop_order_id
                    ));
                }
            }
            OrderState::Failed if held.is_none() && order.last_error.is_some() => {
                outcome.failed_told += 1
            }
            state => {
                outcome.lost += 1;
                outcome.problems.push(format!(
                    "{} ended {state:?} (attempts {}, shop holds it: {})",
                    order.id,
                    order.attempts,
                    held.is_some()
                ));
            }
        }
    }
    outcome.seconds = started.elapsed().as_secs_f64();
    Ok(outcome)
}
