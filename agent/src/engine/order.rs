//! An order (one shop order of one or more lines, with one idempotency key) and its
//! lifecycle: an explicit state machine, tested transition by transition.
//!
//! ```text
//! proposed ──approve──► approved ──shop accepted──► placed ──► shipped ──► delivered
//!     │                    │  ▲ retry (same idempotency key)
//!     └──reject──► cancelled   └──refused by the shop──► failed
//! ```

use replenish_protocol::{DeviceId, Id, Unit};
use serde::{Deserialize, Serialize};

use crate::clock::UnixMs;
use crate::engine::shopping::ShopId;
use crate::engine::words::Outlook;
use replenish_commerce::{Money, OrderStatus};

/// The agent's id of an order (`o-000001`): letters, digits, `-`, `_` and `.`, 1 to 64 of
/// them, so it fits a URL path, a storage key and a log line as it is. Reads as its text
/// wherever text is expected.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OrderId(String);

impl OrderId {
    /// The id of the `number`-th order the agent proposes.
    pub fn numbered(number: u64) -> Self {
        Self(format!("o-{number:06}"))
    }

    /// The number of an id made by [`OrderId::numbered`].
    pub fn number(&self) -> Option<u64> {
        self.0.strip_prefix("o-")?.parse().ok()
    }

    /// `text` as an order id, if it is one.
    pub fn parse(text: &str) -> Option<Self> {
        let valid = !text.is_empty()
            && text.len() <= 64
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        valid.then(|| Self(text.to_string()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for OrderId {
    type Error = String;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        match Self::parse(&text) {
            Some(id) => Ok(id),
            None => Err(format!(
                "{text:?} is not an order id (1 to 64 letters, digits, '-', '_', '.')"
            )),
        }
    }
}

text_id!(OrderId);

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderState {
    /// Decided by the policy, waiting for the household's approval.
    Proposed,
    /// Approved; written to storage and being sent to the shop (retried until it answers).
    Approved,
    /// The shop accepted it.
    Placed,
    /// The shop shipped it.
    Shipped,
    /// It reached the household.
    Delivered,
    /// Rejected by the household or cancelled by the shop.
    Cancelled,
    /// The shop refused it for good.
    Failed,
}

impl OrderState {
    /// True while the order may still bring stock: the policy orders nothing more meanwhile.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            Self::Proposed | Self::Approved | Self::Placed | Self::Shipped
        )
    }

    /// The state's name as shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Proposed => "proposed",
            Self::Approved => "approved",
            Self::Placed => "placed",
            Self::Shipped => "shipped",
            Self::Delivered => "delivered",
            Self::Cancelled => "cancelled",
            Self::Failed => "failed",
        }
    }
}

/// A transition the order's current state does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("order {order} is {from}; cannot {action}")]
pub struct InvalidTransition {
    /// The order.
    pub order: OrderId,
    /// Its state.
    pub from: &'static str,
    /// What was asked.
    pub action: &'static str,
}

/// One line of an order: a slot's consumable, the product bought for it and how much.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderItem {
    /// The device of the slot.
    pub device: DeviceId,
    /// The slot.
    pub slot: Id,
    /// The consumable.
    pub consumable: Id,
    /// The product ordered.
    pub sku: String,
    /// Packs ordered.
    pub packs: u32,
    /// Amount in one pack.
    pub pack_size: f64,
    /// Unit of `pack_size`.
    pub unit: Unit,
    /// Price of the line, in the shop's currency.
    pub total: Money,
    /// Why this line was ordered.
    pub reason: String,
    /// What it was decided on, for telling people in words (none on orders of older agents).
    #[serde(default)]
    pub outlook: Option<Outlook>,
}

impl OrderItem {
    /// The line now buys `offer` (another product, or the same at another shop): its product,
    /// pack size and price follow the offer; the number of packs stays.
    pub fn switch_to(&mut self, offer: &replenish_commerce::Offer) {
        self.sku = offer.sku.clone();
        self.pack_size = offer.pack_size;
        self.total = line_total(offer.price, self.packs);
    }
}

/// `packs` packs at `price` each (saturating: a catalog's price cannot overflow an order).
pub fn line_total(price: Money, packs: u32) -> Money {
    Money::new(price.minor.saturating_mul(u64::from(packs)), price.currency)
}

