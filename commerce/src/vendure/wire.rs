//! Vendure's answers as the adapter reads them, and their mapping to the domain.

use serde::Deserialize;
use serde_json::Value;

use crate::CommerceError;
use crate::domain::{
    Currency, Fulfilment, FulfilmentOption, Money, OrderLine, OrderStatus, PickupPoint, ShopOrder,
};

/// A GraphQL answer.
#[derive(Debug, Deserialize)]
pub(crate) struct Answer {
    pub data: Option<Value>,
    #[serde(default)]
    pub errors: Vec<GraphQlError>,
}

/// One entry of a GraphQL answer's `errors`.
#[derive(Debug, Deserialize)]
pub(crate) struct GraphQlError {
    pub message: String,
    #[serde(default)]
    pub extensions: Option<Value>,
}

impl GraphQlError {
    /// Vendure's error code (`FORBIDDEN`, `ENTITY_NOT_FOUND`, …).
    pub fn code(&self) -> Option<&str> {
        self.extensions.as_ref()?.get("code")?.as_str()
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Products {
    pub total_items: u64,
    pub items: Vec<Product>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Product {
    pub variants: Vec<Variant>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Variant {
    pub id: String,
    pub sku: String,
    pub name: String,
    pub price_with_tax: u64,
    pub currency_code: String,
    /// The saleable number when the shop's stock display strategy says it; else a word.
    pub stock_level: String,
    #[serde(default)]
    pub custom_fields: Option<VariantFields>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct VariantFields {
    pub consumable: Option<String>,
    pub pack_size: Option<f64>,
    pub unit: Option<String>,
}

/// A shipping method as Vendure quotes it (or as an order's shipping line names it).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ShippingMethod {
    pub id: String,
    pub code: String,
    pub name: String,
    #[serde(default)]
    pub custom_fields: Option<Value>,
}

impl ShippingMethod {
    fn field(&self, name: &str) -> Option<&Value> {
        self.custom_fields
            .as_ref()?
            .get(name)
            .filter(|v| !v.is_null())
    }

    fn text(&self, name: &str) -> Option<String> {
        self.field(name)?.as_str().map(str::to_owned)
    }

    fn days(&self, name: &str) -> Option<u32> {
        self.field(name)?
            .as_u64()
            .and_then(|d| u32::try_from(d).ok())
    }

    /// The domain option; `price` in the order's currency when known. Pickup when its `kind`
    /// custom field says so.
    pub fn option(&self, price: Option<Money>) -> FulfilmentOption {
        let method = if self.text("kind").as_deref() == Some("pickup") {
            Fulfilment::Pickup(PickupPoint {
                name: self.text("pickupName").unwrap_or_else(|| self.name.clone()),
                address: self.text("pickupAddress").unwrap_or_default(),
                opening_hours: self.text("openingHours").unwrap_or_default(),
            })
        } else {
            Fulfilment::Delivery
        };
        let lead_days = match (self.days("leadDaysMin"), self.days("leadDaysMax")) {
            (Some(min), Some(max)) => Some((min.min(max), min.max(max))),
            (Some(d), None) | (None, Some(d)) => Some((d, d)),
            (None, None) => None,
        };
        FulfilmentOption {
            id: self.code.clone(),
            name: self.name.clone(),
            method,
            price,
            lead_days,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Order {
    pub code: String,
    pub state: String,
    pub active: bool,
    pub created_at: String,
    pub order_placed_at: Option<String>,
    pub total_with_tax: u64,
    pub currency_code: String,
    #[serde(default)]
    pub custom_fields: OrderFields,
    #[serde(default)]
    pub lines: Vec<Line>,
    #[serde(default)]
    pub shipping_lines: Vec<ShippingLine>,
    #[serde(default)]
    pub fulfillments: Option<Vec<Fulfillment>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OrderFields {
    pub idempotency_key: Option<String>,
    pub reference: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Line {
    pub quantity: u32,
    /// What was ordered; more than `quantity` after the shop cancelled part of the line.
    #[serde(default)]
    pub order_placed_quantity: Option<u32>,
    pub product_variant: VariantRef,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct VariantRef {
    pub sku: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ShippingLine {
    pub price_with_tax: u64,
    pub shipping_method: ShippingMethod,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Fulfillment {
    pub state: String,
    pub updated_at: String,
}

/// Milliseconds since the Unix epoch of an ISO 8601 time as Vendure writes it.
pub(crate) fn epoch_ms(text: &str) -> Option<u64> {
    let at: jiff::Timestamp = text.parse().ok()?;
    u64::try_from(at.as_millisecond()).ok()
}

impl Order {
    fn is_pickup(&self) -> bool {
        self.shipping_lines.iter().any(|l| {
            l.shipping_method
                .custom_fields
                .as_ref()
                .and_then(|f| f.get("kind"))
                .and_then(Value::as_str)
                == Some("pickup")
        })
    }

    /// Where the order stands, in the contract's words. Vendure has no pickup states: a
    /// click-and-collect order that "shipped" is ready at the pickup point, one "delivered" was
    /// collected.
    pub fn status(&self) -> OrderStatus {
        let pickup = self.is_pickup();
        // A partial cancel leaves the state as it was; only the lines show it.
        let cut = self.lines.iter().any(|l| {
            l.order_placed_quantity
                .is_some_and(|placed| placed > l.quantity)
        });
        match self.state.as_str() {
            "PaymentSettled" | "PaymentAuthorized" if cut => OrderStatus::PartiallyFulfilled,
            "Shipped" if pickup => OrderStatus::ReadyForPickup,
            "Shipped" => OrderStatus::Shipped,
            "Delivered" if pickup => OrderStatus::Collected,
            "Delivered" => OrderStatus::Delivered,
            "PartiallyShipped" | "PartiallyDelivered" => OrderStatus::PartiallyFulfilled,
            "Cancelled" => OrderStatus::CancelledByShop,
            "PaymentSettled" | "PaymentAuthorized" | "Modifying" | "ArrangingAdditionalPayment" => {
                OrderStatus::Paid
            }
            // AddingItems, ArrangingPayment, Draft and states a plugin adds.
            _ => OrderStatus::Accepted,
        }
    }

    /// The domain order.
    pub fn to_domain(&self) -> Result<ShopOrder, CommerceError> {
        let currency = Currency::new(&self.currency_code)
            .ok_or_else(|| CommerceError::Decode(format!("currency {:?}", self.currency_code)))?;
        let status = self.status();
        let fulfilments = self.fulfillments.as_deref().unwrap_or_default();
        let when = |states: &[&str]| {
            fulfilments
                .iter()
                .filter(|f| states.contains(&f.state.as_str()))
                .filter_map(|f| epoch_ms(&f.updated_at))
                .max()
        };
        let shipped_at_ms = when(&["Shipped", "Delivered"]);
        let delivered_at_ms = matches!(status, OrderStatus::Delivered | OrderStatus::Collected)
            .then(|| when(&["Delivered"]))
            .flatten();
        let created_at_ms = self
            .order_placed_at
            .as_deref()
            .and_then(epoch_ms)
            .or_else(|| epoch_ms(&self.created_at))
            .unwrap_or(0);
        let fulfilment = self.shipping_lines.first().map(|l| {
            l.shipping_method
                .option(Some(Money::new(l.price_with_tax, currency)))
        });
        let estimated_arrival_ms = fulfilment
            .as_ref()
            .and_then(|f| f.lead_days)
            .map(|(_, max)| created_at_ms.saturating_add(u64::from(max) * 86_400_000));
        Ok(ShopOrder {
            id: self.code.clone(),
            idempotency_key: self
                .custom_fields
                .idempotency_key
                .clone()
                .unwrap_or_default(),
            reference: self.custom_fields.reference.clone().unwrap_or_default(),
            status,
            lines: self
                .lines
                .iter()
                .map(|l| OrderLine {
                    sku: l.product_variant.sku.clone(),
                    quantity: l.quantity,
                })
                .collect(),
            total: Money::new(self.total_with_tax, currency),
            created_at_ms,
            estimated_arrival_ms,
            shipped_at_ms,
            delivered_at_ms,
            fulfilment,
        })
    }
}
