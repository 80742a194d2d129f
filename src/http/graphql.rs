//! GraphQL over HTTP (the GraphQL foundation's spec), as API.md pins it:
//! POST for everything, GET for queries, GraphiQL for browsers, and the
//! status codes of the media type the client asked for.
//!
//! - `application/json` (the default, and what `*/*` means): every
//!   executed document answers 200, as before.
//! - `application/graphql-response+json`: a request that fails before
//!   execution (parse, validation, an unknown operation) answers 400 with no
//!   `data` entry; anything executed answers 200.

use async_graphql::parser::types::{DocumentOperations, OperationType};
use async_graphql::{BatchRequest, BatchResponse, Variables};
use async_graphql_poem::GraphQLBatchResponse;
use poem::error::ReadBodyError;
use poem::http::{StatusCode, header};
use poem::web::{Accept, Data, Json};
use poem::{Body, IntoResponse, Request, Response, handler};
use serde_json::json;

use super::persisted::{self, PersistedQueries, Resolved};
use super::{Browsers, RequestId, TrustedProxies};
use crate::auth::bearer::Credentials;
use crate::error::code;
use crate::events::Source;
use crate::graphql::{AuthSchema, MAX_BATCH, MAX_NESTING, RequestMeta, nesting_exceeds};

/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;
/// Longest user agent kept with a session.
const MAX_USER_AGENT: usize = 512;

/// The media type of the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Media {
    Json,
    GraphqlResponse,
}

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";

/// What the client's `Accept` ranks first among what we serve: the
/// GraphiQL page (`text/html`, when `html` is offered), or one of the two
/// JSON types. `*/*`, no header, or nothing we serve: `application/json`.
/// A type with `q=0` is refused, not ranked.
fn negotiate(accept: &Accept, html: bool) -> Option<Media> {
    for mime in &accept.0 {
        if mime
            .get_param("q")
            .is_some_and(|q| q.as_str().parse::<f32>() == Ok(0.0))
        {
            continue;
        }
        match (
            mime.type_().as_str(),
            mime.subtype().as_str(),
            mime.suffix(),
        ) {
            ("text", "html", _) if html => return None,
            ("application", "graphql-response", Some(suffix)) if suffix == "json" => {
                return Some(Media::GraphqlResponse);
            }
            ("application", "json", _) | ("application", "*", _) | ("*", "*", _) => {
                return Some(Media::Json);
            }
            _ => {}
        }
    }
    Some(Media::Json)
}

/// A GraphQL-style error body for requests refused before any operation ran.
fn refuse(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({ "errors": [{ "message": message, "extensions": { "code": code } }] });
    (status, Json(body)).into_response()
}

/// The per-operation data every operation of this request gets.
fn meta(req: &Request, proxies: &TrustedProxies, browsers: &Browsers) -> impl Fn() -> RequestMeta {
    // Two headers are refused, not resolved: a proxy that reads the other
    // one would authenticate someone else.
    let mut authorization = req.headers().get_all(header::AUTHORIZATION).iter();
    let credentials = match (authorization.next(), authorization.next()) {
        (first, None) => Credentials::from_header(first.map(|v| v.as_bytes())),
        (Some(_), Some(_)) | (None, Some(_)) => Credentials::Malformed,
    };
    let client_ip = proxies.client(
        req.remote_addr().as_socket_addr().map(|addr| addr.ip()),
        req.headers().get_all("x-forwarded-for").iter(),
    );
    let user_agent = req.header(header::USER_AGENT).map(|ua| {
        ua.char_indices()
            .nth(MAX_USER_AGENT)
            .map_or(ua, |(cut, _)| &ua[..cut])
            .to_owned()
    });
    let refresh_cookie = browsers.refresh_cookie(req);
    let source = std::sync::Arc::new(Source {
        ip: client_ip,
        user_agent,
        request_id: req.extensions().get::<RequestId>().map(|id| id.0.clone()),
    });
    move || RequestMeta::new(credentials.clone(), source.clone(), refresh_cookie.clone())
}

/// Runs a single request or a batch, each entry resolving its own
/// persisted query. Operations of a batch run one after the other, each
/// authenticating on its own: a logout in one is seen by the next, and one
/// request can't fan out into ten concurrent hashes.
async fn execute(
    schema: &AuthSchema,
    persisted: &PersistedQueries,
    batch: BatchRequest,
    meta: impl Fn() -> RequestMeta,
) -> BatchResponse {
    match batch {
        BatchRequest::Single(request) => {
            BatchResponse::Single(run(schema, persisted, persisted.resolve(request), &meta).await)
        }
        BatchRequest::Batch(list) => {
            let mut responses = Vec::with_capacity(list.len());
            for request in list {
                responses.push(run(schema, persisted, persisted.resolve(request), &meta).await);
            }
            BatchResponse::Batch(responses)
        }
    }
}

