//! The JSON API under `/api/v1`. Every route needs `Authorization: Bearer <token>`; the
//! engine checks roles. Errors are `application/problem+json`; lists are paginated.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use replenish_protocol::{DeviceId, Id};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::{AppState, Caller, ask_problem, problem, unavailable};
use crate::auth::{hash_token, new_token};
use crate::clock::UnixMs;
use crate::engine::household::{self, Member, Permission};
use crate::engine::order::OrderId;
use crate::engine::{Engine, Event};
use crate::runtime::DeviceLoginError;
use crate::wire::{
    AuditEntry, ConsumableRules, DeviceView, ExpiryDefault, Locale, Mode, OrderEdit, OrderView,
    Presence, RejectReason, Role, Rules, SlotView, StatusPage, StatusTotals, status_page,
};
use replenish_commerce::sandbox::wire::Problem;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/status", get(status))
        .route("/api/v1/me", get(me))
        .route("/api/v1/orders", get(list_orders))
        .route("/api/v1/orders/{id}", get(get_order))
        .route("/api/v1/orders/{id}/options", get(order_options))
        .route("/api/v1/orders/{id}/approve", post(approve))
        .route("/api/v1/orders/{id}/reject", post(reject))
        .route("/api/v1/orders/{id}/collected", post(collected))
        .route("/api/v1/orders/{id}/cancel", post(cancel))
        .route("/api/v1/orders/{id}/snooze", post(snooze))
        .route("/api/v1/rules", get(get_rules).put(put_rules))
        .route("/api/v1/members", get(list_members).post(add_member))
        .route("/api/v1/members/{id}", axum::routing::delete(remove_member))
        .route("/api/v1/devices", get(list_devices))
        .route("/api/v1/devices/{id}/accept", post(accept_device))
        .route("/api/v1/devices/{id}/login", post(issue_device_login))
        .route("/api/v1/devices/{id}", axum::routing::delete(remove_device))
        .route(
            "/api/v1/devices/{id}/commands",
            get(list_commands).post(send_command),
        )
        .route("/api/v1/audit", get(list_audit))
        .route("/api/v1/backup", get(backup))
}

/// A JSON body whose errors are problem documents too.
pub(super) struct Body<T>(T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Body(value)),
            Err(rejection) => Err(json_problem(rejection)),
        }
    }
}

fn json_problem(rejection: JsonRejection) -> Response {
    problem(rejection.status(), rejection.body_text())
}

/// Page through a list: `?page=1&per_page=50`.
#[derive(Debug, Clone, Copy, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct PageQuery {
    /// Page number, from 1.
    #[param(minimum = 1, maximum = 1_000_000, default = 1)]
    page: Option<usize>,
    /// Items per page, 1 to 100.
    #[param(minimum = 1, maximum = 100, default = 50)]
    per_page: Option<usize>,
}

impl PageQuery {
    fn bounds(self) -> Result<(usize, usize), Response> {
        let page = self.page.unwrap_or(1);
        let per_page = self.per_page.unwrap_or(50);
        if !(1..=1_000_000).contains(&page) || !(1..=100).contains(&per_page) {
            return Err(problem(
                StatusCode::BAD_REQUEST,
                "page is 1 to 1000000 and per_page 1 to 100",
            ));
        }
        Ok((page, per_page))
    }
}

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    /// This page's items.
    pub items: Vec<T>,
    /// Page number, from 1.
    pub page: usize,
    /// Items per page.
    pub per_page: usize,
    /// Items in all pages.
    pub total: usize,
    /// The next page's number, if there is one.
    pub next_page: Option<usize>,
}

fn paginate<T>(all: Vec<T>, page: usize, per_page: usize) -> Page<T> {
    let total = all.len();
    let items: Vec<T> = all
        .into_iter()
        .skip((page - 1).saturating_mul(per_page))
        .take(per_page)
        .collect();
    let next_page = (page.saturating_mul(per_page) < total).then_some(page + 1);
    Page {
        items,
        page,
        per_page,
        total,
        next_page,
    }
}

/// A member as the API shows them (never their token).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MemberView {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// When they were added.
    pub created_at_ms: UnixMs,
}

impl From<&Member> for MemberView {
    fn from(m: &Member) -> Self {
        Self {
            id: m.id.clone(),
            name: m.name.clone(),
            role: m.role.into(),
            created_at_ms: m.created_at,
        }
    }
}

/// A new member.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMember {
    /// Name, unique in the household: 1 to 40 printable characters, not only spaces.
    #[schema(
        min_length = 1,
        max_length = 40,
        pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*[^\\s\\x00-\\x1F\\x7F-\\x9F][^\\x00-\\x1F\\x7F-\\x9F]*$"
    )]
    pub name: String,
    /// Role.
    pub role: Role,
}

/// The member just added and their token, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedMember {
    /// The member.
    pub member: MemberView,
    /// Their API token; only its hash is stored.
    pub token: String,
}

