//! The agent's HTTP side: the JSON API under `/api/v1` (bearer tokens), the household's web
//! page (a session cookie after logging in with a token), `/healthz` (open) and `/metrics`.
//!
//! Every route but `/healthz` needs a member: the API takes `Authorization: Bearer <token>`,
//! the page its session cookie. Roles are checked by the engine, which knows who may do what.

// Handlers return early with a ready `Response`; boxing it would only add noise.
#![allow(clippy::result_large_err)]

mod api;
mod serve;
mod sessions;
mod web;

use std::sync::Arc;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;

pub use api::ApiDoc;
pub use serve::{ServeLimits, serve};
pub use sessions::Sessions;

use crate::auth::hash_token;
use crate::engine::EngineError;
use crate::engine::household::{Actor, Member};
use crate::internal_events::{AuthThrottled, RequestRefused, Unauthorized, emit};
use crate::runtime::{AgentHandle, AskError};
use replenish_commerce::sandbox::wire::Problem;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    agent: AgentHandle,
    metrics: PrometheusHandle,
    sessions: Arc<Sessions>,
    secure_cookies: bool,
    ingest: Arc<crate::mqtt::IngestHealth>,
    request_timeout: std::time::Duration,
    failed_logins: Arc<FailedLogins>,
}

impl AppState {
    /// State for the router: `public_url` is how people reach the page (an `https` one makes
    /// cookies `Secure`).
    pub fn new(
        agent: AgentHandle,
        metrics: PrometheusHandle,
        public_url: &str,
        ingest: Arc<crate::mqtt::IngestHealth>,
    ) -> Self {
        Self {
            agent,
            metrics,
            sessions: Arc::new(Sessions::default()),
            secure_cookies: public_url.starts_with("https://"),
            ingest,
            request_timeout: std::time::Duration::from_secs(10),
            failed_logins: Arc::new(FailedLogins::new(
                FAILED_LOGINS_ALLOWED,
                FAILED_LOGIN_WINDOW,
            )),
        }
    }

    /// A client address may fail to authenticate `allowed` times a minute (default 10).
    pub fn with_failed_login_limit(mut self, allowed: u32) -> Self {
        self.failed_logins = Arc::new(FailedLogins::new(allowed, FAILED_LOGIN_WINDOW));
        self
    }

    /// A whole request (head and body) must arrive within `timeout` (default 10 s).
    pub fn with_request_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.request_timeout = timeout;
        self
    }
}

/// Largest request body: the largest the API takes (rules, a member) is a few KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Every route, with the limits and headers every answer gets: a body limit, a time limit per
/// request (`408`), security headers, and errors as problem documents.
pub fn router(state: AppState) -> Router {
    let secure = state.secure_cookies;
    let timeout = state.request_timeout;
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(render_metrics))
        .merge(api::routes())
        .merge(web::routes())
        .fallback(not_found)
        .with_state(state)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(axum::middleware::map_response(move |response| {
            harden(response, secure)
        }))
}

