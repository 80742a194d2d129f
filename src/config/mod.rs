//! Typed settings: every one an environment variable and an equal flag,
//! validated once at start-up.

mod key_file;
mod origins;

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

pub use key_file::create_new as create_key_file;
use key_file::{load_or_create, load_or_create_secret};
pub use origins::{AllowedOrigins, Origin, PublicUrl};

use crate::secret::Secret;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "authgraph", version, about = "GraphQL authentication API")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub settings: Settings,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Apply pending migrations, then serve (the default).
    Serve,
    /// Apply pending migrations and exit.
    Migrate,
    /// Print the GraphQL schema (SDL) and exit.
    Schema,
    /// Make a user ADMIN (the way to create the first admin).
    Promote {
        /// The user's username (any case) or email.
        user: String,
    },
    /// Signing keys for access tokens other services verify.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Print ready-to-paste configuration for a service that verifies
    /// authgraph's access tokens, from the current settings.
    GatewayConfig {
        #[arg(value_enum)]
        consumer: Consumer,
    },
}

/// The services `gateway-config` writes configuration for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Consumer {
    /// Hasura: the JSON of `HASURA_GRAPHQL_JWT_SECRET`.
    Hasura,
    /// Apollo Router: the `authentication.router.jwt` section of router.yaml.
    ApolloRouter,
    /// GraphQL Yoga: the options of `@graphql-yoga/plugin-jwt`, as a module.
    Yoga,
}

