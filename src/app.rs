//! build(): connect, migrate, assemble schema and routes, bind. Used by the
//! binary and by the tests alike.

use std::net::SocketAddr;
use std::time::Duration;

use poem::listener::{Acceptor, Listener, TcpAcceptor, TcpListener};
use poem::middleware::CatchPanic;
use poem::{EndpointExt, Route, Server, get};
use sea_orm::DbBackend;

use crate::auth::jwt::{TokenRules, Tokens};
use crate::auth::keys::{self, KeyKind, KeySet};
use crate::auth::password::Hasher;
use crate::config::{ConfigError, Settings};
use crate::error::chain;
use crate::events::Actor;
use crate::graphql;
use crate::http;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;
use crate::secret::Secret;
use crate::state::{AppState, Clock};
use crate::store::{self, Sealed, SetRoleError, Store};

/// How often expired revocations and sessions are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(300);
/// How often the rate limiter forgets clients that are back to a full allowance.
const FORGET_IDLE_EVERY: Duration = Duration::from_secs(60);
/// How long in-flight requests get to finish on shutdown.
const GRACE: Duration = Duration::from_secs(10);

/// A server that is bound and ready to run.
pub struct App {
    acceptor: TcpAcceptor,
    addr: SocketAddr,
    routes: poem::endpoint::BoxEndpoint<'static>,
    state: std::sync::Arc<AppState>,
    leeway: i64,
    /// `SECURITY_EVENTS_RETENTION_DAYS`, in microseconds.
    events_retention: i64,
}

/// Connects, applies pending migrations and opens the store on the database.
pub async fn open_store(settings: &Settings) -> Result<Store, ConfigError> {
    let url = &settings.database.database_url;
    let db = store::connect(url, settings.database.pool())
        .await
        .map_err(|err| {
            ConfigError::new(
                "DATABASE_URL",
                format!("{}: {}", unreachable_database(url), chain(&err)),
            )
        })?;
    store::migrate(&db).await.map_err(|err| {
        ConfigError::new(
            "DATABASE_URL",
            format!("migrations failed: {}", chain(&err)),
        )
    })?;
    Store::open(db).await.map_err(|err| {
        ConfigError::new(
            "DATABASE_URL",
            format!("cannot open the database: {}", chain(&err)),
        )
    })
}

/// Every server of one database must hold the same data key: the first to
/// start stores its check value, the others compare theirs with it. On a
/// database that holds sealed values but no check yet (one from before the
/// check), the key must open one of them before its check is stored, so a
/// wrong key never becomes the reference.
async fn check_data_key(store: &Store, data_key: &Secret) -> Result<(), ConfigError> {
    use crate::auth::sealing::{OUTBOX_TOKEN_SEALING, Sealer, TOTP_SECRET_SEALING, check_value};
    let mismatch = || {
        ConfigError::new(
            "DATA_KEY_FILE",
            "holds another key than the one this database was set up with: every server of \
             one database needs the same data key file (restore it from where you backed it up)",
        )
    };
    let failed = |err: sea_orm::DbErr| {
        ConfigError::new(
            "DATABASE_URL",
            format!("cannot check the data key: {}", chain(&err)),
        )
    };
    const NAME: &str = "data_key";
    let mine = check_value(data_key);
    let stored = match store.key_check(NAME).await.map_err(failed)? {
        Some(stored) => stored,
        None => {
            let opens = match store.a_sealed_value().await.map_err(failed)? {
                Some(Sealed::TotpSecret(sealed)) => Sealer::new(data_key, TOTP_SECRET_SEALING)
                    .open(&sealed)
                    .is_ok(),
                Some(Sealed::OutboxToken(sealed)) => Sealer::new(data_key, OUTBOX_TOKEN_SEALING)
                    .open(&sealed)
                    .is_ok(),
                None => true,
            };
            if !opens {
                return Err(mismatch());
            }
            let now = chrono::Utc::now().timestamp();
            store
                .put_key_check(NAME, &mine, now)
                .await
                .map_err(failed)?
        }
    };
    if stored == mine {
        Ok(())
    } else {
        Err(mismatch())
    }
}

