//! "All Variable Usages Are Allowed" (the GraphQL spec, section 5.8.5),
//! checked by us: async-graphql 7.2's rule never sees a variable, because
//! its visitor combinator (`VisitorCons`) does not pass `enter_input_value`
//! on to the rules it joins, so `query($x: [String]) { verifyToken(token:
//! $x) { valid } }` with `{"x": "abc"}` ran the resolver (graphql-js refuses
//! the document whatever the value). No upstream issue was found for it:
//! see `VisitorCons` in async-graphql's `src/validation/visitor.rs`.
//!
//! The check depends on the document and the schema alone, so it runs once
//! per document text (kept with it in the parse cache).

use std::collections::{HashMap, HashSet};

use async_graphql::parser::types::{
    BaseType, DocumentOperations, ExecutableDocument, OperationType, Selection, SelectionSet,
    ServiceDocument, Type, TypeKind, TypeSystemDefinition, VariableDefinition,
};
use async_graphql::{Name, Pos, Positioned, ServerError};
use async_graphql_value::{ConstValue, Value};

/// The introspection fields that take arguments, and the types between
/// them (the SDL leaves introspection out).
const INTROSPECTION: &str = "
type __Schema { types: [__Type!]! queryType: __Type! mutationType: __Type
  subscriptionType: __Type directives: [__Directive!]! }
type __Type { fields(includeDeprecated: Boolean = false): [__Field!]
  interfaces: [__Type!] possibleTypes: [__Type!] ofType: __Type
  enumValues(includeDeprecated: Boolean = false): [__EnumValue!]
  inputFields(includeDeprecated: Boolean = false): [__InputValue!] }
type __Field { args(includeDeprecated: Boolean = false): [__InputValue!]! type: __Type! }
type __InputValue { type: __Type! }
type __EnumValue { name: String! }
type __Directive { args(includeDeprecated: Boolean = false): [__InputValue!]! }
";

/// An argument or input field: its type, and whether it has a default.
struct Slot {
    ty: Type,
    has_default: bool,
}

/// A field's arguments and the named type it returns.
struct FieldShape {
    args: HashMap<Name, Slot>,
    returns: Name,
}

/// What the check needs of the schema: every field's arguments, every
/// input object's fields, every directive's arguments.
pub struct Positions {
    objects: HashMap<Name, HashMap<Name, FieldShape>>,
    inputs: HashMap<Name, HashMap<Name, Slot>>,
    directives: HashMap<Name, HashMap<Name, Slot>>,
    query: Name,
    mutation: Name,
}

fn slots(
    values: &[Positioned<async_graphql::parser::types::InputValueDefinition>],
) -> HashMap<Name, Slot> {
    values
        .iter()
        .map(|value| {
            let value = &value.node;
            let slot = Slot {
                ty: value.ty.node.clone(),
                has_default: value.default_value.is_some(),
            };
            (value.name.node.clone(), slot)
        })
        .collect()
}

fn named(ty: &Type) -> &Name {
    match &ty.base {
        BaseType::Named(name) => name,
        BaseType::List(item) => named(item),
    }
}

impl Positions {
    /// From the schema's SDL; `None` if it does not parse.
    pub fn from_sdl(sdl: &str) -> Option<Self> {
        let mut positions = Self {
            objects: HashMap::new(),
            inputs: HashMap::new(),
            directives: HashMap::new(),
            query: Name::new("Query"),
            mutation: Name::new("Mutation"),
        };
        // The SDL defines @include and @skip; introspection's roots go on
        // the query type, whatever its name.
        let roots = format!(
            "type {} {{ __schema: __Schema! __type(name: String!): __Type }}",
            positions.query
        );
        for sdl in [sdl, INTROSPECTION, &roots] {
            let document: ServiceDocument = async_graphql::parser::parse_schema(sdl).ok()?;
            positions.add(document);
        }
        Some(positions)
    }

    fn add(&mut self, document: ServiceDocument) {
        for definition in document.definitions {
            match definition {
                TypeSystemDefinition::Schema(schema) => {
                    if let Some(query) = &schema.node.query {
                        self.query = query.node.clone();
                    }
                    if let Some(mutation) = &schema.node.mutation {
                        self.mutation = mutation.node.clone();
                    }
                }
                TypeSystemDefinition::Type(ty) => {
                    let ty = ty.node;
                    let fields = match ty.kind {
                        TypeKind::Object(object) => object.fields,
                        TypeKind::Interface(interface) => interface.fields,
                        TypeKind::InputObject(input) => {
                            self.inputs.insert(ty.name.node, slots(&input.fields));
                            continue;
                        }
                        _ => continue,
                    };
                    let shapes = fields.into_iter().map(|field| {
                        let field = field.node;
                        let shape = FieldShape {
                            args: slots(&field.arguments),
                            returns: named(&field.ty.node).clone(),
                        };
                        (field.name.node, shape)
                    });
                    self.objects.entry(ty.name.node).or_default().extend(shapes);
                }
                TypeSystemDefinition::Directive(directive) => {
                    let directive = directive.node;
                    self.directives
                        .insert(directive.name.node, slots(&directive.arguments));
                }
            }
        }
    }

