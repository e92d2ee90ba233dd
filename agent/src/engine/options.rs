//! The options side by side for an order that waits for a person: every way to get the same
//! amount of its consumable (each shop's products in stock, by each fulfilment option the
//! household allows), with price, arrival and whether it fits the household's rules, so that a
//! person can pick one when the agent could not ([`super::OrderEdit`] takes the choice).

use replenish_commerce::{Currency, FulfilmentOption};

use super::shopping::ShopId;
use serde::Serialize;

use super::{Engine, EngineError, shopping};
use crate::clock::UnixMs;

/// One way to get what a proposed order's first line asks for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrderOption {
    /// The shop's id (for [`super::OrderEdit::shop`]).
    pub shop: ShopId,
    /// The shop's name.
    pub shop_name: String,
    /// The product (for [`super::OrderEdit::sku`]).
    pub sku: String,
    /// The product's name.
    pub product: String,
    /// Packs for at least the amount the order asks for.
    pub packs: u32,
    /// Amount in one pack.
    pub pack_size: f64,
    /// Unit of `pack_size`.
    pub unit: replenish_protocol::Unit,
    /// The packs' price, minor units.
    pub goods_minor: u64,
    /// The fulfilment fee, minor units.
    pub fee_minor: u64,
    /// Goods and fee.
    pub total_minor: u64,
    /// The currency of the amounts.
    pub currency: Currency,
    /// How it comes (`None`: the shop states no options; it delivers).
    pub fulfilment: Option<FulfilmentOption>,
    /// Arrival if ordered now, early and late end (the lead time's 10th and 90th percentile).
    pub arrives_earliest_ms: UnixMs,
    /// See `arrives_earliest_ms`.
    pub arrives_latest_ms: UnixMs,
    /// Arrives (late end) before the slot may run out.
    pub in_time: bool,
    /// A product the household allows for the consumable (any, when it listed none).
    pub allowed: bool,
    /// Within the price guard against the usual price per unit.
    pub within_price_guard: bool,
    /// What the order holds now.
    pub current: bool,
}

impl Engine {
    /// The options for proposed order `order_id`, cheapest per unit first (fees included);
    /// those priced in the household's currency before any other, as prices in two
    /// currencies are not compared.
    pub fn order_options(
        &self,
        order_id: &str,
        now: UnixMs,
    ) -> Result<Vec<OrderOption>, EngineError> {
        let order = self.proposed(order_id)?;
        let line = order.first_line();
        let consumable = line.consumable.as_str();
        let wanted = f64::from(line.packs) * line.pack_size;
        let deadline = self
            .slots
            .get(&super::slot_key(&line.device, &line.slot))
            .and_then(|slot| slot.forecast.as_ref())
            .and_then(|forecast| forecast.empty_earliest);
        let allowed = self
            .config
            .products
            .get(consumable)
            .filter(|l| !l.is_empty());
        let home = self.home_currency();
        let mut options: Vec<((bool, f64), OrderOption)> = shopping::candidates(
            &self.config.shops,
            &self.meta.catalogs,
            consumable,
            line.unit,
            self.config.pickup,
            |shop, fulfilment| self.lead_at(shop, fulfilment, now),
        )
        .into_iter()
        .map(|candidate| {
            let offer = &candidate.offer;
            let packs = ((wanted / offer.pack_size).ceil() as u32).max(1);
            let goods = offer.price.minor * u64::from(packs);
            let fee = candidate
                .fulfilment
                .as_ref()
                .and_then(|f| f.price)
                .map_or(0, |p| p.minor);
            let latest = now.saturating_add(candidate.lead.p90());
            let current = candidate.shop == order.shop
                && offer.sku == line.sku
                && candidate.fulfilment.as_ref().map(|f| &f.id)
                    == order.fulfilment.as_ref().map(|f| &f.id);
            let option = OrderOption {
                shop_name: self.shop_name(&candidate.shop).to_string(),
                shop: candidate.shop.clone(),
                sku: offer.sku.clone(),
                product: offer.name.clone(),
                packs,
                pack_size: offer.pack_size,
                unit: offer.unit,
                goods_minor: goods,
                fee_minor: fee,
                total_minor: goods + fee,
                currency: offer.price.currency,
                fulfilment: candidate.fulfilment.clone(),
                arrives_earliest_ms: now.saturating_add(candidate.lead.p10()),
                arrives_latest_ms: latest,
                in_time: deadline.is_none_or(|d| latest <= d),
                allowed: allowed.is_none_or(|list| list.contains(&offer.sku)),
                within_price_guard: self.price_guard(consumable, line.unit, offer).is_none(),
                current,
            };
            let foreign = offer.price.currency != home;
            ((foreign, candidate.cost_per_unit(packs)), option)
        })
        .collect();
        options.sort_by(|(a, _), (b, _)| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        Ok(options.into_iter().map(|(_, option)| option).collect())
    }
}
