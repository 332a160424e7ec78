//! Admin HTTP: health, Prometheus metrics, entity introspection, and an
//! operator's acts on players (notices, bans). Unauthenticated by design:
//! bind it to a private address.

use std::sync::{Arc, OnceLock};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use guildhall_game::op::OpError;
use guildhall_game::player::ops as player_ops;
use guildhall_game::GameEvent;
use guildhall_game::{GameError, PlayerError};
use guildhall_protocol::Status;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::json;

use crate::shared::Shared;

/// The process-wide Prometheus recorder (metrics has one global recorder;
/// several servers in one test process share it).
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        // Fixed buckets, not the default summaries: a summary keeps a
        // rolling sketch per labelled histogram that grew by megabytes over a
        // few minutes of load (a heap profile, docs/bench-log/scaling-rounds.md) and cost a
        // sketch insert per request; a bucket is a counter.
        let recorder = PrometheusBuilder::new()
            .set_buckets(&[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0])
            .and_then(|b| {
                b.set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full("guildhall_store_batch_size".into()),
                    &[1.0, 2.0, 4.0, 8.0, 16.0, 64.0, 256.0, 1024.0, 4096.0],
                )
            })
            .expect("bucket lists are non-empty")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
        }
        crate::metric_help::describe();
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
        .route("/players/{id}/ban", post(ban).delete(unban))
        .with_state(shared)
}

async fn healthz(State(shared): State<Arc<Shared>>) -> Response {
    if shared.runtime.is_shutting_down() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
    } else {
        "ok\n".into_response()
    }
}

async fn metrics_text(State(shared): State<Arc<Shared>>) -> String {
    // The store's own gauges are read at the scrape: they are counters the
    // engine keeps anyway, so there is nothing to poll between scrapes.
    for (name, value) in shared.runtime.store().stats() {
        if crate::metric_help::is_counter(name) {
            metrics::counter!(name).absolute(value as u64);
        } else {
            metrics::gauge!(name).set(value);
        }
    }
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

/// Bans a player: the body is the reason the player is told. Every token is
/// revoked, logins are refused with BANNED, and the player's live session on
/// this node ends with a BANNED close (no resume).
async fn ban(State(shared): State<Arc<Shared>>, Path(id): Path<String>, reason: String) -> Response {
    let reason = reason.trim();
    if reason.is_empty() || reason.len() > 256 {
        return (StatusCode::BAD_REQUEST, "a ban needs a reason of 1 to 256 bytes\n").into_response();
    }
    if let Err(e) = player_ops::ban(&shared.runtime, &id, reason).await {
        return op_failure(&id, e);
    }
    if let Some(session) = shared.sessions.of_player(&id) {
        shared.sessions.end(session.id, Status::Banned, &format!("banned: {reason}"), shared.runtime.pubsub());
    }
    tracing::warn!(player = %id, reason, "player banned");
    Json(json!({ "player": id, "banned": reason })).into_response()
}

/// Lifts a player's ban; tokens revoked by it stay revoked.
async fn unban(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    if let Err(e) = player_ops::unban(&shared.runtime, &id).await {
        return op_failure(&id, e);
    }
    tracing::warn!(player = %id, "player unbanned");
    Json(json!({ "player": id, "banned": null })).into_response()
}

fn op_failure(id: &str, e: OpError) -> Response {
    match e {
        OpError::Refused(GameError::Player(PlayerError::NoSuchPlayer)) => {
            (StatusCode::NOT_FOUND, format!("no player {id:?}\n")).into_response()
        }
        other => (StatusCode::SERVICE_UNAVAILABLE, format!("{other}\n")).into_response(),
    }
}