    /// The first variable of `document` used where its type is not allowed,
    /// as a validation error; `None` when every usage is allowed.
    pub fn misplaced(&self, document: &ExecutableDocument) -> Option<ServerError> {
        let operations: Vec<_> = match &document.operations {
            DocumentOperations::Single(op) => vec![op],
            DocumentOperations::Multiple(ops) => ops.values().collect(),
        };
        for operation in operations {
            let op = &operation.node;
            if op.variable_definitions.is_empty() {
                continue;
            }
            let root = match op.ty {
                OperationType::Query => &self.query,
                OperationType::Mutation => &self.mutation,
                OperationType::Subscription => continue,
            };
            let mut walk = Walk {
                positions: self,
                document,
                variables: &op.variable_definitions,
                visited: HashSet::new(),
            };
            let found = walk
                .directives(&op.directives)
                .or_else(|| walk.selection_set(root, &op.selection_set.node));
            if found.is_some() {
                return found;
            }
        }
        None
    }
}

/// One operation's walk over its selections (and the fragments it spreads).
struct Walk<'a> {
    positions: &'a Positions,
    document: &'a ExecutableDocument,
    variables: &'a [Positioned<VariableDefinition>],
    visited: HashSet<&'a Name>,
}

impl<'a> Walk<'a> {
    fn selection_set(&mut self, parent: &Name, set: &'a SelectionSet) -> Option<ServerError> {
        for item in &set.items {
            let found = match &item.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    let shape = self
                        .positions
                        .objects
                        .get(parent)
                        .and_then(|fields| fields.get(&field.name.node));
                    let mut found = self.directives(&field.directives);
                    if let Some(shape) = shape {
                        found = found
                            .or_else(|| self.arguments(&shape.args, &field.arguments))
                            .or_else(|| {
                                self.selection_set(&shape.returns, &field.selection_set.node)
                            });
                    }
                    found
                }
                Selection::InlineFragment(fragment) => {
                    let fragment = &fragment.node;
                    let on = fragment
                        .type_condition
                        .as_ref()
                        .map_or(parent, |condition| &condition.node.on.node);
                    self.directives(&fragment.directives)
                        .or_else(|| self.selection_set(on, &fragment.selection_set.node))
                }
                Selection::FragmentSpread(spread) => {
                    let name = &spread.node.fragment_name.node;
                    let found = self.directives(&spread.node.directives);
                    match self.document.fragments.get(name) {
                        Some(fragment) if found.is_none() && self.visited.insert(name) => {
                            let fragment = &fragment.node;
                            self.directives(&fragment.directives).or_else(|| {
                                self.selection_set(
                                    &fragment.type_condition.node.on.node,
                                    &fragment.selection_set.node,
                                )
                            })
                        }
                        _ => found,
                    }
                }
            };
            if found.is_some() {
                return found;
            }
        }
        None
    }

    fn directives(
        &mut self,
        directives: &'a [Positioned<async_graphql::parser::types::Directive>],
    ) -> Option<ServerError> {
        directives.iter().find_map(|directive| {
            let args = self.positions.directives.get(&directive.node.name.node)?;
            self.arguments(args, &directive.node.arguments)
        })
    }

    fn arguments(
        &self,
        slots: &HashMap<Name, Slot>,
        arguments: &[(Positioned<Name>, Positioned<Value>)],
    ) -> Option<ServerError> {
        arguments.iter().find_map(|(name, value)| {
            let slot = slots.get(&name.node)?;
            self.value(&value.node, &slot.ty, slot.has_default, value.pos)
        })
    }

    /// `value` in a position of type `expected`.
    fn value(
        &self,
        value: &Value,
        expected: &Type,
        has_default: bool,
        pos: Pos,
    ) -> Option<ServerError> {
        match value {
            Value::Variable(name) => {
                let definition = self
                    .variables
                    .iter()
                    .find(|definition| definition.node.name.node == *name)?;
                let declared = &definition.node.var_type.node;
                let defaulted = definition
                    .node
                    .default_value
                    .as_ref()
                    .is_some_and(|value| value.node != ConstValue::Null);
                if allowed(declared, defaulted, expected, has_default) {
                    return None;
                }
                // Both places, as graphql-js reports them: the definition, the usage.
                let mut error = ServerError::new(
                    format!(
                        "Variable \"${name}\" of type \"{declared}\" used in position expecting type \"{expected}\""
                    ),
                    Some(definition.pos),
                );
                error.locations.push(pos);
                Some(error)
            }
            Value::List(items) => match &expected.base {
                BaseType::List(item) => items
                    .iter()
                    .find_map(|value| self.value(value, item, false, pos)),
                // A list where one value is expected: another rule's refusal.
                BaseType::Named(_) => None,
            },
            Value::Object(fields) => {
                let BaseType::Named(input) = &expected.base else {
                    return None;
                };
                let slots = self.positions.inputs.get(input)?;
                fields.iter().find_map(|(name, value)| {
                    let slot = slots.get(name)?;
                    self.value(value, &slot.ty, slot.has_default, pos)
                })
            }
            _ => None,
        }
    }
}

