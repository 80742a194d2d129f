//! Limits checked around the parser, which async-graphql's own limits can't
//! cover: they run on a parsed document, and parsing itself recurses.
//!
//! - **Nesting**, before the parser: a 4 KiB document of lists nested 1,500
//!   deep (in an argument, a directive, a variable default, anywhere) would
//!   overflow a worker's stack inside the recursive parser and abort the
//!   process. The text is scanned once for how deep its brackets nest, with
//!   strings and comments skipped, and refused past [`MAX_NESTING`].
//! - **Fields**, after the parser: async-graphql's complexity count skips
//!   `__typename`, so a document of thousands of aliased `__typename`s passed
//!   the limit. Here every field counts, fragments expanded.
//!
//! Both run inside the parse cache (see `pipeline`): a kept document has
//! passed them, and a refused one is never kept.

use std::collections::HashMap;

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, FragmentDefinition, Selection, SelectionSet,
};
use async_graphql::{Name, Positioned, ServerError, ServerResult};

use super::MAX_COMPLEXITY;
use crate::error::code;

/// Deepest bracket nesting (`{`, `[`, `(` of any mix) a document may have.
/// A document within `MAX_DEPTH` needs at most 17 levels of selections,
/// plus arguments; the standard introspection query needs 12. The parser
/// crashed near 1,500, so this leaves it a wide margin, in debug builds too.
pub const MAX_NESTING: usize = 64;

/// The check before the parser: refused past [`MAX_NESTING`].
pub(super) fn check_text(query: &str) -> ServerResult<()> {
    if nesting_exceeds(query, MAX_NESTING) {
        return Err(ServerError::new(
            format!("The document nests brackets deeper than {MAX_NESTING} levels"),
            None,
        ));
    }
    Ok(())
}

/// The check after the parser: every field counted.
pub(super) fn check_document(document: &ExecutableDocument) -> ServerResult<()> {
    if fields_exceed(document, MAX_COMPLEXITY) {
        // The same refusal as async-graphql's complexity limit.
        return Err(super::request_error(
            format!(
                "An operation selects more than {MAX_COMPLEXITY} fields (aliases, __typename and fragment spreads count)"
            ),
            code::GRAPHQL_VALIDATION_FAILED,
        ));
    }
    Ok(())
}

