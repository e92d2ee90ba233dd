//! The household's decisions on orders: approvals (as proposed or edited: packs, product, shop,
//! fulfilment), rejections, cancellations, snoozes, pickups collected, and prompts that take
//! their default when unanswered, each checked against the actor's role and written to the
//! audit trail; and where a new order goes by the rules (placed, a cancel window, or asked).
//! Members, rules and pairing are in `settings.rs`.
//!
//! Every handler validates before it changes anything, so a refused request leaves no trace
//! but its error.

use replenish_commerce::{Money, OrderStatus, ShopOrder};

use super::household::{
    Actor, AuditEntry, ExpiryDefault, Pending, PendingKind, Permission, RejectReason, Route, amount,
};
use super::order::{Order, OrderId, OrderState, line_total};
use super::{
    AUDIT_IN_MEMORY, Effect, Engine, EngineError, NoticeKind, OrderEdit, days_from, notice,
};
use crate::clock::{HOUR_MS, UnixMs};

/// Most packs one order may carry after an edit.
const MAX_EDITED_PACKS: u32 = 99;
/// Longest snooze.
const MAX_SNOOZE_HOURS: u32 = 7 * 24;

impl Engine {
    pub(super) fn record(
        &mut self,
        by: &Actor,
        action: &str,
        subject: &str,
        detail: String,
        now: UnixMs,
        fx: &mut Vec<Effect>,
    ) {
        let who = self.household.who(by);
        self.record_as(who, action, subject, detail, now, fx);
    }

    /// Appends to the audit trail and stores the household with it.
    pub(super) fn record_as(
        &mut self,
        who: String,
        action: &str,
        subject: &str,
        detail: String,
        now: UnixMs,
        fx: &mut Vec<Effect>,
    ) {
        self.household.next_audit_no += 1;
        let entry = AuditEntry {
            seq: self.household.next_audit_no,
            at: now,
            who,
            action: action.into(),
            subject: subject.into(),
            detail,
        };
        tracing::info!(who = %entry.who, action, subject, detail = %entry.detail, "audit");
        self.audit.push_back(entry.clone());
        while self.audit.len() > AUDIT_IN_MEMORY {
            self.audit.pop_front();
        }
        fx.push(Effect::SaveHousehold(Box::new(self.household.clone())));
        fx.push(Effect::Audit(entry));
    }

    pub(super) fn proposed(&self, order_id: &str) -> Result<&Order, EngineError> {
        let order = self
            .orders
            .get(order_id)
            .ok_or_else(|| EngineError::UnknownOrder(order_id.to_string()))?;
        if order.state != OrderState::Proposed {
            return Err(EngineError::Invalid(format!(
                "order {order_id} is {}, not waiting for a decision",
                order.state.as_str()
            )));
        }
        Ok(order)
    }

    /// Money committed this calendar month (household time) in the household's currency:
    /// approved orders onwards, and orders in a notify cancel window (they are placed unless
    /// someone cancels them). Orders priced in another currency are not in it (a person
    /// approved each of them, [`Household::route`]).
    pub(super) fn spent_this_month(&self, now: UnixMs) -> Money {
        let home = self.home_currency();
        let rules = &self.household.rules;
        let month = rules.month_of(now);
        self.orders
            .values()
            .filter(|o| {
                matches!(
                    o.state,
                    OrderState::Approved
                        | OrderState::Placed
                        | OrderState::Shipped
                        | OrderState::Delivered
                ) || (o.state == OrderState::Proposed
                    && o.pending
                        .as_ref()
                        .is_some_and(|p| p.kind == PendingKind::CancelWindow))
            })
            .filter(|o| rules.month_of(o.placed_at.unwrap_or(o.updated_at)) == month)
            .map(Order::total)
            .filter(|total| total.currency == home)
            .fold(Money::new(0, home), |sum, total| {
                Money::new(sum.minor.saturating_add(total.minor), home)
            })
    }

