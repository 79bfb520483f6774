//! sagaflow: a declarative workflow interpreter.

pub mod dsl;
pub mod validate;
