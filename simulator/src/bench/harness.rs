//! One run: a scenario's household, day by day, with the agent's pure engine deciding under one
//! policy. No broker, no HTTP, no clock: events in, effects out.
//!
//! Each day the household uses its consumables (the true demand, use by use). Before a use the
//! appliance cannot serve, and after a use that leaves it at or below a tenth of its capacity,
//! the household refills it from the cupboard; deliveries go into the cupboard. Demand the
//! appliance and cupboard together cannot meet is lost (an item-day with a stockout). At the
//! end of the day (the review, midnight UTC) the engine hears, in order: the day's deliveries
//! (`ShopStatus` delivered), each refill (a `Level` with what was left, then a `Refill`), one
//! `Level` per slot with what is left, then a `Tick`. Policies decide only on the tick, so
//! decisions are made once a day. An order the engine places is accepted at once by the "shop"
//! and arrives after the delivery time drawn for it in the scenario. The `Level` before each
//! `Refill` tells the engine what was used up to the refill (a refill report alone moves stock
//! from the cupboard into the appliance and records no consumption).
//!
//! The `agent` runs use the engine's default forecast model, and score its forecasts against
//! the truth; the baselines do not read forecasts and run on a flat one ([`Blind`]). Days of a
//! scenario's warm-up are simulated but left out of every metric.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, anyhow};
use replenish_agent::clock::{DAY_MS, UnixMs};
use replenish_agent::engine::forecast::linked::Measure;
use replenish_agent::engine::forecast::{
    Forecast, ForecastModel, UsageHistory, day_of, default_model,
};
use replenish_agent::engine::order::OrderId;
use replenish_agent::engine::policy::ReorderPolicy;
use replenish_agent::engine::{
    ConsumableSettings, Effect, Engine, EngineConfig, Event, NoticeKind, Pairing, PolicyConfig,
    Snapshot, Telemetry,
};
use replenish_commerce::{Catalog, Offer, OrderStatus, ShopOrder};
use replenish_protocol::message::MAX_DECLARED;
use replenish_protocol::{
    Birth, DeviceId, DriverMeasure, Id, Report, ReportBody, SensorKind, SlotDriver, SlotSpec,
    SlotUse, Status,
};

use super::policies::{
    Gated, OraclePolicy, OracleSlot, PolicyKind, ReorderPointPolicy, Truth, agent, threshold,
};
use super::scenario::{DemandLine, EPS, Scenario};

/// The household refills an appliance when a use leaves it at or below this share of capacity.
pub const REFILL_SHARE: f64 = 0.1;
/// Forecast horizons scored, in days before the true empty date.
pub const HORIZONS: [i64; 3] = [1, 3, 7];

/// What happened to one slot over a run, from the end of the warm-up.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlotOutcome {
    /// The consumable.
    pub consumable: String,
    /// Days simulated.
    pub days: u64,
    /// Days with demand that went unmet.
    pub stockout_days: u64,
    /// The days (0-based) with unmet demand.
    pub stockouts: Vec<usize>,
    /// Total demand.
    pub demanded: f64,
    /// Demand served.
    pub served: f64,
    /// Sum over days of the stock at home at the end of the day (appliance plus cupboard).
    pub on_hand_sum: f64,
    /// Orders placed.
    pub orders: u64,
    /// Orders proposed: approval prompts in manual mode.
    pub prompts: u64,
    /// Times the household refilled the appliance.
    pub refills: u64,
    /// Lines for this slot that joined another slot's order (bundling): they are not orders
    /// of their own.
    pub bundled_lines: u64,
    /// Orders (lines) for this slot that arrived.
    pub arrived: u64,
    /// Of those, the ones that came after its stock had run out: the risk each order was
    /// placed to keep, as it turned out.
    pub arrived_late: u64,
}

impl SlotOutcome {
    /// Served over demanded (1 without demand).
    pub fn fill_rate(&self) -> Option<f64> {
        (self.demanded > 0.0).then(|| self.served / self.demanded)
    }

