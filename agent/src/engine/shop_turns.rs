//! When a shop's answer is not the plan: nothing in stock anywhere, a substitution by the
//! shop, a click-and-collect order waiting at its pickup point. Each is said to the household
//! (once, or once a day) and, where it changes an order, written to the audit log.

use replenish_commerce::OrderLine;

use super::order::{Order, OrderId, OrderState};
use super::policy::{PolicyInput, StockPosition};
use super::{Effect, Engine, NoticeKind, Offer, SlotState, household, notice};
use crate::clock::{DAY_MS, UnixMs};

/// Days a ready pickup may wait before it no longer counts as coming.
pub(super) const UNCOLLECTED_DAYS: u64 = 3;

/// The pickup point of a click-and-collect order ready for more than [`UNCOLLECTED_DAYS`].
pub(super) fn uncollected(order: &Order, now: UnixMs) -> Option<String> {
    match order.fulfilment.as_ref().map(|f| &f.method) {
        Some(replenish_commerce::Fulfilment::Pickup(point))
            if order.state == OrderState::Shipped
                && now >= order.updated_at + UNCOLLECTED_DAYS * DAY_MS =>
        {
            Some(point.name.clone())
        }
        _ => None,
    }
}

impl Engine {
    /// An order for the slot left uncollected at its pickup point: (order, place).
    pub(super) fn uncollected_for(
        &self,
        slot: &SlotState,
        now: UnixMs,
    ) -> Option<(OrderId, String)> {
        self.open_orders
            .iter()
            .filter_map(|id| self.orders.get(id))
            .filter(|o| o.covers(&slot.device, &slot.spec.id))
            .find_map(|o| uncollected(o, now).map(|place| (o.id.clone(), place)))
    }

    /// The shop replaced products of an order: accepted (the order's lines follow the shop's)
    /// when each replacement is a product of the same consumable the household allows, within
    /// the price guard; otherwise the household is told to refuse it or call the shop. Said
    /// once per order.
    pub(super) fn judge_substitution(
        &mut self,
        order_id: &str,
        shop_lines: &[OrderLine],
        now: UnixMs,
        fx: &mut Vec<Effect>,
    ) {
        let Some(order) = self.orders.get(order_id) else {
            return;
        };
        if self.substitutions_told.contains(order_id) {
            return;
        }
        let mut changed = order.clone();
        let shop = self.shop_name(&order.shop).to_string();
        let catalog = self.meta.catalogs.get(&order.shop);
        let ours: Vec<String> = order.lines().iter().map(|l| l.sku.clone()).collect();
        let mut accepted = Vec::new();
        let mut refused = Vec::new();
        for line in shop_lines.iter().filter(|l| !ours.contains(&l.sku)) {
            let Some(offer) = catalog.and_then(|c| c.offer(&line.sku)) else {
                refused.push(format!(
                    "{} × {} (not sold by {shop})",
                    line.quantity, line.sku
                ));
                continue;
            };
            let allowed = self
                .config
                .products
                .get(&offer.consumable)
                .filter(|l| !l.is_empty())
                .is_none_or(|l| l.contains(&offer.sku));
            let replaced = changed.lines().iter().position(|l| {
                l.consumable.as_str() == offer.consumable
                    && l.unit == offer.unit
                    && !shop_lines.iter().any(|s| s.sku == l.sku)
            });
            let why_not = match (allowed, replaced) {
                (false, _) => Some("not one of the products you chose".to_string()),
                (true, None) => Some("not a product of anything ordered".to_string()),
                (true, Some(_)) => self
                    .price_guard(&offer.consumable, offer.unit, offer)
                    .map(|ask| self.words(now).ask(&ask)),
            };
            match (why_not, replaced) {
                (None, Some(index)) => {
                    let was = self
                        .words(now)
                        .product(&order.shop, &changed.lines()[index].sku);
                    if let Some(ours) = changed.lines_mut().get_mut(index) {
                        ours.sku = offer.sku.clone();
                        ours.packs = line.quantity;
                        ours.pack_size = offer.pack_size;
                    }
                    accepted.push(format!(
                        "{} × {} instead of {was}",
                        line.quantity, offer.name
                    ));
                }
                (why, _) => refused.push(format!(
                    "{} × {} ({})",
                    line.quantity,
                    offer.name,
                    why.unwrap_or_default().to_lowercase()
                )),
            }
        }
        if accepted.is_empty() && refused.is_empty() {
            return;
        }
        self.substitutions_told.insert(order.id.clone());
        let text = self.words(now).substituted(order, &accepted, &refused);
        if !accepted.is_empty() {
            fx.push(Effect::SaveOrder(changed.clone()));
            self.orders.insert(changed.id.clone(), changed);
        }
        self.record_as(shop.clone(), "substituted", order_id, text.clone(), now, fx);
        fx.push(notice(now, NoticeKind::SubstitutedByShop, order_id, text));
    }

