//! sagaflow: a declarative workflow interpreter.

pub mod actions;
pub mod cli;
pub mod dsl;
pub mod engine;
pub mod store;
pub mod validate;
