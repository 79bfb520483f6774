//! Known secret values, and their masking (DSL.md A6): a secret's value never
//! reaches the store, a log line, a run record or an API answer, even when an
//! action returns it or a template copies it into an output. Every place it
//! would appear holds [`MASK`] instead, as CI systems mask theirs.
//!
//! The values known are those of every `SAGAFLOW_SECRET_*` variable and of
//! `SAGAFLOW_API_TOKEN`, read once, and any value registered when a secret is
//! resolved later (a variable set after the start).

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{OnceLock, RwLock};

use serde_json::Value as Json;

/// What stands in place of a secret's value.
pub(crate) const MASK: &str = "***";

/// Values shorter than this are not masked: a one- or two-letter "secret" would
/// turn every such letter of every record into `***`.
pub(crate) const MIN_MASKED_LEN: usize = 4;

/// The environment variables whose values are secrets.
pub(crate) const SECRET_PREFIX: &str = "SAGAFLOW_SECRET_";
const API_TOKEN: &str = "SAGAFLOW_API_TOKEN";

struct Known {
    /// Longest first, so a secret that holds another is masked whole.
    values: RwLock<Vec<String>>,
    any: AtomicBool,
}

fn known() -> &'static Known {
    static KNOWN: OnceLock<Known> = OnceLock::new();
    KNOWN.get_or_init(|| {
        let known = Known { values: RwLock::new(Vec::new()), any: AtomicBool::new(false) };
        for (name, value) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if name.starts_with(SECRET_PREFIX) || name == API_TOKEN {
                add(&known, value.to_string_lossy().into_owned());
            }
        }
        known
    })
}

fn add(known: &Known, value: String) {
    if value.chars().count() < MIN_MASKED_LEN {
        return;
    }
    let mut values = known.values.write().unwrap_or_else(|p| p.into_inner());
    // As written inside JSON and by `{:?}` too (a log line in JSON, a debug field):
    // a secret with a quote, a backslash or a control character is escaped there.
    let escaped = serde_json::to_string(&value).unwrap_or_default();
    let debugged = format!("{value:?}");
    let forms = [escaped.trim_matches('"').to_owned(), debugged.trim_matches('"').to_owned(), value];
    for form in forms {
        if !values.contains(&form) {
            values.push(form);
        }
    }
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    known.any.store(true, Ordering::Release);
}

/// Makes a value a known secret (one read from the environment after the start).
pub(crate) fn register(value: &str) {
    let known = known();
    if !known.values.read().unwrap_or_else(|p| p.into_inner()).iter().any(|v| v == value) {
        add(known, value.to_owned());
    }
}

/// The value of the secret `name` (`SAGAFLOW_SECRET_<name>`), registered for masking.
pub(crate) fn read(name: &str) -> Option<String> {
    let value = std::env::var(format!("{SECRET_PREFIX}{name}")).ok()?;
    register(&value);
    Some(value)
}

/// The values of the named secrets that are set (each registered for masking).
pub(crate) fn values(names: &[String]) -> std::collections::BTreeMap<String, String> {
    names.iter().filter_map(|name| Some((name.clone(), read(name)?))).collect()
}

/// Whether any secret is known (when none is, masking costs nothing).
pub(crate) fn any() -> bool {
    known().any.load(Ordering::Acquire)
}

/// The text with every known secret's value replaced by [`MASK`].
pub(crate) fn mask_str(text: &str) -> Cow<'_, str> {
    if !any() {
        return Cow::Borrowed(text);
    }
    let values = known().values.read().unwrap_or_else(|p| p.into_inner());
    let mut out = Cow::Borrowed(text);
    for value in values.iter() {
        if out.contains(value.as_str()) {
            out = Cow::Owned(out.replace(value.as_str(), MASK));
        }
    }
    out
}

/// Masks a string in place; answers whether it changed.
pub(crate) fn mask_string(text: &mut String) -> bool {
    match mask_str(text) {
        Cow::Borrowed(_) => false,
        Cow::Owned(masked) => {
            *text = masked;
            true
        }
    }
}

/// Masks every string (and object key) inside a JSON value, by an explicit stack.
pub(crate) fn mask_json(value: &mut Json) {
    if !any() {
        return;
    }
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Json::String(s) => {
                mask_string(s);
            }
            Json::Array(items) => stack.extend(items.iter_mut()),
            Json::Object(map) => {
                if map.keys().any(|k| matches!(mask_str(k), Cow::Owned(_))) {
                    let entries = std::mem::take(map);
                    *map = entries.into_iter().map(|(k, v)| (mask_str(&k).into_owned(), v)).collect();
                }
                stack.extend(map.values_mut());
            }
            _ => {}
        }
    }
}

/// A writer that masks what passes through it (the log's): each log line is
/// one write, so a secret never straddles two.
pub(crate) struct Masked<W>(pub W);

impl<W: std::io::Write> std::io::Write for Masked<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if !any() {
            return self.0.write(buf);
        }
        let text = String::from_utf8_lossy(buf);
        self.0.write_all(mask_str(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_string_and_key_holding_a_secret_is_masked_and_short_values_are_not_secrets() {
        register("s3cret-value-for-masking");
        register("ab");
        let mut v = json!({
            "token": "Bearer s3cret-value-for-masking",
            "s3cret-value-for-masking": [1, {"deep": ["x s3cret-value-for-masking y"]}],
            "plain": "ab cd",
        });
        mask_json(&mut v);
        assert_eq!(v, json!({"token": "Bearer ***", "***": [1, {"deep": ["x *** y"]}], "plain": "ab cd"}));
        assert_eq!(mask_str("no secret here"), Cow::Borrowed("no secret here"));
        let mut out = Vec::new();
        std::io::Write::write_all(&mut Masked(&mut out), b"level=INFO key=s3cret-value-for-masking\n").ok();
        assert_eq!(String::from_utf8_lossy(&out), "level=INFO key=***\n");
    }

    #[test]
    fn a_secret_is_masked_where_json_or_debug_output_escapes_it() {
        register("quo\"te\\back-secret");
        let line = serde_json::json!({"fields": {"message": "got quo\"te\\back-secret"}}).to_string();
        assert_eq!(mask_str(&line), r#"{"fields":{"message":"got ***"}}"#);
        assert_eq!(mask_str(&format!("{:?}", "got quo\"te\\back-secret")), "\"got ***\"");
    }
}
