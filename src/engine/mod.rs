//! The interpreter: runs as deterministic state machines, driven by an async
//! scheduler, checkpointed in the store.

pub mod template;
