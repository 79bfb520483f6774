//! How names of the language are written: event types.

/// An event type (`order.paid`): a lower-case letter, then lower-case letters,
/// digits, `_`, `.` and `-`. The JSON Schema of `event.*` actions says the same
/// as [`is_event_type`].
pub(crate) const EVENT_TYPE_PATTERN: &str = "^[a-z][a-z0-9_.-]*$";

/// The longest event type.
pub(crate) const MAX_EVENT_TYPE: usize = 128;

/// Whether `kind` is an event type as [`EVENT_TYPE_PATTERN`] writes it, within
/// [`MAX_EVENT_TYPE`] characters.
pub(crate) fn is_event_type(kind: &str) -> bool {
    let mut chars = kind.chars();
    let first = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'));
    first && rest && kind.len() <= MAX_EVENT_TYPE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_and_the_pattern_agree() {
        let pattern =
            jsonschema::validator_for(&serde_json::json!({ "type": "string", "pattern": EVENT_TYPE_PATTERN }))
                .unwrap_or_else(|e| panic!("{e}"));
        for kind in ["order.paid", "a", "user-created_2", "Order.paid", "1st", "", "a b", "a/b", "é", "a.*"] {
            assert_eq!(is_event_type(kind), pattern.is_valid(&serde_json::json!(kind)), "{kind:?}");
        }
        assert!(!is_event_type(&"a".repeat(MAX_EVENT_TYPE + 1)));
    }
}
