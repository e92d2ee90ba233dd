//! Talking to the shop: the [`Commerce`] trait, its HTTP client and an in-memory twin.

pub mod api;
mod http;
mod memory;

pub use http::{HttpCommerce, ensure_crypto_provider};
pub use memory::MemoryCommerce;

use api::{Catalog, OrderRequest, ShopOrder};

/// Why a call to the shop failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CommerceError {
    /// The shop could not be reached or did not answer in time. Retry with the same key.
    #[error("shop unreachable: {0}")]
    Transport(String),
    /// The shop failed (5xx). Retry with the same key.
    #[error("shop error {status}: {detail}")]
    Server {
        /// HTTP status.
        status: u16,
        /// The problem's detail.
        detail: String,
    },
    /// The shop refused the request (4xx). Retrying the same request will not help.
    #[error("shop refused the request ({status}): {detail}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// The problem's detail.
        detail: String,
    },
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

/// The commerce API as the agent uses it.
#[async_trait::async_trait]
pub trait Commerce: Send + Sync + 'static {
    /// The catalog.
    async fn catalog(&self) -> Result<Catalog, CommerceError>;
    /// Places an order; the same key always yields the same shop order.
    async fn place_order(
        &self,
        idempotency_key: &str,
        request: &OrderRequest,
    ) -> Result<ShopOrder, CommerceError>;
    /// An order's current state.
    async fn order(&self, shop_order_id: &str) -> Result<ShopOrder, CommerceError>;
}