/// What a failed connect says: for PostgreSQL, the host and port that did
/// not answer (never the URL, which may hold a password).
fn unreachable_database(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(parsed) if matches!(parsed.scheme(), "postgres" | "postgresql") => {
            let host = parsed.host_str().unwrap_or("localhost");
            let port = parsed.port().unwrap_or(5432);
            format!(
                "cannot reach the PostgreSQL database at {host}:{port} (is it running, and does it accept connections there?)"
            )
        }
        _ => "cannot open the database".to_owned(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PromoteError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("no user has the username or email '{0}'")]
    UnknownUser(String),
    #[error("cannot promote: {}", chain(.0))]
    Db(#[from] sea_orm::DbErr),
}

/// `authgraph promote`: makes the user with this username or email an ADMIN.
pub async fn promote(settings: &Settings, who: &str) -> Result<entity::user::Model, PromoteError> {
    let store = open_store(settings).await?;
    let user = store
        .find_for_login(who)
        .await?
        .ok_or_else(|| PromoteError::UnknownUser(who.to_owned()))?;
    let by = (&crate::events::Source::default(), Actor::SYSTEM, None);
    store
        .set_role(user.id, entity::user::Role::Admin, by, chrono::Utc::now())
        .await
        .map_err(|err| match err {
            SetRoleError::Db(err) => PromoteError::Db(err),
            // Promoting can't remove the last admin; the user was just found.
            SetRoleError::LastAdmin | SetRoleError::UnknownUser => {
                PromoteError::UnknownUser(who.to_owned())
            }
        })
}

pub async fn build(settings: &Settings) -> Result<App, ConfigError> {
    settings.tokens.explicit_jwt_key()?;
    settings.mail.check()?;
    // Keys before the database: a bad key file is reported at once.
    let signing_key_new = KeyKind::of(settings.tokens.jwt_algorithm).is_some()
        && !settings.tokens.jwt_signing_key_file.exists();
    let keys = load_keys(settings)?;
    let store = open_store(settings).await?;
    // Created only once the database answered: a bad DATABASE_URL leaves no key behind.
    let data_key_new = !settings.tokens.data_key_file.exists();
    let data_key = settings.tokens.data_key()?;
    check_data_key(&store, &data_key).await?;
    let mailer = crate::mail::Mailer::new(settings, &data_key)?.map(std::sync::Arc::new);
    let key = settings.tokens.jwt_key()?;
    let shared_database = store.connection().get_database_backend() == DbBackend::Postgres;
    if settings.tokens.jwt_secret.is_none() && shared_database {
        tracing::warn!(
            key_file = %settings.tokens.jwt_secret_file.display(),
            "JWT_SECRET is unset: this server signs with its own key file; \
             servers sharing this database must share one JWT_SECRET, or they refuse each other's tokens"
        );
    }
    if shared_database && signing_key_new {
        tracing::warn!(
            key_file = %settings.tokens.jwt_signing_key_file.display(),
            "this server created its own signing key (JWT_SIGNING_KEY_FILE): servers sharing this \
             database must use the same file, or list each other's public keys in \
             JWT_VERIFY_KEY_FILES, or they refuse each other's tokens"
        );
    }
    if shared_database && data_key_new {
        tracing::warn!(
            key_file = %settings.tokens.data_key_file.display(),
            "this server created its own data key (DATA_KEY_FILE): servers sharing this database \
             must use the same file, or what one seals (queued mails' links) the others can't open"
        );
    }
    let permits = std::thread::available_parallelism().map_or(2, usize::from);
    let hasher = Hasher::new(permits)
        .map_err(|err| ConfigError::new("start-up", format!("cannot set up Argon2: {err}")))?;
    let tokens = Tokens::with_keys(
        &key,
        keys,
        TokenRules {
            access_ttl: settings.tokens.access_token_ttl,
            refresh_ttl: settings.tokens.refresh_token_ttl,
            leeway: settings.tokens.jwt_leeway,
            issuer: settings.issuer(),
            audience: settings.audience(),
            hasura: settings.tokens.jwt_claims == crate::config::ClaimsProfile::Hasura,
            email_verified: settings.mail.verified_only(),
        },
    );
    let well_known = http::WellKnown::new(
        tokens.jwks(),
        tokens.issuer(),
        &settings.edge.public_url.join(".well-known/jwks.json"),
    );
    let state = AppState {
        store: store.clone(),
        tokens,
        hasher,
        limiter: RateLimiter::new(settings.limits.auth_rate_limit_per_minute),
        metrics: Metrics::new()
            .map_err(|err| ConfigError::new("start-up", format!("cannot set up metrics: {err}")))?,
        clock: Clock,
        refresh_cookie: settings.edge.refresh_token_cookie.is_on(),
        login_failures_per_hour: settings.limits.login_failures_per_hour,
        verified_only: settings.mail.verified_only(),
        reauth_window: i64::try_from(settings.tokens.reauth_window).unwrap_or(0),
        mfa: crate::auth::mfa::Mfa::new(
            &data_key,
            settings.mfa.totp_issuer.clone(),
            i64::try_from(settings.mfa.mfa_token_ttl).unwrap_or(i64::MAX),
        ),
        mailer,
    };
    warn_of_browser_settings(settings);
    let state = std::sync::Arc::new(state);
    let schema = graphql::schema(state.clone());

    let acceptor = TcpListener::bind(settings.server.bind_addr)
        .into_acceptor()
        .await
        .map_err(|err| {
            ConfigError::new(
                "BIND_ADDR",
                format!("cannot listen on {}: {err}", settings.server.bind_addr),
            )
        })?;
    let addr = acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().copied())
        .ok_or_else(|| ConfigError::new("BIND_ADDR", "no local address after binding"))?;
    let browsers = http::Browsers::new(
        settings.edge.public_url.origin().clone(),
        settings.edge.cors_allowed_origins.clone(),
        settings.edge.refresh_token_cookie.is_on(),
    );
    if settings.edge.refresh_token_cookie.is_on() {
        tracing::info!(
            origins = %browsers.cookie_origins(addr).join(", "),
            "REFRESH_TOKEN_COOKIE=on: requests carrying the refresh cookie are accepted from these \
             origins (PUBLIC_URL, CORS_ALLOWED_ORIGINS, and this server as reached on loopback)"
        );
    }

    let routes = Route::new()
        .at(
            "/graphql",
            get(http::graphql::get).post(http::graphql::post),
        )
        .at("/graphiql/:version/:file", get(http::graphiql_asset))
        .at("/healthz", get(http::healthz))
        .at("/reset-password", get(http::recovery_page))
        .at("/verify-email", get(http::recovery_page))
        .at("/recovery.js", get(http::recovery_script))
        .at("/.well-known/jwks.json", get(http::jwks))
        .at(
            "/.well-known/openid-configuration",
            get(http::openid_configuration),
        )
        .at("/metrics", get(http::metrics))
        .data(well_known)
        .data(schema)
        .data(http::PersistedQueries::default())
        .data(http::TrustedProxies::new(
            settings.edge.trusted_proxies.clone(),
        ))
        .data(browsers)
        .data(store)
        .data(state.clone())
        .with(CatchPanic::new())
        .with(http::BrowserCors::new(
            settings.edge.cors_allowed_origins.clone(),
        ))
        .around(http::request_span)
        .boxed();
    Ok(App {
        acceptor,
        addr,
        routes,
        state,
        leeway: i64::try_from(settings.tokens.jwt_leeway).unwrap_or(0),
        events_retention: settings.events.retention_micros(),
    })
}