/// A device's MQTT login, shown this once: enter it in the appliance's setup.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceLoginView {
    /// The user name, which is also the client id the device must use.
    pub username: String,
    /// The password; only its hash is stored.
    pub password: String,
}

/// Why an order is rejected.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectBody {
    /// The reason; `still_have_some` delays the next proposal the longest.
    pub reason: RejectReason,
    /// Free text, up to 200 characters.
    pub note: Option<String>,
}

/// How long to wait before asking again.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SnoozeBody {
    /// Hours, 1 to 168.
    #[schema(minimum = 1, maximum = 168)]
    #[serde(deserialize_with = "crate::wire::whole::u32")]
    pub hours: u32,
}

/// The order id in a path: one that cannot be an order id is no order (404).
fn order_id_or_404(id: &str) -> Result<OrderId, Response> {
    OrderId::parse(id).ok_or_else(|| problem(StatusCode::NOT_FOUND, format!("no order {id:.64}")))
}

fn device_id(id: &str) -> Result<DeviceId, Response> {
    DeviceId::new(id)
        .map_err(|e| problem(StatusCode::NOT_FOUND, format!("no device {id:.64}: {e}")))
}

/// Page through the state: `?cursor=<device id>&limit=50`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct StatusQuery {
    /// The `next_cursor` of the previous page; absent for the first.
    #[param(pattern = "^[a-z0-9_-]{1,32}$")]
    cursor: Option<String>,
    /// Devices per page, 1 to 200 (fewer when their data would pass 48 KB).
    #[param(minimum = 1, maximum = 200, default = 50)]
    limit: Option<usize>,
}

/// The state, a page of devices at a time (with their slots and open orders) and totals
#[utoipa::path(get, path = "/api/v1/status", tag = "status", params(StatusQuery),
    responses((status = 200, body = StatusPage), (status = 400, body = Problem),
        (status = 401, body = Problem)))]
async fn status(
    _caller: Caller,
    State(state): State<AppState>,
    Query(query): Query<StatusQuery>,
) -> Response {
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return problem(StatusCode::BAD_REQUEST, "limit is 1 to 200");
    }
    let cursor = match query.cursor.as_deref().map(DeviceId::new).transpose() {
        Ok(cursor) => cursor,
        Err(e) => return problem(StatusCode::BAD_REQUEST, format!("bad cursor: {e}")),
    };
    match state
        .agent
        .read(move |engine, now| status_page(engine, now, cursor.as_ref(), limit))
        .await
    {
        Ok(view) => Json(view).into_response(),
        Err(_) => unavailable(),
    }
}

/// Who the token belongs to
#[utoipa::path(get, path = "/api/v1/me", tag = "members",
    responses((status = 200, body = MemberView), (status = 401, body = Problem)))]
async fn me(caller: Caller) -> Json<MemberView> {
    Json(MemberView::from(&caller.0))
}

/// Filter orders by state.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct OrderQuery {
    /// Only orders in this state (proposed, approved, placed, shipped, delivered, cancelled,
    /// failed).
    state: Option<String>,
    /// Page number, from 1.
    #[param(minimum = 1, maximum = 1_000_000, default = 1)]
    page: Option<usize>,
    /// Items per page, 1 to 100.
    #[param(minimum = 1, maximum = 100, default = 50)]
    per_page: Option<usize>,
}

/// Orders, newest first
#[utoipa::path(get, path = "/api/v1/orders", tag = "orders", params(OrderQuery),
    responses((status = 200, body = Page<OrderView>), (status = 400, body = Problem),
        (status = 401, body = Problem)))]
async fn list_orders(
    _caller: Caller,
    State(state): State<AppState>,
    Query(query): Query<OrderQuery>,
) -> Response {
    let pages = PageQuery {
        page: query.page,
        per_page: query.per_page,
    };
    let filter = query.state;
    paged(&state, pages, move |engine| {
        engine
            .orders()
            .rev()
            .filter(|o| filter.as_deref().is_none_or(|s| o.state.as_str() == s))
            .map(OrderView::from)
            .collect()
    })
    .await
}

/// Reads a whole list from the engine and answers with the page asked for.
async fn paged<T: Serialize + Send + 'static>(
    state: &AppState,
    query: PageQuery,
    list: impl FnOnce(&Engine) -> Vec<T> + Send + 'static,
) -> Response {
    let (page, per_page) = match query.bounds() {
        Ok(bounds) => bounds,
        Err(response) => return response,
    };
    match state.agent.read(move |engine, _| list(engine)).await {
        Ok(all) => Json(paginate(all, page, per_page)).into_response(),
        Err(_) => unavailable(),
    }
}

async fn order_view(state: &AppState, id: OrderId) -> Response {
    let found = state
        .agent
        .read(move |engine, _| engine.order(&id).map(OrderView::from).ok_or(id))
        .await;
    match found {
        Ok(Ok(view)) => Json(view).into_response(),
        Ok(Err(id)) => problem(StatusCode::NOT_FOUND, format!("no order {id}")),
        Err(_) => unavailable(),
    }
}

