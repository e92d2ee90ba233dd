//! The sandbox shop: an in-process HTTP server speaking the commerce API
//! (`docs/commerce-api.md`, `docs/commerce-api.openapi.json`), for the demo, the end-to-end
//! tests and developers.
//!
//! * Time comes only from the injected [`Clock`], so the simulator can run the shop on
//!   accelerated virtual time. An order's status is derived from the clock whenever it is read
//!   (placed → shipped at half the lead time → delivered at the lead time); nothing runs in the
//!   background.
//! * Order ids are sequential (`so-000001`, `so-000002`, …) so simulator runs are reproducible.
//! * `Idempotency-Key` makes ordering exactly-once: the first request with a key creates the
//!   order, a retry with the same key and body gets the same order back, a different body is
//!   refused with `409`.
//! * [`SandboxShop::hold_order_responses`] is a fault hook for crash tests: the shop records
//!   orders but withholds the responses, and [`SandboxShop::wait_for_orders`] tells a test, without
//!   sleeping, that the order exists at the shop, so it can kill the client mid-request.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use replenish_agent::clock::{Clock, DAY_MS, UnixMs};
use replenish_commerce::sandbox::wire::{
    Catalog, CatalogItem, FulfilmentOption, IDEMPOTENCY_HEADER, OrderLine, OrderList, OrderRequest,
    PickupPoint, Problem, ShopOrder, ShopOrderStatus,
};
use replenish_protocol::Unit;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use utoipa::OpenApi;

use crate::opening_hours::collection;
use crate::shop_faults::{Call, FaultKind, Faults};
use replenish_commerce::OpeningHours;

/// The media type of every error body ([RFC 9457](https://www.rfc-editor.org/rfc/rfc9457)).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The longest `Idempotency-Key` the shop accepts, in bytes (the header is ASCII).
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 200;

/// The problem types (`Problem::kind`) the shop answers with.
///
/// Errors without a more specific type (an unknown path, a wrong method, a body that is too
/// large, the shop shutting down) use `about:blank` with the HTTP reason phrase as title.
pub mod problem_type {
    /// `400`: the `Idempotency-Key` header is missing, empty, repeated, not visible ASCII or
    /// longer than [`MAX_IDEMPOTENCY_KEY_LEN`](super::MAX_IDEMPOTENCY_KEY_LEN).
    pub const INVALID_IDEMPOTENCY_KEY: &str = "urn:replenish:problem:invalid-idempotency-key";
    /// `400`: the body is not a JSON `OrderRequest`.
    pub const MALFORMED_REQUEST: &str = "urn:replenish:problem:malformed-request";
    /// `409`: the idempotency key was used before with a different request.
    pub const IDEMPOTENCY_CONFLICT: &str = "urn:replenish:problem:idempotency-conflict";
    /// `422`: an order line names a SKU the catalog does not have.
    pub const UNKNOWN_SKU: &str = "urn:replenish:problem:unknown-sku";
    /// `422`: the order has no lines, a zero quantity, mixed currencies or an absurd total.
    pub const INVALID_ORDER: &str = "urn:replenish:problem:invalid-order";
    /// `422`: the shop does not have enough packs of a SKU.
    pub const INSUFFICIENT_STOCK: &str = "urn:replenish:problem:insufficient-stock";
    /// `404`: no order has the requested id.
    pub const ORDER_NOT_FOUND: &str = "urn:replenish:problem:order-not-found";
    /// `409`: the order has left the shop (shipped, ready for pickup, delivered): too late to
    /// cancel.
    pub const TOO_LATE_TO_CANCEL: &str = "urn:replenish:problem:too-late-to-cancel";
    /// Generic HTTP errors; the title is the reason phrase.
    pub const ABOUT_BLANK: &str = "about:blank";
}

/// How the sandbox shop behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct ShopConfig {
    /// From order to delivery. An order ships at half of it and is delivered when it has passed.
    pub lead_time_ms: UnixMs,
    /// What the shop sells, with the initial stock. The first item wins if SKUs repeat.
    pub catalog: Vec<CatalogItem>,
    /// The ways it fulfils orders (empty: it delivers in `lead_time_ms`, free). A delivery
    /// option arrives in its `lead_days_max`; a pickup is ready after `lead_days_min` (at
    /// least 4 hours) and collected when the household passes by, both within the point's
    /// opening hours when the shop can read them ([`OpeningHours`]; else a day later).
    pub fulfilment: Vec<FulfilmentOption>,
}

impl Default for ShopConfig {
    /// Two days' lead time and the demo household's catalog (see [`default_catalog`]).
    fn default() -> Self {
        Self {
            lead_time_ms: 2 * DAY_MS,
            catalog: default_catalog(),
            fulfilment: Vec::new(),
        }
    }
}

/// A 1 kg bag of coffee beans at 16.49 EUR, `stock` of them: the alternative when the usual
/// 500 g bag is out.
pub fn beans_1kg(stock: u32) -> CatalogItem {
    CatalogItem {
        sku: "coffee-beans-1kg".into(),
        name: "Coffee beans, 1 kg".into(),
        consumable: "coffee_beans".into(),
        pack_size: 1000.0,
        unit: Unit::G,
        price_cents: 1649,
        currency: "EUR".into(),
        stock,
    }
}

/// Home delivery in one or two days for 4.95 EUR (`home-delivery`), or free click and collect
/// the same day at the shop `name` at `address` (`click-and-collect`).
pub fn delivery_or_pickup(name: &str, address: &str) -> Vec<FulfilmentOption> {
    vec![
        FulfilmentOption {
            id: "home-delivery".into(),
            name: "Home delivery".into(),
            pickup: None,
            price_cents: 495,
            lead_days_min: 1,
            lead_days_max: 2,
        },
        FulfilmentOption {
            id: "click-and-collect".into(),
            name: "Click and collect".into(),
            pickup: Some(PickupPoint {
                name: name.into(),
                address: address.into(),
                opening_hours: "Mon–Sat 08:00–20:00".into(),
            }),
            price_cents: 0,
            lead_days_min: 0,
            lead_days_max: 0,
        },
    ]
}

/// The demo household's catalog: coffee beans, milk, eggs, descaler and dishwasher tablets,
/// priced in EUR cents, 1000 packs of each in stock.
pub fn default_catalog() -> Vec<CatalogItem> {
    use Unit::{Count, G, Ml};
    // (sku, name, consumable, pack size, unit, price in cents)
    #[rustfmt::skip]
    let products: [(&str, &str, &str, f64, Unit, u64); 5] = [
        ("coffee-beans-500g",  "Coffee beans, 500 g",    "coffee_beans",       500.0,  G,     899),
        ("milk-whole-1l",      "Whole milk, 1 l",        "milk",               1000.0, Ml,    129),
        ("eggs-6",             "Eggs, pack of 6",        "eggs",               6.0,    Count, 249),
        ("descaler-tabs-6",    "Descaler tablets, 6",    "descaler",           6.0,    Count, 799),
        ("dishwasher-tabs-40", "Dishwasher tablets, 40", "dishwasher_tablets", 40.0,   Count, 1099),
    ];
    products
        .into_iter()
        .map(
            |(sku, name, consumable, pack_size, unit, price_cents)| CatalogItem {
                sku: sku.to_owned(),
                name: name.to_owned(),
                consumable: consumable.to_owned(),
                pack_size,
                unit,
                price_cents,
                currency: "EUR".to_owned(),
                stock: 1000,
            },
        )
        .collect()
}

/// The sandbox shop: a cheap, cloneable handle over shared state. Serve it with
/// [`SandboxShop::spawn`] (or mount [`SandboxShop::router`]) and inspect it directly.
#[derive(Clone)]
pub struct SandboxShop {
    shared: Arc<Shared>,
}

