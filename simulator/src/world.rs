//! A whole household on a virtual clock: the agent (with its embedded broker), the sandbox
//! shop and the appliances, stepped five simulated minutes at a time.
//!
//! Each step applies the household's actions to the appliances' real contents, lets their
//! sensors and firmware report over MQTT, then waits until the agent has handled every message
//! and every shop call ([`AgentHandle::settle`]) before time moves on: fast, and the same run
//! for the same seed.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use replenish_agent::broker::EmbeddedBroker;
use replenish_agent::clock::{Clock, DAY_MS, HOUR_MS, ManualClock, UnixMs};
use replenish_agent::config::{AgentConfig, ConsumableSection};
use replenish_agent::engine::Notice;
use replenish_agent::engine::Pairing;
use replenish_agent::engine::household::Mode;
use replenish_agent::{Agent, AgentHandle, AgentOptions};
use replenish_protocol::{DeviceId, HouseholdId};
use tokio::sync::broadcast;

use crate::appliance::{Appliance, Link};
use crate::household::{Action, Planned, Schedule};
use crate::scenario::{HouseholdScript, Scenario, ShopSpec};
use crate::shop::{SandboxShop, ShopConfig, ShopServer};

/// Simulated time per step.
pub const STEP_MS: UnixMs = 5 * 60_000;
/// How often the agent's tick runs: every ten minutes of simulated time, so a decision waiting
/// for a burst of reports to settle (`policy.settle_secs`) comes within minutes of it, as in
/// the daemon (which ticks every minute), at a sixth of the ticks' cost.
pub const TICK_MS: UnixMs = 10 * 60_000;
/// 2026-01-05 00:00 UTC, a Monday: where simulations start.
pub const DEFAULT_START: UnixMs = 20_458 * DAY_MS;
/// How long to wait in real time for the agent to settle before calling it stuck.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(20);

/// What to simulate.
#[derive(Debug, Clone)]
pub struct WorldConfig {
    /// Seed of every random choice.
    pub seed: u64,
    /// Household id.
    pub household: String,
    /// Approval mode of the agent.
    pub approval: Mode,
    /// Where the agent keeps its data.
    pub data_dir: PathBuf,
    /// The shop's delivery time.
    pub lead_time_ms: UnixMs,
    /// Start of simulated time.
    pub start: UnixMs,
    /// Two shops instead of one ([`two_shops`]): the first also offers click and collect and
    /// is out of 500 g bags of beans; the second is cheaper for milk and eggs but slower.
    pub two_shops: bool,
    /// The household's appliances, habits and events; the default scenario's household if
    /// `None`. Its id is `household`.
    pub script: Option<HouseholdScript>,
    /// A scenario's shops (one or two), instead of `two_shops` and `lead_time_ms`.
    pub shops: Vec<ShopSpec>,
}

/// The two shops of a [`WorldConfig::two_shops`] world: (id, name, configuration).
pub fn two_shops(lead_time_ms: UnixMs) -> [(String, String, ShopConfig); 2] {
    use replenish_commerce::sandbox::wire::FulfilmentOption;
    let mut corner = ShopConfig {
        lead_time_ms,
        ..ShopConfig::default()
    };
    // The usual 500 g bag is out; a 1 kg bag is the alternative.
    for item in &mut corner.catalog {
        if item.sku == "coffee-beans-500g" {
            item.stock = 0;
        }
    }
    corner.catalog.push(crate::shop::beans_1kg(1000));
    corner.fulfilment =
        crate::shop::delivery_or_pickup("Corner Shop Mitte", "Hauptstraße 1, 10115 Berlin");
    let mut bigbox = ShopConfig {
        lead_time_ms,
        ..ShopConfig::default()
    };
    bigbox.catalog.retain(|i| i.consumable != "coffee_beans");
    for item in &mut bigbox.catalog {
        item.price_cents = item.price_cents * 85 / 100;
    }
    bigbox.fulfilment = vec![FulfilmentOption {
        id: "standard".into(),
        name: "Standard delivery".into(),
        pickup: None,
        price_cents: 0,
        lead_days_min: 2,
        lead_days_max: 3,
    }];
    [
        ("corner".into(), "Corner Shop".into(), corner),
        ("bigbox".into(), "BigBox".into(), bigbox),
    ]
}

