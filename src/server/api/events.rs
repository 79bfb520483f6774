//! `POST /v1/events`: an event from outside wakes the runs waiting for it and
//! starts the workflows it triggers.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value as Json_};

use crate::engine::relay::triggered_run_id;
use crate::server::error::{ApiError, JsonBody};
use crate::server::App;

const MAX_KEY: usize = 512;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EventBody {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    key: Option<Json_>,
    #[serde(default)]
    data: Json_,
}

pub(super) async fn send(
    State(app): State<Arc<App>>,
    JsonBody(body): JsonBody<EventBody>,
) -> Result<Response, ApiError> {
    app.takes_writes()?;
    check_type(&body.kind)?;
    let key = crate::engine::machine::event_key(body.key.as_ref());
    if key.len() > MAX_KEY {
        return Err(ApiError::bad_request("bad_request", format!("an event key has at most {MAX_KEY} characters")));
    }
    let (event, woken) = app.engine.publish_event(&body.kind, &key, body.data).await.map_err(|e| app.store_error(e))?;
    let triggered: Vec<Json_> = app
        .subscriptions
        .subscribers(&event.kind)
        .iter()
        .filter_map(|s| match s {
            crate::store::Subscriber::Workflow(name) => Some(name.as_str()),
            crate::store::Subscriber::Webhook(_) => None,
        })
        .map(|workflow| {
            let mut t = json!({ "workflow": workflow, "run_id": triggered_run_id(&event, workflow) });
            if let Some(e) = app.catalog.snapshot().active(workflow).and_then(|wf| wf.check_input(&event.data)) {
                t["input_error"] = json!(e.message);
            }
            t
        })
        .collect();
    let body = json!({ "event_id": event.id, "woke": woken, "triggered": triggered });
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

fn check_type(kind: &str) -> Result<(), ApiError> {
    if !crate::dsl::names::is_event_type(kind) {
        return Err(ApiError::bad_request(
            "bad_request",
            format!(
                "`{}` is not an event type: write it like `order.paid` ([a-z][a-z0-9_.-]*)",
                kind.chars().take(128).collect::<String>()
            ),
        ));
    }
    Ok(())
}
