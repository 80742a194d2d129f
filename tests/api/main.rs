//! Black-box tests: the real server, a fresh database, GraphQL over HTTP.

mod data_key;
mod databases;
mod helpers;

mod admin;
mod api_keys;
mod browser;
mod cli;
mod events;
mod fuzz;
mod hardening;
mod http;
mod keys;
mod login;
mod mail;
mod mfa;
mod observability;
mod over_http;
mod password_policy;
mod postgres;
mod races;
mod rate_limit;
mod reauth;
mod restart;
mod sessions;
mod signup;
mod tokens;
mod verification;
