//! The demo's HTTP server: the control API under `/api` and the visualizer's files at `/`.
//!
//! Every reply of the control API is JSON, or postcard for a request whose `Accept` names
//! [`POSTCARD_MEDIA_TYPE`] (the visualizer's page: see `omnikv_core::wire`); every error is an
//! [`ActionReply`] with `ok: false` and a message, and changes nothing. Every request must name
//! this launcher in `Host` (see [`access`](super::access): this is what stops DNS rebinding);
//! requests that change the cluster (it can kill processes) are refused when they come from a
//! page of another origin; and, when the launcher has a token, every request must carry it
//! (header, or the cookie set by opening `/?token=TOKEN`).

// The helpers' errors are the responses the handlers return, built once per refused request:
// boxing them would only add an allocation.
#![allow(clippy::result_large_err)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::{
    body::{Body, Bytes},
    extract::{Path, Request, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use omnikv_core::{
    client::ClientOp,
    control::{ActionReply, DeliverRequest, HoldRequest, LinkPair, LinkRequest, Scenario},
    limits::CONTROL_BODY_BYTES_MAX,
    wire::{encode_postcard, Encoding, POSTCARD_MEDIA_TYPE},
    NodeId,
};
use serde::Serialize;
use tower_http::services::ServeDir;

use super::access::{token_matches, HostAllowList};
use super::scenarios::{self, isolate, pivot, plan};
use super::supervisor::{ControlError, Supervisor};
use crate::client::Client;

#[derive(Clone)]
struct App {
    supervisor: Arc<Supervisor>,
    token: Option<Arc<str>>,
    hosts: Arc<HostAllowList>,
}

const TOKEN_COOKIE: &str = "omnikv_token";

pub fn router(
    supervisor: Arc<Supervisor>,
    web_dir: PathBuf,
    token: Option<String>,
    hosts: HostAllowList,
) -> Router {
    let app = App {
        supervisor,
        token: token.map(Into::into),
        hosts: Arc::new(hosts),
    };
    Router::new()
        .route("/api/cluster", get(cluster))
        .route("/api/nodes/{id}/{action}", post(node_action))
        .route("/api/links", post(set_link))
        .route("/api/links/hold", post(hold_link))
        .route("/api/links/deliver", post(deliver_held))
        .route("/api/links/drop", post(drop_held))
        .route("/api/scenarios/{name}", post(scenario))
        .route("/api/{*rest}", get(not_found).post(not_found))
        // `scripts/build-web` writes a gzip copy beside the wasm and its glue: a browser that
        // accepts gzip loads 218 KB instead of 556 KB of wasm.
        .fallback_service(
            ServeDir::new(web_dir)
                .append_index_html_on_directories(true)
                .precompressed_gzip(),
        )
        .layer(middleware::from_fn(bound_body))
        .layer(middleware::from_fn_with_state(app.clone(), require_token))
        .layer(middleware::from_fn_with_state(
            app.clone(),
            require_known_host,
        ))
        .layer(middleware::from_fn(answer_in_kind))
        .with_state(app)
}

/// A reply's postcard encoding, carried beside its JSON body until [`answer_in_kind`] picks one.
#[derive(Clone)]
struct PostcardBody(Bytes);

/// `value` as a reply: JSON, with its postcard encoding beside it.
fn encoded<T: Serialize>(status: StatusCode, value: &T) -> Response {
    let mut resp = (status, Json(value)).into_response();
    resp.extensions_mut()
        .insert(PostcardBody(encode_postcard(value).into()));
    resp
}

/// Answers in postcard a request whose `Accept` asks for it, JSON otherwise. Outermost, so that
/// the refusals of the other layers are answered the same way.
async fn answer_in_kind(req: Request, next: Next) -> Response {
    let accept = req.headers().get(header::ACCEPT);
    let wanted = Encoding::from_accept(accept.and_then(|v| v.to_str().ok()));
    let mut resp = next.run(req).await;
    let Some(PostcardBody(bytes)) = resp.extensions_mut().remove::<PostcardBody>() else {
        return resp;
    };
    resp.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("accept"));
    if wanted == Encoding::Json {
        return resp;
    }
    let (mut parts, _) = resp.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(POSTCARD_MEDIA_TYPE),
    );
    Response::from_parts(parts, Body::from(bytes))
}

/// Refuses every request (page, files and API alike) whose `Host` is not a name of this
/// launcher: a DNS-rebinding page gets nothing, not even the cluster's layout.
async fn require_known_host(State(app): State<App>, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    if app.hosts.allows(host) {
        return next.run(req).await;
    }
    let known: Vec<&str> = app.hosts.names().collect();
    reply(
        StatusCode::FORBIDDEN,
        false,
        format!(
            "host {:?} is not a name of this launcher (known: {}); start the demo with --allow-host NAME to add one",
            host.unwrap_or(""),
            known.join(", ")
        ),
    )
}

