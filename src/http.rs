//! The HTTP routes: GraphQL over HTTP, GraphiQL and the health check.

use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument;

use async_graphql::{BatchRequest, BatchResponse};
use async_graphql_poem::GraphQLBatchResponse;
use poem::error::ReadBodyError;
use poem::http::{StatusCode, header};
use poem::web::{Data, Html, Json, Path};
use poem::{Body, Endpoint, IntoResponse, Request, Response, handler};
use serde_json::json;

use crate::auth::bearer::Credentials;
use crate::graphql::RequestMeta;
use crate::graphql::{AuthSchema, MAX_BATCH};
use crate::state::AppState;
use crate::store::Store;

/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;
/// Longest user agent kept with a session.
const MAX_USER_AGENT: usize = 512;

/// A GraphQL-style error body for requests refused before any operation ran.
fn refuse(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({ "errors": [{ "message": message, "extensions": { "code": code } }] });
    (status, Json(body)).into_response()
}

#[handler]
pub async fn graphql(req: &Request, body: Body, schema: Data<&AuthSchema>) -> Response {
    let is_json = req
        .header(header::CONTENT_TYPE)
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "BAD_REQUEST",
            "Send the request as 'Content-Type: application/json'",
        );
    }
    let bytes = match body.into_bytes_limit(MAX_BODY).await {
        Ok(bytes) => bytes,
        Err(ReadBodyError::PayloadTooLarge) => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "BAD_REQUEST",
                "The request body is larger than 64 KiB",
            );
        }
        Err(_) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                "The request body could not be read",
            );
        }
    };
    let batch: BatchRequest = match serde_json::from_slice(&bytes) {
        Ok(batch) => batch,
        Err(_) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                "The body is not a GraphQL request: expected JSON {\"query\", \"variables\", \"operationName\"} or an array of them",
            );
        }
    };
    if batch.iter().any(|r| r.query.trim().is_empty()) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "Every operation needs a non-empty \"query\"",
        );
    }
    let batch = match batch {
        BatchRequest::Batch(list) if list.is_empty() || list.len() > MAX_BATCH => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                "A batch holds 1 to 10 operations",
            );
        }
        batch => batch,
    };

    // Two headers are refused, not resolved: a proxy that reads the other
    // one would authenticate someone else.
    let mut authorization = req.headers().get_all(header::AUTHORIZATION).iter();
    let credentials = match (authorization.next(), authorization.next()) {
        (first, None) => Credentials::from_header(first.map(|v| v.as_bytes())),
        (Some(_), Some(_)) | (None, Some(_)) => Credentials::Malformed,
    };
    let client_ip = req.remote_addr().as_socket_addr().map(|addr| addr.ip());
    let user_agent = req.header(header::USER_AGENT).map(|ua| {
        ua.char_indices()
            .nth(MAX_USER_AGENT)
            .map_or(ua, |(cut, _)| &ua[..cut])
            .to_owned()
    });
    // Operations of a batch run one after the other, each authenticating on its
    // own: a logout in one is seen by the next, and one request can't fan out
    // into ten concurrent password hashes.
    let meta = || RequestMeta::new(credentials.clone(), client_ip, user_agent.clone());
    let response = match batch {
        BatchRequest::Single(request) => {
            BatchResponse::Single(schema.execute(request.data(meta())).await)
        }
        BatchRequest::Batch(list) => {
            let mut responses = Vec::with_capacity(list.len());
            for request in list {
                responses.push(schema.execute(request.data(meta())).await);
            }
            BatchResponse::Batch(responses)
        }
    };
    GraphQLBatchResponse(response).into_response()
}

/// The GraphiQL page. Its scripts and styles are served by authgraph itself
/// (below), so it works with no network beyond this server.
#[handler]
pub fn graphiql() -> Html<&'static str> {
    Html(include_str!("../assets/graphiql/index.html"))
}

/// The vendored GraphiQL 3.8.3 and React 18.3.1 files (`assets/graphiql`).
#[handler]
pub fn graphiql_asset(Path((version, file)): Path<(String, String)>) -> Response {
    let asset: Option<(&'static [u8], &str)> = match (version.as_str(), file.as_str()) {
        ("3.8.3", "graphiql.min.js") => Some((
            include_bytes!("../assets/graphiql/graphiql.min.js"),
            "text/javascript; charset=utf-8",
        )),
        ("3.8.3", "graphiql.min.css") => Some((
            include_bytes!("../assets/graphiql/graphiql.min.css"),
            "text/css; charset=utf-8",
        )),
        ("3.8.3", "react.production.min.js") => Some((
            include_bytes!("../assets/graphiql/react.production.min.js"),
            "text/javascript; charset=utf-8",
        )),
        ("3.8.3", "react-dom.production.min.js") => Some((
            include_bytes!("../assets/graphiql/react-dom.production.min.js"),
            "text/javascript; charset=utf-8",
        )),
        _ => None,
    };
    match asset {
        Some((body, content_type)) => Response::builder()
            .content_type(content_type)
            // The version is in the path: the file under it never changes.
            .header(header::CACHE_CONTROL, "public, max-age=31536000, immutable")
            .body(body),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Prometheus metrics (text exposition format).
#[handler]
pub fn metrics(state: Data<&Arc<AppState>>) -> Response {
    Response::builder()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}

/// Runs each request inside a `request` span carrying its id, so every log
/// line of the request names it. The id is the client's `X-Request-Id` when
/// that is a short token, else a new UUID; it is echoed in the response.
pub async fn request_span<E: Endpoint>(ep: Arc<E>, req: Request) -> poem::Result<Response> {
    let id = req
        .header("x-request-id")
        .filter(|id| {
            !id.is_empty()
                && id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    let span = tracing::info_span!("request", id = %id);
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    async move {
        let start = std::time::Instant::now();
        // Routing refusals (404, 405) are errors here: they get the id too.
        let mut response = match ep.call(req).await {
            Ok(response) => response.into_response(),
            Err(err) => err.into_response(),
        };
        tracing::debug!(%method, %path, status = response.status().as_u16(), elapsed_us = start.elapsed().as_micros() as u64, "request");
        if let Ok(value) = id.parse() {
            response.headers_mut().insert("x-request-id", value);
        }
        Ok(response)
    }
    .instrument(span)
    .await
}

#[handler]
pub async fn healthz(store: Data<&Store>) -> Response {
    let up = tokio::time::timeout(Duration::from_secs(2), store.ping())
        .await
        .is_ok_and(|ping| ping.is_ok());
    if up {
        (StatusCode::OK, Json(json!({ "status": "ok" }))).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable" })),
        )
            .into_response()
    }
}
