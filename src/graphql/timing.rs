//! Runs every operation in a `graphql.operation` span, times each root
//! field into the latency histogram, and gives the schema its description.

use std::sync::Arc;
use std::time::Instant;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextResolve, ResolveInfo,
};
use async_graphql::{Response, ServerResult, Value};
use tracing::Instrument;

use crate::state::AppState;

pub struct Timing(pub Arc<AppState>);

impl ExtensionFactory for Timing {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Timing(self.0.clone()))
    }
}

#[async_trait::async_trait]
impl Extension for Timing {
    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        // The client's name for the operation only: variables never.
        let span = tracing::debug_span!("graphql.operation", name = operation_name.unwrap_or(""));
        next.run(ctx, operation_name).instrument(span).await
    }

    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        // async-graphql answers `__schema { description }` with a fixed text
        // about GraphQL itself; the schema's own is ours.
        if info.is_for_introspection && info.name == "description" && info.parent_type == "__Schema"
        {
            return Ok(Some(Value::String(super::DESCRIPTION.to_owned())));
        }
        if info.path_node.parent.is_some() {
            return next.run(ctx, info).await;
        }
        // The field's name, not its alias: the label set stays the schema's.
        let operation = info.name;
        let start = Instant::now();
        let result = next.run(ctx, info).await;
        self.0
            .metrics
            .latency
            .with_label_values(&[operation])
            .observe(start.elapsed().as_secs_f64());
        result
    }
}