    /// Mean stock at home over mean daily demand, in days.
    pub fn days_of_supply(&self) -> Option<f64> {
        if self.days == 0 || self.demanded <= 0.0 {
            return None;
        }
        Some(self.on_hand_sum / self.demanded)
    }
}

/// One order placed during a run.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderRecord {
    /// Index of the slot in the scenario.
    pub slot: usize,
    /// The day (0-based) at whose end it was placed.
    pub day: usize,
    /// Packs.
    pub packs: u32,
    /// Stock at home when it was placed.
    pub on_hand: f64,
    /// Its delivery time.
    pub lead_ms: UnixMs,
    /// A line that joined an order triggered by another slot (the record before it, of the
    /// same order, has `bundled: false`).
    pub bundled: bool,
}

/// Errors of the predicted empty date at one horizon.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HorizonTally {
    /// Days sampled (the true empty date was this many days ahead).
    pub samples: u64,
    /// Of those, days with a predicted empty date.
    pub predicted: u64,
    /// Sum of |predicted − true| in days, over the predicted ones.
    pub abs_error_days: f64,
    /// Days whose true empty time lay within the P10-P90 range.
    pub covered: u64,
}

impl HorizonTally {
    /// Adds another tally.
    pub fn add(&mut self, other: &HorizonTally) {
        self.samples += other.samples;
        self.predicted += other.predicted;
        self.abs_error_days += other.abs_error_days;
        self.covered += other.covered;
    }
}

/// Forecast errors at each of [`HORIZONS`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ForecastTally {
    /// One per horizon.
    pub horizons: [HorizonTally; 3],
}

/// Everything one run produced.
#[derive(Debug, Clone, PartialEq)]
pub struct RunResult {
    /// Scenario name (archetype or household).
    pub scenario: String,
    /// The policy.
    pub policy: PolicyKind,
    /// Per slot, in scenario order.
    pub slots: Vec<SlotOutcome>,
    /// Orders in the order placed.
    pub orders: Vec<OrderRecord>,
    /// Forecast errors (agent runs only; empty otherwise).
    pub forecast: ForecastTally,
}

/// Runs `scenario` under `policy`.
pub fn run_scenario(scenario: &Scenario, policy: PolicyKind) -> anyhow::Result<RunResult> {
    let mut run = Run::new(scenario, policy)
        .with_context(|| format!("setting up {} under {}", scenario.name, policy.name()))?;
    for day in 0..scenario.days {
        run.day(day)
            .with_context(|| format!("{} under {}, day {day}", scenario.name, policy.name()))?;
    }
    Ok(RunResult {
        scenario: scenario.name.clone(),
        policy,
        slots: run.sims.into_iter().map(|s| s.out).collect(),
        orders: run.orders,
        forecast: run.forecast,
    })
}

/// The household's side of one slot.
struct SlotSim {
    device: DeviceId,
    slot: Id,
    key: String,
    capacity: f64,
    pack_size: f64,
    level: f64,
    cupboard: f64,
    demand: DemandLine,
    orders: usize,
    out: SlotOutcome,
    /// A meter (water through a filter): reported as usage only, never scored.
    metered: bool,
    /// Another slot's uses follow this one's: its uses are counted to the agent too.
    drives: bool,
    /// While an order for this slot is on its way: whether a use went short meanwhile.
    short_before_arrival: Option<bool>,
}

impl SlotSim {
    /// A line for this slot arrived.
    fn arrived(&mut self, counted: bool) {
        if let Some(short) = self.short_before_arrival.take()
            && counted
        {
            self.out.arrived += 1;
            self.out.arrived_late += u64::from(short);
        }
    }
}

impl SlotSim {
    fn refill(&mut self, at: UnixMs, reports: &mut Vec<(usize, UnixMs, ReportBody)>, i: usize) {
        let load = self.cupboard.min(self.capacity - self.level);
        if load <= EPS {
            return;
        }
        let before = self.level;
        reports.push((
            i,
            at,
            ReportBody::Level {
                slot: self.slot.clone(),
                remaining: before as f32,
            },
        ));
        self.level += load;
        self.cupboard -= load;
        reports.push((
            i,
            at,
            ReportBody::Refill {
                slot: self.slot.clone(),
                before: before as f32,
                after: self.level as f32,
            },
        ));
        self.out.refills += 1;
    }

