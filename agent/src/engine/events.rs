//! Events in, effects out: what the engine is told ([`Event`], with [`Telemetry`] from
//! devices) and what it asks to be done ([`Effect`], with the [`Notice`]s the household reads).
//! Plain data; the engine's decisions live in the other files.

use replenish_commerce::{Catalog, Currency, OrderRequest, ShopOrder};
use replenish_protocol::{Ack, Command, CommandBody, DeviceId, Report, Status};
use serde::{Deserialize, Serialize};

use super::Meta;
use super::household::{Actor, AuditEntry, Household, RejectReason, Role, Rules};
use super::inventory::SlotKey;
use super::order::{Order, OrderId};
use super::shopping::ShopId;
use crate::clock::UnixMs;

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
        device: DeviceId,
        /// What it said.
        message: Telemetry,
    },
    /// A shop's catalog was fetched.
    Catalog {
        /// The shop's id.
        shop: ShopId,
        /// What it offers.
        catalog: Catalog,
    },
    /// A person approves a proposed order, perhaps changing it first.
    Approve {
        /// The order.
        order_id: OrderId,
        /// Who.
        by: Actor,
        /// Another quantity or product, if any.
        edit: Option<OrderEdit>,
    },
    /// A person rejects (or, in `notify` mode, cancels) a proposed order.
    Reject {
        /// The order.
        order_id: OrderId,
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
        order_id: OrderId,
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
        order_id: OrderId,
        /// Who.
        by: Actor,
    },
    /// The shop answered a cancellation: the order as it stands, or why not.
    CancelAnswered {
        /// The agent's order id.
        order_id: OrderId,
        /// The shop's order, or what it said.
        answer: Result<ShopOrder, String>,
    },
    /// A member says a click-and-collect order was collected.
    Collected {
        /// The order.
        order_id: OrderId,
        /// Who.
        by: Actor,
    },
    /// An owner changes the rules.
    SetRules {
        /// The new rules, whole.
        rules: Rules,
        /// The currency the caller wrote the rules' amounts in, when it says: refused unless
        /// it is the household's ([`super::Engine::home_currency`]), so an amount meant in one
        /// currency is never kept as another's.
        currency: Option<Currency>,
        /// Who.
        by: Actor,
    },
    /// An owner accepts a device that is waiting to be paired.
    AcceptDevice {
        /// The device.
        device: DeviceId,
        /// Who.
        by: Actor,
    },
    /// An owner gives a device an MQTT login (replacing any it had): the device is part of
    /// the household from its first birth. The password is made and shown outside the engine;
    /// only its hash comes in.
    IssueDeviceLogin {
        /// The device (the login's user name and the client id it must use).
        device: DeviceId,
        /// SHA-256 of the password, lower-case hex.
        password_hash: String,
        /// Who.
        by: Actor,
    },
    /// A device stamped a report with a clock that is wrong: send it the time.
    ClockOff {
        /// The device.
        device: DeviceId,
    },
    /// An owner asks a device to carry out a command.
    Command {
        /// The device.
        device: DeviceId,
        /// What to do.
        body: CommandBody,
        /// Who.
        by: Actor,
    },
    /// An owner removes a device and its slots (its orders stay).
    RemoveDevice {
        /// The device.
        device: DeviceId,
        /// Who.
        by: Actor,
    },
    /// The shop accepted an order (or had already, for its key).
    PlacementSucceeded {
        /// The agent's order id.
        order_id: OrderId,
        /// The shop's view of it.
        shop_order: ShopOrder,
    },
    /// Sending an order failed.
    PlacementFailed {
        /// The agent's order id.
        order_id: OrderId,
        /// What went wrong.
        error: String,
        /// Whether trying again with the same key may succeed (timeouts, 5xx).
        retryable: bool,
    },
    /// The shop reported an order's status.
    ShopStatus {
        /// The agent's order id.
        order_id: OrderId,
        /// The shop's view of it.
        shop_order: ShopOrder,
    },
}

/// Something the engine wants done, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Store the device's record as the engine holds it when storage next commits (a batch
    /// that changes it many times writes it once, and the effect copies nothing).
    SaveDevice(DeviceId),
    /// Store only what a report changes in the device's record: its de-dup state and when it
    /// was last heard. The journal then writes those alone instead of the whole record with
    /// its birth (which was half the cost of journaling a report); the tables still get the
    /// whole record at the checkpoint. Storage without a journal stores the whole record.
    SaveDeviceSeen(DeviceId),
    /// Store the slot's record as the engine holds it when storage next commits.
    SaveSlot(SlotKey),
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
        shop: ShopId,
        /// The agent's order id.
        order_id: OrderId,
        /// The shop's order id.
        shop_order_id: String,
    },
    /// Ask the shop to cancel an order.
    CancelAtShop {
        /// The shop holding it.
        shop: ShopId,
        /// The agent's order id.
        order_id: OrderId,
        /// The shop's order id.
        shop_order_id: String,
    },
    /// Publish a command on the device's `cmd` topic.
    SendCommand {
        /// The device.
        device: DeviceId,
        /// The command.
        command: Command,
    },
    /// A device waiting to join was dropped to keep the waiting list bounded (counted).
    PairingDropped {
        /// The device.
        device: DeviceId,
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
        device: DeviceId,
        /// Keys of its slots.
        slots: Vec<SlotKey>,
    },
}

/// A change to a proposed order made while approving it; it applies to the order's first line
/// (the consumable that triggered it), bundled lines stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderEdit {
    /// Another number of packs (1 to 99).
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
