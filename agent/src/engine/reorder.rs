//! The reorder pass: forecasting a slot again, asking the policy about every way to buy it
//! (each shop's products, each fulfilment option), choosing one, bundling the other slots that
//! would soon need ordering, fitting the budget, and proposing the order.

use replenish_commerce::{FulfilmentOption, Money, Offer};

use super::forecast::{self, Forecast, ForecastModel, day_of};
use super::inventory::SlotState;
use super::lead_time::LeadTime;
use super::order::{Order, OrderId, OrderItem, OrderState, line_total};
use super::policy::{PolicyInput, ReorderDecision, StockPosition};
use super::{
    ConsumableSettings, Effect, Engine, NoticeKind, days_from, household, notice, policy,
    shop_turns, shopping, words,
};
use crate::clock::UnixMs;

/// What [`Engine::decide_for`] decided for a slot.
pub(super) struct Decided {
    /// How many packs, and why.
    decision: ReorderDecision,
    /// The shop, product and fulfilment chosen.
    candidate: shopping::Candidate,
    /// What a person must be asked, if anything (another product, a price over the guard).
    ask: Option<words::Ask>,
    /// With an order already open: when that one comes, which this one bridges.
    bridges_until: Option<UnixMs>,
}

impl Engine {
    /// Forecasts a slot again, with a notice once a day.
    pub(super) fn refresh_forecast(&mut self, key: &str, now: UnixMs, fx: &mut Vec<Effect>) {
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

    /// The open orders for the slot. A click-and-collect order left at its pickup point this
    /// long no longer counts as coming: the agent may order again, but only with a person's
    /// approval.
    fn open_orders_for<'a>(
        &'a self,
        slot: &'a SlotState,
        now: UnixMs,
    ) -> impl Iterator<Item = &'a Order> + 'a {
        self.open_orders
            .iter()
            .filter_map(|id| self.orders.get(id))
            .filter(move |o| {
                o.state.is_open()
                    && o.covers(&slot.device, &slot.spec.id)
                    && shop_turns::uncollected(o, now).is_none()
            })
    }

    /// True while an order for the slot is open: nothing more is ordered meanwhile, but for a
    /// bridge ([`Self::bridgeable`]).
    pub(super) fn has_open_order(&self, slot: &SlotState, now: UnixMs) -> bool {
        self.open_orders_for(slot, now).next().is_some()
    }

    /// When the slot's only open order is coming to the door (placed, not a pickup the
    /// household can fetch, its delivery time known and ahead): that time, before which a
    /// faster order may bridge. An order still waiting for approval is the household's to
    /// change, and a bridge already on its way is the last.
    fn bridgeable(&self, slot: &SlotState, now: UnixMs) -> Option<UnixMs> {
        let mut open = self.open_orders_for(slot, now);
        let order = open.next()?;
        if open.next().is_some() {
            return None;
        }
        let coming = matches!(order.state, OrderState::Placed | OrderState::Shipped)
            && order
                .fulfilment
                .as_ref()
                .is_none_or(|f| f.method == replenish_commerce::Fulfilment::Delivery);
        order.expected_delivery_at.filter(|at| coming && *at > now)
    }

    /// How long `shop` takes to fulfil by `fulfilment` for an order placed at `now`, in wall
    /// time: [`lead_of`](Self::lead_of), and for a pickup point with opening hours its open
    /// time laid over the hours from `now` (an order on Saturday evening that needs ten open
    /// hours is collected on Monday afternoon, the point being shut on Sunday).
    pub(super) fn lead_at(
        &self,
        shop: &str,
        fulfilment: Option<&FulfilmentOption>,
        now: UnixMs,
    ) -> LeadTime {
        let lead = self.lead_of(shop, fulfilment);
        match fulfilment.and_then(FulfilmentOption::opening_hours) {
            Some(hours) => lead.map(|open| hours.after_open(now, open).saturating_sub(now)),
            None => lead,
        }
    }

