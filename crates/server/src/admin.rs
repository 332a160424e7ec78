//! Admin HTTP: health, Prometheus metrics, and entity introspection.
//! Unauthenticated by design: bind it to a private address.

use std::sync::{Arc, OnceLock};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use guildhall_game::GameEvent;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::json;

use crate::shared::Shared;

/// The process-wide Prometheus recorder (metrics has one global recorder;
/// several servers in one test process share it).
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
        }
        handle
    })
}

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .route("/entities", get(kinds))
        .route("/entities/{kind}", get(entities))
        .route("/entities/{kind}/{key}", get(entity_state))
        .route("/sessions", get(sessions))
        .route("/players/{id}/notice", post(notice))
        .with_state(shared)
}

async fn healthz(State(shared): State<Arc<Shared>>) -> Response {
    if shared.runtime.is_shutting_down() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
    } else {
        "ok\n".into_response()
    }
}

async fn metrics_text() -> String {
    prometheus().render()
}

async fn kinds(State(shared): State<Arc<Shared>>) -> Json<serde_json::Value> {
    Json(json!({ "kinds": shared.runtime.kinds(), "topics": shared.runtime.pubsub().topic_count() }))
}

async fn entities(State(shared): State<Arc<Shared>>, Path(kind): Path<String>) -> Response {
    match shared.runtime.entities(&kind) {
        Some(list) => Json(json!({ "kind": kind, "entities": list })).into_response(),
        None => (StatusCode::NOT_FOUND, format!("no entity kind {kind:?}\n")).into_response(),
    }
}

async fn entity_state(State(shared): State<Arc<Shared>>, Path((kind, key)): Path<(String, String)>) -> Response {
    match shared.runtime.state_json(&kind, &key).await {
        Ok(Some(state)) => Json(state).into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, format!("{kind}/{key} has no state\n")).into_response(),
        Err(e) => (StatusCode::NOT_FOUND, format!("{e}\n")).into_response(),
    }
}

async fn sessions(State(shared): State<Arc<Shared>>) -> Json<serde_json::Value> {
    Json(json!({ "sessions": shared.sessions.count(), "detached": shared.sessions.detached() }))
}

/// Sends a notice to a player (an operator's announcement). Delivered as a
/// push to the player's session, or replayed to it after a reconnect.
async fn notice(State(shared): State<Arc<Shared>>, Path(id): Path<String>, body: String) -> Response {
    if body.is_empty() || body.len() > 1024 {
        return (StatusCode::BAD_REQUEST, "notice text must be 1 to 1024 bytes\n").into_response();
    }
    let n =
        shared.runtime.pubsub().publish(&guildhall_game::player_topic(&id), GameEvent::Notice { text: body }.encode());
    Json(json!({ "delivered_to": n })).into_response()
}
