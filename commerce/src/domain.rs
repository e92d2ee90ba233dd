//! The contract's domain types: what the engine knows of shops. No adapter's wire type appears
//! here; each adapter converts its platform's answers into these.

use std::fmt;

use replenish_protocol::Unit;
use serde::{Deserialize, Serialize};

/// An ISO 4217 currency code: three upper-case ASCII letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

impl Currency {
    /// The euro.
    pub const EUR: Currency = Currency(*b"EUR");

    /// Parses a code such as `EUR`; `None` unless it is three ASCII letters (upper-cased).
    pub fn new(code: &str) -> Option<Self> {
        let bytes = code.as_bytes();
        if bytes.len() != 3 || !bytes.iter().all(u8::is_ascii_alphabetic) {
            return None;
        }
        let mut out = [0u8; 3];
        for (o, b) in out.iter_mut().zip(bytes) {
            *o = b.to_ascii_uppercase();
        }
        Some(Self(out))
    }

    /// The code as text.
    pub fn code(&self) -> &str {
        // Only ASCII letters are ever stored (see `new`).
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }

    /// Digits after the decimal point in the currency's minor unit (ISO 4217).
    pub fn minor_digits(&self) -> u32 {
        match self.code() {
            "JPY" | "KRW" | "ISK" | "CLP" | "VND" | "XOF" | "XAF" | "HUF" => 0,
            "BHD" | "KWD" | "OMR" | "JOD" | "TND" | "IQD" | "LYD" => 3,
            _ => 2,
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        Currency::new(&code).ok_or_else(|| {
            serde::de::Error::custom(format!("{code:?} is not an ISO 4217 currency code"))
        })
    }
}

/// An amount of money in the currency's minor unit (cents for the euro).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    /// The amount in minor units.
    pub minor: u64,
    /// Its currency.
    pub currency: Currency,
}

impl Money {
    /// `minor` units of `currency`.
    pub fn new(minor: u64, currency: Currency) -> Self {
        Self { minor, currency }
    }

    /// `count` times this amount; `None` on overflow.
    pub fn times(self, count: u64) -> Option<Self> {
        Some(Self::new(self.minor.checked_mul(count)?, self.currency))
    }

    /// The sum of two amounts in one currency; `None` if the currencies differ or on overflow.
    pub fn plus(self, other: Self) -> Option<Self> {
        (self.currency == other.currency)
            .then(|| self.minor.checked_add(other.minor))
            .flatten()
            .map(|minor| Self::new(minor, self.currency))
    }
}

/// One product a shop sells, as the engine sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Offer {
    /// The shop's identifier of the product (its SKU).
    pub sku: String,
    /// A readable name.
    pub name: String,
    /// The consumable it replenishes, as devices name it (`coffee_beans`).
    pub consumable: String,
    /// How much one pack holds, in `unit`.
    pub pack_size: f64,
    /// The unit of `pack_size`.
    pub unit: Unit,
    /// The price of one pack, taxes included.
    pub price: Money,
    /// Packs the shop can sell now (0: out of stock).
    pub stock: u32,
}

/// How an order reaches the household.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Fulfilment {
    /// Brought to the door.
    Delivery,
    /// Collected by the household at a pickup point.
    Pickup(PickupPoint),
}

/// Where a click-and-collect order waits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PickupPoint {
    /// Its name ("Shop A").
    pub name: String,
    /// Its address, one line.
    pub address: String,
    /// When it is open, as the shop writes it ("Mon–Sat 08:00–20:00").
    pub opening_hours: String,
}

impl PickupPoint {
    /// Its opening hours, if the text reads as days and times; `None` (taken as always open)
    /// otherwise.
    pub fn hours(&self) -> Option<crate::OpeningHours> {
        crate::OpeningHours::parse(&self.opening_hours)
    }
}

impl FulfilmentOption {
    /// The opening hours an order by this option waits for: a pickup point's, when its text
    /// reads as days and times; `None` for a delivery or an always-open point.
    pub fn opening_hours(&self) -> Option<crate::OpeningHours> {
        match &self.method {
            Fulfilment::Pickup(point) => point.hours(),
            Fulfilment::Delivery => None,
        }
    }
}

