//! The in-memory twin of a shop, for unit and crate tests (never a stand-in for a real peer).

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use crate::domain::{Catalog, Money, OrderRequest, OrderStatus, ShopOrder};
use crate::{CommerceError, Shop};

/// A shop in memory: idempotent by key, stock taken per order, orders stay `accepted` until
/// [`MemoryShop::set_status`].
#[derive(Debug)]
pub struct MemoryShop {
    catalog: Mutex<Catalog>,
    orders: Mutex<BTreeMap<String, ShopOrder>>,
    /// When set, every call fails with this error.
    failing: Mutex<Option<CommerceError>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test that panicked while holding the lock leaves plain data behind: keep using it.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl MemoryShop {
    /// A shop selling `catalog`.
    pub fn new(catalog: Catalog) -> Self {
        Self {
            catalog: Mutex::new(catalog),
            orders: Mutex::new(BTreeMap::new()),
            failing: Mutex::new(None),
        }
    }

    /// Orders received, by idempotency key.
    pub fn orders_by_key(&self) -> BTreeMap<String, ShopOrder> {
        lock(&self.orders).clone()
    }

    /// Moves an order (by shop id) to `status`.
    pub fn set_status(&self, shop_order_id: &str, status: OrderStatus, at: u64) {
        for order in lock(&self.orders)
            .values_mut()
            .filter(|o| o.id == shop_order_id)
        {
            order.status = status;
            match status {
                OrderStatus::Shipped | OrderStatus::ReadyForPickup => {
                    order.shipped_at_ms = Some(at)
                }
                OrderStatus::Delivered | OrderStatus::Collected => order.delivered_at_ms = Some(at),
                _ => {}
            }
        }
    }

    /// Makes every call fail with `error` (or succeed again with `None`).
    pub fn fail_with(&self, error: Option<CommerceError>) {
        *lock(&self.failing) = error;
    }

    fn check(&self) -> Result<(), CommerceError> {
        match &*lock(&self.failing) {
            Some(error) => Err(error.clone()),
            None => Ok(()),
        }
    }
}

#[async_trait::async_trait]
impl Shop for MemoryShop {
    async fn catalog(&self) -> Result<Catalog, CommerceError> {
        self.check()?;
        Ok(lock(&self.catalog).clone())
    }

    async fn place_order(
        &self,
        idempotency_key: &str,
        request: &OrderRequest,
    ) -> Result<ShopOrder, CommerceError> {
        self.check()?;
        let mut orders = lock(&self.orders);
        if let Some(order) = orders.get(idempotency_key) {
            return Ok(order.clone());
        }
        let mut catalog = lock(&self.catalog);
        let mut total: Option<Money> = None;
        for line in &request.lines {
            let offer = catalog
                .offer(&line.sku)
                .ok_or_else(|| CommerceError::UnknownProduct {
                    sku: line.sku.clone(),
                })?;
            if offer.stock < line.quantity {
                return Err(CommerceError::OutOfStock {
                    sku: line.sku.clone(),
                    available: offer.stock,
                    wanted: line.quantity,
                });
            }
            let price = offer.price.times(u64::from(line.quantity)).ok_or_else(|| {
                CommerceError::Rejected {
                    status: 422,
                    detail: "total overflows".into(),
                }
            })?;
            total = Some(match total {
                None => price,
                Some(sum) => sum.plus(price).ok_or_else(|| CommerceError::Rejected {
                    status: 422,
                    detail: "one order, one currency".into(),
                })?,
            });
        }
        for line in &request.lines {
            for offer in catalog.offers.iter_mut().filter(|o| o.sku == line.sku) {
                offer.stock -= line.quantity.min(offer.stock);
            }
        }
        let fulfilment = request
            .fulfilment
            .as_ref()
            .and_then(|id| catalog.fulfilment.iter().find(|f| &f.id == id).cloned());
        let order = ShopOrder {
            id: format!("mem-{}", orders.len() + 1),
            idempotency_key: idempotency_key.to_string(),
            reference: request.reference.clone(),
            status: OrderStatus::Accepted,
            lines: request.lines.clone(),
            total: total.unwrap_or(Money::new(0, crate::Currency::EUR)),
            created_at_ms: 0,
            estimated_arrival_ms: None,
            shipped_at_ms: None,
            delivered_at_ms: None,
            fulfilment,
        };
        orders.insert(idempotency_key.to_string(), order.clone());
        Ok(order)
    }

    async fn order(&self, shop_order_id: &str) -> Result<ShopOrder, CommerceError> {
        self.check()?;
        lock(&self.orders)
            .values()
            .find(|o| o.id == shop_order_id)
            .cloned()
            .ok_or_else(|| CommerceError::NoSuchOrder(shop_order_id.to_string()))
    }

    async fn find_order(&self, idempotency_key: &str) -> Result<Option<ShopOrder>, CommerceError> {
        self.check()?;
        Ok(lock(&self.orders).get(idempotency_key).cloned())
    }

    async fn cancel(&self, shop_order_id: &str) -> Result<ShopOrder, CommerceError> {
        self.check()?;
        let mut orders = lock(&self.orders);
        let order = orders
            .values_mut()
            .find(|o| o.id == shop_order_id)
            .ok_or_else(|| CommerceError::NoSuchOrder(shop_order_id.to_string()))?;
        if !matches!(order.status, OrderStatus::Accepted | OrderStatus::Paid) {
            return Err(CommerceError::Rejected {
                status: 409,
                detail: format!("order {shop_order_id} is already {:?}", order.status),
            });
        }
        order.status = OrderStatus::CancelledByShop;
        Ok(order.clone())
    }
}
