//! The folders of `src/` in one dependency order: each may use only those
//! before it. This test reads every file and fails on any path against the
//! order (`crate::x`, `use crate::{x, ..}`, `$crate::x`, or `super::` climbing
//! out of its folder), test code included.

use std::path::{Path, PathBuf};

/// Each folder may use only the folders before it.
const ORDER: &[&str] = &[
    "base", "dsl", "journal", "actions", "validate", "store", "services", "adapters", "config", "engine", "explore",
    "testing", "server", "cli",
];

fn rank(folder: &str) -> Option<usize> {
    ORDER.iter().position(|f| *f == folder)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file under `src/` (`src/a/b/mod.rs` is `[a, b]`).
fn module_path(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if let Some(last) = parts.last_mut() {
        *last = last.trim_end_matches(".rs").to_owned();
    }
    if parts.last().is_some_and(|l| l == "mod") {
        parts.pop();
    }
    parts
}

/// The top-level modules a line of code names: `crate::x`, `$crate::x`, the
/// names in `use crate::{x, y::z}`, and where `super::` leaves `module`.
fn named_folders(line: &str, module: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    let ident = |s: &str| s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>();
    for (at, _) in line.match_indices("crate::") {
        let rest = &line[at + "crate::".len()..];
        match rest.strip_prefix('{') {
            Some(group) => found.extend(group_heads(group)),
            None => found.push(ident(rest)),
        }
    }
    for (at, _) in line.match_indices("super::") {
        // Only the first `super::` of a chain.
        if line[..at].ends_with("super::") {
            continue;
        }
        let mut rest = &line[at..];
        let mut up = 0;
        while let Some(r) = rest.strip_prefix("super::") {
            up += 1;
            rest = r;
        }
        // A file's own module is the last part; `super` is its parent.
        if up >= module.len() {
            found.push(ident(rest));
        }
    }
    found
}

/// The first name of each item of a `{a, b::c, d::{e, f}}` group (without its `{`).
fn group_heads(group: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut current = String::new();
    let mut taking = true;
    for c in group.chars() {
        match c {
            '{' => {
                depth += 1;
                taking = false;
            }
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                heads.push(std::mem::take(&mut current));
                taking = true;
            }
            ':' if depth == 0 => taking = false,
            c if depth == 0 && taking && (c.is_alphanumeric() || c == '_') => current.push(c),
            _ => {}
        }
    }
    heads.push(current);
    heads.into_iter().filter(|h| !h.is_empty()).collect()
}

#[test]
fn every_folder_uses_only_the_folders_before_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut wrong = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap_or(file);
        if relative.components().count() == 1 {
            continue; // lib.rs, main.rs and this file stand above every folder
        }
        let module = module_path(relative);
        let folder = &module[0];
        let Some(own) = rank(folder) else {
            wrong.push(format!("src/{folder}/ is not in the layer order; add it to src/layers.rs"));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for named in named_folders(line, &module) {
                if let Some(theirs) = rank(&named).filter(|&r| r > own) {
                    wrong.push(format!(
                        "{}:{}: `{folder}` uses `{named}`, which comes after it ({} before {})",
                        relative.display(),
                        n + 1,
                        ORDER[own],
                        ORDER[theirs]
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "the layers are {}:\n{}", ORDER.join(" → "), wrong.join("\n"));
}

#[test]
fn the_reader_finds_every_way_of_naming_a_folder() {
    let module: Vec<String> = vec!["store".into(), "sled".into()];
    assert_eq!(named_folders("use crate::engine::journal::Entry;", &module), ["engine"]);
    assert_eq!(named_folders("use crate::{base::clock, engine::x, dsl::{a, b}};", &module), ["base", "engine", "dsl"]);
    assert_eq!(named_folders("impl T for $crate::services::Remote {", &module), ["services"]);
    assert_eq!(named_folders("use super::super::cli::run;", &module), ["cli"]);
    assert!(named_folders("use super::backup::Record;", &module).is_empty());
}
