//! The GraphQL schema: assembly, limits and the types features share.

mod account;
mod admin;
mod api_keys;
mod codes;
mod context;
mod cookie;
mod events;
mod limits;
mod mfa;
mod paging;
mod parse_cache;
mod pipeline;
mod reauth;
mod recovery;
mod scalars;
mod sessions;
mod sign_in;
mod timing;
mod tokens;
mod types;
mod variable_positions;

use async_graphql::{EmptySubscription, MergedObject, Schema, SchemaBuilder};

pub use context::RequestMeta;
pub use cookie::REFRESH_COOKIE;

use crate::state::AppState;

#[derive(MergedObject, Default)]
pub struct Query(
    account::AccountQuery,
    tokens::TokenQuery,
    sessions::SessionQuery,
    admin::AdminQuery,
    api_keys::ApiKeyQuery,
    events::EventQuery,
);

#[derive(MergedObject, Default)]
pub struct Mutation(
    account::AccountMutation,
    tokens::TokenMutation,
    recovery::RecoveryMutation,
    sessions::SessionMutation,
    admin::AdminMutation,
    api_keys::ApiKeyMutation,
    mfa::MfaMutation,
);

pub type AuthSchema = Schema<Query, Mutation, EmptySubscription>;

/// Deepest document accepted. The introspection query of GraphiQL, Apollo and
/// GraphQL Code Generator (graphql-js `getIntrospectionQuery` with every option,
/// `TypeRef` nesting `ofType` nine deep) needs 15, measured; a test runs it.
pub const MAX_DEPTH: usize = 16;
/// Most fields a document may select (aliases count). The same introspection
/// query needs 230, measured; a test runs it.
pub const MAX_COMPLEXITY: usize = 500;
/// The schema's description (`__schema { description }`).
pub const DESCRIPTION: &str = "authgraph: signup and login, rotating refresh tokens, \
instant logout, sessions and roles, account recovery by mail, API keys and TOTP multi-factor \
authentication. Send the access token as `Authorization: Bearer <accessToken>`, an API key as \
`Authorization: Token <key>`.";

pub use codes::request_error;
pub use limits::{MAX_NESTING, nesting_exceeds};

/// Most operations in one batched HTTP request.
pub const MAX_BATCH: usize = 10;

fn builder() -> SchemaBuilder<Query, Mutation, EmptySubscription> {
    Schema::build(Query::default(), Mutation::default(), EmptySubscription)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .limit_directives(10)
}

/// The schema that serves requests.
pub fn schema(state: std::sync::Arc<AppState>) -> AuthSchema {
    // From the SDL of the same schema without the extension: the check
    // needs every argument's type before this schema exists.
    let positions = variable_positions::Positions::from_sdl(&builder().finish().sdl())
        .unwrap_or_else(|| unreachable!("async-graphql's SDL parses (a unit test holds it)"));
    builder()
        .extension(pipeline::Pipeline::new(
            state.metrics.latency.clone(),
            positions,
        ))
        .data(state)
        .finish()
}

/// The SDL: `authgraph schema`, and `schema.graphql` at the repository root.
/// With the schema's description, which introspection gives and
/// async-graphql's printer leaves out.
pub fn sdl() -> String {
    // async-graphql's parser has no schema descriptions: `Positions` reads
    // the SDL without it.
    let sdl = builder().finish().sdl();
    let described = format!("\"\"\"\n{DESCRIPTION}\n\"\"\"\nschema {{");
    match sdl.rfind("\nschema {") {
        Some(at) => format!(
            "{}\n{described}{}",
            &sdl[..at],
            &sdl[at + "\nschema {".len()..]
        ),
        None => sdl,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variable_check_reads_this_schema() {
        let positions = variable_positions::Positions::from_sdl(&builder().finish().sdl());
        assert!(positions.is_some());
    }

    #[test]
    fn the_sdl_carries_the_schema_description_once() {
        let sdl = sdl();
        assert_eq!(sdl.matches(DESCRIPTION).count(), 1);
        assert!(
            sdl.trim_end()
                .ends_with("schema {\n\tquery: Query\n\tmutation: Mutation\n}")
        );
    }
}
