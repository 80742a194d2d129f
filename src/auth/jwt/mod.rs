//! JWT claims, issuing and checking. Refresh tokens are HS256 under
//! `JWT_SECRET`, always: no published key verifies one. Access tokens are
//! HS256 too by default, or signed with the asymmetric key of
//! `JWT_ALGORITHM` and checked under the verify key their `kid` names.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::Mutex;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use lru::LruCache;
use uuid::Uuid;

mod claims;

pub use claims::{Claims, HasuraClaims, RoleClaim, Subject, TokenPair, TokenType};

use super::AuthFailure;
use super::keys::KeySet;
use crate::secret::Secret;
use crate::store::NewSession;

/// Longer than any token we issue (an RS256 one with every claim is about
/// 700 bytes); anything longer is garbage and is not parsed.
const MAX_TOKEN_LEN: usize = 2048;

/// Access tokens remembered as checked (see [`Verified`]): 2 to 4 MiB at
/// most (a token of 300 to 700 bytes and its claims each).
const VERIFIED_ENTRIES: NonZeroUsize = NonZeroUsize::new(4096).unwrap();

/// The rules tokens are made with, beside the keys.
#[derive(Debug, Clone, Default)]
pub struct TokenRules {
    pub access_ttl: u64,
    pub refresh_ttl: u64,
    pub leeway: u64,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    /// Access tokens also carry Hasura's claims.
    pub hasura: bool,
    /// Access tokens also carry `email_verified` (`EMAIL_VERIFICATION=required`).
    pub email_verified: bool,
}

/// One key and the validations tokens under it are checked with.
struct Verifier {
    key: DecodingKey,
    validation: Validation,
    /// The same, minus `exp`: to describe an expired token in `verifyToken`.
    ignoring_exp: Validation,
}

impl Verifier {
    fn new(key: DecodingKey, algorithm: Algorithm, rules: &TokenRules, audience: bool) -> Self {
        let mut validation = Validation::new(algorithm);
        validation.leeway = rules.leeway;
        let mut required = vec!["exp", "sub"];
        if let Some(issuer) = &rules.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        match rules.audience.as_ref().filter(|_| audience) {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        let mut ignoring_exp = validation.clone();
        ignoring_exp.validate_exp = false;
        Self {
            key,
            validation,
            ignoring_exp,
        }
    }
}

/// Where access tokens are checked: under the secret (HS256), or under the
/// verify key their `kid` names.
enum AccessVerifiers {
    Secret(Box<Verifier>),
    ByKid(HashMap<String, Verifier>),
}

/// Access tokens whose signature, algorithm, issuer, audience and type
/// checked out, by their exact text: a token's signature is checked once,
/// not on every request (an EdDSA check costs more than the rest of a `me`).
/// None of that can change for a given text while the keys are the
/// process's; only the time can, so the expiry is checked again on every
/// use. Revocation is not the token's: the guard reads it from the store on
/// every request all the same. Only tokens that verified get in, so
/// garbage can't grow or churn it beyond what real tokens do.
struct Verified(Mutex<LruCache<Box<str>, Claims>>);

impl Verified {
    fn new() -> Self {
        Self(Mutex::new(LruCache::new(VERIFIED_ENTRIES)))
    }

    fn get(&self, token: &str) -> Option<Claims> {
        self.0.lock().ok()?.get(token).cloned()
    }

    fn put(&self, token: &str, claims: &Claims) {
        if let Ok(mut cache) = self.0.lock() {
            cache.put(token.into(), claims.clone());
        }
    }
}

/// The keys and the rules tokens are made and checked with.
pub struct Tokens {
    /// HS256 under `JWT_SECRET`: refresh tokens, and access tokens under HS256.
    secret: EncodingKey,
    /// Access tokens' key and header (`alg`, and `kid` when asymmetric).
    access_key: Option<EncodingKey>,
    access_header: Header,
    refresh: Verifier,
    access: AccessVerifiers,
    issuer: Option<String>,
    audience: Option<String>,
    hasura: bool,
    email_verified_claim: bool,
    jwks: Option<JwkSet>,
    leeway: u64,
    verified: Verified,
    pub access_ttl: i64,
    pub refresh_ttl: i64,
}

impl Tokens {
    /// HS256 for both kinds, no issuer or audience.
    pub fn new(key: &Secret, access_ttl: u64, refresh_ttl: u64, leeway: u64) -> Self {
        let rules = TokenRules {
            access_ttl,
            refresh_ttl,
            leeway,
            ..TokenRules::default()
        };
        Self::with_keys(key, None, rules)
    }

