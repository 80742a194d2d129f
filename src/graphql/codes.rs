//! Error codes for failures before execution, as Apollo Server names them, so
//! clients can tell a bad document from a failed operation.

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextRequest, NextValidation,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Response, ServerError, ServerResult, ValidationResult, Variables};

pub struct Codes;

impl ExtensionFactory for Codes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Codes)
    }
}

fn has_code(err: &ServerError) -> bool {
    err.extensions
        .as_ref()
        .is_some_and(|ext| ext.get("code").is_some())
}

/// An error of the request itself (no path), with its `extensions.code`.
pub fn request_error(message: impl Into<String>, code: &'static str) -> ServerError {
    with_code(ServerError::new(message, None), code)
}

/// Sets `code` unless the error has one (a limit may name its own).
fn with_code(mut err: ServerError, code: &'static str) -> ServerError {
    if !has_code(&err) {
        err.extensions
            .get_or_insert_with(Default::default)
            .set("code", code);
    }
    err
}

#[async_trait::async_trait]
impl Extension for Codes {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        next.run(ctx, query, variables)
            .await
            .map_err(|err| with_code(err, "GRAPHQL_PARSE_FAILED"))
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        next.run(ctx).await.map_err(|errors| {
            errors
                .into_iter()
                .map(|err| with_code(err, "GRAPHQL_VALIDATION_FAILED"))
                .collect()
        })
    }

    /// Every resolver error already has a code (`AppError`). What is left:
    /// async-graphql's coercion of argument values, done during execution
    /// (it has a path), and request-level refusals such as a missing
    /// `operationName` for a document with several operations (no path).
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut response = next.run(ctx).await;
        for err in response.errors.iter_mut().filter(|err| !has_code(err)) {
            let code = if err.path.is_empty() {
                "BAD_REQUEST"
            } else {
                "GRAPHQL_VALIDATION_FAILED"
            };
            err.extensions
                .get_or_insert_with(Default::default)
                .set("code", code);
        }
        response
    }
}