    /// Serves one use as far as the stock allows; returns the amount served.
    fn serve(
        &mut self,
        at: UnixMs,
        amount: f64,
        reports: &mut Vec<(usize, UnixMs, ReportBody)>,
        i: usize,
    ) -> f64 {
        if self.level + EPS < amount && self.cupboard > EPS {
            self.refill(at, reports, i);
        }
        let served = amount.min(self.level);
        self.level -= served;
        if self.level <= REFILL_SHARE * self.capacity && self.cupboard > EPS {
            self.refill(at, reports, i);
        }
        served
    }
}

/// What a device's birth declares of its slots' use: the days between uses and the driving
/// slot the scenario's products declare (the appliance knows "descale every 200 brews"; the
/// agent is told through the device, as real appliances would).
fn declared_usage(
    scenario: &Scenario,
    device: &DeviceId,
    slots: &[SlotSpec],
) -> anyhow::Result<Option<heapless::Vec<SlotUse, MAX_DECLARED>>> {
    let mut usage = heapless::Vec::new();
    for plan in scenario
        .slots
        .iter()
        .filter(|p| p.device == device.as_str())
    {
        let per = match &plan.driven_by {
            Some(link) => {
                let driver = slots
                    .iter()
                    .find(|s| s.consumable.as_str() == link.consumable)
                    .ok_or_else(|| {
                        anyhow!("{}: no slot of {} drives it", plan.key(), link.consumable)
                    })?;
                Some(SlotDriver {
                    slot: driver.id.clone(),
                    every: link.every as f32,
                    counts: match link.measure {
                        Measure::Amount => DriverMeasure::Amount,
                        Measure::Uses => DriverMeasure::Uses,
                    },
                })
            }
            None => None,
        };
        if plan.use_every_days.is_none() && per.is_none() {
            continue;
        }
        usage
            .push(SlotUse {
                slot: id(&plan.slot)?,
                every_days: plan.use_every_days.map(|d| d as f32),
                per,
            })
            .map_err(|_| anyhow!("device {device} declares too many slots"))?;
    }
    Ok((!usage.is_empty()).then_some(usage))
}

/// The baselines' model. They never read a forecast, but the engine considers reordering a
/// slot only while it has one, and the default model has none for a slot that stood empty and
/// unused for its whole window (an empty descaler dispenser a month before the next descaling):
/// a flat forecast keeps the baselines deciding every day, and costs nothing.
pub struct Blind;

impl ForecastModel for Blind {
    fn name(&self) -> &'static str {
        "blind"
    }

    fn forecast(&self, _: &UsageHistory, level: f64, now: UnixMs) -> Option<Forecast> {
        Some(Forecast::from_rate(now, level, 0.0, 0.0, [1.0; 7]))
    }
}

/// An order on its way: one shipment, whatever its lines.
struct Delivery {
    /// (slot index, amount) per line.
    lines: Vec<(usize, f64)>,
    order_id: OrderId,
    at: UnixMs,
    shop_order: ShopOrder,
}

struct Run<'a> {
    scenario: &'a Scenario,
    policy: PolicyKind,
    engine: Engine,
    gate: Arc<AtomicBool>,
    truth: Option<Truth>,
    sims: Vec<SlotSim>,
    /// Next sequence number per device.
    seq: BTreeMap<DeviceId, u32>,
    by_key: HashMap<(DeviceId, Id), usize>,
    pending: Vec<Delivery>,
    orders: Vec<OrderRecord>,
    forecast: ForecastTally,
    shop_orders: u64,
    today: usize,
}

fn id<T: From<Id>>(s: &str) -> anyhow::Result<T> {
    Id::new(s)
        .map(T::from)
        .map_err(|e| anyhow!("{s:?} is not a valid id: {e}"))
}