    pub(super) fn approve(
        &mut self,
        order_id: &str,
        by: &Actor,
        edit: Option<OrderEdit>,
        now: UnixMs,
        fx: &mut Vec<Effect>,
    ) -> Result<(), EngineError> {
        self.household.authorize(by, Permission::DecideOrders)?;
        let order = self.proposed(order_id)?;
        let mut changed = order.clone();
        let mut what = Vec::new();
        if let Some(edit) = edit {
            if let Some(shop) = edit.shop.filter(|s| *s != changed.shop) {
                what.extend(self.move_to_shop(&mut changed, &shop, edit.sku.as_deref())?);
            }
            if let Some(fulfilment) = edit.fulfilment
                && let Some(change) = self.change_fulfilment(&mut changed, &fulfilment)?
            {
                what.push(change);
            }
            // Another shop or way to get it takes its own time.
            let lead = self.lead_at(&changed.shop, changed.fulfilment.as_ref(), now);
            if let Some(outlook) = changed.first_line_mut().outlook.as_mut() {
                outlook.lead_min_ms = lead.p10();
                outlook.lead_max_ms = lead.p90().max(lead.p10());
            }
            if let Some(sku) = edit.sku.filter(|s| *s != changed.first_line().sku) {
                let item = self
                    .meta
                    .catalogs
                    .get(&changed.shop)
                    .and_then(|c| c.offers.iter().find(|i| i.sku == sku))
                    .filter(|i| {
                        i.consumable == changed.first_line().consumable.as_str()
                            && i.unit == changed.first_line().unit
                            && i.pack_size > 0.0
                    })
                    .ok_or_else(|| {
                        EngineError::Invalid(format!(
                            "{sku} is not a product of {} in the catalog of {}",
                            changed.first_line().consumable,
                            self.shop_name(&changed.shop)
                        ))
                    })?;
                what.push(format!(
                    "product {} -> {}",
                    changed.first_line().sku,
                    item.sku
                ));
                changed.first_line_mut().switch_to(item);
            }
            if let Some(packs) = edit.packs.filter(|p| *p != changed.first_line().packs) {
                if !(1..=MAX_EDITED_PACKS).contains(&packs) {
                    return Err(EngineError::Invalid(format!(
                        "packs must be 1 to {MAX_EDITED_PACKS}, not {packs}"
                    )));
                }
                // The edit changes the first line; bundled lines keep their price.
                let first = changed.first_line_mut();
                let unit_price = Money::new(
                    first.total.minor / u64::from(first.packs.max(1)),
                    first.total.currency,
                );
                what.push(format!("packs {} -> {packs}", first.packs));
                first.packs = packs;
                first.total = line_total(unit_price, packs);
            }
        }
        changed.approve(now)?;
        changed.pending = None;
        changed.decided_by = Some(self.household.who(by));
        let detail = if what.is_empty() {
            format!(
                "approved {} ({})",
                describe(&changed),
                amount(changed.total())
            )
        } else {
            format!(
                "approved with {}: {} ({})",
                what.join(", "),
                describe(&changed),
                amount(changed.total())
            )
        };
        self.orders.insert(changed.id.clone(), changed);
        fx.push(notice(
            now,
            NoticeKind::OrderApproved,
            order_id,
            format!("order {order_id} {detail}"),
        ));
        self.record(by, "approve", order_id, detail, now, fx);
        self.send(order_id, now, fx);
        Ok(())
    }

    /// Moves a proposed order to `shop`: its first line to `sku` there (or the same product,
    /// if the shop sells it), bundled lines to the same products there (left out where the
    /// shop does not sell them), and to the shop's first fulfilment option the household
    /// allows. Returns what changed, for the audit.
    fn move_to_shop(
        &self,
        order: &mut Order,
        shop: &str,
        sku: Option<&str>,
    ) -> Result<Vec<String>, EngineError> {
        let Some(shop_id) = self
            .config
            .shops
            .iter()
            .find(|s| s.id == shop)
            .map(|s| s.id.clone())
        else {
            return Err(EngineError::Invalid(format!("no shop {shop}")));
        };
        let catalog = self.meta.catalogs.get(shop).ok_or_else(|| {
            EngineError::Invalid(format!("{} has sent no catalog yet", self.shop_name(shop)))
        })?;
        let sku = sku.unwrap_or(&order.first_line().sku);
        let item = catalog
            .offers
            .iter()
            .find(|i| {
                i.sku == sku
                    && i.consumable == order.first_line().consumable.as_str()
                    && i.unit == order.first_line().unit
                    && i.pack_size > 0.0
            })
            .ok_or_else(|| {
                EngineError::Invalid(format!(
                    "{sku} is not a product of {} at {}: choose one of its products",
                    order.first_line().consumable,
                    self.shop_name(shop)
                ))
            })?;
        let mut what = vec![format!(
            "shop {} -> {}",
            self.shop_name(&order.shop),
            self.shop_name(shop)
        )];
        if item.sku != order.first_line().sku {
            what.push(format!(
                "product {} -> {}",
                order.first_line().sku,
                item.sku
            ));
        }
        order.first_line_mut().switch_to(item);
        order.retain_bundled(
            |line| match catalog.offers.iter().find(|i| i.sku == line.sku) {
                Some(offer) => {
                    line.total = line_total(offer.price, line.packs);
                    true
                }
                None => {
                    what.push(format!(
                        "{} left out (not sold at {})",
                        line.consumable,
                        self.shop_name(shop)
                    ));
                    false
                }
            },
        );
        order.shop = shop_id;
        order.fulfilment = catalog
            .fulfilment
            .iter()
            .find(|f| {
                self.config.pickup != super::shopping::PickupPreference::Never
                    || !matches!(f.method, replenish_commerce::Fulfilment::Pickup(_))
            })
            .cloned();
        Ok(what)
    }