/// One order
#[utoipa::path(get, path = "/api/v1/orders/{id}", tag = "orders",
    params(("id" = String, Path, description = "The agent's order id, e.g. o-000001")),
    responses((status = 200, body = OrderView), (status = 404, body = Problem)))]
async fn get_order(
    _caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    let id = match order_id_or_404(&id) {
        Ok(id) => id,
        Err(response) => return response,
    };
    order_view(&state, id).await
}

/// One way to get what a waiting order asks for (see `GET /api/v1/orders/{id}/options`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OrderOptionView {
    /// The shop's id: `shop` in the approve body.
    pub shop: String,
    /// The shop's name.
    pub shop_name: String,
    /// The product: `sku` in the approve body.
    pub sku: String,
    /// The product's name.
    pub product: String,
    /// Packs for at least the amount the order asks for.
    pub packs: u32,
    /// Amount in one pack.
    pub pack_size: f64,
    /// Unit of `pack_size` (`g`, `ml`, `pcs`).
    pub unit: String,
    /// The packs' price in minor units of `currency`.
    pub goods_minor: u64,
    /// The fulfilment fee in minor units.
    pub fee_minor: u64,
    /// Goods and fee.
    pub total_minor: u64,
    /// ISO 4217.
    pub currency: String,
    /// The fulfilment option's id: `fulfilment` in the approve body.
    pub fulfilment: Option<String>,
    /// Its name ("Home delivery", "Click and collect").
    pub fulfilment_name: Option<String>,
    /// For click and collect: where, and when it is open.
    pub pickup: Option<String>,
    /// Arrival if ordered now: early end.
    pub arrives_earliest_ms: UnixMs,
    /// Arrival if ordered now: late end.
    pub arrives_latest_ms: UnixMs,
    /// Arrives before the slot may run out.
    pub in_time: bool,
    /// A product the household allows for the consumable.
    pub allowed: bool,
    /// Within the price guard.
    pub within_price_guard: bool,
    /// What the order holds now.
    pub current: bool,
}

impl From<crate::engine::options::OrderOption> for OrderOptionView {
    fn from(o: crate::engine::options::OrderOption) -> Self {
        let pickup = o.fulfilment.as_ref().and_then(|f| match &f.method {
            replenish_commerce::Fulfilment::Pickup(p) => Some(format!(
                "{}, {} (open {})",
                p.name, p.address, p.opening_hours
            )),
            replenish_commerce::Fulfilment::Delivery => None,
        });
        Self {
            shop: o.shop.into(),
            shop_name: o.shop_name,
            sku: o.sku,
            product: o.product,
            packs: o.packs,
            pack_size: o.pack_size,
            unit: o.unit.symbol().to_string(),
            goods_minor: o.goods_minor,
            fee_minor: o.fee_minor,
            total_minor: o.total_minor,
            currency: o.currency.to_string(),
            fulfilment: o.fulfilment.as_ref().map(|f| f.id.clone()),
            fulfilment_name: o.fulfilment.as_ref().map(|f| f.name.clone()),
            pickup,
            arrives_earliest_ms: o.arrives_earliest_ms,
            arrives_latest_ms: o.arrives_latest_ms,
            in_time: o.in_time,
            allowed: o.allowed,
            within_price_guard: o.within_price_guard,
            current: o.current,
        }
    }
}

/// The options side by side for an order that waits for a decision
///
/// Every shop's products of the order's consumable in stock, by each fulfilment option the
/// household allows, for the same amount, cheapest per unit first. Approve with
/// `{"shop": ..., "sku": ..., "fulfilment": ...}` to take one.
#[utoipa::path(get, path = "/api/v1/orders/{id}/options", tag = "orders",
    params(("id" = String, Path, description = "The order")),
    responses((status = 200, body = Vec<OrderOptionView>), (status = 404, body = Problem),
        (status = 422, body = Problem, description = "The order does not wait for a decision")))]
async fn order_options(
    _caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    let id = match order_id_or_404(&id) {
        Ok(id) => id,
        Err(response) => return response,
    };
    let found = state
        .agent
        .read(move |engine, now| engine.order_options(&id, now))
        .await;
    match found {
        Ok(Ok(options)) => Json(
            options
                .into_iter()
                .map(OrderOptionView::from)
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Ok(Err(error)) => ask_problem(crate::runtime::AskError::Engine(error)),
        Err(_) => unavailable(),
    }
}

/// Approve a proposed order, perhaps changing it
///
/// The body is optional: `{"packs": 3}` or `{"sku": "beans-1kg"}` changes the order first;
/// `{"shop": "bigbox", "sku": "...", "fulfilment": "pickup"}` takes one of its options.
#[utoipa::path(post, path = "/api/v1/orders/{id}/approve", tag = "orders",
    params(("id" = String, Path, description = "The order")),
    request_body(content = Option<OrderEdit>, content_type = "application/json"),
    responses((status = 200, body = OrderView), (status = 404, body = Problem),
        (status = 422, body = Problem, description = "Not proposed, or an impossible edit")))]
