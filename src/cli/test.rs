//! `sagaflow test PATH...`: runs test files (`*.test.yaml`; directories are
//! searched), each case on a fresh sandbox; prints what failed with the file
//! and line of the expectation, then `N passed, M failed`. Exit 0 only when all
//! pass; 2 when a test file or what it names is wrong.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::{runtime, usage_error};
use crate::testing::spec::TestFile;
use crate::testing::{prepare, run_case};

#[derive(clap::Args)]
pub struct Args {
    /// Test files, or directories to search for `*.test.yaml`.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

pub fn run(args: Args) -> ExitCode {
    let files = match test_files(&args.paths) {
        Ok(files) if files.is_empty() => return usage_error("no `*.test.yaml` file under the paths given"),
        Ok(files) => files,
        Err(e) => return usage_error(&e),
    };
    let seed = match super::setup::config().and_then(|c| c.seed().map_err(|e| e.0)) {
        Ok(seed) => seed,
        Err(e) => return usage_error(&e),
    };
    let mut loaded = Vec::new();
    for file in &files {
        let test = match TestFile::load(file) {
            Ok(t) => t,
            Err(e) => return usage_error(&e),
        };
        match prepare(&test) {
            Ok((wf, injections)) => loaded.push((test, wf, injections)),
            Err(e) => return usage_error(&e),
        }
    }
    let started = std::time::Instant::now();
    let outcome = runtime().block_on(async {
        let (mut passed, mut failed) = (0, 0);
        for (test, wf, injections) in &loaded {
            println!("{}", test.file.path.display());
            for (case, inject) in test.cases.iter().zip(injections) {
                let result = run_case(test, wf, case, inject.clone(), &seed).await?;
                match result.misses.is_empty() {
                    true => {
                        passed += 1;
                        println!("  ok    {}", result.name);
                    }
                    false => {
                        failed += 1;
                        println!("  FAIL  {}", result.name);
                        for m in &result.misses {
                            println!("        {m}");
                        }
                    }
                }
            }
        }
        Ok::<_, String>((passed, failed))
    });
    match outcome {
        Ok((passed, failed)) => {
            println!("{passed} passed, {failed} failed ({:.2} s)", started.elapsed().as_secs_f64());
            if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => usage_error(&e),
    }
}

/// The test files under the paths: files as given, directories searched.
fn test_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_file() {
            out.push(path.clone());
        } else if path.is_dir() {
            walk(path, &mut out).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        } else {
            return Err(format!("there is no file or directory {}", path.display()));
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if path.is_dir() && !name.starts_with('.') {
            walk(&path, out)?;
        } else if name.ends_with(".test.yaml") {
            out.push(path);
        }
    }
    Ok(())
}
