//! The workflow language: YAML text to a typed, spanned model.

pub mod diagnostic;
pub mod duration;
pub mod loader;
pub mod model;
pub mod names;
pub mod node;
pub mod parser;
pub mod sample;
pub mod span;
pub mod template;
pub mod yaml;
pub mod zone;
