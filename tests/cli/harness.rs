//! The test builder: a temporary folder with files, a command line, and the
//! exact output and exit status expected.

use std::path::PathBuf;
use std::process::{Command, Output};

pub struct Test {
    dir: Dir,
    args: Vec<String>,
    stdout: Option<String>,
    stdout_contains: Vec<String>,
    stderr: Option<String>,
    status: i32,
}

impl Test {
    pub fn new() -> Self {
        Test::with_dir(Dir::Owned(tempfile::tempdir().expect("a temporary folder")))
    }

    /// A test in the folder of an earlier one (kept by [`Test::path_buf`]).
    pub fn in_dir(dir: &std::path::Path) -> Self {
        Test::with_dir(Dir::Borrowed(dir.to_owned()))
    }

    /// Keeps the folder past this test, for the next commands of a scenario.
    pub fn path_buf(&mut self) -> PathBuf {
        if let Dir::Owned(_) = &self.dir {
            let owned = std::mem::replace(&mut self.dir, Dir::Borrowed(PathBuf::new()));
            if let Dir::Owned(t) = owned {
                self.dir = Dir::Borrowed(t.keep());
            }
        }
        self.dir.path().to_owned()
    }

    fn with_dir(dir: Dir) -> Self {
        Test { dir, args: Vec::new(), stdout: None, stdout_contains: Vec::new(), stderr: None, status: 0 }
    }

    /// Writes a file (folders created) under the test's folder.
    pub fn file(self, name: &str, content: impl AsRef<[u8]>) -> Self {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create folders");
        }
        std::fs::write(path, content).expect("write file");
        self
    }

    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    pub fn stdout(mut self, expected: &str) -> Self {
        self.stdout = Some(expected.to_owned());
        self
    }

    pub fn stdout_contains(mut self, part: &str) -> Self {
        self.stdout_contains.push(part.to_owned());
        self
    }

    pub fn stderr(mut self, expected: &str) -> Self {
        self.stderr = Some(expected.to_owned());
        self
    }

    pub fn status(mut self, status: i32) -> Self {
        self.status = status;
        self
    }

    /// Runs the binary in the test's folder and checks what was expected.
    pub fn run(self) -> Output {
        let output = sagaflow().args(&self.args).current_dir(self.dir.path()).output().expect("run sagaflow");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(self.status), "exit status; stdout:\n{stdout}\nstderr:\n{stderr}");
        if let Some(expected) = &self.stdout {
            assert_eq!(stdout, expected.as_str(), "stdout differs; stderr:\n{stderr}");
        }
        if let Some(expected) = &self.stderr {
            assert_eq!(stderr, expected.as_str(), "stderr differs; stdout:\n{stdout}");
        }
        for part in &self.stdout_contains {
            assert!(stdout.contains(part.as_str()), "stdout lacks {part:?}:\n{stdout}");
        }
        output
    }

    /// Runs and parses stdout as JSON.
    pub fn json(self) -> serde_json::Value {
        let output = self.run();
        serde_json::from_slice(&output.stdout).expect("stdout is JSON")
    }
}

enum Dir {
    Owned(tempfile::TempDir),
    Borrowed(PathBuf),
}

impl Dir {
    fn path(&self) -> &std::path::Path {
        match self {
            Dir::Owned(t) => t.path(),
            Dir::Borrowed(p) => p,
        }
    }
}

pub fn sagaflow() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sagaflow"));
    cmd.env("NO_COLOR", "1");
    cmd
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}
