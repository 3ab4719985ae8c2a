//! A small W3C WebDriver client (over reqwest) for the dashboard's browser
//! test against Debian's chromedriver. Hand-written on purpose: the crates
//! that do this (fantoccini, thirtyfour) pull in a second TLS stack with a C
//! build (aws-lc-sys) and ICU, which would double the suite's clean build on
//! two cores for the dozen calls used here.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code

use serde_json::{Value, json};
use std::{path::PathBuf, process::Child, time::Duration};

/// W3C's key for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver on a free port with one headless Chromium session; both end on drop.
pub struct Browser {
    process: Child,
    base: String,
    http: reqwest::Client,
    profile: PathBuf,
}

#[derive(Debug, Clone)]
pub struct Element(String);

impl Browser {
    #[allow(clippy::zombie_processes)] // the process is reaped in `Drop`, on every path
    pub async fn start() -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let process = std::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("chromedriver (Debian's chromium-driver; scripts/test installs it)");
        let profile =
            std::env::temp_dir().join(format!("capi-chromium-{}", uuid::Uuid::new_v4().simple()));
        let http = reqwest::Client::new();
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,1400",
                     format!("--user-data-dir={}", profile.display())]}}}});
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
                    .unwrap_or_else(|| panic!("no session: {v}"));
                return Browser {
                    process,
                    base: format!("{root}/session/{id}"),
                    http,
                    profile,
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

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
