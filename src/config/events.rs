//! The security-event log: how long its events are kept.

use clap::Args;

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Security events")]
pub struct EventSettings {
    /// Days a security event is kept; housekeeping prunes older ones (1 to 3650).
    #[arg(long, env = "SECURITY_EVENTS_RETENTION_DAYS", hide_env_values = true, default_value_t = 365, value_parser = clap::value_parser!(u16).range(1..=3650), global = true)]
    pub security_events_retention_days: u16,
}

impl EventSettings {
    /// The retention in microseconds (the log's unit).
    pub fn retention_micros(&self) -> i64 {
        i64::from(self.security_events_retention_days) * 86_400 * 1_000_000
    }
}
