//! JWT claims and HS256 encode/decode with an explicit `Validation`.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::AuthFailure;
use crate::secret::Secret;
use crate::store::{NewSession, TokenRef};

/// Longer than any token we issue; anything longer is garbage and is not parsed.
const MAX_TOKEN_LEN: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    Access,
    Refresh,
}

impl TokenType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Access => "access",
            Self::Refresh => "refresh",
        }
    }
}

/// The claims of every token (API.md, "Tokens").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user's id.
    pub sub: Uuid,
    /// The session: shared by every token of one login and its refreshes.
    pub sid: Uuid,
    pub iat: i64,
    pub exp: i64,
    pub jti: Uuid,
    pub typ: TokenType,
}

impl Claims {
    /// The token as the store knows it.
    pub fn token(&self) -> TokenRef {
        TokenRef {
            user: self.sub,
            sid: self.sid,
            jti: self.jti,
            exp: self.exp,
        }
    }
}

/// The tokens of one session, issued together and not yet handed out.
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds the access token lives.
    pub expires_in: i64,
    /// Seconds the refresh token lives.
    pub refresh_expires_in: i64,
    /// Unix seconds at which the later of the two expires: the session's expiry.
    pub expires_at: i64,
}

/// The key and the rules tokens are made and checked with.
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// The same, minus `exp`: to describe an expired token in `verifyToken`.
    validation_ignoring_exp: Validation,
    pub access_ttl: i64,
    pub refresh_ttl: i64,
}

impl Tokens {
    pub fn new(key: &Secret, access_ttl: u64, refresh_ttl: u64, leeway: u64) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = leeway;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let mut validation_ignoring_exp = validation.clone();
        validation_ignoring_exp.validate_exp = false;
        Self {
            encoding: EncodingKey::from_secret(key.expose()),
            decoding: DecodingKey::from_secret(key.expose()),
            validation,
            validation_ignoring_exp,
            // The config caps TTLs at ten years, far inside i64.
            access_ttl: i64::try_from(access_ttl).unwrap_or(i64::MAX / 4),
            refresh_ttl: i64::try_from(refresh_ttl).unwrap_or(i64::MAX / 4),
        }
    }

    pub fn ttl(&self, typ: TokenType) -> i64 {
        match typ {
            TokenType::Access => self.access_ttl,
            TokenType::Refresh => self.refresh_ttl,
        }
    }

    /// Makes a token of `typ` for `user` in session `sid`, issued at `now` (Unix seconds).
    pub fn issue(
        &self,
        user: Uuid,
        sid: Uuid,
        typ: TokenType,
        now: i64,
    ) -> Result<(String, Claims), jsonwebtoken::errors::Error> {
        let claims = Claims {
            sub: user,
            sid,
            iat: now,
            exp: now + self.ttl(typ),
            jti: Uuid::new_v4(),
            typ,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok((token, claims))
    }

    /// An access and a refresh token of session `sid`, issued at `now`.
    pub fn pair(
        &self,
        user: Uuid,
        sid: Uuid,
        now: i64,
    ) -> Result<TokenPair, jsonwebtoken::errors::Error> {
        let (access_token, access) = self.issue(user, sid, TokenType::Access, now)?;
        let (refresh_token, refresh) = self.issue(user, sid, TokenType::Refresh, now)?;
        Ok(TokenPair {
            access_token,
            refresh_token,
            expires_in: self.access_ttl,
            refresh_expires_in: self.refresh_ttl,
            expires_at: access.exp.max(refresh.exp),
        })
    }

    /// The row and tokens of a new session of `user`, started at `now`.
    pub fn new_session(
        &self,
        user: Uuid,
        user_agent: Option<String>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(NewSession, TokenPair), jsonwebtoken::errors::Error> {
        let sid = Uuid::new_v4();
        let pair = self.pair(user, sid, now.timestamp())?;
        let session = NewSession {
            id: sid,
            user_agent,
            now,
            expires_at: pair.expires_at,
        };
        Ok((session, pair))
    }

    /// Checks signature, algorithm and expiry, then that the token is of type `expected`.
    pub fn decode(&self, token: &str, expected: TokenType) -> Result<Claims, AuthFailure> {
        let claims = self.decode_any(token)?;
        if claims.typ != expected {
            return Err(AuthFailure::Invalid);
        }
        Ok(claims)
    }

    /// Checks signature, algorithm and expiry; either type.
    pub fn decode_any(&self, token: &str) -> Result<Claims, AuthFailure> {
        self.decode_with(token, &self.validation)
    }

    /// The claims of a token with a good signature, expired or not.
    pub fn decode_ignoring_expiry(&self, token: &str) -> Result<Claims, AuthFailure> {
        self.decode_with(token, &self.validation_ignoring_exp)
    }

    fn decode_with(&self, token: &str, validation: &Validation) -> Result<Claims, AuthFailure> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(AuthFailure::Invalid);
        }
        let data =
            jsonwebtoken::decode::<Claims>(token, &self.decoding, validation).map_err(|err| {
                match err.kind() {
                    ErrorKind::ExpiredSignature => AuthFailure::Expired,
                    _ => AuthFailure::Invalid,
                }
            })?;
        // RFC 7515 4.1.11: a `crit` header names extensions the recipient must
        // understand, and we implement none.
        if data.header.crit.is_some() {
            return Err(AuthFailure::Invalid);
        }
        Ok(data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(leeway: u64) -> Tokens {
        let key = Secret::from("k".repeat(32));
        Tokens::new(&key, 900, 3600, leeway)
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    #[test]
    fn round_trip_keeps_every_claim_and_the_ttl() {
        let t = tokens(0);
        let (user, sid) = (Uuid::new_v4(), Uuid::new_v4());
        let (token, claims) = t.issue(user, sid, TokenType::Refresh, now()).unwrap();
        let back = t.decode(&token, TokenType::Refresh).unwrap();
        assert_eq!(back, claims);
        assert_eq!(back.exp - back.iat, 3600);
        assert_eq!((back.sub, back.sid), (user, sid));
    }

    #[test]
    fn the_wrong_type_is_invalid() {
        let t = tokens(0);
        let (token, _) = t
            .issue(Uuid::new_v4(), Uuid::new_v4(), TokenType::Access, now())
            .unwrap();
        assert_eq!(
            t.decode(&token, TokenType::Refresh),
            Err(AuthFailure::Invalid)
        );
    }

    #[test]
    fn expiry_honours_the_leeway() {
        let issued = now() - 901 - 5;
        let (token, _) = tokens(0)
            .issue(Uuid::new_v4(), Uuid::new_v4(), TokenType::Access, issued)
            .unwrap();
        assert_eq!(
            tokens(0).decode(&token, TokenType::Access),
            Err(AuthFailure::Expired)
        );
        assert!(tokens(60).decode(&token, TokenType::Access).is_ok());
        assert!(tokens(0).decode_ignoring_expiry(&token).is_ok());
    }

    #[test]
    fn another_key_is_invalid() {
        let other = Tokens::new(&Secret::from("x".repeat(32)), 900, 3600, 0);
        let (token, _) = other
            .issue(Uuid::new_v4(), Uuid::new_v4(), TokenType::Access, now())
            .unwrap();
        assert_eq!(
            tokens(0).decode(&token, TokenType::Access),
            Err(AuthFailure::Invalid)
        );
    }

    #[test]
    fn a_crit_header_is_invalid() {
        let t = tokens(0);
        let (token, claims) = t
            .issue(Uuid::new_v4(), Uuid::new_v4(), TokenType::Access, now())
            .unwrap();
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