async fn approve(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let id = match order_id_or_404(&id) {
        Ok(id) => id,
        Err(response) => return response,
    };
    // The body is optional, so it is parsed by hand rather than by the Json extractor.
    let edit = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        match serde_json::from_slice::<Option<OrderEdit>>(&body) {
            Ok(edit) => edit,
            Err(error) => {
                return problem(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!(
                        "the body takes \"packs\", \"sku\", \"shop\" and \"fulfilment\", each optional: {error}"
                    ),
                );
            }
        }
    };
    let event = Event::Approve {
        order_id: id.clone(),
        by: caller.actor(),
        edit: edit.map(Into::into),
    };
    decide_order(&state, id, event).await
}

/// Reject a proposed order (or cancel one in its cancel window)
#[utoipa::path(post, path = "/api/v1/orders/{id}/reject", tag = "orders",
    params(("id" = String, Path, description = "The order")),
    request_body = RejectBody,
    responses((status = 200, body = OrderView), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
async fn reject(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Body(body): Body<RejectBody>,
) -> Response {
    let id = match order_id_or_404(&id) {
        Ok(id) => id,
        Err(response) => return response,
    };
    let event = Event::Reject {
        order_id: id.clone(),
        by: caller.actor(),
        reason: body.reason.into(),
        note: body.note,
    };
    decide_order(&state, id, event).await
}

/// Say a click-and-collect order was collected
///
/// It counts as delivered from now, whatever the shop says later.
#[utoipa::path(post, path = "/api/v1/orders/{id}/collected", tag = "orders",
    params(("id" = String, Path, description = "The order")),
    responses((status = 200, body = OrderView), (status = 404, body = Problem),
        (status = 422, body = Problem, description = "Not a pickup order waiting to be collected")))]
async fn collected(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    let id = match order_id_or_404(&id) {
        Ok(id) => id,
        Err(response) => return response,
    };
    let event = Event::Collected {
        order_id: id.clone(),
        by: caller.actor(),
    };
    decide_order(&state, id, event).await
}

/// Hands a person's decision on order `id` to the engine; answers with the order as it then
/// stands, or the engine's refusal.
async fn decide_order(state: &AppState, id: OrderId, event: Event) -> Response {
    match state.agent.ask(event).await {
        Ok(()) => order_view(state, id).await,
        Err(error) => ask_problem(error),
    }
}

/// Cancel an order the shop has taken and not yet sent
///
/// The shop is asked at once; its answer comes later: the order turns `cancelled`, or a
/// `cancel_refused` notice (and the audit log) says why not. Answers `202` with the order as
/// it stands.
#[utoipa::path(post, path = "/api/v1/orders/{id}/cancel", tag = "orders",
    params(("id" = String, Path, description = "The order")),
    responses((status = 202, body = OrderView, description = "The shop is being asked"),
        (status = 404, body = Problem),
        (status = 422, body = Problem, description = "Not an order the shop holds unsent")))]
async fn cancel(caller: Caller, State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let id = match order_id_or_404(&id) {
        Ok(id) => id,
        Err(response) => return response,
    };
    let event = Event::Cancel {
        order_id: id.clone(),
        by: caller.actor(),
    };
    let mut response = decide_order(&state, id, event).await;
    if response.status() == StatusCode::OK {
        *response.status_mut() = StatusCode::ACCEPTED;
    }
    response
}

/// Ask again later
#[utoipa::path(post, path = "/api/v1/orders/{id}/snooze", tag = "orders",
    params(("id" = String, Path, description = "The order")),
    request_body = SnoozeBody,
    responses((status = 200, body = OrderView), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
async fn snooze(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Body(body): Body<SnoozeBody>,
) -> Response {
    let id = match order_id_or_404(&id) {
        Ok(id) => id,
        Err(response) => return response,
    };
    let event = Event::Snooze {
        order_id: id.clone(),
        by: caller.actor(),
        hours: body.hours,
    };
    decide_order(&state, id, event).await
}

/// The household's rules
#[utoipa::path(get, path = "/api/v1/rules", tag = "rules",
    responses((status = 200, body = Rules), (status = 401, body = Problem)))]
async fn get_rules(_caller: Caller, State(state): State<AppState>) -> Response {
    match state
        .agent
        .read(|engine, _| (engine.household().rules.clone(), engine.home_currency()))
        .await
    {
        Ok((rules, currency)) => Json(Rules::in_currency(rules, currency)).into_response(),
        Err(_) => unavailable(),
    }
}

/// Replace the rules (owners only)
#[utoipa::path(put, path = "/api/v1/rules", tag = "rules", request_body = Rules,
    responses((status = 200, body = Rules), (status = 403, body = Problem),
        (status = 422, body = Problem)))]
async fn put_rules(
    caller: Caller,
    State(state): State<AppState>,
    Body(rules): Body<Rules>,
) -> Response {
    let event = Event::SetRules {
        currency: rules.currency,
        rules: rules.into(),
        by: caller.actor(),
    };
    match state.agent.ask(event).await {
        Ok(()) => get_rules(caller, State(state)).await,
        Err(error) => ask_problem(error),
    }
}

