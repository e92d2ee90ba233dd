//! Orders with the shop: placing an approved order (saved before it is sent), trying again
//! with a jittered back-off, asking the shop about a placed order now and then, and what a
//! delivery teaches (the packs in the cupboard, how long delivery took). Each order's own
//! transitions are [`order`](super::order)'s; what the shop did that was not the plan
//! (nothing in stock, a substitution, a pickup waiting) is [`shop_turns`](super::shop_turns)'.

use replenish_commerce::{FulfilmentOption, OrderLine, OrderRequest, ShopOrder};

use super::inventory::slot_key;
use super::order::{Order, OrderId, OrderState};
use super::{Effect, Engine, EngineError, NoticeKind, notice, shopping, words};
use crate::clock::{HOUR_MS, UnixMs};

impl Engine {
    /// The shop took the order.
    pub(super) fn placement_succeeded(
        &mut self,
        order_id: &OrderId,
        shop_order: &ShopOrder,
        now: UnixMs,
        fx: &mut Vec<Effect>,
    ) -> Result<(), EngineError> {
        self.placing.remove(order_id);
        // A product the agent did not order is a substitution, whatever the status.
        self.judge_substitution(order_id, &shop_order.lines, now, fx);
        // A shop that states no arrival: the lead time this SKU usually takes.
        let expected_at = shop_order.estimated_arrival_ms.unwrap_or_else(|| {
            let lead = self
                .orders
                .get(order_id)
                .map(|o| self.lead_at(&o.shop, o.fulfilment.as_ref(), now).p50())
                .unwrap_or(self.config.policy.lead_time_ms);
            now.saturating_add(lead)
        });
        let order = self.order_mut(order_id)?;
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
        fx.push(notice(now, NoticeKind::OrderPlaced, order_id, text));
        Ok(())
    }

    /// The shop did not take the order: tried again later if `retryable`, failed otherwise.
    pub(super) fn placement_failed(
        &mut self,
        order_id: &OrderId,
        error: &str,
        retryable: bool,
        now: UnixMs,
        fx: &mut Vec<Effect>,
    ) -> Result<(), EngineError> {
        self.placing.remove(order_id);
        let base = self.config.retry_base_ms;
        let order = self.order_mut(order_id)?;
        let retry_at = retryable.then(|| now + retry_backoff(base, order.attempts, &order.id));
        order.placement_failed(error.to_string(), retry_at, now)?;
        let order = order.clone();
        fx.push(Effect::SaveOrder(order.clone()));
        if order.state == OrderState::Failed {
            let (story, _) = self.order_story(&order, now);
            let text = self.words(now).failed(&story, error);
            fx.push(notice(now, NoticeKind::OrderFailed, order_id, text));
        }
        Ok(())
    }

    /// What the shop says of a placed order now.
    pub(super) fn shop_status(
        &mut self,
        order_id: &OrderId,
        shop_order: &ShopOrder,
        now: UnixMs,
        fx: &mut Vec<Effect>,
    ) -> Result<(), EngineError> {
        // A product the agent did not order is a substitution, whatever the status.
        self.judge_substitution(order_id, &shop_order.lines, now, fx);
        let order = self.order_mut(order_id)?;
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
            fx.push(notice(now, kind, order_id, text));
        }
        Ok(())
    }

    /// A delivery: the packs go to the slot's cupboard stock and the delivery time is learned.
    pub(super) fn on_delivered(&mut self, order: &Order, fx: &mut Vec<Effect>) {
        for line in order.lines() {
            let key = slot_key(&line.device, &line.slot);
            if let Some(slot) = self.slots.get_mut(&key) {
                slot.delivered(f64::from(line.packs) * line.pack_size);
                fx.push(Effect::SaveSlot(key));
            }
        }
        if let (Some(placed), Some(delivered)) = (order.placed_at, order.delivered_at) {
            // Learned per shop and way of fulfilment: one order, one observation; for a pickup
            // point with opening hours in its open time (a Saturday-evening order collected
            // on Monday evening took an hour and a half day of it, not two days).
            let mut lead = self.lead_of(&order.shop, order.fulfilment.as_ref());
            let took = match order
                .fulfilment
                .as_ref()
                .and_then(FulfilmentOption::opening_hours)
            {
                Some(hours) => hours.open_between(placed, delivered),
                None => delivered.saturating_sub(placed),
            };
            lead.observe(took);
            self.meta.lead_times.insert(
                shopping::lead_key(&order.shop, order.fulfilment.as_ref()),
                lead,
            );
            fx.push(Effect::SaveMeta(self.meta.clone()));
        }
    }

    /// Sends every approved order that is not under way and whose retry is due.
    pub(super) fn place_due(&mut self, now: UnixMs, fx: &mut Vec<Effect>) {
        let due: Vec<OrderId> = self
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
    }

    /// Asks the shop about placed and shipped orders not asked about for a while.
    pub(super) fn poll_placed(&mut self, now: UnixMs, fx: &mut Vec<Effect>) {
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
    }

    /// Begins a placement attempt: the order is saved (write before send), then sent.
    pub(super) fn send(&mut self, order_id: &str, now: UnixMs, fx: &mut Vec<Effect>) {
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
            reference: order.id.to_string(),
            fulfilment: order.fulfilment.as_ref().map(|f| f.id.clone()),
            lines: order
                .lines()
                .iter()
                .map(|line| OrderLine {
                    sku: line.sku.clone(),
                    quantity: line.packs,
                })
                .collect(),
        };
        fx.push(Effect::SaveOrder(order.clone()));
        fx.push(Effect::PlaceOrder { order, request });
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
