//! The commerce API over HTTP with reqwest (rustls, no OpenSSL).

use std::time::Duration;

use super::api::{Catalog, IDEMPOTENCY_HEADER, OrderRequest, Problem, ShopOrder};
use super::{Commerce, CommerceError};

/// A client of a shop at a base URL such as `http://127.0.0.1:8088`.
#[derive(Debug, Clone)]
pub struct HttpCommerce {
    client: reqwest::Client,
    base: String,
}

/// Installs rustls's ring crypto provider for the process, once. reqwest is built without a
/// provider of its own (ring builds far faster than aws-lc), so every HTTP client in replenish,
/// tests included, calls this before building a `reqwest::Client`.
pub fn ensure_crypto_provider() {
    // Err means a provider is already installed, which is all we need.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl HttpCommerce {
    /// A client with a per-request timeout.
    pub fn new(base_url: &str, timeout: Duration) -> Result<Self, CommerceError> {
        ensure_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("replenish-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CommerceError::Transport(e.to_string()))?;
        Ok(Self {
            client,
            base: base_url.trim_end_matches('/').to_string(),
        })
    }

    async fn read<T: serde::de::DeserializeOwned>(
        response: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<T, CommerceError> {
        let response = response.map_err(|e| CommerceError::Transport(e.to_string()))?;
        let status = response.status();
        if status.is_success() {
            return response
                .json::<T>()
                .await
                .map_err(|e| CommerceError::Decode(e.to_string()));
        }
        let detail = match response.json::<Problem>().await {
            Ok(problem) => problem.detail,
            Err(_) => status.canonical_reason().unwrap_or("no detail").to_string(),
        };
        let status = status.as_u16();
        if status >= 500 || status == 429 || status == 408 {
            Err(CommerceError::Server { status, detail })
        } else {
            Err(CommerceError::Rejected { status, detail })
        }
    }
}

#[async_trait::async_trait]
impl Commerce for HttpCommerce {
    async fn catalog(&self) -> Result<Catalog, CommerceError> {
        Self::read(
            self.client
                .get(format!("{}/v1/catalog", self.base))
                .send()
                .await,
        )
        .await
    }

    async fn place_order(
        &self,
        idempotency_key: &str,
        request: &OrderRequest,
    ) -> Result<ShopOrder, CommerceError> {
        let response = self
            .client
            .post(format!("{}/v1/orders", self.base))
            .header(IDEMPOTENCY_HEADER, idempotency_key)
            .json(request)
            .send()
            .await;
        Self::read(response).await
    }

    async fn order(&self, shop_order_id: &str) -> Result<ShopOrder, CommerceError> {
        Self::read(
            self.client
                .get(format!("{}/v1/orders/{shop_order_id}", self.base))
                .send()
                .await,
        )
        .await
    }
}
