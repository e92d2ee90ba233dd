//! The sandbox shop API's wire types, shared by its client ([`super::SandboxShop`]) and the
//! sandbox shop (`replenish-sim shop`) so the two cannot drift apart. Described in `docs/commerce-api.md` and `docs/commerce-api.openapi.json`.
//!
//! Endpoints (all JSON; errors are `application/problem+json` [`Problem`]s):
//! * `GET /v1/catalog` → [`Catalog`]
//! * `POST /v1/orders` with header `Idempotency-Key` and an [`OrderRequest`] → [`ShopOrder`]
//!   (`201` when created, `200` when the key was seen before with the same request, `409` when it
//!   was seen with a different one, `422` for an unknown SKU or missing stock)
//! * `GET /v1/orders/{id}` → [`ShopOrder`]
//! * `GET /v1/orders` → [`OrderList`]

use replenish_protocol::Unit;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The header carrying the idempotency key of an order request.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// One product the shop sells.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CatalogItem {
    /// Stock-keeping unit, the product's identifier.
    pub sku: String,
    /// A readable name.
    pub name: String,
    /// The consumable this product replenishes, as devices name it (`coffee_beans`).
    pub consumable: String,
    /// How much one pack holds, in `unit`.
    pub pack_size: f64,
    /// The unit of `pack_size`.
    #[schema(value_type = String, example = "g")]
    pub unit: Unit,
    /// Price of one pack in the smallest currency unit (cents).
    pub price_cents: u64,
    /// ISO 4217 currency code.
    pub currency: String,
    /// Packs in stock.
    pub stock: u32,
}

/// Where a click-and-collect order waits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PickupPoint {
    /// Its name.
    pub name: String,
    /// Its address, one line.
    pub address: String,
    /// When it is open.
    pub opening_hours: String,
}

/// One way the shop fulfils orders.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FulfilmentOption {
    /// Its id, sent back in [`OrderRequest::fulfilment`].
    pub id: String,
    /// A readable name.
    pub name: String,
    /// Where a pickup order waits; absent for home delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pickup: Option<PickupPoint>,
    /// Its price per order in cents.
    pub price_cents: u64,
    /// Fewest days from order to arrival (or to ready for pickup).
    pub lead_days_min: u32,
    /// Most days.
    pub lead_days_max: u32,
}

/// The shop's catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Catalog {
    /// Every product on offer.
    pub items: Vec<CatalogItem>,
    /// The ways the shop fulfils orders; absent: it delivers, free, in its usual time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fulfilment: Vec<FulfilmentOption>,
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderLine {
    /// The product.
    pub sku: String,
    /// Number of packs, at least one.
    #[schema(minimum = 1)]
    pub quantity: u32,
}

/// The body of `POST /v1/orders`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderRequest {
    /// The ordering household.
    pub household: String,
    /// The agent's own order id, echoed back for reconciliation.
    pub reference: String,
    /// What to deliver: at least one line.
    #[schema(min_items = 1)]
    pub items: Vec<OrderLine>,
    /// The fulfilment option's id; absent: the shop's first (or its only) way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fulfilment: Option<String>,
}

/// Where an order stands at the shop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ShopOrderStatus {
    /// Accepted, not yet shipped.
    Placed,
    /// On its way.
    Shipped,
    /// Waiting at the pickup point.
    ReadyForPickup,
    /// Handed to the household.
    Delivered,
    /// Collected at the pickup point.
    Collected,
    /// Cancelled by the shop.
    Cancelled,
}

/// An order as the shop knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ShopOrder {
    /// The shop's order id.
    pub id: String,
    /// The idempotency key it was created with.
    pub idempotency_key: String,
    /// The household's reference.
    pub reference: String,
    /// The ordering household.
    pub household: String,
    /// Where the order stands.
    pub status: ShopOrderStatus,
    /// What was ordered.
    pub items: Vec<OrderLine>,
    /// Total price in cents.
    pub total_cents: u64,
    /// ISO 4217 currency code.
    pub currency: String,
    /// When the shop accepted it (ms since the Unix epoch).
    pub created_at_ms: u64,
    /// When it is expected at the door.
    pub estimated_delivery_at_ms: u64,
    /// When it shipped, once it has.
    pub shipped_at_ms: Option<u64>,
    /// When it was delivered, once it has been.
    pub delivered_at_ms: Option<u64>,
    /// The fulfilment option's id, if one was chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fulfilment: Option<String>,
}

/// `GET /v1/orders`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrderList {
    /// Every order, oldest first.
    pub orders: Vec<ShopOrder>,
}

/// An RFC 9457 problem document, the body of every error response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type (`about:blank` or a replenish URN).
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the problem type.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong with this request.
    pub detail: String,
}