#[derive(Debug, Clone, Subcommand)]
pub enum KeysCommand {
    /// Make a new private key: PKCS#8 PEM, mode 0600; an existing file is
    /// never overwritten. Prints its kid.
    Generate {
        /// `EdDSA`, `ES256` or `RS256`.
        #[arg(long, value_enum, ignore_case = true)]
        algorithm: JwtAlgorithm,
        /// The file to create.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the kids in use (the signing key's and the verify keys'), the
    /// signing one marked.
    List,
}

/// Every setting of API.md. Flags are global, so `authgraph --bind-addr X`
/// and `authgraph serve --bind-addr X` are the same.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// SQLite file (`sqlite://FILE?mode=rwc`) or PostgreSQL (`postgres://...`).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://authgraph.db?mode=rwc",
        hide_env_values = true,
        global = true
    )]
    pub database_url: String,

    /// Most open database connections (SQLite default 2, PostgreSQL default 10).
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", value_parser = clap::value_parser!(u32).range(1..=1000), global = true)]
    pub database_max_connections: Option<u32>,

    /// Seconds a request waits for a database connection (opening one
    /// included) before it fails; also bounds the connect at start-up.
    #[arg(long, env = "DATABASE_CONNECT_TIMEOUT", default_value_t = PoolSettings::DEFAULT_CONNECT_TIMEOUT, value_parser = clap::value_parser!(u64).range(1..=300), global = true)]
    pub database_connect_timeout: u64,

    /// Seconds one SQL statement may run (PostgreSQL `statement_timeout`) or
    /// wait for SQLite's write lock (busy timeout).
    #[arg(long, env = "DATABASE_STATEMENT_TIMEOUT", default_value_t = PoolSettings::DEFAULT_STATEMENT_TIMEOUT, value_parser = clap::value_parser!(u64).range(1..=3600), global = true)]
    pub database_statement_timeout: u64,

    /// Listen address; port 0 picks a free port (the bound address is logged).
    #[arg(long, env = "BIND_ADDR", default_value = "127.0.0.1:8000", value_parser = parse_bind_addr, global = true)]
    pub bind_addr: SocketAddr,

    /// HS256 key, at least 32 bytes. Unset: a random key kept in JWT_SECRET_FILE.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true, global = true)]
    pub jwt_secret: Option<Secret>,

    /// Where the generated key is kept (created once, mode 0600) when JWT_SECRET is unset.
    #[arg(
        long,
        env = "JWT_SECRET_FILE",
        default_value = "authgraph.secret",
        global = true
    )]
    pub jwt_secret_file: PathBuf,

    /// `HS256`, `EdDSA` (Ed25519), `ES256` (P-256) or `RS256` for access tokens.
    #[arg(long, env = "JWT_ALGORITHM", value_enum, ignore_case = true, default_value_t = JwtAlgorithm::Hs256, global = true)]
    pub jwt_algorithm: JwtAlgorithm,

    /// Asymmetric algorithms: the PKCS#8 PEM private key access tokens are
    /// signed with; created once (mode 0600) when absent.
    #[arg(
        long,
        env = "JWT_SIGNING_KEY_FILE",
        default_value = "authgraph.signing.pem",
        global = true
    )]
    pub jwt_signing_key_file: PathBuf,

    /// Comma-separated PEM files (public or private) of other keys whose
    /// access tokens are accepted and which are published: for rotation.
    #[arg(
        long,
        env = "JWT_VERIFY_KEY_FILES",
        value_delimiter = ',',
        global = true
    )]
    pub jwt_verify_key_files: Vec<String>,

    /// The `iss` claim, required on every token presented. Default: none;
    /// with an asymmetric algorithm, PUBLIC_URL.
    #[arg(long, env = "JWT_ISSUER", global = true)]
    pub jwt_issuer: Option<String>,

    /// The `aud` claim of access tokens, required on every access token
    /// presented. Default: none; with an asymmetric algorithm, `authgraph`.
    #[arg(long, env = "JWT_AUDIENCE", global = true)]
    pub jwt_audience: Option<String>,

    /// `standard`, or `hasura`: access tokens also carry Hasura's claims
    /// (`https://hasura.io/jwt/claims`).
    #[arg(long, env = "JWT_CLAIMS", value_enum, default_value_t = ClaimsProfile::Standard, global = true)]
    pub jwt_claims: ClaimsProfile,

    /// Access token lifetime, seconds.
    #[arg(long, env = "ACCESS_TOKEN_TTL", default_value_t = 900, value_parser = clap::value_parser!(u64).range(1..=MAX_TTL), global = true)]
    pub access_token_ttl: u64,

    /// Refresh token lifetime, seconds.
    #[arg(long, env = "REFRESH_TOKEN_TTL", default_value_t = 604_800, value_parser = clap::value_parser!(u64).range(1..=MAX_TTL), global = true)]
    pub refresh_token_ttl: u64,

    /// Seconds of clock skew accepted on `exp`.
    #[arg(long, env = "JWT_LEEWAY", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=3600), global = true)]
    pub jwt_leeway: u64,

    /// signup/login/refreshToken attempts per client IP and minute; 0 turns the limit off.
    #[arg(
        long,
        env = "AUTH_RATE_LIMIT_PER_MINUTE",
        default_value_t = 20,
        global = true
    )]
    pub auth_rate_limit_per_minute: u32,

    /// Mail for account recovery: `smtp://user:pass@host:587` (STARTTLS;
    /// plain only to a server on this machine) or `smtps://...` (TLS).
    /// Empty: mail off.
    #[arg(long, env = "SMTP_URL", hide_env_values = true, global = true)]
    pub smtp_url: Option<Secret>,

    /// The sender of authgraph's mail.
    #[arg(
        long,
        env = "MAIL_FROM",
        default_value = "authgraph <no-reply@localhost>",
        global = true
    )]
    pub mail_from: String,

    /// `optional`, or `required`: an unverified account can do almost
    /// nothing until its address is verified (needs SMTP_URL).
    #[arg(long, env = "EMAIL_VERIFICATION", value_enum, default_value_t = EmailVerification::Optional, global = true)]
    pub email_verification: EmailVerification,

    /// Seconds a password reset link works.
    #[arg(long, env = "PASSWORD_RESET_TTL", default_value_t = 1800, value_parser = clap::value_parser!(u64).range(1..=MAX_TTL), global = true)]
    pub password_reset_ttl: u64,

    /// Seconds an email verification link works.
    #[arg(long, env = "EMAIL_VERIFICATION_TTL", default_value_t = 86_400, value_parser = clap::value_parser!(u64).range(1..=MAX_TTL), global = true)]
    pub email_verification_ttl: u64,

    /// Seconds after a session's sign-in during which it counts as a fresh
    /// proof for sensitive fields (API keys, MFA, granting ADMIN) without the
    /// password again; a refresh never renews it. 0: only the password does.
    #[arg(long, env = "REAUTH_WINDOW", default_value_t = 300, value_parser = clap::value_parser!(u64).range(0..=3600), global = true)]
    pub reauth_window: u64,

    /// Seconds an `mfaToken` (a login waiting for its second factor) lives.
    #[arg(long, env = "MFA_TOKEN_TTL", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400), global = true)]
    pub mfa_token_ttl: u64,

    /// The issuer authenticator apps show beside the account.
    #[arg(long, env = "TOTP_ISSUER", default_value = "authgraph", value_parser = parse_totp_issuer, global = true)]
    pub totp_issuer: String,

    /// The 256-bit key (created once, mode 0600) whose subkeys seal what the
    /// server keeps secret (TOTP secrets, mail tokens waiting in the outbox)
    /// and MAC recovery codes. Every server of one database needs the same
    /// file. Back it up as carefully as the database, but not inside its
    /// backups.
    #[arg(
        long,
        env = "DATA_KEY_FILE",
        default_value = "authgraph.data.key",
        global = true
    )]
    pub data_key_file: PathBuf,

    /// Failed password checks per account identifier (as typed) and hour;
    /// past it even the right password is refused until the hour is over.
    /// 0 turns it off.
    #[arg(
        long,
        env = "LOGIN_FAILURES_PER_HOUR",
        default_value_t = 100,
        global = true
    )]
    pub login_failures_per_hour: u32,

    /// Comma-separated IPs or CIDRs of your load balancers: from these peers
    /// the client is read from `X-Forwarded-For`. Empty: the TCP peer is the client.
    #[arg(long, env = "TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_proxy, global = true)]
    pub trusted_proxies: Vec<ipnet::IpNet>,

    /// The address users and services reach authgraph at: "this server" for
    /// the browser `Origin` check, the base of mail links, the default issuer.
    #[arg(long, env = "PUBLIC_URL", default_value = "http://localhost:8000", value_parser = origins::parse_public_url, global = true)]
    pub public_url: PublicUrl,

    /// Comma-separated exact origins (`https://app.example.com`) allowed to
    /// call authgraph from a browser, with credentials. Empty: none; `*` is refused.
    #[arg(long, env = "CORS_ALLOWED_ORIGINS", default_value = "", value_parser = origins::parse_allowed_origins, global = true)]
    pub cors_allowed_origins: AllowedOrigins,

    /// `on`: refresh tokens travel only in an HttpOnly cookie, never in a
    /// response body.
    #[arg(long, env = "REFRESH_TOKEN_COOKIE", value_enum, default_value_t = Switch::Off, global = true)]
    pub refresh_token_cookie: Switch,

    /// Log lines as `text` (for people) or `json` (one object a line, for collectors).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    /// tracing filter, e.g. `info` or `authgraph=debug,info`.
    #[arg(long, env = "RUST_LOG", default_value = "info", global = true)]
    pub rust_log: String,
}

