//! Vendure's GraphQL Shop API (see `docs/commerce-vendure.md`).
//!
//! The agent shops as the household's customer account: it logs in (`login`, a bearer session
//! token from the `vendure-auth-token` header) and builds the customer's one active order:
//! lines → idempotency key (an `Order.idempotencyKey` custom field, unique) → shipping address
//! → shipping method (home delivery or click and collect) → `ArrangingPayment` → payment.
//! Vendure keeps the active order on the customer, so an attempt that crashed halfway is found
//! again after a new login and finished, never doubled: before building anything, placing
//! looks for a placed order with the key, then at the active order's key.
//!
//! What the catalog must carry (documented for retailers): variant custom fields `consumable`,
//! `packSize` and `unit`; shipping method custom fields `kind` (`delivery` | `pickup`),
//! `leadDaysMin`, `leadDaysMax`, `pickupName`, `pickupAddress` and `openingHours`.

mod documents;
mod wire;

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use replenish_protocol::Unit;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::domain::{Catalog, Currency, Fulfilment, Offer, OrderRequest, ShopOrder};
use crate::{CommerceError, Shop};

/// The header that selects a channel.
pub const CHANNEL_HEADER: &str = "vendure-token";
/// The header a session token comes back in.
pub const AUTH_TOKEN_HEADER: &str = "vendure-auth-token";

/// A shipping address, as Vendure's `CreateAddressInput` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Address {
    /// The recipient.
    pub full_name: String,
    /// Street and number.
    pub street: String,
    /// Town or city.
    pub city: String,
    /// Postal code.
    pub postal_code: String,
    /// ISO 3166-1 alpha-2 country code (`DE`).
    pub country_code: String,
}

/// How the agent reaches a Vendure shop and whom it shops as.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VendureAccount {
    /// The channel's token (the `vendure-token` header); `None`: the default channel.
    #[serde(default)]
    pub channel_token: Option<String>,
    /// The household's customer account (its email address).
    pub email: String,
    /// Its password.
    pub password: String,
    /// The payment method's code.
    pub payment_method: String,
    /// Where deliveries go (also required by Vendure for click and collect).
    pub address: Address,
}

impl fmt::Debug for VendureAccount {
    // The password stays out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VendureAccount")
            .field("channel_token", &self.channel_token)
            .field("email", &self.email)
            .field("password", &"***")
            .field("payment_method", &self.payment_method)
            .field("address", &self.address)
            .finish()
    }
}

/// A Vendure shop through its Shop API.
#[derive(Debug)]
pub struct VendureShop {
    client: reqwest::Client,
    url: String,
    account: VendureAccount,
    session: Mutex<Option<String>>,
    /// Variant ids by SKU, from the last catalog.
    variants: Mutex<HashMap<String, String>>,
    /// One customer has one active order: placements take turns.
    placing: tokio::sync::Mutex<()>,
}

/// Products per catalog page (Vendure's default `shopListQueryLimit` is 100).
const PAGE: u64 = 100;

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn decode<T: serde::de::DeserializeOwned>(value: Value, what: &str) -> Result<T, CommerceError> {
    serde_json::from_value(value).map_err(|e| CommerceError::Decode(format!("{what}: {e}")))
}

/// The union member a mutation answered: the order-like object, or the shop's refusal.
fn member(data: &Value, field: &str) -> Result<Value, CommerceError> {
    let value = data
        .get(field)
        .cloned()
        .ok_or_else(|| CommerceError::Decode(format!("no {field} in the answer")))?;
    match value.get("errorCode").and_then(Value::as_str) {
        None => Ok(value),
        Some(code) => {
            let message = value.get("message").and_then(Value::as_str).unwrap_or("");
            Err(refusal(field, code, message, &value))
        }
    }
}

fn refusal(field: &str, code: &str, message: &str, value: &Value) -> CommerceError {
    match code {
        "INSUFFICIENT_STOCK_ERROR" | "OUT_OF_STOCK_ERROR" => CommerceError::OutOfStock {
            sku: String::new(),
            available: value
                .get("quantityAvailable")
                .and_then(Value::as_u64)
                .and_then(|q| u32::try_from(q).ok())
                .unwrap_or(0),
            wanted: 0,
        },
        _ => CommerceError::Rejected {
            status: 0,
            detail: format!("{field}: {code}: {message}"),
        },
    }
}

