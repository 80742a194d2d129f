//! The edge: the address authgraph is reached at, the browsers it serves
//! (CORS, cookie mode) and the proxies in front of it.

use clap::Args;

use super::origins::{self, AllowedOrigins, PublicUrl};

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Edge")]
pub struct EdgeSettings {
    /// The address users and services reach authgraph at: "this server" for
    /// the browser `Origin` check, the base of mail links, the default issuer.
    #[arg(long, env = "PUBLIC_URL", hide_env_values = true, default_value = "http://localhost:8000", value_parser = origins::parse_public_url, global = true)]
    pub public_url: PublicUrl,

    /// Comma-separated exact origins (`https://app.example.com`) allowed to
    /// call authgraph from a browser, with credentials. Empty: none; `*` is refused.
    #[arg(long, env = "CORS_ALLOWED_ORIGINS", hide_env_values = true, default_value = "", value_parser = origins::parse_allowed_origins, global = true)]
    pub cors_allowed_origins: AllowedOrigins,

    /// `on`: refresh tokens travel only in an HttpOnly cookie, never in a
    /// response body.
    #[arg(long, env = "REFRESH_TOKEN_COOKIE", hide_env_values = true, value_enum, default_value_t = Switch::Off, global = true)]
    pub refresh_token_cookie: Switch,

    /// Comma-separated IPs or CIDRs of your load balancers: from these peers
    /// the client is read from `X-Forwarded-For`. Empty: the TCP peer is the client.
    #[arg(long, env = "TRUSTED_PROXIES", hide_env_values = true, value_delimiter = ',', value_parser = parse_proxy, global = true)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
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