/// What access tokens are signed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum JwtAlgorithm {
    /// HMAC-SHA256 under JWT_SECRET: only authgraph can verify.
    #[value(name = "HS256")]
    Hs256,
    /// Ed25519.
    #[value(name = "EdDSA")]
    EdDsa,
    /// ECDSA on P-256 with SHA-256.
    #[value(name = "ES256")]
    Es256,
    /// RSA PKCS#1 v1.5 with SHA-256 (2048-bit keys when generated).
    #[value(name = "RS256")]
    Rs256,
}

impl JwtAlgorithm {
    /// Does a published key verify its tokens (anything but HS256)?
    pub fn is_asymmetric(self) -> bool {
        self != Self::Hs256
    }

    /// As in a JWT header's `alg`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hs256 => "HS256",
            Self::EdDsa => "EdDSA",
            Self::Es256 => "ES256",
            Self::Rs256 => "RS256",
        }
    }
}

/// `TOTP_ISSUER`: shown in authenticator apps, and part of the `otpauth`
/// label, which a colon would split.
fn parse_totp_issuer(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    if value.contains(':') || value.chars().any(char::is_control) {
        return Err("must not contain a colon or control characters".into());
    }
    if value.chars().count() > 64 {
        return Err("must be at most 64 characters".into());
    }
    Ok(value.to_owned())
}

