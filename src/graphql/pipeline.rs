//! The schema's one extension. Every request passes these steps, in this
//! order:
//!
//! 1. error codes for whatever failed before execution (`codes`), around
//! 2. the parse cache (`parse_cache`): a kept document skips 3 and the
//!    parser, and a kept validation skips async-graphql's validation;
//! 3. the limits around the parser (`limits`): nesting before, fields after;
//! 4. the operation's span and each root field's latency (`timing`);
//!    once the operation is done, an `access.denied` event for each
//!    `FORBIDDEN` it answered (`events`).
//!
//! One extension rather than one per step: async-graphql passes every
//! field through every extension's `resolve`, a boxed future each, and even
//! `me` resolves four fields.

use std::sync::{Arc, Mutex};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextPrepareRequest,
    NextRequest, NextResolve, NextValidation, ResolveInfo,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{
    Request, Response, ServerError, ServerResult, ValidationResult, Value, Variables,
};
use prometheus::HistogramVec;
use tracing::Instrument;

use super::parse_cache::Documents;
use super::variable_positions::Positions;
use super::{codes, events, limits, timing};
use crate::error::code;

pub struct Pipeline {
    documents: Arc<Documents>,
    positions: Arc<Positions>,
    latency: HistogramVec,
}

impl Pipeline {
    /// Root fields' latencies go into `latency` (labelled by field name);
    /// variables are checked against the schema's `positions`.
    pub fn new(latency: HistogramVec, positions: Positions) -> Self {
        Self {
            documents: Arc::new(Documents::new()),
            positions: Arc::new(positions),
            latency,
        }
    }

    #[cfg(test)]
    fn documents(&self) -> Arc<Documents> {
        self.documents.clone()
    }
}

impl ExtensionFactory for Pipeline {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(OneRequest {
            documents: self.documents.clone(),
            positions: self.positions.clone(),
            latency: self.latency.clone(),
            validation: Mutex::new(Validation::Unknown),
            misplaced: Mutex::new(None),
        })
    }
}

/// The pipeline for one request.
struct OneRequest {
    documents: Arc<Documents>,
    positions: Arc<Positions>,
    latency: HistogramVec,
    validation: Mutex<Validation>,
    /// The parse step's finding for the validation step: a variable used
    /// where its type is not allowed.
    misplaced: Mutex<Option<ServerError>>,
}

/// What the parse step learnt for the validation step.
enum Validation {
    Unknown,
    /// The request's operation name, once `prepare_request` saw it.
    Named(Option<String>),
    /// Kept with the document for this operation name.
    Kept(ValidationResult),
    /// Not kept yet: keep it under this text and operation name once it passes.
    Keep(String, Option<String>),
}

