//! Parsed documents, kept by their text.
//!
//! Clients send the same few documents again and again (generated
//! operations), and parsing one is a good share of a small request's cost.
//! A document parses the same whatever its variables, so the result is kept
//! in a small LRU: only documents that parsed, and only short ones, so
//! neither memory nor a flood of one-off documents can grow it.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{ServerResult, Variables};
use lru::LruCache;

/// Documents kept.
const ENTRIES: NonZeroUsize = NonZeroUsize::new(256).unwrap();
/// Longest document kept, in bytes (a generated operation is well under).
const MAX_TEXT: usize = 4096;

type Cache = Arc<Mutex<LruCache<String, ExecutableDocument>>>;

pub struct ParseCache(Cache);

impl ParseCache {
    pub fn new() -> Self {
        Self(Arc::new(Mutex::new(LruCache::new(ENTRIES))))
    }
}

impl ExtensionFactory for ParseCache {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ParseCache(self.0.clone()))
    }
}

#[async_trait::async_trait]
impl Extension for ParseCache {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        if query.len() > MAX_TEXT {
            return next.run(ctx, query, variables).await;
        }
        let cached = self.0.lock().ok().and_then(|mut c| c.get(query).cloned());
        if let Some(document) = cached {
            return Ok(document);
        }
        let document = next.run(ctx, query, variables).await?;
        if let Ok(mut cache) = self.0.lock() {
            cache.put(query.to_owned(), document.clone());
        }
        Ok(document)
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::{EmptyMutation, EmptySubscription, Object, Request, Schema, Variables};

    use super::*;

    struct Query;

    #[Object]
    impl Query {
        async fn echo(&self, text: String) -> String {
            text
        }
    }

    #[tokio::test]
    async fn a_kept_document_runs_with_each_request_s_own_variables() {
        let cache = ParseCache::new();
        let kept = cache.0.clone();
        let schema = Schema::build(Query, EmptyMutation, EmptySubscription)
            .extension(cache)
            .finish();
        let query = "query($t: String!) { echo(text: $t) }";
        for text in ["one", "two"] {
            let variables = Variables::from_json(serde_json::json!({ "t": text }));
            let response = schema
                .execute(Request::new(query).variables(variables))
                .await;
            assert!(response.errors.is_empty(), "{:?}", response.errors);
            assert_eq!(response.data.into_json().unwrap()["echo"], text);
        }
        assert_eq!(kept.lock().unwrap().len(), 1);

        let broken = schema.execute("{ echo(text: ").await;
        assert_eq!(broken.errors.len(), 1);
        let long = format!("{{ echo(text: \"{}\") }}", "x".repeat(MAX_TEXT));
        assert!(schema.execute(long).await.errors.is_empty());
        assert_eq!(
            kept.lock().unwrap().len(),
            1,
            "neither an error nor a long one is kept"
        );
    }
}