/// A reorder: one shop order with one idempotency key and one state, of one or more lines.
/// The first line is the slot whose risk triggered it; the others joined it (bundling). Its
/// total is the sum of its lines, all in the currency of the shop it goes to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    /// The agent's id (`o-000001`).
    pub id: OrderId,
    /// Sent as the `Idempotency-Key`: unique per store, the same on every retry.
    pub idempotency_key: String,
    /// Every line, the triggering one first; never empty (the constructor and reading a
    /// stored order both refuse an empty list).
    #[serde(deserialize_with = "non_empty_lines")]
    lines: Vec<OrderItem>,
    /// Where it stands.
    pub state: OrderState,
    /// When it was proposed.
    pub created_at: UnixMs,
    /// When its state last changed.
    pub updated_at: UnixMs,
    /// The shop's id, once placed.
    pub shop_order_id: Option<String>,
    /// When the shop expects to deliver it.
    pub expected_delivery_at: Option<UnixMs>,
    /// When the shop accepted it.
    #[serde(default)]
    pub placed_at: Option<UnixMs>,
    /// When it was delivered.
    pub delivered_at: Option<UnixMs>,
    /// The shop it goes to (its id in configuration; orders of agents before several shops:
    /// the first shop).
    #[serde(default)]
    pub shop: ShopId,
    /// How it comes (home delivery, or pickup and where), when the shop offers a choice.
    #[serde(default)]
    pub fulfilment: Option<replenish_commerce::FulfilmentOption>,
    /// Attempts to place it so far.
    pub attempts: u32,
    /// When to try placing it again after a failure.
    pub retry_at: Option<UnixMs>,
    /// The last placement error or cancellation reason.
    pub last_error: Option<String>,
    /// While proposed: what it waits for (a person, a cancel window), and until when.
    #[serde(default)]
    pub pending: Option<crate::engine::household::Pending>,
    /// Who approved, rejected or cancelled it.
    #[serde(default)]
    pub decided_by: Option<String>,
}

fn non_empty_lines<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<OrderItem>, D::Error> {
    let lines = Vec::<OrderItem>::deserialize(deserializer)?;
    if lines.is_empty() {
        return Err(serde::de::Error::custom("an order has at least one line"));
    }
    Ok(lines)
}

impl Order {
    /// A new order, proposed at `now`: `first` is the line whose slot triggered it, `bundled`
    /// the lines that join it. Not yet decided on, sent or fulfilled by any particular way
    /// (`fulfilment` is set by whoever chose one).
    pub fn proposed(
        id: OrderId,
        idempotency_key: String,
        first: OrderItem,
        bundled: Vec<OrderItem>,
        shop: ShopId,
        now: UnixMs,
    ) -> Self {
        Self {
            id,
            idempotency_key,
            lines: std::iter::once(first).chain(bundled).collect(),
            state: OrderState::Proposed,
            created_at: now,
            updated_at: now,
            shop_order_id: None,
            expected_delivery_at: None,
            placed_at: None,
            delivered_at: None,
            shop,
            fulfilment: None,
            attempts: 0,
            retry_at: None,
            last_error: None,
            pending: None,
            decided_by: None,
        }
    }

    /// Every line, the triggering one first.
    pub fn lines(&self) -> &[OrderItem] {
        &self.lines
    }

    /// Every line, to change in place (products, packs, prices; not how many there are).
    pub fn lines_mut(&mut self) -> &mut [OrderItem] {
        &mut self.lines
    }

    /// The line whose slot triggered the order.
    pub fn first_line(&self) -> &OrderItem {
        // Never empty: see `lines`.
        &self.lines[0]
    }

    /// The triggering line, to change in place.
    pub fn first_line_mut(&mut self) -> &mut OrderItem {
        &mut self.lines[0]
    }

    /// The lines that joined the triggering one (bundling); empty for a single-line order.
    pub fn bundled(&self) -> &[OrderItem] {
        &self.lines[1..]
    }

    /// Keeps the bundled lines for which `keep` says so; the triggering line always stays.
    pub fn retain_bundled(&mut self, mut keep: impl FnMut(&mut OrderItem) -> bool) {
        let mut index = 0;
        self.lines.retain_mut(|line| {
            index += 1;
            index == 1 || keep(line)
        });
    }

    /// Adds a line that joins the order.
    pub fn bundle(&mut self, line: OrderItem) {
        self.lines.push(line);
    }

    /// What the whole order costs: the sum of its lines, in the first line's currency.
    pub fn total(&self) -> Money {
        let first = self.first_line().total;
        let minor = self
            .lines
            .iter()
            .fold(0u64, |sum, line| sum.saturating_add(line.total.minor));
        Money::new(minor, first.currency)
    }

    /// Whether any line of the order is for the slot.
    pub fn covers(&self, device: &DeviceId, slot: &Id) -> bool {
        self.lines
            .iter()
            .any(|l| &l.device == device && &l.slot == slot)
    }

    fn invalid(&self, action: &'static str) -> InvalidTransition {
        InvalidTransition {
            order: self.id.clone(),
            from: self.state.as_str(),
            action,
        }
    }

    fn enter(&mut self, state: OrderState, now: UnixMs) {
        self.state = state;
        self.updated_at = now;
    }