impl OneRequest {
    fn misplaced(&self) -> std::sync::MutexGuard<'_, Option<ServerError>> {
        self.misplaced
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn validation(&self) -> std::sync::MutexGuard<'_, Validation> {
        self.validation
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait::async_trait]
impl Extension for OneRequest {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        codes::label_the_rest(next.run(ctx).await)
    }

    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        let request = next.run(ctx, request).await?;
        *self.validation() = Validation::Named(request.operation_name.clone());
        Ok(request)
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let name = match std::mem::replace(&mut *self.validation(), Validation::Unknown) {
            Validation::Named(name) => name,
            _ => None,
        };
        if let Some(found) = self.documents.get(query, name.as_deref()) {
            *self.misplaced() = found.misplaced;
            *self.validation() = match found.validated {
                Some(result) => Validation::Kept(result),
                None => Validation::Keep(query.to_owned(), name),
            };
            return Ok(found.document);
        }
        let parsed = async {
            limits::check_text(query)?;
            let document = next.run(ctx, query, variables).await?;
            limits::check_document(&document)?;
            Ok(document)
        };
        let document = parsed
            .await
            .map_err(|err| codes::with_code(err, code::GRAPHQL_PARSE_FAILED))?;
        let misplaced = self.positions.misplaced(&document);
        *self.misplaced() = misplaced.clone();
        if self.documents.put(query, &document, misplaced) {
            *self.validation() = Validation::Keep(query.to_owned(), name);
        }
        Ok(document)
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let learnt = std::mem::replace(&mut *self.validation(), Validation::Unknown);
        // Only a document declaring no variable has its validation kept,
        // and such a document has no misplaced variable.
        if let Validation::Kept(result) = learnt {
            return Ok(result);
        }
        // A misplaced variable is refused before async-graphql's validation
        // runs: it answers the same whatever else is wrong.
        if let Some(misplaced) = self.misplaced().take() {
            return Err(vec![codes::with_code(
                misplaced,
                code::GRAPHQL_VALIDATION_FAILED,
            )]);
        }
        match next.run(ctx).await {
            Ok(result) => {
                if let Validation::Keep(query, name) = learnt {
                    self.documents.validated(&query, name.as_deref(), result);
                }
                Ok(result)
            }
            Err(errors) => Err(errors
                .into_iter()
                .map(|err| codes::with_code(err, code::GRAPHQL_VALIDATION_FAILED))
                .collect()),
        }
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let span = timing::operation_span(operation_name);
        let response = next.run(ctx, operation_name).instrument(span).await;
        events::record_denials(ctx, &response).await;
        response
    }

    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        timing::resolve(&self.latency, ctx, info, next).await
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema};
    use prometheus::HistogramOpts;

    use super::*;
    use crate::graphql::parse_cache::MAX_TEXT;

    struct Query;

    #[Object]
    impl Query {
        async fn echo(&self, text: String) -> String {
            text
        }
    }

    fn schema() -> (
        Schema<Query, EmptyMutation, EmptySubscription>,
        Arc<Documents>,
    ) {
        let latency =
            HistogramVec::new(HistogramOpts::new("latency", "test"), &["operation"]).unwrap();
        let positions =
            Positions::from_sdl(&Schema::new(Query, EmptyMutation, EmptySubscription).sdl())
                .expect("the SDL parses");
        let pipeline = Pipeline::new(latency, positions);
        let documents = pipeline.documents();
        let schema = Schema::build(Query, EmptyMutation, EmptySubscription)
            .limit_depth(2)
            .extension(pipeline)
            .finish();
        (schema, documents)
    }

    #[tokio::test]
    async fn a_kept_document_runs_with_each_request_s_own_variables() {
        let (schema, documents) = schema();
        let query = "query($t: String!) { echo(text: $t) }";
        for text in ["one", "two"] {
            let variables = Variables::from_json(serde_json::json!({ "t": text }));
            let response = schema
                .execute(Request::new(query).variables(variables))
                .await;
            assert!(response.errors.is_empty(), "{:?}", response.errors);
            assert_eq!(response.data.into_json().unwrap()["echo"], text);
        }
        // A kept document whose variables are of the wrong type: refused by
        // validation, as the first time (its validation is never kept).
        let variables = Variables::from_json(serde_json::json!({ "t": 5 }));
        let response = schema
            .execute(Request::new(query).variables(variables))
            .await;
        assert_eq!(response.errors.len(), 1, "{:?}", response.errors);
        assert!(response.errors[0].path.is_empty(), "before execution");
        assert_eq!(documents.len(), 1);

        let broken = schema.execute("{ echo(text: ").await;
        assert_eq!(broken.errors.len(), 1);
        let long = format!("{{ echo(text: \"{}\") }}", "x".repeat(MAX_TEXT));
        assert!(schema.execute(long).await.errors.is_empty());
        assert_eq!(
            documents.len(),
            1,
            "neither an error nor a long one is kept"
        );
    }

    #[tokio::test]
    async fn only_a_passed_validation_is_kept_and_only_for_its_operation() {
        let (schema, documents) = schema();
        let query = "query Flat { echo(text: \"a\") }";
        for _ in 0..2 {
            let flat = schema
                .execute(Request::new(query).operation_name("Flat"))
                .await;
            assert!(flat.errors.is_empty(), "{:?}", flat.errors);
        }
        let kept = |name| documents.get(query, name).unwrap().validated;
        assert!(kept(Some("Flat")).is_some());
        assert!(kept(None).is_none(), "kept for its operation name only");
        // Refused by validation (too deep for this schema's limit of 2):
        // refused again with the document kept, its validation never kept.
        let deep = "{ __schema { types { fields { name } } } }";
        for _ in 0..2 {
            let response = schema.execute(deep).await;
            assert_eq!(response.errors.len(), 1, "{:?}", response.errors);
            assert_eq!(
                response.errors[0]
                    .extensions
                    .as_ref()
                    .and_then(|e| e.get("code")),
                Some(&Value::from("GRAPHQL_VALIDATION_FAILED"))
            );
        }
        assert!(documents.get(deep, None).unwrap().validated.is_none());
        // A document declaring variables: validated on every request.
        let with_variables = "query($t: String!) { echo(text: $t) }";
        let variables = Variables::from_json(serde_json::json!({ "t": "x" }));
        let response = schema
            .execute(Request::new(with_variables).variables(variables))
            .await;
        assert!(response.errors.is_empty(), "{:?}", response.errors);
        assert!(
            documents
                .get(with_variables, None)
                .unwrap()
                .validated
                .is_none()
        );
    }
}