    /// Recalls, once a day from the day after, click-and-collect orders waiting at their
    /// pickup point.
    pub(super) fn remind_pickups(&mut self, now: UnixMs, fx: &mut Vec<Effect>) {
        let today = (now / DAY_MS) as i64;
        let waiting: Vec<(OrderId, String, UnixMs)> = self
            .open_orders
            .iter()
            .filter_map(|id| self.orders.get(id))
            .filter(|o| o.state == OrderState::Shipped)
            .filter_map(|o| match o.fulfilment.as_ref().map(|f| &f.method) {
                Some(replenish_commerce::Fulfilment::Pickup(point)) => Some((
                    o.id.clone(),
                    format!(
                        "{}, {} (open {})",
                        point.name, point.address, point.opening_hours
                    ),
                    o.updated_at,
                )),
                _ => None,
            })
            .filter(|(_, _, ready_at)| now >= ready_at + DAY_MS)
            .collect();
        for (id, place, ready_at) in waiting {
            if self.pickup_reminded.get(&id) == Some(&today) {
                continue;
            }
            self.pickup_reminded.insert(id.clone(), today);
            let Some(order) = self.orders.get(&id) else {
                continue;
            };
            let text = self
                .words(now)
                .pickup_waiting(order, &place, now.saturating_sub(ready_at));
            fx.push(notice(now, NoticeKind::PickupReady, &id, text));
        }
    }

    /// Says (once a day) that a slot that needs ordering has no product in stock at any shop:
    /// the shops sell it, but all of it is out. Never for what no shop sells (tap water).
    pub(super) fn tell_if_nothing_in_stock(
        &mut self,
        key: &str,
        now: UnixMs,
        fx: &mut Vec<Effect>,
    ) {
        let Some(slot) = self.slots.get(key) else {
            return;
        };
        let Some(forecast) = slot.forecast.as_ref() else {
            return;
        };
        let consumable = slot.spec.consumable.as_str();
        if self.has_open_order(slot, now)
            || self.household.rules.mode_of(consumable) == household::Mode::Off
            || self.household.paused(consumable, now)
        {
            return;
        }
        let sold: Vec<(&str, &Offer)> = self
            .meta
            .catalogs
            .iter()
            .flat_map(|(shop, c)| c.offers.iter().map(move |o| (shop.as_str(), o)))
            .filter(|(_, o)| {
                o.consumable == consumable && o.unit == slot.spec.unit && o.pack_size > 0.0
            })
            .collect();
        if sold.is_empty() || sold.iter().any(|(_, o)| o.stock > 0) {
            return;
        }
        // Would the policy order it, were the first of them in stock?
        let settings = self.settings_for(consumable);
        let (shop, offer) = sold[0];
        let lead = self.lead_of(shop, None);
        let input = PolicyInput {
            slot,
            forecast,
            item: offer,
            stock: StockPosition::of(slot),
            lead_time: &lead,
            lead_if_waiting: None,
            settings: &settings,
            review_ms: self.config.policy.review_ms,
            now,
        };
        if self.policy.decide(&input).is_none() {
            return;
        }
        let today = (now / DAY_MS) as i64;
        if self.nothing_in_stock_noticed.get(key) == Some(&today) {
            return;
        }
        self.nothing_in_stock_noticed.insert(key.to_string(), today);
        let sold: Vec<(String, String)> = sold
            .iter()
            .map(|(shop, o)| (shop.to_string(), o.name.clone()))
            .collect();
        let text = self.words(now).nothing_in_stock(consumable, &sold);
        fx.push(notice(now, NoticeKind::NothingInStock, key, text));
    }
}
