//! Automatic persisted queries, Apollo's protocol: a client sends
//! `extensions.persistedQuery.sha256Hash` alone; an unknown hash answers
//! `PERSISTED_QUERY_NOT_FOUND` and the client sends the hash again with its
//! query, which is checked, run, and kept.
//!
//! Resolved here, in the HTTP layer, before anything else looks at the
//! document: so the GET rule (no mutation) and every parsing limit apply to
//! the resolved document, as to any other. A document is kept only once it
//! has run: one that failed to parse or validate, or broke a limit, is
//! never kept. The store is bounded in entries and in each entry's size.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError};

use async_graphql::Value;
use lru::LruCache;
use sha2::{Digest, Sha256};

use crate::error::code;
use crate::graphql::request_error;

/// Documents kept.
const ENTRIES: NonZeroUsize = NonZeroUsize::new(512).unwrap();
/// Longest document kept, in bytes: 512 of them take at most 8 MiB.
const MAX_KEPT: usize = 16 * 1024;

/// The `PERSISTED_QUERY_NOT_FOUND` message Apollo Client looks for.
const NOT_FOUND: &str = "PersistedQueryNotFound";

#[derive(Clone)]
pub struct PersistedQueries(Arc<Mutex<LruCache<[u8; 32], Arc<str>>>>);

/// A request after persisted-query resolution.
pub(super) enum Resolved {
    /// Run it; once it has run, keep its document under `keep` if set.
    Run {
        request: Box<async_graphql::Request>,
        keep: Option<[u8; 32]>,
    },
    /// Unknown hash: the client should send the query with it.
    NotFound,
    /// The hash is not the query's, or not a SHA-256 in hex.
    BadHash,
}

impl Default for PersistedQueries {
    fn default() -> Self {
        Self(Arc::new(Mutex::new(LruCache::new(ENTRIES))))
    }
}

impl PersistedQueries {
    /// Resolves `request` against the kept documents.
    pub(super) fn resolve(&self, mut request: async_graphql::Request) -> Resolved {
        let Some(hash) = requested_hash(&request) else {
            return Resolved::Run {
                request: Box::new(request),
                keep: None,
            };
        };
        let Some(hash) = hash else {
            return Resolved::BadHash;
        };
        if request.query.is_empty() {
            let kept = self
                .0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&hash)
                .cloned();
            return match kept {
                Some(query) => {
                    request.query = query.to_string();
                    Resolved::Run {
                        request: Box::new(request),
                        keep: None,
                    }
                }
                None => Resolved::NotFound,
            };
        }
        if <[u8; 32]>::from(Sha256::digest(request.query.as_bytes())) != hash {
            return Resolved::BadHash;
        }
        let keep = (request.query.len() <= MAX_KEPT).then_some(hash);
        Resolved::Run {
            request: Box::new(request),
            keep,
        }
    }

    /// Keeps `query` under `hash` (it has run).
    pub(super) fn keep(&self, hash: [u8; 32], query: &str) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .put(hash, query.into());
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

/// `None`: no persisted query asked for. `Some(None)`: asked for, but not
/// as a version-1 SHA-256 in hex. `Some(Some(hash))`: this hash.
fn requested_hash(request: &async_graphql::Request) -> Option<Option<[u8; 32]>> {
    let Value::Object(persisted) = request.extensions.get("persistedQuery")? else {
        return Some(None);
    };
    if persisted.get("version") != Some(&Value::Number(1.into())) {
        return Some(None);
    }
    let Some(Value::String(hex_hash)) = persisted.get("sha256Hash") else {
        return Some(None);
    };
    let mut hash = [0u8; 32];
    Some(
        hex::decode_to_slice(hex_hash, &mut hash)
            .ok()
            .map(|()| hash),
    )
}

/// The answer to an unknown hash (status 200, as Apollo Server gives it).
pub(super) fn not_found() -> async_graphql::Response {
    async_graphql::Response::from_errors(vec![request_error(
        NOT_FOUND,
        code::PERSISTED_QUERY_NOT_FOUND,
    )])
}

/// The answer to a hash that is not the query's.
pub(super) fn bad_hash() -> async_graphql::Response {
    async_graphql::Response::from_errors(vec![request_error(
        "extensions.persistedQuery.sha256Hash is not the SHA-256 of the query (hex, version 1)",
        "BAD_REQUEST",
    )])
}

/// Is this the answer to an unknown hash?
pub(super) fn is_not_found(response: &async_graphql::Response) -> bool {
    response.errors.len() == 1 && response.errors[0].message == NOT_FOUND
}

#[cfg(test)]
mod tests {
    use super::*;

    fn persisted(query: &str, hash: &str) -> async_graphql::Request {
        let extensions =
            serde_json::json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });
        let mut request = async_graphql::Request::new(query);
        request.extensions = serde_json::from_value(extensions).unwrap();
        request
    }

    fn sha(query: &str) -> String {
        hex::encode(Sha256::digest(query.as_bytes()))
    }

    #[test]
    fn a_hash_is_kept_only_with_its_query_and_only_once_told_to() {
        let store = PersistedQueries::default();
        let query = "{ __typename }";
        assert!(matches!(
            store.resolve(persisted("", &sha(query))),
            Resolved::NotFound
        ));
        assert!(matches!(
            store.resolve(persisted(query, &sha("{ me { id } }"))),
            Resolved::BadHash
        ));
        assert!(matches!(
            store.resolve(persisted(query, "not hex")),
            Resolved::BadHash
        ));
        let Resolved::Run {
            keep: Some(hash), ..
        } = store.resolve(persisted(query, &sha(query)))
        else {
            panic!("runs, to be kept");
        };
        assert_eq!(store.len(), 0, "kept only once it has run");
        store.keep(hash, query);
        let Resolved::Run {
            request,
            keep: None,
        } = store.resolve(persisted("", &sha(query)))
        else {
            panic!("found");
        };
        assert_eq!(request.query, query);
        // A plain request passes through untouched.
        let Resolved::Run {
            request,
            keep: None,
        } = store.resolve(async_graphql::Request::new(query))
        else {
            panic!("plain");
        };
        assert_eq!(request.query, query);
    }

    #[test]
    fn long_documents_run_but_are_not_kept() {
        let store = PersistedQueries::default();
        let long = format!("{{ __typename }} # {}", "x".repeat(MAX_KEPT));
        assert!(matches!(
            store.resolve(persisted(&long, &sha(&long))),
            Resolved::Run { keep: None, .. }
        ));
    }
}
