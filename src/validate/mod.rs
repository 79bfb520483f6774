//! Static analysis of workflow files.

pub mod diagnostic;
pub mod suggest;