struct Shared {
    clock: Arc<dyn Clock>,
    lead_time_ms: UnixMs,
    fulfilment: Vec<FulfilmentOption>,
    ledger: Mutex<Ledger>,
    /// `true` while order responses are withheld.
    hold: watch::Sender<bool>,
    /// Orders recorded so far.
    recorded: watch::Sender<usize>,
    /// `POST /v1/orders` requests received so far, valid or not.
    received: watch::Sender<usize>,
    /// Faults to inject, if any ([`crate::shop_faults`]).
    faults: Mutex<Option<Faults>>,
}

/// Everything that changes, behind one lock.
struct Ledger {
    catalog: Vec<CatalogItem>,
    /// Oldest first; order `so-N` is at index `N - 1`.
    orders: Vec<OrderRecord>,
    by_key: HashMap<String, usize>,
    by_id: HashMap<String, usize>,
}

struct OrderRecord {
    /// The request as first received, to tell a retry from a conflicting reuse of its key.
    request: OrderRequest,
    /// The order as created (status `placed`); the current status is derived when read.
    order: ShopOrder,
}

/// What a successful `POST /v1/orders` did.
enum Placed {
    Created(ShopOrder),
    Replayed(ShopOrder),
}

impl fmt::Debug for SandboxShop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SandboxShop")
            .field("lead_time_ms", &self.shared.lead_time_ms)
            .field("orders", &self.order_count())
            .field("holding", &*self.shared.hold.borrow())
            .finish_non_exhaustive()
    }
}

impl SandboxShop {
    /// A shop with `config`, reading time only from `clock`.
    pub fn new(config: ShopConfig, clock: Arc<dyn Clock>) -> Self {
        let ShopConfig {
            lead_time_ms,
            catalog,
            fulfilment,
        } = config;
        Self {
            shared: Arc::new(Shared {
                clock,
                lead_time_ms,
                fulfilment,
                ledger: Mutex::new(Ledger {
                    catalog,
                    orders: Vec::new(),
                    by_key: HashMap::new(),
                    by_id: HashMap::new(),
                }),
                hold: watch::Sender::new(false),
                recorded: watch::Sender::new(0),
                received: watch::Sender::new(0),
                faults: Mutex::new(None),
            }),
        }
    }

    /// The commerce API as an axum router, for mounting in another server. Held order responses
    /// (see [`SandboxShop::hold_order_responses`]) wait for the release only; prefer
    /// [`SandboxShop::spawn`], whose shutdown also ends them.
    pub fn router(&self) -> Router {
        self.router_with(None)
    }

    /// Serves the commerce API on `listener` in a background task until the returned
    /// [`ShopServer`] is shut down or dropped.
    pub async fn spawn(&self, listener: tokio::net::TcpListener) -> io::Result<ShopServer> {
        let addr = listener.local_addr()?;
        let (closing, mut on_close) = watch::channel(false);
        let router = self.router_with(Some(closing.subscribe()));
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    // An error means the `ShopServer` is gone: shut down as well.
                    let _ = on_close.wait_for(|closing| *closing).await;
                })
                .await
        });
        tracing::info!(%addr, "sandbox shop listening");
        Ok(ShopServer {
            addr,
            closing,
            task: Some(task),
        })
    }

    /// Every order, oldest first, with its status as of the clock's now.
    pub fn orders(&self) -> Vec<ShopOrder> {
        let now = self.shared.clock.now_ms();
        self.ledger()
            .orders
            .iter()
            .map(|record| status_at(&record.order, self.pickup_hours(&record.order), now))
            .collect()
    }

    /// One order by id, with its status as of the clock's now.
    pub fn order(&self, id: &str) -> Option<ShopOrder> {
        let now = self.shared.clock.now_ms();
        let ledger = self.ledger();
        let index = *ledger.by_id.get(id)?;
        ledger
            .orders
            .get(index)
            .map(|record| status_at(&record.order, self.pickup_hours(&record.order), now))
    }

    /// How many orders the shop has recorded.
    pub fn order_count(&self) -> usize {
        self.ledger().orders.len()
    }

    /// The catalog with the current stock.
    pub fn catalog(&self) -> Catalog {
        Catalog {
            items: self.ledger().catalog.clone(),
            fulfilment: self.shared.fulfilment.clone(),
        }
    }

    /// For an order collected at a pickup point, the point's hours; `None` for a delivery.
    fn pickup_hours(&self, order: &ShopOrder) -> Option<PickupHours> {
        let id = order.fulfilment.as_ref()?;
        let point = self
            .shared
            .fulfilment
            .iter()
            .find(|f| &f.id == id)?
            .pickup
            .as_ref()?;
        Some(PickupHours::of(point))
    }

    /// How many `POST /v1/orders` requests have arrived, including replays and rejected ones.
    pub fn order_request_count(&self) -> usize {
        *self.shared.received.borrow()
    }

    /// From order to delivery, when no fulfilment option says otherwise.
    pub fn lead_time_ms(&self) -> UnixMs {
        self.shared.lead_time_ms
    }

    /// Injects `faults` from now on (`None`: no more).
    pub fn set_faults(&self, faults: Option<Faults>) {
        *self
            .shared
            .faults
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = faults;
    }

    /// Faults injected so far, by kind.
    pub fn injected_faults(&self) -> std::collections::BTreeMap<&'static str, u64> {
        self.shared
            .faults
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .as_ref()
            .map(Faults::injected)
            .unwrap_or_default()
    }

    /// The fault for this call, if faults are on (and the delay of a slow answer).
    fn draw_fault(&self, call: Call) -> (Option<FaultKind>, u64) {
        let mut faults = self
            .shared
            .faults
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match faults.as_mut() {
            Some(faults) => (faults.draw(call), faults.slow_ms()),
            None => (None, 0),
        }
    }

    /// Whether an order was taken under this idempotency key.
    fn knows_key(&self, key: &str) -> bool {
        self.ledger().by_key.contains_key(key)
    }

    /// The customer cancels an order: only while the shop has not sent it (`Ok(None)`: no
    /// such order; `Err`: too late, the order's status). Cancelling twice is no error.
    pub fn cancel_for_customer(&self, id: &str) -> Result<Option<ShopOrder>, ShopOrderStatus> {
        let Some(current) = self.order(id) else {
            return Ok(None);
        };
        match current.status {
            ShopOrderStatus::Placed => {
                self.cancel_order(id);
                Ok(self.order(id))
            }
            ShopOrderStatus::Cancelled => Ok(Some(current)),
            status => Err(status),
        }
    }

    /// The shop cancels an order (a fault, or a test).
    pub fn cancel_order(&self, id: &str) {
        let mut ledger = self.ledger();
        if let Some(&index) = ledger.by_id.get(id)
            && let Some(record) = ledger.orders.get_mut(index)
        {
            record.order.status = ShopOrderStatus::Cancelled;
            tracing::info!(order_id = id, "order cancelled by the shop");
        }
    }

    /// Fault hook for crash tests. While `hold` is `true`, `POST /v1/orders` is processed as
    /// usual (an order is created and exists at the shop) but its response is withheld until
    /// `hold_order_responses(false)`; then the withheld responses go out as they would have.
    /// Shutting the [`ShopServer`] down answers withheld requests with `503`.
    pub fn hold_order_responses(&self, hold: bool) {
        self.shared.hold.send_replace(hold);
        if hold {
            tracing::info!("sandbox shop withholds order responses");
        } else {
            tracing::info!("sandbox shop releases order responses");
        }
    }

    /// Resolves once the shop has recorded at least `n` orders; pair it with
    /// [`SandboxShop::hold_order_responses`] to act while a request is in flight.
    pub async fn wait_for_orders(&self, n: usize) {
        let mut recorded = self.shared.recorded.subscribe();
        // The sender lives in `self.shared`, so the channel cannot close while we wait.
        let _ = recorded.wait_for(|count| *count >= n).await;
    }

    /// Resolves once at least `n` `POST /v1/orders` requests have arrived and been processed
    /// (whatever the outcome, and before any held response is released), e.g. to see that a
    /// restarted client has retried.
    pub async fn wait_for_order_requests(&self, n: usize) {
        let mut received = self.shared.received.subscribe();
        let _ = received.wait_for(|count| *count >= n).await;
    }

    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        // Every critical section leaves the ledger consistent, so a poisoned lock is still good.
        self.shared
            .ledger
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn router_with(&self, closing: Option<watch::Receiver<bool>>) -> Router {
        Router::new()
            .route("/v1/catalog", get(get_catalog))
            .route("/v1/orders", get(list_orders).post(create_order))
            .route("/v1/orders/{id}", get(get_order))
            .route("/v1/orders/{id}/cancel", post(cancel_order))
            .route("/openapi.json", get(get_openapi))
            .layer(axum::middleware::map_response(problem_for_bare_errors))
            .with_state(AppState {
                shop: self.clone(),
                closing,
            })
    }

    /// Creates the order for `key`, or finds the one created with it before.
    /// `substitute`: the shop sends another product of the same consumable for the first line,
    /// if it has one in stock (a fault).
    fn place(
        &self,
        key: &str,
        request: OrderRequest,
        substitute: bool,
    ) -> Result<Placed, ApiError> {
        let mut ledger = self.ledger();
        let now = self.shared.clock.now_ms();

        if let Some(&index) = ledger.by_key.get(key) {
            let Some(record) = ledger.orders.get(index) else {
                return Err(internal("the idempotency index points at no order"));
            };
            if record.request != request {
                tracing::warn!(
                    idempotency_key = key,
                    order_id = %record.order.id,
                    "idempotency key reused with a different request"
                );
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    problem_type::IDEMPOTENCY_CONFLICT,
                    "Idempotency key reused",
                    format!(
                        "idempotency key {key:?} was already used for order {} with a different \
                         request",
                        record.order.id
                    ),
                ));
            }
            tracing::debug!(
                idempotency_key = key,
                order_id = %record.order.id,
                "order request replayed"
            );
            let pickup = self.pickup_hours(&record.order);
            return Ok(Placed::Replayed(status_at(&record.order, pickup, now)));
        }

        let option = match &request.fulfilment {
            None => self.shared.fulfilment.first(),
            Some(id) => Some(
                self.shared
                    .fulfilment
                    .iter()
                    .find(|f| &f.id == id)
                    .ok_or_else(|| {
                        ApiError::new(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            problem_type::UNKNOWN_SKU,
                            "Unknown fulfilment option",
                            format!("the shop has no fulfilment option {id:?}"),
                        )
                    })?,
            ),
        };
        let items = if substitute {
            substituted(&ledger.catalog, &request.items)
        } else {
            request.items.clone()
        };
        let sent = OrderRequest {
            items: items.clone(),
            ..request.clone()
        };
        let priced = price(&ledger.catalog, &sent)?;
        let arrives_at = match option {
            None => now.saturating_add(self.shared.lead_time_ms),
            Some(f) if let Some(point) = &f.pickup => {
                let prepared =
                    now.saturating_add((u64::from(f.lead_days_min) * DAY_MS).max(4 * 3_600_000));
                PickupHours::of(point).at_or_after(prepared)
            }
            Some(f) => now.saturating_add(u64::from(f.lead_days_max.max(1)) * DAY_MS),
        };
        let fee = option.map_or(0, |f| f.price_cents);
        for (index, quantity) in &priced.take {
            if let Some(item) = ledger.catalog.get_mut(*index) {
                item.stock = item.stock.saturating_sub(*quantity);
            }
        }
        let number = ledger.orders.len() + 1;
        let order = ShopOrder {
            id: format!("so-{number:06}"),
            idempotency_key: key.to_owned(),
            reference: request.reference.clone(),
            household: request.household.clone(),
            status: ShopOrderStatus::Placed,
            items,
            total_cents: priced.total_cents.saturating_add(fee),
            currency: priced.currency,
            created_at_ms: now,
            estimated_delivery_at_ms: arrives_at,
            shipped_at_ms: None,
            delivered_at_ms: None,
            fulfilment: option.map(|f| f.id.clone()),
        };
        let index = ledger.orders.len();
        ledger.by_key.insert(key.to_owned(), index);
        ledger.by_id.insert(order.id.clone(), index);
        ledger.orders.push(OrderRecord {
            request,
            order: order.clone(),
        });
        self.shared.recorded.send_replace(ledger.orders.len());
        drop(ledger);

        tracing::info!(
            order_id = %order.id,
            idempotency_key = key,
            household = %order.household,
            reference = %order.reference,
            total_cents = order.total_cents,
            currency = %order.currency,
            "order created"
        );
        let pickup = self.pickup_hours(&order);
        Ok(Placed::Created(status_at(&order, pickup, now)))
    }

    /// Waits while order responses are held. `false` if the server began shutting down first.
    async fn released(&self, closing: Option<watch::Receiver<bool>>) -> bool {
        let mut hold = self.shared.hold.subscribe();
        let released = hold.wait_for(|held| !*held);
        match closing {
            None => {
                let _ = released.await;
                true
            }
            Some(mut closing) => {
                tokio::select! {
                    _ = released => true,
                    _ = closing.wait_for(|closing| *closing) => false,
                }
            }
        }
    }
}