/// Does `text`, read as GraphQL, nest `{ [ (` deeper than `limit`? Brackets
/// inside strings, block strings and comments don't count. Unbalanced or
/// garbled text is the parser's to refuse; this only bounds the depth.
pub fn nesting_exceeds(text: &str, limit: usize) -> bool {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                while i < bytes.len() && !matches!(bytes[i], b'\n' | b'\r') {
                    i += 1;
                }
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                i += 3;
                // A block string ends at the first `"""` not escaped as `\"""`.
                while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                    i += if bytes[i..].starts_with(b"\\\"\"\"") {
                        4
                    } else {
                        1
                    };
                }
                i += 2;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && !matches!(bytes[i], b'"' | b'\n' | b'\r') {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' | b'[' | b'(' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    false
}

/// Does any operation of `document` select more than `limit` fields and
/// fragment spreads, counting `__typename` and expanding fragments? Counting
/// stops at the limit. A fragment already being expanded is not expanded
/// again (that cycle is validation's to refuse), and spreads chained deeper
/// than [`MAX_NESTING`] count as too many.
pub fn fields_exceed(document: &ExecutableDocument, limit: usize) -> bool {
    let counter = FieldCounter {
        fragments: &document.fragments,
        limit,
    };
    match &document.operations {
        DocumentOperations::Single(op) => counter.exceeds(&op.node.selection_set),
        DocumentOperations::Multiple(ops) => ops
            .values()
            .any(|op| counter.exceeds(&op.node.selection_set)),
    }
}

struct FieldCounter<'a> {
    fragments: &'a HashMap<Name, Positioned<FragmentDefinition>>,
    limit: usize,
}

/// Past the limit, or too deep.
struct Exceeded;

impl<'a> FieldCounter<'a> {
    fn exceeds(&self, set: &'a Positioned<SelectionSet>) -> bool {
        let mut count = 0;
        let mut path = Vec::new();
        self.count(set, &mut path, &mut count).is_err()
    }

    /// Adds what `set` selects to `count`. `path` holds what is being
    /// expanded: a fragment's name, or `None` for a field or inline fragment.
    fn count(
        &self,
        set: &'a Positioned<SelectionSet>,
        path: &mut Vec<Option<&'a Name>>,
        count: &mut usize,
    ) -> Result<(), Exceeded> {
        if path.len() > MAX_NESTING {
            return Err(Exceeded);
        }
        for selection in &set.node.items {
            *count += 1;
            if *count > self.limit {
                return Err(Exceeded);
            }
            let (name, inner) = match &selection.node {
                Selection::Field(field) => (None, &field.node.selection_set),
                Selection::InlineFragment(fragment) => (None, &fragment.node.selection_set),
                Selection::FragmentSpread(spread) => {
                    let name = &spread.node.fragment_name.node;
                    // Unknown fragments and cycles are validation's to report.
                    match self.fragments.get(name) {
                        Some(fragment) if !path.contains(&Some(name)) => {
                            (Some(name), &fragment.node.selection_set)
                        }
                        _ => continue,
                    }
                }
            };
            path.push(name);
            let counted = self.count(inner, path, count);
            path.pop();
            counted?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::parser::parse_query;

    use super::*;

    #[test]
    fn nesting_counts_brackets_of_every_kind() {
        assert!(!nesting_exceeds("{ a(x: [{b: [1]}]) { c } }", 5));
        assert!(nesting_exceeds("{ a(x: [{b: [1]}]) { c } }", 4));
        let deep = format!(
            "{{ verifyToken(token: {}1{}) {{ valid }} }}",
            "[".repeat(1500),
            "]".repeat(1500)
        );
        assert!(nesting_exceeds(&deep, MAX_NESTING));
        // Closing brackets without openers never go below zero.
        assert!(!nesting_exceeds(&"]".repeat(10_000), 1));
        assert!(nesting_exceeds(&format!("{}{}", "]".repeat(100), "[[["), 2));
    }

    #[test]
    fn brackets_in_strings_and_comments_do_not_count() {
        let many = "[".repeat(1000);
        for text in [
            format!("{{ verifyToken(token: \"{many}\") {{ valid }} }}"),
            format!("{{ verifyToken(token: \"\\\"{many}\") {{ valid }} }}"),
            format!("{{ verifyToken(token: \"\"\"{many}\\\"\"\"{many}\"\"\") {{ valid }} }}"),
            format!("# {many}\n{{ __typename }}"),
        ] {
            assert!(!nesting_exceeds(&text, 2), "{text}");
        }
        // A string ends at a line break: what follows counts again.
        assert!(nesting_exceeds(&format!("\"abc\n{many}"), 2));
    }

    #[test]
    fn every_field_counts_with_fragments_expanded() {
        let typenames: String = (0..10).map(|i| format!("t{i}: __typename ")).collect();
        let doc = parse_query(format!("{{ {typenames} }}")).unwrap();
        assert!(!fields_exceed(&doc, 10));
        assert!(fields_exceed(&doc, 9));

        // Two spreads, each three fields and one below: ten selections.
        let doc = parse_query(
            "query { ...F ...F } fragment F on Query { a: __typename b: __typename me { id } }",
        )
        .unwrap();
        assert!(!fields_exceed(&doc, 10));
        assert!(fields_exceed(&doc, 9));

        // A cycle is left to validation; it ends neither the count nor the stack.
        let doc = parse_query("{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }")
            .unwrap();
        assert!(!fields_exceed(&doc, 3));
        assert!(fields_exceed(&doc, 2));

        // Spreads of spreads with no field in them still count: no 2^40 walk.
        let chain: String = (0..40)
            .map(|i| format!("fragment F{i} on Query {{ ...F{n} ...F{n} }} ", n = i + 1))
            .collect();
        let doc = parse_query(format!("{{ ...F0 }} {chain}")).unwrap();
        assert!(fields_exceed(&doc, MAX_COMPLEXITY));
    }
}