    /// The household approves: proposed → approved.
    pub fn approve(&mut self, now: UnixMs) -> Result<(), InvalidTransition> {
        if self.state != OrderState::Proposed {
            return Err(self.invalid("approve"));
        }
        self.enter(OrderState::Approved, now);
        Ok(())
    }

    /// The household rejects: proposed → cancelled.
    pub fn reject(&mut self, reason: String, now: UnixMs) -> Result<(), InvalidTransition> {
        if self.state != OrderState::Proposed {
            return Err(self.invalid("reject"));
        }
        self.last_error = Some(reason);
        self.enter(OrderState::Cancelled, now);
        Ok(())
    }

    /// A placement attempt is about to be sent.
    pub fn begin_attempt(&mut self) -> Result<(), InvalidTransition> {
        if self.state != OrderState::Approved {
            return Err(self.invalid("send to the shop"));
        }
        self.attempts += 1;
        self.retry_at = None;
        Ok(())
    }

    /// The shop accepted the order (or had already, for a retried key): approved → placed, or
    /// further if the shop's answer says so.
    pub fn placed(
        &mut self,
        shop_order_id: String,
        shop_status: OrderStatus,
        expected_delivery_at: UnixMs,
        delivered_at: Option<UnixMs>,
        now: UnixMs,
    ) -> Result<(), InvalidTransition> {
        if self.state != OrderState::Approved {
            return Err(self.invalid("mark placed"));
        }
        self.shop_order_id = Some(shop_order_id);
        self.expected_delivery_at = Some(expected_delivery_at);
        self.placed_at = Some(now);
        self.last_error = None;
        self.enter(OrderState::Placed, now);
        self.shop_status(shop_status, delivered_at, now)
    }

    /// Placing failed. A retryable failure keeps it approved with a retry time; otherwise failed.
    pub fn placement_failed(
        &mut self,
        error: String,
        retry_at: Option<UnixMs>,
        now: UnixMs,
    ) -> Result<(), InvalidTransition> {
        if self.state != OrderState::Approved {
            return Err(self.invalid("record a failed placement"));
        }
        self.last_error = Some(error);
        match retry_at {
            Some(at) => {
                self.retry_at = Some(at);
                self.updated_at = now;
            }
            None => self.enter(OrderState::Failed, now),
        }
        Ok(())
    }

