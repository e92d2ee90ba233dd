//! The pure decision core: `(state, event, now) → (state', effects)`.
//!
//! No tokio, sled, reqwest or wall clock in here: the daemon and the simulator feed [`Event`]s
//! with the time, and carry the returned [`Effect`]s out (storage, the shop, MQTT, the log).

mod decisions;
mod declared;
pub mod dedup;
pub mod devices;
pub mod forecast;
pub mod household;
pub mod inventory;
pub mod lead_time;
pub mod options;
pub mod order;
pub mod policy;
mod shop_turns;
pub mod shopping;
pub mod whole;
pub mod words;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use replenish_protocol::{Ack, Birth, Command, CommandBody, FaultCode, Id, Report, Status};
use serde::{Deserialize, Serialize};

use crate::clock::{DAY_MS, HOUR_MS, UnixMs};
use forecast::{Forecast, ForecastModel, day_of};
use household::{Actor, AuditEntry, Denied, Household, InvalidRules, RejectReason, Role, Rules};
use inventory::{DeviceState, SlotState, slot_key};
use lead_time::LeadTime;
use order::{InvalidTransition, Order, OrderItem, OrderState};
use policy::{PolicyInput, ReorderDecision, ReorderPolicy, RiskPolicy, StockPosition};
use replenish_commerce::{Catalog, FulfilmentOption, Offer, OrderLine, OrderRequest, ShopOrder};

pub use devices::{IngestLimits, PendingCommand};
pub use policy::{ConsumableSettings, PolicyConfig};

/// What happens when a device the household has not seen before says hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pairing {
    /// It waits until an owner accepts it; its reports are refused meanwhile.
    Owner,
    /// It is accepted at once (the simulator, a lab).
    Open,
}

/// Settings of the engine.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// The household this agent serves; devices of other households are refused.
    pub household: Id,
    /// The household's rules before any owner changed them (stored rules win once they exist).
    pub rules: Rules,
    /// Whether new devices need an owner's acceptance.
    pub pairing: Pairing,
    /// Reorder settings.
    pub policy: PolicyConfig,
    /// Settings of particular consumables, by consumable id; others use `policy.defaults`.
    pub consumables: BTreeMap<String, ConsumableSettings>,
    /// Prefix of idempotency keys, unique to this agent's storage, so that two installations
    /// (or a wiped store) never reuse a key at the shop.
    pub key_prefix: String,
    /// How often to ask the shop about placed orders.
    pub status_poll_ms: UnixMs,
    /// Limits on what devices send; command retries.
    pub ingest: IngestLimits,
    /// First wait before placing a failed order again (doubling, jittered).
    pub retry_base_ms: UnixMs,
    /// Products the household allows per consumable (SKUs, the usual one first); a consumable
    /// not listed takes any product of it.
    pub products: BTreeMap<String, Vec<String>>,
    /// An order costing more than this multiple of the usual price per unit waits for a
    /// person, whatever the mode.
    pub price_guard: f64,
    /// The shops to buy from, in order of preference on a tie; orders of older agents (no
    /// shop on them) belong to the first.
    pub shops: Vec<shopping::ShopInfo>,
    /// When the household collects orders itself.
    pub pickup: shopping::PickupPreference,
    /// Display names of consumables and devices by id; others are derived from the id.
    pub names: words::Names,
}

/// The id of the one shop of an agent configured with `[commerce]` alone.
pub const DEFAULT_SHOP: &str = "shop";

impl EngineConfig {
    /// Defaults for a household.
    pub fn new(household: Id, key_prefix: String) -> Self {
        Self {
            household,
            rules: Rules::default(),
            pairing: Pairing::Owner,
            policy: PolicyConfig::default(),
            consumables: BTreeMap::new(),
            key_prefix,
            status_poll_ms: HOUR_MS,
            ingest: IngestLimits::default(),
            retry_base_ms: 60_000,
            products: BTreeMap::new(),
            price_guard: 1.25,
            shops: vec![shopping::ShopInfo {
                id: DEFAULT_SHOP.into(),
                name: "the shop".into(),
            }],
            pickup: shopping::PickupPreference::default(),
            names: words::Names::new(),
        }
    }

    /// Whether any consumable is declared driven by another (so reports look for slots to
    /// drive; a scan of a few settings).
    pub fn any_driven(&self) -> bool {
        self.consumables.values().any(|c| c.driven_by.is_some())
    }
}

/// A message from a device, decoded and validated.
#[derive(Debug, Clone, PartialEq)]
pub enum Telemetry {
    /// Birth or offline (boxed: a birth is large, reports are many).
    Status(Box<Status>),
    /// A report.
    Report(Report),
    /// A command acknowledgement.
    Ack(Ack),
}

/// Something that happened, for the engine to decide on.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The agent (re)started: resume unfinished orders.
    Started,
    /// Time passed: retries and status polls come due, forecasts age.
    Tick,
    /// A device said something.
    Telemetry {
        /// The device, from the topic.
        device: Id,
        /// What it said.
        message: Telemetry,
    },
    /// A shop's catalog was fetched.
    Catalog {
        /// The shop's id.
        shop: String,
        /// What it offers.
        catalog: Catalog,
    },
    /// A person approves a proposed order, perhaps changing it first.
    Approve {
        /// The order.
        order_id: String,
        /// Who.
        by: Actor,
        /// Another quantity or product, if any.
        edit: Option<OrderEdit>,
    },
    /// A person rejects (or, in `notify` mode, cancels) a proposed order.
    Reject {
        /// The order.
        order_id: String,
        /// Who.
        by: Actor,
        /// Why; it decides when the next proposal may come.
        reason: RejectReason,
        /// Their words, if any.
        note: Option<String>,
    },
    /// A person asks to be prompted again later.
    Snooze {
        /// The order.
        order_id: String,
        /// Who.
        by: Actor,
        /// For how long.
        hours: u32,
    },
    /// An owner (or the console) adds a member.
    AddMember {
        /// Their name, unique in the household.
        name: String,
        /// Their role.
        role: Role,
        /// SHA-256 of their token, hex.
        token_hash: String,
        /// Who.
        by: Actor,
    },
    /// An owner removes a member.
    RemoveMember {
        /// The member's id.
        member_id: String,
        /// Who.
        by: Actor,
    },
    /// A member asks to cancel an order the shop has taken and not yet sent.
    Cancel {
        /// The order.
        order_id: String,
        /// Who.
        by: Actor,
    },
    /// The shop answered a cancellation: the order as it stands, or why not.
    CancelAnswered {
        /// The agent's order id.
        order_id: String,
        /// The shop's order, or what it said.
        answer: Result<ShopOrder, String>,
    },
    /// A member says a click-and-collect order was collected.
    Collected {
        /// The order.
        order_id: String,
        /// Who.
        by: Actor,
    },
    /// An owner changes the rules.
    SetRules {
        /// The new rules, whole.
        rules: Rules,
        /// Who.
        by: Actor,
    },
    /// An owner accepts a device that is waiting to be paired.
    AcceptDevice {
        /// The device.
        device: Id,
        /// Who.
        by: Actor,
    },
    /// An owner gives a device an MQTT login (replacing any it had): the device is part of
    /// the household from its first birth. The password is made and shown outside the engine;
    /// only its hash comes in.
    IssueDeviceLogin {
        /// The device (the login's user name and the client id it must use).
        device: Id,
        /// SHA-256 of the password, lower-case hex.
        password_hash: String,
        /// Who.
        by: Actor,
    },
    /// A device stamped a report with a clock that is wrong: send it the time.
    ClockOff {
        /// The device.
        device: Id,
    },
    /// An owner asks a device to carry out a command.
    Command {
        /// The device.
        device: Id,
        /// What to do.
        body: CommandBody,
        /// Who.
        by: Actor,
    },
    /// An owner removes a device and its slots (its orders stay).
    RemoveDevice {
        /// The device.
        device: Id,
        /// Who.
        by: Actor,
    },
    /// The shop accepted an order (or had already, for its key).
    PlacementSucceeded {
        /// The agent's order id.
        order_id: String,
        /// The shop's view of it.
        shop_order: ShopOrder,
    },
    /// Sending an order failed.
    PlacementFailed {
        /// The agent's order id.
        order_id: String,
        /// What went wrong.
        error: String,
        /// Whether trying again with the same key may succeed (timeouts, 5xx).
        retryable: bool,
    },
    /// The shop reported an order's status.
    ShopStatus {
        /// The agent's order id.
        order_id: String,
        /// The shop's view of it.
        shop_order: ShopOrder,
    },
}

/// Something the engine wants done, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Store a device.
    SaveDevice(Box<DeviceState>),
    /// Store a slot.
    SaveSlot(Box<SlotState>),
    /// Store an order.
    SaveOrder(Order),
    /// Store the engine's own counters and the last catalog.
    SaveMeta(Meta),
    /// Send an order to the shop. Storage must be flushed first: the order is already saved.
    PlaceOrder {
        /// The order, with its idempotency key.
        order: Order,
        /// The request body.
        request: OrderRequest,
    },
    /// Ask the shop where an order stands.
    FetchOrder {
        /// The shop holding it.
        shop: String,
        /// The agent's order id.
        order_id: String,
        /// The shop's order id.
        shop_order_id: String,
    },
    /// Ask the shop to cancel an order.
    CancelAtShop {
        /// The shop holding it.
        shop: String,
        /// The agent's order id.
        order_id: String,
        /// The shop's order id.
        shop_order_id: String,
    },
    /// Publish a command on the device's `cmd` topic.
    SendCommand {
        /// The device.
        device: Id,
        /// The command.
        command: Command,
    },
    /// A device waiting to join was dropped to keep the waiting list bounded (counted).
    PairingDropped {
        /// The device.
        device: Id,
    },
    /// Tell the people: the timeline, logs and notifications.
    Notice(Notice),
    /// Store the household (members, rules, what rejections taught).
    SaveHousehold(Box<Household>),
    /// Append to the audit trail.
    Audit(AuditEntry),
    /// Forget a device and its slots.
    DeleteDevice {
        /// The device.
        device: Id,
        /// Keys of its slots.
        slots: Vec<String>,
    },
}

/// A change to a proposed order made while approving it; it applies to the order's first line
/// (the consumable that triggered it), bundled lines stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderEdit {
    /// Another number of packs (1 to 99).
    #[serde(default, deserialize_with = "whole::option_u32")]
    #[schema(minimum = 1, maximum = 99)]
    pub packs: Option<u32>,
    /// Another product of the same consumable from the (chosen) shop's catalog.
    pub sku: Option<String>,
    /// Another shop (its id, as in `GET /api/v1/orders/{id}/options`). Bundled lines the
    /// shop does not sell (by the same product id) are left out; they are ordered on their own
    /// when they need it.
    pub shop: Option<String>,
    /// Another fulfilment option of the (chosen) shop (its id: home delivery, click and
    /// collect).
    pub fulfilment: Option<String>,
}

