//! `PUBLIC_URL` and `CORS_ALLOWED_ORIGINS`: web origins, parsed with the
//! `url` crate into the form browsers send in `Origin`, and the "same site"
//! test cookie mode needs (registrable domains from the public suffix list).

use url::{Host, Url};

/// A web origin as a browser serialises it in `Origin`: `scheme://host`,
/// plus `:port` unless it is the scheme's default; the host in lower case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    serialized: String,
    scheme: String,
    host: Host<String>,
}

impl Origin {
    fn of(url: &Url) -> Result<Self, String> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("'{url}' is not an http or https address"));
        }
        let Some(host) = url.host() else {
            return Err(format!("'{url}' has no host"));
        };
        Ok(Self {
            serialized: url.origin().ascii_serialization(),
            scheme: url.scheme().to_owned(),
            host: host.to_owned(),
        })
    }

    /// As it appears in an `Origin` header.
    pub fn as_str(&self) -> &str {
        &self.serialized
    }

    /// Same scheme and same registrable domain (`app.example.co.uk` and
    /// `auth.example.co.uk` are one site; `a.github.io` and `b.github.io`
    /// are not). Ports don't matter; an IP address is only its own site.
    pub fn same_site(&self, other: &Self) -> bool {
        self.scheme == other.scheme
            && match (&self.host, &other.host) {
                (Host::Domain(a), Host::Domain(b)) => registrable(a) == registrable(b),
                (a, b) => a == b,
            }
    }

    /// Is the host this machine (`localhost`, `127.0.0.1`, `::1`)? Browsers
    /// keep `Secure` cookies from such hosts over plain http.
    pub fn is_loopback(&self) -> bool {
        match &self.host {
            Host::Domain(name) => name == "localhost" || name.ends_with(".localhost"),
            Host::Ipv4(ip) => ip.is_loopback(),
            Host::Ipv6(ip) => ip.is_loopback(),
        }
    }

    /// An origin as a browser sends it in `Origin`, or as listed in
    /// `CORS_ALLOWED_ORIGINS`: scheme, host and port only.
    pub fn parse(value: &str) -> Result<Self, String> {
        parse_origin(value)
    }

    pub fn is_https(&self) -> bool {
        self.scheme == "https"
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.serialized)
    }
}

/// The registrable domain ("eTLD+1") of a host name; a name with no
/// registrable part (`localhost`, a bare suffix) is its own.
fn registrable(host: &str) -> &str {
    psl::domain_str(host).unwrap_or(host)
}

/// `PUBLIC_URL`: an absolute http(s) address with no query or fragment.
#[derive(Debug, Clone)]
pub struct PublicUrl {
    url: Url,
    origin: Origin,
    /// As given, without a trailing `/`.
    given: String,
}

impl PublicUrl {
    /// The default issuer: the address as given, without a trailing `/`.
    pub fn issuer(&self) -> String {
        self.given.clone()
    }

    /// The address of `path` (relative, e.g. `.well-known/jwks.json`) under
    /// this one, its path included.
    pub fn join(&self, path: &str) -> String {
        let mut base = self.url.clone();
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        base.join(path)
            .map_or_else(|_| format!("{}/{path}", self.given), String::from)
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    pub fn origin(&self) -> &Origin {
        &self.origin
    }
}

pub(super) fn parse_public_url(value: &str) -> Result<PublicUrl, String> {
    let url = Url::parse(value.trim()).map_err(|err| {
        format!("not an absolute URL ({err}), for example https://auth.example.com")
    })?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must have no query or fragment".to_owned());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must have no user name or password".to_owned());
    }
    let origin = Origin::of(&url)?;
    let given = value.trim().trim_end_matches('/').to_owned();
    Ok(PublicUrl { url, origin, given })
}

/// `CORS_ALLOWED_ORIGINS`: exact origins, comma-separated; empty is none.
#[derive(Debug, Clone, Default)]
pub struct AllowedOrigins(Vec<Origin>);

impl AllowedOrigins {
    pub fn iter(&self) -> impl Iterator<Item = &Origin> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Is this `Origin` header one of the list? Compared exactly, as
    /// browsers send it.
    pub fn contains(&self, origin: &str) -> bool {
        self.0.iter().any(|allowed| allowed.as_str() == origin)
    }
}

