//! The HTTP routes: GraphQL over HTTP (`graphql.rs`), GraphiQL, the health
//! check, metrics, and the request span around them all.

mod browser;
mod client_ip;
pub mod graphql;
mod persisted;

pub use browser::{BrowserCors, Browsers};
pub use client_ip::TrustedProxies;
pub use persisted::PersistedQueries;

use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument;

use poem::http::{StatusCode, header};
use poem::web::{Data, Html, Json, Path};
use poem::{Endpoint, IntoResponse, Request, Response, handler};
use serde_json::json;

use crate::state::AppState;
use crate::store::Store;

/// The GraphiQL page (`GET /graphql` from a browser). Its scripts and styles
/// are served by authgraph itself (below), so it works with no network
/// beyond this server.
fn graphiql() -> Html<&'static str> {
    Html(include_str!("../../assets/graphiql/index.html"))
}

/// The vendored GraphiQL 3.8.3 and React 18.3.1 files (`assets/graphiql`).
#[handler]
pub fn graphiql_asset(Path((version, file)): Path<(String, String)>) -> Response {
    let asset: Option<(&'static [u8], &str)> = match (version.as_str(), file.as_str()) {
        ("3.8.3", "graphiql.min.js") => Some((
            include_bytes!("../../assets/graphiql/graphiql.min.js"),
            "text/javascript; charset=utf-8",
        )),
        ("3.8.3", "graphiql.min.css") => Some((
            include_bytes!("../../assets/graphiql/graphiql.min.css"),
            "text/css; charset=utf-8",
        )),
        ("3.8.3", "react.production.min.js") => Some((
            include_bytes!("../../assets/graphiql/react.production.min.js"),
            "text/javascript; charset=utf-8",
        )),
        ("3.8.3", "react-dom.production.min.js") => Some((
            include_bytes!("../../assets/graphiql/react-dom.production.min.js"),
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

/// The request's id (see [`request_span`]), for what it records.
#[derive(Debug, Clone)]
pub struct RequestId(pub Arc<str>);

/// Runs each request inside a `request` span carrying its id, so every log
/// line of the request names it. The id is the client's `X-Request-Id` when
/// that is a short token, else a new UUID; it is echoed in the response.
pub async fn request_span<E: Endpoint>(ep: Arc<E>, mut req: Request) -> poem::Result<Response> {
    let id = req
        .header("x-request-id")
        .filter(|id| {
            !id.is_empty()
                && id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
        .map_or_else(|| uuid::Uuid::new_v4().to_string().into(), Arc::<str>::from);
    let span = tracing::info_span!("request", id = %id);
    req.extensions_mut().insert(RequestId(id.clone()));
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

/// The published documents of `/.well-known/`, made once at start.
#[derive(Clone)]
pub struct WellKnown(Arc<Documents>);

struct Documents {
    /// The JWK Set, serialised.
    keys: Option<String>,
    /// The discovery document, serialised.
    discovery: Option<String>,
}

impl WellKnown {
    /// `jwks`: the public keys (none under HS256); `issuer`: the `iss` claim,
    /// when there is one; `jwks_uri`: where the keys are published.
    pub fn new(
        key_set: Option<&jsonwebtoken::jwk::JwkSet>,
        issuer: Option<&str>,
        jwks_uri: &str,
    ) -> Self {
        let keys = key_set.and_then(|set| serde_json::to_string(set).ok());
        // Only what authgraph implements: the issuer, and its keys when published.
        let discovery = issuer.map(|issuer| {
            let mut document = json!({ "issuer": issuer });
            if keys.is_some() {
                document["jwks_uri"] = json!(jwks_uri);
            }
            document.to_string()
        });
        Self(Arc::new(Documents { keys, discovery }))
    }
}

/// `GET /.well-known/jwks.json`: the public keys; `404` under HS256, whose
/// key is never published.
#[handler]
pub fn jwks(well_known: Data<&WellKnown>) -> Response {
    match &well_known.0.0.keys {
        Some(keys) => Response::builder()
            .content_type("application/json")
            .header(header::CACHE_CONTROL, "public, max-age=300")
            .body(keys.clone()),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `GET /.well-known/openid-configuration`: `issuer` and `jwks_uri`, when an
/// issuer is set; `404` otherwise.
#[handler]
pub fn openid_configuration(well_known: Data<&WellKnown>) -> Response {
    match &well_known.0.0.discovery {
        Some(document) => Response::builder()
            .content_type("application/json")
            .header(header::CACHE_CONTROL, "public, max-age=300")
            .body(document.clone()),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// What the recovery pages may do: their own script, calls to this origin,
/// nothing else; no Referer ever leaves them.
fn recovery_headers(builder: poem::ResponseBuilder) -> poem::ResponseBuilder {
    builder
        .header("referrer-policy", "no-referrer")
        .header(
            "content-security-policy",
            "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; \
             form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
        )
        .header(header::CACHE_CONTROL, "no-store")
        .header("x-content-type-options", "nosniff")
}

/// `GET /reset-password` and `GET /verify-email`: the minimal pages the mail
/// links open (the token in the fragment); each calls its mutation.
#[handler]
pub fn recovery_page(req: &Request) -> Response {
    let page = if req.uri().path().ends_with("verify-email") {
        include_str!("../../assets/pages/verify-email.html")
    } else {
        include_str!("../../assets/pages/reset-password.html")
    };
    recovery_headers(Response::builder())
        .content_type("text/html; charset=utf-8")
        .body(page)
}

/// The recovery pages' script.
#[handler]
pub fn recovery_script() -> Response {
    recovery_headers(Response::builder())
        .content_type("text/javascript; charset=utf-8")
        .body(include_str!("../../assets/pages/recovery.js"))
}
