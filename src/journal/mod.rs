//! The journal's vocabulary: every transition of a run as an entry, and the
//! failures injected into one. Below the store, which keeps entries, and the
//! engine, which folds them.

pub mod entry;
pub mod injection;
pub mod status;