/// Checks a permission for a read that the engine does not itself guard.
async fn require(
    state: &AppState,
    caller: &Caller,
    permission: Permission,
) -> Result<(), Response> {
    let actor = caller.actor();
    match state
        .agent
        .read(move |engine, _| engine.household().authorize(&actor, permission))
        .await
    {
        Ok(Ok(())) => Ok(()),
        Ok(Err(denied)) => Err(problem(StatusCode::FORBIDDEN, denied.to_string())),
        Err(_) => Err(unavailable()),
    }
}

/// A consistent copy of the whole store (owners only): `replenish-agent backup --url … --to
/// FILE` saves it, `restore --from FILE` writes it into an empty data directory.
#[utoipa::path(get, path = "/api/v1/backup", tag = "backup",
    responses((status = 200, body = crate::store::backup::Backup), (status = 403, body = Problem),
        (status = 500, body = Problem)))]
async fn backup(caller: Caller, State(state): State<AppState>) -> Response {
    if let Err(response) = require(&state, &caller, Permission::ChangeSettings).await {
        return response;
    }
    match state.agent.backup().await {
        Ok(Ok(copy)) => axum::Json(copy).into_response(),
        Ok(Err(why)) => {
            tracing::error!(%why, "backup failed");
            problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the store could not be read: {why}"),
            )
        }
        Err(_) => unavailable(),
    }
}

/// Members (owners only)
#[utoipa::path(get, path = "/api/v1/members", tag = "members", params(PageQuery),
    responses((status = 200, body = Page<MemberView>), (status = 403, body = Problem)))]
async fn list_members(
    caller: Caller,
    State(state): State<AppState>,
    Query(query): Query<PageQuery>,
) -> Response {
    if let Err(response) = require(&state, &caller, Permission::ChangeSettings).await {
        return response;
    }
    paged(&state, query, |engine| {
        engine
            .household()
            .members
            .values()
            .map(MemberView::from)
            .collect()
    })
    .await
}

/// Adds a member with a new token; returns the member and the token (shown once).
pub(super) async fn create_member(
    state: &AppState,
    caller: &Caller,
    name: String,
    role: household::Role,
) -> Result<CreatedMember, Response> {
    let token =
        new_token().map_err(|e| problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let hash = hash_token(&token);
    let event = Event::AddMember {
        name,
        role,
        token_hash: hash.clone(),
        by: caller.actor(),
    };
    state.agent.ask(event).await.map_err(ask_problem)?;
    let member = state
        .agent
        .read(move |engine, _| engine.household().member_by_token_hash(&hash).cloned())
        .await
        .ok()
        .flatten()
        .ok_or_else(unavailable)?;
    Ok(CreatedMember {
        member: MemberView::from(&member),
        token,
    })
}

/// Add a member (owners only); the response carries their token, shown this once
#[utoipa::path(post, path = "/api/v1/members", tag = "members", request_body = NewMember,
    responses((status = 201, body = CreatedMember), (status = 403, body = Problem),
        (status = 409, body = Problem, description = "The name is taken"),
        (status = 422, body = Problem)))]
async fn add_member(
    caller: Caller,
    State(state): State<AppState>,
    Body(body): Body<NewMember>,
) -> Response {
    match create_member(&state, &caller, body.name, body.role.into()).await {
        Ok(created) => (StatusCode::CREATED, Json(created)).into_response(),
        Err(response) => response,
    }
}

/// Remove a member (owners only)
#[utoipa::path(delete, path = "/api/v1/members/{id}", tag = "members",
    params(("id" = String, Path, description = "The member, e.g. m-000002")),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem, description = "The last owner")))]
async fn remove_member(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    let event = Event::RemoveMember {
        member_id: id,
        by: caller.actor(),
    };
    match state.agent.ask(event).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => ask_problem(error),
    }
}

/// Devices, including those waiting to be accepted
#[utoipa::path(get, path = "/api/v1/devices", tag = "devices", params(PageQuery),
    responses((status = 200, body = Page<DeviceView>)))]
async fn list_devices(
    _caller: Caller,
    State(state): State<AppState>,
    Query(query): Query<PageQuery>,
) -> Response {
    paged(&state, query, |engine| {
        engine.devices().map(DeviceView::from).collect()
    })
    .await
}

/// Accept a device that waits to join (owners only)
#[utoipa::path(post, path = "/api/v1/devices/{id}/accept", tag = "devices",
    params(("id" = String, Path, description = "The device")),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "Already part of the household")))]
async fn accept_device(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    device_event(&state, &id, |device| Event::AcceptDevice {
        device,
        by: caller.actor(),
    })
    .await
}

