//! The refresh-token cookie of cookie mode (`REFRESH_TOKEN_COOKIE=on`):
//! `__Host-` so only this host, over https (or localhost), with path `/`,
//! can set it; HttpOnly so no script reads it; SameSite=Strict so no other
//! site's request carries it. Built with the `cookie` crate.

use cookie::{Cookie, SameSite};

/// Its name. The `__Host-` prefix makes browsers refuse it unless it is
/// `Secure`, has `Path=/` and no `Domain`.
pub const REFRESH_COOKIE: &str = "__Host-authgraph-refresh";

fn build(value: String, max_age: i64) -> Cookie<'static> {
    Cookie::build((REFRESH_COOKIE, value))
        .http_only(true)
        .secure(true)
        .same_site(SameSite::Strict)
        .path("/")
        .max_age(cookie::time::Duration::seconds(max_age))
        .build()
}

/// `Set-Cookie` for a refresh token that lives `max_age` seconds.
pub(crate) fn set(token: String, max_age: i64) -> String {
    build(token, max_age).to_string()
}

/// `Set-Cookie` that removes it.
pub(crate) fn clear() -> String {
    build(String::new(), 0).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_has_every_attribute_api_md_pins() {
        let header = set("a.b.c".to_owned(), 604_800);
        let parsed = Cookie::parse(header.clone()).unwrap();
        assert_eq!(parsed.name(), "__Host-authgraph-refresh");
        assert_eq!(parsed.value(), "a.b.c");
        assert_eq!(parsed.http_only(), Some(true), "{header}");
        assert_eq!(parsed.secure(), Some(true), "{header}");
        assert_eq!(parsed.same_site(), Some(SameSite::Strict), "{header}");
        assert_eq!(parsed.path(), Some("/"), "{header}");
        assert_eq!(parsed.domain(), None, "{header}");
        assert_eq!(
            parsed.max_age(),
            Some(cookie::time::Duration::seconds(604_800))
        );
        let gone = Cookie::parse(clear()).unwrap();
        assert_eq!(gone.value(), "");
        assert_eq!(gone.max_age(), Some(cookie::time::Duration::ZERO));
    }
}