/// What a notice is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// A device connected.
    DeviceOnline,
    /// A device went offline.
    DeviceOffline,
    /// A device reported a fault.
    DeviceFault,
    /// A slot's daily forecast.
    Forecast,
    /// A slot ran empty.
    Empty,
    /// A slot was refilled.
    Refill,
    /// The policy proposed an order.
    OrderProposed,
    /// An order was approved.
    OrderApproved,
    /// The shop accepted an order.
    OrderPlaced,
    /// An order shipped.
    OrderShipped,
    /// An order was delivered.
    OrderDelivered,
    /// An order was cancelled.
    OrderCancelled,
    /// An order failed for good.
    OrderFailed,
    /// A proposed order waits for a person: the prompt to notify.
    ApprovalRequested,
    /// A proposed order will be placed when its cancel window closes.
    OrderScheduled,
    /// A new device waits for an owner to accept it.
    DeviceWaiting,
    /// A device was removed.
    DeviceRemoved,
    /// Members or rules changed.
    SettingsChanged,
    /// A device carried out a command a person asked for.
    CommandDone,
    /// A device refused a command, or did not answer it.
    CommandFailed,
    /// A slot needs ordering and no shop has any of its products in stock: a person must
    /// find some (said once a day while it lasts).
    NothingInStock,
    /// A click-and-collect order is ready at its pickup point (and, once a day from the day
    /// after, still waiting there).
    PickupReady,
    /// The shop cancelled an order.
    CancelledByShop,
    /// The shop sent other products than ordered: accepted within the household's rules, or
    /// to be refused.
    SubstitutedByShop,
    /// The shop would not cancel an order a member asked to cancel.
    CancelRefused,
}

/// A line for the timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    /// When.
    pub at: UnixMs,
    /// What kind.
    pub kind: NoticeKind,
    /// What it is about (`coffee/beans`, an order id).
    pub subject: String,
    /// A readable sentence.
    pub text: String,
}

/// Engine counters and cached data that are stored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// Number of the next order.
    pub next_order_no: u64,
    /// The one catalog agents before several shops stored; moved to `catalogs` (under the
    /// first shop) when the engine starts.
    #[serde(default, deserialize_with = "stored_catalog", skip_serializing)]
    pub catalog: Option<Catalog>,
    /// The last catalog fetched from each shop, by shop id.
    #[serde(default)]
    pub catalogs: BTreeMap<String, Catalog>,
    /// Delivery times observed per product (SKU).
    #[serde(default)]
    pub lead_times: BTreeMap<String, LeadTime>,
}

/// A stored catalog: the contract's, or the sandbox shop's wire catalog that agents before
/// replenish-commerce stored (converted). One that reads as neither is dropped (the next
/// fetch replaces it) rather than making the counters beside it unreadable.
fn stored_catalog<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Catalog>, D::Error> {
    let Some(value) = Option::<serde_json::Value>::deserialize(deserializer)? else {
        return Ok(None);
    };
    if let Ok(catalog) = serde_json::from_value::<Catalog>(value.clone()) {
        return Ok(Some(catalog));
    }
    Ok(
        serde_json::from_value::<replenish_commerce::sandbox::wire::Catalog>(value)
            .ok()
            .map(replenish_commerce::sandbox::catalog_from_wire),
    )
}

/// Everything stored, to rebuild an engine after a restart.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Devices.
    pub devices: Vec<DeviceState>,
    /// Slots.
    pub slots: Vec<SlotState>,
    /// Orders.
    pub orders: Vec<Order>,
    /// Counters and catalog.
    pub meta: Meta,
    /// Members and rules, once stored.
    pub household: Option<Household>,
    /// The most recent audit entries, oldest first.
    pub audit: Vec<AuditEntry>,
}

/// Why an event was refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    /// A report from a device that never sent a birth.
    #[error("device {0} is unknown: no birth received")]
    UnknownDevice(Id),
    /// A report about a slot the device did not announce.
    #[error("device {device} has no slot {slot}")]
    UnknownSlot {
        /// The device.
        device: Id,
        /// The slot.
        slot: Id,
    },
    /// A report already received (an MQTT redelivery).
    #[error("duplicate report boot {boot} seq {seq} from {device}")]
    Duplicate {
        /// The device.
        device: Id,
        /// Its boot.
        boot: u32,
        /// The sequence number.
        seq: u32,
    },
    /// A report older than what is remembered of its device (a boot before the recent ones,
    /// or a hole given up as lost): it cannot be told from a duplicate.
    #[error("report boot {boot} seq {seq} from {device} is older than its de-dup state")]
    TooOld {
        /// The device.
        device: Id,
        /// Its boot.
        boot: u32,
        /// The sequence number.
        seq: u32,
    },
    /// A timestamp before 2020 or ahead of the agent's clock by more than the allowed skew.
    #[error("report from {device} stamped {ts} ms: outside 2020-01-01 .. now + skew")]
    TimestampOutOfRange {
        /// The device.
        device: Id,
        /// The timestamp.
        ts: u64,
    },
    /// An amount no slot of this capacity can hold.
    #[error("report from {device}: {field} {value} is outside 0..={most}")]
    ValueOutOfRange {
        /// The device.
        device: Id,
        /// The field.
        field: &'static str,
        /// The value.
        value: f64,
        /// The most allowed (a multiple of the slot's capacity).
        most: f64,
    },
    /// An ack of no command under way (late, after the agent gave up, or made up).
    #[error("ack {id} from {device} matches no command under way")]
    UnmatchedAck {
        /// The device.
        device: Id,
        /// The ack's id.
        id: u32,
    },
    /// No such order.
    #[error("no order {0}")]
    UnknownOrder(String),
    /// The order is not in a state that allows this.
    #[error(transparent)]
    Transition(#[from] InvalidTransition),
    /// The actor may not do this.
    #[error(transparent)]
    Denied(#[from] Denied),
    /// Rules that cannot be used.
    #[error(transparent)]
    InvalidRules(#[from] InvalidRules),
    /// A request that cannot be carried out as asked (an edit out of range).
    #[error("{0}")]
    Invalid(String),
    /// A request that clashes with what exists (a name already taken).
    #[error("{0}")]
    Conflict(String),
    /// No such member.
    #[error("no member {0}")]
    UnknownMember(String),
    /// A device that waits for an owner's acceptance.
    #[error("device {0} waits for an owner to accept it")]
    NotAccepted(Id),
}

impl EngineError {
    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::UnknownDevice(_) => "unknown_device",
            Self::UnknownSlot { .. } => "unknown_slot",
            Self::Duplicate { .. } => "duplicate",
            Self::TooOld { .. } => "too_old",
            Self::TimestampOutOfRange { .. } => "timestamp_out_of_range",
            Self::ValueOutOfRange { .. } => "value_out_of_range",
            Self::UnmatchedAck { .. } => "unmatched_ack",
            Self::UnknownOrder(_) => "unknown_order",
            Self::Transition(_) => "invalid_transition",
            Self::Denied(_) => "denied",
            Self::InvalidRules(_) | Self::Invalid(_) => "invalid",
            Self::Conflict(_) => "conflict",
            Self::UnknownMember(_) => "unknown_member",
            Self::NotAccepted(_) => "not_accepted",
        }
    }
}

impl EngineError {
    /// The device a refused message came from, if it is about one.
    pub fn device(&self) -> Option<&Id> {
        match self {
            Self::UnknownDevice(device)
            | Self::NotAccepted(device)
            | Self::UnknownSlot { device, .. }
            | Self::Duplicate { device, .. }
            | Self::TooOld { device, .. }
            | Self::TimestampOutOfRange { device, .. }
            | Self::ValueOutOfRange { device, .. }
            | Self::UnmatchedAck { device, .. } => Some(device),
            _ => None,
        }
    }
}

/// The decision core. See the module docs.
pub struct Engine {
    config: EngineConfig,
    model: Box<dyn ForecastModel>,
    policy: Box<dyn ReorderPolicy>,
    /// Boxed: a device (its birth) is large, and a map node holds eleven of them whether
    /// full or not (1,000 devices: 1.7 MiB inline, 1.0 boxed).
    devices: BTreeMap<Id, Box<DeviceState>>,
    /// Boxed for the same reason (3,000 slots: 2.9 MiB inline, 1.7 boxed).
    slots: BTreeMap<String, Box<SlotState>>,
    orders: BTreeMap<String, Order>,
    meta: Meta,
    /// Orders with a placement request under way (not stored: after a restart, none is).
    placing: HashSet<String>,
    /// When each open order was last asked about.
    polled_at: HashMap<String, UnixMs>,
    /// Day of the last forecast notice per slot.
    forecast_noticed: HashMap<String, i64>,
    /// The day each slot was last said to have nothing in stock anywhere.
    nothing_in_stock_noticed: HashMap<String, i64>,
    /// The day each order ready for pickup was last recalled.
    pickup_reminded: HashMap<String, i64>,
    /// Orders whose substitution by the shop was already said.
    substitutions_told: HashSet<String>,
    /// Commands under way.
    commands: devices::Commands,
    /// Ids of orders not yet delivered, cancelled or failed: what the per-report checks scan,
    /// so their cost does not grow with the order history. A closed order may linger in it
    /// until the end of the event that closed it; readers check the state.
    open_orders: BTreeSet<String>,
    household: Household,
    /// The most recent audit entries (all are stored).
    audit: VecDeque<AuditEntry>,
}

/// Audit entries kept in memory for the API; older ones stay in storage only.
pub const AUDIT_IN_MEMORY: usize = 1000;

impl Engine {
    /// A new engine with the default model and policy.
    pub fn new(config: EngineConfig, snapshot: Snapshot) -> Self {
        Self::with_models(
            config,
            snapshot,
            forecast::default_model(),
            Box::new(RiskPolicy),
        )
    }

    /// A new engine with a chosen forecast model and reorder policy.
    pub fn with_models(
        config: EngineConfig,
        snapshot: Snapshot,
        model: Box<dyn ForecastModel>,
        policy: Box<dyn ReorderPolicy>,
    ) -> Self {
        let household = snapshot.household.unwrap_or_else(|| Household {
            rules: config.rules.clone(),
            ..Household::default()
        });
        let open_orders = snapshot
            .orders
            .iter()
            .filter(|o| o.state.is_open())
            .map(|o| o.id.clone())
            .collect();
        let first_shop = config
            .shops
            .first()
            .map_or(DEFAULT_SHOP.to_string(), |s| s.id.clone());
        let mut meta = snapshot.meta;
        if let Some(catalog) = meta.catalog.take() {
            meta.catalogs.entry(first_shop.clone()).or_insert(catalog);
        }
        let mut audit: VecDeque<AuditEntry> = snapshot.audit.into();
        while audit.len() > AUDIT_IN_MEMORY {
            audit.pop_front();
        }
        Self {
            config,
            household,
            audit,
            model,
            policy,
            devices: snapshot
                .devices
                .into_iter()
                .map(|mut d| {
                    d.migrate();
                    (d.id.clone(), Box::new(d))
                })
                .collect(),
            slots: snapshot
                .slots
                .into_iter()
                .map(|s| (s.key(), Box::new(s)))
                .collect(),
            orders: snapshot
                .orders
                .into_iter()
                .map(|mut o| {
                    if o.shop.is_empty() {
                        o.shop = first_shop.clone();
                    }
                    (o.id.clone(), o)
                })
                .collect(),
            meta,
            placing: HashSet::new(),
            polled_at: HashMap::new(),
            forecast_noticed: HashMap::new(),
            nothing_in_stock_noticed: HashMap::new(),
            pickup_reminded: HashMap::new(),
            substitutions_told: HashSet::new(),
            commands: devices::Commands::default(),
            open_orders,
        }
    }