/// The price of an accepted request and the stock it takes.
struct Priced {
    total_cents: u64,
    currency: String,
    /// `(catalog index, packs)`, one entry per SKU.
    take: Vec<(usize, u32)>,
}

/// Checks `request` against the catalog: known SKUs, positive quantities, stock, one currency.
fn price(catalog: &[CatalogItem], request: &OrderRequest) -> Result<Priced, ApiError> {
    if request.items.is_empty() {
        return Err(invalid_order("an order needs at least one item"));
    }
    // (catalog index, item, packs), one entry per SKU.
    let mut take: Vec<(usize, &CatalogItem, u32)> = Vec::new();
    let mut total_cents: u64 = 0;
    let mut currency: Option<&str> = None;
    for line in &request.items {
        if line.quantity == 0 {
            return Err(invalid_order(format!(
                "the quantity of {:?} must be at least 1",
                line.sku
            )));
        }
        let Some((index, item)) = catalog
            .iter()
            .enumerate()
            .find(|(_, item)| item.sku == line.sku)
        else {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                problem_type::UNKNOWN_SKU,
                "Unknown SKU",
                format!("the catalog has no SKU {:?}", line.sku),
            ));
        };
        match currency {
            None => currency = Some(&item.currency),
            Some(first) if first != item.currency => {
                return Err(invalid_order(format!(
                    "an order is paid in one currency; {:?} is priced in {}, not {first}",
                    item.sku, item.currency
                )));
            }
            Some(_) => {}
        }
        total_cents = u64::from(line.quantity)
            .checked_mul(item.price_cents)
            .and_then(|line_total| total_cents.checked_add(line_total))
            .ok_or_else(|| invalid_order("the order total is too large"))?;
        match take.iter_mut().find(|(taken, _, _)| *taken == index) {
            Some((_, _, quantity)) => {
                *quantity = quantity
                    .checked_add(line.quantity)
                    .ok_or_else(|| invalid_order("the quantity is too large"))?;
            }
            None => take.push((index, item, line.quantity)),
        }
    }
    if let Some((_, item, quantity)) = take
        .iter()
        .find(|(_, item, quantity)| item.stock < *quantity)
    {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            problem_type::INSUFFICIENT_STOCK,
            "Insufficient stock",
            format!(
                "{quantity} packs of {:?} ordered, {} in stock",
                item.sku, item.stock
            ),
        ));
    }
    Ok(Priced {
        total_cents,
        currency: currency.unwrap_or_default().to_owned(),
        take: take
            .into_iter()
            .map(|(index, _, quantity)| (index, quantity))
            .collect(),
    })
}