impl VendureShop {
    /// A client of the Shop API at `shop_api_url` (`http://host:3000/shop-api`).
    pub fn new(
        shop_api_url: &str,
        account: VendureAccount,
        timeout: Duration,
    ) -> Result<Self, CommerceError> {
        Ok(Self {
            client: crate::http_client(timeout)?,
            url: shop_api_url.to_string(),
            account,
            session: Mutex::new(None),
            variants: Mutex::new(HashMap::new()),
            placing: tokio::sync::Mutex::new(()),
        })
    }

    /// One request, as the current session. Also says whether Vendure replaced the session:
    /// it answers an unknown or expired token as a new anonymous session, not with an error.
    async fn post(
        &self,
        document: &str,
        variables: Value,
    ) -> Result<(wire::Answer, bool), CommerceError> {
        let mut request = self
            .client
            .post(&self.url)
            .json(&json!({ "query": document, "variables": variables }));
        let sent = lock(&self.session).clone();
        if let Some(token) = &sent {
            request = request.bearer_auth(token);
        }
        if let Some(channel) = &self.account.channel_token {
            request = request.header(CHANNEL_HEADER, channel);
        }
        let response = request
            .send()
            .await
            .map_err(|e| CommerceError::Transport(e.to_string()))?;
        let mut replaced = false;
        if let Some(token) = response
            .headers()
            .get(AUTH_TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
        {
            replaced = sent.as_deref().is_some_and(|sent| sent != token);
            *lock(&self.session) = Some(token.to_string());
        }
        let status = response.status();
        if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
            let detail = response.text().await.unwrap_or_default();
            return Err(CommerceError::Server {
                status: status.as_u16(),
                detail: detail.chars().take(300).collect(),
            });
        }
        // GraphQL answers errors with 200 (or 400 for a bad document), in the body.
        let answer = response
            .json::<wire::Answer>()
            .await
            .map_err(|e| CommerceError::Decode(format!("HTTP {status}: {e}")))?;
        Ok((answer, replaced))
    }

    async fn login(&self) -> Result<(), CommerceError> {
        *lock(&self.session) = None;
        let (answer, _) = self
            .post(
                documents::LOGIN,
                json!({ "username": self.account.email, "password": self.account.password }),
            )
            .await?;
        let data = Self::data(answer)?;
        member(&data, "login").map_err(|error| match error {
            CommerceError::Rejected { detail, .. } => CommerceError::Rejected {
                status: 401,
                detail: format!("logging in as {}: {detail}", self.account.email),
            },
            other => other,
        })?;
        if lock(&self.session).is_none() {
            return Err(CommerceError::Decode(format!(
                "no {AUTH_TOKEN_HEADER} header after logging in: is bearer auth enabled?"
            )));
        }
        tracing::debug!(account = %self.account.email, "logged in to the Vendure shop");
        Ok(())
    }

    fn data(answer: wire::Answer) -> Result<Value, CommerceError> {
        if let Some(error) = answer.errors.first() {
            return Err(CommerceError::Rejected {
                status: 0,
                detail: format!("{} ({})", error.message, error.code().unwrap_or("no code")),
            });
        }
        answer
            .data
            .ok_or_else(|| CommerceError::Decode("an answer without data".into()))
    }

    /// A request as the household's customer, logging in first and again when the session
    /// has expired.
    async fn call(&self, document: &str, variables: Value) -> Result<Value, CommerceError> {
        if lock(&self.session).is_none() {
            self.login().await?;
        }
        let (answer, replaced) = self.post(document, variables.clone()).await?;
        let forbidden = answer.errors.iter().any(|e| e.code() == Some("FORBIDDEN"));
        let anonymous = answer
            .data
            .as_ref()
            .is_some_and(|d| d.get("activeCustomer").is_some_and(Value::is_null));
        if replaced || forbidden || anonymous {
            // What ran as an anonymous session touched only that session's own cart, which
            // nobody will pay for.
            tracing::info!("the Vendure session expired; logging in again");
            self.login().await?;
            return Self::data(self.post(document, variables).await?.0);
        }
        Self::data(answer)
    }

