//! The CLI as a client of a running server (`--server URL`): `run`, `show`
//! and `runs` go through the HTTP API, so they work while the server holds
//! the store. The token comes from SAGAFLOW_API_TOKEN.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::{json, Value as Json};

use super::{output, runtime, usage_error, RunFormat};
use crate::engine::record::RunRecord;

/// How long `run --server` waits per request for the run to end.
const WAIT: &str = "60s";

struct Client {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
}

impl Client {
    fn new(server: &str) -> Result<Client, String> {
        let base = server.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(format!("--server {server}: give the server's URL, such as http://127.0.0.1:8080"));
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
        Ok(Client { base, http, token: super::serve::token_from_env() })
    }

    /// A request to the server, with the token.
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends a request; answers the status and the JSON body, or what went wrong in words.
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<(u16, Json), String> {
        let response = request.send().await.map_err(|e| format!("cannot reach the server at {}: {e}", self.base))?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| format!("the server's answer was cut off: {e}"))?;
        let body: Json = serde_json::from_str(&text).unwrap_or(Json::String(text));
        if status >= 400 {
            let message = body["error"]["message"].as_str().map_or_else(|| body.to_string(), str::to_owned);
            return Err(format!("the server says ({status}): {message}"));
        }
        Ok((status, body))
    }

    async fn record(&self, run_id: &str) -> Result<RunRecord, String> {
        let (_, body) = self.send(self.request(reqwest::Method::GET, &format!("/v1/runs/{run_id}"))).await?;
        serde_json::from_value(body).map_err(|e| format!("the server sent a run record this sagaflow cannot read: {e}"))
    }

    /// Reads a run's record every `every` until it ended or paused for an operator.
    async fn until_settled(&self, run_id: &str, every: Duration) -> Result<RunRecord, String> {
        loop {
            let record = self.record(run_id).await?;
            if record.status.is_settled() {
                return Ok(record);
            }
            tokio::time::sleep(every).await;
        }
    }
}

/// `run NAME --server URL`: starts the run there and waits for its end.
pub(super) fn run(server: &str, workflow: &str, input: Json, format: RunFormat) -> ExitCode {
    let result = runtime().block_on(async {
        let client = Client::new(server)?;
        let path = format!("/v1/workflows/{workflow}/runs?wait={WAIT}");
        let (status, body) =
            client.send(client.request(reqwest::Method::POST, &path).json(&json!({ "input": input }))).await?;
        let run_id = body["run_id"].as_str().unwrap_or_default().to_owned();
        if status == 200 {
            return serde_json::from_value::<RunRecord>(body).map_err(|e| format!("cannot read the run record: {e}"));
        }
        client.until_settled(&run_id, Duration::from_millis(500)).await
    });
    match result {
        Ok(record) => output::print_run(&record, format),
        Err(e) => usage_error(&e),
    }
}

/// `retry|skip|abort RUN --server URL`: the server acts, then the run is
/// followed to its end or its next pause.
pub(super) fn operate(server: &str, run_id: &str, ask: &crate::engine::operator::Ask, format: RunFormat) -> ExitCode {
    let result = runtime().block_on(async {
        let client = Client::new(server)?;
        let path = format!("/v1/runs/{run_id}/{}", ask.name());
        let body = super::operate::body(ask);
        // Answered once the act is journaled: the run goes on from it.
        client.send(client.request(reqwest::Method::POST, &path).json(&body)).await?;
        client.until_settled(run_id, Duration::from_millis(200)).await
    });
    match result {
        Ok(record) => output::print_run(&record, format),
        Err(e) => usage_error(&e),
    }
}

/// `retry|skip|abort RUN --dry-run --server URL`: what the server says the act would do.
pub(super) fn dry_run(server: &str, run_id: &str, ask: &crate::engine::operator::Ask) -> Result<String, String> {
    runtime().block_on(async {
        let client = Client::new(server)?;
        let path = format!("/v1/runs/{run_id}/{}", ask.name());
        let body = super::operate::body(ask);
        let request = client.request(reqwest::Method::POST, &path).query(&[("dry_run", "true")]).json(&body);
        let (_, answer) = client.send(request).await?;
        Ok(answer["does"].as_str().unwrap_or_default().to_owned())
    })
}

/// `rerun RUN --server URL`: the server starts the new run; it is followed to its end or pause.
pub(super) fn rerun(server: &str, run_id: &str, input: Option<Json>, format: RunFormat) -> ExitCode {
    let result = runtime().block_on(async {
        let client = Client::new(server)?;
        let path = format!("/v1/runs/{run_id}/rerun");
        let (_, body) =
            client.send(client.request(reqwest::Method::POST, &path).json(&json!({ "input": input }))).await?;
        let new = body["run_id"].as_str().unwrap_or_default().to_owned();
        client.until_settled(&new, Duration::from_millis(200)).await
    });
    match result {
        Ok(record) => output::print_run(&record, format),
        Err(e) => usage_error(&e),
    }
}

/// `bulk ACTION --server URL`: the server acts on the runs chosen.
pub(super) fn bulk(server: &str, request: &crate::engine::bulk::Request) -> Result<crate::engine::bulk::Page, String> {
    use crate::engine::operator::Ask;
    let (action, with, output) = match &request.ask {
        Ask::Retry { with, .. } => ("retry", with.clone(), None),
        Ask::Skip { output, .. } => ("skip", None, Some(output.clone())),
        Ask::Abort => ("abort", None, None),
        Ask::Rerun { .. } => ("rerun", None, None),
    };
    let c = &request.choice;
    let body = json!({
        "workflow": c.workflow, "status": c.status, "started_after": c.started_after.map(|t| t.to_string()),
        "started_before": c.started_before.map(|t| t.to_string()), "error_code": c.error_code,
        "dry_run": request.dry_run, "cursor": request.cursor, "with": with, "output": output,
    });
    runtime().block_on(async {
        let client = Client::new(server)?;
        let (_, page) =
            client.send(client.request(reqwest::Method::POST, &format!("/v1/bulk/{action}")).json(&body)).await?;
        serde_json::from_value(page).map_err(|e| format!("the server sent an answer this sagaflow cannot read: {e}"))
    })
}

/// `show RUN --server URL`
pub(super) fn show(server: &str, run_id: &str, format: RunFormat) -> ExitCode {
    match runtime().block_on(async { Client::new(server)?.record(run_id).await }) {
        Ok(record) => output::print_run(&record, format),
        Err(e) => usage_error(&e),
    }
}

/// `runs --server URL`: every page of the listing, newest first like the local one.
pub(super) fn runs(server: &str, filter: &crate::store::RunFilter) -> Result<Vec<crate::store::RunMeta>, String> {
    runtime().block_on(async {
        let client = Client::new(server)?;
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut query = vec![("limit", "1000".to_owned())];
            query.extend(filter.workflow.clone().map(|w| ("workflow", w)));
            if !filter.statuses.is_empty() {
                let statuses: Vec<&str> = filter.statuses.iter().map(|s| s.as_str()).collect();
                query.push(("status", statuses.join(",")));
            }
            query.extend(cursor.take().map(|c| ("cursor", c)));
            let (_, page) = client.send(client.request(reqwest::Method::GET, "/v1/runs").query(&query)).await?;
            let runs: Vec<crate::store::RunMeta> = serde_json::from_value(page["runs"].clone())
                .map_err(|e| format!("the server sent a run list this sagaflow cannot read: {e}"))?;
            all.extend(runs);
            match page["next"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        Ok(all)
    })
}