impl WorldConfig {
    /// Defaults with a data directory.
    pub fn new(data_dir: PathBuf, seed: u64) -> Self {
        Self {
            seed,
            household: "demo".into(),
            approval: Mode::Auto,
            data_dir,
            lead_time_ms: 2 * DAY_MS,
            start: DEFAULT_START,
            two_shops: false,
            script: None,
            shops: Vec::new(),
        }
    }
}

/// One line of the timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelineEntry {
    /// When.
    pub at: UnixMs,
    /// Who: `agent` or `household`.
    pub source: &'static str,
    /// A short tag: the notice kind, or `refill`, `delivery`.
    pub kind: String,
    /// What happened.
    pub text: String,
}

/// The truth about one consumable, measured by the simulation (not by the agent).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConsumableTruth {
    /// Device.
    pub device: String,
    /// Slot.
    pub slot: String,
    /// Time with too little for one use in the appliance and the cupboard.
    pub stockout_ms: UnixMs,
    /// Uses the household wanted but could not make.
    pub unmet_uses: u32,
    /// Lowest share of capacity seen.
    pub min_share: f64,
    /// Deliveries unpacked.
    pub deliveries: u32,
    /// Refills from deliveries or the cupboard.
    pub refills: u32,
    out_since: Option<UnixMs>,
}

/// A running simulated household.
pub struct World {
    /// The virtual clock every part reads.
    pub clock: Arc<ManualClock>,
    /// The sandbox shop (with two shops: the first).
    pub shop: SandboxShop,
    shop_server: Option<ShopServer>,
    /// The second shop of a two-shop world, with its id and name.
    pub second_shop: Option<(String, String, SandboxShop)>,
    second_server: Option<ShopServer>,
    agent: Option<Agent>,
    agent_config: AgentConfig,
    /// The appliances.
    pub appliances: Vec<Appliance>,
    schedule: Schedule,
    script: HouseholdScript,
    /// The shops' names, the first shop's first.
    shop_names: Vec<String>,
    /// The consumables the household restocks: (device, slot, consumable, one use).
    tracked: Vec<(String, String, String, f64)>,
    cupboard: BTreeMap<String, f64>,
    unpacked: HashSet<String>,
    published: u64,
    notices: Option<broadcast::Receiver<Notice>>,
    /// What happened, in order.
    pub timeline: Vec<TimelineEntry>,
    /// Ground truth per consumable, keyed `device/slot`.
    pub truth: BTreeMap<String, ConsumableTruth>,
    config: WorldConfig,
    broker_port: u16,
    /// Started once: rumqttd cannot stop, so a restarted agent uses it again.
    broker: Arc<EmbeddedBroker>,
    owner_token: String,
}

/// A free TCP port on loopback (the embedded broker needs a number before it binds).
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Slots whose consumable the household restocks, with the use size that counts as "out":
/// (slot, one use).
const TRACKED: [(&str, f64); 3] = [("beans", 9.0), ("milk", 30.0), ("eggs", 1.0)];

/// The slot of the first appliance that has it: (device id, consumable).
fn slot_owner(script: &HouseholdScript, slot: &str) -> Option<(String, String)> {
    script.appliances.iter().find_map(|a| {
        a.kind
            .slots()
            .iter()
            .find(|d| d.slot == slot)
            .map(|d| (a.device_id().to_string(), d.consumable.to_string()))
    })
}