    /// Switches a proposed order to its shop's fulfilment option `id`; `None` when it already
    /// is.
    fn change_fulfilment(
        &self,
        order: &mut Order,
        id: &str,
    ) -> Result<Option<String>, EngineError> {
        if order.fulfilment.as_ref().is_some_and(|f| f.id == id) {
            return Ok(None);
        }
        let option = self
            .meta
            .catalogs
            .get(&order.shop)
            .and_then(|c| c.fulfilment.iter().find(|f| f.id == id))
            .ok_or_else(|| {
                EngineError::Invalid(format!(
                    "{} has no fulfilment option {id}",
                    self.shop_name(&order.shop)
                ))
            })?;
        let change = format!(
            "{} -> {}",
            order
                .fulfilment
                .as_ref()
                .map_or("delivery", |f| f.name.as_str()),
            option.name
        );
        order.fulfilment = Some(option.clone());
        Ok(Some(change))
    }

    pub(super) fn reject(
        &mut self,
        order_id: &str,
        by: &Actor,
        reason: RejectReason,
        note: Option<String>,
        now: UnixMs,
        fx: &mut Vec<Effect>,
    ) -> Result<(), EngineError> {
        self.household.authorize(by, Permission::DecideOrders)?;
        let order = self.proposed(order_id)?;
        let mut changed = order.clone();
        if note
            .as_ref()
            .is_some_and(|n| n.chars().any(char::is_control))
        {
            return Err(EngineError::Invalid(
                "a note must be printable text: no control characters".into(),
            ));
        }
        let note = note
            .map(|n| n.trim().chars().take(200).collect::<String>())
            .filter(|n| !n.is_empty());
        let text = match &note {
            Some(note) => format!("{}: {note}", reason.as_str()),
            None => reason.as_str().to_string(),
        };
        changed.reject(text.clone(), now)?;
        changed.pending = None;
        changed.decided_by = Some(self.household.who(by));
        // Every consumable in the order learns the rejection, not only the first line's.
        let mut consumables: Vec<String> = changed
            .lines()
            .iter()
            .map(|l| l.consumable.to_string())
            .collect();
        consumables.dedup();
        fx.push(Effect::SaveOrder(changed.clone()));
        self.orders.insert(changed.id.clone(), changed);
        let until = now + reason.pause_ms(&self.household.rules);
        for consumable in &consumables {
            let paused = self
                .household
                .paused_until
                .entry(consumable.clone())
                .or_insert(0);
            *paused = (*paused).max(until);
        }
        let detail = format!(
            "rejected ({text}); no new proposal for {} for {}",
            consumables.join(", "),
            days_from(now, until)
        );
        fx.push(notice(
            now,
            NoticeKind::OrderCancelled,
            order_id,
            format!("order {order_id} {detail}"),
        ));
        self.record(by, "reject", order_id, detail, now, fx);
        Ok(())
    }

