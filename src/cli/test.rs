//! `sagaflow test PATH...`: runs test files (`*.test.yaml`; directories are
//! searched), each case on a fresh sandbox; prints what failed with the file
//! and line of the expectation, then `N passed, M failed`. Exit 0 only when all
//! pass; 2 when a test file or what it names is wrong.

use std::path::PathBuf;
use std::process::ExitCode;

use std::sync::Arc;

use super::{runtime, usage_error};
use crate::engine::compiled::CompiledWorkflow;
use crate::engine::library::{Directory, Library};
use crate::explore::Ground;
use crate::explore::{at_once, ExploreError};
use crate::journal::injection::Injection;
use crate::testing::spec::TestFile;
use crate::testing::{prepare, run_case, CaseResult};
use std::collections::HashMap;

/// Cases run at once.
const AT_ONCE: usize = 4;

/// A test file with its compiled workflow, each case's injections, and what
/// its runs stand on (the children it starts come from the test file's folder).
type Loaded = (TestFile, Arc<CompiledWorkflow>, Vec<Vec<Injection>>, Ground);

#[derive(clap::Args)]
pub(super) struct Args {
    /// Test files, or directories to search for `*.test.yaml`.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Run each case on a database of its own on this PostgreSQL server (created, then
    /// dropped) instead of a fresh sled folder: the store production uses.
    #[arg(long, value_name = "postgres://...")]
    store: Option<String>,
}

pub(super) fn run(args: Args, setup: &super::setup::Setup) -> ExitCode {
    let files = match crate::validate::collect_files_named(&args.paths, crate::validate::is_test_file) {
        Ok(files) if files.is_empty() => return usage_error("no `*.test.yaml` file under the paths given"),
        Ok(files) => files,
        Err(e) => return usage_error(&e.0),
    };
    let (config, seed) = match setup.config().and_then(|c| Ok((c.seed().map_err(|e| e.0)?, c))) {
        Ok((seed, config)) => (Arc::new(config), seed),
        Err(e) => return usage_error(&e),
    };
    // Checked against the config's templates, as `validate` does.
    let registry = match crate::config::registry::for_config(&config) {
        Ok(registry) => registry,
        Err(e) => return usage_error(&e.0),
    };
    let scratch = match setup.scratch(args.store.as_deref()) {
        Ok(scratch) => scratch,
        Err(e) => return usage_error(&e),
    };
    let mut libraries: HashMap<PathBuf, Arc<dyn Library>> = HashMap::new();
    let mut loaded = Vec::new();
    for file in &files {
        let test = match TestFile::load(file) {
            Ok(t) => t,
            Err(e) => return usage_error(&e),
        };
        // The children its workflow runs come from the workflow's folder.
        let dir = test.workflow.parent().map_or_else(PathBuf::new, std::path::Path::to_path_buf);
        let library =
            libraries.entry(dir.clone()).or_insert_with(|| Arc::new(Directory::new(dir, registry.clone()))).clone();
        let ground = Ground { seed: seed.clone(), library, config: config.clone(), scratch: scratch.clone() };
        match prepare(&test, ground.library.as_ref(), &registry) {
            Ok((wf, injections)) => loaded.push((test, wf, injections, ground)),
            Err(e) => return usage_error(&e),
        }
    }
    let started = std::time::Instant::now();
    let loaded = Arc::new(loaded);
    let outcome = runtime().block_on(run_all(loaded.clone()));
    match outcome.map(|results| report(&loaded, &results)) {
        Ok((passed, failed)) => {
            println!("ran {} cases in {:.2} s", passed + failed, started.elapsed().as_secs_f64());
            println!("{passed} passed, {failed} failed");
            if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => usage_error(&e),
    }
}

/// Every case of every file, four at once, each on its own fresh sandbox;
/// the results in file and case order.
async fn run_all(loaded: Arc<Vec<Loaded>>) -> Result<Vec<Vec<CaseResult>>, ExploreError> {
    let all: Vec<(usize, usize)> =
        loaded.iter().enumerate().flat_map(|(f, (t, ..))| (0..t.cases.len()).map(move |c| (f, c))).collect();
    let jobs = all.iter().map(|&(f, c)| {
        let loaded = loaded.clone();
        async move {
            let (test, wf, injections, ground) = &loaded[f];
            run_case(test, wf, &test.cases[c], injections[c].clone(), ground).await
        }
    });
    let mut results = at_once(jobs.collect(), AT_ONCE).await?.into_iter();
    Ok(loaded.iter().map(|(t, ..)| results.by_ref().take(t.cases.len()).collect()).collect())
}

/// Prints each file's cases, and answers how many passed and failed.
fn report(loaded: &[Loaded], results: &[Vec<CaseResult>]) -> (usize, usize) {
    let (mut passed, mut failed) = (0, 0);
    for ((test, ..), cases) in loaded.iter().zip(results) {
        println!("{}", test.file.path.display());
        for result in cases {
            if result.misses.is_empty() {
                passed += 1;
                println!("  ok    {}", result.name);
            } else {
                failed += 1;
                println!("  FAIL  {}", result.name);
                for m in &result.misses {
                    println!("        {m}");
                }
            }
        }
    }
    (passed, failed)
}
