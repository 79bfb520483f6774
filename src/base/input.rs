//! Run inputs given by a person: JSON text, or `@FILE`.

use std::path::Path;

use serde_json::Value as Json;

/// A run input may be at most this large (JSON's nesting is bounded by serde_json, 128).
pub(crate) const MAX_INPUT_BYTES: u64 = 1024 * 1024;

/// `--input`: JSON text, or `@FILE`.
pub(crate) fn read_input(given: &str) -> Result<Json, String> {
    match given.strip_prefix('@') {
        Some(file) => read_input_file(Path::new(file)),
        None => parse_input(given, "--input"),
    }
}

/// A run input from a JSON file (a regular file, bounded in size).
pub(crate) fn read_input_file(path: &Path) -> Result<Json, String> {
    let bytes = super::file::read_regular(path, MAX_INPUT_BYTES)
        .map_err(|e| format!("cannot read the input file {}: {e}", path.display()))?;
    let text = String::from_utf8(bytes).map_err(|_| format!("the input file {} is not UTF-8 text", path.display()))?;
    parse_input(&text, &path.display().to_string())
}

fn parse_input(text: &str, from: &str) -> Result<Json, String> {
    if text.len() as u64 > MAX_INPUT_BYTES {
        return Err(format!("{from} is larger than {} KiB, the most a run input may be", MAX_INPUT_BYTES / 1024));
    }
    serde_json::from_str(text)
        .map_err(|e| format!("{from} is not JSON: {e} (line {}, column {})", e.line(), e.column()))
}