    /// A person says a click-and-collect order was collected (the shop may not know yet):
    /// it counts as delivered from now.
    pub(super) fn collected(
        &mut self,
        order_id: &str,
        by: &Actor,
        now: UnixMs,
        fx: &mut Vec<Effect>,
    ) -> Result<(), EngineError> {
        self.household.authorize(by, Permission::DecideOrders)?;
        let place = self.waiting_pickup(order_id)?;
        self.mark_collected(order_id, now, fx)?;
        self.record(
            by,
            "collected",
            order_id,
            format!("collected at {place}"),
            now,
            fx,
        );
        Ok(())
    }

    /// A member asks to cancel an order the shop has taken: the shop is asked, and its answer
    /// ([`Event::CancelAnswered`]) decides. Only while the shop has not sent it.
    pub(super) fn cancel(
        &mut self,
        order_id: &str,
        by: &Actor,
        now: UnixMs,
        fx: &mut Vec<Effect>,
    ) -> Result<(), EngineError> {
        self.household.authorize(by, Permission::DecideOrders)?;
        let order = self
            .orders
            .get(order_id)
            .ok_or_else(|| EngineError::UnknownOrder(order_id.to_string()))?;
        let shop_order_id = match (order.state, &order.shop_order_id) {
            (OrderState::Placed, Some(id)) => id.clone(),
            (OrderState::Proposed, _) => {
                return Err(EngineError::Invalid(format!(
                    "{order_id} is not ordered yet: reject it instead"
                )));
            }
            (state, _) => {
                return Err(EngineError::Invalid(format!(
                    "{order_id} is {}: only an order the shop has taken and not sent can be cancelled",
                    state.as_str()
                )));
            }
        };
        let shop = order.shop.clone();
        let id = order.id.clone();
        let detail = format!("asked {} to cancel it", self.shop_name(&shop));
        self.record(by, "cancel", order_id, detail, now, fx);
        fx.push(Effect::CancelAtShop {
            shop,
            order_id: id,
            shop_order_id,
        });
        Ok(())
    }

    /// The shop's answer to a cancellation.
    pub(super) fn cancel_answered(
        &mut self,
        order_id: &str,
        answer: Result<ShopOrder, String>,
        now: UnixMs,
        fx: &mut Vec<Effect>,
    ) -> Result<(), EngineError> {
        let (shop, before) = {
            let order = self
                .orders
                .get(order_id)
                .ok_or_else(|| EngineError::UnknownOrder(order_id.to_string()))?;
            (self.shop_name(&order.shop).to_string(), order.clone())
        };
        match answer {
            Ok(shop_order) if shop_order.status == OrderStatus::CancelledByShop => {
                let order = self.order_mut(order_id)?;
                order.shop_status(OrderStatus::CancelledByShop, None, now)?;
                let order = order.clone();
                let text = self.words(now).cancel_done(&order);
                fx.push(Effect::SaveOrder(order));
                fx.push(notice(
                    now,
                    NoticeKind::OrderCancelled,
                    order_id,
                    text.clone(),
                ));
                self.record_as(shop, "cancelled", order_id, text, now, fx);
            }
            Ok(_) => {
                // The shop answered with the order still going: apply what it says, and tell.
                let text = self.words(now).cancel_refused(&before);
                fx.push(notice(
                    now,
                    NoticeKind::CancelRefused,
                    order_id,
                    text.clone(),
                ));
                self.record_as(shop, "cancel refused", order_id, text, now, fx);
            }
            Err(why) => {
                let text = self.words(now).cancel_unreachable(&before, &why);
                fx.push(notice(
                    now,
                    NoticeKind::CancelRefused,
                    order_id,
                    text.clone(),
                ));
                self.record_as(shop, "cancel refused", order_id, text, now, fx);
            }
        }
        Ok(())
    }

    /// The pickup point of an order waiting there to be collected.
    pub(super) fn waiting_pickup(&self, order_id: &str) -> Result<String, EngineError> {
        let order = self
            .orders
            .get(order_id)
            .ok_or_else(|| EngineError::UnknownOrder(order_id.to_string()))?;
        let Some(replenish_commerce::Fulfilment::Pickup(point)) =
            order.fulfilment.as_ref().map(|f| &f.method)
        else {
            return Err(EngineError::Invalid(format!(
                "{order_id} is delivered to the door, not collected"
            )));
        };
        if !matches!(order.state, OrderState::Placed | OrderState::Shipped) {
            return Err(EngineError::Invalid(format!(
                "{order_id} is {}, not waiting to be collected",
                order.state.as_str()
            )));
        }
        Ok(point.name.clone())
    }

