//! The sandbox's invariants, on sled on disk, under calls from many threads at
//! once, and its idempotency by key.

use std::sync::Arc;

use serde_json::json;

use super::{Sandbox, Seed};
use crate::services::notifications::MailTemplates;
use crate::services::{ActionError, Ctx, ServiceFuture, Services};

struct Fixture {
    _dir: tempfile::TempDir,
    sandbox: Sandbox,
    services: Services,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let db = sled::open(dir.path()).unwrap_or_else(|e| panic!("sled: {e}"));
    let sandbox = Sandbox::open(db, &Seed::builtin(), false).unwrap_or_else(|e| panic!("{e}"));
    let services = sandbox.services(Arc::new(MailTemplates::builtin())).unwrap_or_else(|e| panic!("{e}"));
    Fixture { _dir: dir, sandbox, services }
}

/// Polls a sandbox future (always ready at once).
fn now<T>(f: ServiceFuture<T>) -> Result<T, ActionError> {
    let mut f = f;
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(r) => r,
        std::task::Poll::Pending => panic!("a sandbox call did not finish at once"),
    }
}

/// A typed request from JSON.
fn typed<T: serde::de::DeserializeOwned>(json: serde_json::Value) -> T {
    serde_json::from_value(json).unwrap_or_else(|e| panic!("{e}"))
}

fn ctx(key: &str) -> Ctx {
    Ctx::detached(key)
}

