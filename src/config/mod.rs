//! Typed settings: every one an environment variable and an equal flag,
//! validated once at start-up. Grouped by concern, one file each (clap's
//! `flatten` keeps the variables and flags flat): `server`, `database`,
//! `tokens` (tokens, keys, sessions), `edge`, `mail`, `mfa`, `limits`,
//! `events` (the security-event log).

mod database;
mod edge;
mod events;
mod key_file;
mod limits;
mod mail;
mod mfa;
mod origins;
mod server;
mod tokens;

use std::path::PathBuf;

pub use database::{DatabaseSettings, PoolSettings};
pub use edge::{EdgeSettings, Switch};
pub use events::EventSettings;
pub use key_file::create_new as create_key_file;
pub use limits::LimitSettings;
pub use mail::{EmailVerification, MailSettings};
pub use mfa::MfaSettings;
pub use origins::{AllowedOrigins, Origin, PublicUrl};
pub use server::{LogFormat, ServerSettings};
pub use tokens::{ClaimsProfile, JwtAlgorithm, TokenSettings};

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

/// Every setting of API.md, by concern. Flags are global, so `authgraph
/// --bind-addr X` and `authgraph serve --bind-addr X` are the same.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    #[command(flatten)]
    pub server: ServerSettings,
    #[command(flatten)]
    pub database: DatabaseSettings,
    #[command(flatten)]
    pub tokens: TokenSettings,
    #[command(flatten)]
    pub edge: EdgeSettings,
    #[command(flatten)]
    pub mail: MailSettings,
    #[command(flatten)]
    pub mfa: MfaSettings,
    #[command(flatten)]
    pub limits: LimitSettings,
    #[command(flatten)]
    pub events: EventSettings,
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

impl Settings {
    /// The `iss` claim: JWT_ISSUER, else (asymmetric) PUBLIC_URL, else none.
    pub fn issuer(&self) -> Option<String> {
        self.tokens.issuer(&self.edge.public_url)
    }

    /// The `aud` claim of access tokens (see [`TokenSettings::audience`]).
    pub fn audience(&self) -> Option<String> {
        self.tokens.audience()
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
        let err = s.tokens.jwt_key().unwrap_err();
        assert_eq!(err.setting, "JWT_SECRET");
        assert!(!err.to_string().contains("tooshort"));
    }

    #[test]
    fn trusted_proxies_are_ips_or_cidrs() {
        let s = settings(&["--trusted-proxies", "10.0.0.0/8, 192.0.2.7,2001:db8::/32"]);
        let nets: Vec<String> = s
            .edge
            .trusted_proxies
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(nets, ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"]);
        let err =
            Cli::try_parse_from(["authgraph", "--trusted-proxies", "10.0.0.0/8,nope"]).unwrap_err();
        assert!(err.to_string().contains("--trusted-proxies"), "{err}");
        assert!(settings(&[]).edge.trusted_proxies.is_empty());
    }

    #[test]
    fn browser_settings_have_safe_defaults_and_refuse_a_wildcard() {
        let s = settings(&[]);
        assert_eq!(s.edge.public_url.origin().as_str(), "http://localhost:8000");
        assert!(s.edge.cors_allowed_origins.is_empty());
        assert!(!s.edge.refresh_token_cookie.is_on());
        let s = settings(&[
            "--cors-allowed-origins",
            "http://localhost:5173",
            "--refresh-token-cookie",
            "on",
        ]);
        assert!(
            s.edge
                .cors_allowed_origins
                .contains("http://localhost:5173")
        );
        assert!(s.edge.refresh_token_cookie.is_on());
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
        assert_eq!(s.tokens.jwt_algorithm, JwtAlgorithm::EdDsa);
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
                .tokens
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
        assert_eq!(a.settings.tokens.jwt_leeway, 5);
        assert_eq!(b.settings.tokens.jwt_leeway, 5);
    }
}
