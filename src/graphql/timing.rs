//! Runs every operation in a `graphql.operation` span, times each root
//! field into the latency histogram, and gives the schema its description
//! (the hooks of `pipeline` call these).

use std::time::Instant;

use async_graphql::extensions::{ExtensionContext, NextResolve, ResolveInfo};
use async_graphql::{ServerResult, Value};
use prometheus::HistogramVec;

/// The span an operation runs in: the client's name for it only, variables never.
pub(super) fn operation_span(operation_name: Option<&str>) -> tracing::Span {
    tracing::debug_span!("graphql.operation", name = operation_name.unwrap_or(""))
}

/// Resolves one field, timing it when it is a root field.
pub(super) async fn resolve(
    latency: &HistogramVec,
    ctx: &ExtensionContext<'_>,
    info: ResolveInfo<'_>,
    next: NextResolve<'_>,
) -> ServerResult<Option<Value>> {
    // async-graphql answers `__schema { description }` with a fixed text
    // about GraphQL itself; the schema's own is ours.
    if info.is_for_introspection && info.name == "description" && info.parent_type == "__Schema" {
        return Ok(Some(Value::String(super::DESCRIPTION.to_owned())));
    }
    if info.path_node.parent.is_some() {
        return next.run(ctx, info).await;
    }
    // The field's name, not its alias: the label set stays the schema's.
    let operation = info.name;
    let start = Instant::now();
    let result = next.run(ctx, info).await;
    latency
        .with_label_values(&[operation])
        .observe(start.elapsed().as_secs_f64());
    result
}
