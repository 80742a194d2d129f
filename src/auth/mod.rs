//! Tokens, passwords and the request guard.

pub mod guard;
pub mod jwt;
pub mod password;
