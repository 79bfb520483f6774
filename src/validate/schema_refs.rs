//! How deep the `$ref`s of a workflow's `input:` schema go. The JSON Schema
//! compiler follows a chain of references by recursion, so a chain of
//! thousands would overflow the stack: the chain is measured here first, with
//! an explicit stack, and a schema over the bound is refused before it is
//! compiled.

use std::collections::HashMap;

use serde_json::Value as Json;

/// The longest chain of `$ref`s (a reference whose target holds another, and
/// so on) an `input:` schema may have. Real schemas stay in single figures.
pub(crate) const MAX_REF_CHAIN: usize = 32;

/// The most `$ref`s an `input:` schema may hold at all. Chains are measured
/// through `#/...` pointers; references by `$anchor`, `$id` or a
/// percent-encoded pointer are not followed here, so their number is bounded
/// instead, and no chain of them can be longer.
pub(crate) const MAX_REFS: usize = 256;

/// A chain of references longer than [`MAX_REF_CHAIN`]: where it starts (the
/// path of segments to its first `$ref`, for the diagnostic) and how long it
/// is at least.
#[derive(Debug, PartialEq)]
pub(crate) struct TooDeep {
    pub path: Vec<String>,
    pub length: usize,
    /// The schema has too many references at all (`length` of them), not one chain too long.
    pub count: bool,
}

/// Checks that no chain of local `$ref`s in `schema` is longer than
/// [`MAX_REF_CHAIN`]. A reference back into its own chain (a recursive schema)
/// ends the chain: the compiler resolves those lazily.
pub(crate) fn check_ref_chains(schema: &Json) -> Result<(), TooDeep> {
    let refs = collect_refs(schema);
    if refs.len() > MAX_REFS {
        let first = refs.iter().min_by_key(|r| r.segments.len()).map(|r| r.segments.clone()).unwrap_or_default();
        return Err(TooDeep { path: first, length: refs.len(), count: true });
    }
    let by_path: HashMap<&str, usize> = refs.iter().enumerate().map(|(i, r)| (r.pointer.as_str(), i)).collect();
    // For each reference, the references its target holds (once per target).
    let mut inner: HashMap<&str, Vec<usize>> = HashMap::new();
    for r in &refs {
        if let Some(target) = r.target.as_deref() {
            inner.entry(target).or_insert_with(|| refs_under(schema, target, &by_path));
        }
    }
    let children = |i: usize| refs[i].target.as_deref().and_then(|t| inner.get(t)).map_or(&[][..], Vec::as_slice);
    let longest = longest_chains(refs.len(), children);
    match longest.iter().enumerate().max_by_key(|(_, &l)| l) {
        Some((i, &length)) if length > MAX_REF_CHAIN => {
            Err(TooDeep { path: refs[i].segments.clone(), length, count: false })
        }
        _ => Ok(()),
    }
}

/// One `$ref` of the schema.
struct Ref {
    /// The JSON pointer of the object holding it.
    pointer: String,
    /// The same place as segments.
    segments: Vec<String>,
    /// The JSON pointer it refers to, when it is local (`#...`).
    target: Option<String>,
}

/// Every `$ref` of the schema, by an explicit stack.
fn collect_refs(schema: &Json) -> Vec<Ref> {
    let mut out = Vec::new();
    let mut stack: Vec<(&Json, Vec<String>)> = vec![(schema, Vec::new())];
    while let Some((value, segments)) = stack.pop() {
        match value {
            Json::Object(map) => {
                if let Some(Json::String(to)) = map.get("$ref") {
                    let target = to.strip_prefix('#').map(str::to_owned);
                    out.push(Ref { pointer: pointer(&segments), segments: segments.clone(), target });
                }
                for (key, child) in map {
                    let mut path = segments.clone();
                    path.push(key.clone());
                    stack.push((child, path));
                }
            }
            Json::Array(list) => {
                for (i, child) in list.iter().enumerate() {
                    let mut path = segments.clone();
                    path.push(i.to_string());
                    stack.push((child, path));
                }
            }
            _ => {}
        }
    }
    out
}