    async fn active_order(&self) -> Result<Option<wire::Order>, CommerceError> {
        let data = self.call(documents::ACTIVE_ORDER, json!({})).await?;
        match data.get("activeOrder") {
            None | Some(Value::Null) => Ok(None),
            Some(order) => decode(order.clone(), "activeOrder").map(Some),
        }
    }

    async fn orders_with_key(&self, key: &str) -> Result<Vec<wire::Order>, CommerceError> {
        let data = self
            .call(documents::ORDERS_BY_KEY, json!({ "key": key }))
            .await?;
        let items = data
            .pointer("/activeCustomer/orders/items")
            .cloned()
            .unwrap_or(Value::Array(Vec::new()));
        decode(items, "orders")
    }

    async fn variant_id(&self, sku: &str) -> Result<String, CommerceError> {
        if let Some(id) = lock(&self.variants).get(sku) {
            return Ok(id.clone());
        }
        self.catalog().await?;
        lock(&self.variants)
            .get(sku)
            .cloned()
            .ok_or_else(|| CommerceError::UnknownProduct { sku: sku.into() })
    }

    /// Builds the active order for `request` under `key` up to payment, from wherever a
    /// previous attempt left it.
    async fn build(
        &self,
        key: &str,
        request: &OrderRequest,
        active: Option<wire::Order>,
    ) -> Result<wire::Order, CommerceError> {
        let wanted = sorted_lines(request.lines.iter().map(|l| (l.sku.clone(), l.quantity)));
        let resumable = active.filter(|order| {
            order.custom_fields.idempotency_key.as_deref() == Some(key)
                && sorted_lines(
                    order
                        .lines
                        .iter()
                        .map(|l| (l.product_variant.sku.clone(), l.quantity)),
                ) == wanted
        });
        let mut state = match &resumable {
            Some(order) => {
                tracing::info!(%key, code = %order.code, state = %order.state, "resuming an order a previous attempt began");
                order.state.clone()
            }
            None => {
                // A cart left by another attempt (or by a person): start it afresh.
                if let Some(order) = self.active_order().await? {
                    if order.state == "ArrangingPayment" {
                        let data = self
                            .call(documents::TRANSITION, json!({ "state": "AddingItems" }))
                            .await?;
                        member(&data, "transitionOrderToState")?;
                    }
                    let data = self.call(documents::REMOVE_ALL_LINES, json!({})).await?;
                    member(&data, "removeAllOrderLines")?;
                }
                for (n, line) in request.lines.iter().enumerate() {
                    let variant = self.variant_id(&line.sku).await?;
                    let data = self
                        .call(
                            documents::ADD_ITEM,
                            json!({ "variant": variant, "quantity": line.quantity }),
                        )
                        .await?;
                    member(&data, "addItemToOrder").map_err(|error| match error {
                        CommerceError::OutOfStock { available, .. } => CommerceError::OutOfStock {
                            sku: line.sku.clone(),
                            available,
                            wanted: line.quantity,
                        },
                        other => other,
                    })?;
                    if n == 0 {
                        // The key goes on the order as soon as it exists, before anything else.
                        let data = self
                            .call(
                                documents::SET_KEY,
                                json!({ "key": key, "reference": request.reference }),
                            )
                            .await?;
                        member(&data, "setOrderCustomFields")?;
                    }
                }
                "AddingItems".to_string()
            }
        };
        if state == "AddingItems" {
            let address = &self.account.address;
            let data = self
                .call(
                    documents::SET_ADDRESS,
                    json!({ "input": {
                        "fullName": address.full_name,
                        "streetLine1": address.street,
                        "city": address.city,
                        "postalCode": address.postal_code,
                        "countryCode": address.country_code,
                    } }),
                )
                .await?;
            member(&data, "setOrderShippingAddress")?;
            let method = self.shipping_method(request.fulfilment.as_deref()).await?;
            let data = self
                .call(documents::SET_SHIPPING, json!({ "ids": [method] }))
                .await?;
            member(&data, "setOrderShippingMethod")?;
            let data = self
                .call(
                    documents::TRANSITION,
                    json!({ "state": "ArrangingPayment" }),
                )
                .await?;
            let order = member(&data, "transitionOrderToState")?;
            if let Some(error) = order.get("transitionError").and_then(Value::as_str) {
                return Err(CommerceError::Rejected {
                    status: 0,
                    detail: format!("to ArrangingPayment: {error}"),
                });
            }
            state = "ArrangingPayment".into();
        }
        if state != "ArrangingPayment" {
            return Err(CommerceError::Rejected {
                status: 0,
                detail: format!("the active order is in state {state}, not payable"),
            });
        }
        let data = self
            .call(
                documents::ADD_PAYMENT,
                json!({ "method": self.account.payment_method }),
            )
            .await?;
        decode(member(&data, "addPaymentToOrder")?, "addPaymentToOrder")
    }