/// `order` as it stands at `now`: it ships at half its lead time and arrives at the estimate.
/// `items` with the first line's product replaced by another in stock of the same consumable
/// and unit (as much of it, rounded up to whole packs); unchanged when there is none.
fn substituted(catalog: &[CatalogItem], items: &[OrderLine]) -> Vec<OrderLine> {
    let mut items = items.to_vec();
    let Some(first) = items.first_mut() else {
        return items;
    };
    let Some(wanted) = catalog.iter().find(|i| i.sku == first.sku) else {
        return items;
    };
    if let Some(other) = catalog.iter().find(|i| {
        i.sku != wanted.sku
            && i.consumable == wanted.consumable
            && i.unit == wanted.unit
            && i.pack_size > 0.0
            && i.stock > 0
    }) {
        let amount = wanted.pack_size * f64::from(first.quantity);
        first.quantity = ((amount / other.pack_size).ceil() as u32).max(1);
        first.sku = other.sku.clone();
    }
    items
}

/// A pickup point's opening hours, when the shop can read them (else always open).
#[derive(Debug, Clone, Copy)]
struct PickupHours(Option<OpeningHours>);

impl PickupHours {
    /// The hours `point` states, if the shop can read them.
    fn of(point: &PickupPoint) -> Self {
        Self(OpeningHours::parse(&point.opening_hours))
    }

    /// `t`, or when the point next opens.
    fn at_or_after(self, t: UnixMs) -> UnixMs {
        self.0.map_or(t, |hours| hours.next_open(t))
    }

    /// When the household collects an order ready at `ready`: on its way home
    /// ([`collection`]); a day later where the hours cannot be read.
    fn collected(self, ready: UnixMs) -> UnixMs {
        self.0.map_or(ready.saturating_add(DAY_MS), |hours| {
            collection(&hours, ready)
        })
    }
}

/// A pickup order is ready at its estimate (when the point is open) and collected when the
/// household passes by ([`PickupHours::collected`]).
fn status_at(order: &ShopOrder, pickup: Option<PickupHours>, now: UnixMs) -> ShopOrder {
    let mut order = order.clone();
    if order.status == ShopOrderStatus::Cancelled {
        return order;
    }
    if let Some(hours) = pickup {
        let ready_at = order.estimated_delivery_at_ms;
        let collected_at = hours.collected(ready_at);
        (order.status, order.shipped_at_ms, order.delivered_at_ms) = if now >= collected_at {
            (
                ShopOrderStatus::Collected,
                Some(ready_at),
                Some(collected_at),
            )
        } else if now >= ready_at {
            (ShopOrderStatus::ReadyForPickup, Some(ready_at), None)
        } else {
            (ShopOrderStatus::Placed, None, None)
        };
        return order;
    }
    let lead = order
        .estimated_delivery_at_ms
        .saturating_sub(order.created_at_ms);
    let shipped_at = order.created_at_ms.saturating_add(lead / 2);
    let delivered_at = order.estimated_delivery_at_ms;
    let (status, shipped, delivered) = if now >= delivered_at {
        (
            ShopOrderStatus::Delivered,
            Some(shipped_at),
            Some(delivered_at),
        )
    } else if now >= shipped_at {
        (ShopOrderStatus::Shipped, Some(shipped_at), None)
    } else {
        (ShopOrderStatus::Placed, None, None)
    };
    order.status = status;
    order.shipped_at_ms = shipped;
    order.delivered_at_ms = delivered;
    order
}

/// The idempotency key of a request: exactly one `Idempotency-Key` header, visible ASCII,
/// 1..=[`MAX_IDEMPOTENCY_KEY_LEN`] bytes.
fn idempotency_key(headers: &HeaderMap) -> Result<String, ApiError> {
    let bad_key = |detail: String| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            problem_type::INVALID_IDEMPOTENCY_KEY,
            "Invalid idempotency key",
            detail,
        )
    };
    let mut values = headers.get_all(IDEMPOTENCY_HEADER).iter();
    let Some(value) = values.next() else {
        return Err(bad_key(format!(
            "the {IDEMPOTENCY_HEADER} header is required to place an order"
        )));
    };
    if values.next().is_some() {
        return Err(bad_key(format!(
            "send exactly one {IDEMPOTENCY_HEADER} header"
        )));
    }
    let key = value
        .to_str()
        .map_err(|_| bad_key(format!("the {IDEMPOTENCY_HEADER} must be visible ASCII")))?;
    if key.trim().is_empty() {
        return Err(bad_key(format!("the {IDEMPOTENCY_HEADER} is empty")));
    }
    if key.len() > MAX_IDEMPOTENCY_KEY_LEN {
        return Err(bad_key(format!(
            "the {IDEMPOTENCY_HEADER} is {} characters long, at most {MAX_IDEMPOTENCY_KEY_LEN} \
             are allowed",
            key.len()
        )));
    }
    Ok(key.to_owned())
}

/// An error response: a [`Problem`] served as `application/problem+json`.
#[derive(Debug)]
struct ApiError(Problem);

impl ApiError {
    fn new(status: StatusCode, kind: &str, title: &str, detail: impl Into<String>) -> Self {
        Self(Problem {
            kind: kind.to_owned(),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
        })
    }

    /// An `about:blank` problem titled with the reason phrase of `status`.
    fn blank(status: StatusCode, detail: impl Into<String>) -> Self {
        Self::new(
            status,
            problem_type::ABOUT_BLANK,
            status.canonical_reason().unwrap_or("Error"),
            detail,
        )
    }
}

fn invalid_order(detail: impl Into<String>) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        problem_type::INVALID_ORDER,
        "Invalid order",
        detail,
    )
}

fn internal(detail: &str) -> ApiError {
    tracing::error!(detail, "sandbox shop invariant broken");
    ApiError::blank(StatusCode::INTERNAL_SERVER_ERROR, detail)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (
            status,
            [(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON))],
            Json(self.0),
        )
            .into_response()
    }
}

/// Turns error responses produced outside the handlers (unknown path, wrong method, …) into
/// problem documents, keeping their status and headers (`Allow` on a `405`).
async fn problem_for_bare_errors(response: Response) -> Response {
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let detail = match text.trim() {
        "" if status == StatusCode::NOT_FOUND => "no such resource".to_owned(),
        "" if status == StatusCode::METHOD_NOT_ALLOWED => {
            "this resource does not support the method; see the Allow header".to_owned()
        }
        "" => status.canonical_reason().unwrap_or("error").to_owned(),
        text => text.to_owned(),
    };
    let problem = ApiError::blank(status, detail).into_response();
    let (problem_parts, problem_body) = problem.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    for (name, value) in &problem_parts.headers {
        parts.headers.insert(name, value.clone());
    }
    Response::from_parts(parts, problem_body)
}

#[derive(Clone)]
struct AppState {
    shop: SandboxShop,
    /// The serving [`ShopServer`]'s shutdown signal, `None` for a bare [`SandboxShop::router`].
    closing: Option<watch::Receiver<bool>>,
}

/// The catalog
///
/// Every product on offer, with the current stock.
#[utoipa::path(
    get,
    path = "/v1/catalog",
    tag = "catalog",
    operation_id = "getCatalog",
    responses(
        (status = 200, description = "The catalog.", body = Catalog),
    )
)]
async fn get_catalog(State(app): State<AppState>) -> Json<Catalog> {
    Json(app.shop.catalog())
}

