//! How often a client may try: per IP and minute, per account and hour.

use clap::Args;

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Limits")]
pub struct LimitSettings {
    /// signup/login/refreshToken attempts per client IP and minute; 0 turns the limit off.
    #[arg(
        long,
        env = "AUTH_RATE_LIMIT_PER_MINUTE",
        hide_env_values = true,
        default_value_t = 20,
        global = true
    )]
    pub auth_rate_limit_per_minute: u32,

    /// Failed password checks per account identifier (as typed) and hour;
    /// past it even the right password is refused until the hour is over.
    /// 0 turns it off.
    #[arg(
        long,
        env = "LOGIN_FAILURES_PER_HOUR",
        hide_env_values = true,
        default_value_t = 100,
        global = true
    )]
    pub login_failures_per_hour: u32,
}