/// The page's policy: no script at all, styles from the page itself, forms to the agent only,
/// never framed.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; \
     img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Adds the security headers, and turns an error in plain text or without a body (axum's and
/// tower's own: 405, 408, 413, 415) into a problem document (RFC 9457).
async fn harden(response: Response, secure: bool) -> Response {
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    // A body the agent wrote (a page, a problem, `/healthz`'s JSON) stays as it is.
    let mut response = if (status.is_client_error() || status.is_server_error())
        && (content_type.is_empty() || content_type.starts_with("text/plain"))
    {
        let allow = response.headers().get(header::ALLOW).cloned();
        let retry_after = response.headers().get(header::RETRY_AFTER).cloned();
        let www_authenticate = response.headers().get(header::WWW_AUTHENTICATE).cloned();
        let text = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .ok()
            .and_then(|bytes| String::from_utf8(bytes.to_vec()).ok())
            .filter(|text| !text.trim().is_empty());
        let detail = text.unwrap_or_else(|| match status {
            StatusCode::REQUEST_TIMEOUT => "the request took too long to arrive".to_string(),
            StatusCode::METHOD_NOT_ALLOWED => "this path does not take that method".to_string(),
            _ => status.canonical_reason().unwrap_or("error").to_string(),
        });
        let mut problem = problem(status, detail);
        for (name, value) in [
            (header::ALLOW, allow),
            (header::RETRY_AFTER, retry_after),
            (header::WWW_AUTHENTICATE, www_authenticate),
        ] {
            if let Some(value) = value {
                problem.headers_mut().insert(name, value);
            }
        }
        problem
    } else {
        response
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if secure {
        // Served to people over TLS (a proxy in front): browsers keep to it.
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    response
}

/// An `application/problem+json` response (RFC 9457).
pub(crate) fn problem(status: StatusCode, detail: impl Into<String>) -> Response {
    let body = Problem {
        kind: "about:blank".into(),
        title: status.canonical_reason().unwrap_or("error").into(),
        status: status.as_u16(),
        detail: detail.into(),
    };
    let mut response = (status, Json(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

pub(crate) fn unavailable() -> Response {
    problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "the agent is shutting down",
    )
}

/// The status code for an engine's refusal.
pub(crate) fn refusal_status(error: &EngineError) -> StatusCode {
    match error {
        EngineError::UnknownOrder(_)
        | EngineError::UnknownDevice(_)
        | EngineError::UnknownMember(_)
        | EngineError::UnknownSlot { .. } => StatusCode::NOT_FOUND,
        EngineError::Denied(_) => StatusCode::FORBIDDEN,
        EngineError::Invalid(_) | EngineError::InvalidRules(_) => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::CONFLICT,
    }
}

pub(crate) fn ask_problem(error: AskError) -> Response {
    match error {
        AskError::Engine(error) => {
            emit(RequestRefused { error: &error });
            problem(refusal_status(&error), error.to_string())
        }
        AskError::Stopped(_) => unavailable(),
    }
}

/// The member behind a request's bearer token.
pub struct Caller(pub Member);

impl Caller {
    /// As the engine names them.
    pub fn actor(&self) -> Actor {
        Actor::Member(self.0.id.clone())
    }
}

/// Finds the member whose token hashes to `hash`.
async fn member_by_hash(agent: &AgentHandle, hash: String) -> Option<Member> {
    agent
        .read(move |engine, _| engine.household().member_by_token_hash(&hash).cloned())
        .await
        .ok()
        .flatten()
}

/// Failed authentications a client address may make per window before it is refused, unless
/// configured (`http.max_failed_logins`).
const FAILED_LOGINS_ALLOWED: u32 = 10;
/// The window of [`FAILED_LOGINS_ALLOWED`].
const FAILED_LOGIN_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);
/// Client addresses remembered at most (the oldest window is forgotten first).
const FAILED_LOGIN_ADDRESSES: usize = 4096;

/// Failed authentications per client address: after `allowed` in a window, the address gets
/// `429` with `Retry-After` until its window ends, before any token is checked.
#[derive(Debug)]
pub struct FailedLogins {
    allowed: u32,
    window: std::time::Duration,
    by_address:
        std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, (u32, std::time::Instant)>>,
}

impl FailedLogins {
    /// A limiter of `allowed` failures per `window`.
    pub fn new(allowed: u32, window: std::time::Duration) -> Self {
        Self {
            allowed,
            window,
            by_address: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// `Err(wait)` while `address` is refused.
    pub fn check(
        &self,
        address: std::net::IpAddr,
        now: std::time::Instant,
    ) -> Result<(), std::time::Duration> {
        let map = self.by_address.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(&address) {
            Some(&(failures, since)) if failures >= self.allowed && now < since + self.window => {
                Err(since + self.window - now)
            }
            _ => Ok(()),
        }
    }

    /// Counts a failure of `address`.
    pub fn failed(&self, address: std::net::IpAddr, now: std::time::Instant) {
        let mut map = self.by_address.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= FAILED_LOGIN_ADDRESSES && !map.contains_key(&address) {
            map.retain(|_, (_, since)| now < *since + self.window);
            if map.len() >= FAILED_LOGIN_ADDRESSES
                && let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, (_, since))| *since)
                    .map(|(a, _)| *a)
            {
                map.remove(&oldest);
            }
        }
        let entry = map.entry(address).or_insert((0, now));
        if now >= entry.1 + self.window {
            *entry = (0, now);
        }
        entry.0 += 1;
    }
}

/// `429` with `Retry-After` for a client address with too many failed authentications.
pub(crate) fn too_many_failures(wait: std::time::Duration) -> Response {
    emit(AuthThrottled { wait });
    let seconds = wait.as_secs().max(1);
    let mut response = problem(
        StatusCode::TOO_MANY_REQUESTS,
        format!("too many failed logins from this address; try again in {seconds} s"),
    );
    if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// The token of an `Authorization` header: the scheme `Bearer` in any case (RFC 9110).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn unauthorized(detail: &str) -> Response {
    emit(Unauthorized::Api(detail));
    let mut response = problem(StatusCode::UNAUTHORIZED, detail);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"replenish\""),
    );
    response
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let peer = serve::peer(parts).map(|addr| addr.ip());
        let now = std::time::Instant::now();
        if let Some(peer) = peer
            && let Err(wait) = state.failed_logins.check(peer, now)
        {
            return Err(too_many_failures(wait));
        }
        let failed = |response: Response| {
            if let Some(peer) = peer {
                state.failed_logins.failed(peer, now);
            }
            response
        };
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(unauthorized(
                "send Authorization: Bearer <token>; an owner creates tokens with \
                 `replenish-agent household add-member`",
            ));
        };
        let Some(token) = value.to_str().ok().and_then(bearer_token) else {
            return Err(failed(unauthorized(
                "the Authorization header must be Bearer <token>",
            )));
        };
        match member_by_hash(&state.agent, hash_token(token)).await {
            Some(member) => Ok(Caller(member)),
            None => Err(failed(unauthorized("unknown or revoked token"))),
        }
    }
}

