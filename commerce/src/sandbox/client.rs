//! The sandbox shop's HTTP API with reqwest (rustls, no OpenSSL).

use std::time::Duration;

use super::wire::{self, IDEMPOTENCY_HEADER, OrderList, Problem};
use super::{catalog_from_wire, order_from_wire};
use crate::domain::{Catalog, OrderRequest, ShopOrder};
use crate::{CommerceError, Shop};

/// A client of a sandbox shop at a base URL such as `http://127.0.0.1:8088`.
#[derive(Debug, Clone)]
pub struct SandboxShop {
    client: reqwest::Client,
    base: String,
}

impl SandboxShop {
    /// A client with a per-request timeout.
    pub fn new(base_url: &str, timeout: Duration) -> Result<Self, CommerceError> {
        Ok(Self {
            client: crate::http_client(timeout)?,
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
        } else if status == 404 {
            Err(CommerceError::NoSuchOrder(detail))
        } else {
            Err(CommerceError::Rejected { status, detail })
        }
    }
}

#[async_trait::async_trait]
impl Shop for SandboxShop {
    async fn catalog(&self) -> Result<Catalog, CommerceError> {
        let response = self
            .client
            .get(format!("{}/v1/catalog", self.base))
            .send()
            .await;
        Self::read::<wire::Catalog>(response)
            .await
            .map(catalog_from_wire)
    }

    async fn place_order(
        &self,
        idempotency_key: &str,
        request: &OrderRequest,
    ) -> Result<ShopOrder, CommerceError> {
        // The sandbox shop is idempotent by its Idempotency-Key header: a replay returns the
        // order it took the first time.
        let body = wire::OrderRequest {
            household: request.household.clone(),
            reference: request.reference.clone(),
            items: request
                .lines
                .iter()
                .map(|l| wire::OrderLine {
                    sku: l.sku.clone(),
                    quantity: l.quantity,
                })
                .collect(),
            fulfilment: request.fulfilment.clone(),
        };
        let response = self
            .client
            .post(format!("{}/v1/orders", self.base))
            .header(IDEMPOTENCY_HEADER, idempotency_key)
            .json(&body)
            .send()
            .await;
        order_from_wire(Self::read(response).await?)
    }

    async fn order(&self, shop_order_id: &str) -> Result<ShopOrder, CommerceError> {
        let response = self
            .client
            .get(format!("{}/v1/orders/{shop_order_id}", self.base))
            .send()
            .await;
        order_from_wire(Self::read(response).await?)
    }

    async fn find_order(&self, idempotency_key: &str) -> Result<Option<ShopOrder>, CommerceError> {
        let response = self
            .client
            .get(format!("{}/v1/orders", self.base))
            .send()
            .await;
        let list: OrderList = Self::read(response).await?;
        list.orders
            .into_iter()
            .find(|o| o.idempotency_key == idempotency_key)
            .map(order_from_wire)
            .transpose()
    }

    async fn cancel(&self, shop_order_id: &str) -> Result<ShopOrder, CommerceError> {
        // `409` once the order has left the shop: too late, a `Rejected` the household reads.
        let response = self
            .client
            .post(format!("{}/v1/orders/{shop_order_id}/cancel", self.base))
            .send()
            .await;
        order_from_wire(Self::read(response).await?)
    }
}