    /// Refresh tokens under `key`; access tokens under `keys` when given
    /// (asymmetric), else under `key` too.
    pub fn with_keys(key: &Secret, keys: Option<KeySet>, rules: TokenRules) -> Self {
        let refresh = Verifier::new(
            DecodingKey::from_secret(key.expose()),
            Algorithm::HS256,
            &rules,
            false,
        );
        let (access_key, access_header, access, jwks) = match keys {
            None => (
                None,
                Header::new(Algorithm::HS256),
                AccessVerifiers::Secret(Box::new(Verifier::new(
                    DecodingKey::from_secret(key.expose()),
                    Algorithm::HS256,
                    &rules,
                    true,
                ))),
                None,
            ),
            Some(keys) => {
                let jwks = keys.jwks();
                let mut header = Header::new(keys.signing.kind.algorithm());
                header.kid = Some(keys.signing.kid.clone());
                let verifiers = keys
                    .verify
                    .into_iter()
                    .map(|(kid, key)| {
                        let verifier =
                            Verifier::new(key.decoding, key.kind.algorithm(), &rules, true);
                        (kid, verifier)
                    })
                    .collect();
                (
                    Some(keys.signing.encoding),
                    header,
                    AccessVerifiers::ByKid(verifiers),
                    Some(jwks),
                )
            }
        };
        Self {
            secret: EncodingKey::from_secret(key.expose()),
            access_key,
            access_header,
            refresh,
            access,
            issuer: rules.issuer,
            audience: rules.audience,
            hasura: rules.hasura,
            email_verified_claim: rules.email_verified,
            jwks,
            leeway: rules.leeway,
            verified: Verified::new(),
            // The config caps TTLs at ten years, far inside i64.
            access_ttl: i64::try_from(rules.access_ttl).unwrap_or(i64::MAX / 4),
            refresh_ttl: i64::try_from(rules.refresh_ttl).unwrap_or(i64::MAX / 4),
        }
    }

    /// The published keys: `None` under HS256, where nothing is published.
    pub fn jwks(&self) -> Option<&JwkSet> {
        self.jwks.as_ref()
    }

    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    pub fn ttl(&self, typ: TokenType) -> i64 {
        match typ {
            TokenType::Access => self.access_ttl,
            TokenType::Refresh => self.refresh_ttl,
        }
    }

    /// When a session whose tokens are issued at `now` ends: the later expiry.
    pub fn session_expiry(&self, now: i64) -> i64 {
        now + self.access_ttl.max(self.refresh_ttl)
    }

    /// Makes a token of `typ` for `who` in session `sid`, issued at `now`
    /// (Unix seconds).
    pub fn issue(
        &self,
        who: Subject,
        sid: Uuid,
        typ: TokenType,
        now: i64,
    ) -> Result<(String, Claims), jsonwebtoken::errors::Error> {
        let access = typ == TokenType::Access;
        let (user, role) = (who.id, who.role);
        let claims = Claims {
            sub: user,
            sid,
            iat: now,
            exp: now + self.ttl(typ),
            jti: Uuid::new_v4(),
            typ,
            iss: self.issuer.clone(),
            aud: self.audience.clone().filter(|_| access),
            role: access.then_some(role.into()),
            hasura: (access && self.hasura).then(|| HasuraClaims::new(user, role)),
            email_verified: (access && self.email_verified_claim).then_some(who.email_verified),
        };
        let token = match (&self.access_key, access) {
            (Some(key), true) => jsonwebtoken::encode(&self.access_header, &claims, key)?,
            (None, true) => jsonwebtoken::encode(&self.access_header, &claims, &self.secret)?,
            (_, false) => {
                jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.secret)?
            }
        };
        Ok((token, claims))
    }

    /// An access and a refresh token of session `sid`, issued at `now`.
    pub fn pair(
        &self,
        who: Subject,
        sid: Uuid,
        now: i64,
    ) -> Result<TokenPair, jsonwebtoken::errors::Error> {
        let (access_token, _) = self.issue(who, sid, TokenType::Access, now)?;
        let (refresh_token, _) = self.issue(who, sid, TokenType::Refresh, now)?;
        Ok(TokenPair {
            access_token,
            refresh_token,
            expires_in: self.access_ttl,
            refresh_expires_in: self.refresh_ttl,
            expires_at: self.session_expiry(now),
        })
    }

