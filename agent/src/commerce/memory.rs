//! The in-memory twin of the shop, for the agent's own tests.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::api::{Catalog, OrderRequest, ShopOrder, ShopOrderStatus};
use super::{Commerce, CommerceError};

/// A shop in memory: idempotent by key, orders stay `placed` until [`MemoryCommerce::set_status`].
#[derive(Debug)]
pub struct MemoryCommerce {
    catalog: Catalog,
    orders: Mutex<BTreeMap<String, ShopOrder>>,
    /// When set, every call fails with this error.
    failing: Mutex<Option<CommerceError>>,
}

impl MemoryCommerce {
    /// A shop selling `catalog`.
    pub fn new(catalog: Catalog) -> Self {
        Self {
            catalog,
            orders: Mutex::new(BTreeMap::new()),
            failing: Mutex::new(None),
        }
    }

    fn orders(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, ShopOrder>> {
        self.orders.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Orders received, by idempotency key.
    pub fn orders_by_key(&self) -> BTreeMap<String, ShopOrder> {
        self.orders().clone()
    }

    /// Moves an order (by shop id) to `status`.
    pub fn set_status(&self, shop_order_id: &str, status: ShopOrderStatus, at: u64) {
        for order in self.orders().values_mut().filter(|o| o.id == shop_order_id) {
            order.status = status;
            if status == ShopOrderStatus::Delivered {
                order.delivered_at_ms = Some(at);
            }
        }
    }

    /// Makes every call fail with `error` (or succeed again with `None`).
    pub fn fail_with(&self, error: Option<CommerceError>) {
        *self.failing.lock().unwrap_or_else(|e| e.into_inner()) = error;
    }

    fn check(&self) -> Result<(), CommerceError> {
        match &*self.failing.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(error) => Err(error.clone()),
            None => Ok(()),
        }
    }
}

#[async_trait::async_trait]
impl Commerce for MemoryCommerce {
    async fn catalog(&self) -> Result<Catalog, CommerceError> {
        self.check()?;
        Ok(self.catalog.clone())
    }

    async fn place_order(
        &self,
        idempotency_key: &str,
        request: &OrderRequest,
    ) -> Result<ShopOrder, CommerceError> {
        self.check()?;
        let mut orders = self.orders();
        let next = orders.len() + 1;
        let order = orders
            .entry(idempotency_key.to_string())
            .or_insert_with(|| ShopOrder {
                id: format!("mem-{next}"),
                idempotency_key: idempotency_key.to_string(),
                reference: request.reference.clone(),
                household: request.household.clone(),
                status: ShopOrderStatus::Placed,
                items: request.items.clone(),
                total_cents: 0,
                currency: "EUR".into(),
                created_at_ms: 0,
                estimated_delivery_at_ms: 0,
                shipped_at_ms: None,
                delivered_at_ms: None,
            });
        Ok(order.clone())
    }

    async fn order(&self, shop_order_id: &str) -> Result<ShopOrder, CommerceError> {
        self.check()?;
        self.orders()
            .values()
            .find(|o| o.id == shop_order_id)
            .cloned()
            .ok_or_else(|| CommerceError::Rejected {
                status: 404,
                detail: "no such order".into(),
            })
    }
}