/// Place an order
///
/// Exactly once per `Idempotency-Key`: the first request with a key creates the order (`201`);
/// the same key with the same body returns that order again (`200`, its status as of now) and
/// creates nothing; the same key with a different body is refused (`409`). A request rejected
/// with `400` or `422` does not bind its key. Stock is taken when the order is created.
#[utoipa::path(
    post,
    path = "/v1/orders",
    tag = "orders",
    operation_id = "createOrder",
    params(
        ("Idempotency-Key" = String, Header, min_length = 1, max_length = 200,
            description = "Chosen by the client, unique per intended order (the agent sends \
                `<installation id>-<its order id>`), and sent unchanged on every retry of it."),
    ),
    request_body(content = OrderRequest, content_type = "application/json",
        description = "What to order. Two requests are the same when their JSON values are equal."),
    responses(
        (status = 201, description = "The order was created.", body = ShopOrder,
            headers(("Location" = String, description = "The order's URL, `/v1/orders/{id}`."))),
        (status = 200, description = "The key was used before with the same request: the order \
            it created, as it stands now. Nothing new was created.", body = ShopOrder),
        (status = 400, description = "The `Idempotency-Key` is missing, empty or longer than 200 \
            characters, or the body is not an `OrderRequest`.",
            body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The key was used before with a different request.",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown SKU, zero quantity, no items or not enough stock.",
            body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The shop is shutting down; the request may or may not have \
            created the order, retry it with the same key.",
            body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create_order(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let shop = &app.shop;
    let replay = idempotency_key(&headers).is_ok_and(|key| shop.knows_key(&key));
    let (fault, slow_ms) = shop.draw_fault(Call::Place { replay });
    match fault {
        Some(FaultKind::ServerError) => {
            shop.shared.received.send_modify(|count| *count += 1);
            return ApiError::blank(StatusCode::SERVICE_UNAVAILABLE, "injected fault: 5xx")
                .into_response();
        }
        Some(FaultKind::OutOfStock) => {
            shop.shared.received.send_modify(|count| *count += 1);
            return ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                problem_type::INSUFFICIENT_STOCK,
                "Insufficient stock",
                "injected fault: out of stock",
            )
            .into_response();
        }
        Some(FaultKind::Slow) => tokio::time::sleep(Duration::from_millis(slow_ms)).await,
        _ => {}
    }
    let substitute = fault == Some(FaultKind::Substitute);
    let outcome = handle_order_request(shop, &headers, body, substitute);
    shop.shared.received.send_modify(|count| *count += 1);
    match (fault, &outcome) {
        (Some(FaultKind::Timeout), _) => {
            // Taken, never answered: the client times out (or the shop shuts down).
            let mut closing = app.closing.clone();
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
                _ = async move {
                    match closing.as_mut() {
                        Some(closing) => { let _ = closing.wait_for(|c| *c).await; }
                        None => std::future::pending::<()>().await,
                    }
                } => {}
            }
            return ApiError::blank(StatusCode::SERVICE_UNAVAILABLE, "injected fault: timeout")
                .into_response();
        }
        (Some(FaultKind::Reset), _) => {
            // Taken; the answer starts, then the connection is cut.
            let parts: Vec<Result<Bytes, io::Error>> = vec![
                Ok(Bytes::from_static(b"{\"id\":")),
                Err(io::Error::other("injected fault: connection reset")),
            ];
            return Response::builder()
                .status(StatusCode::CREATED)
                .header(header::CONTENT_TYPE, "application/json")
                .body(axum::body::Body::from_stream(futures_util::stream::iter(
                    parts,
                )))
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
        }
        (Some(FaultKind::Cancel), Ok(Placed::Created(order))) => shop.cancel_order(&order.id),
        _ => {}
    }
    if !shop.released(app.closing).await {
        return ApiError::blank(
            StatusCode::SERVICE_UNAVAILABLE,
            "the shop is shutting down; retry with the same Idempotency-Key",
        )
        .into_response();
    }
    match outcome {
        Ok(Placed::Created(order)) => {
            let location = HeaderValue::from_str(&format!("/v1/orders/{}", order.id));
            let mut response = (StatusCode::CREATED, Json(order)).into_response();
            if let Ok(location) = location {
                response.headers_mut().insert(header::LOCATION, location);
            }
            response
        }
        Ok(Placed::Replayed(order)) => (StatusCode::OK, Json(order)).into_response(),
        Err(error) => error.into_response(),
    }
}

fn handle_order_request(
    shop: &SandboxShop,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    substitute: bool,
) -> Result<Placed, ApiError> {
    let key = idempotency_key(headers)?;
    let body =
        body.map_err(|rejection| ApiError::blank(rejection.status(), rejection.body_text()))?;
    let request: OrderRequest = serde_json::from_slice(&body).map_err(|error| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            problem_type::MALFORMED_REQUEST,
            "Malformed order request",
            format!("the body is not an order request: {error}"),
        )
    })?;
    shop.place(&key, request, substitute)
}

/// All orders
///
/// Every order the shop has, oldest first, each with its status as of now.
#[utoipa::path(
    get,
    path = "/v1/orders",
    tag = "orders",
    operation_id = "listOrders",
    responses(
        (status = 200, description = "Every order, oldest first.", body = OrderList),
    )
)]
async fn list_orders(State(app): State<AppState>) -> Json<OrderList> {
    Json(OrderList {
        orders: app.shop.orders(),
    })
}

/// One order
///
/// The order with its status as of now.
#[utoipa::path(
    get,
    path = "/v1/orders/{id}",
    tag = "orders",
    operation_id = "getOrder",
    params(("id" = String, Path, description = "The shop's order id, e.g. `so-000001`.")),
    responses(
        (status = 200, description = "The order.", body = ShopOrder),
        (status = 404, description = "No order has this id.",
            body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_order(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ShopOrder>, ApiError> {
    let delivered = app
        .shop
        .order(&id)
        .is_some_and(|o| o.status == ShopOrderStatus::Delivered);
    let fault = read_fault(&app, delivered).await?;
    let order = app.shop.order(&id).map(|mut order| {
        if fault == Some(FaultKind::DuplicateDelivery) {
            // The delivery reported again, an hour later.
            order.delivered_at_ms = order.delivered_at_ms.map(|at| at + 3_600_000);
        }
        order
    });
    order.map(Json).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            problem_type::ORDER_NOT_FOUND,
            "Order not found",
            format!("the shop has no order {id:?}"),
        )
    })
}

/// Draws the fault of a call on an order that exists: a 5xx answers now, a slow answer waits
/// here; the others are for the caller to apply.
async fn read_fault(app: &AppState, delivered: bool) -> Result<Option<FaultKind>, ApiError> {
    let (fault, slow_ms) = app.shop.draw_fault(Call::Read { delivered });
    match fault {
        Some(FaultKind::ServerError) => Err(ApiError::blank(
            StatusCode::SERVICE_UNAVAILABLE,
            "injected fault: 5xx",
        )),
        Some(FaultKind::Slow) => {
            tokio::time::sleep(Duration::from_millis(slow_ms)).await;
            Ok(fault)
        }
        _ => Ok(fault),
    }
}

/// `POST /v1/orders/{id}/cancel`: the customer cancels an order the shop has not sent yet.
#[utoipa::path(post, path = "/v1/orders/{id}/cancel", tag = "orders",
    params(("id" = String, Path, description = "The shop's order id")),
    responses((status = 200, body = ShopOrder, description = "Cancelled (or already was)"),
        (status = 404, body = Problem, content_type = "application/problem+json",
            description = "No order has this id."),
        (status = 409, body = Problem, content_type = "application/problem+json",
            description = "Already sent: too late to cancel")))]
async fn cancel_order(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ShopOrder>, ApiError> {
    read_fault(&app, false).await?;
    match app.shop.cancel_for_customer(&id) {
        Ok(Some(order)) => Ok(Json(order)),
        Ok(None) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            problem_type::ORDER_NOT_FOUND,
            "Order not found",
            format!("the shop has no order {id:?}"),
        )),
        Err(status) => Err(ApiError::new(
            StatusCode::CONFLICT,
            problem_type::TOO_LATE_TO_CANCEL,
            "Too late to cancel",
            format!("order {id} has left the shop ({status:?})"),
        )),
    }
}

/// The sandbox shop serves its own OpenAPI document (not part of the API proper).
async fn get_openapi() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        openapi_json(),
    )
        .into_response()
}

