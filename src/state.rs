//! What every request shares.

use chrono::{DateTime, SubsecRound, Utc};

use crate::auth::jwt::Tokens;
use crate::auth::mfa::Mfa;
use crate::auth::password::Hasher;
use crate::mail::Mailer;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;
use crate::store::Store;

pub struct AppState {
    pub store: Store,
    pub tokens: Tokens,
    pub hasher: Hasher,
    pub limiter: RateLimiter,
    pub metrics: Metrics,
    pub clock: Clock,
    /// Cookie mode (`REFRESH_TOKEN_COOKIE=on`): refresh tokens travel in an
    /// HttpOnly cookie, never in a response body.
    pub refresh_cookie: bool,
    /// `LOGIN_FAILURES_PER_HOUR`: 0 is off.
    pub login_failures_per_hour: u32,
    /// `EMAIL_VERIFICATION=required`: an unverified account's tokens open
    /// only `me`, `requestEmailVerification`, `logout` and `logoutAll`.
    pub verified_only: bool,
    /// `REAUTH_WINDOW`, seconds: how long a sign-in counts as a fresh proof.
    pub reauth_window: i64,
    /// The second factor's keys (subkeys of the data key) and rules.
    pub mfa: Mfa,
    /// Mail (`SMTP_URL`); `None` when off.
    pub mailer: Option<std::sync::Arc<Mailer>>,
}

/// Where every layer gets the time from: handed down, so the store never
/// reads a clock of its own.
#[derive(Debug, Default, Clone, Copy)]
pub struct Clock;

impl Clock {
    /// Now, at the precision every backend stores (milliseconds).
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now().trunc_subsecs(3)
    }
}
