//! SeaORM entities of authgraph: database-shaped, nothing GraphQL here.

pub mod login_failure;
pub mod revocation;
pub mod session;
pub mod user;