impl World {
    /// Starts the shop, the agent with its embedded broker, and the appliances.
    pub async fn start(config: WorldConfig) -> anyhow::Result<Self> {
        let clock = ManualClock::new(config.start);
        let mut script = match config.script.clone() {
            Some(script) => script,
            None => {
                let scenario = Scenario::default_scenario()?;
                let spec = scenario
                    .households
                    .first()
                    .context("the default scenario has a household")?;
                HouseholdScript::new(&config.household, spec, config.start)
            }
        };
        script.household = config.household.clone();
        anyhow::ensure!(
            config.shops.len() <= 2,
            "the simulated household orders from one or two shops, not {}",
            config.shops.len()
        );
        let [mut first, mut second] = two_shops(config.lead_time_ms);
        let two = config.two_shops || config.shops.len() == 2;
        let mut shop_config = if config.two_shops {
            first.2.clone()
        } else {
            ShopConfig {
                lead_time_ms: config.lead_time_ms,
                ..ShopConfig::default()
            }
        };
        if let Some(spec) = config.shops.first() {
            shop_config = spec.config();
            first = (spec.id.clone(), spec.name.clone(), shop_config.clone());
        }
        if let Some(spec) = config.shops.get(1) {
            second = (spec.id.clone(), spec.name.clone(), spec.config());
        }
        let shop = SandboxShop::new(shop_config, clock.clone());
        let faults = |n: usize| {
            config
                .shops
                .get(n)
                .and_then(|s| s.faults.as_deref())
                .map(|f| {
                    crate::shop_faults::FaultSpec::parse(f)
                        .map(|spec| crate::shop_faults::Faults::new(spec, config.seed))
                        .map_err(|e| anyhow::anyhow!("shop faults {f:?}: {e}"))
                })
        };
        if let Some(f) = faults(0) {
            shop.set_faults(Some(f?));
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the shop")?;
        let shop_server = shop.spawn(listener).await.context("starting the shop")?;
        let (second_shop, second_server) = if two {
            let other = SandboxShop::new(second.2.clone(), clock.clone());
            if let Some(f) = faults(1) {
                other.set_faults(Some(f?));
            }
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .context("binding the second shop")?;
            let server = other
                .spawn(listener)
                .await
                .context("starting the second shop")?;
            (
                Some((second.0.clone(), second.1.clone(), other)),
                Some(server),
            )
        } else {
            (None, None)
        };
        let mut agent_config = AgentConfig::default();
        agent_config.household.id = config.household.clone();
        agent_config.rules.default_mode = config.approval.into();
        agent_config.household.pairing = Pairing::Open;
        agent_config.mqtt.embedded = true;
        // Any free ports: the broker says which it got.
        agent_config.mqtt.embedded_listen = SocketAddr::from(([127, 0, 0, 1], 0));
        agent_config.mqtt.embedded_listen_v5 = SocketAddr::from(([127, 0, 0, 1], 0));
        agent_config.http.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        agent_config.storage.path = config.data_dir.clone();
        agent_config.storage.cache_mb = 16;
        agent_config.commerce.url = shop_server.url();
        let first_name = first.1.clone();
        let named_shops: Vec<(String, String, String)> = match &second_server {
            Some(server) => vec![
                (first.0, first.1, shop_server.url()),
                (second.0, second.1, server.url()),
            ],
            None if !config.shops.is_empty() => vec![(first.0, first.1, shop_server.url())],
            None => Vec::new(),
        };
        if !named_shops.is_empty() {
            agent_config.shops = named_shops
                .into_iter()
                .map(|(id, name, url)| replenish_agent::config::ShopConfig {
                    id,
                    name,
                    platform: replenish_agent::config::ShopPlatform::Sandbox,
                    url,
                    timeout_secs: 10,
                    vendure: None,
                })
                .collect();
            agent_config.policy.pickup =
                replenish_agent::engine::shopping::PickupPreference::WhenSooner;
        }
        agent_config.policy.lead_time_days = config
            .shops
            .first()
            .map_or(config.lead_time_ms as f64 / DAY_MS as f64, |s| s.lead_days);
        // Milk keeps about a week and a half: this household keeps at most 2.5 litres at home.
        agent_config.consumables.insert(
            "milk".into(),
            ConsumableSection {
                max_stock: Some(2500.0),
                ..ConsumableSection::default()
            },
        );
        let broker = Arc::new(
            EmbeddedBroker::start(&agent_config)
                .await
                .context("starting the embedded broker")?,
        );
        let listening = broker.listening();
        agent_config.mqtt.embedded_listen = listening.v4;
        if let Some(v5) = listening.v5 {
            agent_config.mqtt.embedded_listen_v5 = v5;
        }
        let broker_port = listening.v4.port();
        let tracked: Vec<(String, String, String, f64)> = TRACKED
            .iter()
            .filter_map(|(slot, one_use)| {
                slot_owner(&script, slot)
                    .map(|(device, consumable)| (device, slot.to_string(), consumable, *one_use))
            })
            .collect();
        let schedule = script.schedule(config.seed, config.start);
        let shop_names = std::iter::once(first_name)
            .chain(second_shop.as_ref().map(|(_, name, _)| name.clone()))
            .collect();
        let mut world = Self {
            shop_names,
            script,
            clock: clock.clone(),
            shop,
            shop_server: Some(shop_server),
            second_shop,
            second_server,
            agent: None,
            agent_config,
            appliances: Vec::new(),
            schedule,
            tracked: tracked.clone(),
            cupboard: BTreeMap::new(),
            unpacked: HashSet::new(),
            published: 0,
            notices: None,
            timeline: Vec::new(),
            truth: tracked
                .iter()
                .map(|(device, slot, _, _)| {
                    let truth = ConsumableTruth {
                        device: device.to_string(),
                        slot: slot.to_string(),
                        min_share: 1.0,
                        ..Default::default()
                    };
                    (format!("{device}/{slot}"), truth)
                })
                .collect(),
            config,
            broker_port,
            broker,
            owner_token: String::new(),
        };
        world.start_agent().await?;
        // An owner to log in as: the demo prints the token.
        let token = replenish_agent::auth::new_token()?;
        world
            .handle()?
            .ask(replenish_agent::engine::Event::AddMember {
                name: "demo".into(),
                role: replenish_agent::engine::household::Role::Owner,
                token_hash: replenish_agent::auth::hash_token(&token),
                by: replenish_agent::engine::household::Actor::Console,
            })
            .await
            .context("adding the demo owner")?;
        world.owner_token = token;
        let link = Link {
            host: "127.0.0.1".into(),
            port: broker_port,
            prefix: world.agent_config.mqtt.prefix.clone(),
            household: HouseholdId::new(&world.config.household).context("household id")?,
            tls: None,
        };
        let now = clock.now_ms();
        let seed = world.config.seed;
        let appliances: Vec<(String, _)> = world
            .script
            .appliances
            .iter()
            .enumerate()
            .map(|(n, a)| {
                Ok((
                    a.device_id().to_string(),
                    a.kind.parts(&a.sizes(), seed.wrapping_add(n as u64))?,
                ))
            })
            .collect::<anyhow::Result<_>>()?;
        for (device, parts) in appliances {
            let device = device.as_str();
            let login = world.device_login(device).await?;
            let appliance = Appliance::connect(
                device,
                parts,
                &link,
                login.as_deref().map(|p| (device, p)),
                seed,
                now,
            )
            .await?;
            world.appliances.push(appliance);
        }
        world.exchange().await?;
        Ok(world)
    }

    async fn start_agent(&mut self) -> anyhow::Result<()> {
        let config = self.agent_config.clone();
        let options = AgentOptions {
            clock: self.clock.clone(),
            store: None,
            commerce: None,
            tick_every: None,
            broker: Some(self.broker.clone()),
        };
        let agent = Agent::start(&config, options)
            .await
            .context("starting the agent")?;
        anyhow::ensure!(
            agent.wait_subscribed(SETTLE_TIMEOUT).await,
            "the agent did not subscribe to the broker within 20 s"
        );
        self.notices = Some(agent.handle().notices());
        self.published = 0;
        self.agent = Some(agent);
        Ok(())
    }

    /// The simulated time now.
    pub fn clock_now(&self) -> UnixMs {
        self.clock.now_ms()
    }

    /// The running agent.
    pub fn agent(&self) -> anyhow::Result<&Agent> {
        self.agent.as_ref().context("the agent is not running")
    }

    /// A handle to the running agent.
    pub fn handle(&self) -> anyhow::Result<AgentHandle> {
        Ok(self.agent()?.handle().clone())
    }

    /// The API token of the household's owner, `demo`.
    pub fn owner_token(&self) -> &str {
        &self.owner_token
    }

    /// Where the agent's API listens.
    pub fn agent_url(&self) -> anyhow::Result<String> {
        Ok(format!("http://{}", self.agent()?.http_addr()))
    }

    /// Where the shop listens.
    pub fn shop_url(&self) -> String {
        self.shop_server
            .as_ref()
            .map(|s| s.url())
            .unwrap_or_default()
    }

    /// Each shop as a household reads it: its name, where it listens, how it fulfils orders
    /// and what it is out of (item names).
    pub fn shop_descriptions(&self) -> Vec<(String, String, String, Vec<String>)> {
        let urls = [Some(self.shop_url()), self.second_shop_url()];
        self.shops()
            .into_iter()
            .zip(&self.shop_names)
            .zip(urls.into_iter().flatten())
            .map(|((shop, name), url)| {
                let catalog = shop.catalog();
                let ways = if catalog.fulfilment.is_empty() {
                    format!(
                        "delivery in {:.0} days",
                        shop.lead_time_ms() as f64 / DAY_MS as f64
                    )
                } else {
                    catalog
                        .fulfilment
                        .iter()
                        .map(|f| f.name.to_lowercase())
                        .collect::<Vec<_>>()
                        .join(" or ")
                };
                let out = catalog
                    .items
                    .iter()
                    .filter(|i| i.stock == 0)
                    .map(|i| i.name.clone())
                    .collect();
                (name.clone(), url, ways, out)
            })
            .collect()
    }

    /// Where the second shop listens, in a two-shop world.
    pub fn second_shop_url(&self) -> Option<String> {
        self.second_server.as_ref().map(|s| s.url())
    }

    /// The embedded broker's port.
    pub fn broker_port(&self) -> u16 {
        self.broker_port
    }

    /// The agent's login to the embedded broker (Home Assistant and tools use it); `None`
    /// when the broker takes anyone.
    pub fn broker_login(&self) -> Option<&(String, String)> {
        self.broker.agent_login()
    }

    /// A new broker login for `device`, given by the console as an owner would on the devices
    /// page; `None` when the broker takes anyone.
    async fn device_login(&self, device: &str) -> anyhow::Result<Option<String>> {
        if self.broker.agent_login().is_none() {
            return Ok(None);
        }
        let password = self
            .handle()?
            .issue_device_login(
                DeviceId::new(device)?,
                replenish_agent::engine::household::Actor::Console,
            )
            .await
            .with_context(|| format!("giving {device} a broker login"))?;
        Ok(Some(password))
    }

    /// Where the agent keeps its data.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.config.data_dir
    }

