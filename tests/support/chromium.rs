//! Headless Chromium (Debian's `chromium`) driven over the DevTools protocol, for sign-ins as a
//! real browser does them: SameSite, `Secure` and `__Host-` rules, redirects, and the scripts
//! that submit the IdP's and the ACS's forms. The small client in `browser.rs` ignores all of
//! those, which is how a sign-in that no browser could finish once passed its tests.
//!
//! The protocol runs over `--remote-debugging-pipe`: JSON messages, each ended by a NUL byte,
//! read from the browser's fd 3 and written to its fd 4. `sh` maps our pipes there, so nothing
//! here needs a WebSocket client or `pre_exec`. Blocking: call it from `spawn_blocking`.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long one protocol call, or one wait for a page, may take.
const DEADLINE: Duration = Duration::from_secs(30);

pub struct Chromium {
    child: Child,
    to: ChildStdin,
    from: mpsc::Receiver<Value>,
    next_id: u64,
    /// The page's session (flat mode: its messages carry `sessionId`).
    page: String,
    /// Every document response, redirects included: (status, url).
    pub trail: Vec<(u16, String)>,
    profile: tempfile::TempDir,
}

/// What the page shows.
#[derive(Debug, Clone)]
pub struct Shown {
    pub url: String,
    pub ready: bool,
    pub text: String,
}

impl Chromium {
    /// Starts the browser with a fresh profile and one blank page. `extra` flags are added.
    pub fn start(extra: &[&str]) -> Chromium {
        let chromium = Path::new("/usr/bin/chromium");
        assert!(chromium.exists(), "headless Chromium is needed: .ci/deps installs Debian's chromium");
        let profile = tempfile::tempdir().unwrap();
        let stderr = std::fs::File::create(profile.path().join("stderr.txt")).unwrap();
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(r#"exec "$0" "$@" 3<&0 4>&1 0</dev/null 1>&2"#)
            .arg(chromium)
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"])
            .args([
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-dev-shm-usage",
            ])
            .arg("--remote-debugging-pipe")
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg("about:blank")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let to = child.stdin.take().unwrap();
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let (tx, from) = mpsc::channel();
        std::thread::spawn(move || {
            let mut message = Vec::new();
            while reader.read_until(0, &mut message).is_ok_and(|n| n > 0) {
                message.pop();
                if let Ok(v) = serde_json::from_slice::<Value>(&message)
                    && tx.send(v).is_err()
                {
                    return;
                }
                message.clear();
            }
        });
        let mut browser =
            Chromium { child, to, from, next_id: 0, page: String::new(), trail: Vec::new(), profile };
        let target = browser.send(None, "Target.createTarget", json!({"url": "about:blank"}));
        let attached = browser.send(
            None,
            "Target.attachToTarget",
            json!({"targetId": target["targetId"], "flatten": true}),
        );
        browser.page = attached["sessionId"].as_str().unwrap().to_owned();
        browser.call("Network.enable", json!({}));
        browser.call("Page.enable", json!({}));
        browser
    }

    /// One protocol call; events that arrive meanwhile go to the trail.
    fn send(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            message["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        self.to.write_all(&bytes).unwrap();
        let until = Instant::now() + DEADLINE;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            let v = self
                .from
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("{method}: no answer\n{}", self.stderr()));
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
            self.event(&v);
        }
    }

    /// A call on the page.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let page = self.page.clone();
        self.send(Some(&page), method, params)
    }

    fn event(&mut self, v: &Value) {
        let p = &v["params"];
        match v["method"].as_str() {
            Some("Network.requestWillBeSent") if p["redirectResponse"].is_object() => {
                let r = &p["redirectResponse"];
                self.trail
                    .push((r["status"].as_u64().unwrap_or(0) as u16, r["url"].as_str().unwrap_or("").into()));
            }
            Some("Network.responseReceived") if p["type"] == "Document" => {
                let r = &p["response"];
                self.trail
                    .push((r["status"].as_u64().unwrap_or(0) as u16, r["url"].as_str().unwrap_or("").into()));
            }
            _ => {}
        }
    }

    /// Opens `url` in the page, as typing it in the address bar does.
    pub fn navigate(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url}));
    }

    /// What the page shows now.
    pub fn shown(&mut self) -> Shown {
        let expression = "JSON.stringify([location.href, document.readyState, document.body ? document.body.innerText : ''])";
        let r = self.call("Runtime.evaluate", json!({"expression": expression, "returnByValue": true}));
        let v: Value =
            r["result"]["value"].as_str().and_then(|s| serde_json::from_str(s).ok()).unwrap_or(Value::Null);
        Shown {
            url: v[0].as_str().unwrap_or_default().to_owned(),
            ready: v[1] == "complete",
            text: v[2].as_str().unwrap_or_default().to_owned(),
        }
    }

    /// Waits (bounded) until a loaded page's URL starts with `prefix`, then returns it.
    pub fn wait_for_page(&mut self, prefix: &str) -> Shown {
        let until = Instant::now() + DEADLINE;
        loop {
            let shown = self.shown();
            if shown.ready && shown.url.starts_with(prefix) {
                return shown;
            }
            assert!(
                Instant::now() < until,
                "never reached {prefix}: now {shown:?}\ntrail: {:#?}",
                self.trail
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every cookie the browser keeps, as it keeps them (name, domain, path, secure, sameSite...).
    pub fn cookies(&mut self) -> Vec<Value> {
        let r = self.send(None, "Storage.getCookies", json!({}));
        r["cookies"].as_array().cloned().unwrap_or_default()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.profile.path().join("stderr.txt")).unwrap_or_default()
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        // Ask it to close (its helper processes go with it); kill only the one we started if
        // it does not.
        let _ = self.to.write_all(b"{\"id\":0,\"method\":\"Browser.close\",\"params\":{}}\0");
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
