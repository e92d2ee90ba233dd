//! The agent's HTTP side: the JSON API under `/api/v1` (bearer tokens), the household's web
//! page (a session cookie after logging in with a token), `/healthz` (open) and `/metrics`.
//!
//! Every route but `/healthz` needs a member: the API takes `Authorization: Bearer <token>`,
//! the page its session cookie. Roles are checked by the engine, which knows who may do what.

// Handlers return early with a ready `Response`; boxing it would only add noise.
#![allow(clippy::result_large_err)]

mod api;
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
pub use sessions::Sessions;

use crate::auth::hash_token;
use crate::engine::EngineError;
use crate::engine::household::{Actor, Member};
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
        }
    }
}

/// Every route.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(render_metrics))
        .merge(api::routes())
        .merge(web::routes())
        .fallback(not_found)
        .with_state(state)
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
        | EngineError::UnknownMember(_) => StatusCode::NOT_FOUND,
        EngineError::Denied(_) => StatusCode::FORBIDDEN,
        EngineError::Invalid(_)
        | EngineError::InvalidRules(_)
        | EngineError::UnknownSlot { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::CONFLICT,
    }
}

pub(crate) fn ask_problem(error: AskError) -> Response {
    match error {
        AskError::Engine(error) => {
            metrics::counter!("replenish_http_refused_total", "reason" => error.label())
                .increment(1);
            tracing::info!(%error, "request refused");
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

fn unauthorized(detail: &str) -> Response {
    metrics::counter!("replenish_http_unauthorized_total").increment(1);
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
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(unauthorized(
                "send Authorization: Bearer <token>; an owner creates tokens with \
                 `replenish-agent household add-member`",
            ));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty());
        let Some(token) = token else {
            return Err(unauthorized(
                "the Authorization header must be Bearer <token>",
            ));
        };
        match member_by_hash(&state.agent, hash_token(token)).await {
            Some(member) => Ok(Caller(member)),
            None => Err(unauthorized("unknown or revoked token")),
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
