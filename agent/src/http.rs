//! The HTTP API: `/api/v1/status`, order approval, `/healthz` and `/metrics`.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::{Deserialize, Serialize};

use crate::commerce::api::Problem;
use crate::engine::EngineError;
use crate::runtime::{AgentHandle, AskError, OrderView};

#[derive(Clone)]
struct AppState {
    agent: AgentHandle,
    metrics: PrometheusHandle,
}

/// The API's routes.
pub fn router(agent: AgentHandle, metrics: PrometheusHandle) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(render_metrics))
        .route("/api/v1/status", get(status))
        .route("/api/v1/orders/{id}", get(order))
        .route("/api/v1/orders/{id}/approve", post(approve))
        .route("/api/v1/orders/{id}/reject", post(reject))
        .fallback(not_found)
        .with_state(AppState { agent, metrics })
}

fn problem(status: StatusCode, detail: impl Into<String>) -> Response {
    let body = Problem {
        kind: "about:blank".into(),
        title: status.canonical_reason().unwrap_or("error").into(),
        status: status.as_u16(),
        detail: detail.into(),
    };
    let mut response = (status, Json(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/problem+json"),
    );
    response
}

fn unavailable() -> Response {
    problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "the agent is shutting down",
    )
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
}

async fn healthz(State(state): State<AppState>) -> Response {
    // Healthy when the engine answers, not merely when the socket accepts.
    match state.agent.status().await {
        Ok(_) if state.agent.is_ready() => Json(Health { status: "ok" }).into_response(),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "unavailable",
            }),
        )
            .into_response(),
    }
}

async fn render_metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

async fn status(State(state): State<AppState>) -> Response {
    match state.agent.status().await {
        Ok(view) => Json(view).into_response(),
        Err(_) => unavailable(),
    }
}

async fn order(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match state.agent.order(&id).await {
        Ok(Some(order)) => Json(OrderView::from(&order)).into_response(),
        Ok(None) => problem(StatusCode::NOT_FOUND, format!("no order {id}")),
        Err(_) => unavailable(),
    }
}

fn ask_response(result: Result<(), AskError>, agent_order: Option<OrderView>) -> Response {
    match result {
        Ok(()) => match agent_order {
            Some(view) => Json(view).into_response(),
            None => StatusCode::NO_CONTENT.into_response(),
        },
        Err(AskError::Engine(error @ EngineError::UnknownOrder(_))) => {
            problem(StatusCode::NOT_FOUND, error.to_string())
        }
        Err(AskError::Engine(error)) => problem(StatusCode::CONFLICT, error.to_string()),
        Err(AskError::Stopped(_)) => unavailable(),
    }
}

async fn approve(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let result = state
        .agent
        .ask(crate::engine::Event::Approve {
            order_id: id.clone(),
            by: crate::engine::household::Actor::Console,
            edit: None,
        })
        .await;
    let view = state
        .agent
        .order(&id)
        .await
        .ok()
        .flatten()
        .map(|o| OrderView::from(&o));
    ask_response(result, view)
}

/// Body of a rejection.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RejectBody {
    reason: Option<String>,
}

async fn reject(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Option<Json<RejectBody>>,
) -> Response {
    let reason = body
        .and_then(|b| b.0.reason)
        .unwrap_or_else(|| "rejected by the household".into());
    let result = state
        .agent
        .ask(crate::engine::Event::Reject {
            order_id: id.clone(),
            by: crate::engine::household::Actor::Console,
            reason: crate::engine::household::RejectReason::Other,
            note: Some(reason),
        })
        .await;
    let view = state
        .agent
        .order(&id)
        .await
        .ok()
        .flatten()
        .map(|o| OrderView::from(&o));
    ask_response(result, view)
}

async fn not_found() -> Response {
    problem(
        StatusCode::NOT_FOUND,
        "no such route; see docs/operations.md",
    )
}