/// Give a device an MQTT login, or a new one (owners only): the password is shown this once,
/// the old one stops working, and the device is part of the household from its first birth
#[utoipa::path(post, path = "/api/v1/devices/{id}/login", tag = "devices",
    params(("id" = String, Path, description = "The device (known or not yet connected)")),
    responses((status = 201, body = DeviceLoginView), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
async fn issue_device_login(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    match create_device_login(&state, caller.actor(), &id).await {
        Ok(login) => (StatusCode::CREATED, Json(login)).into_response(),
        Err(response) => response,
    }
}

/// Gives device `id` a new MQTT login; returns it (the password shown once).
pub(super) async fn create_device_login(
    state: &AppState,
    by: crate::engine::household::Actor,
    id: &str,
) -> Result<DeviceLoginView, Response> {
    let device = device_id(id)?;
    let password = state
        .agent
        .issue_device_login(device.clone(), by)
        .await
        .map_err(|error| match error {
            DeviceLoginError::Ask(error) => ask_problem(error),
            DeviceLoginError::Randomness(error) => {
                problem(StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
            }
        })?;
    Ok(DeviceLoginView {
        username: device.to_string(),
        password,
    })
}

/// Remove a device and its slots (owners only); its orders stay
#[utoipa::path(delete, path = "/api/v1/devices/{id}", tag = "devices",
    params(("id" = String, Path, description = "The device")),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn remove_device(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    device_event(&state, &id, |device| Event::RemoveDevice {
        device,
        by: caller.actor(),
    })
    .await
}

/// A command for a device, as an owner may send it (the agent sets clocks itself).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum CommandRequest {
    /// Take the slot's current reading as zero (the empty container is in place).
    Tare {
        /// The slot.
        #[schema(pattern = "^[a-z0-9_-]{1,32}$")]
        slot: String,
    },
    /// The slot now holds `known` (in its unit): the second calibration point.
    Calibrate {
        /// The slot.
        #[schema(pattern = "^[a-z0-9_-]{1,32}$")]
        slot: String,
        /// The amount in the slot, 0.000001 to a billion in the slot's unit.
        #[schema(minimum = 0.000_001, maximum = 1_000_000_000.0)]
        known: f64,
    },
    /// Report levels at least this often.
    ReportInterval {
        /// Seconds, 1 to 86,400 (a day).
        #[schema(minimum = 1, maximum = 86_400)]
        #[serde(deserialize_with = "crate::wire::whole::u32")]
        seconds: u32,
    },
}

/// A command sent and not yet acknowledged by the device.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PendingCommandView {
    /// The command's id (echoed in the device's ack).
    pub id: u32,
    /// `tare`, `calibrate`, `report_interval` or `time_sync`.
    pub command: String,
    /// When it was last sent.
    pub sent_at_ms: UnixMs,
    /// How many times it was sent.
    pub attempts: u32,
}

/// Send a command to a device (owners only); the outcome arrives as a notice
#[utoipa::path(post, path = "/api/v1/devices/{id}/commands", tag = "devices",
    params(("id" = String, Path, description = "The device")), request_body = CommandRequest,
    responses((status = 202, description = "Sent; waiting for the device's ack."),
        (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
async fn send_command(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Body(request): Body<CommandRequest>,
) -> Response {
    use replenish_protocol::CommandBody;
    let slot = |slot: String| {
        Id::new(&slot).map_err(|e| {
            problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("bad slot {slot:.64}: {e}"),
            )
        })
    };
    let body = match request {
        CommandRequest::Tare { slot: s } => slot(s).map(|slot| CommandBody::Tare { slot }),
        CommandRequest::Calibrate { known, .. } if !(1e-6..=1e9).contains(&known) => Err(problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("known must be 0.000001 to 1000000000, not {known}"),
        )),
        CommandRequest::Calibrate { slot: s, known } => {
            // In range, so the device's f32 holds it.
            slot(s).map(|slot| CommandBody::Calibrate {
                slot,
                known: known as f32,
            })
        }
        CommandRequest::ReportInterval { seconds } if (1..=86_400).contains(&seconds) => {
            Ok(CommandBody::ReportInterval { seconds })
        }
        CommandRequest::ReportInterval { seconds } => Err(problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("a report interval is 1 to 86400 seconds, not {seconds}"),
        )),
    };
    let body = match body {
        Ok(body) => body,
        Err(response) => return response,
    };
    let device = match device_id(&id) {
        Ok(device) => device,
        Err(response) => return response,
    };
    let event = Event::Command {
        device,
        body,
        by: caller.actor(),
    };
    match state.agent.ask(event).await {
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        Err(error) => ask_problem(error),
    }
}

/// Commands sent to a device and not yet acknowledged
#[utoipa::path(get, path = "/api/v1/devices/{id}/commands", tag = "devices",
    params(("id" = String, Path, description = "The device")),
    responses((status = 200, body = Vec<PendingCommandView>), (status = 404, body = Problem)))]
