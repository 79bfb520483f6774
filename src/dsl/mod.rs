//! The workflow language: YAML text to a typed, spanned model.

pub(crate) mod diagnostic;
pub(crate) mod duration;
pub(crate) mod loader;
pub(crate) mod model;
pub(crate) mod names;
pub(crate) mod node;
pub(crate) mod parser;
pub(crate) mod sample;
pub(crate) mod span;
pub(crate) mod template;
pub(crate) mod yaml;
pub(crate) mod zone;
