//! The household's web page: server-rendered HTML (maud), no JavaScript, readable on a phone.
//!
//! Log in with a member token once; a session cookie (`HttpOnly`, `SameSite=Strict`) follows.
//! Every form carries the session's CSRF token, checked before anything changes; the login
//! form, which has no session yet, uses a double-submit cookie instead.

use axum::Form;
use axum::Router;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use jiff::tz::TimeZone;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use replenish_protocol::{DeviceId, Id};
use serde::Deserialize;

use super::AppState;
use super::api::create_member;
use super::sessions::SESSION_IDLE;
use crate::auth::{hash_token, random_secret, same_secret};
use crate::clock::{DAY_MS, UnixMs};
use crate::engine::household::{
    ConsumableRules, ExpiryDefault, Member, Mode, QuietHours, RejectReason, Role, Rules,
};
use crate::engine::inventory::SlotState;
use crate::engine::order::{Order, OrderId, OrderState};
use crate::engine::shopping::ShopInfo;
use crate::engine::words::Locale;
use crate::engine::words::{Names, Words, audit_action, cap};
use crate::engine::{Engine, Event, OrderEdit};
use crate::internal_events::{AuthThrottled, CsrfRefused, RequestRefused, Unauthorized, emit};
use crate::runtime::AskError;
use replenish_commerce::{Currency, Offer};

const SESSION_COOKIE: &str = "replenish_session";
const LOGIN_COOKIE: &str = "replenish_login";

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(dashboard))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/orders", get(orders_page))
        .route("/orders/{id}", get(order_page))
        .route("/orders/{id}/approve", post(approve_form))
        .route("/orders/{id}/reject", post(reject_form))
        .route("/orders/{id}/snooze", post(snooze_form))
        .route("/orders/{id}/cancel", post(cancel_form))
        .route("/orders/{id}/collected", post(collected_form))
        .route("/devices", get(devices_page))
        .route("/devices/{id}/accept", post(accept_device_form))
        .route("/devices/{id}/remove", post(remove_device_form))
        .route("/devices/login", post(device_login_form))
        .route("/settings", get(settings_page))
        .route("/settings/rules", post(rules_form))
        .route("/settings/members", post(add_member_form))
        .route("/settings/members/{id}/remove", post(remove_member_form))
        .route("/audit", get(audit_page))
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn set_cookie(state: &AppState, name: &str, value: &str, max_age_secs: u64) -> HeaderValue {
    let secure = if state.secure_cookies { "; Secure" } else { "" };
    let text = format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}"
    );
    // Values are base64url: always a valid header.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A logged-in member on the page.
struct Visitor {
    member: Member,
    session: String,
    csrf: String,
}

impl Visitor {
    fn actor(&self) -> crate::engine::household::Actor {
        crate::engine::household::Actor::Member(self.member.id.clone())
    }

    fn is_owner(&self) -> bool {
        self.member.role == Role::Owner
    }

    /// Refuses a form without this session's CSRF token.
    fn check(&self, csrf: &str) -> Result<(), Response> {
        if same_secret(csrf, &self.csrf) {
            Ok(())
        } else {
            emit(CsrfRefused {
                member: Some(&self.member.id),
            });
            Err(message_page(
                StatusCode::FORBIDDEN,
                "This form has expired",
                "Reload the page and try again.",
            ))
        }
    }
}

impl FromRequestParts<AppState> for Visitor {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let to_login = || Redirect::to("/login").into_response();
        let session = cookie(&parts.headers, SESSION_COOKIE).ok_or_else(to_login)?;
        let info = state.sessions.get(session).ok_or_else(to_login)?;
        let member_id = info.member_id.clone();
        // Looked up every time: a removed member is logged out at once.
        let member = state
            .agent
            .read(move |engine, _| engine.household().members.get(&member_id).cloned())
            .await
            .ok()
            .flatten();
        match member {
            Some(member) => Ok(Visitor {
                member,
                session: session.to_string(),
                csrf: info.csrf,
            }),
            None => {
                state.sessions.remove(session);
                Err(to_login())
            }
        }
    }
}