async fn list_commands(
    _caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    let device = match device_id(&id) {
        Ok(device) => device,
        Err(response) => return response,
    };
    let read = state
        .agent
        .read(move |engine, _| {
            engine.device_by_id(&device).is_some().then(|| {
                engine
                    .pending_commands(&device)
                    .iter()
                    .map(|p| PendingCommandView {
                        id: p.command.id,
                        command: crate::engine::command_name(&p.command.body).into(),
                        sent_at_ms: p.sent_at,
                        attempts: p.attempts,
                    })
                    .collect::<Vec<_>>()
            })
        })
        .await;
    match read {
        Ok(Some(pending)) => Json(pending).into_response(),
        Ok(None) => problem(StatusCode::NOT_FOUND, format!("no device {id:.64}")),
        Err(_) => unavailable(),
    }
}

/// Asks the engine for a change to device `id`: `204` when done.
async fn device_event(
    state: &AppState,
    id: &str,
    event: impl FnOnce(DeviceId) -> Event,
) -> Response {
    let device = match device_id(id) {
        Ok(device) => device,
        Err(response) => return response,
    };
    match state.agent.ask(event(device)).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => ask_problem(error),
    }
}

/// The audit trail, newest first
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(PageQuery),
    responses((status = 200, body = Page<AuditEntry>)))]
async fn list_audit(
    _caller: Caller,
    State(state): State<AppState>,
    Query(query): Query<PageQuery>,
) -> Response {
    paged(&state, query, |engine| {
        engine
            .audit()
            .rev()
            .cloned()
            .map(AuditEntry::from)
            .collect()
    })
    .await
}

/// This document
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "status",
    responses((status = 200, description = "The OpenAPI 3 document of this API.")))]
async fn openapi(_caller: Caller, State(state): State<AppState>) -> Response {
    let mut doc = ApiDoc::openapi();
    // The rules' money is in this household's currency and no other: said in the schema
    // (the committed document, for any household, gives only the pattern).
    if let Ok(currency) = state.agent.read(|engine, _| engine.home_currency()).await {
        use utoipa::openapi::{RefOr, schema::Schema};
        if let Some(RefOr::T(Schema::Object(rules))) = doc
            .components
            .as_mut()
            .and_then(|c| c.schemas.get_mut("Rules"))
            && let Some(RefOr::T(Schema::Object(field))) = rules.properties.get_mut("currency")
        {
            field.enum_values = Some(vec![currency.to_string().into()]);
        }
    }
    Json(doc).into_response()
}

/// The agent API's OpenAPI document, generated from the handlers and types.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "replenish agent API",
        version = "1.0.0",
        description = "The household's API: state and forecasts, orders and their approval, \
            rules, members, devices and the audit trail. Every route needs \
            `Authorization: Bearer <token>`; owners change rules, members and devices, members \
            decide orders. Errors are RFC 9457 `application/problem+json`.",
        license(name = "MIT OR Apache-2.0", identifier = "MIT OR Apache-2.0"),
    ),
    paths(status, me, list_orders, get_order, order_options, approve, reject, collected, cancel, snooze, get_rules, put_rules,
        list_members, add_member, remove_member, list_devices, accept_device, issue_device_login, remove_device,
        send_command, list_commands, list_audit, backup, openapi),
    components(schemas(StatusPage, StatusTotals, DeviceView, DeviceLoginView, SlotView, OrderView, OrderOptionView,
        CommandRequest, PendingCommandView, Presence,
        AuditEntry, MemberView, NewMember, CreatedMember, RejectBody, SnoozeBody, OrderEdit,
        Rules, ConsumableRules, Mode, ExpiryDefault, RejectReason, Role, Locale, Problem,
        crate::store::backup::Backup, crate::store::backup::Record)),
    modifiers(&BearerAuth, &CommonAnswers, &SerdeShapes),
    security(("bearer" = [])),
    tags(
        (name = "status", description = "What the agent knows."),
        (name = "orders", description = "Orders and their approval."),
        (name = "rules", description = "The household's rules."),
        (name = "members", description = "People and their tokens."),
        (name = "devices", description = "Appliances and pairing."),
        (name = "audit", description = "Who changed what."),
        (name = "backup", description = "A copy of everything the agent stores."),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The answers any route can give besides its own, added to every operation so the document
/// lists every status a client can meet: a bad or missing token (401), too many failed ones
/// (429), a request that arrives too slowly (408), the agent stopping (503); with a body, also
/// malformed JSON (400), too large (413), not JSON (415) and JSON of the wrong shape (422);
/// with query parameters, bad ones (400). All are problem documents (RFC 9457).
struct CommonAnswers;

impl utoipa::Modify for CommonAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::ParameterIn;
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        let answer = |description: &str| -> RefOr<utoipa::openapi::Response> {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/problem+json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("Problem")))
                            .build(),
                    )
                    .build(),
            )
        };
        for item in openapi.paths.paths.values_mut() {
            for operation in [
                item.get.as_mut(),
                item.post.as_mut(),
                item.put.as_mut(),
                item.delete.as_mut(),
            ]
            .into_iter()
            .flatten()
            {
                let has_body = operation.request_body.is_some();
                let has_query = operation.parameters.iter().flatten().any(
                    |p| matches!(p, RefOr::T(p) if matches!(p.parameter_in, ParameterIn::Query)),
                );
                let mut common = vec![
                    ("401", "Missing, malformed, unknown or revoked token"),
                    ("408", "The request did not arrive in time"),
                    (
                        "429",
                        "Too many failed authentications from this address; see Retry-After",
                    ),
                    ("503", "The agent is shutting down"),
                ];
                if has_body {
                    common.extend([
                        ("400", "The body is not valid JSON"),
                        ("413", "The body is over 64 KiB"),
                        ("415", "The body is not application/json"),
                        (
                            "422",
                            "The JSON does not have the expected shape, or is refused",
                        ),
                    ]);
                }
                if has_query {
                    common.push(("400", "A query parameter is malformed or out of range"));
                }
                // Errors are problem documents: say so where a route declared plain JSON.
                for (status, response) in operation.responses.responses.iter_mut() {
                    if let RefOr::T(response) = response
                        && (status.starts_with('4') || status.starts_with('5'))
                        && let Some(content) = response.content.shift_remove("application/json")
                    {
                        response
                            .content
                            .insert("application/problem+json".to_string(), content);
                    }
                }
                for (status, description) in common {
                    operation
                        .responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| answer(description));
                }
            }
        }
    }
}