    /// Stops the agent without any shutdown, as a power cut would.
    pub async fn crash_agent(&mut self) {
        if let Some(agent) = self.agent.take() {
            agent.crash().await;
        }
        self.notices = None;
    }

    /// Starts the agent again on the same storage.
    pub async fn restart_agent(&mut self) -> anyhow::Result<()> {
        self.start_agent().await?;
        self.settle().await
    }

    /// Runs until `until`, calling `progress` after each simulated hour.
    pub async fn run_until(
        &mut self,
        until: UnixMs,
        mut progress: impl FnMut(&World),
    ) -> anyhow::Result<()> {
        while self.clock.now_ms() < until {
            self.step().await?;
            if self.clock.now_ms().is_multiple_of(HOUR_MS) {
                progress(self);
            }
        }
        Ok(())
    }

    /// Advances time by one step.
    pub async fn step(&mut self) -> anyhow::Result<()> {
        let since = self.clock.now_ms();
        let now = since + STEP_MS;
        self.clock.set(now);
        for planned in self.schedule.due(now) {
            self.act(planned);
        }
        for appliance in &mut self.appliances {
            self.script.apply(appliance.device_mut(), since, now)?;
        }
        self.unpack_deliveries(now);
        // Chores: nobody lets the water tank run nearly dry.
        self.top_up_water(300.0);
        self.exchange().await?;
        if now.is_multiple_of(TICK_MS) {
            self.handle()?.tick().await?;
            self.settle().await?;
        }
        self.account(now);
        Ok(())
    }

