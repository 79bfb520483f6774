//! The bottom layer: vocabulary every other folder may use, importing none of them.

pub mod file;
pub mod secrets;
