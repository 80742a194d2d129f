//! Error codes for failures before execution, as Apollo Server names them, so
//! clients can tell a bad document from a failed operation.

use crate::error::code;
use async_graphql::{Response, ServerError};

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
pub(super) fn with_code(mut err: ServerError, code: &'static str) -> ServerError {
    if !has_code(&err) {
        err.extensions
            .get_or_insert_with(Default::default)
            .set("code", code);
    }
    err
}

/// Every resolver error already has a code (`AppError`). What is left at
/// the end of a request: async-graphql's coercion of argument values, done
/// during execution (it has a path), and request-level refusals such as a
/// missing `operationName` for a document with several operations (no path).
pub(super) fn label_the_rest(mut response: Response) -> Response {
    for err in response.errors.iter_mut().filter(|err| !has_code(err)) {
        let code = if err.path.is_empty() {
            code::BAD_REQUEST
        } else {
            code::GRAPHQL_VALIDATION_FAILED
        };
        err.extensions
            .get_or_insert_with(Default::default)
            .set("code", code);
    }
    response
}
