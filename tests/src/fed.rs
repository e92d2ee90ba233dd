//! An agent that tests feed telemetry directly (no broker), on a manual clock and a memory
//! store, in auto mode: for tests of what it orders, not of how reports reach it.

use std::sync::Arc;
use std::time::Duration;

use replenish_agent::clock::{ManualClock, UnixMs};
use replenish_agent::config::AgentConfig;
use replenish_agent::engine::household::Mode;
use replenish_agent::engine::order::Order;
use replenish_agent::engine::{Event, Pairing, Telemetry};
use replenish_agent::runtime::AgentHandle;
use replenish_agent::store::MemoryStore;
use replenish_agent::{Agent, AgentOptions};
use replenish_commerce::Shop;
use replenish_protocol::{Birth, DeviceId, Id, Report, ReportBody, SlotSpec, Status, Unit};

/// A running agent with one single-slot device.
pub struct FedAgent {
    /// The agent.
    pub agent: Agent,
    /// Its clock.
    pub clock: Arc<ManualClock>,
    device: DeviceId,
    slot: Id,
    seq: u32,
    /// The agent's settling time: how long after a report its tick decides.
    settle_ms: UnixMs,
}

/// The slot of a [`FedAgent`]'s device: (device, slot, consumable, unit, capacity).
pub type SlotOf<'a> = (&'a str, &'a str, &'a str, Unit, f32);

impl FedAgent {
    /// Starts the agent on `clock` with `config` (made auto-mode, open pairing, broker-less,
    /// HTTP on a free port) and `shop` standing in for its first shop; waits for `catalogs`
    /// catalogs; announces the device.
    pub async fn start(
        mut config: AgentConfig,
        clock: Arc<ManualClock>,
        shop: Option<Arc<dyn Shop>>,
        catalogs: usize,
        (device, slot, consumable, unit, capacity): SlotOf<'_>,
    ) -> anyhow::Result<Self> {
        config.household.pairing = Pairing::Open;
        let settle_ms = config.policy.settle_secs * 1000;
        config.rules.default_mode = Mode::Auto.into();
        config.mqtt.embedded = false;
        // Nothing listens there: telemetry is fed directly.
        config.mqtt.url = "mqtt://127.0.0.1:9".into();
        config.http.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        let agent = Agent::start(
            &config,
            AgentOptions {
                clock: clock.clone(),
                store: Some(Arc::new(MemoryStore::default())),
                commerce: shop,
                tick_every: None,
                broker: None,
            },
        )
        .await?;
        for _ in 0..500 {
            if agent
                .handle()
                .read(move |e, _| e.catalogs().len() >= catalogs)
                .await?
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (device, slot) = (DeviceId::new(device)?, Id::new(slot)?);
        let spec = SlotSpec::level(slot.clone(), Id::new(consumable)?, unit, capacity);
        let firmware = "0.1.0"
            .try_into()
            .map_err(|_| anyhow::anyhow!("firmware version"))?;
        let birth = Birth::new(
            Id::new("test-appliance")?,
            firmware,
            1,
            [spec].into_iter().collect(),
        );
        agent
            .handle()
            .ask(Event::Telemetry {
                device: device.clone(),
                message: Telemetry::Status(Box::new(Status::Online(birth))),
            })
            .await?;
        Ok(Self {
            agent,
            clock,
            device,
            slot,
            seq: 0,
            settle_ms,
        })
    }

    /// The agent's handle.
    pub fn handle(&self) -> &AgentHandle {
        self.agent.handle()
    }

    /// At `t`, the slot holds `remaining`; waits for every shop call that follows. Returns
    /// the agent's newest order, if any.
    pub async fn level(&mut self, t: UnixMs, remaining: f32) -> anyhow::Result<Option<Order>> {
        self.clock.set(t);
        self.seq += 1;
        let handle = self.agent.handle();
        handle
            .ask(Event::Telemetry {
                device: self.device.clone(),
                message: Telemetry::Report(Report {
                    boot: 1,
                    seq: self.seq,
                    ts: t,
                    body: ReportBody::Level {
                        slot: self.slot.clone(),
                        remaining,
                    },
                }),
            })
            .await?;
        handle.settle(0).await?;
        // The daemon's tick, once the slot has had no report for the settling time.
        self.clock.set(t + self.settle_ms);
        handle.ask(Event::Tick).await?;
        handle.settle(0).await?;
        Ok(handle.read(|e, _| e.orders().last().cloned()).await?)
    }

    /// Reports a level each day at `hour` from `start`, `first` and then `per_day` less,
    /// until the agent has an order (at most `days` days); the order.
    pub async fn use_until_order(
        &mut self,
        start: UnixMs,
        hour: UnixMs,
        first: f32,
        per_day: f32,
        days: u32,
    ) -> anyhow::Result<Order> {
        for day in 0..days {
            let t = start + u64::from(day) * replenish_agent::clock::DAY_MS + hour;
            if let Some(order) = self.level(t, first - per_day * day as f32).await? {
                return Ok(order);
            }
        }
        anyhow::bail!("no order within {days} days")
    }

    /// The order with `id` as the agent has it now.
    pub async fn order(&self, id: &str) -> anyhow::Result<Option<Order>> {
        let id = id.to_string();
        Ok(self
            .handle()
            .read(move |e, _| e.order(&id).cloned())
            .await?)
    }
}
