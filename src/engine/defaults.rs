//! `default:` values of a workflow's `input:` schema, filled into a run's input
//! before the run starts, as JSON Schema means them (DSL.md A5): a property
//! absent from an object that is present gets its default, at any depth and in
//! every item of a list; an absent object is made only when it has a default of
//! its own. Local `$ref`s are followed (the validator bounds them).

use serde_json::Value as Json;

/// Nesting followed at most (the validator bounds input schemas well below).
const MAX_DEPTH: usize = 64;
/// `$ref`s followed at most to reach one schema.
const MAX_REFS: usize = 32;

/// Fills `value` with the defaults `schema` gives.
pub(crate) fn fill(schema: &Json, value: &mut Json) {
    fill_at(schema, schema, value, 0);
}

fn fill_at(root: &Json, schema: &Json, value: &mut Json, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    let schema = resolve(root, schema);
    if let (Some(properties), Json::Object(fields)) = (schema.get("properties").and_then(Json::as_object), &mut *value)
    {
        for (key, sub) in properties {
            if !fields.contains_key(key) {
                if let Some(default) = resolve(root, sub).get("default") {
                    fields.insert(key.clone(), default.clone());
                }
            }
            if let Some(field) = fields.get_mut(key) {
                fill_at(root, sub, field, depth + 1);
            }
        }
    }
    if let (Some(items), Json::Array(list)) = (schema.get("items"), value) {
        for item in list {
            fill_at(root, items, item, depth + 1);
        }
    }
}

/// The schema a local `$ref` points at (itself when it has none).
fn resolve<'a>(root: &'a Json, schema: &'a Json) -> &'a Json {
    let mut at = schema;
    for _ in 0..MAX_REFS {
        let target = at.get("$ref").and_then(Json::as_str).and_then(|r| r.strip_prefix('#'));
        match target.and_then(|pointer| root.pointer(pointer)) {
            Some(next) => at = next,
            None => break,
        }
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_fill_absent_fields_at_any_depth_and_in_every_item() {
        let schema = json!({
            "type": "object",
            "properties": {
                "currency": { "type": "string", "default": "EUR" },
                "gift": { "type": "boolean", "default": false },
                "shipping": { "type": "object", "properties": { "speed": { "default": "standard" } } },
                "wrap": { "type": "object", "default": {}, "properties": { "paper": { "default": "plain" } } },
                "items": { "type": "array", "items": { "$ref": "#/$defs/item" } }
            },
            "$defs": { "item": { "type": "object", "properties": { "quantity": { "default": 1 } } } }
        });
        let mut input =
            json!({ "gift": true, "shipping": {}, "items": [{ "sku": "A" }, { "sku": "B", "quantity": 3 }] });
        fill(&schema, &mut input);
        assert_eq!(
            input,
            json!({
                "currency": "EUR",
                "gift": true,
                "shipping": { "speed": "standard" },
                "wrap": { "paper": "plain" },
                "items": [{ "sku": "A", "quantity": 1 }, { "sku": "B", "quantity": 3 }]
            })
        );
        let mut bare = json!({});
        fill(&json!({ "properties": { "shipping": { "properties": { "speed": { "default": "x" } } } } }), &mut bare);
        assert_eq!(bare, json!({}), "an absent object without a default of its own is not made");
    }
}