    /// The row and tokens of a new session of `who`, started at `now`.
    pub fn new_session(
        &self,
        who: Subject,
        user_agent: Option<String>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(NewSession, TokenPair), jsonwebtoken::errors::Error> {
        let sid = Uuid::new_v4();
        let pair = self.pair(who, sid, now.timestamp())?;
        let session = NewSession {
            id: sid,
            user_agent,
            now,
            expires_at: pair.expires_at,
        };
        Ok((session, pair))
    }

    /// Checks signature, algorithm, issuer, audience and expiry, then that
    /// the token is of type `expected`.
    pub fn decode(&self, token: &str, expected: TokenType) -> Result<Claims, AuthFailure> {
        if expected == TokenType::Refresh {
            return self.decode_as(token, expected, false);
        }
        if let Some(claims) = self.verified.get(token) {
            // The one check time changes, as jsonwebtoken makes it.
            let now = jsonwebtoken::get_current_timestamp().saturating_sub(self.leeway);
            return match u64::try_from(claims.exp) {
                Ok(exp) if exp >= now => Ok(claims),
                _ => Err(AuthFailure::Expired),
            };
        }
        let claims = self.decode_as(token, expected, false)?;
        self.verified.put(token, &claims);
        Ok(claims)
    }

    /// Checks a token of either type (access first).
    pub fn decode_any(&self, token: &str) -> Result<Claims, AuthFailure> {
        self.decode(token, TokenType::Access)
            .or_else(|failure| match failure {
                AuthFailure::Invalid => self.decode(token, TokenType::Refresh),
                other => Err(other),
            })
    }

    /// The claims of a token of either type with a good signature, expired or not.
    pub fn decode_ignoring_expiry(&self, token: &str) -> Result<Claims, AuthFailure> {
        self.decode_as(token, TokenType::Access, true)
            .or_else(|_| self.decode_as(token, TokenType::Refresh, true))
    }

    fn decode_as(
        &self,
        token: &str,
        expected: TokenType,
        ignoring_exp: bool,
    ) -> Result<Claims, AuthFailure> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(AuthFailure::Invalid);
        }
        let verifier = match (expected, &self.access) {
            (TokenType::Refresh, _) => &self.refresh,
            (TokenType::Access, AccessVerifiers::Secret(verifier)) => verifier,
            // The key the header's `kid` names, or nothing: a missing or
            // unknown kid is invalid, and so is any `alg` but that key's
            // (the validation allows that one alone). `jku`, `jwk`, `x5u`
            // and `x5c` are never looked at.
            (TokenType::Access, AccessVerifiers::ByKid(keys)) => jsonwebtoken::decode_header(token)
                .ok()
                .and_then(|header| header.kid)
                .and_then(|kid| keys.get(&kid))
                .ok_or(AuthFailure::Invalid)?,
        };
        let validation = if ignoring_exp {
            &verifier.ignoring_exp
        } else {
            &verifier.validation
        };
        let data =
            jsonwebtoken::decode::<Claims>(token, &verifier.key, validation).map_err(|err| {
                match err.kind() {
                    ErrorKind::ExpiredSignature => AuthFailure::Expired,
                    _ => AuthFailure::Invalid,
                }
            })?;
        // RFC 7515 4.1.11: a `crit` header names extensions the recipient must
        // understand, and we implement none.
        if data.header.crit.is_some() || data.claims.typ != expected {
            return Err(AuthFailure::Invalid);
        }
        Ok(data.claims)
    }
}

#[cfg(test)]
mod tests {
    use entity::user;

    use super::*;