    /// A pickup order counts as collected (delivered) from now.
    pub(super) fn mark_collected(
        &mut self,
        order_id: &str,
        now: UnixMs,
        fx: &mut Vec<Effect>,
    ) -> Result<(), EngineError> {
        let place = self.waiting_pickup(order_id)?;
        let Some(order) = self.orders.get(order_id) else {
            return Err(EngineError::UnknownOrder(order_id.to_string()));
        };
        let mut changed = order.clone();
        changed.shop_status(replenish_commerce::OrderStatus::Collected, Some(now), now)?;
        self.on_delivered(&changed, fx);
        fx.push(Effect::SaveOrder(changed.clone()));
        self.orders.insert(changed.id.clone(), changed);
        fx.push(notice(
            now,
            NoticeKind::OrderDelivered,
            order_id,
            format!("order {order_id} collected at {place}"),
        ));
        Ok(())
    }

    pub(super) fn snooze(
        &mut self,
        order_id: &str,
        by: &Actor,
        hours: u32,
        now: UnixMs,
        fx: &mut Vec<Effect>,
    ) -> Result<(), EngineError> {
        self.household.authorize(by, Permission::DecideOrders)?;
        let order = self.proposed(order_id)?;
        if !(1..=MAX_SNOOZE_HOURS).contains(&hours) {
            return Err(EngineError::Invalid(format!(
                "snooze for 1 to {MAX_SNOOZE_HOURS} hours, not {hours}"
            )));
        }
        let Some(pending) = order
            .pending
            .clone()
            .filter(|p| p.kind == PendingKind::Approval)
        else {
            return Err(EngineError::Invalid(format!(
                "order {order_id} does not wait for an approval; cancel it instead"
            )));
        };
        let mut changed = order.clone();
        changed.pending = Some(Pending {
            prompt_at: now + u64::from(hours) * HOUR_MS,
            prompted_at: None,
            expires_at: None,
            ..pending
        });
        changed.updated_at = now;
        fx.push(Effect::SaveOrder(changed.clone()));
        self.orders.insert(changed.id.clone(), changed);
        self.record(
            by,
            "snooze",
            order_id,
            format!("asked again in {hours} h"),
            now,
            fx,
        );
        Ok(())
    }

    /// Sends a new proposal where the rules say: placed, held for a cancel window, or asked.
    /// Sends a new order its way: placed, held for a cancel window, or waiting for a person
    /// (`ask`: why one must decide, whatever the mode: another product, a price above the
    /// guard).
    pub(super) fn route_new_order(
        &mut self,
        order_id: &str,
        ask: Option<super::words::Ask>,
        now: UnixMs,
        fx: &mut Vec<Effect>,
    ) {
        let Some(order) = self.orders.get(order_id) else {
            return;
        };
        let spent = self.spent_this_month(now);
        let lines = order.lines();
        let consumables: Vec<&str> = lines.iter().map(|l| l.consumable.as_str()).collect();
        let route = match (
            self.household
                .route(&consumables, order.total(), spent, now),
            ask,
        ) {
            (Route::Skip, _) => Route::Skip,
            (_, Some(why)) => Route::Ask {
                why,
                on_expiry: ExpiryDefault::Skip,
            },
            (route, None) => route,
        };
        let rules = &self.household.rules;
        let pending = match route {
            Route::Place => None,
            Route::Hold { until } if until <= now => None,
            Route::Hold { until } => Some(Pending {
                kind: PendingKind::CancelWindow,
                why: format!(
                    "{} is set to order and tell; cancel within {} h",
                    order.first_line().consumable,
                    rules.cancel_window_hours
                ),
                prompt_at: now,
                prompted_at: Some(now),
                expires_at: Some(until),
                on_expiry: ExpiryDefault::Order,
            }),
            Route::Ask { why, on_expiry } => Some(Pending {
                kind: PendingKind::Approval,
                why: self.words(now).ask(&why),
                prompt_at: rules.prompt_time(now),
                prompted_at: None,
                expires_at: None,
                on_expiry,
            }),
            Route::Skip => {
                if let Some(order) = self.orders.get_mut(order_id)
                    && order
                        .reject("the consumable is switched off".into(), now)
                        .is_ok()
                {
                    fx.push(Effect::SaveOrder(order.clone()));
                }
                return;
            }
        };
        let Some(pending) = pending else {
            if let Some(order) = self.orders.get_mut(order_id)
                && order.approve(now).is_ok()
            {
                self.send(order_id, now, fx);
            }
            return;
        };
        let Some(order) = self.orders.get(order_id) else {
            return;
        };
        if pending.kind == PendingKind::CancelWindow {
            let (story, why) = self.order_story(order, now);
            let text = self
                .words(now)
                .scheduled(&story, pending.expires_at.unwrap_or(now), &why);
            fx.push(notice(now, NoticeKind::OrderScheduled, order_id, text));
        }
        let Some(order) = self.orders.get_mut(order_id) else {
            return;
        };
        order.pending = Some(pending);
        fx.push(Effect::SaveOrder(order.clone()));
        self.prompt_if_due(order_id, now, fx);
    }

