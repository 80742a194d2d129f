//! Parsed documents, kept by their text, with what validating them gave.
//!
//! Clients send the same few documents again and again (generated
//! operations), and parsing one is a good share of a small request's cost;
//! validating it again is another. A document parses the same whatever its
//! variables, so the result is kept in a small LRU: only documents that
//! parsed and passed the limits, and only short ones, so neither memory nor
//! a flood of one-off documents can grow it.
//!
//! Validation is kept only where nothing of the request but the document
//! and the operation's name can change it: a document that declares no
//! variable. (async-graphql checks variables' values against the arguments
//! they fill during validation; a document with none that passed uses
//! none.) The schema is fixed for the cache's life: one cache per schema.

use std::num::NonZeroUsize;
use std::sync::Mutex;

use async_graphql::parser::types::{DocumentOperations, ExecutableDocument};
use async_graphql::{ServerError, ValidationResult};
use lru::LruCache;

/// Documents kept.
const ENTRIES: NonZeroUsize = NonZeroUsize::new(256).unwrap();
/// Longest document kept, in bytes (a generated operation is well under).
pub(super) const MAX_TEXT: usize = 4096;

struct Entry {
    document: ExecutableDocument,
    /// A variable used where its type is not allowed (`variable_positions`):
    /// the document's alone, whatever the request.
    misplaced: Option<ServerError>,
    /// The operation name validated with, and what validation gave.
    validated: Option<(Option<String>, ValidationResult)>,
}

/// The LRU of documents.
pub(super) struct Documents(Mutex<LruCache<String, Entry>>);

/// A kept document, and its validation when kept for this operation name.
pub(super) struct Kept {
    pub document: ExecutableDocument,
    pub misplaced: Option<ServerError>,
    pub validated: Option<ValidationResult>,
}

impl Documents {
    pub fn new() -> Self {
        Self(Mutex::new(LruCache::new(ENTRIES)))
    }

    pub fn get(&self, query: &str, operation_name: Option<&str>) -> Option<Kept> {
        if query.len() > MAX_TEXT {
            return None;
        }
        let mut cache = self.0.lock().ok()?;
        let entry = cache.get(query)?;
        Some(Kept {
            document: entry.document.clone(),
            misplaced: entry.misplaced.clone(),
            validated: entry
                .validated
                .as_ref()
                .filter(|(name, _)| name.as_deref() == operation_name)
                .map(|(_, result)| *result),
        })
    }

    /// Keeps a document that parsed and passed the limits, with its
    /// misplaced variable if any, unless its text is too long: whether it
    /// was kept.
    pub fn put(
        &self,
        query: &str,
        document: &ExecutableDocument,
        misplaced: Option<ServerError>,
    ) -> bool {
        if query.len() > MAX_TEXT {
            return false;
        }
        let Ok(mut cache) = self.0.lock() else {
            return false;
        };
        let entry = Entry {
            document: document.clone(),
            misplaced,
            validated: None,
        };
        cache.put(query.to_owned(), entry);
        true
    }

    /// Keeps what validating the document `query` under `operation_name`
    /// gave, when that can't depend on anything else (see the module).
    pub fn validated(&self, query: &str, operation_name: Option<&str>, result: ValidationResult) {
        if let Ok(mut cache) = self.0.lock()
            && let Some(entry) = cache.get_mut(query)
            && declares_no_variable(&entry.document)
        {
            entry.validated = Some((operation_name.map(str::to_owned), result));
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.0.lock().map_or(0, |cache| cache.len())
    }
}

fn declares_no_variable(document: &ExecutableDocument) -> bool {
    match &document.operations {
        DocumentOperations::Single(op) => op.node.variable_definitions.is_empty(),
        DocumentOperations::Multiple(ops) => ops
            .values()
            .all(|op| op.node.variable_definitions.is_empty()),
    }
}