pub(super) fn parse_allowed_origins(value: &str) -> Result<AllowedOrigins, String> {
    let mut origins: Vec<Origin> = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let origin = parse_origin(entry)?;
        if !origins.contains(&origin) {
            origins.push(origin);
        }
    }
    Ok(AllowedOrigins(origins))
}

fn parse_origin(entry: &str) -> Result<Origin, String> {
    const EXAMPLE: &str =
        "list exact origins, for example https://app.example.com,http://localhost:5173";
    if entry.contains('*') {
        return Err(format!("'{entry}': wildcards are refused; {EXAMPLE}"));
    }
    let url = Url::parse(entry).map_err(|_| format!("'{entry}' is not an origin; {EXAMPLE}"))?;
    let bare = url.path() == "/"
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none();
    if !bare {
        return Err(format!(
            "'{entry}' is not an origin (scheme, host and port only); {EXAMPLE}"
        ));
    }
    Origin::of(&url).map_err(|err| format!("{err}; {EXAMPLE}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(value: &str) -> Origin {
        parse_origin(value).unwrap()
    }

    #[test]
    fn origins_are_kept_as_browsers_send_them() {
        assert_eq!(
            origin("https://App.Example.com").as_str(),
            "https://app.example.com"
        );
        assert_eq!(
            origin("https://app.example.com:443/").as_str(),
            "https://app.example.com"
        );
        assert_eq!(
            origin("http://localhost:5173").as_str(),
            "http://localhost:5173"
        );
        assert_eq!(origin("http://[::1]:3000").as_str(), "http://[::1]:3000");
        let list = parse_allowed_origins(
            " http://localhost:5173, ,https://a.example.com,http://localhost:5173",
        )
        .unwrap();
        assert_eq!(
            list.iter().map(Origin::as_str).collect::<Vec<_>>(),
            ["http://localhost:5173", "https://a.example.com"]
        );
        assert!(list.contains("https://a.example.com"));
        assert!(!list.contains("https://a.example.com/"));
        assert!(!list.contains("null"));
        assert!(parse_allowed_origins("").unwrap().is_empty());
    }

    #[test]
    fn what_is_not_an_exact_origin_is_refused() {
        for bad in [
            "*",
            "https://*.example.com",
            "null",
            "example.com",
            "https://app.example.com/path",
            "https://app.example.com?x=1",
            "https://user@app.example.com",
            "ftp://files.example.com",
            "file:///etc/passwd",
        ] {
            assert!(parse_allowed_origins(bad).is_err(), "{bad} was accepted");
        }
        let err = parse_allowed_origins("https://a.example.com,*").unwrap_err();
        assert!(err.contains("wildcards are refused"), "{err}");
    }

    #[test]
    fn same_site_is_scheme_and_registrable_domain() {
        let auth = origin("https://auth.example.co.uk");
        assert!(auth.same_site(&origin("https://app.example.co.uk")));
        assert!(auth.same_site(&origin("https://example.co.uk:8443")));
        assert!(
            !auth.same_site(&origin("http://app.example.co.uk")),
            "scheme"
        );
        assert!(!auth.same_site(&origin("https://other.co.uk")));
        assert!(
            !origin("https://a.github.io").same_site(&origin("https://b.github.io")),
            "github.io is a public suffix"
        );
        let local = origin("http://localhost:8000");
        assert!(local.same_site(&origin("http://localhost:5173")));
        assert!(!local.same_site(&origin("http://127.0.0.1:5173")));
        assert!(origin("http://127.0.0.1:1").same_site(&origin("http://127.0.0.1:2")));
    }

    #[test]
    fn public_url_may_have_a_path_but_no_query() {
        let public = parse_public_url("https://example.com/auth/").unwrap();
        assert_eq!(public.origin().as_str(), "https://example.com");
        assert_eq!(public.url().path(), "/auth/");
        assert!(parse_public_url("https://example.com/?a=b").is_err());
        assert!(parse_public_url("localhost:8000").is_err());
        assert!(parse_public_url("not a url").is_err());
        assert!(
            parse_public_url("http://localhost:8000")
                .unwrap()
                .origin()
                .is_loopback()
        );
    }
}
