//! Identifiers: run ids and content hashes.

use super::clock::now_ms;

/// A new run id: sortable by start time, unique by its random tail.
pub(crate) fn new_run_id() -> String {
    format!("{:012x}{:08x}", now_ms(), fastrand::u32(..))
}

/// The id of a run that must start at most once for `seed` (an event and the
/// workflow it triggers, a schedule's tick): the same id every time, sortable
/// by `at` like [`new_run_id`]'s.
pub(crate) fn derived_run_id(at: u64, seed: &str) -> String {
    format!("{at:012x}{}", &content_hash(seed)[..8])
}

/// The SHA-256 of a text, in hex: a workflow version's name.
pub(crate) fn content_hash(source: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(source.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