/// The commerce API's OpenAPI document, generated from the handlers and the wire types.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "replenish commerce API",
        version = "1.0.0",
        description = "How a replenish agent orders consumables from a shop: read the catalog, \
            place orders exactly once with an `Idempotency-Key`, follow their status. Every \
            error is an RFC 9457 `application/problem+json` document. See \
            `docs/commerce-api.md`.",
        license(name = "MIT OR Apache-2.0", identifier = "MIT OR Apache-2.0"),
    ),
    paths(get_catalog, create_order, list_orders, get_order, cancel_order),
    components(schemas(
        Catalog,
        CatalogItem,
        OrderLine,
        OrderRequest,
        ShopOrderStatus,
        ShopOrder,
        OrderList,
        Problem,
    )),
    tags(
        (name = "catalog", description = "What the shop sells."),
        (name = "orders", description = "Placing orders and following them."),
    )
)]
pub struct CommerceApiDoc;

/// [`CommerceApiDoc`] as pretty-printed JSON, the content of `docs/commerce-api.openapi.json`
/// (which ends with one more newline).
pub fn openapi_json() -> String {
    CommerceApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|error| {
            // Unreachable in practice: the document is plain data.
            tracing::error!(%error, "cannot serialize the OpenAPI document");
            String::from("{}")
        })
}

/// A running sandbox shop server. Dropping it starts a graceful shutdown in the background;
/// [`ShopServer::shutdown`] also waits for it to finish.
#[derive(Debug)]
pub struct ShopServer {
    addr: SocketAddr,
    closing: watch::Sender<bool>,
    task: Option<JoinHandle<io::Result<()>>>,
}

impl ShopServer {
    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL of the API, e.g. `http://127.0.0.1:41234` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting connections, answers held order requests with `503`, lets requests in
    /// flight finish and waits until the server has stopped.
    pub async fn shutdown(mut self) -> io::Result<()> {
        self.closing.send_replace(true);
        let Some(task) = self.task.take() else {
            return Ok(());
        };
        let result = task.await.map_err(io::Error::other)?;
        tracing::info!(addr = %self.addr, "sandbox shop stopped");
        result
    }
}

