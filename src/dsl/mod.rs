//! The workflow language: YAML text to a typed, spanned model.

pub mod loader;
pub mod node;
pub mod span;
