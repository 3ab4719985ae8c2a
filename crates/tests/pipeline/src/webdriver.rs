//! A small W3C WebDriver client (over reqwest) for the dashboard's browser
//! test against Debian's chromedriver. Hand-written on purpose: the crates
//! that do this (fantoccini, thirtyfour) pull in a second TLS stack with a C
//! build (aws-lc-sys) and ICU, which would double the suite's clean build on
//! two cores for the dozen calls used here.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code

use serde_json::{Value, json};
use std::{os::unix::process::CommandExt, path::PathBuf, process::Child, time::Duration};

/// W3C's key for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Every folder a test browser uses (its profile and the driver's log) starts
/// with this, in the temp directory; `scripts/test` checks by it that no
/// browser or driver outlived the suite.
pub const FOLDER_PREFIX: &str = "capi-chromium-";

/// chromedriver on a free port with one headless Chromium session. Dropping it
/// (at the end of a test, on a panic, or when `start` fails half-way) ends the
/// session so that Chromium quits, shuts chromedriver down, kills whatever is
/// left of the process group and removes the folder.
pub struct Browser {
    /// Held for its `Drop`, which ends everything the browser started.
    _driver: Driver,
    base: String,
    http: reqwest::Client,
}

/// The chromedriver process, its own process group (Chromium and its helpers
/// start in it) and the folder; owns their clean-up.
struct Driver {
    process: Child,
    port: u16,
    folder: PathBuf,
    session: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Element(String);

impl Browser {
    pub async fn start() -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let folder =
            std::env::temp_dir().join(format!("{FOLDER_PREFIX}{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&folder).unwrap();
        // The log path names the folder too, so the driver is found by the
        // prefix like the browser (whose profile path is in its command line).
        let process = std::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .arg(format!(
                "--log-path={}",
                folder.join("chromedriver.log").display()
            ))
            .process_group(0)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        let mut driver = Driver {
            process: process
                .expect("chromedriver (Debian's chromium-driver; scripts/test installs it)"),
            port,
            folder,
            session: None,
        };
        let http = reqwest::Client::new();
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,1400",
                     format!("--user-data-dir={}", driver.folder.join("profile").display())]}}}});
        let root = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            if let Ok(resp) = http
                .post(format!("{root}/session"))
                .json(&caps)
                .send()
                .await
            {
                let v: Value = resp.json().await.unwrap_or(Value::Null);
                let id = v["value"]["sessionId"]
                    .as_str()
                    .unwrap_or_else(|| panic!("no session: {v}"))
                    .to_owned();
                driver.session = Some(id.clone());
                return Browser {
                    _driver: driver,
                    base: format!("{root}/session/{id}"),
                    http,
                };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not start");
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        match v["value"]["error"].as_str() {
            Some(e) => Err(format!("{e}: {}", v["value"]["message"])),
            None => Ok(v["value"].clone()),
        }
    }

    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await
            .unwrap();
    }

    /// The first element matching the CSS selector, or the driver's error.
    pub async fn find(&self, css: &str) -> Result<Element, String> {
        let v = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await?;
        Ok(Element(v[ELEMENT].as_str().unwrap_or_default().to_owned()))
    }

    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        let v = self
            .call(
                reqwest::Method::POST,
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await
            .unwrap();
        v.as_array()
            .into_iter()
            .flatten()
            .map(|e| Element(e[ELEMENT].as_str().unwrap_or_default().to_owned()))
            .collect()
    }

    pub async fn text(&self, e: &Element) -> String {
        let v = self
            .call(
                reqwest::Method::GET,
                &format!("/element/{}/text", e.0),
                None,
            )
            .await
            .unwrap();
        v.as_str().unwrap_or_default().to_owned()
    }

    /// The text of the first element matching `css` (panics when there is none).
    pub async fn text_of(&self, css: &str) -> String {
        let e = self
            .find(css)
            .await
            .unwrap_or_else(|err| panic!("{css}: {err}"));
        self.text(&e).await
    }

    pub async fn attr(&self, e: &Element, name: &str) -> Option<String> {
        let v = self
            .call(
                reqwest::Method::GET,
                &format!("/element/{}/attribute/{name}", e.0),
                None,
            )
            .await
            .unwrap();
        v.as_str().map(str::to_owned)
    }

    pub async fn cookies(&self) -> Vec<Value> {
        let v = self
            .call(reqwest::Method::GET, "/cookie", None)
            .await
            .unwrap();
        v.as_array().cloned().unwrap_or_default()
    }

    /// Clicks the element (a button submits its form; an option is chosen).
    pub async fn click(&self, e: &Element) {
        self.call(
            reqwest::Method::POST,
            &format!("/element/{}/click", e.0),
            Some(json!({})),
        )
        .await
        .unwrap();
    }

    /// Clicks the first element matching `css` (panics when there is none).
    pub async fn click_on(&self, css: &str) {
        let e = self
            .find(css)
            .await
            .unwrap_or_else(|err| panic!("{css}: {err}"));
        self.click(&e).await;
    }

    /// Clicks the submit button matching `css` and waits until the answer's
    /// page has replaced this one (the old page's root goes stale), so the
    /// next command reads the new page even when it has the same address.
    pub async fn submit(&self, css: &str) {
        let old = self.find("html").await.unwrap();
        self.click_on(css).await;
        for _ in 0..200 {
            let gone = self
                .call(
                    reqwest::Method::GET,
                    &format!("/element/{}/name", old.0),
                    None,
                )
                .await
                .is_err();
            if gone {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{css}: the page did not change within 10 s");
    }

    /// Empties the field matching `css` and types `text` into it.
    pub async fn fill(&self, css: &str, text: &str) {
        let e = self
            .find(css)
            .await
            .unwrap_or_else(|err| panic!("{css}: {err}"));
        self.call(
            reqwest::Method::POST,
            &format!("/element/{}/clear", e.0),
            Some(json!({})),
        )
        .await
        .unwrap();
        self.call(
            reqwest::Method::POST,
            &format!("/element/{}/value", e.0),
            Some(json!({"text": text})),
        )
        .await
        .unwrap();
    }

    /// Runs `script` in the page (WebDriver's own channel: the page's CSP,
    /// which allows no script, does not apply to it). Used to tamper with a
    /// form the way an attacker's page would.
    pub async fn execute(&self, script: &str) {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
        .unwrap();
    }

    /// The address the browser is at.
    pub async fn url(&self) -> String {
        let v = self.call(reqwest::Method::GET, "/url", None).await.unwrap();
        v.as_str().unwrap_or_default().to_owned()
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        use base64::Engine;
        let v = self
            .call(reqwest::Method::GET, "/screenshot", None)
            .await
            .unwrap();
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .unwrap()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Synchronous on purpose: Drop also runs while a panic unwinds, where
        // no runtime can be awaited.
        if let Some(id) = self.session.take() {
            let _ = blocking_request(self.port, "DELETE", &format!("/session/{id}"));
        }
        let _ = blocking_request(self.port, "GET", "/shutdown");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while matches!(self.process.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        // Whatever is left in the group (a browser whose session could not be
        // ended, its helpers, a driver that did not stop) goes at once.
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.process.id())])
            .stderr(std::process::Stdio::null())
            .status();
        let _ = self.process.kill();
        let _ = self.process.wait();
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}

/// One HTTP/1.1 request to chromedriver over a plain socket; its answer is
/// read up to its `Content-Length` (chromedriver keeps the connection open
/// whatever the request says), bounded by timeouts so that a hung driver
/// cannot hang a test's drop.
fn blocking_request(port: u16, method: &str, path: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    let mut chunk = [0_u8; 4096];
    loop {
        let n = stream.read(&mut chunk)?;
        answer.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&answer);
        let complete = text.split_once("\r\n\r\n").is_some_and(|(head, body)| {
            let length = head.lines().find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().ok())?
            });
            length.is_some_and(|len| body.len() >= len)
        });
        if n == 0 || complete {
            return Ok(text.into_owned());
        }
    }
}