    /// How long `shop` takes to fulfil by `fulfilment`: learned from its deliveries, else as
    /// the option states, else the configured default. For a pickup point with opening hours
    /// the times are the point's open time (see [`lead_at`](Self::lead_at)): what it takes
    /// the shop to prepare and the household to collect, both of which wait while it is shut.
    pub(super) fn lead_of(&self, shop: &str, fulfilment: Option<&FulfilmentOption>) -> LeadTime {
        let stated = fulfilment.and_then(shopping::stated_lead_ms);
        let prior = match (stated, fulfilment.and_then(FulfilmentOption::opening_hours)) {
            // "A day", said of a point open 72 hours a week, is 10 of its open hours.
            (Some(wall), Some(hours)) => (wall as f64 * hours.open_share()) as UnixMs,
            (Some(wall), None) => wall,
            (None, _) => self.config.policy.lead_time_ms,
        };
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
    /// when given); `None` while it has no forecast, nothing on offer or an open order it
    /// cannot bridge.
    pub(super) fn decide_for(
        &self,
        slot: &SlotState,
        now: UnixMs,
        ahead: Option<UnixMs>,
        only_shop: Option<&str>,
    ) -> Option<Decided> {
        let forecast = slot.forecast.as_ref()?;
        // With an order open, only a bridge before it (never a line joining another order).
        let bridge_until = if self.has_open_order(slot, now) {
            if ahead.is_some() {
                return None;
            }
            Some(self.bridgeable(slot, now)?)
        } else {
            None
        };
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
            |shop, fulfilment| self.lead_at(shop, fulfilment, now),
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
        // Prices in different currencies are never compared (no exchange rates here): offers
        // in the household's currency while any is in stock, another currency's only then.
        let home = self.home_currency();
        let candidates = if candidates.iter().any(|c| c.offer.price.currency == home) {
            candidates
                .into_iter()
                .filter(|c| c.offer.price.currency == home)
                .collect()
        } else {
            candidates
        };
        // Without a set maximum, the appliance and the smallest pack on offer: a pack of three
        // filters must not raise the limit it is checked against.
        let on_hand = StockPosition::of(slot).on_hand();
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
                let review = self.config.policy.review_ms;
                let waiting = self.lead_at(
                    &candidate.shop,
                    candidate.fulfilment.as_ref(),
                    now.saturating_add(review),
                );
                let input = PolicyInput {
                    slot,
                    forecast,
                    item: &candidate.offer,
                    stock: StockPosition::of(slot),
                    lead_time: &candidate.lead,
                    lead_if_waiting: (waiting != candidate.lead).then_some(&waiting),
                    settings,
                    review_ms: review,
                    now,
                };
                let decision = match (bridge_until, ahead) {
                    (Some(until), _) => self.policy.bridge(&input, until),
                    (None, None) => self.policy.decide(&input),
                    (None, Some(ahead)) => self.policy.decide_ahead(&input, ahead),
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
        // nothing in the comparison of packs. Only a choice needs it (this runs on every
        // report); the mean rate times a year is the year's demand, weekdays averaging out.
        let usable =
            (candidates.len() > 1).then(|| (forecast.rate_per_day * 365.0 - on_hand).max(0.0));
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
        let choice = shopping::choose(
            &candidates,
            &self.config.shops,
            self.config.pickup,
            now,
            forecast.empty_earliest,
            &bundles,
            usable,
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
        Some(Decided {
            decision,
            candidate,
            ask,
            bridges_until: bridge_until,
        })
    }

    /// Why a person must approve buying `offer`, if it costs more than the price guard allows
    /// per unit against the usual price: the lowest per unit among the household's products
    /// for the consumable (any shop, in stock or not; every product when none are chosen).
    pub(super) fn price_guard(
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
    pub(super) fn bundles_for(
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
    pub(super) fn bundle_lines(&self, key: &str, now: UnixMs, shop: &str) -> Vec<OrderItem> {
        let Some(trigger) = self.slots.get(key) else {
            return Vec::new();
        };
        self.joining_lines(trigger, now, shop)
            .into_iter()
            .map(|(line, _)| line)
            .collect()
    }

    /// Whether an order placed now and delivered in `lead` would more likely than the
    /// consumable's risk arrive after `slot` runs out.
    fn reaches_too_late(&self, slot: &SlotState, lead: &LeadTime, now: UnixMs) -> bool {
        let Some(forecast) = slot.forecast.as_ref() else {
            return false;
        };
        let on_hand = StockPosition::of(slot).on_hand();
        let risk = policy::stockout_risk(forecast, lead, 0, on_hand, now);
        risk > self.settings_for(slot.spec.consumable.as_str()).risk
    }

    /// The lines of [`bundle_lines`](Self::bundle_lines), each with what it saves against
    /// being ordered on its own at its best shop, fee included (minor units). A line that
    /// would cost more per unit at `shop` than on its own does not join.
    pub(super) fn joining_lines(
        &self,
        trigger: &SlotState,
        now: UnixMs,
        shop: &str,
    ) -> Vec<(OrderItem, f64)> {
        let ahead = self.config.policy.bundle_ms();
        if ahead == 0 {
            return Vec::new();
        }
        self.slots
            .sorted()
            .into_iter()
            .map(|(_, slot)| slot)
            .filter(|slot| !std::ptr::eq(&***slot, trigger))
            .filter_map(|slot| {
                let Decided {
                    decision,
                    candidate,
                    ask,
                    ..
                } = self.decide_for(slot, now, Some(ahead), Some(shop))?;
                // A line a person would have to approve does not join silently.
                if ask.is_some() {
                    return None;
                }
                // Nor one this order would reach only after it has run out (milk with two
                // days left on a three-day delivery): on its own it goes by a faster way.
                if self.reaches_too_late(slot, &candidate.lead, now) {
                    return None;
                }
                let item = candidate.offer;
                let here = item.price.minor as f64 / item.pack_size;
                let units = f64::from(decision.packs) * item.pack_size;
                // On its own it would pay its best shop's price and fee.
                let saving = match self.decide_for(slot, now, Some(ahead), None) {
                    Some(alone) => {
                        (alone.candidate.cost_per_unit(alone.decision.packs) - here) * units
                    }
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
                    total: line_total(item.price, decision.packs),
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
    pub(super) fn fit_budget(
        &self,
        item: &Offer,
        packs: &mut u32,
        bundled: &mut Vec<OrderItem>,
        now: UnixMs,
    ) -> Option<String> {
        let budget = self.household.rules.monthly_budget_cents?;
        let spent = self.spent_this_month(now);
        // Another currency than the budget's is not cut to it: a person decides instead.
        if item.price.currency != spent.currency {
            return None;
        }
        let left = budget.saturating_sub(spent.minor);
        let wanted = *packs;
        let mut sizes: Vec<(u32, u64)> = bundled
            .iter()
            .map(|l| (l.packs, l.total.minor / u64::from(l.packs.max(1))))
            .collect();
        if !policy::trim_to_budget(packs, item.price.minor, &mut sizes, left) {
            return None;
        }
        let why = format!(
            "to stay within the monthly budget ({} left)",
            household::amount(Money::new(left, spent.currency))
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
                line.total.minor = price * u64::from(n);
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

    pub(super) fn consider_reorder(&mut self, key: &str, now: UnixMs, fx: &mut Vec<Effect>) {
        let Some(slot) = self.slots.get(key) else {
            return;
        };
        let Some(Decided {
            decision,
            candidate,
            ask,
            bridges_until,
        }) = self.decide_for(slot, now, None, None)
        else {
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
        let id = OrderId::numbered(self.meta.next_order_no);
        let first = OrderItem {
            device: slot.device.clone(),
            slot: slot.spec.id.clone(),
            consumable: slot.spec.consumable.clone(),
            sku: item.sku.clone(),
            packs,
            pack_size: item.pack_size,
            unit: item.unit,
            total: line_total(item.price, packs),
            reason,
            outlook: slot.forecast.as_ref().map(|f| words::Outlook {
                bridges_until,
                ..words::Outlook::of(f, &candidate.lead)
            }),
        };
        let key = format!("{}-{id}", self.config.key_prefix);
        let shop = candidate.shop;
        let mut order = Order::proposed(id.clone(), key, first, bundled, shop, now);
        order.fulfilment = candidate.fulfilment;
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
pub(super) fn linked_forecast(
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

/// "order o-000007 proposed: <reason>", then "; with <reason>" for each bundled line.
pub(super) fn proposal_text(id: &str, order: &Order) -> String {
    let mut text = format!("order {id} proposed: {}", order.first_line().reason);
    for line in order.bundled() {
        text.push_str("; with ");
        text.push_str(&line.reason);
    }
    text
}
