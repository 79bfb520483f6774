//! What the sandbox holds: stock reserved, money held or charged, orders open,
//! accounts, seats, enrolments, tokens held. A run's *leak* is a holding that
//! grew from before the run to after it. Mail, events, catalog and ERP upserts
//! are not holdings: they are messages, or meant to stay.

use std::collections::BTreeMap;

use serde_json::Value as Json;

/// One holding: how much (units, cents, tokens, or 1) and what it is, in words.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Holding {
    pub amount: u64,
    pub what: String,
}

/// Every holding of a sandbox state (`Sandbox::show`), by `service/kind/id`.
pub(crate) fn holdings(state: &Json) -> BTreeMap<String, Holding> {
    let mut out = BTreeMap::new();
    let Some(services) = state.as_object() else { return out };
    for (service, kinds) in services {
        for (kind, records) in kinds.as_object().into_iter().flatten() {
            for (i, record) in records.as_array().into_iter().flatten().enumerate() {
                if let Some(h) = holding(service, kind, record) {
                    out.insert(format!("{service}/{kind}/{}", id(record).unwrap_or_else(|| i.to_string())), h);
                }
            }
        }
    }
    out
}

/// How many records of each `service/kind` a state has: two runs that did
/// the same things have the same counts.
pub(crate) fn counts(state: &Json) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for (service, kinds) in state.as_object().into_iter().flatten() {
        for (kind, records) in kinds.as_object().into_iter().flatten() {
            out.insert(format!("{service}/{kind}"), records.as_array().map_or(0, Vec::len));
        }
    }
    out
}

/// What grew from `before` to `after`, in words.
pub(crate) fn leaks(before: &BTreeMap<String, Holding>, after: &BTreeMap<String, Holding>) -> Vec<String> {
    after
        .iter()
        .filter(|(key, h)| h.amount > before.get(*key).map_or(0, |b| b.amount))
        .map(|(_, h)| h.what.clone())
        .collect()
}

fn id(record: &Json) -> Option<String> {
    let fields = ["reservation_id", "payment_id", "seat_id", "enrolment_id", "order_id", "user_id"];
    fields.iter().find_map(|f| record.get(*f).and_then(Json::as_str)).map(str::to_owned)
}

fn text(record: &Json, field: &str) -> String {
    match record.get(field) {
        Some(Json::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

fn number(record: &Json, field: &str) -> u64 {
    record.get(field).and_then(Json::as_u64).unwrap_or(0)
}

fn holding(service: &str, kind: &str, r: &Json) -> Option<Holding> {
    let h = |amount: u64, what: String| (amount > 0).then_some(Holding { amount, what });
    let status = text(r, "status");
    match (service, kind) {
        ("inventory", "reservation") if r.get("released") != Some(&Json::Bool(true)) => {
            let (q, sku, id) = (number(r, "quantity"), text(r, "sku"), text(r, "reservation_id"));
            h(q, format!("stock still reserved: {q} x {sku} ({id})"))
        }
        ("payments", "payment") => {
            let id = text(r, "payment_id");
            match status.as_str() {
                "authorized" => h(
                    number(r, "amount_cents"),
                    format!("money still held: {} cents ({id})", number(r, "amount_cents")),
                ),
                "voided" => None,
                _ => h(
                    number(r, "refundable_cents"),
                    format!("money still charged: {} cents ({id})", number(r, "refundable_cents")),
                ),
            }
        }
        ("orders", "order") if status != "cancelled" => {
            h(1, format!("order still open: {} ({status})", text(r, "order_id")))
        }
        ("users", "user") => h(1, format!("account still there: {} ({})", text(r, "user_id"), text(r, "email"))),
        ("courses", "seat") if r.get("released") != Some(&Json::Bool(true)) => {
            h(1, format!("seat still taken: {} of {}", text(r, "seat_id"), text(r, "course_id")))
        }
        ("courses", "enrolment") if status == "active" => {
            let tracked = r.get("progress").is_some_and(|p| !p.is_null());
            let what = format!(
                "still enrolled: {} in {}{}",
                text(r, "user_id"),
                text(r, "course_id"),
                if tracked { ", progress tracked" } else { "" }
            );
            h(1 + u64::from(tracked), what)
        }
        ("ai", "hold") if status == "held" => h(
            number(r, "tokens"),
            format!("tokens still held: {} ({})", number(r, "tokens"), text(r, "reservation_id")),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_leak_is_a_holding_that_grew() {
        let before = json!({ "inventory": { "reservation": [] }, "payments": { "payment": [
            { "payment_id": "pay-1001", "status": "captured", "refundable_cents": 6298 } ] } });
        let after = json!({ "inventory": { "reservation": [
                { "reservation_id": "res-1", "sku": "MUG-001", "quantity": 2, "released": false },
                { "reservation_id": "res-2", "sku": "BOOK-001", "quantity": 1, "released": true } ] },
            "payments": { "payment": [
                { "payment_id": "pay-1001", "status": "partially_refunded", "refundable_cents": 4999 },
                { "payment_id": "pay-1", "status": "refunded", "refundable_cents": 0 } ] } });
        let leaks = leaks(&holdings(&before), &holdings(&after));
        assert_eq!(leaks, vec!["stock still reserved: 2 x MUG-001 (res-1)"], "a refund is no leak, a release neither");
    }
}
