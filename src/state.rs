//! What every request shares.

use crate::auth::jwt::Tokens;
use crate::auth::password::Hasher;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;
use crate::store::Store;

pub struct AppState {
    pub store: Store,
    pub tokens: Tokens,
    pub hasher: Hasher,
    pub limiter: RateLimiter,
    pub metrics: Metrics,
}
