//! The sandbox shop's HTTP API (`docs/commerce-api.md`): its wire types and its client.
//!
//! A sandbox shop may state fulfilment options (home delivery, click and collect); its orders
//! go placed → shipped → delivered (pickup: ready for pickup → collected), or cancelled by
//! the shop.

mod client;
pub mod wire;

pub use client::SandboxShop;

use crate::CommerceError;
use crate::domain::{
    Catalog, Currency, Fulfilment, FulfilmentOption, Money, Offer, OrderLine, OrderStatus,
    PickupPoint, ShopOrder,
};

fn currency(code: &str) -> Result<Currency, CommerceError> {
    Currency::new(code).ok_or_else(|| CommerceError::Decode(format!("currency {code:?}")))
}

/// The domain catalog of a sandbox catalog; an item with an unreadable currency is skipped.
pub fn catalog_from_wire(catalog: wire::Catalog) -> Catalog {
    // The shop prices fulfilment in its catalog's currency.
    let shop_currency = catalog
        .items
        .iter()
        .find_map(|i| Currency::new(&i.currency))
        .unwrap_or(Currency::EUR);
    let fulfilment = catalog
        .fulfilment
        .iter()
        .map(|f| option_from_wire(f, shop_currency))
        .collect();
    let offers = catalog
        .items
        .into_iter()
        .filter_map(|item| {
            let Ok(currency) = currency(&item.currency) else {
                tracing::warn!(sku = %item.sku, currency = %item.currency, "skipping an offer with an unknown currency");
                return None;
            };
            Some(Offer {
                sku: item.sku,
                name: item.name,
                consumable: item.consumable,
                pack_size: item.pack_size,
                unit: item.unit,
                price: Money::new(item.price_cents, currency),
                stock: item.stock,
            })
        })
        .collect();
    Catalog { offers, fulfilment }
}

/// The domain option of a sandbox fulfilment option.
pub fn option_from_wire(option: &wire::FulfilmentOption, currency: Currency) -> FulfilmentOption {
    FulfilmentOption {
        id: option.id.clone(),
        name: option.name.clone(),
        method: match &option.pickup {
            Some(point) => Fulfilment::Pickup(PickupPoint {
                name: point.name.clone(),
                address: point.address.clone(),
                opening_hours: point.opening_hours.clone(),
            }),
            None => Fulfilment::Delivery,
        },
        price: Some(Money::new(option.price_cents, currency)),
        lead_days: Some((option.lead_days_min, option.lead_days_max)),
    }
}

/// The domain order of a sandbox order.
pub fn order_from_wire(order: wire::ShopOrder) -> Result<ShopOrder, CommerceError> {
    let status = match order.status {
        wire::ShopOrderStatus::Placed => OrderStatus::Accepted,
        wire::ShopOrderStatus::Shipped => OrderStatus::Shipped,
        wire::ShopOrderStatus::ReadyForPickup => OrderStatus::ReadyForPickup,
        wire::ShopOrderStatus::Delivered => OrderStatus::Delivered,
        wire::ShopOrderStatus::Collected => OrderStatus::Collected,
        wire::ShopOrderStatus::Cancelled => OrderStatus::CancelledByShop,
    };
    Ok(ShopOrder {
        total: Money::new(order.total_cents, currency(&order.currency)?),
        id: order.id,
        idempotency_key: order.idempotency_key,
        reference: order.reference,
        status,
        lines: order
            .items
            .into_iter()
            .map(|l| OrderLine {
                sku: l.sku,
                quantity: l.quantity,
            })
            .collect(),
        created_at_ms: order.created_at_ms,
        estimated_arrival_ms: Some(order.estimated_delivery_at_ms),
        shipped_at_ms: order.shipped_at_ms,
        delivered_at_ms: order.delivered_at_ms,
        // The order names its option by id only; the agent keeps the option it chose.
        fulfilment: None,
    })
}