/// The asymmetric keys of `JWT_ALGORITHM`: the signing key (created once
/// when its file is absent) and the verify keys. `None` under HS256.
pub fn load_keys(settings: &Settings) -> Result<Option<KeySet>, ConfigError> {
    let Some(kind) = KeyKind::of(settings.tokens.jwt_algorithm) else {
        return Ok(None);
    };
    let signing_path = settings.tokens.jwt_signing_key_file.display().to_string();
    let signing_pem = settings
        .tokens
        .signing_key_pem(|| keys::generate(kind).map_err(|err| err.to_string()))?;
    let mut verify = Vec::new();
    for path in settings.tokens.verify_key_files() {
        let pem = std::fs::read_to_string(path).map_err(|err| {
            ConfigError::new(
                "JWT_VERIFY_KEY_FILES",
                format!("cannot read {}: {err}", path.display()),
            )
        })?;
        verify.push((path.display().to_string(), pem));
    }
    KeySet::new(kind, &signing_path, &signing_pem, &verify)
        .map(Some)
        .map_err(|err| {
            let setting = if err.to_string().contains(&signing_path) {
                "JWT_SIGNING_KEY_FILE"
            } else {
                "JWT_VERIFY_KEY_FILES"
            };
            ConfigError::new(setting, err.to_string())
        })
}

#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("HS256 has no key pair (its key is JWT_SECRET): choose EdDSA, ES256 or RS256")]
    Symmetric,
    #[error(transparent)]
    Key(#[from] keys::KeyError),
    #[error("{0} exists: not overwritten")]
    Exists(String),
    #[error("cannot create {0}: {1}")]
    Create(String, std::io::Error),
    #[error("JWT_ALGORITHM=HS256: no key is published (tokens are HS256 under JWT_SECRET)")]
    NothingPublished,
    #[error("JWT_SIGNING_KEY_FILE: {0} does not exist yet (`authgraph serve` creates it)")]
    NoSigningKey(String),
}

/// `authgraph keys generate`: a new private key of `algorithm` in `out`
/// (mode 0600, never over an existing file). Returns its kid.
pub fn generate_key(
    algorithm: crate::config::JwtAlgorithm,
    out: &std::path::Path,
) -> Result<String, KeysError> {
    let kind = KeyKind::of(algorithm).ok_or(KeysError::Symmetric)?;
    let pem = keys::generate(kind)?;
    let shown = out.display().to_string();
    let kid = KeySet::new(kind, &shown, &pem, &[])?.signing.kid;
    crate::config::create_key_file(out, &pem).map_err(|err| match err.kind() {
        std::io::ErrorKind::AlreadyExists => KeysError::Exists(shown.clone()),
        _ => KeysError::Create(shown.clone(), err),
    })?;
    Ok(kid)
}