/// One way a shop can fulfil an order, with its price and how long it takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FulfilmentOption {
    /// The shop's identifier of the method (a shipping method code).
    pub id: String,
    /// A readable name.
    pub name: String,
    /// Delivery or pickup.
    pub method: Fulfilment,
    /// What it costs per order, taxes included; `None` where the shop prices it only for a
    /// built order (Vendure's calculators).
    pub price: Option<Money>,
    /// Fewest and most days from order to arrival (or to ready for pickup), as the shop states.
    pub lead_days: Option<(u32, u32)>,
}

/// What a shop offers.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Catalog {
    /// Every product on offer.
    pub offers: Vec<Offer>,
    /// The ways it fulfils orders; empty when the shop does not say (it delivers).
    #[serde(default)]
    pub fulfilment: Vec<FulfilmentOption>,
}

impl Catalog {
    /// The offer with this SKU.
    pub fn offer(&self, sku: &str) -> Option<&Offer> {
        self.offers.iter().find(|o| o.sku == sku)
    }
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    /// The product.
    pub sku: String,
    /// Number of packs, at least one.
    pub quantity: u32,
}

/// What the agent asks a shop for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRequest {
    /// The ordering household.
    pub household: String,
    /// The agent's own order id, stored with the order at the shop for reconciliation.
    pub reference: String,
    /// What to deliver.
    pub lines: Vec<OrderLine>,
    /// The fulfilment option's id; `None`: the shop's first delivery option.
    pub fulfilment: Option<String>,
}

/// Where an order stands at the shop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Taken, not yet paid.
    Accepted,
    /// Paid, not yet on its way.
    Paid,
    /// On its way to the door.
    Shipped,
    /// Waiting at the pickup point.
    ReadyForPickup,
    /// Handed over at the door.
    Delivered,
    /// Collected at the pickup point.
    Collected,
    /// Cancelled by the shop.
    CancelledByShop,
    /// Only part of it was sent: the lines say what.
    PartiallyFulfilled,
    /// The shop replaced a product: the lines say with what.
    SubstitutedByShop,
}

/// An order as the shop knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShopOrder {
    /// The shop's order id (Vendure: the order code).
    pub id: String,
    /// The idempotency key it was created with.
    pub idempotency_key: String,
    /// The agent's reference.
    pub reference: String,
    /// Where it stands.
    pub status: OrderStatus,
    /// What the shop will send (after a substitution or a partial fulfilment: what it sent).
    pub lines: Vec<OrderLine>,
    /// The total, fulfilment included.
    pub total: Money,
    /// When the shop took it (ms since the Unix epoch).
    pub created_at_ms: u64,
    /// When it is expected (at the door, or ready for pickup), if the shop says.
    pub estimated_arrival_ms: Option<u64>,
    /// When it shipped (or became ready for pickup), once it has.
    pub shipped_at_ms: Option<u64>,
    /// When it was delivered or collected, once it has been.
    pub delivered_at_ms: Option<u64>,
    /// How it is fulfilled, if the shop says.
    pub fulfilment: Option<FulfilmentOption>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currency_codes_are_three_letters_upper_cased() {
        assert_eq!(Currency::new("eur"), Some(Currency::EUR));
        assert_eq!(Currency::new("EURO"), None);
        assert_eq!(Currency::new("E1R"), None);
        assert_eq!(Currency::new("JPY").map(|c| c.minor_digits()), Some(0));
        assert_eq!(Currency::EUR.minor_digits(), 2);
        let parsed: Result<Currency, _> = serde_json::from_str("\"XY\"");
        assert!(parsed.is_err());
    }

    #[test]
    fn money_adds_only_within_one_currency() {
        let eur = Money::new(899, Currency::EUR);
        let usd = Money::new(100, Currency::new("USD").unwrap());
        assert_eq!(eur.plus(eur), Some(Money::new(1798, Currency::EUR)));
        assert_eq!(eur.plus(usd), None);
        assert_eq!(eur.times(3), Some(Money::new(2697, Currency::EUR)));
        assert_eq!(Money::new(u64::MAX, Currency::EUR).times(2), None);
    }
}