impl<'a> Run<'a> {
    fn new(scenario: &'a Scenario, policy: PolicyKind) -> anyhow::Result<Self> {
        let start = scenario.start;
        let mut config = EngineConfig::new(id(&scenario.household)?, "bench".into());
        config.pairing = Pairing::Open;
        config.policy = PolicyConfig {
            lead_time_ms: scenario.prior_lead_ms,
            review_ms: DAY_MS,
            bundle_days: scenario.bundle_days,
            ..PolicyConfig::default()
        };
        for slot in &scenario.slots {
            config.consumables.insert(
                slot.consumable.clone(),
                ConsumableSettings {
                    max_stock: Some(slot.max_stock),
                    risk: scenario.risk,
                    ..ConsumableSettings::default()
                },
            );
        }
        let gate = Arc::new(AtomicBool::new(false));
        let mut truth = None;
        let inner: Box<dyn ReorderPolicy> = match policy {
            PolicyKind::Agent => agent(),
            PolicyKind::Threshold => threshold(),
            PolicyKind::ReorderPoint => Box::new(ReorderPointPolicy::default()),
            PolicyKind::Oracle => {
                let shared: Truth = Arc::new(Mutex::new(
                    scenario
                        .slots
                        .iter()
                        .map(|s| {
                            let slot = OracleSlot {
                                demand: DemandLine::new(&s.uses),
                                lead_times_ms: s.lead_times_ms.clone(),
                                orders: 0,
                                on_hand: s.initial_level,
                            };
                            (s.key(), slot)
                        })
                        .collect(),
                ));
                truth = Some(shared.clone());
                Box::new(OraclePolicy { truth: shared })
            }
        };
        let gated = Box::new(Gated {
            inner,
            open: gate.clone(),
        });
        let model: Box<dyn ForecastModel> = match policy {
            PolicyKind::Agent => default_model(),
            _ => Box::new(Blind),
        };
        let engine = Engine::with_models(config, Snapshot::default(), model, gated);
        let mut sims = Vec::new();
        let mut by_key = HashMap::new();
        let mut devices: BTreeMap<DeviceId, Vec<SlotSpec>> = BTreeMap::new();
        let mut items = Vec::new();
        for (i, s) in scenario.slots.iter().enumerate() {
            let device: DeviceId = id(&s.device)?;
            let slot: Id = id(&s.slot)?;
            if s.uses.len() != scenario.days {
                return Err(anyhow!(
                    "slot {} has {} days of uses, the scenario {}",
                    s.key(),
                    s.uses.len(),
                    scenario.days
                ));
            }
            if by_key.insert((device.clone(), slot.clone()), i).is_some() {
                return Err(anyhow!("slot {} appears twice", s.key()));
            }
            devices.entry(device.clone()).or_default().push(SlotSpec {
                id: slot.clone(),
                consumable: id(&s.consumable)?,
                unit: s.unit,
                capacity: s.capacity.min(f64::from(f32::MAX)) as f32,
                sensor: if s.metered {
                    SensorKind::Usage
                } else {
                    SensorKind::Level
                },
            });
            if !s.metered {
                items.push(Offer {
                    sku: format!("{}-{}", s.consumable, s.pack_size),
                    name: format!("{} {} {}", s.consumable, s.pack_size, s.unit.symbol()),
                    consumable: s.consumable.clone(),
                    pack_size: s.pack_size,
                    unit: s.unit,
                    price: replenish_commerce::Money::new(
                        s.price_cents,
                        replenish_commerce::Currency::EUR,
                    ),
                    stock: u32::MAX,
                });
            }
            sims.push(SlotSim {
                key: s.key(),
                device,
                slot,
                capacity: s.capacity,
                pack_size: s.pack_size,
                level: s.initial_level,
                cupboard: 0.0,
                demand: DemandLine::new(&s.uses),
                orders: 0,
                out: SlotOutcome {
                    consumable: s.consumable.clone(),
                    ..SlotOutcome::default()
                },
                metered: s.metered,
                drives: scenario.slots.iter().any(|other| {
                    other.device == s.device
                        && other
                            .driven_by
                            .as_ref()
                            .is_some_and(|link| link.consumable == s.consumable)
                }),
                short_before_arrival: None,
            });
        }
        let mut run = Self {
            scenario,
            policy,
            engine,
            gate,
            truth,
            sims,
            seq: BTreeMap::new(),
            by_key,
            pending: Vec::new(),
            orders: Vec::new(),
            forecast: ForecastTally::default(),
            shop_orders: 0,
            today: 0,
        };
        run.feed(
            Event::Catalog {
                shop: replenish_agent::engine::ShopId::default_shop(),
                catalog: Catalog {
                    offers: items,
                    fulfilment: Vec::new(),
                },
            },
            start,
        )?;
        for (device, specs) in devices {
            let mut slots = heapless::Vec::new();
            for spec in specs {
                slots
                    .push(spec)
                    .map_err(|_| anyhow!("device {device} has too many slots"))?;
            }
            let usage = declared_usage(scenario, &device, &slots)?;
            let birth = Birth {
                model: device.as_id().clone(),
                firmware: heapless::String::try_from("bench")
                    .map_err(|_| anyhow!("firmware name too long"))?,
                boot: 1,
                slots,
                // A birth that declares usage states its buffer (docs/protocol.md).
                buffer: usage.as_ref().map(|_| 256),
                usage,
            };
            run.seq.insert(device.clone(), 1);
            let event = Event::Telemetry {
                device,
                message: Telemetry::Status(Box::new(Status::Online(birth))),
            };
            run.feed(event, start)?;
        }
        // The starting levels, stamped just before the first day so that it counts as whole.
        run.report_levels(start.saturating_sub(1), start)?;
        Ok(run)
    }

