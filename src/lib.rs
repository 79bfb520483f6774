//! sagaflow: a declarative workflow interpreter.

pub mod actions;
pub mod adapters;
pub mod base;
pub mod cli;
pub mod config;
pub mod dsl;
pub mod engine;
pub mod explore;
pub mod journal;
#[cfg(test)]
mod layers;
pub mod server;
pub mod services;
pub mod store;
pub mod testing;
pub mod validate;