impl Drop for ShopServer {
    fn drop(&mut self) {
        self.closing.send_replace(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use replenish_agent::clock::{HOUR_MS, ManualClock};

    /// 2026-01-01T00:00:00Z.
    const T0: UnixMs = 1_767_225_600_000;

    struct Fixture {
        shop: SandboxShop,
        clock: Arc<ManualClock>,
        server: ShopServer,
        http: reqwest::Client,
    }

    async fn start(config: ShopConfig) -> Fixture {
        let clock = ManualClock::new(T0);
        let shop = SandboxShop::new(config, clock.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = shop.spawn(listener).await.unwrap();
        // reqwest is built without a TLS crypto provider of its own.
        replenish_commerce::ensure_crypto_provider();
        Fixture {
            shop,
            clock,
            server,
            http: reqwest::Client::new(),
        }
    }

    fn order_request(reference: &str, items: &[(&str, u32)]) -> OrderRequest {
        OrderRequest {
            household: "demo".to_owned(),
            reference: reference.to_owned(),
            items: items
                .iter()
                .map(|(sku, quantity)| OrderLine {
                    sku: (*sku).to_owned(),
                    quantity: *quantity,
                })
                .collect(),
            fulfilment: None,
        }
    }

    fn coffee(quantity: u32) -> OrderRequest {
        order_request("ord-1", &[("coffee-beans-500g", quantity)])
    }

    impl Fixture {
        fn url(&self, path: &str) -> String {
            format!("{}{path}", self.server.url())
        }

        fn post_request(&self, key: Option<&str>, body: &OrderRequest) -> reqwest::RequestBuilder {
            let request = self.http.post(self.url("/v1/orders")).json(body);
            match key {
                Some(key) => request.header(IDEMPOTENCY_HEADER, key),
                None => request,
            }
        }

        async fn post(&self, key: Option<&str>, body: &OrderRequest) -> reqwest::Response {
            self.post_request(key, body).send().await.unwrap()
        }

        async fn post_raw(&self, key: &str, body: &'static str) -> reqwest::Response {
            self.http
                .post(self.url("/v1/orders"))
                .header(IDEMPOTENCY_HEADER, key)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap()
        }

        async fn get(&self, path: &str) -> reqwest::Response {
            self.http.get(self.url(path)).send().await.unwrap()
        }

        async fn get_order(&self, id: &str) -> ShopOrder {
            let response = self.get(&format!("/v1/orders/{id}")).await;
            assert_eq!(response.status(), StatusCode::OK);
            response.json().await.unwrap()
        }

        fn stock(&self, sku: &str) -> u32 {
            let catalog = self.shop.catalog();
            catalog.items.iter().find(|i| i.sku == sku).unwrap().stock
        }
    }

    /// Asserts `response` is a problem document with `status` and `kind`.
    async fn expect_problem(
        response: reqwest::Response,
        status: StatusCode,
        kind: &str,
    ) -> Problem {
        assert_eq!(response.status(), status);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            PROBLEM_JSON,
            "error bodies are problem documents"
        );
        let problem: Problem = response.json().await.unwrap();
        assert_eq!(problem.status, status.as_u16());
        assert_eq!(problem.kind, kind, "{problem:?}");
        assert!(!problem.detail.is_empty());
        problem
    }

    #[tokio::test]
    async fn a_pickup_order_costs_its_option_is_ready_then_collected() {
        let config = ShopConfig {
            fulfilment: delivery_or_pickup("Shop A Mitte", "Hauptstraße 1"),
            ..ShopConfig::default()
        };
        let fx = start(config).await;
        let mut request = order_request("o-1", &[("eggs-6", 1)]);
        request.fulfilment = Some("click-and-collect".into());
        let response = fx.post(Some("k-pickup"), &request).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let order: ShopOrder = response.json().await.unwrap();
        assert_eq!(order.total_cents, 249, "pickup is free");
        assert_eq!(order.fulfilment.as_deref(), Some("click-and-collect"));
        // Ordered at midnight (a Thursday): four hours to prepare, but the point opens at 8.
        assert_eq!(order.estimated_delivery_at_ms, T0 + 8 * HOUR_MS);
        fx.clock.advance(5 * HOUR_MS);
        assert_eq!(
            fx.get_order(&order.id).await.status,
            ShopOrderStatus::Placed
        );
        fx.clock.advance(3 * HOUR_MS);
        assert_eq!(
            fx.get_order(&order.id).await.status,
            ShopOrderStatus::ReadyForPickup
        );
        // The household passes by on its way home, from 17:30.
        fx.clock.advance(9 * HOUR_MS);
        assert_eq!(
            fx.get_order(&order.id).await.status,
            ShopOrderStatus::ReadyForPickup
        );
        fx.clock.advance(HOUR_MS);
        let collected = fx.get_order(&order.id).await;
        assert_eq!(collected.status, ShopOrderStatus::Collected);
        assert_eq!(
            collected.delivered_at_ms,
            Some(T0 + 17 * HOUR_MS + 30 * 60_000)
        );

        // Ordered on Saturday evening: ready when the point opens on Monday (it is shut on
        // Sunday), collected that evening.
        fx.clock.set(T0 + 2 * DAY_MS + 19 * HOUR_MS);
        let mut late = order_request("o-4", &[("eggs-6", 1)]);
        late.fulfilment = Some("click-and-collect".into());
        let late: ShopOrder = fx.post(Some("k-late"), &late).await.json().await.unwrap();
        assert_eq!(late.estimated_delivery_at_ms, T0 + 4 * DAY_MS + 8 * HOUR_MS);
        fx.clock.set(T0 + 6 * DAY_MS);
        let late = fx.get_order(&late.id).await;
        assert_eq!(late.status, ShopOrderStatus::Collected);
        assert_eq!(
            late.delivered_at_ms,
            Some(T0 + 4 * DAY_MS + 17 * HOUR_MS + 30 * 60_000)
        );

        let mut home = order_request("o-2", &[("eggs-6", 1)]);
        home.fulfilment = Some("home-delivery".into());
        let order: ShopOrder = fx.post(Some("k-home"), &home).await.json().await.unwrap();
        assert_eq!(order.total_cents, 249 + 495);
        let mut unknown = order_request("o-3", &[("eggs-6", 1)]);
        unknown.fulfilment = Some("drone".into());
        assert_eq!(
            fx.post(Some("k-drone"), &unknown).await.status(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(fx.shop.catalog().fulfilment.len(), 2);
    }

    #[tokio::test]
    async fn catalog_lists_the_demo_household_products() {
        let fx = start(ShopConfig::default()).await;
        let response = fx.get("/v1/catalog").await;
        assert_eq!(response.status(), StatusCode::OK);
        let catalog: Catalog = response.json().await.unwrap();
        assert_eq!(catalog.items, default_catalog());
        for (consumable, unit) in [
            ("coffee_beans", Unit::G),
            ("milk", Unit::Ml),
            ("eggs", Unit::Count),
            ("descaler", Unit::Count),
        ] {
            let item = catalog
                .items
                .iter()
                .find(|item| item.consumable == consumable)
                .unwrap();
            assert_eq!(item.unit, unit);
            assert_eq!(item.currency, "EUR");
            assert!(item.price_cents > 0 && item.stock >= 100);
        }
        assert_eq!(ShopConfig::default().lead_time_ms, 2 * DAY_MS);
    }

    #[tokio::test]
    async fn first_use_of_a_key_creates_the_order() {
        let fx = start(ShopConfig::default()).await;
        let request = order_request("ord-1", &[("coffee-beans-500g", 2), ("milk-whole-1l", 3)]);
        let response = fx.post(Some("key-1"), &request).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(response.headers()[header::LOCATION], "/v1/orders/so-000001");
        let order: ShopOrder = response.json().await.unwrap();
        assert_eq!(order.id, "so-000001");
        assert_eq!(order.idempotency_key, "key-1");
        assert_eq!(order.reference, "ord-1");
        assert_eq!(order.household, "demo");
        assert_eq!(order.status, ShopOrderStatus::Placed);
        assert_eq!(order.items, request.items);
        assert_eq!(order.total_cents, 2 * 899 + 3 * 129);
        assert_eq!(order.currency, "EUR");
        assert_eq!(order.created_at_ms, T0);
        assert_eq!(order.estimated_delivery_at_ms, T0 + 2 * DAY_MS);
        assert_eq!((order.shipped_at_ms, order.delivered_at_ms), (None, None));
        assert_eq!(fx.stock("coffee-beans-500g"), 998);
        assert_eq!(fx.stock("milk-whole-1l"), 997);
        assert_eq!(fx.shop.orders(), vec![order.clone()]);
        assert_eq!(fx.get_order("so-000001").await, order);

        let second = fx.post(Some("key-2"), &coffee(1)).await;
        assert_eq!(second.status(), StatusCode::CREATED);
        assert_eq!(second.json::<ShopOrder>().await.unwrap().id, "so-000002");
    }

    #[tokio::test]
    async fn replay_with_the_same_key_returns_the_same_order_once() {
        let fx = start(ShopConfig::default()).await;
        let first = fx.post(Some("key-1"), &coffee(2)).await;
        assert_eq!(first.status(), StatusCode::CREATED);
        let first: ShopOrder = first.json().await.unwrap();

        for _ in 0..3 {
            let replay = fx.post(Some("key-1"), &coffee(2)).await;
            assert_eq!(replay.status(), StatusCode::OK);
            assert_eq!(replay.json::<ShopOrder>().await.unwrap(), first);
        }
        assert_eq!(fx.shop.order_count(), 1);
        assert_eq!(fx.shop.order_request_count(), 4);
        assert_eq!(fx.stock("coffee-beans-500g"), 998, "stock taken once");

        let list: OrderList = fx.get("/v1/orders").await.json().await.unwrap();
        assert_eq!(list.orders, vec![first]);
    }

    #[tokio::test]
    async fn replay_succeeds_even_when_the_stock_has_run_out_since() {
        let mut config = ShopConfig::default();
        config.catalog.iter_mut().for_each(|item| item.stock = 2);
        let fx = start(config).await;
        assert_eq!(
            fx.post(Some("a"), &coffee(2)).await.status(),
            StatusCode::CREATED
        );
        assert_eq!(fx.stock("coffee-beans-500g"), 0);
        assert_eq!(
            fx.post(Some("a"), &coffee(2)).await.status(),
            StatusCode::OK
        );
        let refused = fx.post(Some("b"), &coffee(1)).await;
        let problem = expect_problem(
            refused,
            StatusCode::UNPROCESSABLE_ENTITY,
            problem_type::INSUFFICIENT_STOCK,
        )
        .await;
        assert!(problem.detail.contains("0 in stock"), "{problem:?}");
    }

    #[tokio::test]
    async fn same_key_with_a_different_request_is_a_conflict() {
        let fx = start(ShopConfig::default()).await;
        assert_eq!(
            fx.post(Some("key-1"), &coffee(2)).await.status(),
            StatusCode::CREATED
        );
        let conflict = fx.post(Some("key-1"), &coffee(3)).await;
        let problem = expect_problem(
            conflict,
            StatusCode::CONFLICT,
            problem_type::IDEMPOTENCY_CONFLICT,
        )
        .await;
        assert!(problem.detail.contains("so-000001"), "{problem:?}");
        let other_reference = order_request("ord-2", &[("coffee-beans-500g", 2)]);
        let conflict = fx.post(Some("key-1"), &other_reference).await;
        assert_eq!(conflict.status(), StatusCode::CONFLICT);
        assert_eq!(fx.shop.order_count(), 1);
        assert_eq!(fx.stock("coffee-beans-500g"), 998);
    }

    #[tokio::test]
    async fn the_idempotency_key_is_required_and_bounded() {
        let fx = start(ShopConfig::default()).await;
        let kind = problem_type::INVALID_IDEMPOTENCY_KEY;
        expect_problem(
            fx.post(None, &coffee(1)).await,
            StatusCode::BAD_REQUEST,
            kind,
        )
        .await;
        expect_problem(
            fx.post(Some(""), &coffee(1)).await,
            StatusCode::BAD_REQUEST,
            kind,
        )
        .await;
        let too_long = "k".repeat(MAX_IDEMPOTENCY_KEY_LEN + 1);
        let problem = expect_problem(
            fx.post(Some(&too_long), &coffee(1)).await,
            StatusCode::BAD_REQUEST,
            kind,
        )
        .await;
        assert!(problem.detail.contains("201"), "{problem:?}");
        let twice = fx
            .post_request(Some("a"), &coffee(1))
            .header(IDEMPOTENCY_HEADER, "b")
            .send()
            .await
            .unwrap();
        expect_problem(twice, StatusCode::BAD_REQUEST, kind).await;
        assert_eq!(fx.shop.order_count(), 0);

        let longest = "k".repeat(MAX_IDEMPOTENCY_KEY_LEN);
        assert_eq!(
            fx.post(Some(&longest), &coffee(1)).await.status(),
            StatusCode::CREATED
        );
    }

    #[tokio::test]
    async fn unacceptable_orders_are_422_and_do_not_bind_the_key() {
        let fx = start(ShopConfig::default()).await;
        let cases = [
            (
                order_request("r", &[("caviar-50g", 1)]),
                problem_type::UNKNOWN_SKU,
            ),
            (
                order_request("r", &[("eggs-6", 1), ("milk-whole-1l", 0)]),
                problem_type::INVALID_ORDER,
            ),
            (order_request("r", &[]), problem_type::INVALID_ORDER),
            (
                order_request("r", &[("eggs-6", 600), ("eggs-6", 401)]),
                problem_type::INSUFFICIENT_STOCK,
            ),
        ];
        for (request, kind) in cases {
            let response = fx.post(Some("key-1"), &request).await;
            expect_problem(response, StatusCode::UNPROCESSABLE_ENTITY, kind).await;
        }
        assert_eq!(fx.shop.order_count(), 0);
        assert_eq!(fx.stock("eggs-6"), 1000, "a refused order takes no stock");

        let fixed = order_request("r", &[("eggs-6", 600), ("eggs-6", 400)]);
        let response = fx.post(Some("key-1"), &fixed).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(fx.stock("eggs-6"), 0);
    }

    #[tokio::test]
    async fn malformed_bodies_are_400() {
        let fx = start(ShopConfig::default()).await;
        for body in [
            "{not json",
            r#"{"household":"demo","reference":"r"}"#,
            r#"{"household":"demo","reference":"r","items":[{"sku":"eggs-6","quantity":-1}]}"#,
            r#"{"household":"demo","reference":"r","items":[],"coupon":"FREE"}"#,
        ] {
            let response = fx.post_raw("key-1", body).await;
            expect_problem(
                response,
                StatusCode::BAD_REQUEST,
                problem_type::MALFORMED_REQUEST,
            )
            .await;
        }
        assert_eq!(fx.shop.order_count(), 0);
    }

    #[tokio::test]
    async fn unknown_things_are_problem_documents() {
        let fx = start(ShopConfig::default()).await;
        let missing = fx.get("/v1/orders/so-999999").await;
        expect_problem(
            missing,
            StatusCode::NOT_FOUND,
            problem_type::ORDER_NOT_FOUND,
        )
        .await;
        let no_route = fx.get("/v2/catalog").await;
        expect_problem(no_route, StatusCode::NOT_FOUND, problem_type::ABOUT_BLANK).await;
        let wrong_method = fx.http.delete(fx.url("/v1/catalog")).send().await.unwrap();
        assert!(wrong_method.headers().contains_key(header::ALLOW));
        let problem = expect_problem(
            wrong_method,
            StatusCode::METHOD_NOT_ALLOWED,
            problem_type::ABOUT_BLANK,
        )
        .await;
        assert_eq!(problem.title, "Method Not Allowed");
    }

    #[tokio::test]
    async fn status_follows_the_clock_from_placed_to_delivered() {
        let fx = start(ShopConfig::default()).await;
        let created: ShopOrder = fx.post(Some("k"), &coffee(1)).await.json().await.unwrap();
        let lead = 2 * DAY_MS;
        let expect = |order: &ShopOrder, status, shipped, delivered| {
            assert_eq!(order.status, status);
            assert_eq!(order.shipped_at_ms, shipped);
            assert_eq!(order.delivered_at_ms, delivered);
            assert_eq!(order.estimated_delivery_at_ms, T0 + lead);
        };
        expect(&created, ShopOrderStatus::Placed, None, None);

        fx.clock.set(T0 + lead / 2 - 1);
        expect(
            &fx.get_order(&created.id).await,
            ShopOrderStatus::Placed,
            None,
            None,
        );

        fx.clock.set(T0 + lead / 2);
        let shipped = Some(T0 + DAY_MS);
        expect(
            &fx.get_order(&created.id).await,
            ShopOrderStatus::Shipped,
            shipped,
            None,
        );
        expect(
            &fx.shop.orders()[0],
            ShopOrderStatus::Shipped,
            shipped,
            None,
        );

        fx.clock.set(T0 + lead - HOUR_MS);
        expect(
            &fx.get_order(&created.id).await,
            ShopOrderStatus::Shipped,
            shipped,
            None,
        );

        fx.clock.set(T0 + lead);
        let delivered = Some(T0 + lead);
        expect(
            &fx.get_order(&created.id).await,
            ShopOrderStatus::Delivered,
            shipped,
            delivered,
        );
        let list: OrderList = fx.get("/v1/orders").await.json().await.unwrap();
        expect(
            &list.orders[0],
            ShopOrderStatus::Delivered,
            shipped,
            delivered,
        );

        // A replay reports the order as it stands now.
        let replay: ShopOrder = fx.post(Some("k"), &coffee(1)).await.json().await.unwrap();
        expect(&replay, ShopOrderStatus::Delivered, shipped, delivered);
        assert_eq!(replay.created_at_ms, T0);
    }

    #[tokio::test]
    async fn a_held_order_exists_before_its_response_arrives() {
        let fx = start(ShopConfig::default()).await;
        fx.shop.hold_order_responses(true);
        let pending = tokio::spawn(fx.post_request(Some("key-1"), &coffee(1)).send());

        fx.shop.wait_for_orders(1).await;
        assert_eq!(fx.shop.order_count(), 1);
        assert!(!pending.is_finished(), "the response is withheld");
        let recorded = fx.shop.orders().remove(0);

        fx.shop.hold_order_responses(false);
        let response = pending.await.unwrap().unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(response.json::<ShopOrder>().await.unwrap(), recorded);
    }

    #[tokio::test]
    async fn a_client_killed_mid_request_gets_its_order_on_retry() {
        let fx = start(ShopConfig::default()).await;
        fx.shop.hold_order_responses(true);
        let pending = tokio::spawn(fx.post_request(Some("key-1"), &coffee(1)).send());
        fx.shop.wait_for_orders(1).await;
        pending.abort(); // the client crashes with the order in flight
        assert!(pending.await.unwrap_err().is_cancelled());

        fx.shop.hold_order_responses(false);
        let retry = fx.post(Some("key-1"), &coffee(1)).await;
        assert_eq!(retry.status(), StatusCode::OK);
        assert_eq!(retry.json::<ShopOrder>().await.unwrap().id, "so-000001");
        assert_eq!(fx.shop.order_count(), 1);
        assert_eq!(fx.stock("coffee-beans-500g"), 999);
    }

    #[tokio::test]
    async fn shutdown_answers_held_requests_with_503() {
        let fx = start(ShopConfig::default()).await;
        fx.shop.hold_order_responses(true);
        let pending = tokio::spawn(fx.post_request(Some("key-1"), &coffee(1)).send());
        fx.shop.wait_for_order_requests(1).await;
        fx.server.shutdown().await.unwrap();
        let response = pending.await.unwrap().unwrap();
        expect_problem(
            response,
            StatusCode::SERVICE_UNAVAILABLE,
            problem_type::ABOUT_BLANK,
        )
        .await;
        assert_eq!(fx.shop.order_count(), 1, "the order exists all the same");
    }

    #[tokio::test]
    async fn the_served_openapi_document_is_the_generated_one() {
        let fx = start(ShopConfig::default()).await;
        let served = fx.get("/openapi.json").await.text().await.unwrap();
        assert_eq!(served, openapi_json());
    }

    #[test]
    fn openapi_document_describes_every_endpoint() {
        let doc: serde_json::Value = serde_json::from_str(&openapi_json()).unwrap();
        let paths = &doc["paths"];
        for (path, method) in [
            ("/v1/catalog", "get"),
            ("/v1/orders", "post"),
            ("/v1/orders", "get"),
            ("/v1/orders/{id}", "get"),
        ] {
            assert!(
                paths[path][method].is_object(),
                "{method} {path} is missing"
            );
        }
        let post = &paths["/v1/orders"]["post"];
        assert_eq!(post["parameters"][0]["name"], IDEMPOTENCY_HEADER);
        assert_eq!(post["parameters"][0]["in"], "header");
        assert_eq!(post["parameters"][0]["required"], true);
        for status in ["200", "201", "400", "409", "422", "503"] {
            assert!(post["responses"][status].is_object(), "{status} is missing");
        }
        assert!(post["responses"]["409"]["content"][PROBLEM_JSON].is_object());
    }

    /// `docs/commerce-api.openapi.json` must be the generated document. Regenerate it with
    /// `UPDATE_EXPECT=1 cargo test -p replenish-sim shop::tests::openapi`.
    #[test]
    fn openapi_file_is_up_to_date() {
        expect_test::expect_file!["../../docs/commerce-api.openapi.json"]
            .assert_eq(&format!("{}\n", openapi_json()));
    }
}