const STYLE: &str = r#"
*{box-sizing:border-box}body{font:16px/1.45 system-ui,sans-serif;margin:0;color:#1d2330;background:#f4f5f7}
header{background:#1f4e79;color:#fff;padding:.5rem 1rem}header a{color:#fff;margin-right:.8rem;text-decoration:none}
header form{display:inline}header .who{float:right;font-size:.9rem}
main{max-width:60rem;margin:0 auto;padding:1rem}
.card{background:#fff;border-radius:.5rem;padding:1rem;margin:0 0 1rem;box-shadow:0 1px 2px #0002}
.pending{border-left:.4rem solid #d98e04}.grid{display:grid;gap:1rem;grid-template-columns:repeat(auto-fill,minmax(17rem,1fr))}
h1{font-size:1.4rem}h2{font-size:1.15rem;margin:.2rem 0 .5rem}small,.muted{color:#5b6270}
button,.button{font:inherit;padding:.45rem .9rem;border:0;border-radius:.3rem;background:#1f4e79;color:#fff;cursor:pointer;text-decoration:none;display:inline-block}
button.secondary{background:#6b7280}button.danger{background:#b3261e}
input,select{font:inherit;padding:.35rem;max-width:100%}label{display:block;margin:.4rem 0}
table{border-collapse:collapse;width:100%;background:#fff}td,th{padding:.4rem;border-bottom:1px solid #e3e5e8;text-align:left;font-size:.92rem}
.state{font-weight:600}.error{color:#b3261e}.token{font-family:monospace;word-break:break-all;background:#fff7d6;padding:.6rem}
meter{width:100%;height:1rem}svg{width:100%;height:auto}.row{display:flex;gap:.5rem;flex-wrap:wrap;align-items:center}
"#;

fn layout(title: &str, visitor: Option<&Visitor>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · replenish" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    @if let Some(v) = visitor {
                        span.who {
                            (v.member.name) " (" (v.member.role.as_str()) ") "
                            form method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(v.csrf);
                                button.secondary type="submit" { "Log out" }
                            }
                        }
                        a href="/" { "Home" }
                        a href="/orders" { "Orders" }
                        a href="/devices" { "Devices" }
                        a href="/settings" { "Settings" }
                        a href="/audit" { "Audit" }
                    } @else {
                        strong { "replenish" }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

fn page(status: StatusCode, title: &str, visitor: Option<&Visitor>, body: Markup) -> Response {
    let mut response = (status, layout(title, visitor, body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn message_page(status: StatusCode, title: &str, text: &str) -> Response {
    page(
        status,
        title,
        None,
        html! { p.card { (text) } p { a href="/" { "Back" } } },
    )
}

fn unavailable_page() -> Response {
    message_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Unavailable",
        "The agent is shutting down.",
    )
}

/// What the pages read from the engine in one go.
struct View {
    now: UnixMs,
    zone: TimeZone,
    rules: Rules,
    slots: Vec<SlotState>,
    orders: Vec<Order>,
    devices: Vec<crate::engine::inventory::DeviceState>,
    catalogs: std::collections::BTreeMap<crate::engine::ShopId, replenish_commerce::Catalog>,
    shops: Vec<ShopInfo>,
    names: Names,
}

impl View {
    /// Speaks for the household: its locale, time zone and names.
    fn words(&self) -> Words<'_> {
        Words {
            locale: self.rules.locale,
            zone: self.zone.clone(),
            now: self.now,
            names: &self.names,
            shops: &self.shops,
            catalogs: &self.catalogs,
        }
    }

    fn slot_of(&self, device: &DeviceId, slot: &Id) -> Option<&SlotState> {
        self.slots
            .iter()
            .find(|s| &s.device == device && &s.spec.id == slot)
    }

    /// Why the order's first line was ordered, in words.
    fn why(&self, order: &Order) -> String {
        self.words().order_why(
            order,
            self.slot_of(&order.first_line().device, &order.first_line().slot),
        )
    }
}

async fn view(state: &AppState) -> Result<View, Response> {
    state
        .agent
        .read(|engine: &Engine, now| {
            let rules = engine.household().rules.clone();
            View {
                now,
                zone: rules.zone(),
                rules,
                slots: engine.slots().cloned().collect(),
                orders: engine.orders().cloned().collect(),
                devices: engine.devices().cloned().collect(),
                catalogs: engine.catalogs().clone(),
                shops: engine.config().shops.clone(),
                names: engine.config().names.clone(),
            }
        })
        .await
        .map_err(|_| unavailable_page())
}

fn csrf_field(visitor: &Visitor) -> Markup {
    html! { input type="hidden" name="csrf" value=(visitor.csrf); }
}

/// A small chart: the level over the last 30 days, then the forecast band to empty.
fn chart(slot: &SlotState, now: UnixMs, words: &Words<'_>) -> Markup {
    const W: f64 = 300.0;
    const H: f64 = 90.0;
    let past = 30.0;
    let ahead = 14.0;
    let today = (now / DAY_MS) as f64;
    let top = slot
        .daily_levels
        .values()
        .copied()
        .chain(slot.level)
        .fold(f64::from(slot.spec.capacity), f64::max)
        .max(1.0);
    let x = |day: f64| ((day - (today - past)) / (past + ahead) * W).clamp(0.0, W);
    let y = |level: f64| H - (level / top * (H - 4.0)).clamp(0.0, H);
    let line: Vec<String> = slot
        .daily_levels
        .iter()
        .map(|(&d, &l)| format!("{:.1},{:.1}", x(d as f64 + 0.5), y(l)))
        .collect();
    let now_x = x(now as f64 / DAY_MS as f64);
    let band = slot.forecast.as_ref().and_then(|f| {
        let level = slot.level?;
        let at = |t: Option<UnixMs>| t.map(|t| t as f64 / DAY_MS as f64);
        let (early, mid, late) = (at(f.empty_earliest)?, at(f.empty_at)?, at(f.empty_latest)?);
        Some((level, early, mid, late))
    });
    html! {
        svg viewBox=(format!("0 0 {W} {H}")) role="img"
            aria-label=(format!("{} over the last 30 days and the forecast", words.name(slot.spec.consumable.as_str()))) {
            rect x="0" y="0" width=(W) height=(H) fill="#f7f9fb" {}
            @if let Some((level, early, mid, late)) = band {
                polygon fill="#d98e0433" points=(format!(
                    "{now_x:.1},{:.1} {:.1},{H} {:.1},{H}", y(level), x(early), x(late))) {}
                line x1=(format!("{now_x:.1}")) y1=(format!("{:.1}", y(level)))
                    x2=(format!("{:.1}", x(mid))) y2=(H) stroke="#d98e04" stroke-dasharray="4 3" {}
            }
            @if !line.is_empty() {
                polyline fill="none" stroke="#1f4e79" stroke-width="2" points=(line.join(" ")) {}
            }
            line x1=(format!("{now_x:.1}")) y1="0" x2=(format!("{now_x:.1}")) y2=(H)
                stroke="#9aa1ac" stroke-width="1" {}
        }
    }
}

fn pending_card(order: &Order, view: &View, visitor: &Visitor) -> Markup {
    let words = view.words();
    let pending = order.pending.as_ref();
    html! {
        div.card.pending data-order=(order.id) {
            h2 { (words.order_title(order)) }
            p { strong { (words.order(order)) "." } }
            p.fulfilment { (words.fulfilment(order)) }
            @if let Some(p) = pending { p { (p.why) "." } }
            p.muted { (view.why(order)) }
            @if let Some(p) = pending {
                @if let Some(at) = p.expires_at {
                    p.muted {
                        @match p.on_expiry {
                            ExpiryDefault::Order => "Ordered by itself at ",
                            ExpiryDefault::Skip => "Skipped if nobody answers by ",
                        }
                        (words.when(at)) "."
                    }
                }
            }
            div.row {
                form method="post" action=(format!("/orders/{}/approve", order.id)) {
                    (csrf_field(visitor))
                    button type="submit" { "Approve" }
                }
                a.button href=(format!("/orders/{}", order.id)) { "Other choices or reject" }
            }
        }
    }
}

async fn dashboard(visitor: Visitor, State(state): State<AppState>) -> Response {
    let view = match view(&state).await {
        Ok(view) => view,
        Err(response) => return response,
    };
    let waiting: Vec<&Order> = view
        .orders
        .iter()
        .filter(|o| o.state == OrderState::Proposed)
        .collect();
    let body = html! {
        @if !waiting.is_empty() {
            h2 { "Waiting for you" }
            @for order in &waiting { (pending_card(order, &view, &visitor)) }
        }
        @if view.slots.is_empty() {
            p.card { "No appliance has reported yet. New devices appear under "
                a href="/devices" { "Devices" } " for an owner to accept." }
        }
        div.grid {
            @for slot in &view.slots { (slot_card(slot, &view)) }
        }
    };
    page(StatusCode::OK, "Household", Some(&visitor), body)
}

fn slot_card(slot: &SlotState, view: &View) -> Markup {
    let words = view.words();
    let unit = slot.spec.unit;
    let capacity = f64::from(slot.spec.capacity);
    let consumable = slot.spec.consumable.as_str();
    // What no shop sells (tap water) is watched, never ordered: no mode to speak of.
    let how = if words.orderable(consumable) {
        mode_words(view.rules.mode_of(consumable))
    } else {
        "not bought through the agent"
    };
    let usage_only = slot.spec.sensor == replenish_protocol::SensorKind::Usage;
    let open = view
        .orders
        .iter()
        .rev()
        .find(|o| o.state.is_open() && o.covers(&slot.device, &slot.spec.id));
    html! {
        div.card data-slot=(slot.key()) {
            h2 { (words.name(consumable)) }
            p.muted { (words.name(slot.device.as_str())) " · " (how) }
            @match (slot.level, usage_only) {
                (Some(level), _) => {
                    p { strong { (words.amount(level, unit)) } " of " (words.amount(capacity, unit))
                        @if slot.cupboard > 0.0 { " · " (words.amount(slot.cupboard, unit)) " in the cupboard" } }
                    meter min="0" max=(capacity) value=(level) {}
                }
                (None, true) => {
                    p { strong { (slot.uses) } " counted so far"
                        @if let Some(f) = &slot.forecast {
                            " · about " (words.amount(f.rate_per_day, unit)) " a day lately"
                        } }
                }
                (None, false) => p.muted { "Waiting for the first reading from "
                    (words.name(slot.device.as_str())) "." }
            }
            @if let (Some(f), Some(_)) = (&slot.forecast, slot.level) {
                p.outlook { (words.days_left(slot)) "." }
                @if let Some(mid) = f.empty_at {
                    p.muted { "Empty around " (words.when(mid))
                        " · about " (words.amount(f.rate_per_day, unit)) " a day" }
                }
            }
            @if slot.level.is_some() { (chart(slot, view.now, &words)) }
            @if let Some(order) = open {
                p { a href=(format!("/orders/{}", order.id)) { (words.order(order)) "." } }
            }
        }
    }
}

/// How a consumable is ordered, in words.
fn mode_words(mode: crate::engine::household::Mode) -> &'static str {
    use crate::engine::household::Mode;
    match mode {
        Mode::Auto => "ordered by itself",
        Mode::Approve => "ordered when you approve",
        Mode::Notify => "ordered unless you cancel in time",
        Mode::Off => "not ordered",
    }
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
    csrf: String,
}

async fn login_page(State(state): State<AppState>) -> Response {
    login_form(&state, StatusCode::OK, None)
}

fn login_form(state: &AppState, status: StatusCode, error: Option<&str>) -> Response {
    let Ok(csrf) = random_secret() else {
        return message_page(StatusCode::INTERNAL_SERVER_ERROR, "Error", "No randomness.");
    };
    let body = html! {
        form.card method="post" action="/login" {
            @if let Some(error) = error { p.error { (error) } }
            label { "Your member token"
                input type="password" name="token" autocomplete="current-password" required
                    placeholder="rpl_…" style="width:100%"; }
            input type="hidden" name="csrf" value=(csrf);
            button type="submit" { "Log in" }
            p.muted { "An owner creates tokens with "
                code { "replenish-agent household add-member NAME --role member" }
                " or on the Settings page." }
        }
    };
    let mut response = page(status, "Log in", None, body);
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(state, LOGIN_COOKIE, &csrf, 3600),
    );
    response
}

async fn login(
    State(state): State<AppState>,
    super::serve::PeerAddr(peer): super::serve::PeerAddr,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let peer = peer.map(|addr| addr.ip());
    let now = std::time::Instant::now();
    if let Some(peer) = peer
        && let Err(wait) = state.failed_logins.check(peer, now)
    {
        let seconds = wait.as_secs().max(1);
        emit(AuthThrottled { wait });
        let mut response = login_form(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            Some(&format!(
                "Too many wrong tokens from this device. Try again in {seconds} seconds."
            )),
        );
        if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return response;
    }
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !same_secret(&form.csrf, expected) {
        emit(CsrfRefused { member: None });
        return login_form(
            &state,
            StatusCode::FORBIDDEN,
            Some("The form expired; try again."),
        );
    }
    let hash = hash_token(&form.token);
    let member = state
        .agent
        .read(move |engine, _| engine.household().member_by_token_hash(&hash).cloned())
        .await
        .ok()
        .flatten();
    let Some(member) = member else {
        emit(Unauthorized::WebLogin);
        if let Some(peer) = peer {
            state.failed_logins.failed(peer, now);
        }
        return login_form(
            &state,
            StatusCode::UNAUTHORIZED,
            Some("Unknown or revoked token."),
        );
    };
    let Ok(session) = state.sessions.create(&member.id) else {
        return message_page(StatusCode::INTERNAL_SERVER_ERROR, "Error", "No randomness.");
    };
    tracing::info!(member = %member.id, "web login");
    let mut response = Redirect::to("/").into_response();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        set_cookie(&state, SESSION_COOKIE, &session, SESSION_IDLE.as_secs()),
    );
    headers.append(header::SET_COOKIE, set_cookie(&state, LOGIN_COOKIE, "", 0));
    response
}

#[derive(Deserialize)]
struct CsrfOnly {
    csrf: String,
}

async fn logout(
    visitor: Visitor,
    State(state): State<AppState>,
    Form(form): Form<CsrfOnly>,
) -> Response {
    if let Err(response) = visitor.check(&form.csrf) {
        return response;
    }
    state.sessions.remove(&visitor.session);
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&state, SESSION_COOKIE, "", 0),
    );
    response
}

#[derive(Deserialize)]
struct PageNumber {
    page: Option<usize>,
}

async fn orders_page(
    visitor: Visitor,
    State(state): State<AppState>,
    Query(q): Query<PageNumber>,
) -> Response {
    let view = match view(&state).await {
        Ok(view) => view,
        Err(response) => return response,
    };
    let per_page = 25;
    let page_no = q.page.unwrap_or(1).max(1);
    let total = view.orders.len();
    let orders: Vec<&Order> = view
        .orders
        .iter()
        .rev()
        .skip((page_no - 1) * per_page)
        .take(per_page)
        .collect();
    let words = view.words();
    let body = html! {
        table {
            tr { th { "Order" } th { "Where it stands" } th { "Changed" } }
            @for o in &orders {
                tr {
                    td { a href=(format!("/orders/{}", o.id)) { (words.order(o)) } }
                    td.state { (words.state(o)) }
                    td { (words.when(o.updated_at)) }
                }
            }
        }
        p.row {
            @if page_no > 1 { a href=(format!("/orders?page={}", page_no - 1)) { "Newer" } }
            @if page_no * per_page < total { a href=(format!("/orders?page={}", page_no + 1)) { "Older" } }
        }
    };
    page(StatusCode::OK, "Orders", Some(&visitor), body)
}

async fn order_page(
    visitor: Visitor,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    let view = match view(&state).await {
        Ok(view) => view,
        Err(response) => return response,
    };
    let Some(order) = view.orders.iter().find(|o| o.id == id.as_str()) else {
        return message_page(
            StatusCode::NOT_FOUND,
            "No such order",
            "It may have been removed.",
        );
    };
    // One order goes to one shop: the choices are that shop's.
    let choices: Vec<&Offer> = view
        .catalogs
        .get(&order.shop)
        .map(|c| c.offers.as_slice())
        .unwrap_or_default()
        .iter()
        .filter(|i| {
            i.consumable == order.first_line().consumable.as_str()
                && i.unit == order.first_line().unit
        })
        .collect();
    let proposed = order.state == OrderState::Proposed;
    let is_pickup = order
        .fulfilment
        .as_ref()
        .is_some_and(|f| matches!(f.method, replenish_commerce::Fulfilment::Pickup(_)));
    // Every shop's way to get it, side by side, while a person decides.
    let options = if proposed {
        let id = order.id.clone();
        match state
            .agent
            .read(move |engine, now| engine.order_options(&id, now))
            .await
        {
            Ok(Ok(options)) => options,
            Ok(Err(_)) => Vec::new(),
            Err(_) => return unavailable_page(),
        }
    } else {
        Vec::new()
    };
    let words = view.words();
    let body = html! {
        div.card {
            p { span.state data-state=(order.state.as_str()) { (cap(&words.state(order))) } }
            p { strong { (words.order(order)) "." } }
            // Once ready, the sentence above says where already.
            @if !(is_pickup && order.state == OrderState::Shipped) {
                p.fulfilment { (words.fulfilment(order)) }
            }
            @if let Some(p) = &order.pending { p { (p.why) "." } }
            @if proposed { p.muted { (view.why(order)) } }
            @if let Some(shop) = &order.shop_order_id {
                p.muted { "The shop's order number: " (shop) }
            }
            @if let Some(by) = &order.decided_by { p.muted { "Decided by " (by) "." } }
            @if let Some(e) = order.last_error.as_ref().filter(|_| order.state == OrderState::Failed) {
                p.muted { "The shop said: " (e) }
            }
        }
        @if order.state == OrderState::Placed && order.shop_order_id.is_some() {
            form.card method="post" action=(format!("/orders/{}/cancel", order.id)) {
                (csrf_field(&visitor))
                p.muted { "Not needed after all? The shop has not sent it yet." }
                button.danger type="submit" { "Ask the shop to cancel it" }
            }
        }
        @if is_pickup && matches!(order.state, OrderState::Placed | OrderState::Shipped) {
            form.card method="post" action=(format!("/orders/{}/collected", order.id)) {
                (csrf_field(&visitor))
                button type="submit" { "We collected it" }
            }
        }
        @if proposed {
            form.card method="post" action=(format!("/orders/{}/approve", order.id)) {
                h2 { "Approve" }
                (csrf_field(&visitor))
                label { "Packs " input type="number" name="packs" min="1" max="99" value=(order.first_line().packs); }
                @if choices.len() > 1 {
                    label { "Product "
                        select name="sku" {
                            @for item in &choices {
                                option value=(item.sku) selected[item.sku == order.first_line().sku] {
                                    (item.name) " – " (words.price(item.price)) }
                            }
                        }
                    }
                }
                button type="submit" { "Approve" }
            }
            @if options.len() > 1 {
                form.card.options method="post" action=(format!("/orders/{}/approve", order.id)) {
                    h2 { "Or choose another way" }
                    (csrf_field(&visitor))
                    @for option in &options {
                        label.option {
                            input type="radio" name="option" required
                                value=(format!("{}|{}|{}|{}", option.shop, option.sku,
                                    option.fulfilment.as_ref().map_or("", |f| f.id.as_str()), option.packs))
                                checked[option.current];
                            " " (option_line(option, &words))
                        }
                    }
                    button type="submit" { "Approve the chosen one" }
                }
            }
            form.card method="post" action=(format!("/orders/{}/reject", order.id)) {
                h2 { "Reject" }
                (csrf_field(&visitor))
                label { "Why "
                    select name="reason" {
                        @for reason in RejectReason::ALL {
                            option value=(reason.as_str()) { (reason_label(reason)) }
                        }
                    }
                }
                label { "Note " input type="text" name="note" maxlength="200"; }
                button.danger type="submit" { "Reject" }
            }
            @if order.pending.as_ref().is_some_and(|p| p.kind == crate::engine::household::PendingKind::Approval) {
                form.card method="post" action=(format!("/orders/{}/snooze", order.id)) {
                    h2 { "Ask me later" }
                    (csrf_field(&visitor))
                    select name="hours" {
                        option value="2" { "in 2 hours" }
                        option value="8" { "in 8 hours" }
                        option value="24" { "tomorrow" }
                    }
                    " " button.secondary type="submit" { "Snooze" }
                }
            }
        }
    };
    page(
        StatusCode::OK,
        &words.order_title(order),
        Some(&visitor),
        body,
    )
}

/// One option in words: where, what, how much, how and when it comes, and what speaks
/// against it: `BigBox: 2 × Beans 500 g, €17.98 with a €3.95 fee; delivered, arrives Thursday
/// to Friday`.
fn option_line(option: &crate::engine::options::OrderOption, words: &Words<'_>) -> String {
    let pickup = matches!(
        option.fulfilment.as_ref().map(|f| &f.method),
        Some(replenish_commerce::Fulfilment::Pickup(_))
    );
    let how = match option.fulfilment.as_ref().map(|f| (&f.method, f)) {
        Some((replenish_commerce::Fulfilment::Pickup(point), _)) => {
            format!(
                "collect at {}, {} (open {})",
                point.name, point.address, point.opening_hours
            )
        }
        Some((_, f)) => f.name.to_lowercase(),
        None => "delivered".to_string(),
    };
    let fee = if option.fee_minor > 0 {
        format!(
            " with a {} fee",
            words.money(option.fee_minor, option.currency)
        )
    } else {
        String::new()
    };
    let verb = if pickup { "ready" } else { "arrives" };
    let (early, late) = (
        words.day(option.arrives_earliest_ms),
        words.day(option.arrives_latest_ms),
    );
    let when = if early == late {
        early
    } else {
        format!("{early} to {late}")
    };
    let mut line = format!(
        "{}: {} × {}, {}{fee}; {how}, {verb} {when}",
        option.shop_name,
        option.packs,
        option.product,
        words.money(option.total_minor, option.currency),
    );
    for (ok, warning) in [
        (option.allowed, "not one of your chosen products"),
        (option.within_price_guard, "dearer than usual"),
        (option.in_time, "may arrive after it runs out"),
    ] {
        if !ok {
            line.push_str(&format!(" ({warning})"));
        }
    }
    line
}

fn reason_label(reason: RejectReason) -> &'static str {
    match reason {
        RejectReason::StillHaveSome => "We still have some",
        RejectReason::NotNeeded => "Not needed",
        RejectReason::TooExpensive => "Too expensive",
        RejectReason::Other => "Other",
    }
}

/// Carries out a person's event and goes back to `to`, or shows why not.
async fn act(state: &AppState, visitor: &Visitor, event: Event, to: &str) -> Response {
    match state.agent.ask(event).await {
        Ok(()) => Redirect::to(to).into_response(),
        Err(AskError::Engine(error)) => {
            emit(RequestRefused { error: &error });
            page(
                super::refusal_status(&error),
                "Not done",
                Some(visitor),
                html! { p.card.error { (error.to_string()) } p { a href=(to) { "Back" } } },
            )
        }
        Err(AskError::Stopped(_)) => unavailable_page(),
    }
}

#[derive(Deserialize)]
struct ApproveForm {
    csrf: String,
    packs: Option<u32>,
    sku: Option<String>,
    /// `shop|sku|fulfilment|packs` from the options (fulfilment may be empty).
    option: Option<String>,
}

async fn approve_form(
    visitor: Visitor,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Form(form): Form<ApproveForm>,
) -> Response {
    if let Err(response) = visitor.check(&form.csrf) {
        return response;
    }
    let mut edit = OrderEdit {
        packs: form.packs,
        sku: form.sku,
        ..OrderEdit::default()
    };
    // From the options: `shop|sku|fulfilment|packs` (fulfilment may be empty).
    if let Some(option) = form.option.filter(|o| !o.is_empty()) {
        let mut parts = option.splitn(4, '|').map(str::to_string);
        edit.shop = parts.next();
        edit.sku = parts.next().or(edit.sku);
        edit.fulfilment = parts.next().filter(|f| !f.is_empty());
        edit.packs = parts.next().and_then(|p| p.parse().ok()).or(edit.packs);
    }
    let edit = (edit != OrderEdit::default()).then_some(edit);
    let id = match order_id_or_not_found(&id) {
        Ok(id) => id,
        Err(response) => return response,
    };
    let to = format!("/orders/{id}");
    let event = Event::Approve {
        order_id: id,
        by: visitor.actor(),
        edit,
    };
    act(&state, &visitor, event, &to).await
}

#[derive(Deserialize)]
struct RejectForm {
    csrf: String,
    reason: RejectReason,
    note: Option<String>,
}

async fn reject_form(
    visitor: Visitor,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Form(form): Form<RejectForm>,
) -> Response {
    if let Err(response) = visitor.check(&form.csrf) {
        return response;
    }
    let id = match order_id_or_not_found(&id) {
        Ok(id) => id,
        Err(response) => return response,
    };
    let to = format!("/orders/{id}");
    let event = Event::Reject {
        order_id: id,
        by: visitor.actor(),
        reason: form.reason,
        note: form.note,
    };
    act(&state, &visitor, event, &to).await
}

#[derive(Deserialize)]
struct SnoozeForm {
    csrf: String,
    hours: u32,
}

async fn snooze_form(
    visitor: Visitor,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Form(form): Form<SnoozeForm>,
) -> Response {
    if let Err(response) = visitor.check(&form.csrf) {
        return response;
    }
    let id = match order_id_or_not_found(&id) {
        Ok(id) => id,
        Err(response) => return response,
    };
    let event = Event::Snooze {
        order_id: id,
        by: visitor.actor(),
        hours: form.hours,
    };
    act(&state, &visitor, event, "/").await
}

async fn cancel_form(
    visitor: Visitor,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Form(form): Form<CsrfOnly>,
) -> Response {
    order_button(&state, &visitor, &form, id, |order_id, by| Event::Cancel {
        order_id,
        by,
    })
    .await
}

async fn collected_form(
    visitor: Visitor,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Form(form): Form<CsrfOnly>,
) -> Response {
    order_button(&state, &visitor, &form, id, |order_id, by| {
        Event::Collected { order_id, by }
    })
    .await
}

/// A button on an order's page: checks the form, carries out the event, back to the page.
/// The order id in a path: one that cannot be an order id is no order.
fn order_id_or_not_found(id: &str) -> Result<OrderId, Response> {
    OrderId::parse(id).ok_or_else(|| {
        message_page(
            StatusCode::NOT_FOUND,
            "No such order",
            "It may have been removed.",
        )
    })
}

async fn order_button(
    state: &AppState,
    visitor: &Visitor,
    form: &CsrfOnly,
    order_id: String,
    event: impl FnOnce(OrderId, crate::engine::household::Actor) -> Event,
) -> Response {
    if let Err(response) = visitor.check(&form.csrf) {
        return response;
    }
    let order_id = match order_id_or_not_found(&order_id) {
        Ok(id) => id,
        Err(response) => return response,
    };
    let to = format!("/orders/{order_id}");
    act(state, visitor, event(order_id, visitor.actor()), &to).await
}

async fn devices_page(visitor: Visitor, State(state): State<AppState>) -> Response {
    let view = match view(&state).await {
        Ok(view) => view,
        Err(response) => return response,
    };
    let body = html! {
        table {
            tr { th { "Device" } th { "Model, firmware" } th { "Status" } th { "Last seen" } th {} }
            @for d in &view.devices {
                tr data-device=(d.id) {
                    td { (d.id) }
                    td { (d.birth.model) " " (d.birth.firmware) }
                    td { @if !d.accepted { strong { "waiting to join" } } @else if d.online() { "online" } @else if d.presence == crate::engine::inventory::Presence::Unknown { "not heard from since the agent started" } @else { "offline" } }
                    td { (view.words().when(d.last_seen)) }
                    td {
                        @if visitor.is_owner() {
                            div.row {
                                @if !d.accepted {
                                    form method="post" action=(format!("/devices/{}/accept", d.id)) {
                                        (csrf_field(&visitor)) button type="submit" { "Accept" } }
                                }
                                form method="post" action=(format!("/devices/{}/remove", d.id)) {
                                    (csrf_field(&visitor)) button.danger type="submit" { "Remove" } }
                            }
                        }
                    }
                }
            }
        }
        p.muted { "A new appliance appears here when it first connects; an owner accepts it before its readings count." }
        @if visitor.is_owner() {
            h2 { "Give an appliance a network login" }
            p.muted { "Where the agent asks appliances to log in, each needs its own. Enter the name the appliance uses (letters, digits, - and _), then type the password you get into the appliance's setup. It joins the household when it first connects. Asking again for the same appliance gives a new password; the old one stops working." }
            form method="post" action="/devices/login" {
                (csrf_field(&visitor))
                label { "Appliance name " input type="text" name="device" required pattern="[a-z0-9_-]{1,32}" maxlength="32" {} }
                button type="submit" { "Give a login" }
            }
        }
    };
    page(StatusCode::OK, "Devices", Some(&visitor), body)
}

async fn device_action(
    visitor: Visitor,
    state: AppState,
    id: String,
    csrf: &str,
    accept: bool,
) -> Response {
    if let Err(response) = visitor.check(csrf) {
        return response;
    }
    let Ok(device) = DeviceId::new(&id) else {
        return message_page(StatusCode::NOT_FOUND, "No such device", "Check the link.");
    };
    let by = visitor.actor();
    let event = if accept {
        Event::AcceptDevice { device, by }
    } else {
        Event::RemoveDevice { device, by }
    };
    act(&state, &visitor, event, "/devices").await
}

#[derive(Deserialize)]
struct DeviceLoginForm {
    csrf: String,
    device: String,
}

async fn device_login_form(
    visitor: Visitor,
    State(state): State<AppState>,
    Form(form): Form<DeviceLoginForm>,
) -> Response {
    if let Err(response) = visitor.check(&form.csrf) {
        return response;
    }
    let device = form.device.trim().to_lowercase();
    match super::api::create_device_login(&state, visitor.actor(), &device).await {
        Ok(login) => {
            let body = html! {
                div.card data-login=(login.username) {
                    p { "Enter these in the appliance's setup. The password is shown only now." }
                    p { "User name: " code { (login.username) } }
                    p { "Password: " code data-password { (login.password) } }
                }
                p { a href="/devices" { "Back to the devices" } }
            };
            page(StatusCode::OK, "Appliance login", Some(&visitor), body)
        }
        Err(response) => {
            let status = response.status();
            let text = if status == StatusCode::FORBIDDEN {
                "Only an owner can give an appliance a login."
            } else {
                "That name cannot be used: use 1 to 32 small letters, digits, - or _."
            };
            message_page(status, "No login given", text)
        }
    }
}

async fn accept_device_form(
    visitor: Visitor,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Form(form): Form<CsrfOnly>,
) -> Response {
    device_action(visitor, state, id, &form.csrf, true).await
}

async fn remove_device_form(
    visitor: Visitor,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Form(form): Form<CsrfOnly>,
) -> Response {
    device_action(visitor, state, id, &form.csrf, false).await
}

/// An amount in a form field: `12.50` (en), `12,50` (de), without grouping or symbol.
fn money_field(minor: u64, currency: Currency, locale: Locale) -> String {
    let digits = currency.minor_digits();
    let scale = 10u64.pow(digits);
    let text = if digits == 0 {
        minor.to_string()
    } else {
        format!(
            "{}.{:0width$}",
            minor / scale,
            minor % scale,
            width = digits as usize
        )
    };
    match locale {
        Locale::En => text,
        Locale::De => text.replace('.', ","),
    }
}

/// Reads an amount typed with a decimal point or comma into minor units.
fn parse_money_field(field: &str, text: &str, currency: Currency) -> Result<u64, String> {
    let text = text.trim().replace(',', ".");
    let value: f64 = text
        .parse()
        .map_err(|_| format!("{field}: {text:?} is not an amount like 12.50"))?;
    if !(0.0..=1_000_000.0).contains(&value) {
        return Err(format!("{field}: must be 0 to 1000000"));
    }
    Ok((value * 10f64.powi(currency.minor_digits() as i32)).round() as u64)
}

async fn settings_page(visitor: Visitor, State(state): State<AppState>) -> Response {
    settings(&visitor, &state, StatusCode::OK, None, None).await
}

async fn settings(
    visitor: &Visitor,
    state: &AppState,
    status: StatusCode,
    error: Option<String>,
    new_token: Option<(String, String)>,
) -> Response {
    let view = match view(state).await {
        Ok(view) => view,
        Err(response) => return response,
    };
    let members: Vec<Member> = if visitor.is_owner() {
        state
            .agent
            .read(|engine, _| engine.household().members.values().cloned().collect())
            .await
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let mut consumables: Vec<String> = view
        .slots
        .iter()
        .map(|s| s.spec.consumable.to_string())
        .chain(view.rules.consumables.keys().cloned())
        .collect();
    consumables.sort();
    consumables.dedup();
    let rules = &view.rules;
    let currency = view.words().home_currency();
    let owner = visitor.is_owner();
    let body = html! {
        @if let Some(error) = &error { p.card.error { (error) } }
        @if let Some((name, token)) = &new_token {
            div.card {
                p { "Token for " strong { (name) } ", shown only now:" }
                p.token data-token { (token) }
            }
        }
        form.card method="post" action="/settings/rules" {
            h2 { "Rules" }
            @if !owner { p.muted { "Only owners change these." } }
            fieldset disabled[!owner] style="border:0;padding:0" {
                (csrf_field(visitor))
                label { "Default mode " (mode_select("default_mode", Some(rules.default_mode), false)) }
                @for c in &consumables {
                    @let own = rules.consumables.get(c).cloned().unwrap_or_default();
                    div.row {
                        label { (view.words().name(c)) " " (mode_select(&format!("mode.{c}"), own.mode, true)) }
                        label { "risk " input type="number" step="0.001" min="0.001" max="0.499"
                            name=(format!("risk.{c}")) value=[own.risk] placeholder="policy default"; }
                    }
                }
                label { "Approve by itself below (" (currency.code()) ") " input type="text" inputmode="decimal"
                    name="auto_approve_below" value=(money_field(rules.auto_approve_below_cents, currency, rules.locale)); }
                label { "Monthly budget (" (currency.code()) ", empty for none) " input type="text" inputmode="decimal"
                    name="monthly_budget" value=[rules.monthly_budget_cents.map(|m| money_field(m, currency, rules.locale))]; }
                label { "Quiet hours (e.g. 22:00-07:00) " input type="text" name="quiet_hours"
                    value=[rules.quiet_hours.map(|q| q.to_string())]; }
                label { "Time zone " input type="text" name="timezone" value=(rules.timezone); }
                label { "Numbers, money and dates "
                    select name="locale" {
                        @for locale in Locale::ALL {
                            option value=(locale.code()) selected[rules.locale == locale] { (locale.name()) }
                        }
                    }
                }
                label { "An approval waits (hours) " input type="number" min="1" max="336"
                    name="approval_timeout_hours" value=(rules.approval_timeout_hours); }
                label { "then "
                    select name="on_expiry" {
                        option value="skip" selected[rules.on_expiry == ExpiryDefault::Skip] { "skip it" }
                        option value="order" selected[rules.on_expiry == ExpiryDefault::Order] { "order it" }
                    }
                }
                label { "Cancel window in notify mode (hours) " input type="number" min="0" max="72"
                    name="cancel_window_hours" value=(rules.cancel_window_hours); }
                label { "After \"we still have some\", wait (hours) " input type="number" min="0" max="720"
                    name="still_have_some_delay_hours" value=(rules.still_have_some_delay_hours); }
                button type="submit" { "Save rules" }
            }
        }
        @if owner {
            div.card {
                h2 { "Members" }
                table {
                    @for m in &members {
                        tr {
                            td { (m.name) } td { (m.role.as_str()) }
                            td { form method="post" action=(format!("/settings/members/{}/remove", m.id)) {
                                (csrf_field(visitor)) button.danger type="submit" { "Remove" } } }
                        }
                    }
                }
                form method="post" action="/settings/members" {
                    (csrf_field(visitor))
                    div.row {
                        input type="text" name="name" placeholder="name" required maxlength="40";
                        select name="role" { option value="member" { "member" } option value="owner" { "owner" } }
                        button type="submit" { "Add member" }
                    }
                }
            }
        }
    };
    page(status, "Settings", Some(visitor), body)
}

fn mode_select(name: &str, current: Option<Mode>, inherit: bool) -> Markup {
    html! {
        select name=(name) {
            @if inherit { option value="" selected[current.is_none()] { "household default" } }
            @for mode in Mode::ALL {
                option value=(mode.as_str()) selected[current == Some(mode)] { (mode.as_str()) }
            }
        }
    }
}

/// Builds rules from the settings form, starting from the current ones.
fn rules_from_form(
    current: &Rules,
    fields: &[(String, String)],
    currency: Currency,
) -> Result<Rules, String> {
    let mut rules = current.clone();
    let mut consumables = current.consumables.clone();
    for (key, value) in fields {
        let value = value.trim();
        match key.as_str() {
            "csrf" => {}
            "default_mode" => rules.default_mode = value.parse()?,
            "auto_approve_below" => {
                rules.auto_approve_below_cents =
                    parse_money_field("approve by itself below", value, currency)?
            }
            "monthly_budget" => {
                rules.monthly_budget_cents = match value {
                    "" => None,
                    v => Some(parse_money_field("monthly budget", v, currency)?),
                }
            }
            "quiet_hours" => {
                rules.quiet_hours = match value {
                    "" => None,
                    v => Some(QuietHours::parse(v)?),
                }
            }
            "timezone" => rules.timezone = value.to_string(),
            "locale" => {
                rules.locale = Locale::ALL
                    .into_iter()
                    .find(|l| l.code() == value)
                    .ok_or_else(|| format!("unknown language {value:?}"))?
            }
            "approval_timeout_hours" => {
                rules.approval_timeout_hours =
                    value.parse().map_err(|_| "hours must be a number")?
            }
            "on_expiry" => {
                rules.on_expiry = match value {
                    "order" => ExpiryDefault::Order,
                    "skip" => ExpiryDefault::Skip,
                    other => return Err(format!("unknown choice {other:?}")),
                }
            }
            "cancel_window_hours" => {
                rules.cancel_window_hours = value.parse().map_err(|_| "hours must be a number")?
            }
            "still_have_some_delay_hours" => {
                rules.still_have_some_delay_hours =
                    value.parse().map_err(|_| "hours must be a number")?
            }
            other => {
                if let Some(c) = other.strip_prefix("mode.") {
                    let entry: &mut ConsumableRules = consumables.entry(c.to_string()).or_default();
                    entry.mode = match value {
                        "" => None,
                        v => Some(v.parse()?),
                    };
                } else if let Some(c) = other.strip_prefix("risk.") {
                    let entry = consumables.entry(c.to_string()).or_default();
                    entry.risk = match value {
                        "" => None,
                        v => Some(
                            v.parse()
                                .map_err(|_| format!("risk of {c} must be a number"))?,
                        ),
                    };
                } else {
                    return Err(format!("unknown field {other:?}"));
                }
            }
        }
    }
    consumables.retain(|_, c| c.mode.is_some() || c.risk.is_some());
    rules.consumables = consumables;
    Ok(rules)
}

async fn rules_form(
    visitor: Visitor,
    State(state): State<AppState>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let csrf = fields
        .iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.as_str())
        .unwrap_or_default();
    if let Err(response) = visitor.check(csrf) {
        return response;
    }
    let (current, currency) = match state
        .agent
        .read(|engine, _| (engine.household().rules.clone(), engine.home_currency()))
        .await
    {
        Ok(read) => read,
        Err(_) => return unavailable_page(),
    };
    let rules = match rules_from_form(&current, &fields, currency) {
        Ok(rules) => rules,
        Err(error) => {
            return settings(
                &visitor,
                &state,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(error),
                None,
            )
            .await;
        }
    };
    let event = Event::SetRules {
        rules,
        // The amounts were read in the currency the page showed.
        currency: Some(currency),
        by: visitor.actor(),
    };
    match state.agent.ask(event).await {
        Ok(()) => Redirect::to("/settings").into_response(),
        Err(AskError::Engine(error)) => {
            let status = super::refusal_status(&error);
            settings(&visitor, &state, status, Some(error.to_string()), None).await
        }
        Err(AskError::Stopped(_)) => unavailable_page(),
    }
}

#[derive(Deserialize)]
struct MemberForm {
    csrf: String,
    name: String,
    role: Role,
}

async fn add_member_form(
    visitor: Visitor,
    State(state): State<AppState>,
    Form(form): Form<MemberForm>,
) -> Response {
    if let Err(response) = visitor.check(&form.csrf) {
        return response;
    }
    let caller = super::Caller(visitor.member.clone());
    match create_member(&state, &caller, form.name, form.role).await {
        Ok(created) => {
            let shown = Some((created.member.name, created.token));
            settings(&visitor, &state, StatusCode::OK, None, shown).await
        }
        Err(response) => {
            let status = response.status();
            let error = format!("could not add the member ({status})");
            settings(&visitor, &state, status, Some(error), None).await
        }
    }
}

async fn remove_member_form(
    visitor: Visitor,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Form(form): Form<CsrfOnly>,
) -> Response {
    if let Err(response) = visitor.check(&form.csrf) {
        return response;
    }
    let event = Event::RemoveMember {
        member_id: id,
        by: visitor.actor(),
    };
    act(&state, &visitor, event, "/settings").await
}

async fn audit_page(
    visitor: Visitor,
    State(state): State<AppState>,
    Query(q): Query<PageNumber>,
) -> Response {
    let per_page = 50;
    let page_no = q.page.unwrap_or(1).max(1);
    let read = state
        .agent
        .read(move |engine, now| {
            let words = engine.words(now);
            let total = engine.audit().len();
            // Each entry in words: when, who, what it did to what (by name), and the record.
            let entries: Vec<(String, String, String, Option<String>, String)> = engine
                .audit()
                .rev()
                .skip((page_no - 1) * per_page)
                .take(per_page)
                .map(|e| {
                    let order = engine.order(&e.subject);
                    let subject = match (order, e.action.as_str()) {
                        (Some(order), _) => words.order_title(order),
                        (None, "rules") => "the rules".to_string(),
                        (None, _) => words.name(&e.subject),
                    };
                    (
                        words.when(e.at),
                        e.who.clone(),
                        format!("{} {subject}", audit_action(&e.action)),
                        order.map(|o| o.id.to_string()),
                        e.detail.clone(),
                    )
                })
                .collect();
            (total, entries)
        })
        .await;
    let Ok((total, entries)) = read else {
        return unavailable_page();
    };
    let body = html! {
        table {
            tr { th { "When" } th { "Who" } th { "What" } th { "Details" } }
            @for (when, who, what, order, detail) in &entries {
                tr {
                    td { (when) }
                    td { (who) }
                    td { @match order {
                        Some(id) => a href=(format!("/orders/{id}")) { (what) },
                        None => (what),
                    } }
                    td.muted { (detail) }
                }
            }
        }
        p.row {
            @if page_no > 1 { a href=(format!("/audit?page={}", page_no - 1)) { "Newer" } }
            @if page_no * per_page < total { a href=(format!("/audit?page={}", page_no + 1)) { "Older" } }
        }
    };
    page(StatusCode::OK, "Audit trail", Some(&visitor), body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_fields_are_written_and_read_in_the_household_locale() {
        let eur = Currency::EUR;
        assert_eq!(money_field(1250, eur, Locale::En), "12.50");
        assert_eq!(money_field(1250, eur, Locale::De), "12,50");
        let yen = Currency::new("JPY").unwrap();
        assert_eq!(money_field(1250, yen, Locale::En), "1250");
        assert_eq!(parse_money_field("x", "12,50", eur), Ok(1250));
        assert_eq!(parse_money_field("x", "1250", yen), Ok(1250));
        assert!(parse_money_field("x", "lots", eur).is_err());
    }

    #[test]
    fn the_settings_form_builds_rules_and_names_bad_fields() {
        let current = Rules::default();
        let fields: Vec<(String, String)> = [
            ("csrf", "x"),
            ("default_mode", "approve"),
            ("mode.milk", "notify"),
            ("risk.milk", "0.05"),
            ("mode.beans", ""),
            ("auto_approve_below", "12,50"),
            ("monthly_budget", ""),
            ("quiet_hours", "22:00-07:00"),
            ("on_expiry", "order"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let rules = rules_from_form(&current, &fields, Currency::EUR).unwrap();
        assert_eq!(rules.default_mode, Mode::Approve);
        assert_eq!(rules.auto_approve_below_cents, 1250);
        assert_eq!(rules.monthly_budget_cents, None);
        assert_eq!(rules.on_expiry, ExpiryDefault::Order);
        assert_eq!(rules.consumables["milk"].mode, Some(Mode::Notify));
        assert_eq!(rules.consumables["milk"].risk, Some(0.05));
        assert!(!rules.consumables.contains_key("beans"));
        let bad = vec![("monthly_budget".to_string(), "lots".to_string())];
        assert!(
            rules_from_form(&current, &bad, Currency::EUR)
                .unwrap_err()
                .contains("monthly budget")
        );
        let unknown = vec![("admin".to_string(), "1".to_string())];
        assert!(rules_from_form(&current, &unknown, Currency::EUR).is_err());
    }

    #[test]
    fn cookies_are_found_by_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; replenish_session=abc; b=2"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, "c"), None);
    }
}
