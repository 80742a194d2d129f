//! authgraph: a GraphQL authentication API.

pub mod app;
pub mod auth;
pub mod config;
pub mod domain;
pub mod error;
pub mod events;
pub mod gateway;
pub mod graphql;
pub mod http;
pub mod mail;
pub mod metrics;
pub mod ratelimit;
pub mod secret;
pub mod state;
pub mod store;