    /// Every slot's level (metered ones have none), stamped `ts`.
    fn report_levels(&mut self, ts: UnixMs, now: UnixMs) -> anyhow::Result<()> {
        for i in 0..self.sims.len() {
            if self.sims[i].metered {
                continue;
            }
            let body = ReportBody::Level {
                slot: self.sims[i].slot.clone(),
                remaining: self.sims[i].level as f32,
            };
            self.report(i, ts, body, now)?;
        }
        Ok(())
    }

    fn report(
        &mut self,
        i: usize,
        ts: UnixMs,
        body: ReportBody,
        now: UnixMs,
    ) -> anyhow::Result<()> {
        let device = self.sims[i].device.clone();
        let seq = self.seq.entry(device.clone()).or_insert(1);
        let report = Report {
            boot: 1,
            seq: *seq,
            ts,
            body,
        };
        *seq += 1;
        self.feed(
            Event::Telemetry {
                device,
                message: Telemetry::Report(report),
            },
            now,
        )
    }

    /// Hands an event to the engine and carries out what it asks: orders are accepted by the
    /// shop at once; everything else (storage, notices, status polls) is only counted or ignored.
    fn feed(&mut self, event: Event, now: UnixMs) -> anyhow::Result<()> {
        let mut queue: VecDeque<Effect> = self
            .engine
            .handle(event, now)
            .map_err(|e| anyhow!("the engine refused an event: {e}"))?
            .into();
        while let Some(effect) = queue.pop_front() {
            match effect {
                Effect::PlaceOrder { order, request } => {
                    let mut lines = Vec::new();
                    for line in order.lines() {
                        let i = *self
                            .by_key
                            .get(&(line.device.clone(), line.slot.clone()))
                            .ok_or_else(|| anyhow!("order for unknown slot {}", line.slot))?;
                        lines.push((i, line.packs));
                    }
                    // The first line's slot triggered the order: the shipment takes that
                    // slot's next delivery time, and counts as one order, of that slot.
                    let i = lines[0].0;
                    let counted = self.today >= self.scenario.warmup_days;
                    let sim = &mut self.sims[i];
                    let lead = self.scenario.slots[i].lead_time(sim.orders);
                    sim.orders += 1;
                    if counted {
                        sim.out.orders += 1;
                    }
                    if let Some(truth) = &self.truth
                        && let Ok(mut truth) = truth.lock()
                        && let Some(t) = truth.get_mut(&sim.key)
                    {
                        t.orders = sim.orders;
                    }
                    for (n, &(j, packs)) in lines.iter().enumerate() {
                        let sim = &mut self.sims[j];
                        if n > 0 && counted {
                            sim.out.bundled_lines += 1;
                        }
                        sim.short_before_arrival = Some(false);
                        self.orders.push(OrderRecord {
                            slot: j,
                            day: self.today,
                            packs,
                            on_hand: sim.level + sim.cupboard,
                            lead_ms: lead,
                            bundled: n > 0,
                        });
                    }
                    self.shop_orders += 1;
                    let shop_order = ShopOrder {
                        id: format!("so-{}", self.shop_orders),
                        idempotency_key: order.idempotency_key.clone(),
                        reference: order.id.to_string(),
                        status: OrderStatus::Accepted,
                        lines: request.lines.clone(),
                        total: replenish_commerce::Money::new(
                            order.total().minor,
                            replenish_commerce::Currency::EUR,
                        ),
                        created_at_ms: now,
                        estimated_arrival_ms: Some(now + lead),
                        shipped_at_ms: None,
                        delivered_at_ms: None,
                        fulfilment: None,
                    };
                    self.pending.push(Delivery {
                        lines: lines
                            .iter()
                            .map(|&(j, packs)| (j, f64::from(packs) * self.sims[j].pack_size))
                            .collect(),
                        order_id: order.id.clone(),
                        at: now + lead,
                        shop_order: shop_order.clone(),
                    });
                    let accepted = Event::PlacementSucceeded {
                        order_id: order.id.clone(),
                        shop_order,
                    };
                    let more = self
                        .engine
                        .handle(accepted, now)
                        .map_err(|e| anyhow!("the engine refused a placement: {e}"))?;
                    queue.extend(more);
                }
                Effect::Notice(notice) if notice.kind == NoticeKind::OrderProposed => {
                    if let Some(order) = self.engine.order(&notice.subject)
                        && let Some(&i) = self.by_key.get(&(
                            order.first_line().device.clone(),
                            order.first_line().slot.clone(),
                        ))
                        && self.today >= self.scenario.warmup_days
                    {
                        self.sims[i].out.prompts += 1;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn day(&mut self, day: usize) -> anyhow::Result<()> {
        self.today = day;
        let counted = day >= self.scenario.warmup_days;
        let review = self.scenario.start + (day as u64 + 1) * DAY_MS;
        let (mut due, pending): (Vec<Delivery>, Vec<Delivery>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|d| d.at <= review);
        self.pending = pending;
        due.sort_by_key(|d| d.at);
        let mut reports = Vec::new();
        // What each driving or metered slot served today, and in how many uses.
        let mut counted_uses = Vec::new();
        for (i, sim) in self.sims.iter_mut().enumerate() {
            let mut arrivals = due
                .iter()
                .flat_map(|d| {
                    d.lines
                        .iter()
                        .filter(move |line| line.0 == i)
                        .map(move |line| (d.at, line.1))
                })
                .peekable();
            let (mut demanded, mut served) = (0.0, 0.0);
            let mut met = true;
            for u in &self.scenario.slots[i].uses[day] {
                while let Some((_, amount)) = arrivals.next_if(|d| d.0 <= u.at) {
                    sim.cupboard += amount;
                    sim.arrived(counted);
                }
                let got = sim.serve(u.at, u.amount, &mut reports, i);
                let short = u.amount - got > EPS;
                if let Some(late) = &mut sim.short_before_arrival {
                    *late |= short;
                }
                met &= !short;
                demanded += u.amount;
                served += got;
            }
            for (_, amount) in arrivals {
                sim.cupboard += amount;
                sim.arrived(counted);
            }
            if sim.drives || sim.metered {
                let n = self.scenario.slots[i].uses[day].len();
                counted_uses.push((i, served, u16::try_from(n).unwrap_or(u16::MAX)));
            }
            if counted && !sim.metered {
                let out = &mut sim.out;
                out.days += 1;
                out.demanded += demanded;
                out.served += served;
                out.on_hand_sum += sim.level + sim.cupboard;
                if !met {
                    out.stockout_days += 1;
                    out.stockouts.push(day);
                }
            }
        }
        // The engine hears about the day at its end: deliveries, refills, levels, a tick.
        self.gate.store(false, Ordering::Relaxed);
        for d in due {
            let mut shop_order = d.shop_order;
            shop_order.status = OrderStatus::Delivered;
            shop_order.shipped_at_ms = Some(shop_order.created_at_ms);
            shop_order.delivered_at_ms = Some(d.at);
            let event = Event::ShopStatus {
                order_id: d.order_id,
                shop_order,
            };
            self.feed(event, review)?;
        }
        for (i, ts, body) in reports {
            self.report(i, ts, body, review)?;
        }
        // The appliance's counters (brews, litres): before the levels, so that a use of a
        // driven slot seen in them counts today's driving use in the interval it ends.
        for (i, amount, uses) in counted_uses {
            if uses == 0 {
                continue;
            }
            let body = ReportBody::Usage {
                slot: self.sims[i].slot.clone(),
                amount: amount as f32,
                uses,
            };
            self.report(i, review - 2, body, review)?;
        }
        if let Some(truth) = &self.truth
            && let Ok(mut truth) = truth.lock()
        {
            for sim in &self.sims {
                if let Some(t) = truth.get_mut(&sim.key) {
                    t.on_hand = sim.level + sim.cupboard;
                }
            }
        }
        self.report_levels(review - 1, review)?;
        // Every slot's level is in: decide (and bundle) on the whole household at once.
        self.gate.store(true, Ordering::Relaxed);
        self.feed(Event::Tick, review)?;
        self.gate.store(false, Ordering::Relaxed);
        if self.policy == PolicyKind::Agent && counted {
            self.score_forecasts(review);
        }
        Ok(())
    }

    /// Compares each slot's forecast with the truth: when would what is at home really run out
    /// (deliveries to come ignored)? Scored on days when that is 1, 3 or 7 days ahead.
    fn score_forecasts(&mut self, now: UnixMs) {
        for sim in self.sims.iter().filter(|s| !s.metered) {
            let on_hand = sim.level + sim.cupboard;
            if on_hand <= EPS {
                continue;
            }
            let Some(empty) = sim.demand.runs_out(now, on_hand) else {
                continue;
            };
            // `now` is midnight: a stock running out during the coming day is 1 day ahead.
            let ahead = day_of(empty) - day_of(now) + 1;
            let Some(h) = HORIZONS.iter().position(|&d| d == ahead) else {
                continue;
            };
            let tally = &mut self.forecast.horizons[h];
            tally.samples += 1;
            let state = self
                .engine
                .slot(&replenish_agent::engine::inventory::slot_key(
                    &sim.device,
                    &sim.slot,
                ));
            let Some(state) = state else { continue };
            let Some(f) = &state.forecast else { continue };
            // The engine forecasts the appliance's level; the stock at home includes the
            // cupboard: the same model output, applied to it.
            let known = state.level.unwrap_or(0.0) + state.cupboard;
            let rebuilt;
            let f = if state.cupboard > EPS {
                rebuilt = f.rebuilt(now, known);
                &rebuilt
            } else {
                f
            };
            if let Some(at) = f.empty_at {
                tally.predicted += 1;
                tally.abs_error_days += at.abs_diff(empty) as f64 / DAY_MS as f64;
            }
            if let (Some(early), Some(late)) = (f.empty_earliest, f.empty_latest)
                && early <= empty
                && empty <= late
            {
                tally.covered += 1;
            }
        }
    }
}
