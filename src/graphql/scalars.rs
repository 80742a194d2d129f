//! The schema's own scalars, a leaf every output type may use.

use chrono::Utc;

/// A point in time: RFC 3339 in UTC with milliseconds, e.g. `2026-11-21T09:30:00.000Z`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateTime(pub chrono::DateTime<Utc>);

impl DateTime {
    /// Unix seconds (as the store keeps expiries); `None` out of range.
    pub fn from_unix(seconds: i64) -> Option<Self> {
        chrono::DateTime::from_timestamp(seconds, 0).map(Self)
    }

    /// [`Self::from_unix`], the epoch out of range (never, for what the
    /// store writes).
    pub fn from_unix_or_epoch(seconds: i64) -> Self {
        Self::from_unix(seconds).unwrap_or(Self(chrono::DateTime::UNIX_EPOCH))
    }
}

/// A point in time: RFC 3339 in UTC with milliseconds, e.g. `2026-11-21T09:30:00.000Z`.
#[async_graphql::Scalar(name = "DateTime")]
impl async_graphql::ScalarType for DateTime {
    fn parse(value: async_graphql::Value) -> async_graphql::InputValueResult<Self> {
        match &value {
            async_graphql::Value::String(text) => chrono::DateTime::parse_from_rfc3339(text)
                .map(|t| Self(t.with_timezone(&Utc)))
                .map_err(|_| {
                    async_graphql::InputValueError::custom("expected an RFC 3339 date-time")
                }),
            _ => Err(async_graphql::InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> async_graphql::Value {
        async_graphql::Value::String(self.0.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    }
}
