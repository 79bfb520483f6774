//! The workflow language: YAML text to a typed, spanned model.

pub mod duration;
pub mod loader;
pub mod model;
pub mod parser;
pub mod node;
pub mod span;
pub mod template;