/// The most an oversized body is read before the 413 reply: reading it (up to this bound)
/// lets the client, which writes its whole body before it reads, see the reply instead of a
/// reset connection.
const OVERSIZED_BODY_DRAIN_BYTES_MAX: usize = 1024 * 1024;
/// How long a client may take to send its body: a stalled sender does not hold a task forever.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads every request body whole, within [`BODY_READ_TIMEOUT`]; a body over
/// [`CONTROL_BODY_BYTES_MAX`] gets a JSON 413 and reaches no handler.
async fn bound_body(req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let read = axum::body::to_bytes(body, OVERSIZED_BODY_DRAIN_BYTES_MAX);
    let bytes = match tokio::time::timeout(BODY_READ_TIMEOUT, read).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => return body_too_large(),
        Err(_) => {
            return reply(
                StatusCode::REQUEST_TIMEOUT,
                false,
                format!("request body not received within {BODY_READ_TIMEOUT:?}"),
            )
        }
    };
    if bytes.len() > CONTROL_BODY_BYTES_MAX {
        return body_too_large();
    }
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}

fn body_too_large() -> Response {
    reply(
        StatusCode::PAYLOAD_TOO_LARGE,
        false,
        format!("request body larger than {CONTROL_BODY_BYTES_MAX} bytes"),
    )
}

/// With a token configured: `/?token=T` sets a same-site cookie (so the page's own requests
/// carry it), and every `/api` request needs the token as a bearer header or that cookie.
async fn require_token(State(app): State<App>, req: Request, next: Next) -> Response {
    let Some(token) = app.token.clone() else {
        return next.run(req).await;
    };
    let query_token = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=")))
        .map(str::to_owned);
    if !req.uri().path().starts_with("/api") {
        let mut resp = next.run(req).await;
        if query_token.is_some_and(|q| token_matches(&q, &token)) {
            let cookie = format!("{TOKEN_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/");
            if let Ok(v) = header::HeaderValue::from_str(&cookie) {
                resp.headers_mut().insert(header::SET_COOKIE, v);
            }
        }
        return resp;
    }
    let headers = req.headers();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            c.trim()
                .strip_prefix(&format!("{TOKEN_COOKIE}="))
                .map(str::to_owned)
        });
    let presented = bearer.is_some_and(|b| token_matches(b, &token))
        || cookie.is_some_and(|c| token_matches(&c, &token));
    if presented {
        next.run(req).await
    } else {
        reply(
            StatusCode::UNAUTHORIZED,
            false,
            "this control API needs its token (Authorization: Bearer TOKEN)",
        )
    }
}

fn reply(status: StatusCode, ok: bool, message: impl Into<String>) -> Response {
    let message = message.into();
    encoded(status, &ActionReply { ok, message })
}

fn control_error(e: ControlError) -> Response {
    let status = match e {
        ControlError::UnknownNode(_) => StatusCode::NOT_FOUND,
        ControlError::WrongState { .. } => StatusCode::CONFLICT,
        ControlError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        ControlError::BadRequest(_) => StatusCode::BAD_REQUEST,
        ControlError::Refused(_) => StatusCode::CONFLICT,
        ControlError::NotConfirmed(_) => StatusCode::GATEWAY_TIMEOUT,
    };
    reply(status, false, e.to_string())
}

/// Refuses a state-changing request made by a page of another origin (a browser always sends
/// `Origin` on cross-origin POSTs; tools like curl send none).
fn same_origin(headers: &HeaderMap) -> Result<(), Response> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let origin = origin.to_str().unwrap_or("");
    let authority = origin.split_once("://").map_or("", |(_, rest)| rest);
    if !host.is_empty() && authority == host {
        Ok(())
    } else {
        Err(reply(
            StatusCode::FORBIDDEN,
            false,
            format!("cross-origin request from {origin:?} refused"),
        ))
    }
}

async fn cluster(State(app): State<App>) -> Response {
    encoded(StatusCode::OK, &app.supervisor.view().await)
}

async fn not_found() -> Response {
    reply(
        StatusCode::NOT_FOUND,
        false,
        "unknown API path; see README.md for the control API",
    )
}

fn parse_id(raw: &str) -> Result<NodeId, Response> {
    raw.parse::<NodeId>().map_err(|_| {
        reply(
            StatusCode::BAD_REQUEST,
            false,
            format!("node id {raw:?} is not a number"),
        )
    })
}

async fn node_action(
    State(app): State<App>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
) -> Response {
    if let Err(r) = same_origin(&headers) {
        return r;
    }
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let s = &app.supervisor;
    let result = match action.as_str() {
        "kill" => s.kill(id).await,
        "restart" => s.restart(id).await,
        "pause" => s.pause(id).await,
        "resume" => s.resume(id).await,
        other => {
            return reply(
                StatusCode::NOT_FOUND,
                false,
                format!("unknown action {other:?}: use kill, restart, pause or resume"),
            )
        }
    };
    match result {
        Ok(()) => reply(StatusCode::OK, true, format!("node {id}: {action} done")),
        Err(e) => control_error(e),
    }
}

