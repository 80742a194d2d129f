//! Prometheus metrics, served at `GET /metrics`.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry, TextEncoder,
};

/// The counters and the latency histogram of API.md's operations.
pub struct Metrics {
    registry: Registry,
    pub signups: IntCounter,
    /// Label `result`: `ok` or `failed`.
    pub logins: IntCounterVec,
    pub refreshes: IntCounter,
    pub reuse_detections: IntCounter,
    /// Sessions ended: logout, logoutAll, revokeSession, changePassword, reuse.
    pub revocations: IntCounter,
    pub rate_limited: IntCounter,
    /// Label `operation`: the root field (`me`, `login`, ...).
    pub latency: HistogramVec,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("authgraph".into()), None)?;
        let counter = |name: &str, help: &str| -> Result<IntCounter, prometheus::Error> {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let logins = IntCounterVec::new(
            Opts::new("logins_total", "Login attempts by result."),
            &["result"],
        )?;
        registry.register(Box::new(logins.clone()))?;
        // Every series exists from the start, at 0.
        logins.with_label_values(&["ok"]);
        logins.with_label_values(&["failed"]);
        logins.with_label_values(&["unverified"]);
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "operation_duration_seconds",
                "Time to resolve each root field of a GraphQL operation.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["operation"],
        )?;
        registry.register(Box::new(latency.clone()))?;
        Ok(Self {
            signups: counter("signups_total", "Accounts created.")?,
            refreshes: counter("refreshes_total", "Refresh tokens rotated.")?,
            reuse_detections: counter(
                "refresh_reuse_detected_total",
                "Used refresh tokens presented again (their sessions were ended).",
            )?,
            revocations: counter("sessions_revoked_total", "Sessions ended.")?,
            rate_limited: counter(
                "rate_limited_total",
                "signup/login/refreshToken/changePassword attempts refused by the rate limit.",
            )?,
            logins,
            latency,
            registry,
        })
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metric families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buffer);
        String::from_utf8(buffer).unwrap_or_default()
    }
}