    /// The id of the shipping method to use: the one `wanted` names (its code), else the first
    /// delivery.
    async fn shipping_method(&self, wanted: Option<&str>) -> Result<String, CommerceError> {
        let data = self.call(documents::SHIPPING_METHODS, json!({})).await?;
        let methods: Vec<wire::ShippingMethod> = decode(
            data.get("eligibleShippingMethods")
                .cloned()
                .unwrap_or(Value::Array(Vec::new())),
            "eligibleShippingMethods",
        )?;
        let chosen = match wanted {
            Some(code) => methods.iter().find(|m| m.code == code),
            None => methods
                .iter()
                .find(|m| m.option(None).method == Fulfilment::Delivery),
        };
        chosen
            .map(|m| m.id.clone())
            .ok_or_else(|| CommerceError::Rejected {
                status: 0,
                detail: format!(
                    "no eligible shipping method {}",
                    wanted.unwrap_or("for home delivery")
                ),
            })
    }
}

fn sorted_lines(lines: impl Iterator<Item = (String, u32)>) -> Vec<(String, u32)> {
    let mut lines: Vec<_> = lines.collect();
    lines.sort();
    lines
}

/// Packs the shop can sell, from `stockLevel`: a number with a stock display strategy that
/// gives one, else Vendure's words (in stock: more than any order asks).
fn stock(level: &str) -> u32 {
    match level {
        "OUT_OF_STOCK" => 0,
        "LOW_STOCK" => 1,
        "IN_STOCK" => u32::MAX,
        number => number.trim().parse().unwrap_or(0),
    }
}

fn unit(text: &str) -> Option<Unit> {
    match text {
        "g" => Some(Unit::G),
        "ml" => Some(Unit::Ml),
        "count" | "pcs" => Some(Unit::Count),
        _ => None,
    }
}

#[async_trait::async_trait]
impl Shop for VendureShop {
    async fn catalog(&self) -> Result<Catalog, CommerceError> {
        let mut offers = Vec::new();
        let mut ids = HashMap::new();
        let mut skip = 0;
        loop {
            let data = self
                .call(documents::CATALOG, json!({ "take": PAGE, "skip": skip }))
                .await?;
            let page: wire::Products = decode(
                data.get("products").cloned().unwrap_or(Value::Null),
                "products",
            )?;
            let count = page.items.len() as u64;
            for variant in page.items.into_iter().flat_map(|p| p.variants) {
                ids.insert(variant.sku.clone(), variant.id.clone());
                let fields = variant.custom_fields.clone().unwrap_or_default();
                let (Some(consumable), Some(pack_size), Some(unit)) = (
                    fields.consumable.filter(|c| !c.is_empty()),
                    fields.pack_size.filter(|p| *p > 0.0),
                    fields.unit.as_deref().and_then(unit),
                ) else {
                    // Not a consumable this agent orders (or not described for it).
                    continue;
                };
                let Some(currency) = Currency::new(&variant.currency_code) else {
                    continue;
                };
                offers.push(Offer {
                    sku: variant.sku,
                    name: variant.name,
                    consumable,
                    pack_size,
                    unit,
                    price: crate::Money::new(variant.price_with_tax, currency),
                    stock: stock(&variant.stock_level),
                });
            }
            skip += count;
            if count == 0 || skip >= page.total_items {
                break;
            }
        }
        *lock(&self.variants) = ids;
        // Vendure prices shipping per order (its calculators): the price is known at checkout.
        let data = self
            .call(documents::ACTIVE_SHIPPING_METHODS, json!({}))
            .await?;
        let methods: Vec<wire::ShippingMethod> = decode(
            data.get("activeShippingMethods")
                .cloned()
                .unwrap_or(Value::Array(Vec::new())),
            "activeShippingMethods",
        )?;
        Ok(Catalog {
            offers,
            fulfilment: methods.iter().map(|m| m.option(None)).collect(),
        })
    }