    /// Speaks to the household at `now`: its locale, time zone and display names.
    pub fn words(&self, now: UnixMs) -> words::Words<'_> {
        words::Words {
            locale: self.household.rules.locale,
            zone: self.household.rules.zone(),
            now,
            names: &self.config.names,
            shops: &self.config.shops,
            catalogs: &self.meta.catalogs,
        }
    }

    /// An order's news in one sentence, then why its first line was ordered (how long the
    /// slot lasts, when the order arrives, whether that is in time).
    pub fn order_story(&self, order: &Order, now: UnixMs) -> (String, String) {
        let words = self.words(now);
        let slot = self.slot(&slot_key(&order.device, &order.slot));
        (
            format!("{}.", words.order(order)),
            words.order_why(order, slot),
        )
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Devices by id.
    pub fn devices(&self) -> impl Iterator<Item = &DeviceState> {
        self.devices.values().map(|d| &**d)
    }

    /// One device by its id.
    pub fn device_by_id(&self, id: &Id) -> Option<&DeviceState> {
        self.devices.get(id).map(|d| &**d)
    }

    /// Devices after `after` in id order (from the first when `None`), for paging.
    pub fn devices_after(&self, after: Option<&Id>) -> impl Iterator<Item = &DeviceState> {
        use std::ops::Bound;
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.devices
            .range((start, Bound::Unbounded))
            .map(|(_, d)| &**d)
    }

    /// One slot by its key, `device/slot`.
    pub fn slot(&self, key: &str) -> Option<&SlotState> {
        self.slots.get(key).map(|s| &**s)
    }

    /// The slots of one device, in the order of its birth.
    pub fn slots_of<'a>(&'a self, device: &'a DeviceState) -> impl Iterator<Item = &'a SlotState> {
        device
            .birth
            .slots
            .iter()
            .filter_map(|s| self.slots.get(&slot_key(&device.id, &s.id)).map(|s| &**s))
    }

    /// Commands sent to a device and not yet acknowledged.
    pub fn pending_commands(&self, device: &Id) -> &[PendingCommand] {
        self.commands.pending(device)
    }

    /// Slots by key.
    pub fn slots(&self) -> impl Iterator<Item = &SlotState> {
        self.slots.values().map(|s| &**s)
    }

    /// Orders, oldest first.
    pub fn orders(&self) -> impl DoubleEndedIterator<Item = &Order> {
        self.orders.values()
    }

    /// Orders not yet delivered, cancelled or failed, by id.
    pub fn open_orders(&self) -> impl Iterator<Item = &Order> {
        self.open_orders
            .iter()
            .filter_map(|id| self.orders.get(id))
            .filter(|o| o.state.is_open())
    }

    /// One order.
    pub fn order(&self, id: &str) -> Option<&Order> {
        self.orders.get(id)
    }

    /// The last catalog fetched from each shop, by shop id.
    pub fn catalogs(&self) -> &BTreeMap<String, Catalog> {
        &self.meta.catalogs
    }

    /// The last catalog of `shop`.
    pub fn catalog_of(&self, shop: &str) -> Option<&Catalog> {
        self.meta.catalogs.get(shop)
    }

    /// The shop's name as the household knows it.
    pub fn shop_name<'a>(&'a self, shop: &'a str) -> &'a str {
        self.config
            .shops
            .iter()
            .find(|s| s.id == shop)
            .map_or(shop, |s| s.name.as_str())
    }

    /// Members, rules and what rejections taught.
    pub fn household(&self) -> &Household {
        &self.household
    }

    /// The most recent audit entries, oldest first.
    pub fn audit(&self) -> impl DoubleEndedIterator<Item = &AuditEntry> + ExactSizeIterator {
        self.audit.iter()
    }

    /// Handles one event at time `now`. On error nothing changed.
    pub fn handle(&mut self, event: Event, now: UnixMs) -> Result<Vec<Effect>, EngineError> {
        let mut fx = Vec::new();
        self.dispatch(event, now, &mut fx)?;
        // Every change to an order is saved: keep the index of open ones in step.
        for effect in &fx {
            if let Effect::SaveOrder(order) = effect {
                if order.state.is_open() {
                    self.open_orders.insert(order.id.clone());
                } else {
                    self.open_orders.remove(&order.id);
                }
            }
        }
        Ok(fx)
    }

    fn dispatch(
        &mut self,
        event: Event,
        now: UnixMs,
        fx: &mut Vec<Effect>,
    ) -> Result<(), EngineError> {
        match event {
            Event::Started | Event::Tick => self.tick(now, fx),
            Event::Telemetry { device, message } => self.telemetry(device, message, now, fx)?,
            Event::Catalog { shop, catalog } => {
                if !self.config.shops.iter().any(|s| s.id == shop) {
                    return Err(EngineError::Invalid(format!(
                        "no shop {shop:?} is configured"
                    )));
                }
                self.meta.catalogs.insert(shop, catalog);
                fx.push(Effect::SaveMeta(self.meta.clone()));
                let keys: Vec<String> = self.slots.keys().cloned().collect();
                for key in keys {
                    self.consider_reorder(&key, now, fx);
                }
            }
            Event::Approve { order_id, by, edit } => self.approve(&order_id, &by, edit, now, fx)?,
            Event::Reject {
                order_id,
                by,
                reason,
                note,
            } => self.reject(&order_id, &by, reason, note, now, fx)?,
            Event::Snooze {
                order_id,
                by,
                hours,
            } => self.snooze(&order_id, &by, hours, now, fx)?,
            Event::Collected { order_id, by } => self.collected(&order_id, &by, now, fx)?,
            Event::Cancel { order_id, by } => self.cancel(&order_id, &by, now, fx)?,
            Event::CancelAnswered { order_id, answer } => {
                self.cancel_answered(&order_id, answer, now, fx)?
            }
            Event::AddMember {
                name,
                role,
                token_hash,
                by,
            } => self.add_member(name, role, token_hash, &by, now, fx)?,
            Event::RemoveMember { member_id, by } => {
                self.remove_member(&member_id, &by, now, fx)?
            }
            Event::SetRules { rules, by } => self.set_rules(rules, &by, now, fx)?,
            Event::AcceptDevice { device, by } => self.accept_device(&device, &by, now, fx)?,
            Event::RemoveDevice { device, by } => self.remove_device(&device, &by, now, fx)?,
            Event::IssueDeviceLogin {
                device,
                password_hash,
                by,
            } => self.issue_device_login(&device, password_hash, &by, now, fx)?,
            Event::ClockOff { device } => self.sync_clock(&device, now, fx),
            Event::Command { device, body, by } => {
                self.command_from_person(&device, body, &by, now, fx)?;
            }
            Event::PlacementSucceeded {
                order_id,
                shop_order,
            } => {
                self.placing.remove(&order_id);
                // A product the agent did not order is a substitution, whatever the status.
                self.judge_substitution(&order_id, &shop_order.lines, now, fx);
                // A shop that states no arrival: the lead time this SKU usually takes.
                let expected_at = shop_order.estimated_arrival_ms.unwrap_or_else(|| {
                    let lead = self
                        .orders
                        .get(&order_id)
                        .map(|o| self.lead_of(&o.shop, o.fulfilment.as_ref()).p50())
                        .unwrap_or(self.config.policy.lead_time_ms);
                    now.saturating_add(lead)
                });
                let order = self.order_mut(&order_id)?;
                order.placed(
                    shop_order.id.clone(),
                    shop_order.status,
                    expected_at,
                    shop_order.delivered_at_ms,
                    now,
                )?;
                let order = order.clone();
                self.polled_at.insert(order_id.clone(), now);
                if order.state == OrderState::Delivered {
                    self.on_delivered(&order, fx);
                }
                let (text, _) = self.order_story(&order, now);
                fx.push(Effect::SaveOrder(order));
                fx.push(notice(now, NoticeKind::OrderPlaced, &order_id, text));
            }
            Event::PlacementFailed {
                order_id,
                error,
                retryable,
            } => {
                self.placing.remove(&order_id);
                let base = self.config.retry_base_ms;
                let order = self.order_mut(&order_id)?;
                let retry_at =
                    retryable.then(|| now + retry_backoff(base, order.attempts, &order.id));
                order.placement_failed(error.clone(), retry_at, now)?;
                let order = order.clone();
                fx.push(Effect::SaveOrder(order.clone()));
                if order.state == OrderState::Failed {
                    let (story, _) = self.order_story(&order, now);
                    let text = self.words(now).failed(&story, &error);
                    fx.push(notice(now, NoticeKind::OrderFailed, &order_id, text));
                }
            }
            Event::ShopStatus {
                order_id,
                shop_order,
            } => {
                // A product the agent did not order is a substitution, whatever the status.
                self.judge_substitution(&order_id, &shop_order.lines, now, fx);
                let order = self.order_mut(&order_id)?;
                let before = order.state;
                order.shop_status(shop_order.status, shop_order.delivered_at_ms, now)?;
                if order.state != before {
                    let order = order.clone();
                    let pickup = words::is_pickup(order.fulfilment.as_ref());
                    let (story, _) = self.order_story(&order, now);
                    let (kind, text) = match (order.state, pickup) {
                        (OrderState::Shipped, true) => (NoticeKind::PickupReady, story),
                        (OrderState::Shipped, false) => (NoticeKind::OrderShipped, story),
                        (OrderState::Delivered, _) => (NoticeKind::OrderDelivered, story),
                        _ => (
                            NoticeKind::CancelledByShop,
                            self.words(now).cancelled_by_shop(&order),
                        ),
                    };
                    if order.state == OrderState::Delivered {
                        self.on_delivered(&order, fx);
                    }
                    fx.push(Effect::SaveOrder(order));
                    fx.push(notice(now, kind, &order_id, text));
                }
            }
        }
        Ok(())
    }

    /// A delivery: the packs go to the slot's cupboard stock and the delivery time is learned.
    fn on_delivered(&mut self, order: &Order, fx: &mut Vec<Effect>) {
        let lines = order.lines();
        for line in &lines {
            if let Some(slot) = self.slots.get_mut(&slot_key(&line.device, &line.slot)) {
                slot.delivered(f64::from(line.packs) * line.pack_size);
                fx.push(Effect::SaveSlot(slot.clone()));
            }
        }
        if let (Some(placed), Some(delivered)) = (order.placed_at, order.delivered_at) {
            // Learned per shop and way of fulfilment: one order, one observation.
            let mut lead = self.lead_of(&order.shop, order.fulfilment.as_ref());
            lead.observe(delivered.saturating_sub(placed));
            self.meta.lead_times.insert(
                shopping::lead_key(&order.shop, order.fulfilment.as_ref()),
                lead,
            );
            fx.push(Effect::SaveMeta(self.meta.clone()));
        }
    }

    fn order_mut(&mut self, id: &str) -> Result<&mut Order, EngineError> {
        self.orders
            .get_mut(id)
            .ok_or_else(|| EngineError::UnknownOrder(id.to_string()))
    }

    fn tick(&mut self, now: UnixMs, fx: &mut Vec<Effect>) {
        self.pending_tick(now, fx);
        self.command_tick(now, fx);
        let due: Vec<String> = self
            .open_orders
            .iter()
            .filter_map(|id| self.orders.get(id))
            .filter(|o| {
                o.state == OrderState::Approved
                    && !self.placing.contains(&o.id)
                    && o.retry_at.is_none_or(|at| at <= now)
            })
            .map(|o| o.id.clone())
            .collect();
        for id in due {
            self.send(&id, now, fx);
        }
        for order in self.open_orders.iter().filter_map(|id| self.orders.get(id)) {
            if !matches!(order.state, OrderState::Placed | OrderState::Shipped) {
                continue;
            }
            let Some(shop_order_id) = &order.shop_order_id else {
                continue;
            };
            let last = self.polled_at.get(&order.id).copied().unwrap_or(0);
            if now >= last + self.config.status_poll_ms {
                self.polled_at.insert(order.id.clone(), now);
                fx.push(Effect::FetchOrder {
                    shop: order.shop.clone(),
                    order_id: order.id.clone(),
                    shop_order_id: shop_order_id.clone(),
                });
            }
        }
        self.remind_pickups(now, fx);
        let keys: Vec<String> = self.slots.keys().cloned().collect();
        for key in keys {
            self.refresh_forecast(&key, now, fx);
            self.consider_reorder(&key, now, fx);
        }
    }

    /// Begins a placement attempt: the order is saved (write before send), then sent.
    fn send(&mut self, order_id: &str, now: UnixMs, fx: &mut Vec<Effect>) {
        let Some(order) = self.orders.get_mut(order_id) else {
            return;
        };
        if order.begin_attempt().is_err() {
            return;
        }
        order.updated_at = now;
        let order = order.clone();
        self.placing.insert(order.id.clone());
        let request = OrderRequest {
            household: self.config.household.to_string(),
            reference: order.id.clone(),
            fulfilment: order.fulfilment.as_ref().map(|f| f.id.clone()),
            lines: order
                .lines()
                .into_iter()
                .map(|line| OrderLine {
                    sku: line.sku,
                    quantity: line.packs,
                })
                .collect(),
        };
        fx.push(Effect::SaveOrder(order.clone()));
        fx.push(Effect::PlaceOrder { order, request });
    }

    pub(super) fn create_slots(&mut self, device_id: &Id, birth: &Birth, fx: &mut Vec<Effect>) {
        for spec in &birth.slots {
            let key = slot_key(device_id, &spec.id);
            let keep = self
                .slots
                .get(&key)
                .is_some_and(|s| s.spec.consumable == spec.consumable && s.spec.unit == spec.unit);
            let slot = if keep {
                let mut slot = self.slots[&key].clone();
                slot.spec = spec.clone();
                slot
            } else {
                Box::new(SlotState::new(device_id.clone(), spec.clone()))
            };
            fx.push(Effect::SaveSlot(slot.clone()));
            self.slots.insert(key, slot);
        }
    }

    /// Forecasts a slot again, with a notice once a day.
    fn refresh_forecast(&mut self, key: &str, now: UnixMs, fx: &mut Vec<Effect>) {
        let (prior, every) = match self.slots.get(key) {
            Some(s) => {
                let device = self.devices.get(&s.device).map(|d| &**d);
                (
                    self.prior_of(device, &s.spec),
                    self.link_of(device, &s.spec).map(|link| link.every),
                )
            }
            None => return,
        };
        let Some(slot) = self.slots.get_mut(key) else {
            return;
        };
        let Some(level) = slot.level else { return };
        let linked =
            every.and_then(|every| linked_forecast(self.model.as_ref(), every, slot, level, now));
        slot.forecast = match linked.or_else(|| {
            self.model
                .forecast_with_prior(&slot.history, level, now, prior)
        }) {
            Some(forecast) => Some(forecast),
            // Nothing new to learn from (a slot standing empty for weeks has no usable day):
            // keep the last known habit rather than forget it, or an empty slot would never be
            // reordered.
            None => slot.forecast.take().map(|last| last.rebuilt(now, level)),
        };
        // Not stored here: a forecast is derived from what is stored, and recomputed at every
        // report and tick (storing each slot at every tick rewrote the whole household a
        // minute). The slot is stored with the report that changed it.
        let Some(forecast) = &slot.forecast else {
            return;
        };
        let today = day_of(now);
        if self.forecast_noticed.get(key) == Some(&today) {
            return;
        }
        self.forecast_noticed.insert(key.to_string(), today);
        let unit = slot.spec.unit.symbol();
        let when = match (
            forecast.empty_at,
            forecast.empty_earliest,
            forecast.empty_latest,
        ) {
            (Some(mid), Some(early), Some(late)) => format!(
                "empty in {} (range {} to {})",
                days_from(now, mid),
                days_from(now, early),
                days_from(now, late)
            ),
            _ => "not empty within a year".to_string(),
        };
        let text = format!(
            "{key}: {level:.0} {unit} left, using {:.1} {unit}/day, {when}",
            forecast.rate_per_day
        );
        fx.push(notice(now, NoticeKind::Forecast, key, text));
    }

    /// True while an order for the slot is open: nothing more is ordered meanwhile.
    /// A click-and-collect order left at its pickup point this long no longer counts as
    /// coming: the agent may order again, but only with a person's approval.
    fn has_open_order(&self, slot: &SlotState, now: UnixMs) -> bool {
        self.open_orders
            .iter()
            .filter_map(|id| self.orders.get(id))
            .any(|o| {
                o.state.is_open()
                    && o.covers(&slot.device, &slot.spec.id)
                    && shop_turns::uncollected(o, now).is_none()
            })
    }

    /// How long `shop` takes to fulfil by `fulfilment`: learned from its deliveries, else as
    /// the option states, else the configured default.
    fn lead_of(&self, shop: &str, fulfilment: Option<&FulfilmentOption>) -> LeadTime {
        let prior = fulfilment
            .and_then(shopping::stated_lead_ms)
            .unwrap_or(self.config.policy.lead_time_ms);
        match self
            .meta
            .lead_times
            .get(&shopping::lead_key(shop, fulfilment))
        {
            Some(learned) => LeadTime {
                prior_ms: prior,
                ..learned.clone()
            },
            None => LeadTime::prior(prior),
        }
    }

    /// The policy settings of a consumable: configured, with the household's risk if it set
    /// one.
    pub(super) fn settings_for(&self, consumable: &str) -> ConsumableSettings {
        let mut settings = self
            .config
            .consumables
            .get(consumable)
            .unwrap_or(&self.config.policy.defaults)
            .clone();
        if let Some(risk) = self
            .household
            .rules
            .consumables
            .get(consumable)
            .and_then(|c| c.risk)
        {
            settings.risk = risk;
        }
        settings
    }

    /// The policy's decision for a slot now (`ahead: None`) or, for bundling, within `ahead`,
    /// with the shop, product and fulfilment chosen for it ([`shopping`]; only at `only_shop`
    /// when given); `None` while it has no forecast, nothing on offer or an open order.
    fn decide_for(
        &self,
        slot: &SlotState,
        now: UnixMs,
        ahead: Option<UnixMs>,
        only_shop: Option<&str>,
    ) -> Option<(ReorderDecision, shopping::Candidate, Option<words::Ask>)> {
        let forecast = slot.forecast.as_ref()?;
        if self.has_open_order(slot, now) {
            return None;
        }
        let consumable = slot.spec.consumable.as_str();
        if self.household.rules.mode_of(consumable) == household::Mode::Off
            || self.household.paused(consumable, now)
        {
            return None;
        }
        let mut settings = self.settings_for(consumable);
        let candidates: Vec<shopping::Candidate> = shopping::candidates(
            &self.config.shops,
            &self.meta.catalogs,
            consumable,
            slot.spec.unit,
            self.config.pickup,
            |shop, fulfilment| self.lead_of(shop, fulfilment),
        )
        .into_iter()
        .filter(|c| only_shop.is_none_or(|shop| c.shop == shop))
        .collect();
        // The household's products first; when none of them is in stock anywhere, another
        // product of the consumable, for a person to approve: no dead end.
        let mut ask = None;
        let candidates = match self
            .config
            .products
            .get(consumable)
            .filter(|l| !l.is_empty())
        {
            None => candidates,
            Some(allowed) => {
                let (usual, other): (Vec<_>, Vec<_>) = candidates
                    .into_iter()
                    .partition(|c| allowed.contains(&c.offer.sku));
                if usual.is_empty() && !other.is_empty() {
                    ask = Some(words::Ask::OtherProduct {
                        consumable: consumable.to_string(),
                    });
                    other
                } else {
                    usual
                }
            }
        };
        // Without a set maximum, the appliance and the smallest pack on offer: a pack of three
        // filters must not raise the limit it is checked against.
        let on_hand = slot.level.unwrap_or(0.0) + slot.cupboard;
        if settings.max_stock.is_none()
            && let Some(smallest) = candidates
                .iter()
                .map(|c| c.offer.pack_size)
                .filter(|p| *p > 0.0)
                .min_by(f64::total_cmp)
        {
            settings.max_stock = Some(f64::from(slot.spec.capacity) + smallest);
        }
        let settings = &settings;
        let mut candidates: Vec<(shopping::Candidate, Option<ReorderDecision>)> = candidates
            .into_iter()
            .map(|candidate| {
                let input = PolicyInput {
                    slot,
                    forecast,
                    item: &candidate.offer,
                    stock: StockPosition {
                        in_appliance: slot.level.unwrap_or(0.0),
                        in_cupboard: slot.cupboard,
                    },
                    lead_time: &candidate.lead,
                    settings,
                    review_ms: self.config.policy.review_ms,
                    now,
                };
                let decision = match ahead {
                    None => self.policy.decide(&input),
                    Some(ahead) => self.policy.decide_ahead(&input, ahead),
                };
                (candidate, decision)
            })
            .collect();
        // A pack that would take the stock past the maximum only when nothing else fits.
        let max_stock = settings.max_stock.unwrap_or(f64::INFINITY);
        let fits = |(c, d): &(shopping::Candidate, Option<ReorderDecision>)| {
            d.as_ref().is_some_and(|d| {
                on_hand + f64::from(d.packs) * c.offer.pack_size <= max_stock + 1e-9
            })
        };
        if candidates.iter().any(fits) {
            candidates.retain(|entry| entry.1.is_none() || fits(entry));
        }
        // What the household will use within a year beyond its stock: units past that earn
        // nothing in the comparison of packs.
        let usable = (forecast.demand(now, 365 * DAY_MS).p50 - on_hand).max(0.0);
        // What an order at each shop would bring along; only for an order wanted now, and
        // only where there is a shop to choose (a line's own choice never looks further).
        let bundles = if ahead.is_none()
            && self.config.shops.len() > 1
            && candidates.iter().any(|(_, d)| d.is_some())
        {
            self.bundles_for(slot, now, &candidates)
        } else {
            shopping::Bundles::new()
        };
        let choice = shopping::choose_for_use(
            &candidates,
            &self.config.shops,
            self.config.pickup,
            now,
            forecast.empty_earliest,
            &bundles,
            Some(usable),
        )?;
        let (candidate, _) = candidates.swap_remove(choice.index);
        let mut decision = choice.decision;
        if ask.is_none() {
            ask = self.price_guard(consumable, slot.spec.unit, &candidate.offer);
        }
        // Only a real choice is worth a word: several shops, or ways to get it.
        if self.config.shops.len() > 1 || candidate.fulfilment.is_some() {
            decision.reason = format!("{}; {}", decision.reason, choice.why);
        }
        Some((decision, candidate, ask))
    }

    /// Why a person must approve buying `offer`, if it costs more than the price guard allows
    /// per unit against the usual price: the lowest per unit among the household's products
    /// for the consumable (any shop, in stock or not; every product when none are chosen).
    fn price_guard(
        &self,
        consumable: &str,
        unit: replenish_protocol::Unit,
        offer: &Offer,
    ) -> Option<words::Ask> {
        let allowed = self
            .config
            .products
            .get(consumable)
            .filter(|l| !l.is_empty());
        let usual = self
            .meta
            .catalogs
            .values()
            .flat_map(|c| &c.offers)
            .filter(|o| o.consumable == consumable && o.unit == unit && o.pack_size > 0.0)
            .filter(|o| allowed.is_none_or(|list| list.contains(&o.sku)))
            .map(|o| o.price.minor as f64 / o.pack_size)
            .min_by(f64::total_cmp)?;
        let this = offer.price.minor as f64 / offer.pack_size;
        (usual > 0.0 && this > usual * self.config.price_guard).then(|| words::Ask::Dearer {
            percent: ((this / usual - 1.0) * 100.0).round() as u32,
            allowed: ((self.config.price_guard - 1.0) * 100.0).round() as u32,
        })
    }

    /// What an order for `trigger` at each shop among `candidates` would bring along.
    fn bundles_for(
        &self,
        trigger: &SlotState,
        now: UnixMs,
        candidates: &[(shopping::Candidate, Option<ReorderDecision>)],
    ) -> shopping::Bundles {
        let mut bundles = shopping::Bundles::new();
        for (candidate, _) in candidates {
            if bundles.contains_key(&candidate.shop) {
                continue;
            }
            let joining = self.joining_lines(trigger, now, &candidate.shop);
            bundles.insert(
                candidate.shop.clone(),
                shopping::Bundling {
                    lines: joining.len(),
                    saving: joining.iter().map(|(_, saving)| saving).sum(),
                },
            );
        }
        bundles
    }

    /// Lines of the other slots that would need ordering within the bundling window and that
    /// `shop` sells (one order goes to one shop), where joining pays.
    fn bundle_lines(&self, key: &str, now: UnixMs, shop: &str) -> Vec<OrderItem> {
        let Some(trigger) = self.slots.get(key) else {
            return Vec::new();
        };
        self.joining_lines(trigger, now, shop)
            .into_iter()
            .map(|(line, _)| line)
            .collect()
    }

    /// The lines of [`bundle_lines`](Self::bundle_lines), each with what it saves against
    /// being ordered on its own at its best shop, fee included (minor units). A line that
    /// would cost more per unit at `shop` than on its own does not join.
    fn joining_lines(&self, trigger: &SlotState, now: UnixMs, shop: &str) -> Vec<(OrderItem, f64)> {
        let ahead = self.config.policy.bundle_ms();
        if ahead == 0 {
            return Vec::new();
        }
        self.slots
            .values()
            .filter(|slot| !std::ptr::eq(&***slot, trigger))
            .filter_map(|slot| {
                let (decision, candidate, ask) =
                    self.decide_for(slot, now, Some(ahead), Some(shop))?;
                // A line a person would have to approve does not join silently.
                if ask.is_some() {
                    return None;
                }
                let item = candidate.offer;
                let here = item.price.minor as f64 / item.pack_size;
                let units = f64::from(decision.packs) * item.pack_size;
                // On its own it would pay its best shop's price and fee.
                let saving = match self.decide_for(slot, now, Some(ahead), None) {
                    Some((alone, best, _)) => (best.cost_per_unit(alone.packs) - here) * units,
                    None => 0.0,
                };
                if saving < -1e-9 {
                    return None;
                }
                let line = OrderItem {
                    device: slot.device.clone(),
                    slot: slot.spec.id.clone(),
                    consumable: slot.spec.consumable.clone(),
                    sku: item.sku.clone(),
                    packs: decision.packs,
                    pack_size: item.pack_size,
                    unit: item.unit,
                    total_cents: item.price.minor * u64::from(decision.packs),
                    reason: decision.reason,
                    outlook: slot
                        .forecast
                        .as_ref()
                        .map(|f| words::Outlook::of(f, &candidate.lead)),
                };
                Some((line, saving.max(0.0)))
            })
            .collect()
    }

    /// Cuts a new order to what is left of the monthly budget (see [`policy::trim_to_budget`]);
    /// says what was cut, if anything, on the order and on every line it changed.
    fn fit_budget(
        &self,
        item: &Offer,
        packs: &mut u32,
        bundled: &mut Vec<OrderItem>,
        now: UnixMs,
    ) -> Option<String> {
        let budget = self.household.rules.monthly_budget_cents?;
        let left = budget.saturating_sub(self.spent_this_month(now));
        let wanted = *packs;
        let mut sizes: Vec<(u32, u64)> = bundled
            .iter()
            .map(|l| (l.packs, l.total_cents / u64::from(l.packs.max(1))))
            .collect();
        if !policy::trim_to_budget(packs, item.price.minor, &mut sizes, left) {
            return None;
        }
        let why = format!(
            "to stay within the monthly budget ({} left)",
            household::money(left)
        );
        let left_out: Vec<String> = bundled
            .drain(sizes.len()..)
            .map(|l| l.slot.to_string())
            .collect();
        for (line, (n, price)) in bundled.iter_mut().zip(sizes) {
            if n < line.packs {
                line.reason = format!(
                    "{}; cut to {n} x {:.0} {} {why}",
                    line.reason,
                    line.pack_size,
                    line.unit.symbol()
                );
                line.packs = n;
                line.total_cents = price * u64::from(n);
            }
        }
        let mut cuts = Vec::new();
        if *packs < wanted {
            cuts.push(format!(
                "cut to {packs} x {:.0} {}",
                item.pack_size,
                item.unit.symbol()
            ));
        }
        if !left_out.is_empty() {
            cuts.push(format!("{} left out", left_out.join(", ")));
        }
        if cuts.is_empty() {
            cuts.push("joining lines cut".to_string());
        }
        Some(format!("{} {why}", cuts.join(", ")))
    }

    fn consider_reorder(&mut self, key: &str, now: UnixMs, fx: &mut Vec<Effect>) {
        let Some(slot) = self.slots.get(key) else {
            return;
        };
        let Some((decision, candidate, ask)) = self.decide_for(slot, now, None, None) else {
            self.tell_if_nothing_in_stock(key, now, fx);
            return;
        };
        let item = candidate.offer;
        let ask = ask.or_else(|| {
            self.uncollected_for(slot, now)
                .map(|(_, place)| words::Ask::Uncollected {
                    place,
                    days: shop_turns::UNCOLLECTED_DAYS,
                })
        });
        let asked = ask.as_ref().map(|a| self.words(now).ask(a));
        let mut bundled = self.bundle_lines(key, now, &candidate.shop);
        let mut packs = decision.packs;
        let mut reason = decision.reason;
        if let Some(why) = &asked {
            reason = format!("{reason}; {why}");
        }
        // The usual product out everywhere, another taken in its place: a turn the household
        // can read in the reason and the audit log.
        let turn = self
            .config
            .products
            .get(slot.spec.consumable.as_str())
            .and_then(|l| l.first())
            .filter(|usual| **usual != item.sku)
            .filter(|usual| {
                !self
                    .meta
                    .catalogs
                    .values()
                    .flat_map(|c| &c.offers)
                    .any(|o| &o.sku == *usual && o.stock > 0)
            })
            .map(|usual| {
                format!(
                    "the usual {usual} is out of stock at every shop; {} instead",
                    item.name
                )
            });
        if let Some(turn) = &turn {
            reason = format!("{reason}; {turn}");
        }
        let turns: Vec<(&str, String)> = asked
            .iter()
            .map(|why| ("asked", why.clone()))
            .chain(turn.iter().map(|t| ("alternative", t.clone())))
            .collect();
        if let Some(cut) = self.fit_budget(&item, &mut packs, &mut bundled, now) {
            reason = format!("{reason}; {cut}");
        }
        self.meta.next_order_no += 1;
        let id = format!("o-{:06}", self.meta.next_order_no);
        let order = Order {
            idempotency_key: format!("{}-{id}", self.config.key_prefix),
            id: id.clone(),
            device: slot.device.clone(),
            slot: slot.spec.id.clone(),
            consumable: slot.spec.consumable.clone(),
            sku: item.sku.clone(),
            packs,
            pack_size: item.pack_size,
            unit: item.unit,
            total_cents: item.price.minor * u64::from(packs)
                + bundled.iter().map(|l| l.total_cents).sum::<u64>(),
            state: OrderState::Proposed,
            reason,
            created_at: now,
            updated_at: now,
            shop_order_id: None,
            expected_delivery_at: None,
            placed_at: None,
            delivered_at: None,
            attempts: 0,
            retry_at: None,
            last_error: None,
            pending: None,
            decided_by: None,
            bundled,
            currency: item.price.currency,
            outlook: slot
                .forecast
                .as_ref()
                .map(|f| words::Outlook::of(f, &candidate.lead)),
            shop: candidate.shop,
            fulfilment: candidate.fulfilment,
        };
        fx.push(Effect::SaveMeta(self.meta.clone()));
        fx.push(Effect::SaveOrder(order.clone()));
        fx.push(notice(
            now,
            NoticeKind::OrderProposed,
            &id,
            proposal_text(&id, &order),
        ));
        self.orders.insert(id.clone(), order);
        self.open_orders.insert(id.clone());
        for (action, detail) in turns {
            self.record_as("the agent".into(), action, &id, detail, now, fx);
        }
        self.route_new_order(&id, ask, now, fx);
    }
}

