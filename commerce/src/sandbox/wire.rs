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

/// The shop's catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Catalog {
    /// Every product on offer.
    pub items: Vec<CatalogItem>,
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderLine {
    /// The product.
    pub sku: String,
    /// Number of packs, at least one.
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
    /// What to deliver.
    pub items: Vec<OrderLine>,
}

/// Where an order stands at the shop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ShopOrderStatus {
    /// Accepted, not yet shipped.
    Placed,
    /// On its way.
    Shipped,
    /// Handed to the household.
    Delivered,
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