    /// Prompts for an approval whose time has come, unless quiet hours say wait.
    fn prompt_if_due(&mut self, order_id: &str, now: UnixMs, fx: &mut Vec<Effect>) {
        let timeout = u64::from(self.household.rules.approval_timeout_hours) * HOUR_MS;
        let allowed_at = self.household.rules.prompt_time(now);
        let Some(order) = self.orders.get(order_id) else {
            return;
        };
        let Some(pending) = order.pending.as_ref() else {
            return;
        };
        if pending.kind != PendingKind::Approval
            || pending.prompted_at.is_some()
            || pending.prompt_at > now
        {
            return;
        }
        let text = (allowed_at <= now).then(|| {
            let (story, why) = self.order_story(order, now);
            self.words(now).prompt(
                &story,
                &pending.why,
                &why,
                now + timeout,
                pending.on_expiry == ExpiryDefault::Order,
            )
        });
        let Some(order) = self.orders.get_mut(order_id) else {
            return;
        };
        let Some(pending) = order.pending.as_mut() else {
            return;
        };
        let Some(text) = text else {
            // Quiet hours: ask when they end.
            pending.prompt_at = allowed_at;
            fx.push(Effect::SaveOrder(order.clone()));
            return;
        };
        pending.prompted_at = Some(now);
        pending.expires_at = Some(now + timeout);
        fx.push(Effect::SaveOrder(order.clone()));
        fx.push(notice(now, NoticeKind::ApprovalRequested, order_id, text));
    }

    /// Prompts that came due, approvals that expired, cancel windows that closed.
    pub(super) fn pending_tick(&mut self, now: UnixMs, fx: &mut Vec<Effect>) {
        let waiting: Vec<(OrderId, Pending)> = self
            .open_orders
            .iter()
            .filter_map(|id| self.orders.get(id))
            .filter(|o| o.state == OrderState::Proposed)
            .filter_map(|o| o.pending.clone().map(|p| (o.id.clone(), p)))
            .collect();
        for (order_id, pending) in waiting {
            if pending.expires_at.is_some_and(|at| at <= now) {
                self.expire(&order_id, &pending, now, fx);
            } else {
                self.prompt_if_due(&order_id, now, fx);
            }
        }
    }

    fn expire(&mut self, order_id: &str, pending: &Pending, now: UnixMs, fx: &mut Vec<Effect>) {
        let result = match (pending.kind, pending.on_expiry) {
            (_, ExpiryDefault::Order) => self.approve(order_id, &Actor::Agent, None, now, fx),
            (_, ExpiryDefault::Skip) => {
                let hours = self.household.rules.approval_timeout_hours;
                self.reject(
                    order_id,
                    &Actor::Agent,
                    RejectReason::Other,
                    Some(format!("nobody answered within {hours} h")),
                    now,
                    fx,
                )
            }
        };
        if let Err(error) = result {
            tracing::warn!(order_id, %error, "could not carry out an expired approval");
        }
    }
}

fn describe(order: &Order) -> String {
    format!(
        "{} x {} ({:.0} {} {})",
        order.first_line().packs,
        order.first_line().sku,
        order.first_line().pack_size,
        order.first_line().unit.symbol(),
        order.first_line().consumable
    )
}

#[cfg(test)]
mod tests;