/// The forecast of a slot driven by another's consumption, once the driver's measure has a
/// forecast of its own and the size of one use is known (a whole item for counted ones).
fn linked_forecast(
    model: &dyn ForecastModel,
    every: f64,
    slot: &SlotState,
    level: f64,
    now: UnixMs,
) -> Option<Forecast> {
    let state = slot.link.as_ref()?;
    let driver = model.forecast(&state.driver, 0.0, now)?;
    let record = slot.history.use_record(day_of(now));
    let size = match (&record, slot.spec.unit) {
        (Some(r), _) if r.size > 0.0 => r.size,
        (_, replenish_protocol::Unit::Count) => 1.0,
        _ => return None,
    };
    let last_use_day = record.map_or(day_of(now), |r| r.last_use_day);
    let use_ = forecast::linked::driven_use(every, state, &driver, size, last_use_day);
    Some(Forecast::from_sparse(now, level, use_))
}

pub(super) fn notice(at: UnixMs, kind: NoticeKind, subject: &str, text: String) -> Effect {
    Effect::Notice(Notice {
        at,
        kind,
        subject: subject.to_string(),
        text,
    })
}

/// "order o-000007 proposed: <reason>", then "; with <reason>" for each bundled line.
fn proposal_text(id: &str, order: &Order) -> String {
    let mut text = format!("order {id} proposed: {}", order.reason);
    for line in &order.bundled {
        text.push_str("; with ");
        text.push_str(&line.reason);
    }
    text
}

