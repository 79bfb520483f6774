//! A `sagaflow serve` process on loopback for tests, and a small JSON client.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::harness::sagaflow;

pub struct Server {
    child: Option<Child>,
    pub url: String,
    pub dir: PathBuf,
    pub token: Option<String>,
    client: reqwest::Client,
}

/// A folder with the named workflow files (name, YAML).
pub fn folder(workflows: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("workflows")).expect("workflows dir");
    for (name, text) in workflows {
        std::fs::write(dir.path().join("workflows").join(name), text).expect("write workflow");
    }
    dir
}

/// Copies the repository's business workflows (and their templates) into `dir/workflows`.
pub fn copy_business_workflows(dir: &Path) {
    let from = super::harness::repo().join("workflows");
    for entry in std::fs::read_dir(&from).expect("workflows") {
        let path = entry.expect("entry").path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name.ends_with(".yaml") && !name.ends_with(".test.yaml") {
            std::fs::copy(&path, dir.join("workflows").join(&name)).expect("copy");
        }
    }
}

impl Server {
    pub fn start(dir: &Path) -> Server {
        Server::start_with(dir, &[], None)
    }

    /// Starts `sagaflow serve` in `dir` on a free port; waits until it listens.
    pub fn start_with(dir: &Path, args: &[&str], token: Option<&str>) -> Server {
        Server::start_env(dir, args, token, &[])
    }

    /// The same, with more environment variables for the process.
    pub fn start_env(dir: &Path, args: &[&str], token: Option<&str>, env: &[(&str, &str)]) -> Server {
        let mut cmd = sagaflow();
        cmd.envs(env.iter().copied());
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--grace", "3s"]).args(args).current_dir(dir);
        cmd.env("SAGAFLOW_LOG", "info").env_remove("SAGAFLOW_API_TOKEN");
        if let Some(t) = token {
            cmd.env("SAGAFLOW_API_TOKEN", t);
        }
        let stderr =
            std::fs::OpenOptions::new().create(true).append(true).open(dir.join("server.log")).expect("log file");
        let mut child = cmd.stdout(Stdio::piped()).stderr(stderr).spawn().expect("start sagaflow serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {}
        });
        let line = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
                panic!("sagaflow serve did not start; its log:\n{log}");
            }
        };
        let url = line.rsplit(' ').next().expect("an address").to_owned();
        assert!(url.starts_with("http://127.0.0.1:"), "{line}");
        Server {
            child: Some(child),
            url,
            dir: dir.to_owned(),
            token: token.map(str::to_owned),
            client: reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("client"),
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.client.request(method, format!("{}{path}", self.url));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request.send().await.expect("a response");
        let status = response.status().as_u16();
        let text = response.text().await.expect("a body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, body)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.request(reqwest::Method::GET, path)).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(self.request(reqwest::Method::POST, path).json(&body)).await
    }

    /// Starts a run; answers its id.
    pub async fn start_run(&self, workflow: &str, input: Value) -> String {
        let (status, body) = self.post(&format!("/v1/workflows/{workflow}/runs"), json!({ "input": input })).await;
        assert_eq!(status, 202, "{body}");
        body["run_id"].as_str().expect("run_id").to_owned()
    }

    /// Polls a run until its status is one of `statuses` (60 s at most).
    pub async fn until_status(&self, run_id: &str, statuses: &[&str]) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (code, record) = self.get(&format!("/v1/runs/{run_id}")).await;
            if code == 200 && statuses.contains(&record["status"].as_str().unwrap_or("")) {
                return record;
            }
            assert!(Instant::now() < deadline, "run {run_id} never reached {statuses:?}: {record}\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls until `check` holds of `GET path` (30 s at most).
    pub async fn until(&self, path: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, body) = self.get(path).await;
            if check(&body) {
                return body;
            }
            assert!(Instant::now() < deadline, "GET {path} never held: {body}\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or_default()
    }

    /// SIGTERM, then waits for the process to end; answers its exit code.
    pub fn terminate(mut self) -> Option<i32> {
        let _ = std::process::Command::new("kill").args(["-TERM", &self.pid().to_string()]).status();
        let mut child = self.child.take()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("sagaflow serve did not stop within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a signal by name (`STOP`, `CONT`).
    pub fn signal(&self, name: &str) {
        let sent = std::process::Command::new("kill").args([&format!("-{name}"), &self.pid().to_string()]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -{name}");
    }

    /// Waits up to `within` for the process to end by itself; answers its exit code.
    pub fn exited(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: the process dies where it stands.
    pub fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
