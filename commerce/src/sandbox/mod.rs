//! The sandbox shop's HTTP API (`docs/commerce-api.md`): its wire types and its client.
//!
//! The sandbox shop delivers only (no pickup) and states no fulfilment options; its orders go
//! placed → shipped → delivered, or cancelled by the shop.

mod client;
pub mod wire;

pub use client::SandboxShop;

use crate::CommerceError;
use crate::domain::{Catalog, Currency, Money, Offer, OrderLine, OrderStatus, ShopOrder};

fn currency(code: &str) -> Result<Currency, CommerceError> {
    Currency::new(code).ok_or_else(|| CommerceError::Decode(format!("currency {code:?}")))
}

/// The domain catalog of a sandbox catalog; an item with an unreadable currency is skipped.
pub fn catalog_from_wire(catalog: wire::Catalog) -> Catalog {
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
    Catalog {
        offers,
        fulfilment: Vec::new(),
    }
}

/// The sandbox catalog item of a domain offer (the sandbox shop's configuration uses these).
pub fn item_from_offer(offer: &Offer) -> wire::CatalogItem {
    wire::CatalogItem {
        sku: offer.sku.clone(),
        name: offer.name.clone(),
        consumable: offer.consumable.clone(),
        pack_size: offer.pack_size,
        unit: offer.unit,
        price_cents: offer.price.minor,
        currency: offer.price.currency.to_string(),
        stock: offer.stock,
    }
}

/// The domain order of a sandbox order.
pub fn order_from_wire(order: wire::ShopOrder) -> Result<ShopOrder, CommerceError> {
    let status = match order.status {
        wire::ShopOrderStatus::Placed => OrderStatus::Accepted,
        wire::ShopOrderStatus::Shipped => OrderStatus::Shipped,
        wire::ShopOrderStatus::Delivered => OrderStatus::Delivered,
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
        fulfilment: None,
    })
}
