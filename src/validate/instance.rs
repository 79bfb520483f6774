//! The spanned YAML tree read in place as a JSON Schema instance, so the
//! structural check needs no JSON copy of each file (the copy cost as much as
//! the check itself). Errors still carry plain JSON, built only for them.

use std::borrow::Cow;

use jsonschema::json::{Array, Json, Node as JsonNode, NodeIdentity, Object};
use jsonschema::JsonType;

use crate::dsl::node::{Entry, Node, Value};

/// The [`Node`] tree as jsonschema's instance representation.
pub struct Tree;

impl Json for Tree {
    type Node<'a> = &'a Node;
    type PreparedKey = String;
    type StringBuffer = Option<Node>;

    fn prepare_key(key: &str) -> String {
        key.to_owned()
    }

    fn with_string_node<T>(buffer: &mut Option<Node>, string: &str, f: impl FnOnce(&Node) -> T) -> T {
        let node = buffer.insert(Node { value: Value::String(string.to_owned()), span: Default::default() });
        f(node)
    }
}

impl<'a> JsonNode<'a, Tree> for &'a Node {
    type Object = &'a [Entry];
    type Array = &'a [Node];
    type Number = &'a serde_json::Number;

    fn as_object(&self) -> Option<&'a [Entry]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    fn as_array(&self) -> Option<&'a [Node]> {
        match &self.value {
            Value::Seq(items) => Some(items),
            _ => None,
        }
    }

    fn as_string(&self) -> Option<Cow<'a, str>> {
        match &self.value {
            Value::String(s) => Some(Cow::Borrowed(s)),
            _ => None,
        }
    }

    fn as_number(&self) -> Option<&'a serde_json::Number> {
        match &self.value {
            Value::Number(n) => Some(n),
            _ => None,
        }
    }

    fn as_boolean(&self) -> Option<bool> {
        self.as_bool()
    }

    fn is_null(&self) -> bool {
        matches!(self.value, Value::Null)
    }

    fn json_type(&self) -> JsonType {
        match self.value {
            Value::Null => JsonType::Null,
            Value::Bool(_) => JsonType::Boolean,
            Value::Number(_) => JsonType::Number,
            Value::String(_) => JsonType::String,
            Value::Seq(_) => JsonType::Array,
            Value::Map(_) => JsonType::Object,
        }
    }

    fn to_value(&self) -> Cow<'a, serde_json::Value> {
        Cow::Owned(self.to_json())
    }

    fn identity(&self) -> Option<NodeIdentity> {
        Some(NodeIdentity::new(std::ptr::from_ref::<Node>(*self) as usize))
    }
}

impl<'a> Object<'a, Tree> for &'a [Entry] {
    type Node = &'a Node;
    type MemberName = &'a str;
    type MembersIter = Members<'a>;

    fn len(&self) -> usize {
        <[Entry]>::len(self)
    }

    fn get(&self, key: &String) -> Option<&'a Node> {
        self.iter().find(|e| e.key == *key).map(|e| &e.value)
    }

    fn members(&self) -> Members<'a> {
        Members(self.iter())
    }
}

/// A mapping's keys and values, in the order written.
pub struct Members<'a>(std::slice::Iter<'a, Entry>);

impl<'a> Iterator for Members<'a> {
    type Item = (&'a str, &'a Node);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|e| (e.key.as_str(), &e.value))
    }
}

impl<'a> Array<'a, Tree> for &'a [Node] {
    type Node = &'a Node;
    type ElementsIter = std::slice::Iter<'a, Node>;

    fn len(&self) -> usize {
        <[Node]>::len(self)
    }

    fn elements(&self) -> std::slice::Iter<'a, Node> {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tree and its JSON copy get the same errors, at the same places.
    #[test]
    fn validates_like_its_json_copy() {
        let schema = serde_json::json!({
            "type": "object",
            "required": ["name", "steps"],
            "additionalProperties": false,
            "properties": {
                "name": {"type": "string", "pattern": "^[a-z]+$"},
                "steps": {"type": "array", "uniqueItems": true, "items": {"enum": [1, "a", null]}},
                "n": {"type": "integer", "minimum": 2},
                "m": {"propertyNames": {"maxLength": 2}, "additionalProperties": {"const": true}}
            }
        });
        let on_tree = jsonschema::options_for::<Tree>().build(&schema).expect("compiles");
        let on_json = jsonschema::validator_for(&schema).expect("compiles");
        let limits = crate::dsl::loader::LIMITS;
        for text in [
            "name: ab\nsteps: [1, a, ~]\nn: 3\nm: {ok: true}\n",
            "name: Ab1\nsteps: [1, 1, b]\nn: 1.5\nm: {long: false}\nx: 1\n",
            "steps: x\n",
            "[1]\n",
        ] {
            let tree = crate::dsl::yaml::parse(text, limits).expect("parses");
            let json = tree.to_json();
            let errors =
                |e: jsonschema::ErrorIterator| e.map(|e| format!("{} at {}", e, e.instance_path())).collect::<Vec<_>>();
            assert_eq!(errors(on_tree.iter_errors(&tree)), errors(on_json.iter_errors(&json)), "{text}");
            assert_eq!(on_tree.is_valid(&tree), on_json.is_valid(&json));
        }
    }
}
