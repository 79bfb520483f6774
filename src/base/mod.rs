//! The bottom layer: vocabulary every other folder may use, importing none of them.

pub(crate) mod backoff;
pub(crate) mod clock;
pub(crate) mod error;
pub(crate) mod file;
pub(crate) mod ids;
pub(crate) mod input;
pub(crate) mod secrets;
pub(crate) mod suggest;
pub(crate) mod trace;