/// `EMAIL_VERIFICATION`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EmailVerification {
    Optional,
    Required,
}

/// Which extra claims access tokens carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClaimsProfile {
    /// The claims of API.md alone.
    Standard,
    /// Also `https://hasura.io/jwt/claims`, for Hasura.
    Hasura,
}

/// A setting that is `on` or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    On,
    Off,
}

impl Switch {
    pub fn is_on(self) -> bool {
        self == Self::On
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// How the pool is sized and how long it waits: `DATABASE_MAX_CONNECTIONS`,
/// `DATABASE_CONNECT_TIMEOUT` and `DATABASE_STATEMENT_TIMEOUT`.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    /// Most open connections; `None` picks the backend's default.
    pub max_connections: Option<u32>,
    pub connect_timeout: Duration,
    pub statement_timeout: Duration,
}

impl PoolSettings {
    /// `DATABASE_CONNECT_TIMEOUT`'s default, seconds.
    pub const DEFAULT_CONNECT_TIMEOUT: u64 = 5;
    /// `DATABASE_STATEMENT_TIMEOUT`'s default, seconds.
    pub const DEFAULT_STATEMENT_TIMEOUT: u64 = 10;
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: None,
            connect_timeout: Duration::from_secs(Self::DEFAULT_CONNECT_TIMEOUT),
            statement_timeout: Duration::from_secs(Self::DEFAULT_STATEMENT_TIMEOUT),
        }
    }
}

/// Ten years: long enough for anyone, short enough that `now + ttl` never overflows.
const MAX_TTL: u64 = 10 * 365 * 24 * 3600;

/// What stops the start: printed as one line naming the setting (or
/// `start-up` for a failure no setting explains).
#[derive(Debug, thiserror::Error)]
#[error("{setting}: {message}")]
pub struct ConfigError {
    pub setting: &'static str,
    pub message: String,
}

impl ConfigError {
    pub fn new(setting: &'static str, message: impl Into<String>) -> Self {
        Self {
            setting,
            message: message.into(),
        }
    }
}

/// A trusted proxy: a CIDR (`10.0.0.0/8`) or one address (`10.0.0.1`).
fn parse_proxy(value: &str) -> Result<ipnet::IpNet, String> {
    let value = value.trim();
    value
        .parse::<ipnet::IpNet>()
        .or_else(|_| value.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map(|net| net.trunc())
        .map_err(|_| {
            "expected IPs or CIDRs, comma-separated, for example 10.0.0.0/8,192.0.2.7".to_owned()
        })
}

fn parse_bind_addr(value: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = value.parse() {
        return Ok(addr);
    }
    value
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| "expected HOST:PORT, for example 127.0.0.1:8000".to_owned())
}

impl Settings {
    /// JWT_SECRET, checked for length, when it is set. Pure: run it before
    /// anything slow, so a bad key is reported at once.
    pub fn explicit_jwt_key(&self) -> Result<Option<Secret>, ConfigError> {
        match &self.jwt_secret {
            Some(secret) if secret.expose().len() < Secret::MIN_LEN => Err(ConfigError::new(
                "JWT_SECRET",
                format!(
                    "must be at least {} bytes, got {}",
                    Secret::MIN_LEN,
                    secret.expose().len()
                ),
            )),
            other => Ok(other.clone()),
        }
    }

    /// The `iss` claim: JWT_ISSUER, else (asymmetric) PUBLIC_URL, else none.
    pub fn issuer(&self) -> Option<String> {
        match self.jwt_issuer.as_deref().map(str::trim) {
            Some(issuer) if !issuer.is_empty() => Some(issuer.to_owned()),
            _ if self.jwt_algorithm.is_asymmetric() => Some(self.public_url.issuer()),
            _ => None,
        }
    }