/// Is a variable declared `declared` (with a non-null default or not)
/// allowed where `location` (with a default or not) is expected? The spec's
/// IsVariableUsageAllowed: a nullable variable fills a non-null position
/// only with a default on either side; then AreTypesCompatible below that.
fn allowed(declared: &Type, defaulted: bool, location: &Type, location_default: bool) -> bool {
    let nullable_into_non_null = declared.nullable && !location.nullable;
    if nullable_into_non_null && !defaulted && !location_default {
        return false;
    }
    same_shape(&declared.base, &location.base)
}

/// AreTypesCompatible: a nullable variable never fills a non-null position;
/// a non-null one fills either.
fn compatible(declared: &Type, location: &Type) -> bool {
    (location.nullable || !declared.nullable) && same_shape(&declared.base, &location.base)
}

/// The same named type, or lists of compatible items.
fn same_shape(declared: &BaseType, location: &BaseType) -> bool {
    match (declared, location) {
        (BaseType::List(declared), BaseType::List(location)) => compatible(declared, location),
        (BaseType::Named(declared), BaseType::Named(location)) => declared == location,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SDL: &str = "
        directive @include(if: Boolean!) on FIELD | FRAGMENT_SPREAD | INLINE_FRAGMENT
        directive @skip(if: Boolean!) on FIELD | FRAGMENT_SPREAD | INLINE_FRAGMENT
        type Query { one(text: String!): String  many(texts: [String!]): String
          nested(grid: [[Int]]): String  find(filter: Filter): String  page(first: Int = 20): String }
        input Filter { name: String  tags: [String!] }";

    fn check(query: &str) -> Option<String> {
        let positions = Positions::from_sdl(SDL).expect("the SDL parses");
        let document = async_graphql::parser::parse_query(query).expect("the query parses");
        positions.misplaced(&document).map(|err| err.message)
    }

    #[test]
    fn a_variable_of_another_shape_is_refused_in_every_position() {
        for query in [
            "query($x: [String]) { one(text: $x) }",
            "query($x: Int!) { one(text: $x) }",
            "query($x: String) { one(text: $x) }",
            "query($x: [String]) { find(filter: { name: $x }) }",
            "query($x: [String!]) { many(texts: [$x]) }",
            "query($x: [Int]) { nested(grid: [[$x]]) }",
            "query($x: [String]) { __type(name: $x) { name } }",
            "query($x: String) { one(text: \"a\") @include(if: $x) }",
            "query($x: [String]) { ...F } fragment F on Query { one(text: $x) }",
            "query($x: [String]) { ... on Query { find(filter: { tags: [$x] }) } }",
        ] {
            let message = check(query).unwrap_or_else(|| panic!("allowed: {query}"));
            assert!(message.starts_with("Variable \"$x\" of type"), "{message}");
        }
    }

    #[test]
    fn variables_of_an_allowed_type_pass() {
        for query in [
            "query($x: String!) { one(text: $x) }",
            "query($x: String = \"a\") { one(text: $x) }",
            "query($x: [String!]!) { many(texts: $x) }",
            "query($x: String!) { many(texts: [$x]) }",
            "query($x: Int) { nested(grid: [[$x]]) }",
            "query($x: [Int]) { nested(grid: [$x]) }",
            "query($x: Int) { page(first: $x) }",
            "query($x: [String!]) { find(filter: { tags: $x }) }",
            "query($x: Boolean!) { one(text: \"a\") @skip(if: $x) }",
            "query($x: String!) { __type(name: $x) { fields(includeDeprecated: true) { name } } }",
            "query($x: String!) { ...F ...F } fragment F on Query { one(text: $x) }",
        ] {
            assert_eq!(check(query), None, "{query}");
        }
    }
}