    /// Lets the appliances sample and publish, then waits for the agent.
    async fn exchange(&mut self) -> anyhow::Result<()> {
        let now = self.clock.now_ms();
        for appliance in &mut self.appliances {
            appliance.sample(now);
            self.published += appliance.flush(now).await?;
        }
        self.settle().await
    }

    /// Waits until the agent handled everything sent to it, then records its notices.
    pub async fn settle(&mut self) -> anyhow::Result<()> {
        let handle = self.handle()?;
        tokio::time::timeout(SETTLE_TIMEOUT, handle.settle(self.published))
            .await
            .context("the agent did not settle within 20 s")??;
        if let Some(notices) = &mut self.notices {
            while let Ok(notice) = notices.try_recv() {
                self.timeline.push(TimelineEntry {
                    at: notice.at,
                    source: "agent",
                    kind: format!("{:?}", notice.kind),
                    text: notice.text,
                });
            }
        }
        Ok(())
    }

    fn note(&mut self, at: UnixMs, kind: &str, text: String) {
        self.timeline.push(TimelineEntry {
            at,
            source: "household",
            kind: kind.to_string(),
            text,
        });
    }

    fn appliance(&mut self, device: &str) -> Option<&mut Appliance> {
        self.appliances
            .iter_mut()
            .find(|a| a.id().as_str() == device)
    }