/// `/healthz`: the engine answers, the broker is connected, the ingest moves.
#[derive(Serialize)]
struct Health {
    /// `ok` or `unavailable`.
    status: &'static str,
    /// Connected and subscribed to the broker.
    mqtt_connected: bool,
    /// Messages pending with no acknowledgement for `ingest.stall_secs`.
    ingest_stalled: bool,
    /// Messages received and not yet acknowledged.
    ingest_pending: u64,
    /// The second connection, for notifications and Home Assistant, is up (informational).
    integrations_connected: bool,
    /// What is wrong, if anything.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    problems: Vec<&'static str>,
}

async fn healthz(State(state): State<AppState>) -> Response {
    use std::sync::atomic::Ordering;
    // Healthy when the engine answers (a cheap read, whatever the household's size), not
    // merely when the socket accepts.
    let engine_ok = state.agent.is_ready()
        && tokio::time::timeout(
            std::time::Duration::from_secs(5),
            state.agent.read(|_, _| ()),
        )
        .await
        .is_ok_and(|r| r.is_ok());
    let ingest = &state.ingest;
    let mqtt_connected = ingest.connected.load(Ordering::SeqCst);
    let ingest_stalled = ingest.stalled.load(Ordering::SeqCst);
    let mut problems = Vec::new();
    if !engine_ok {
        problems.push("the engine does not answer");
    }
    if !mqtt_connected {
        problems.push("not connected to the MQTT broker");
    }
    if ingest_stalled {
        problems.push("ingest stalled: messages pending and none acknowledged");
    }
    let health = Health {
        status: if problems.is_empty() {
            "ok"
        } else {
            "unavailable"
        },
        mqtt_connected,
        ingest_stalled,
        ingest_pending: ingest.pending(),
        integrations_connected: ingest.out_connected.load(Ordering::SeqCst),
        problems,
    };
    let code = if health.problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(health)).into_response()
}

async fn render_metrics(_caller: Caller, State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

async fn not_found() -> Response {
    problem(
        StatusCode::NOT_FOUND,
        "no such route; see /api/v1/openapi.json and docs/operations.md",
    )
}
