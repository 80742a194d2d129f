//! Inputs that parse: past `parse()`, a value is known to follow API.md's rules.

mod email;
mod password;
mod username;

pub use email::Email;
pub use password::Password;
pub use username::Username;

/// An input that breaks a rule. `field` names the input field, for `extensions.field`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidInput {
    pub field: &'static str,
    pub message: &'static str,
}

impl InvalidInput {
    pub(crate) const fn new(field: &'static str, message: &'static str) -> Self {
        Self { field, message }
    }
}
