//! The edge for browsers (API.md, "Browsers"): CORS for the allowed
//! origins, the refresh cookie of cookie mode, and the CSRF rule that goes
//! with it.
//!
//! CORS is poem's `Cors`, configured to API.md, behind a thin endpoint that
//! fixes where poem's defaults differ: an origin that is not listed gets no
//! CORS at all (poem would answer `403`, breaking same-origin pages and
//! GraphiQL), a preflight answers `204` (poem: `200`), and every response
//! says `Vary: Origin` (poem: only for wildcard matches).

use std::sync::Arc;

use poem::http::{HeaderValue, Method, StatusCode, header};
use poem::middleware::{Cors, CorsEndpoint};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};

use crate::config::{AllowedOrigins, Origin};
use crate::graphql::REFRESH_COOKIE;

/// Request headers a cross-origin page may send: the bearer token, JSON,
/// the request id, and what Apollo Client and Apollo's CSRF rule send.
const ALLOWED_HEADERS: [&str; 7] = [
    "authorization",
    "content-type",
    "x-request-id",
    "apollographql-client-name",
    "apollographql-client-version",
    "apollo-require-preflight",
    "x-apollo-operation-name",
];

/// How long a browser may keep a preflight's answer, seconds.
const PREFLIGHT_MAX_AGE: i32 = 600;

/// `CORS_ALLOWED_ORIGINS` as middleware.
pub struct BrowserCors {
    allowed: Arc<AllowedOrigins>,
}

impl BrowserCors {
    pub fn new(allowed: AllowedOrigins) -> Self {
        Self {
            allowed: Arc::new(allowed),
        }
    }
}

impl<E: Endpoint> Middleware<E> for BrowserCors {
    type Output = BrowserCorsEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        let inner = Arc::new(ep);
        let cors = Cors::new()
            .allow_origins(self.allowed.iter().map(Origin::as_str))
            .allow_credentials(true)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers(ALLOWED_HEADERS)
            .expose_header("x-request-id")
            .max_age(PREFLIGHT_MAX_AGE)
            .transform(inner.clone());
        BrowserCorsEndpoint {
            inner,
            cors,
            allowed: self.allowed.clone(),
        }
    }
}

pub struct BrowserCorsEndpoint<E> {
    inner: Arc<E>,
    cors: CorsEndpoint<Arc<E>>,
    allowed: Arc<AllowedOrigins>,
}

impl<E: Endpoint> Endpoint for BrowserCorsEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let allowed = req
            .header(header::ORIGIN)
            .is_some_and(|origin| self.allowed.contains(origin));
        let preflight = req.method() == Method::OPTIONS;
        let mut response = if allowed {
            self.cors.call(req).await?
        } else {
            self.inner.call(req).await?.into_response()
        };
        if allowed && preflight && response.status() == StatusCode::OK {
            response.set_status(StatusCode::NO_CONTENT);
        }
        response
            .headers_mut()
            .append(header::VARY, HeaderValue::from_static("Origin"));
        Ok(response)
    }
}

/// What the GraphQL handlers need to know of browsers (shared: request
/// data is cloned into every request).
#[derive(Clone)]
pub struct Browsers(Arc<BrowserPolicy>);

pub struct BrowserPolicy {
    /// `PUBLIC_URL`'s origin: "this server".
    public: Origin,
    allowed: AllowedOrigins,
    cookie_mode: bool,
}

impl std::ops::Deref for Browsers {
    type Target = BrowserPolicy;

    fn deref(&self) -> &BrowserPolicy {
        &self.0
    }
}

impl Browsers {
    pub fn new(public: Origin, allowed: AllowedOrigins, cookie_mode: bool) -> Self {
        Self(Arc::new(BrowserPolicy {
            public,
            allowed,
            cookie_mode,
        }))
    }
}

impl BrowserPolicy {
    /// The refresh token in this request's cookie, in cookie mode. Of
    /// several cookies of that name, the first.
    pub fn refresh_cookie(&self, req: &Request) -> Option<String> {
        if !self.cookie_mode {
            return None;
        }
        req.headers()
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(cookie::Cookie::split_parse)
            .filter_map(Result::ok)
            .find(|cookie| cookie.name() == REFRESH_COOKIE && !cookie.value().is_empty())
            .map(|cookie| cookie.value().to_owned())
    }

    /// The CSRF rule: a request that carries the refresh cookie from a page
    /// that is neither this server's nor allowed (`Origin: null` included)
    /// is refused whole. This server's pages are `PUBLIC_URL`'s origin and,
    /// when it is reached on a loopback address, its own origin as reached
    /// (`http://` and the `Host` the browser sent: GraphiQL on
    /// `127.0.0.1:8000`, a dev proxy that keeps the app's `Host`). That is
    /// never another site: the cookie is bound to the host it was set by,
    /// so a page whose origin is that very host is this server's. No
    /// `Origin` is no browser's cross-site request.
    pub fn is_forged(&self, req: &Request) -> bool {
        let Some(origin) = req.headers().get(header::ORIGIN) else {
            return false;
        };
        let trusted = origin.to_str().is_ok_and(|origin| {
            origin == self.public.as_str()
                || self.allowed.contains(origin)
                || req
                    .header(header::HOST)
                    .is_some_and(|host| is_own_loopback_origin(origin, host.trim()))
        });
        !trusted && self.refresh_cookie(req).is_some()
    }

    /// The origins cookie mode accepts a refresh cookie from, for a server
    /// bound to `addr`: `PUBLIC_URL`'s, the allowed ones, and this server's
    /// own on loopback (when it listens there), for the start-up log.
    pub fn cookie_origins(&self, addr: std::net::SocketAddr) -> Vec<String> {
        let mut origins = vec![self.public.as_str().to_owned()];
        origins.extend(self.allowed.iter().map(|origin| origin.as_str().to_owned()));
        let (ip, port) = (addr.ip(), addr.port());
        if ip.is_unspecified() || ip.is_loopback() {
            for own in [
                format!("http://localhost:{port}"),
                format!("http://127.0.0.1:{port}"),
                format!("http://[::1]:{port}"),
            ] {
                if !origins.contains(&own) {
                    origins.push(own);
                }
            }
        }
        origins
    }
}

/// Is `origin` this server as the browser reached it on loopback: `http://`
/// and the request's `Host` (`authority`), a loopback host as
/// [`Origin::is_loopback`] has it?
fn is_own_loopback_origin(origin: &str, authority: &str) -> bool {
    origin
        .strip_prefix("http://")
        .is_some_and(|rest| rest.eq_ignore_ascii_case(authority))
        && Origin::parse(origin).is_ok_and(|origin| origin.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_told_apart() {
        let own = |host: &str| is_own_loopback_origin(&format!("http://{host}"), host);
        for host in [
            "localhost",
            "LOCALHOST:8000",
            "127.0.0.1:5173",
            "127.3.2.1",
            "[::1]:8000",
            "[::1]",
        ] {
            assert!(own(host), "{host}");
        }
        for host in [
            "example.com",
            "localhost.example.com:80",
            "10.0.0.1:8000",
            "[::2]:1",
            "",
            "0.0.0.0:8000",
        ] {
            assert!(!own(host), "{host}");
        }
        // The origin must be the very host the request reached.
        assert!(!is_own_loopback_origin(
            "http://localhost:3000",
            "localhost:8000"
        ));
        assert!(!is_own_loopback_origin(
            "https://localhost:8000",
            "localhost:8000"
        ));
    }
}