    /// The `aud` claim of access tokens: JWT_AUDIENCE, else (asymmetric)
    /// `authgraph`, else none.
    pub fn audience(&self) -> Option<String> {
        match self.jwt_audience.as_deref().map(str::trim) {
            Some(audience) if !audience.is_empty() => Some(audience.to_owned()),
            _ if self.jwt_algorithm.is_asymmetric() => Some("authgraph".to_owned()),
            _ => None,
        }
    }

    /// JWT_VERIFY_KEY_FILES, empty entries left out.
    pub fn verify_key_files(&self) -> Vec<&std::path::Path> {
        self.jwt_verify_key_files
            .iter()
            .map(|path| path.trim())
            .filter(|path| !path.is_empty())
            .map(std::path::Path::new)
            .collect()
    }

    /// The signing key's PEM: JWT_SIGNING_KEY_FILE, created by `generate`
    /// (once, atomically, mode 0600) when absent.
    pub fn signing_key_pem(
        &self,
        generate: impl FnOnce() -> Result<String, String>,
    ) -> Result<String, ConfigError> {
        load_or_create(
            &self.jwt_signing_key_file,
            "JWT_SIGNING_KEY_FILE",
            "signing key",
            generate,
        )
    }

    /// `DATA_KEY_FILE`'s 256-bit key, created once when absent.
    pub fn data_key(&self) -> Result<Secret, ConfigError> {
        let content = load_or_create(&self.data_key_file, "DATA_KEY_FILE", "data key", || {
            let mut key = [0u8; 32];
            getrandom::fill(&mut key)
                .map_err(|err| format!("no system randomness to create a key: {err}"))?;
            Ok(format!("{}\n", hex::encode(key)))
        })?;
        let key = hex::decode(content.trim())
            .ok()
            .filter(|key| key.len() == 32)
            .ok_or_else(|| {
                ConfigError::new(
                    "DATA_KEY_FILE",
                    format!(
                        "{} does not hold 64 hex digits (256 bits)",
                        self.data_key_file.display()
                    ),
                )
            })?;
        Ok(Secret::from(key))
    }

    /// Mail settings that can't work together end the start.
    pub fn check_mail(&self) -> Result<(), ConfigError> {
        let smtp = self
            .smtp_url
            .as_ref()
            .map(|url| String::from_utf8_lossy(url.expose()).trim().to_owned())
            .filter(|url| !url.is_empty());
        if let Some(smtp) = &smtp {
            let fits = url::Url::parse(smtp).is_ok_and(|url| {
                matches!(url.scheme(), "smtp" | "smtps") && url.host_str().is_some()
            });
            if !fits {
                // The URL is not shown: it may hold a password.
                return Err(ConfigError::new(
                    "SMTP_URL",
                    "expected smtp://user:pass@host:587 (STARTTLS) or smtps://user:pass@host:465 (TLS)",
                ));
            }
        }
        if self.email_verification == EmailVerification::Required && smtp.is_none() {
            return Err(ConfigError::new(
                "EMAIL_VERIFICATION",
                "`required` needs SMTP_URL: without mail no address can be verified",
            ));
        }
        Ok(())
    }

    /// The database pool's settings.
    pub fn pool(&self) -> PoolSettings {
        PoolSettings {
            max_connections: self.database_max_connections,
            connect_timeout: std::time::Duration::from_secs(self.database_connect_timeout),
            statement_timeout: std::time::Duration::from_secs(self.database_statement_timeout),
        }
    }