/// Runs one resolved request; keeps its persisted document once it ran.
async fn run(
    schema: &AuthSchema,
    persisted: &PersistedQueries,
    resolved: Resolved,
    meta: &impl Fn() -> RequestMeta,
) -> async_graphql::Response {
    let (request, keep) = match resolved {
        Resolved::NotFound => return persisted::not_found(),
        Resolved::BadHash => return persisted::bad_hash(),
        Resolved::Run { request, keep } => (*request, keep),
    };
    let kept = keep.map(|hash| (hash, request.query.clone()));
    let response = schema.execute(request.data(meta())).await;
    if let Some((hash, query)) = kept
        && !failed_before_execution(&response)
    {
        persisted.keep(hash, &query);
    }
    response
}

/// Did this response fail before execution? Then there is no data, and every
/// error is the request's (no path).
fn failed_before_execution(response: &async_graphql::Response) -> bool {
    response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|err| err.path.is_empty())
}

/// The answer in `media`'s terms.
fn respond(response: BatchResponse, media: Media) -> Response {
    if media == Media::Json {
        return GraphQLBatchResponse(response).into_response();
    }
    // What resolvers set (the refresh cookie), as the JSON path does.
    let headers = response.http_headers();
    let (status, body) = match &response {
        BatchResponse::Single(single)
            if failed_before_execution(single) && !persisted::is_not_found(single) =>
        {
            (
                StatusCode::BAD_REQUEST,
                serde_json::to_vec(&json!({ "errors": single.errors })),
            )
        }
        _ => (StatusCode::OK, serde_json::to_vec(&response)),
    };
    match body {
        Ok(body) => {
            let mut answer = Response::builder()
                .status(status)
                .content_type(format!("{GRAPHQL_RESPONSE}; charset=utf-8"))
                .body(body);
            answer.headers_mut().extend(headers);
            answer
        }
        Err(_) => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            code::INTERNAL_SERVER_ERROR,
            "Internal server error",
        ),
    }
}

/// `POST /graphql`: a JSON request or a batch of them.
#[handler]
pub async fn post(
    req: &Request,
    body: Body,
    accept: Accept,
    schema: Data<&AuthSchema>,
    persisted: Data<&PersistedQueries>,
    proxies: Data<&TrustedProxies>,
    browsers: Data<&Browsers>,
) -> Response {
    let media = negotiate(&accept, false).unwrap_or(Media::Json);
    if browsers.is_forged(req) {
        return refuse(
            StatusCode::FORBIDDEN,
            code::FORBIDDEN,
            "This request carries the refresh cookie from a page whose origin authgraph does not \
             accept: set PUBLIC_URL to the origin users open authgraph at, or list the app's \
             origin in CORS_ALLOWED_ORIGINS (the origins accepted are logged at start)",
        );
    }
    let is_json = req
        .header(header::CONTENT_TYPE)
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code::BAD_REQUEST,
            "Send the request as 'Content-Type: application/json'",
        );
    }
    let bytes = match body.into_bytes_limit(MAX_BODY).await {
        Ok(bytes) => bytes,
        Err(ReadBodyError::PayloadTooLarge) => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                code::BAD_REQUEST,
                "The request body is larger than 64 KiB",
            );
        }
        Err(_) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                code::BAD_REQUEST,
                "The request body could not be read",
            );
        }
    };
    let batch: BatchRequest = match serde_json::from_slice(&bytes) {
        Ok(batch) => batch,
        Err(_) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                code::BAD_REQUEST,
                "The body is not a GraphQL request: expected JSON {\"query\", \"variables\", \"operationName\"} or an array of them",
            );
        }
    };
    if batch
        .iter()
        .any(|r| r.query.trim().is_empty() && !r.extensions.contains_key("persistedQuery"))
    {
        return refuse(
            StatusCode::BAD_REQUEST,
            code::BAD_REQUEST,
            "Every operation needs a non-empty \"query\" (or a persisted query's hash)",
        );
    }
    let batch = match batch {
        BatchRequest::Batch(list) if list.is_empty() || list.len() > MAX_BATCH => {
            return refuse(
                StatusCode::BAD_REQUEST,
                code::BAD_REQUEST,
                "A batch holds 1 to 10 operations",
            );
        }
        batch => batch,
    };
    respond(
        execute(&schema, &persisted, batch, meta(req, &proxies, &browsers)).await,
        media,
    )
}

/// The parameters of a GraphQL GET request.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetParams {
    query: Option<String>,
    operation_name: Option<String>,
    variables: Option<String>,
    extensions: Option<String>,
}