    /// The shop reports a status. Moves forward only; a repeated or older status changes nothing.
    pub fn shop_status(
        &mut self,
        status: OrderStatus,
        delivered_at: Option<UnixMs>,
        now: UnixMs,
    ) -> Result<(), InvalidTransition> {
        use OrderState::*;
        let target = match status {
            // Pickup, partial fulfilment and substitution have no states of their own yet:
            // ready for pickup and partly sent count as on the way, collected as delivered.
            OrderStatus::Accepted | OrderStatus::Paid | OrderStatus::SubstitutedByShop => Placed,
            OrderStatus::Shipped
            | OrderStatus::ReadyForPickup
            | OrderStatus::PartiallyFulfilled => Shipped,
            OrderStatus::Delivered | OrderStatus::Collected => Delivered,
            OrderStatus::CancelledByShop => Cancelled,
        };
        match (self.state, target) {
            (from, to) if from == to => Ok(()),
            (Placed, Shipped | Delivered | Cancelled) | (Shipped, Delivered | Cancelled) => {
                if target == Delivered {
                    self.delivered_at = Some(delivered_at.unwrap_or(now));
                }
                self.enter(target, now);
                Ok(())
            }
            // A late, older status (placed after shipped) is not news.
            (Shipped, Placed) | (Delivered, _) => Ok(()),
            _ => Err(self.invalid("apply the shop's status")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order() -> Order {
        let first = OrderItem {
            device: DeviceId::new("coffee").unwrap(),
            slot: Id::new("beans").unwrap(),
            consumable: Id::new("coffee_beans").unwrap(),
            sku: "beans-500".into(),
            packs: 1,
            pack_size: 500.0,
            unit: Unit::G,
            total: Money::new(899, replenish_commerce::Currency::EUR),
            reason: String::new(),
            outlook: None,
        };
        let key = "k-o-000001".into();
        Order::proposed(
            OrderId::numbered(1),
            key,
            first,
            Vec::new(),
            "shop".into(),
            0,
        )
    }

    #[test]
    fn order_ids_are_checked_where_they_come_in_and_read_as_text() {
        let id = OrderId::numbered(42);
        assert_eq!(id.as_str(), "o-000042");
        assert_eq!(id.number(), Some(42));
        assert_eq!(OrderId::parse("o-000042"), Some(id.clone()));
        assert!(id == "o-000042");
        assert!("o-000041" != id);
        let text = format!("o-{:06}", 42);
        assert!(text == id);
        for bad in ["", "o 1", "o/1", "../x", "ö-1", &"x".repeat(65)] {
            assert_eq!(OrderId::parse(bad), None, "{bad:?}");
        }
        // Stored and sent as its text; text that is no order id does not load.
        assert_eq!(serde_json::to_string(&id).unwrap(), r#""o-000042""#);
        assert_eq!(
            serde_json::from_str::<OrderId>(r#""o-000042""#).unwrap(),
            id
        );
        assert!(serde_json::from_str::<OrderId>(r#""o/42""#).is_err());
    }

    #[test]
    fn a_bundled_order_lists_and_covers_every_line() {
        let mut o = order();
        o.bundle(OrderItem {
            device: DeviceId::new("fridge").unwrap(),
            slot: Id::new("milk").unwrap(),
            consumable: Id::new("milk").unwrap(),
            sku: "milk-1l".into(),
            packs: 2,
            pack_size: 1000.0,
            unit: Unit::Ml,
            total: Money::new(238, replenish_commerce::Currency::EUR),
            reason: "milk joins".into(),
            outlook: None,
        });
        let lines = o.lines();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            (lines[0].sku.as_str(), lines[0].total.minor),
            ("beans-500", 899)
        );
        assert_eq!((lines[1].sku.as_str(), lines[1].packs), ("milk-1l", 2));
        assert_eq!(
            (o.first_line().sku.as_str(), o.bundled().len()),
            ("beans-500", 1)
        );
        assert_eq!(o.total().minor, 899 + 238);
        assert!(o.covers(&DeviceId::new("fridge").unwrap(), &Id::new("milk").unwrap()));
        assert!(o.covers(
            &DeviceId::new("coffee").unwrap(),
            &Id::new("beans").unwrap()
        ));
        assert!(!o.covers(
            &DeviceId::new("fridge").unwrap(),
            &Id::new("beans").unwrap()
        ));
        o.retain_bundled(|line| line.sku != "milk-1l");
        assert_eq!((o.lines().len(), o.total().minor), (1, 899));
        assert!(!o.covers(&DeviceId::new("fridge").unwrap(), &Id::new("milk").unwrap()));
    }

    #[test]
    fn happy_path_walks_every_state() {
        let mut o = order();
        o.approve(1).unwrap();
        o.begin_attempt().unwrap();
        o.placed("so-1".into(), OrderStatus::Accepted, 100, None, 2)
            .unwrap();
        assert_eq!(o.state, OrderState::Placed);
        o.shop_status(OrderStatus::Shipped, None, 3).unwrap();
        o.shop_status(OrderStatus::Delivered, Some(99), 4).unwrap();
        assert_eq!(
            (o.state, o.delivered_at, o.attempts),
            (OrderState::Delivered, Some(99), 1)
        );
    }

    #[test]
    fn only_proposed_orders_are_approved_or_rejected() {
        let mut o = order();
        o.approve(1).unwrap();
        assert!(o.approve(2).is_err());
        assert!(o.reject("no".into(), 2).is_err());
        let mut o = order();
        o.reject("still have some".into(), 1).unwrap();
        assert_eq!(o.state, OrderState::Cancelled);
        assert!(o.begin_attempt().is_err());
    }

    #[test]
    fn retryable_failure_stays_approved_and_final_failure_fails() {
        let mut o = order();
        o.approve(1).unwrap();
        o.begin_attempt().unwrap();
        o.placement_failed("timeout".into(), Some(50), 2).unwrap();
        assert_eq!((o.state, o.retry_at), (OrderState::Approved, Some(50)));
        o.begin_attempt().unwrap();
        o.placement_failed("unknown sku".into(), None, 3).unwrap();
        assert_eq!(o.state, OrderState::Failed);
    }

    #[test]
    fn shop_status_only_moves_forward() {
        let mut o = order();
        o.approve(1).unwrap();
        o.begin_attempt().unwrap();
        o.placed("so-1".into(), OrderStatus::Delivered, 100, Some(90), 2)
            .unwrap();
        assert_eq!(o.state, OrderState::Delivered);
        o.shop_status(OrderStatus::Accepted, None, 3).unwrap();
        assert_eq!(o.state, OrderState::Delivered);
        let mut proposed = order();
        assert!(proposed.shop_status(OrderStatus::Shipped, None, 1).is_err());
    }

    #[test]
    fn open_states_block_new_orders() {
        use OrderState::*;
        let open: Vec<_> = [
            Proposed, Approved, Placed, Shipped, Delivered, Cancelled, Failed,
        ]
        .into_iter()
        .filter(|s| s.is_open())
        .collect();
        assert_eq!(open, [Proposed, Approved, Placed, Shipped]);
    }
}
