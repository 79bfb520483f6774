//! A small WebDriver client (the W3C protocol over HTTP) driving Debian's
//! Chromium through chromedriver, headless: enough to load a page, find,
//! click, type, read and take screenshots.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    client: reqwest::Client,
    _profile: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

fn find(binary: &str, candidates: &[&str]) -> PathBuf {
    candidates.iter().map(PathBuf::from).find(|p| p.exists()).unwrap_or_else(|| {
        panic!("{binary} is not installed: `bash .ci/install-test-deps` installs Debian's chromium and chromium-driver")
    })
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session.
    pub async fn start() -> Browser {
        let chromium = find("chromium", &["/usr/bin/chromium", "/usr/bin/chromium-browser"]);
        let chromedriver = find("chromedriver", &["/usr/bin/chromedriver"]);
        let port = free_port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("client");
        let deadline = Instant::now() + Duration::from_secs(30);
        while client.get(format!("{base}/status")).send().await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().expect("profile dir");
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--window-size=1400,1000".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium.display().to_string(), "args": args}}}});
        let mut browser = Browser { driver, base, session: String::new(), client, _profile: profile };
        let created = browser.call(reqwest::Method::POST, "/session", caps).await;
        browser.session = created["sessionId"].as_str().expect("a session").to_owned();
        browser
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        match self.try_call(method, path, body).await {
            Ok(value) => value,
            Err(error) => panic!("webdriver {path}: {error}"),
        }
    }

    /// A webdriver call; its error as the driver said it.
    async fn try_call(&self, method: reqwest::Method, path: &str, body: Value) -> Result<Value, Value> {
        let url = format!("{}{path}", self.base);
        let request = self.client.request(method.clone(), &url);
        let request = if method == reqwest::Method::GET { request } else { request.json(&body) };
        let response = request.send().await.expect("webdriver");
        let value: Value = response.json().await.expect("webdriver json");
        match value["value"]["error"].is_string() {
            true => Err(value["value"].clone()),
            false => Ok(value["value"].clone()),
        }
    }

    fn at(&self, path: &str) -> String {
        format!("/session/{}{path}", self.session)
    }

    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, &self.at("/url"), json!({ "url": url })).await;
    }

    /// Sets the window's outer size, as a person resizing it would.
    pub async fn resize(&self, width: u32, height: u32) {
        self.call(reqwest::Method::POST, &self.at("/window/rect"), json!({ "width": width, "height": height })).await;
    }

    /// Runs a script in the page; answers what it returns.
    pub async fn script(&self, script: &str, args: Value) -> Value {
        self.call(reqwest::Method::POST, &self.at("/execute/sync"), json!({ "script": script, "args": args })).await
    }

    /// The text of the first element matching `css`, once there is one (20 s at most).
    pub async fn text(&self, css: &str) -> String {
        self.until(css, |_| true).await
    }

    /// Waits until the first element matching `css` has text for which `check` holds; answers the text.
    pub async fn until(&self, css: &str, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = self
                .script(
                    "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
                    json!([css]),
                )
                .await;
            if let Some(t) = text.as_str().filter(|t| check(t)) {
                return t.to_owned();
            }
            assert!(Instant::now() < deadline, "{css} never showed what was awaited (last: {text})");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// How many elements match `css` now.
    pub async fn count(&self, css: &str) -> u64 {
        self.script("return document.querySelectorAll(arguments[0]).length;", json!([css])).await.as_u64().unwrap_or(0)
    }

    async fn element(&self, css: &str) -> String {
        self.text(css).await;
        let found = self
            .call(reqwest::Method::POST, &self.at("/element"), json!({"using": "css selector", "value": css}))
            .await;
        found[ELEMENT].as_str().expect("an element").to_owned()
    }

    /// Clicks like a person (the browser's own click).
    /// A page that draws itself again (a live run) may replace the element
    /// between finding and clicking it: then it is found again.
    pub async fn click(&self, css: &str) {
        for _ in 0..20 {
            let id = self.element(css).await;
            let path = self.at(&format!("/element/{id}/click"));
            match self.try_call(reqwest::Method::POST, &path, json!({})).await {
                Ok(_) => return,
                Err(e) if e["error"] == "stale element reference" => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("webdriver {path}: {e}"),
            }
        }
        panic!("{css} was redrawn under every click");
    }

    /// Picks an option of a `<select>` the way a person does (a click on it).
    pub async fn choose(&self, select: &str, value: &str) {
        self.click(&format!("{select} option[value=\"{value}\"]")).await;
    }

    /// Types into a field.
    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        self.call(reqwest::Method::POST, &self.at(&format!("/element/{id}/clear")), json!({})).await;
        self.call(reqwest::Method::POST, &self.at(&format!("/element/{id}/value")), json!({ "text": text })).await;
    }

    /// Saves a PNG of the page under `target/console-screenshots/` and prints where.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let data = self.call(reqwest::Method::GET, &self.at("/screenshot"), Value::Null).await;
        let png = base64::engine::general_purpose::STANDARD.decode(data.as_str().unwrap_or("")).expect("base64 PNG");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        println!("screenshot: {}", path.display());
        path
    }
}

impl Drop for Browser {
    /// Ends the session (Chromium quits), then chromedriver.
    fn drop(&mut self) {
        use std::io::{Read, Write};
        let host = self.base.trim_start_matches("http://").to_owned();
        if let Ok(mut stream) = std::net::TcpStream::connect(&host) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let request = format!(
                "DELETE /session/{} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                self.session
            );
            let _ = stream.write_all(request.as_bytes());
            let _ = stream.read_to_end(&mut Vec::new());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