/// `authgraph keys list`: a line per key in use: kid, algorithm, role, file.
pub fn list_keys(settings: &Settings) -> Result<Vec<String>, KeysError> {
    if !settings.tokens.jwt_algorithm.is_asymmetric() {
        return Err(KeysError::NothingPublished);
    }
    if !settings.tokens.jwt_signing_key_file.exists() {
        return Err(KeysError::NoSigningKey(
            settings.tokens.jwt_signing_key_file.display().to_string(),
        ));
    }
    let keys = load_keys(settings)?.ok_or(KeysError::NothingPublished)?;
    Ok(keys
        .in_order()
        .into_iter()
        .map(|key| {
            let role = if key.kid == keys.signing.kid {
                "signing"
            } else {
                "verify"
            };
            format!(
                "{}  {}  {role}  {}",
                key.kid,
                key.kind.algorithm_name(),
                key.source
            )
        })
        .collect())
}

/// Cookie mode works only when the browser keeps and sends the cookie:
/// says so at start for each setting that stops it.
fn warn_of_browser_settings(settings: &Settings) {
    if !settings.edge.refresh_token_cookie.is_on() {
        return;
    }
    let public = settings.edge.public_url.origin();
    for origin in settings.edge.cors_allowed_origins.iter() {
        if !origin.same_site(public) {
            tracing::warn!(
                %origin,
                public_url = %public,
                "REFRESH_TOKEN_COOKIE=on: this allowed origin is cross-site to PUBLIC_URL; \
                 browsers will not send it the SameSite=Strict refresh cookie, so its refreshes fail: \
                 serve the app and authgraph on one site (same scheme and registrable domain)"
            );
        }
    }
    if !public.is_https() && !public.is_loopback() {
        tracing::warn!(
            public_url = %public,
            "REFRESH_TOKEN_COOKIE=on: browsers keep the Secure refresh cookie only over https \
             (or on localhost): make PUBLIC_URL https"
        );
    }
}

impl App {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let housekeeping = tokio::spawn(housekeeping(
            self.state.clone(),
            self.leeway,
            self.events_retention,
        ));
        let mail_worker = self
            .state
            .mailer
            .clone()
            .map(|mailer| tokio::spawn(mailer.run(self.state.store.clone())));
        tracing::info!("listening on http://{}/graphql", self.addr);
        let served = Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(self.routes, shutdown, Some(GRACE))
            .await;
        housekeeping.abort();
        if let Some(worker) = mail_worker {
            worker.abort();
        }
        served
    }
}

/// How long an expired API key's row is kept (seconds).
const API_KEYS_KEPT: i64 = 30 * 86_400;

/// Prunes the blacklist, the mail and throttle tables, expired API keys and
/// security events past retention; lets the rate limiter forget idle clients.
async fn housekeeping(state: std::sync::Arc<AppState>, leeway: i64, events_retention: i64) {
    let mut forget = tokio::time::interval(FORGET_IDLE_EVERY);
    let mut prune = tokio::time::interval(PRUNE_EVERY);
    loop {
        tokio::select! {
            _ = forget.tick() => state.limiter.forget_idle(),
            _ = prune.tick() => {
                // A token is accepted until exp + leeway: keep its row until then.
                let cutoff = state.clock.now().timestamp() - leeway;
                match state.store.prune(cutoff).await {
                    Ok(0) => {}
                    Ok(rows) => tracing::info!(rows, "pruned expired revocations and sessions"),
                    Err(err) => tracing::warn!(error = %chain(&err), "pruning failed; will retry"),
                }
                if let Err(err) = state.store.prune_mail(state.clock.now().timestamp()).await {
                    tracing::warn!(error = %chain(&err), "pruning the mail tables failed; will retry");
                }
                // An expired key answers `expired` for 30 days, then `invalid`.
                let keys_cutoff = state.clock.now().timestamp() - API_KEYS_KEPT;
                if let Err(err) = state.store.prune_api_keys(keys_cutoff).await {
                    tracing::warn!(error = %chain(&err), "pruning the API keys failed; will retry");
                }
                if let Err(err) = state.store.prune_failures(state.clock.now().timestamp()).await {
                    tracing::warn!(error = %chain(&err), "pruning the throttle failed; will retry");
                }
                let events_cutoff = state.clock.now().timestamp_micros() - events_retention;
                match state.store.prune_events(events_cutoff).await {
                    Ok(0) => {}
                    Ok(rows) => tracing::info!(rows, "pruned security events past retention"),
                    Err(err) => tracing::warn!(error = %chain(&err), "pruning the security events failed; will retry"),
                }
            }
        }
    }
}
