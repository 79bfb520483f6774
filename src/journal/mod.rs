//! The journal's vocabulary: every transition of a run as an entry, and the
//! failures injected into one. Below the store, which keeps entries, and the
//! engine, which folds them.

pub(crate) mod entry;
pub(crate) mod injection;
pub(crate) mod status;
