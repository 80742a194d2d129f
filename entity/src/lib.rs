//! SeaORM entities of authgraph: database-shaped, nothing GraphQL here.

pub mod api_key;
pub mod key_check;
pub mod login_failure;
pub mod mail_token;
pub mod mail_window;
pub mod mfa_challenge;
pub mod outbox;
pub mod recovery_code;
pub mod revocation;
pub mod security_event;
pub mod session;
pub mod totp_credential;
pub mod user;