    /// Takes `amount` from a slot, topping it up from the cupboard first if it is short.
    /// Returns false if there was not enough.
    fn take(
        &mut self,
        device: &str,
        slot: &str,
        consumable: &str,
        amount: f64,
        at: UnixMs,
    ) -> bool {
        let short = self
            .appliance(device)
            .and_then(|a| a.slot_mut(slot))
            .is_some_and(|s| s.amount < amount);
        if short {
            self.load_from_cupboard(device, slot, consumable, at);
        }
        let Some(s) = self.appliance(device).and_then(|a| a.slot_mut(slot)) else {
            return false;
        };
        if s.amount + 1e-9 < amount {
            let key = format!("{device}/{slot}");
            if let Some(truth) = self.truth.get_mut(&key) {
                truth.unmet_uses += 1;
            }
            return false;
        }
        s.amount = (s.amount - amount).max(0.0);
        // The scale sees every change on its own, as a real one would.
        if let Some(appliance) = self.appliance(device) {
            appliance.sample(at);
        }
        true
    }

    /// The appliance holding `slot`, and the slot's consumable.
    fn owner(&self, slot: &str) -> Option<(String, String)> {
        slot_owner(&self.script, slot)
    }

    fn act(&mut self, planned: Planned) {
        let at = planned.at;
        match planned.action {
            Action::Brew { beans, water } => {
                let Some((device, consumable)) = self.owner("beans") else {
                    return;
                };
                self.top_up_water(water);
                if self.take(&device, "beans", &consumable, beans, at) {
                    self.take(&device, "water", "water", water, at);
                    if let Some(a) = self.appliance(&device) {
                        a.count_use("brews", at);
                    }
                }
            }
            Action::PourMilk { ml } => {
                if let Some((device, consumable)) = self.owner("milk") {
                    self.take(&device, "milk", &consumable, ml, at);
                }
            }
            Action::TakeEggs { count } => {
                if let Some((device, consumable)) = self.owner("eggs") {
                    for _ in 0..count {
                        self.take(&device, "eggs", &consumable, 1.0, at);
                    }
                }
            }
            Action::Refill {
                device,
                slot,
                amount,
            } => {
                // Bought in a shop by hand: what fits goes in, the rest to the cupboard.
                let Some(s) = self.appliance(&device).and_then(|a| a.slot_mut(&slot)) else {
                    return;
                };
                let (consumable, unit) = (s.spec.consumable.to_string(), s.spec.unit.symbol());
                let fits = amount.min((f64::from(s.spec.capacity) - s.amount).max(0.0));
                s.amount += fits;
                if let Some(appliance) = self.appliance(&device) {
                    appliance.sample(at);
                }
                *self.cupboard.entry(consumable).or_default() += amount - fits;
                if let Some(truth) = self.truth.get_mut(&format!("{device}/{slot}")) {
                    truth.refills += 1;
                }
                self.note(
                    at,
                    "refill",
                    format!("{device}/{slot}: {amount:.0} {unit} bought in a shop by hand"),
                );
            }
        }
    }

    /// Moves what fits from the cupboard into the slot.
    fn load_from_cupboard(&mut self, device: &str, slot: &str, consumable: &str, at: UnixMs) {
        let stock = self.cupboard.get(consumable).copied().unwrap_or(0.0);
        if stock <= 0.0 {
            return;
        }
        let Some(s) = self.appliance(device).and_then(|a| a.slot_mut(slot)) else {
            return;
        };
        let room = (f64::from(s.spec.capacity) - s.amount).max(0.0);
        let moved = stock.min(room);
        if moved <= 0.0 {
            return;
        }
        s.amount += moved;
        let (before, after, unit) = (s.amount - moved, s.amount, s.spec.unit.symbol());
        // The scale sees the refill before anything is taken from the refilled slot.
        if let Some(appliance) = self.appliance(device) {
            appliance.sample(at);
        }
        self.cupboard.insert(consumable.to_string(), stock - moved);
        if let Some(truth) = self.truth.get_mut(&format!("{device}/{slot}")) {
            truth.refills += 1;
        }
        self.note(
            at,
            "refill",
            format!("{device}/{slot} refilled by hand: {before:.0} -> {after:.0} {unit}"),
        );
    }

    /// Every shop of this world.
    pub fn shops(&self) -> Vec<&SandboxShop> {
        std::iter::once(&self.shop)
            .chain(self.second_shop.as_ref().map(|(_, _, shop)| shop))
            .collect()
    }

