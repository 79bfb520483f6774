//! sagaflow: a declarative workflow interpreter.
#![deny(unreachable_pub)]

pub(crate) mod actions;
pub(crate) mod adapters;
pub(crate) mod base;
pub(crate) mod cli;
pub(crate) mod config;
pub(crate) mod dsl;
pub(crate) mod engine;
pub(crate) mod explore;
pub(crate) mod journal;
#[cfg(test)]
mod layers;
pub(crate) mod server;
pub(crate) mod services;
pub(crate) mod store;
pub(crate) mod testing;
pub(crate) mod validate;

/// The command line, as the `sagaflow` binary runs it.
pub use cli::main;

/// The validator on bytes, for the fuzz tests (the rest of the crate is its own).
pub mod fuzzing {
    pub use crate::config::registry::builtin;
    pub use crate::validate::check_text;
    pub use crate::validate::render::{human, json};
}