    /// The HS256 key: JWT_SECRET if set, else the one kept in JWT_SECRET_FILE,
    /// created on first start.
    pub fn jwt_key(&self) -> Result<Secret, ConfigError> {
        match self.explicit_jwt_key()? {
            Some(secret) => Ok(secret),
            None => load_or_create_secret(&self.jwt_secret_file),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(args: &[&str]) -> Settings {
        let mut argv = vec!["authgraph"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).unwrap().settings
    }

    #[test]
    fn short_secret_is_refused_without_showing_it() {
        let s = settings(&["--jwt-secret", "tooshort-secret-value"]);
        let err = s.jwt_key().unwrap_err();
        assert_eq!(err.setting, "JWT_SECRET");
        assert!(!err.to_string().contains("tooshort"));
    }

    #[test]
    fn trusted_proxies_are_ips_or_cidrs() {
        let s = settings(&["--trusted-proxies", "10.0.0.0/8, 192.0.2.7,2001:db8::/32"]);
        let nets: Vec<String> = s.trusted_proxies.iter().map(ToString::to_string).collect();
        assert_eq!(nets, ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"]);
        let err =
            Cli::try_parse_from(["authgraph", "--trusted-proxies", "10.0.0.0/8,nope"]).unwrap_err();
        assert!(err.to_string().contains("--trusted-proxies"), "{err}");
        assert!(settings(&[]).trusted_proxies.is_empty());
    }

    #[test]
    fn browser_settings_have_safe_defaults_and_refuse_a_wildcard() {
        let s = settings(&[]);
        assert_eq!(s.public_url.origin().as_str(), "http://localhost:8000");
        assert!(s.cors_allowed_origins.is_empty());
        assert!(!s.refresh_token_cookie.is_on());
        let s = settings(&[
            "--cors-allowed-origins",
            "http://localhost:5173",
            "--refresh-token-cookie",
            "on",
        ]);
        assert!(s.cors_allowed_origins.contains("http://localhost:5173"));
        assert!(s.refresh_token_cookie.is_on());
        let err = Cli::try_parse_from(["authgraph", "--cors-allowed-origins", "*"]).unwrap_err();
        assert!(err.to_string().contains("--cors-allowed-origins"), "{err}");
        let err = Cli::try_parse_from(["authgraph", "--refresh-token-cookie", "yes"]).unwrap_err();
        assert!(err.to_string().contains("--refresh-token-cookie"), "{err}");
    }

    #[test]
    fn issuer_and_audience_default_only_under_asymmetric_algorithms() {
        let s = settings(&[]);
        assert_eq!((s.issuer(), s.audience()), (None, None));
        let s = settings(&[
            "--jwt-algorithm",
            "eddsa",
            "--public-url",
            "https://auth.example.com/",
        ]);
        assert_eq!(s.jwt_algorithm, JwtAlgorithm::EdDsa);
        assert_eq!(s.issuer().as_deref(), Some("https://auth.example.com"));
        assert_eq!(s.audience().as_deref(), Some("authgraph"));
        let s = settings(&[
            "--jwt-algorithm",
            "ES256",
            "--jwt-issuer",
            "me",
            "--jwt-audience",
            "api",
        ]);
        assert_eq!(
            (s.issuer().as_deref(), s.audience().as_deref()),
            (Some("me"), Some("api"))
        );
        let s = settings(&["--jwt-issuer", "me"]);
        assert_eq!((s.issuer().as_deref(), s.audience()), (Some("me"), None));
        assert!(Cli::try_parse_from(["authgraph", "--jwt-algorithm", "none"]).is_err());
        assert!(
            settings(&["--jwt-verify-key-files", ""])
                .verify_key_files()
                .is_empty()
        );
    }

    #[test]
    fn ttl_zero_is_refused() {
        let err = Cli::try_parse_from(["authgraph", "--access-token-ttl", "0"]).unwrap_err();
        assert!(err.to_string().contains("--access-token-ttl"));
    }

    #[test]
    fn flags_work_before_and_after_the_subcommand() {
        let a = Cli::try_parse_from(["authgraph", "--jwt-leeway", "5", "serve"]).unwrap();
        let b = Cli::try_parse_from(["authgraph", "serve", "--jwt-leeway", "5"]).unwrap();
        assert_eq!(a.settings.jwt_leeway, 5);
        assert_eq!(b.settings.jwt_leeway, 5);
    }
}