    async fn place_order(
        &self,
        idempotency_key: &str,
        request: &OrderRequest,
    ) -> Result<ShopOrder, CommerceError> {
        let _turn = self.placing.lock().await;
        // Placed before (the answer was lost, or the agent crashed after paying)?
        if let Some(order) = self
            .orders_with_key(idempotency_key)
            .await?
            .into_iter()
            .find(|o| !o.active)
        {
            return order.to_domain();
        }
        let active = self.active_order().await?;
        self.build(idempotency_key, request, active)
            .await?
            .to_domain()
    }

    async fn order(&self, shop_order_id: &str) -> Result<ShopOrder, CommerceError> {
        let data = self
            .call(documents::ORDER_BY_CODE, json!({ "code": shop_order_id }))
            .await?;
        match data.get("orderByCode") {
            None | Some(Value::Null) => Err(CommerceError::NoSuchOrder(shop_order_id.into())),
            Some(order) => decode::<wire::Order>(order.clone(), "orderByCode")?.to_domain(),
        }
    }

    async fn find_order(&self, idempotency_key: &str) -> Result<Option<ShopOrder>, CommerceError> {
        self.orders_with_key(idempotency_key)
            .await?
            .into_iter()
            .find(|o| !o.active)
            .map(|o| o.to_domain())
            .transpose()
    }

    async fn cancel(&self, _shop_order_id: &str) -> Result<ShopOrder, CommerceError> {
        // Vendure's Shop API lets a customer change only the active order; a placed order is
        // cancelled by the shop (Admin API), which the agent then reads as cancelled.
        Err(CommerceError::Unsupported(
            "cancel a placed order (Vendure's Shop API has no cancel for customers)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stock_levels_read_as_numbers_or_words() {
        assert_eq!(stock("12"), 12);
        assert_eq!(stock("0"), 0);
        assert_eq!(stock("OUT_OF_STOCK"), 0);
        assert_eq!(stock("LOW_STOCK"), 1);
        assert_eq!(stock("IN_STOCK"), u32::MAX);
        assert_eq!(stock("lots"), 0);
    }

    #[test]
    fn an_unknown_error_code_is_a_refusal_and_stock_errors_say_what_is_left() {
        let data = json!({ "addItemToOrder": {
            "errorCode": "INSUFFICIENT_STOCK_ERROR", "message": "Only 2 items were added",
            "quantityAvailable": 2 } });
        assert!(matches!(
            member(&data, "addItemToOrder"),
            Err(CommerceError::OutOfStock { available: 2, .. })
        ));
        let data =
            json!({ "login": { "errorCode": "INVALID_CREDENTIALS_ERROR", "message": "no" } });
        assert!(matches!(
            member(&data, "login"),
            Err(CommerceError::Rejected { .. })
        ));
        let data = json!({ "login": { "id": "1" } });
        assert!(member(&data, "login").is_ok());
    }

    #[test]
    fn the_password_stays_out_of_debug_output() {
        let account = VendureAccount {
            channel_token: None,
            email: "a@example.com".into(),
            password: "secret-words".into(),
            payment_method: "pay".into(),
            address: Address {
                full_name: "A".into(),
                street: "S 1".into(),
                city: "C".into(),
                postal_code: "1".into(),
                country_code: "DE".into(),
            },
        };
        assert!(!format!("{account:?}").contains("secret-words"));
    }
}