/// What serde and the engine enforce and utoipa does not say: a command is an object of exactly
/// one known key whose value has no other fields; the keys of the rules' `consumables` are
/// consumable ids; a time zone is one of the agent's tz database.
struct SerdeShapes;

impl utoipa::Modify for SerdeShapes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::RefOr;
        use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Schema, Type};
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        let closed = || Some(Box::new(AdditionalProperties::FreeForm(false)));
        if let Some(RefOr::T(Schema::OneOf(commands))) =
            components.schemas.get_mut("CommandRequest")
        {
            for variant in &mut commands.items {
                if let RefOr::T(Schema::Object(wrapper)) = variant {
                    wrapper.additional_properties = closed();
                    for body in wrapper.properties.values_mut() {
                        if let RefOr::T(Schema::Object(body)) = body {
                            body.additional_properties = closed();
                        }
                    }
                }
            }
        }
        if let Some(RefOr::T(Schema::Object(rules))) = components.schemas.get_mut("Rules")
            && let Some(RefOr::T(Schema::Object(timezone))) = rules.properties.get_mut("timezone")
        {
            // The zones the agent knows (its bundled copy of the tz database).
            let mut zones: Vec<String> =
                jiff::tz::db().available().map(|z| z.to_string()).collect();
            zones.sort();
            timezone.enum_values = Some(zones.into_iter().map(serde_json::Value::from).collect());
        }
        if let Some(RefOr::T(Schema::Object(rules))) = components.schemas.get_mut("Rules")
            && let Some(RefOr::T(Schema::Object(consumables))) =
                rules.properties.get_mut("consumables")
        {
            consumables.property_names = Some(Box::new(Schema::Object(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some("^[a-z0-9_-]{1,32}$"))
                    .build(),
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_lists_the_common_answers_as_problem_documents() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let mut operations = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                operations += 1;
                let responses = &operation["responses"];
                for status in ["401", "408", "429", "503"] {
                    assert!(
                        responses[status]["content"]["application/problem+json"].is_object(),
                        "{method} {path} lacks {status}"
                    );
                }
                if operation.get("requestBody").is_some() {
                    for status in ["400", "413", "415", "422"] {
                        assert!(
                            responses[status].is_object(),
                            "{method} {path} lacks {status}"
                        );
                    }
                }
            }
        }
        assert!(operations > 20, "{operations}");
    }

    #[test]
    fn pages_cover_the_list_once() {
        let page = paginate((1..=5).collect(), 2, 2);
        assert_eq!(
            (page.items, page.total, page.next_page),
            (vec![3, 4], 5, Some(3))
        );
        let last = paginate((1..=5).collect::<Vec<i32>>(), 3, 2);
        assert_eq!((last.items, last.next_page), (vec![5], None));
        assert!(
            paginate((1..=5).collect::<Vec<i32>>(), 9, 2)
                .items
                .is_empty()
        );
    }

    #[test]
    fn the_document_lists_every_route_and_the_bearer_scheme() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        for path in [
            "/api/v1/status",
            "/api/v1/orders/{id}/approve",
            "/api/v1/rules",
            "/api/v1/members/{id}",
            "/api/v1/audit",
        ] {
            assert!(doc["paths"].get(path).is_some(), "{path} missing");
        }
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
    }

    /// `docs/agent-api.openapi.json` must be the generated document. Regenerate it with
    /// `UPDATE_EXPECT=1 cargo test -p replenish-agent http::api::tests::openapi`.
    #[test]
    fn openapi_file_is_up_to_date() {
        expect_test::expect_file!["../../../docs/agent-api.openapi.json"].assert_eq(&format!(
            "{}\n",
            ApiDoc::openapi().to_pretty_json().unwrap()
        ));
    }
}