    fn tokens(leeway: u64) -> Tokens {
        let key = Secret::from("k".repeat(32));
        Tokens::new(&key, 900, 3600, leeway)
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    /// A USER with an unverified address.
    fn user_subject(id: Uuid) -> Subject {
        Subject {
            id,
            role: user::Role::User,
            email_verified: false,
        }
    }

    /// An access token of a new user and session, issued by `t` at `issued`.
    fn access(t: &Tokens, issued: i64) -> (String, Claims) {
        t.issue(
            user_subject(Uuid::new_v4()),
            Uuid::new_v4(),
            TokenType::Access,
            issued,
        )
        .unwrap()
    }

    #[test]
    fn round_trip_keeps_every_claim_and_the_ttl() {
        let t = tokens(0);
        let (user, sid) = (Uuid::new_v4(), Uuid::new_v4());
        let (token, claims) = t
            .issue(user_subject(user), sid, TokenType::Refresh, now())
            .unwrap();
        let back = t.decode(&token, TokenType::Refresh).unwrap();
        assert_eq!(back, claims);
        assert_eq!(back.exp - back.iat, 3600);
        assert_eq!((back.sub, back.sid), (user, sid));
    }

    #[test]
    fn the_wrong_type_is_invalid() {
        let t = tokens(0);
        let (token, _) = access(&t, now());
        assert_eq!(
            t.decode(&token, TokenType::Refresh),
            Err(AuthFailure::Invalid)
        );
    }

    #[test]
    fn expiry_honours_the_leeway() {
        let issued = now() - 901 - 5;
        let (token, _) = access(&tokens(0), issued);
        assert_eq!(
            tokens(0).decode(&token, TokenType::Access),
            Err(AuthFailure::Expired)
        );
        assert!(tokens(60).decode(&token, TokenType::Access).is_ok());
        assert!(tokens(0).decode_ignoring_expiry(&token).is_ok());
    }

    #[test]
    fn a_remembered_token_is_checked_for_expiry_on_every_use() {
        let t = tokens(0);
        // Expires one second from now.
        let (token, _) = access(&t, now() - 899);
        assert!(t.decode(&token, TokenType::Access).is_ok());
        assert!(t.verified.get(&token).is_some(), "remembered");
        std::thread::sleep(std::time::Duration::from_millis(2100));
        assert_eq!(
            t.decode(&token, TokenType::Access),
            Err(AuthFailure::Expired)
        );
    }

    #[test]
    fn only_the_exact_text_of_a_checked_access_token_is_remembered() {
        let t = tokens(0);
        let (user, sid) = (Uuid::new_v4(), Uuid::new_v4());
        let (access, _) = t
            .issue(user_subject(user), sid, TokenType::Access, now())
            .unwrap();
        let (refresh, _) = t
            .issue(user_subject(user), sid, TokenType::Refresh, now())
            .unwrap();
        assert!(t.decode(&access, TokenType::Access).is_ok());
        assert!(t.decode(&refresh, TokenType::Refresh).is_ok());
        assert!(t.verified.get(&refresh).is_none(), "refresh tokens are not");
        // The last character of the signature, changed.
        let mut tampered = access.clone();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        assert_eq!(
            t.decode(&tampered, TokenType::Access),
            Err(AuthFailure::Invalid)
        );
        assert!(t.verified.get(&tampered).is_none());
        assert_eq!(
            t.decode(&access, TokenType::Refresh),
            Err(AuthFailure::Invalid),
            "remembered as an access token, still not a refresh token"
        );
        let garbage = "x".repeat(100);
        assert!(t.decode(&garbage, TokenType::Access).is_err());
        assert_eq!(t.verified.0.lock().unwrap().len(), 1);
    }

    #[test]
    fn another_key_is_invalid() {
        let other = Tokens::new(&Secret::from("x".repeat(32)), 900, 3600, 0);
        let (token, _) = access(&other, now());
        assert_eq!(
            tokens(0).decode(&token, TokenType::Access),
            Err(AuthFailure::Invalid)
        );
    }

    #[test]
    fn a_crit_header_is_invalid() {
        let t = tokens(0);
        let (token, claims) = access(&t, now());
        let mut header = Header::new(Algorithm::HS256);
        header.crit = Some(vec!["exp".into()]);
        let key = EncodingKey::from_secret(Secret::from("k".repeat(32)).expose());
        let critical = jsonwebtoken::encode(&header, &claims, &key).unwrap();
        assert!(t.decode_any(&token).is_ok());
        assert_eq!(t.decode_any(&critical), Err(AuthFailure::Invalid));
    }

    #[test]
    fn garbage_is_invalid() {
        for junk in ["", "a.b.c", "....", "🙂", &"a".repeat(5000)] {
            assert_eq!(
                tokens(0).decode_any(junk),
                Err(AuthFailure::Invalid),
                "{junk:?}"
            );
        }
    }
}