/// The references at or under `target` (a JSON pointer into `schema`).
fn refs_under(schema: &Json, target: &str, by_path: &HashMap<&str, usize>) -> Vec<usize> {
    let Some(root) = schema.pointer(target) else { return Vec::new() };
    let mut found = Vec::new();
    let mut stack: Vec<(&Json, String)> = vec![(root, target.to_owned())];
    while let Some((value, at)) = stack.pop() {
        if let Some(&i) = by_path.get(at.as_str()) {
            found.push(i);
        }
        match value {
            Json::Object(map) => stack.extend(map.iter().map(|(k, v)| (v, format!("{at}/{}", escape(k))))),
            Json::Array(list) => stack.extend(list.iter().enumerate().map(|(i, v)| (v, format!("{at}/{i}")))),
            _ => {}
        }
    }
    found
}

/// For each of `n` nodes, the number of nodes on the longest path starting
/// there along `children`; an edge back onto the path being walked is left
/// out. Post-order on an explicit stack, each node finished once.
fn longest_chains<'c>(n: usize, children: impl Fn(usize) -> &'c [usize]) -> Vec<usize> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    let mut mark = vec![Mark::New; n];
    let mut length = vec![0usize; n];
    for start in 0..n {
        if mark[start] != Mark::New {
            continue;
        }
        let mut path: Vec<(usize, usize)> = vec![(start, 0)];
        mark[start] = Mark::OnPath;
        while let Some(&mut (node, ref mut next)) = path.last_mut() {
            match children(node).get(*next) {
                Some(&child) => {
                    *next += 1;
                    if mark[child] == Mark::New {
                        mark[child] = Mark::OnPath;
                        path.push((child, 0));
                    }
                }
                None => {
                    let below = children(node).iter().filter(|&&c| mark[c] == Mark::Done).map(|&c| length[c]);
                    length[node] = 1 + below.max().unwrap_or(0);
                    mark[node] = Mark::Done;
                    path.pop();
                }
            }
        }
    }
    length
}

fn pointer(segments: &[String]) -> String {
    segments.iter().map(|s| format!("/{}", escape(s))).collect()
}

/// A key as a JSON pointer segment.
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chain(n: usize) -> Json {
        let mut defs = serde_json::Map::new();
        for i in 0..n {
            let next =
                if i + 1 < n { json!({"$ref": format!("#/$defs/a{}", i + 1)}) } else { json!({"type": "object"}) };
            defs.insert(format!("a{i}"), next);
        }
        json!({"$ref": "#/$defs/a0", "$defs": defs})
    }

    #[test]
    fn a_chain_within_the_bound_passes_and_one_past_it_is_refused_at_its_start() {
        assert_eq!(check_ref_chains(&chain(MAX_REF_CHAIN - 1)), Ok(()));
        let err = check_ref_chains(&chain(100)).unwrap_err();
        assert_eq!((err.path, err.length, err.count), (Vec::<String>::new(), 100, false));
        let err = check_ref_chains(&chain(25_000)).unwrap_err();
        assert_eq!((err.length, err.count), (25_000, true));
    }

    #[test]
    fn references_by_anchor_or_encoded_pointer_are_bounded_by_their_number() {
        for spell in [|i: usize| format!("#a{i}"), |i: usize| format!("#/%24defs/a{i}")] {
            let mut defs = serde_json::Map::new();
            for i in 0..1000 {
                defs.insert(format!("a{i}"), json!({"$anchor": format!("a{i}"), "$ref": spell(i + 1)}));
            }
            let err = check_ref_chains(&json!({"$ref": spell(0), "$defs": defs})).unwrap_err();
            assert!(err.count && err.length == 1001, "{err:?}");
        }
    }

    #[test]
    fn a_recursive_schema_is_not_a_long_chain() {
        let tree = json!({
            "$defs": {"node": {"type": "object", "properties": {"children": {"type": "array", "items": {"$ref": "#/$defs/node"}}}}},
            "$ref": "#/$defs/node"
        });
        assert_eq!(check_ref_chains(&tree), Ok(()));
    }

    #[test]
    fn refs_nested_inside_targets_count_as_one_chain() {
        // a0's target holds a ref deep inside it, to a1, and so on.
        let mut defs = serde_json::Map::new();
        for i in 0..40 {
            let inner = json!({"properties": {"x": {"items": {"$ref": format!("#/$defs/a{}", i + 1)}}}});
            defs.insert(format!("a{i}"), inner);
        }
        defs.insert("a40".into(), json!({"type": "string"}));
        let err = check_ref_chains(&json!({"$defs": defs})).unwrap_err();
        assert_eq!(err.length, 40);
    }
}
