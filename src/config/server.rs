//! The process: where it listens and how it logs.

use std::net::{SocketAddr, ToSocketAddrs};

use clap::Args;

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Server")]
pub struct ServerSettings {
    /// Listen address; port 0 picks a free port (the bound address is logged).
    #[arg(long, env = "BIND_ADDR", hide_env_values = true, default_value = "127.0.0.1:8000", value_parser = parse_bind_addr, global = true)]
    pub bind_addr: SocketAddr,

    /// Log lines as `text` (for people) or `json` (one object a line, for collectors).
    #[arg(long, env = "LOG_FORMAT", hide_env_values = true, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    /// tracing filter, e.g. `info` or `authgraph=debug,info`.
    #[arg(
        long,
        env = "RUST_LOG",
        hide_env_values = true,
        default_value = "info",
        global = true
    )]
    pub rust_log: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
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