/// `GET /graphql`: GraphiQL when the client ranks `text/html` first,
/// otherwise a query in the query string. Only queries run over GET: a
/// mutation is refused (`405`) before anything runs.
#[handler]
pub async fn get(
    req: &Request,
    accept: Accept,
    schema: Data<&AuthSchema>,
    persisted: Data<&PersistedQueries>,
    proxies: Data<&TrustedProxies>,
    browsers: Data<&Browsers>,
) -> Response {
    let Some(media) = negotiate(&accept, true) else {
        return super::graphiql().into_response();
    };
    let params: GetParams = match serde_urlencoded::from_str(req.uri().query().unwrap_or("")) {
        Ok(params) => params,
        Err(_) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                code::BAD_REQUEST,
                "The query string is not a GraphQL request: ?query=&variables=&operationName=",
            );
        }
    };
    let bad = |message| refuse(StatusCode::BAD_REQUEST, code::BAD_REQUEST, message);
    let Ok(variables) = params
        .variables
        .as_deref()
        .map_or(Ok(Variables::default()), serde_json::from_str::<Variables>)
    else {
        return bad("`variables` is not a JSON object");
    };
    let Ok(extensions) = params
        .extensions
        .as_deref()
        .map_or(Ok(Default::default()), serde_json::from_str)
    else {
        return bad("`extensions` is not a JSON object");
    };
    let mut request =
        async_graphql::Request::new(params.query.unwrap_or_default()).variables(variables);
    request.extensions = extensions;
    if request.query.trim().is_empty() && !request.extensions.contains_key("persistedQuery") {
        return bad("A GET request needs a non-empty `query` parameter");
    }
    if let Some(name) = params.operation_name {
        request = request.operation_name(name);
    }
    // The GET rule applies to the resolved document.
    let resolved = persisted.resolve(request);
    if let Resolved::Run { request, .. } = &resolved
        && changes_state(&request.query, request.operation_name.as_deref())
    {
        let mut refused = refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            code::BAD_REQUEST,
            "Only queries run over GET: send mutations with POST",
        );
        refused
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
        return refused;
    }
    let meta = meta(req, &proxies, &browsers);
    let response = run(&schema, &persisted, resolved, &meta).await;
    respond(BatchResponse::Single(response), media)
}

/// Is the operation this GET would run a mutation (or a subscription)?
/// Parsed under the same nesting limit as every document; one that does
/// not parse, or names no operation of its own, is left to the executor to
/// refuse.
fn changes_state(query: &str, operation_name: Option<&str>) -> bool {
    if nesting_exceeds(query, MAX_NESTING) {
        return false;
    }
    let Ok(document) = async_graphql::parser::parse_query(query) else {
        return false;
    };
    let is_query = |ty: OperationType| ty == OperationType::Query;
    match &document.operations {
        DocumentOperations::Single(operation) => !is_query(operation.node.ty),
        // Named operations: the one asked for, or the only one.
        DocumentOperations::Multiple(operations) => match operation_name {
            Some(name) => operations.get(name),
            None if operations.len() == 1 => operations.values().next(),
            None => None,
        }
        .is_some_and(|operation| !is_query(operation.node.ty)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What poem's extractor makes of this `Accept` header.
    fn accept(header: &str) -> Accept {
        let req = Request::builder().header(header::ACCEPT, header).finish();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime
            .block_on(<Accept as poem::FromRequest>::from_request_without_body(
                &req,
            ))
            .unwrap()
    }

    #[test]
    fn accept_ranks_what_we_serve() {
        let html = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        assert_eq!(
            negotiate(&accept(html), true),
            None,
            "a browser gets GraphiQL"
        );
        assert_eq!(negotiate(&accept(html), false), Some(Media::Json));
        assert_eq!(negotiate(&accept("*/*"), true), Some(Media::Json));
        assert_eq!(
            negotiate(
                &accept("application/graphql-response+json, application/json;q=0.9"),
                true
            ),
            Some(Media::GraphqlResponse)
        );
        assert_eq!(
            negotiate(
                &accept("application/json, application/graphql-response+json;q=0.5"),
                true
            ),
            Some(Media::Json)
        );
        assert_eq!(
            negotiate(&accept("text/html;q=0.5, application/json"), true),
            Some(Media::Json)
        );
        assert_eq!(
            negotiate(&accept("application/graphql-response+json;q=0, */*"), true),
            Some(Media::Json)
        );
        assert_eq!(negotiate(&accept("image/png"), true), Some(Media::Json));
        assert_eq!(negotiate(&Accept(Vec::new()), true), Some(Media::Json));
    }

    #[test]
    fn only_queries_run_over_get() {
        assert!(!changes_state("{ me { id } }", None));
        assert!(!changes_state("query Q { me { id } }", None));
        assert!(changes_state("mutation { logout }", None));
        assert!(changes_state("mutation Named { logout }", None));
        let both = "query Q { me { id } } mutation M { logout }";
        assert!(changes_state(both, Some("M")));
        assert!(!changes_state(both, Some("Q")));
        assert!(
            !changes_state(both, None),
            "the executor refuses a missing name"
        );
        assert!(
            !changes_state("mutation {", None),
            "the executor refuses a parse error"
        );
    }
}
