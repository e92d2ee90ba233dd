//! replenish-commerce: the contract between the agent and any shop, and its adapters.
//!
//! * [`domain`]: what the engine knows of shops (offers, fulfilment options, orders and their
//!   statuses, money). No wire type of any platform appears there.
//! * [`Shop`]: the calls the agent makes, each adapter implementing them for one platform:
//!   [`sandbox`] (the sandbox shop's HTTP API, which `replenish-sim shop` serves) and
//!   [`vendure`] (Vendure's GraphQL Shop API). [`MemoryShop`] is the in-memory twin for tests.
//!
//! Every adapter keeps one promise: placing an order with an idempotency key the shop has seen
//! before returns that order, never a second one, even after a crash between the calls that
//! build the order.

pub mod domain;
mod memory;
pub mod opening_hours;
pub mod sandbox;
pub mod vendure;

pub use domain::{
    Catalog, Currency, Fulfilment, FulfilmentOption, Money, Offer, OrderLine, OrderRequest,
    OrderStatus, PickupPoint, ShopOrder,
};
pub use memory::MemoryShop;
pub use opening_hours::OpeningHours;

/// Why a call to a shop failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CommerceError {
    /// The shop could not be reached or did not answer in time. Retry with the same key.
    #[error("shop unreachable: {0}")]
    Transport(String),
    /// The shop failed (5xx, 429). Retry with the same key.
    #[error("shop error {status}: {detail}")]
    Server {
        /// HTTP status.
        status: u16,
        /// What the shop said.
        detail: String,
    },
    /// The shop refused the request. Retrying the same request will not help.
    #[error("shop refused the request ({status}): {detail}")]
    Rejected {
        /// HTTP status (0 when the platform answers errors inside a 200, as GraphQL does).
        status: u16,
        /// What the shop said.
        detail: String,
    },
    /// The shop has fewer packs than asked (0: out of stock). Another product or shop may help.
    #[error("{sku}: {available} packs in stock, {wanted} wanted")]
    OutOfStock {
        /// The product.
        sku: String,
        /// Packs the shop can sell.
        available: u32,
        /// Packs asked for.
        wanted: u32,
    },
    /// The shop does not sell this product (any more).
    #[error("the shop does not sell {sku}")]
    UnknownProduct {
        /// The product.
        sku: String,
    },
    /// The shop has no such order.
    #[error("the shop has no order {0}")]
    NoSuchOrder(String),
    /// The shop's platform cannot do this.
    #[error("the shop cannot {0}")]
    Unsupported(&'static str),
    /// The answer did not parse.
    #[error("unexpected answer from the shop: {0}")]
    Decode(String),
}

impl CommerceError {
    /// Whether the same request may succeed later.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            Self::Transport(_) | Self::Server { .. } | Self::Decode(_)
        )
    }
}

/// A shop as the agent uses it. Implementations translate one platform each.
#[async_trait::async_trait]
pub trait Shop: Send + Sync + 'static {
    /// What the shop offers now: products with price and stock, and its fulfilment options.
    async fn catalog(&self) -> Result<Catalog, CommerceError>;

    /// Places an order. The same key always yields the same order: an adapter first looks for
    /// an order the shop already holds under `idempotency_key` (placed or half-built by an
    /// attempt that crashed) and finishes or returns it.
    async fn place_order(
        &self,
        idempotency_key: &str,
        request: &OrderRequest,
    ) -> Result<ShopOrder, CommerceError>;

    /// An order's current state, by the shop's order id.
    async fn order(&self, shop_order_id: &str) -> Result<ShopOrder, CommerceError>;

    /// The order the shop holds under an idempotency key, if any (reconciliation at start-up).
    async fn find_order(&self, idempotency_key: &str) -> Result<Option<ShopOrder>, CommerceError>;

    /// Asks the shop to cancel an order it has not sent yet.
    async fn cancel(&self, shop_order_id: &str) -> Result<ShopOrder, CommerceError>;
}

/// Installs rustls's ring crypto provider for the process, once. reqwest is built without a
/// provider of its own (ring builds far faster than aws-lc), so every HTTP client in replenish,
/// tests included, calls this before building a `reqwest::Client`.
pub fn ensure_crypto_provider() {
    // Err means a provider is already installed, which is all we need.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A reqwest client with a per-request timeout and replenish's user agent.
pub(crate) fn http_client(timeout: std::time::Duration) -> Result<reqwest::Client, CommerceError> {
    ensure_crypto_provider();
    reqwest::Client::builder()
        .timeout(timeout)
        .user_agent(concat!("replenish/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| CommerceError::Transport(e.to_string()))
}