pub(super) fn fault_name(code: FaultCode) -> &'static str {
    match code {
        FaultCode::SensorUnavailable => "sensor_unavailable",
        FaultCode::OutOfRange => "out_of_range",
        FaultCode::CalibrationNeeded => "calibration_needed",
        FaultCode::BufferOverflow => "buffer_overflow",
        FaultCode::Other => "other",
    }
}

/// Delay before the next placement attempt: `base` (1 min by default), doubling, at most an
/// hour, with "equal jitter" (between half and all of it) so that orders that failed together
/// do not all come back together. The jitter is drawn from the order id and attempt: the
/// engine stays deterministic.
fn retry_backoff(base: UnixMs, attempts: u32, order_id: &str) -> UnixMs {
    let delay = base.saturating_mul(1 << attempts.min(6)).clamp(2, HOUR_MS);
    // FNV-1a over the id and the attempt.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in order_id.bytes().chain(attempts.to_le_bytes()) {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    delay / 2 + hash % (delay / 2 + 1)
}

fn days_from(now: UnixMs, t: UnixMs) -> String {
    format!("{:.1} days", t.saturating_sub(now) as f64 / DAY_MS as f64)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use household::Mode;
    use replenish_commerce::OrderStatus;
    use replenish_protocol::ReportBody;
    use replenish_protocol::{Birth, SensorKind, SlotSpec, Unit};

    pub(super) const T0: UnixMs = 20_458 * DAY_MS;

    pub(super) fn id(s: &str) -> Id {
        Id::new(s).unwrap()
    }

    pub(super) fn catalog() -> Catalog {
        Catalog {
            fulfilment: Vec::new(),
            offers: vec![Offer {
                sku: "beans-500".into(),
                name: "Beans 500 g".into(),
                consumable: "coffee_beans".into(),
                pack_size: 500.0,
                unit: Unit::G,
                price: replenish_commerce::Money::new(899, replenish_commerce::Currency::EUR),
                stock: 100,
            }],
        }
    }

    pub(super) fn birth() -> Telemetry {
        let mut slots = heapless::Vec::new();
        let _ = slots.push(SlotSpec {
            id: id("beans"),
            consumable: id("coffee_beans"),
            unit: Unit::G,
            capacity: 1000.0,
            sensor: SensorKind::Level,
        });
        Telemetry::Status(Box::new(Status::Online(Birth {
            model: id("coffee-maker"),
            firmware: heapless::String::try_from("0.1.0").unwrap(),
            boot: 1,
            slots,
            buffer: None,
            usage: None,
        })))
    }

    pub(super) fn level(seq: u32, ts: UnixMs, remaining: f32) -> Event {
        Event::Telemetry {
            device: id("coffee"),
            message: Telemetry::Report(Report {
                boot: 1,
                seq,
                ts,
                body: ReportBody::Level {
                    slot: id("beans"),
                    remaining,
                },
            }),
        }
    }

    pub(super) fn engine(mode: Mode) -> Engine {
        let mut config = EngineConfig::new(id("home"), "inst".into());
        config.rules.default_mode = mode;
        config.pairing = Pairing::Open;
        let mut engine = Engine::new(config, Snapshot::default());
        engine
            .handle(
                Event::Catalog {
                    shop: DEFAULT_SHOP.into(),
                    catalog: catalog(),
                },
                T0,
            )
            .unwrap();
        engine
            .handle(
                Event::Telemetry {
                    device: id("coffee"),
                    message: birth(),
                },
                T0,
            )
            .unwrap();
        engine
    }

    /// Feeds 50 g/day from 600 g until the engine decides; returns the effects of that step.
    pub(super) fn run_until_order(engine: &mut Engine) -> (UnixMs, Vec<Effect>) {
        let mut remaining = 600.0;
        for day in 0..12u64 {
            let t = T0 + day * DAY_MS + 8 * HOUR_MS;
            let fx = engine
                .handle(level(day as u32 + 1, t, remaining), t)
                .unwrap();
            if fx.iter().any(|e| matches!(e, Effect::SaveOrder(_))) {
                return (t, fx);
            }
            remaining -= 50.0;
        }
        panic!("no order within 12 days");
    }

    pub(super) fn place_order(fx: &[Effect]) -> Option<&Order> {
        fx.iter().find_map(|e| match e {
            Effect::PlaceOrder { order, .. } => Some(order),
            _ => None,
        })
    }

    #[test]
    fn placement_retries_back_off_with_jitter_that_differs_per_order() {
        for attempts in 0..10 {
            let full = (60_000u64 << attempts.min(6)).min(HOUR_MS);
            let wait = retry_backoff(60_000, attempts, "o-000001");
            assert!((full / 2..=full).contains(&wait), "{attempts}: {wait}");
            assert_eq!(wait, retry_backoff(60_000, attempts, "o-000001"));
        }
        let spread: std::collections::HashSet<UnixMs> = (0..20)
            .map(|n| retry_backoff(60_000, 3, &format!("o-{n:06}")))
            .collect();
        assert!(spread.len() > 10, "orders failing together come back apart");
        assert!(retry_backoff(1_000, 0, "o-1") <= 1_000);
    }

    #[test]
    fn meta_stored_with_the_sandbox_wire_catalog_still_loads() {
        let legacy = r#"{"next_order_no":7,"catalog":{"items":[{"sku":"beans-500","name":"Beans",
            "consumable":"coffee_beans","pack_size":500.0,"unit":"g","price_cents":899,
            "currency":"EUR","stock":3}]},"lead_times":{}}"#;
        let meta: Meta = serde_json::from_str(legacy).unwrap();
        assert_eq!(meta.next_order_no, 7);
        let offer = &meta.catalog.unwrap().offers[0];
        assert_eq!(
            offer.price,
            replenish_commerce::Money::new(899, replenish_commerce::Currency::EUR)
        );
        assert_eq!(offer.stock, 3);
        let garbled: Meta =
            serde_json::from_str(r#"{"next_order_no":7,"catalog":{"items":"?"}}"#).unwrap();
        assert_eq!((garbled.next_order_no, garbled.catalog), (7, None));
    }

    fn shop_order(key: &str, status: OrderStatus) -> ShopOrder {
        ShopOrder {
            id: "so-1".into(),
            idempotency_key: key.into(),
            reference: "o-000001".into(),
            status,
            lines: vec![],
            total: replenish_commerce::Money::new(899, replenish_commerce::Currency::EUR),
            created_at_ms: 0,
            estimated_arrival_ms: Some(0),
            shipped_at_ms: None,
            delivered_at_ms: None,
            fulfilment: None,
        }
    }

    #[test]
    fn auto_mode_saves_the_order_before_sending_it_once() {
        let mut e = engine(Mode::Auto);
        let (t, fx) = run_until_order(&mut e);
        let saved = fx
            .iter()
            .position(|x| matches!(x, Effect::SaveOrder(o) if o.state == OrderState::Approved));
        let sent = fx
            .iter()
            .position(|x| matches!(x, Effect::PlaceOrder { .. }));
        assert!(saved.unwrap() < sent.unwrap(), "write before send: {fx:?}");
        let order = place_order(&fx).unwrap();
        assert_eq!(order.idempotency_key, "inst-o-000001");
        // Two weeks at 50 g/day: two 500 g packs.
        assert_eq!(order.packs, 2);
        // Nothing more is ordered while it is in flight, however low the slot goes.
        let fx = e
            .handle(level(100, t + HOUR_MS, 10.0), t + HOUR_MS)
            .unwrap();
        assert!(place_order(&fx).is_none());
        let fx = e.handle(Event::Tick, t + 2 * HOUR_MS).unwrap();
        assert!(place_order(&fx).is_none(), "already being placed");
    }

    /// Shop A: beans at 8.99 with 4.95 delivery in 1–2 days, or free pickup the same day.
    /// Shop B: the same beans at 8.49, free delivery, but in `b_days` days.
    fn two_shops(pickup: shopping::PickupPreference, b_days: u32) -> Engine {
        use replenish_commerce::{Currency, Fulfilment, Money, PickupPoint};
        let mut config = EngineConfig::new(id("home"), "inst".into());
        config.rules.default_mode = Mode::Auto;
        config.pairing = Pairing::Open;
        config.pickup = pickup;
        config.shops = ["a", "b"]
            .map(|s| shopping::ShopInfo {
                id: s.into(),
                name: format!("Shop {}", s.to_uppercase()),
            })
            .to_vec();
        let mut e = Engine::new(config, Snapshot::default());
        let option = |id: &str, pickup: bool, fee: u64, days: (u32, u32)| FulfilmentOption {
            id: id.into(),
            name: if pickup {
                "Click and collect"
            } else {
                "Home delivery"
            }
            .into(),
            method: if pickup {
                Fulfilment::Pickup(PickupPoint {
                    name: "Shop A Mitte".into(),
                    address: "Hauptstraße 1".into(),
                    opening_hours: "Mon–Sat 08:00–20:00".into(),
                })
            } else {
                Fulfilment::Delivery
            },
            price: Some(Money::new(fee, Currency::EUR)),
            lead_days: Some(days),
        };
        let mut a = catalog();
        a.fulfilment = vec![
            option("home", false, 495, (1, 2)),
            option("pickup", true, 0, (0, 0)),
        ];
        let mut b = catalog();
        b.offers[0].sku = "b-beans-500".into();
        b.offers[0].price.minor = 849;
        b.fulfilment = vec![option("post", false, 0, (b_days, b_days))];
        for (shop, catalog) in [("a", a), ("b", b)] {
            e.handle(
                Event::Catalog {
                    shop: shop.into(),
                    catalog,
                },
                T0,
            )
            .unwrap();
        }
        e.handle(
            Event::Telemetry {
                device: id("coffee"),
                message: birth(),
            },
            T0,
        )
        .unwrap();
        e
    }

    /// 50 g a day from 600 g, reported every two hours (a pickup's short lead time needs a
    /// closer look than once a day), until an order is placed.
    fn run_until_placed(engine: &mut Engine) -> (Order, Vec<Effect>) {
        for step in 0..(12 * 12) {
            let t = T0 + step * 2 * HOUR_MS;
            let remaining = 600.0 - 50.0 * (step as f32) / 12.0;
            let fx = engine
                .handle(level(step as u32 + 1, t, remaining), t)
                .unwrap();
            if let Some(order) = place_order(&fx).cloned() {
                return (order, fx);
            }
        }
        panic!("no order within 12 days");
    }

    #[test]
    fn of_two_shops_the_cheapest_way_that_arrives_in_time_is_chosen_and_named() {
        // B is cheapest and, ordered early enough for its 6 days, arrives in time.
        let mut e = two_shops(shopping::PickupPreference::WhenSooner, 6);
        let (order, _) = run_until_placed(&mut e);
        assert_eq!(order.shop, "b", "{}", order.reason);
        assert!(order.reason.contains("Shop B"), "{}", order.reason);

        // At 20 days B cannot be in time: the agent waits for A, whose free pickup beats its
        // paid delivery.
        let mut e = two_shops(shopping::PickupPreference::WhenSooner, 20);
        let (order, fx) = run_until_placed(&mut e);
        assert_eq!(order.shop, "a", "{}", order.reason);
        assert_eq!(order.fulfilment.as_ref().unwrap().id, "pickup");
        assert!(
            order.reason.contains("Shop A") && order.reason.contains("to collect at Shop A Mitte"),
            "{}",
            order.reason
        );
        let request = fx
            .iter()
            .find_map(|x| match x {
                Effect::PlaceOrder { request, .. } => Some(request.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(request.fulfilment.as_deref(), Some("pickup"));

        let mut never = two_shops(shopping::PickupPreference::Never, 20);
        let (order, _) = run_until_placed(&mut never);
        assert_eq!(
            (
                order.shop.as_str(),
                order.fulfilment.as_ref().unwrap().id.as_str()
            ),
            ("a", "home")
        );
    }

    /// An auto-mode engine selling `offers` (beans, by SKU and price per 500 g pack, with
    /// stock), `configure` applied first.
    fn engine_with(
        offers: &[(&str, u64, u32)],
        configure: impl FnOnce(&mut EngineConfig),
    ) -> Engine {
        let mut config = EngineConfig::new(id("home"), "inst".into());
        config.rules.default_mode = Mode::Auto;
        config.pairing = Pairing::Open;
        configure(&mut config);
        let mut e = Engine::new(config, Snapshot::default());
        let template = catalog().offers[0].clone();
        let catalog = Catalog {
            offers: offers
                .iter()
                .map(|(sku, cents, stock)| Offer {
                    sku: (*sku).into(),
                    name: (*sku).into(),
                    price: replenish_commerce::Money::new(
                        *cents,
                        replenish_commerce::Currency::EUR,
                    ),
                    stock: *stock,
                    ..template.clone()
                })
                .collect(),
            fulfilment: Vec::new(),
        };
        e.handle(
            Event::Catalog {
                shop: DEFAULT_SHOP.into(),
                catalog,
            },
            T0,
        )
        .unwrap();
        e.handle(
            Event::Telemetry {
                device: id("coffee"),
                message: birth(),
            },
            T0,
        )
        .unwrap();
        e
    }

    #[test]
    fn when_the_usual_product_is_out_another_is_proposed_for_approval_never_ordered_silently() {
        let allow = |c: &mut EngineConfig| {
            c.products
                .insert("coffee_beans".into(), vec!["usual-500".into()]);
        };
        // In stock: the usual product is ordered as usual.
        let mut e = engine_with(&[("usual-500", 899, 10), ("other-500", 949, 10)], allow);
        let (_, fx) = run_until_order(&mut e);
        assert_eq!(place_order(&fx).unwrap().sku, "usual-500");

        // Out of stock: the other product, waiting for a person even in auto mode.
        let mut e = engine_with(&[("usual-500", 899, 0), ("other-500", 949, 10)], allow);
        let (_, fx) = run_until_order(&mut e);
        assert!(place_order(&fx).is_none(), "not ordered without asking");
        let order = e.orders().next().unwrap();
        assert_eq!(
            (order.sku.as_str(), order.state),
            ("other-500", OrderState::Proposed)
        );
        assert!(
            order
                .reason
                .contains("None of your chosen products for Coffee beans"),
            "{}",
            order.reason
        );
        assert!(
            order.reason.contains("the usual usual-500 is out of stock"),
            "{}",
            order.reason
        );
        let actions: Vec<&str> = e.audit().map(|a| a.action.as_str()).collect();
        assert!(
            actions.contains(&"alternative") && actions.contains(&"asked"),
            "{actions:?}"
        );
        let pending = order.pending.as_ref().unwrap();
        assert_eq!(pending.on_expiry, household::ExpiryDefault::Skip);
    }

    #[test]
    fn with_nothing_in_stock_anywhere_the_household_is_told_once_a_day_never_silently() {
        let mut e = engine_with(&[("beans-500", 899, 0), ("beans-1kg", 1500, 0)], |_| {});
        let mut told = Vec::new();
        let mut remaining = 600.0;
        for step in 0..(12 * 6) {
            let t = T0 + step * 4 * HOUR_MS;
            let fx = e.handle(level(step as u32 + 1, t, remaining), t).unwrap();
            assert!(place_order(&fx).is_none());
            told.extend(fx.iter().filter_map(|x| match x {
                Effect::Notice(n) if n.kind == NoticeKind::NothingInStock => {
                    Some((t / DAY_MS, n.text.clone()))
                }
                _ => None,
            }));
            remaining = (remaining - 50.0 / 6.0).max(0.0);
        }
        assert!(
            !told.is_empty(),
            "a slot running out with nothing to buy is said"
        );
        let days: std::collections::HashSet<u64> = told.iter().map(|(d, _)| *d).collect();
        assert_eq!(days.len(), told.len(), "at most once a day: {told:?}");
        assert!(told[0].1.contains("beans-1kg at the shop"), "{}", told[0].1);
        assert!(e.orders().next().is_none());
    }

    #[test]
    fn an_order_above_the_price_guard_waits_for_approval_even_in_auto_mode() {
        // The 1 kg bag usually makes beans cheap (12.00 per kg); it is out, and 500 g bags
        // cost 9.99, i.e. 19.98 per kg: 66 % more.
        let mut e = engine_with(&[("cheap-500", 600, 0), ("dear-500", 999, 10)], |_| {});
        let (_, fx) = run_until_order(&mut e);
        assert!(place_order(&fx).is_none());
        let order = e.orders().next().unwrap();
        assert_eq!(order.state, OrderState::Proposed);
        assert!(
            order.reason.contains("It costs 67% more than usual"),
            "{}",
            order.reason
        );

        // Within the guard (a tolerance of 2x): ordered at once.
        let mut e = engine_with(&[("cheap-500", 600, 0), ("dear-500", 999, 10)], |c| {
            c.price_guard = 2.0
        });
        let (_, fx) = run_until_order(&mut e);
        assert_eq!(place_order(&fx).unwrap().sku, "dear-500");
    }

    #[test]
    fn a_pickup_waiting_is_recalled_daily_and_a_member_can_say_it_was_collected() {
        let mut e = two_shops(shopping::PickupPreference::Prefer, 20);
        let (order, _) = run_until_placed(&mut e);
        assert_eq!(order.fulfilment.as_ref().unwrap().id, "pickup");
        let t = order.created_at + HOUR_MS;
        let mut placed = shop_order(&order.idempotency_key, OrderStatus::ReadyForPickup);
        placed.lines = vec![];
        e.handle(
            Event::PlacementSucceeded {
                order_id: order.id.clone(),
                shop_order: placed,
            },
            t,
        )
        .unwrap();
        assert_eq!(e.order(&order.id).unwrap().state, OrderState::Shipped);
        // Nothing the first day; then once a day.
        let recalls = |fx: &[Effect]| {
            fx.iter()
                .filter(|x| matches!(x, Effect::Notice(n) if n.text.contains("has been waiting at Shop A Mitte")))
                .count()
        };
        assert_eq!(
            recalls(&e.handle(Event::Tick, t + 12 * HOUR_MS).unwrap()),
            0
        );
        assert_eq!(
            recalls(&e.handle(Event::Tick, t + 25 * HOUR_MS).unwrap()),
            1
        );
        assert_eq!(
            recalls(&e.handle(Event::Tick, t + 26 * HOUR_MS).unwrap()),
            0
        );
        // A member says it was collected: delivered, the cupboard has it, no more recalls.
        let fx = e
            .handle(
                Event::Collected {
                    order_id: order.id.clone(),
                    by: Actor::Console,
                },
                t + 27 * HOUR_MS,
            )
            .unwrap();
        assert!(fx.iter().any(
            |x| matches!(x, Effect::Notice(n) if n.text.contains("collected at Shop A Mitte"))
        ));
        assert_eq!(e.order(&order.id).unwrap().state, OrderState::Delivered);
        assert!(e.slot("coffee/beans").unwrap().cupboard > 0.0);
        assert_eq!(
            recalls(&e.handle(Event::Tick, t + 50 * HOUR_MS).unwrap()),
            0
        );
        // Twice is refused, and so is a home delivery.
        let again = e.handle(
            Event::Collected {
                order_id: order.id.clone(),
                by: Actor::Console,
            },
            t + 51 * HOUR_MS,
        );
        assert!(matches!(again, Err(EngineError::Invalid(_))));
    }

    #[test]
    fn a_refill_the_cupboard_cannot_explain_confirms_a_ready_pickup() {
        let mut e = two_shops(shopping::PickupPreference::Prefer, 20);
        let (order, _) = run_until_placed(&mut e);
        let t = order.created_at + HOUR_MS;
        e.handle(
            Event::PlacementSucceeded {
                order_id: order.id.clone(),
                shop_order: shop_order(&order.idempotency_key, OrderStatus::ReadyForPickup),
            },
            t,
        )
        .unwrap();
        let refill = |seq: u32, at: UnixMs| Event::Telemetry {
            device: id("coffee"),
            message: Telemetry::Report(Report {
                boot: 1,
                seq,
                ts: at,
                body: ReportBody::Refill {
                    slot: id("beans"),
                    before: 50.0,
                    after: 550.0,
                },
            }),
        };
        let fx = e
            .handle(refill(1000, t + 3 * HOUR_MS), t + 3 * HOUR_MS)
            .unwrap();
        assert_eq!(e.order(&order.id).unwrap().state, OrderState::Delivered);
        assert!(fx.iter().any(
            |x| matches!(x, Effect::Notice(n) if n.text.contains("collected at Shop A Mitte"))
        ));
        assert_eq!(
            e.audit().next_back().map(|a| a.action.as_str()),
            Some("collected"),
        );
    }

    #[test]
    fn a_pickup_left_uncollected_for_three_days_lets_the_agent_ask_to_order_again() {
        let mut e = two_shops(shopping::PickupPreference::Prefer, 20);
        let (order, _) = run_until_placed(&mut e);
        let t = order.created_at + HOUR_MS;
        e.handle(
            Event::PlacementSucceeded {
                order_id: order.id.clone(),
                shop_order: shop_order(&order.idempotency_key, OrderStatus::ReadyForPickup),
            },
            t,
        )
        .unwrap();
        // Two days on, running low: the order at the pickup point still counts.
        let fx = e
            .handle(level(2000, t + 2 * DAY_MS, 20.0), t + 2 * DAY_MS)
            .unwrap();
        assert!(
            !fx.iter()
                .any(|x| matches!(x, Effect::SaveOrder(o) if o.id != order.id))
        );
        // Past three days it no longer does: a new order, for a person to approve.
        let later = t + 3 * DAY_MS + HOUR_MS;
        e.handle(level(2001, later, 15.0), later).unwrap();
        let again = e
            .orders()
            .find(|o| o.id != order.id)
            .expect("ordered again");
        assert_eq!(again.state, OrderState::Proposed);
        assert!(
            again
                .reason
                .contains("has waited at Shop A Mitte for 3 days without being collected"),
            "{}",
            again.reason
        );
    }

    #[test]
    fn a_substitution_by_the_shop_is_accepted_within_the_rules_and_told_otherwise() {
        for (allowed, accepted) in [
            (vec!["usual-500", "other-500"], true),
            (vec!["usual-500"], false),
        ] {
            let mut e = engine_with(&[("usual-500", 899, 10), ("other-500", 949, 10)], |c| {
                c.products.insert(
                    "coffee_beans".into(),
                    allowed.iter().map(|s| (*s).to_string()).collect(),
                );
            });
            let (t, fx) = run_until_order(&mut e);
            let order = place_order(&fx).unwrap().clone();
            assert_eq!(order.sku, "usual-500");
            let mut at_shop = shop_order(&order.idempotency_key, OrderStatus::SubstitutedByShop);
            at_shop.lines = vec![OrderLine {
                sku: "other-500".into(),
                quantity: order.packs,
            }];
            let told = |fx: &[Effect]| {
                fx.iter()
                    .filter_map(|x| match x {
                        Effect::Notice(n) if n.kind == NoticeKind::SubstitutedByShop => {
                            Some(n.text.clone())
                        }
                        _ => None,
                    })
                    .collect::<Vec<_>>()
            };
            let fx = e
                .handle(
                    Event::PlacementSucceeded {
                        order_id: order.id.clone(),
                        shop_order: at_shop.clone(),
                    },
                    t + HOUR_MS,
                )
                .unwrap();
            let text = told(&fx);
            assert_eq!(text.len(), 1, "{text:?}");
            let now = e.order(&order.id).unwrap();
            if accepted {
                assert!(
                    text[0].contains("Accepted, as your rules allow"),
                    "{}",
                    text[0]
                );
                assert_eq!(now.sku, "other-500", "the lines follow the shop's");
            } else {
                assert!(text[0].contains("Not as your rules allow"), "{}", text[0]);
                assert_eq!(now.sku, "usual-500");
            }
            // Said once, however often the shop says it.
            let fx = e
                .handle(
                    Event::ShopStatus {
                        order_id: order.id.clone(),
                        shop_order: at_shop,
                    },
                    t + 2 * HOUR_MS,
                )
                .unwrap();
            assert!(told(&fx).is_empty());
        }
    }

    #[test]
    fn a_catalog_from_a_shop_that_is_not_configured_is_refused() {
        let mut e = engine(Mode::Auto);
        let refused = e.handle(
            Event::Catalog {
                shop: "elsewhere".into(),
                catalog: catalog(),
            },
            T0,
        );
        assert!(matches!(refused, Err(EngineError::Invalid(_))));
        assert_eq!(e.catalogs().keys().collect::<Vec<_>>(), [DEFAULT_SHOP]);
    }

    #[test]
    fn orders_of_an_agent_before_several_shops_belong_to_the_first_shop() {
        let mut e = engine(Mode::Auto);
        let (_, fx) = run_until_order(&mut e);
        let mut stored = place_order(&fx).unwrap().clone();
        stored.shop = String::new();
        let json = serde_json::to_string(&stored)
            .unwrap()
            .replace(",\"shop\":\"\"", "");
        let legacy: Order = serde_json::from_str(&json).unwrap();
        let config = EngineConfig::new(id("home"), "inst".into());
        let e = Engine::new(
            config,
            Snapshot {
                orders: vec![legacy],
                ..Snapshot::default()
            },
        );
        assert_eq!(e.orders().next().unwrap().shop, DEFAULT_SHOP);
    }

    #[test]
    fn manual_mode_waits_for_approval() {
        let mut e = engine(Mode::Approve);
        let (t, fx) = run_until_order(&mut e);
        assert!(place_order(&fx).is_none());
        let order = e.orders().next().unwrap().clone();
        assert_eq!(order.state, OrderState::Proposed);
        assert!(
            e.handle(Event::Tick, t + HOUR_MS)
                .unwrap()
                .iter()
                .all(|x| !matches!(x, Effect::PlaceOrder { .. }))
        );
        let fx = e
            .handle(
                Event::Approve {
                    order_id: order.id.clone(),
                    by: Actor::Console,
                    edit: None,
                },
                t + HOUR_MS,
            )
            .unwrap();
        assert_eq!(place_order(&fx).unwrap().id, order.id);
        let again = e.handle(
            Event::Approve {
                order_id: order.id.clone(),
                by: Actor::Console,
                edit: None,
            },
            t + HOUR_MS,
        );
        assert!(matches!(again, Err(EngineError::Invalid(_))));
        assert!(matches!(
            e.handle(
                Event::Approve {
                    order_id: "o-999".into(),
                    by: Actor::Console,
                    edit: None,
                },
                t
            ),
            Err(EngineError::UnknownOrder(_))
        ));
    }

    #[test]
    fn a_restarted_engine_resends_with_the_same_key() {
        let mut e = engine(Mode::Auto);
        let (t, fx) = run_until_order(&mut e);
        let key = place_order(&fx).unwrap().idempotency_key.clone();
        // Crash: rebuild from what was saved.
        let snapshot = Snapshot {
            devices: e.devices().cloned().collect(),
            slots: e.slots().cloned().collect(),
            orders: e.orders().cloned().collect(),
            meta: e.meta.clone(),
            household: Some(e.household().clone()),
            audit: e.audit().cloned().collect(),
        };
        let mut restarted = Engine::new(e.config().clone(), snapshot);
        let fx = restarted.handle(Event::Started, t + 60_000).unwrap();
        let resent = place_order(&fx).unwrap();
        assert_eq!(
            (resent.idempotency_key.as_str(), resent.attempts),
            (key.as_str(), 2)
        );
        let fx = restarted
            .handle(
                Event::PlacementSucceeded {
                    order_id: resent.id.clone(),
                    shop_order: shop_order(&key, OrderStatus::Accepted),
                },
                t + 70_000,
            )
            .unwrap();
        assert!(
            fx.iter()
                .any(|x| matches!(x, Effect::SaveOrder(o) if o.state == OrderState::Placed))
        );
    }

    #[test]
    fn retryable_failures_retry_later_with_the_same_key() {
        let mut e = engine(Mode::Auto);
        let (t, fx) = run_until_order(&mut e);
        let order = place_order(&fx).unwrap().clone();
        e.handle(
            Event::PlacementFailed {
                order_id: order.id.clone(),
                error: "timeout".into(),
                retryable: true,
            },
            t,
        )
        .unwrap();
        assert!(
            place_order(&e.handle(Event::Tick, t + 30_000).unwrap()).is_none(),
            "backing off"
        );
        let fx = e.handle(Event::Tick, t + 10 * 60_000).unwrap();
        assert_eq!(
            place_order(&fx).unwrap().idempotency_key,
            order.idempotency_key
        );
    }

    #[test]
    fn delivery_then_refill_allows_the_next_order() {
        let mut e = engine(Mode::Auto);
        let (t, fx) = run_until_order(&mut e);
        let order = place_order(&fx).unwrap().clone();
        let mut delivered = shop_order(&order.idempotency_key, OrderStatus::Delivered);
        delivered.delivered_at_ms = Some(t + DAY_MS);
        e.handle(
            Event::PlacementSucceeded {
                order_id: order.id.clone(),
                shop_order: delivered,
            },
            t + DAY_MS,
        )
        .unwrap();
        assert_eq!(e.order(&order.id).unwrap().state, OrderState::Delivered);
        // Delivered but not yet loaded: still no new order.
        let fx = e
            .handle(level(200, t + DAY_MS + HOUR_MS, 5.0), t + DAY_MS + HOUR_MS)
            .unwrap();
        assert!(place_order(&fx).is_none());
        let refill = Event::Telemetry {
            device: id("coffee"),
            message: Telemetry::Report(Report {
                boot: 1,
                seq: 201,
                ts: t + DAY_MS + 2 * HOUR_MS,
                body: ReportBody::Refill {
                    slot: id("beans"),
                    before: 5.0,
                    after: 505.0,
                },
            }),
        };
        e.handle(refill, t + DAY_MS + 2 * HOUR_MS).unwrap();
        assert!(e.slots().next().unwrap().last_refill_at.is_some());
    }

    #[test]
    fn a_slot_left_empty_for_weeks_keeps_its_last_rate_and_is_reordered() {
        let mut e = engine(Mode::Approve);
        let (t, _) = run_until_order(&mut e);
        let id = e.orders().next().unwrap().id.clone();
        e.handle(
            Event::Reject {
                order_id: id,
                by: Actor::Console,
                reason: RejectReason::Other,
                note: Some("not now".into()),
            },
            t,
        )
        .unwrap();
        // Empty, unused, for five weeks, with daily heartbeats: every day in the model's window
        // is a starved day, which says nothing of demand.
        let mut later = t;
        for day in 1..=35u32 {
            later = t + u64::from(day) * DAY_MS;
            e.handle(level(500 + day, later, 0.0), later).unwrap();
        }
        let fx = e.handle(Event::Tick, later + HOUR_MS).unwrap();
        assert!(e.slots().next().unwrap().forecast.is_some());
        assert!(
            fx.iter()
                .any(|x| matches!(x, Effect::SaveOrder(o) if o.state == OrderState::Proposed))
                || e.orders().any(|o| o.created_at > t),
            "the empty slot was not reordered"
        );
    }

    #[test]
    fn unknown_devices_slots_and_duplicates_are_refused_without_change() {
        let mut e = engine(Mode::Auto);
        let stranger = Event::Telemetry {
            device: id("stranger"),
            message: Telemetry::Report(Report {
                boot: 1,
                seq: 1,
                ts: 0,
                body: ReportBody::Level {
                    slot: id("beans"),
                    remaining: 1.0,
                },
            }),
        };
        assert!(matches!(
            e.handle(stranger, T0),
            Err(EngineError::UnknownDevice(_))
        ));
        let wrong_slot = Event::Telemetry {
            device: id("coffee"),
            message: Telemetry::Report(Report {
                boot: 1,
                seq: 1,
                ts: 0,
                body: ReportBody::Level {
                    slot: id("milk"),
                    remaining: 1.0,
                },
            }),
        };
        assert!(matches!(
            e.handle(wrong_slot, T0),
            Err(EngineError::UnknownSlot { .. })
        ));
        e.handle(level(1, T0, 500.0), T0).unwrap();
        assert!(matches!(
            e.handle(level(1, T0, 400.0), T0),
            Err(EngineError::Duplicate { .. })
        ));
        assert_eq!(e.slots().next().unwrap().level, Some(500.0));
    }

    /// A fridge whose filter is used about every `every_days`, offered singly at 30.00 and in
    /// threes at 75.00; after one use with no spare left, the SKU the agent orders.
    fn filter_order(max_stock: Option<f64>, every_days: f64, risk: f64) -> Option<String> {
        let mut config = EngineConfig::new(id("home"), "inst".into());
        config.rules.default_mode = Mode::Auto;
        config.pairing = Pairing::Open;
        config.consumables.insert(
            "water_filter".into(),
            ConsumableSettings {
                max_stock,
                risk,
                use_every_days: Some(every_days),
                ..ConsumableSettings::default()
            },
        );
        let mut e = Engine::new(config, Snapshot::default());
        let offer = |sku: &str, pack: f64, cents: u64| Offer {
            sku: sku.into(),
            name: sku.into(),
            consumable: "water_filter".into(),
            pack_size: pack,
            unit: Unit::Count,
            price: replenish_commerce::Money::new(cents, replenish_commerce::Currency::EUR),
            stock: 10,
        };
        let catalog = Catalog {
            offers: vec![offer("filter-1", 1.0, 3000), offer("filter-3", 3.0, 7500)],
            fulfilment: Vec::new(),
        };
        let shop = DEFAULT_SHOP.into();
        e.handle(Event::Catalog { shop, catalog }, T0).unwrap();
        let mut slots = heapless::Vec::new();
        let _ = slots.push(SlotSpec {
            id: id("filter"),
            consumable: id("water_filter"),
            unit: Unit::Count,
            capacity: 1.0,
            sensor: SensorKind::Level,
        });
        let birth = Birth {
            model: id("fridge"),
            firmware: heapless::String::try_from("0.1.0").unwrap(),
            boot: 1,
            slots,
            buffer: None,
            usage: None,
        };
        let telemetry = |message| Event::Telemetry {
            device: id("fridge"),
            message,
        };
        e.handle(
            telemetry(Telemetry::Status(Box::new(Status::Online(birth)))),
            T0,
        )
        .unwrap();
        let level = |seq, ts, remaining| {
            telemetry(Telemetry::Report(Report {
                boot: 1,
                seq,
                ts,
                body: ReportBody::Level {
                    slot: id("filter"),
                    remaining,
                },
            }))
        };
        e.handle(level(1, T0, 1.0), T0).unwrap();
        let used = T0 + DAY_MS + 9 * HOUR_MS;
        let mut fx = e.handle(level(2, used, 0.0), used).unwrap();
        // The use's day complete: the next morning's tick decides.
        fx.extend(e.handle(Event::Tick, T0 + 2 * DAY_MS + HOUR_MS).unwrap());
        fx.iter().find_map(|effect| match effect {
            Effect::SaveOrder(order) => Some(order.sku.clone()),
            _ => None,
        })
    }

    #[test]
    fn a_rare_item_is_bought_singly_unless_the_pack_pays_and_fits() {
        // The default maximum is the appliance and the smallest pack: three do not fit.
        assert_eq!(filter_order(None, 60.0, 0.02).as_deref(), Some("filter-1"));
        // Room for them and six filters a year: the pack is cheaper per filter used.
        assert_eq!(
            filter_order(Some(4.0), 60.0, 0.02).as_deref(),
            Some("filter-3")
        );
        // Room, but about one filter a year: two of the three would lie unused.
        assert_eq!(
            filter_order(Some(4.0), 400.0, 0.005).as_deref(),
            Some("filter-1")
        );
    }
}