/// Runs `n` calls on as many threads at once; returns their results.
fn at_once<T: Send + 'static>(
    n: usize,
    call: impl Fn(usize) -> Result<T, ActionError> + Send + Sync + 'static,
) -> Vec<Result<T, ActionError>> {
    let call = Arc::new(call);
    let barrier = Arc::new(std::sync::Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (call, barrier) = (call.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                call(i)
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap_or_else(|_| panic!("a caller panicked"))).collect()
}

fn codes<T>(results: &[Result<T, ActionError>]) -> (usize, Vec<String>) {
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let errors = results.iter().filter_map(|r| r.as_ref().err().map(|e| e.code.to_string())).collect();
    (ok, errors)
}

fn state(f: &Fixture, service: &str, kind: &str) -> Vec<serde_json::Value> {
    let all = f.sandbox.show(Some(service)).unwrap_or_else(|e| panic!("{e}"));
    all[service][kind].as_array().cloned().unwrap_or_default()
}

#[test]
fn stock_is_never_overbooked_by_concurrent_reservations() {
    let f = fixture();
    let inventory = f.services.inventory.clone();
    let results = at_once(16, move |i| {
        let request = typed(json!({"sku": "SHIRT-M", "quantity": 1}));
        now(inventory.reserve(ctx(&format!("k{i}")), request))
    });
    let (ok, errors) = codes(&results);
    assert_eq!(ok, 3, "SHIRT-M has 3 in stock");
    assert!(errors.iter().all(|c| c == "out_of_stock"), "{errors:?}");
    let shirt = state(&f, "inventory", "product").into_iter().find(|p| p["sku"] == "SHIRT-M");
    assert_eq!(shirt.map(|p| p["reserved"].clone()), Some(json!(3)));
}

#[test]
fn a_repeated_key_reserves_once_and_returns_the_same_reservation() {
    let f = fixture();
    let reserve = |key: &str| {
        let request = typed(json!({"sku": "BOOK-002", "quantity": 4}));
        now(f.services.inventory.reserve(ctx(key), request)).unwrap_or_else(|e| panic!("{e:?}"))
    };
    let first = reserve("run-1:reserve");
    let again = reserve("run-1:reserve");
    assert_eq!(first.reservation_id, again.reservation_id);
    assert_eq!(again.available, 6);
    let other = reserve("run-2:reserve");
    assert_ne!(other.reservation_id, first.reservation_id);
    assert_eq!(other.available, 2);
    // Releasing twice (two keys) gives the stock back once.
    for key in ["a", "b"] {
        let request = typed(json!({"reservation_id": first.reservation_id}));
        now(f.services.inventory.release(ctx(key), request)).unwrap_or_else(|e| panic!("{e:?}"));
    }
    let book = state(&f, "inventory", "product").into_iter().find(|p| p["sku"] == "BOOK-002");
    assert_eq!(book.map(|p| p["reserved"].clone()), Some(json!(4)));
}

#[test]
fn refunds_never_exceed_the_charge_under_concurrency() {
    let f = fixture();
    let payments = f.services.payments.clone();
    let results = at_once(10, move |i| {
        let request = typed(json!({"payment_id": "pay-1001", "amount_cents": 1000}));
        now(payments.refund(ctx(&format!("r{i}")), request))
    });
    let (ok, errors) = codes(&results);
    assert_eq!(ok, 6, "6298 cents hold six refunds of 1000");
    assert!(errors.iter().all(|c| c == "refund_exceeds_charge"), "{errors:?}");
    let pay = state(&f, "payments", "payment").into_iter().find(|p| p["payment_id"] == "pay-1001");
    let pay = pay.unwrap_or_else(|| panic!("pay-1001"));
    assert_eq!((pay["refunded_cents"].clone(), pay["refundable_cents"].clone()), (json!(6000), json!(298)));
}

#[test]
fn a_seat_is_never_double_booked() {
    let f = fixture();
    let courses = f.services.courses.clone();
    let results = at_once(12, move |i| {
        let request = typed(json!({"course_id": "sagas-201", "user_id": format!("u{}", i % 6)}));
        now(courses.reserve_seat(ctx(&format!("s{i}")), request))
    });
    let (ok, errors) = codes(&results);
    assert_eq!(ok, 2, "sagas-201 has 2 seats");
    assert!(errors.iter().all(|c| c == "course_full" || c == "already_enrolled"), "{errors:?}");
    let course = state(&f, "courses", "course").into_iter().find(|c| c["course_id"] == "sagas-201");
    assert_eq!(course.map(|c| c["taken"].clone()), Some(json!(2)));
    let holders: Vec<_> = state(&f, "courses", "seat").iter().map(|s| s["user_id"].clone()).collect();
    assert_eq!(holders.len(), 2);
    assert_ne!(holders[0], holders[1], "one seat per user");
}

#[test]
fn quota_is_never_overdrawn() {
    let f = fixture();
    let ai = f.services.ai.clone();
    let results = at_once(10, move |i| {
        let request = typed(json!({"user_id": "usr-alan", "tokens": 10}));
        now(ai.reserve_quota(ctx(&format!("q{i}")), request))
    });
    let (ok, errors) = codes(&results);
    assert_eq!(ok, 5, "usr-alan's plan holds 50 tokens");
    assert!(errors.iter().all(|c| c == "quota_exceeded"), "{errors:?}");
    // Committing more than was held charges only what was held.
    let hold = results.into_iter().find_map(Result::ok).unwrap_or_else(|| panic!("a hold"));
    let request = typed(json!({"reservation_id": hold.reservation_id, "tokens_used": 999}));
    let settled = now(f.services.ai.commit_quota(ctx("c"), request)).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(settled.charged, 10);
    let account = state(&f, "ai", "account").into_iter().find(|a| a["user_id"] == "usr-alan");
    let account = account.unwrap_or_else(|| panic!("usr-alan"));
    assert_eq!((account["used"].clone(), account["reserved"].clone()), (json!(10), json!(40)));
}

#[test]
fn reset_brings_back_the_seed() {
    let f = fixture();
    let request = typed(json!({"sku": "POSTER-1", "quantity": 1}));
    now(f.services.inventory.reserve(ctx("k"), request)).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(state(&f, "inventory", "reservation").len(), 1);
    f.sandbox.reset(&Seed::builtin()).unwrap_or_else(|e| panic!("{e}"));
    assert!(state(&f, "inventory", "reservation").is_empty());
    // The key's memory went with the reset: the same key reserves anew.
    let request = typed(json!({"sku": "POSTER-1", "quantity": 1}));
    assert!(now(f.services.inventory.reserve(ctx("k"), request)).is_ok());
}

#[test]
fn vendor_feed_pages_cover_every_product_once() {
    let f = fixture();
    let mut skus = Vec::new();
    let mut page = Some(1);
    while let Some(p) = page {
        let request = typed(json!({"vendor_id": "acme", "page": p}));
        let got = now(f.services.vendor.fetch_products(ctx("v"), request)).unwrap_or_else(|e| panic!("{e:?}"));
        skus.extend(got.products.into_iter().map(|p| p.sku));
        page = got.next_page;
    }
    let unique: std::collections::BTreeSet<_> = skus.iter().collect();
    assert_eq!((skus.len(), unique.len()), (240, 240));
}

#[test]
fn notify_renders_the_template_and_lands_in_the_mailbox_once() {
    let f = fixture();
    let send = || {
        let request = typed(json!({"to": "usr-grace", "template": "welcome", "data": {"name": "Grace"}}));
        now(f.services.notify.send(ctx("run-9:welcome"), request))
    };
    let sent = send().unwrap_or_else(|e| panic!("{e:?}"));
    send().unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(sent.to, "grace@example.com");
    assert_eq!(sent.subject, "Welcome, Grace");
    assert_eq!(sent.message_id, "<run-9.welcome@sagaflow>");
    assert_eq!(state(&f, "mail", "mail").len(), 1, "a repeated key sends once");
    let missing = typed(json!({"to": "usr-grace", "template": "welcom"}));
    let e = now(f.services.notify.send(ctx("x"), missing)).err();
    let e = e.unwrap_or_else(|| panic!("an unknown template must fail"));
    assert_eq!(e.code, "unknown_template");
}

#[test]
fn the_shipped_seed_and_templates_parse() {
    let seed = Seed::builtin();
    assert!(seed.products.len() >= 5 && !seed.vendor_feeds.is_empty() && !seed.ai_accounts.is_empty());
    assert!(MailTemplates::builtin().names().len() >= 8);
}

#[test]
fn a_wrong_seed_says_where() {
    let e = Seed::parse(
        std::path::Path::new("s.yaml"),
        "products:\n  - { sku: A, name: x, price_cents: 1, stock: 1, stok: 2 }\n",
    )
    .err();
    let e = e.unwrap_or_else(|| panic!("a wrong seed must fail"));
    assert!(e.starts_with("s.yaml: not a sandbox seed: unknown field `stok`"), "{e}");
}

/// DSL.md A1: an undo finds the effect by the forward call's idempotency key
/// (its answer may never have come), does nothing when that call did nothing
/// (failed, or never ran), and needs an id or a key.
#[test]
fn every_undo_finds_the_effect_by_the_forward_calls_key_and_does_nothing_without_one() {
    let f = fixture();
    let s = &f.services;
    let card = json!({ "amount_cents": 500, "payment_method": "tok_visa" });
    let charged = now(s.payments.charge(ctx("r:charge"), typed(card))).expect("charged");
    let refund =
        now(s.payments.refund(ctx("r:charge:compensate"), typed(json!({ "key": "r:charge" })))).expect("refund");
    assert_eq!((refund.payment_id.as_deref(), refund.amount_cents), (Some(charged.payment_id.as_str()), 500));
    let declined = json!({ "amount_cents": 500, "payment_method": "tok_declined" });
    assert!(now(s.payments.charge(ctx("r2:charge"), typed(declined))).is_err());
    let nothing = now(s.payments.refund(ctx("r2:charge:compensate"), typed(json!({ "key": "r2:charge" }))));
    assert_eq!(nothing.map(|r| (r.status, r.refund_id)).ok(), Some(("nothing".into(), None)));

    let held =
        now(s.inventory.reserve(ctx("r:hold"), typed(json!({ "sku": "MUG-001", "quantity": 3 })))).expect("held");
    let released = now(s.inventory.release(ctx("r:hold:undo"), typed(json!({ "key": "r:hold" })))).expect("released");
    assert_eq!((released.reservation_id, released.released), (Some(held.reservation_id), true));
    let never = now(s.inventory.release(ctx("r:never:undo"), typed(json!({ "key": "r:never" })))).expect("no-op");
    assert_eq!((never.reservation_id, never.released), (None, false));

    let taken = json!({ "email": "ada@example.com", "name": "Ada" });
    assert!(now(s.users.create(ctx("r:user"), typed(taken))).is_err(), "the seed's address is taken");
    let kept = now(s.users.delete(ctx("r:user:undo"), typed(json!({ "key": "r:user" })))).expect("no-op");
    assert_eq!((kept.user_id, kept.deleted), (None, false), "the account from before is not deleted");

    let neither = now(s.orders.cancel(ctx("r:cancel"), typed(json!({ "reason": "x" }))));
    assert_eq!(neither.map_err(|e| e.code.to_string()).err().as_deref(), Some("invalid_input"));
    let state = f.sandbox.show(Some("users")).expect("users");
    assert!(state.to_string().contains("ada@example.com"));
}

/// The same invariants with the sandbox in PostgreSQL, called through two
/// workers' sandboxes (two connections) at once: the database's lock row of
/// each service keeps them, as a process's lock does on sled.
#[test]
fn in_postgresql_two_workers_never_overbook_refund_past_a_charge_or_double_book_a_seat() {
    let Some(url) = crate::store::postgres::testing::fresh_database() else { return };
    let open = || {
        let store = crate::store::postgres::PgStore::open(&url, None).unwrap_or_else(|e| panic!("{e}"));
        let sandbox = Sandbox::open_postgres(&store, &Seed::builtin()).unwrap_or_else(|e| panic!("{e}"));
        let services = sandbox.services(Arc::new(MailTemplates::builtin())).unwrap_or_else(|e| panic!("{e}"));
        (sandbox, services)
    };
    let (sandbox, a) = open();
    let (_, b) = open();
    let both = Arc::new([a, b]);
    let on = both.clone();
    let reserved = at_once(16, move |i| {
        let request = typed(json!({"sku": "SHIRT-M", "quantity": 1}));
        now(on[i % 2].inventory.reserve(ctx(&format!("k{i}")), request))
    });
    assert_eq!(codes(&reserved).0, 3, "SHIRT-M has 3 in stock: {:?}", codes(&reserved).1);
    let on = both.clone();
    let refunded = at_once(10, move |i| {
        let request = typed(json!({"payment_id": "pay-1001", "amount_cents": 1000}));
        now(on[i % 2].payments.refund(ctx(&format!("r{i}")), request))
    });
    assert_eq!(codes(&refunded).0, 6, "6298 cents hold six refunds of 1000");
    let on = both.clone();
    let seated = at_once(12, move |i| {
        let request = typed(json!({"course_id": "sagas-201", "user_id": format!("u{}", i % 6)}));
        now(on[i % 2].courses.reserve_seat(ctx(&format!("s{i}")), request))
    });
    assert_eq!(codes(&seated).0, 2, "sagas-201 has 2 seats");
    // A repeated key, through the other worker, is the first call's answer.
    let request = |_| typed::<crate::services::inventory::ReserveStock>(json!({"sku": "BOOK-002", "quantity": 4}));
    let first = now(both[0].inventory.reserve(ctx("same"), request(0))).unwrap_or_else(|e| panic!("{e:?}"));
    let again = now(both[1].inventory.reserve(ctx("same"), request(1))).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(first.reservation_id, again.reservation_id);
    let all = sandbox.show(Some("inventory")).unwrap_or_else(|e| panic!("{e}"));
    let shirt = all["inventory"]["product"].as_array().into_iter().flatten().find(|p| p["sku"] == "SHIRT-M").cloned();
    assert_eq!(shirt.map(|p| p["reserved"].clone()), Some(json!(3)));
}