    fn unpack_deliveries(&mut self, now: UnixMs) {
        // Shops number their orders alike: an order is known by its shop and its id.
        let deliveries: Vec<_> = self
            .shops()
            .into_iter()
            .enumerate()
            .flat_map(|(n, shop)| {
                let catalog = shop.catalog();
                shop.orders()
                    .into_iter()
                    .map(move |o| (format!("{n}/{}", o.id), catalog.clone(), o))
            })
            .collect();
        for (unpack_key, catalog, order) in deliveries {
            let delivered = order.delivered_at_ms.is_some_and(|at| at <= now);
            if !delivered || !self.unpacked.insert(unpack_key) {
                continue;
            }
            for line in &order.items {
                let Some(item) = catalog.items.iter().find(|i| i.sku == line.sku) else {
                    continue;
                };
                *self.cupboard.entry(item.consumable.clone()).or_default() +=
                    item.pack_size * f64::from(line.quantity);
                self.note(
                    now,
                    "delivery",
                    format!(
                        "delivery {} unpacked: {} x {}",
                        order.id, line.quantity, item.name
                    ),
                );
                if let Some((device, slot, consumable, _)) = self
                    .tracked
                    .iter()
                    .find(|t| t.2 == item.consumable)
                    .cloned()
                {
                    if let Some(truth) = self.truth.get_mut(&format!("{device}/{slot}")) {
                        truth.deliveries += 1;
                    }
                    self.load_from_cupboard(&device, &slot, &consumable, now);
                }
            }
        }
    }

    /// The water tank is filled from the tap when it holds less than `needed`.
    fn top_up_water(&mut self, needed: f64) {
        let Some((device, _)) = self.owner("water") else {
            return;
        };
        if let Some(tank) = self.appliance(&device).and_then(|a| a.slot_mut("water"))
            && tank.amount < needed
        {
            tank.amount = f64::from(tank.spec.capacity);
        }
    }

    fn account(&mut self, now: UnixMs) {
        let mut changes = Vec::new();
        for (device, slot, consumable, one_use) in &self.tracked {
            let one_use = *one_use;
            let stock = self.cupboard.get(consumable).copied().unwrap_or(0.0);
            let Some(s) = self
                .appliances
                .iter_mut()
                .find(|a| a.id().as_str() == device)
                .and_then(|a| a.slot_mut(slot))
            else {
                continue;
            };
            let share = s.amount / f64::from(s.spec.capacity);
            let out = s.amount + stock < one_use;
            let Some(truth) = self.truth.get_mut(&format!("{device}/{slot}")) else {
                continue;
            };
            truth.min_share = truth.min_share.min(share);
            match (out, truth.out_since) {
                (true, None) => {
                    truth.out_since = Some(now);
                    changes.push(format!(
                        "{device}/{slot} ran out: not enough for one use in it and the cupboard"
                    ));
                }
                (false, Some(since)) => {
                    truth.stockout_ms += now - since;
                    truth.out_since = None;
                    let hours = (now - since) as f64 / HOUR_MS as f64;
                    changes.push(format!("{device}/{slot} back after {hours:.1} hours out"));
                }
                _ => {}
            }
        }
        // On the timeline: what the household went without is what the demo is judged by.
        for text in changes {
            self.note(now, "stockout", text);
        }
    }

    /// The consumables the household restocks: (device, slot, consumable, one use).
    pub fn tracked(&self) -> &[(String, String, String, f64)] {
        &self.tracked
    }

    /// What the cupboard holds of `consumable`, in its unit.
    pub fn cupboard(&self, consumable: &str) -> f64 {
        self.cupboard.get(consumable).copied().unwrap_or(0.0)
    }

    /// Stockout time per consumable up to now, including a stretch still going on.
    pub fn stockout_ms(&self, key: &str) -> UnixMs {
        let now = self.clock.now_ms();
        self.truth
            .get(key)
            .map_or(0, |t| t.stockout_ms + t.out_since.map_or(0, |s| now - s))
    }

    /// Stops everything cleanly.
    pub async fn shutdown(mut self) {
        for appliance in self.appliances.drain(..) {
            appliance.disconnect().await;
        }
        if let Some(agent) = self.agent.take() {
            agent.shutdown().await;
        }
        if let Some(server) = self.shop_server.take() {
            let _ = server.shutdown().await;
        }
        if let Some(server) = self.second_server.take() {
            let _ = server.shutdown().await;
        }
    }
}
