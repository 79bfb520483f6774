//! The bottom layer: vocabulary every other folder may use, importing none of them.

pub mod backoff;
pub mod clock;
pub mod error;
pub mod file;
pub mod ids;
pub mod input;
pub mod secrets;
pub mod suggest;