async fn set_link(State(app): State<App>, headers: HeaderMap, bytes: Bytes) -> Response {
    if let Err(r) = same_origin(&headers) {
        return r;
    }
    let req: LinkRequest = match body(&headers, &bytes, r#"{"a":1,"b":2,"connected":false}"#) {
        Ok(r) => r,
        Err(r) => return r,
    };
    match app.supervisor.set_link(req.a, req.b, req.connected).await {
        Ok(()) => reply(
            StatusCode::OK,
            true,
            format!(
                "link {}-{} {}",
                req.a,
                req.b,
                if req.connected { "healed" } else { "cut" }
            ),
        ),
        Err(e) => control_error(e),
    }
}

/// Decodes a control body in the encoding its `Content-Type` names (postcard from the page,
/// JSON from everyone else), or the 400 reply that says what was expected (in JSON).
fn body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: &[u8],
    expected: &str,
) -> Result<T, Response> {
    let content_type = headers.get(header::CONTENT_TYPE);
    let encoding = Encoding::from_content_type(content_type.and_then(|v| v.to_str().ok()));
    encoding.decode(body, CONTROL_BODY_BYTES_MAX).map_err(|e| {
        reply(
            StatusCode::BAD_REQUEST,
            false,
            format!("{e}; expected {expected}"),
        )
    })
}

async fn hold_link(State(app): State<App>, headers: HeaderMap, bytes: Bytes) -> Response {
    if let Err(r) = same_origin(&headers) {
        return r;
    }
    let req: HoldRequest = match body(
        &headers,
        &bytes,
        r#"{"a":1,"b":2,"held":true,"both":false}"#,
    ) {
        Ok(r) => r,
        Err(r) => return r,
    };
    match app.supervisor.hold(req.a, req.b, req.held, req.both).await {
        Ok(()) => {
            let arrow = if req.both { "<->" } else { "->" };
            let what = if req.held { "held" } else { "released" };
            reply(
                StatusCode::OK,
                true,
                format!("link {}{arrow}{} {what}", req.a, req.b),
            )
        }
        Err(e) => control_error(e),
    }
}

async fn deliver_held(State(app): State<App>, headers: HeaderMap, bytes: Bytes) -> Response {
    if let Err(r) = same_origin(&headers) {
        return r;
    }
    let req: DeliverRequest = match body(&headers, &bytes, r#"{"a":1,"b":2,"count":1}"#) {
        Ok(r) => r,
        Err(r) => return r,
    };
    match app.supervisor.deliver(req.a, req.b, req.count).await {
        Ok(n) => reply(
            StatusCode::OK,
            true,
            format!("delivered {n} message(s) {}->{}", req.a, req.b),
        ),
        Err(e) => control_error(e),
    }
}

async fn drop_held(State(app): State<App>, headers: HeaderMap, bytes: Bytes) -> Response {
    if let Err(r) = same_origin(&headers) {
        return r;
    }
    let req: LinkPair = match body(&headers, &bytes, r#"{"a":1,"b":2}"#) {
        Ok(r) => r,
        Err(r) => return r,
    };
    match app.supervisor.drop_held(req.a, req.b).await {
        Ok(n) => reply(
            StatusCode::OK,
            true,
            format!(
                "dropped {n} message(s) {}->{} and broke the stream",
                req.a, req.b
            ),
        ),
        Err(e) => control_error(e),
    }
}

async fn scenario(
    State(app): State<App>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    if let Err(r) = same_origin(&headers) {
        return r;
    }
    let Some(scenario) = Scenario::parse(&name) else {
        return reply(
            StatusCode::NOT_FOUND,
            false,
            format!("unknown scenario {name:?}: use quorum-loss, constrained, chained or heal"),
        );
    };
    let s = &app.supervisor;
    let nodes = s.node_ids();
    let leader = s.view().await.leader;
    let cut = match plan(scenario, &nodes, leader) {
        Ok(cut) => cut,
        Err(e) => return reply(StatusCode::CONFLICT, false, e.to_string()),
    };
    if scenario == Scenario::Constrained {
        // First make the pivot fall behind: isolate it and write through the others.
        let leader = leader.expect("plan checked the leader");
        let q = pivot(&nodes, leader).expect("plan checked the size");
        if let Err(e) = s.set_cut_links(isolate(&nodes, q)).await {
            return control_error(e);
        }
        let others: Vec<String> = s
            .ws_urls()
            .into_iter()
            .zip(&nodes)
            .filter(|(_, &id)| id != q)
            .map(|(url, _)| url)
            .collect();
        let mut client = Client::new(others);
        client.total_timeout = Duration::from_secs(3);
        for i in 0..5 {
            let op = ClientOp::Put {
                key: format!("constrained-{i}"),
                value: format!("written while node {q} was cut off"),
            };
            if let Err(e) = client.execute(op).await {
                tracing::warn!(error = %e, "write while isolating the pivot failed");
            }
        }
    }
    let description = match scenario {
        Scenario::Heal => "all links healed".to_string(),
        _ => format!(
            "{} links cut: {:?}",
            cut.len(),
            cut.iter().collect::<Vec<&scenarios::Link>>()
        ),
    };
    match s.set_cut_links(cut).await {
        Ok(()) => reply(
            StatusCode::OK,
            true,
            format!("{}: {description}", scenario.name()),
        ),
        Err(e) => control_error(e),
    }
}
