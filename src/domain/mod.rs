//! Inputs that parse: past `parse()`, a value is known to follow API.md's rules.

mod email;
mod password;
mod username;

pub use email::{Email, local_part};
pub use password::{COMMON_PASSWORD, CONTAINS_IDENTITY, Password};
pub use username::Username;

/// An input that breaks a rule. `field` names the input field, for
/// `extensions.field`; `reason`, when there is one, says which rule
/// (`extensions.reason`: `common`, `contains_identity`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidInput {
    pub field: &'static str,
    pub message: &'static str,
    pub reason: Option<&'static str>,
}

impl InvalidInput {
    pub(crate) const fn new(field: &'static str, message: &'static str) -> Self {
        Self {
            field,
            message,
            reason: None,
        }
    }

    pub(crate) const fn because(self, reason: &'static str) -> Self {
        Self {
            reason: Some(reason),
            ..self
        }
    }
}
