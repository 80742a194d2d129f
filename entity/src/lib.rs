//! SeaORM entities of authgraph: database-shaped, nothing GraphQL here.

pub mod api_key;
pub mod login_failure;
pub mod mail_request;
pub mod mail_token;
pub mod outbox;
pub mod revocation;
pub mod session;
pub mod user;
