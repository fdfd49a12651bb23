//! The real `mfagate` binary: check-config, --version, and `run` until SIGTERM.

use crate::support::*;
use mfagate::dev::echo::Echo;
use mfagate::dev::idp::{DevIdp, TokenRequest};
use std::process::{Command, Stdio};

pub(crate) fn mfagate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mfagate"))
}

#[test]
fn check_config_names_every_problem_with_its_key_path() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        r#"
[decision_log]
path = "d.jsonl"
[[issuer]]
name = "x"
issuer = "https://sts.windows.net/{tenantid}/"
jwks_uri = "https://login.microsoftonline.com/common/discovery/keys"
audiences = ["api://a"]
algorithms = ["HS256"]
tenants = ["not-a-guid"]
[[issuer]]
name = "silent"
issuer = "https://login.microsoftonline.com/{tenantid}/v2.0"
jwks_uri = "https://login.microsoftonline.com/common/discovery/v2.0/keys"
audiences = ["api://a"]
typ = []
[[issuer]]
name = "mixed"
issuer = "https://login.microsoftonline.com/{tenantid}/v2.0"
jwks_uri = "https://login.microsoftonline.com/common/discovery/v2.0/keys"
audiences = ["api://a"]
tenants = ["72f988bf-86f1-41af-91ab-2d7cd011db47", "*"]
typ = ["at+jwt", "text/plain"]
[[route]]
name = "a"
path_prefix = "/v1/"
upstream = "localhost:8081"
challenge = "entra-claims"
saml_bearer_grant = true
"#,
    )
    .unwrap();
    let out = mfagate().args(["check-config"]).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    for line in [
        "issuer \"x\".algorithms[0]: HS* is refused for key-set issuers",
        "issuer \"x\".tenants[0]: not a GUID",
        "issuer \"silent\".tenants: an issuer with {tenantid} would accept every tenant's tokens: list the tenant ids allowed, or set tenants = [\"*\"] to accept any tenant",
        "issuer \"silent\".typ: an empty list refuses every token",
        "issuer \"mixed\".tenants[1]: \"*\" (any tenant) must be the only entry",
        "issuer \"mixed\".typ: not a JWT media type: \"text/plain\"",
        "route \"a\".upstream: not a URL",
        "route \"a\".auth_context: challenge = \"entra-claims\" needs an auth_context id",
        "route \"a\".saml_bearer_grant: needs a [[saml_idp]] to verify the assertions",
        "route \"a\".grant_audience: saml_bearer_grant needs the authorization server's SAML audience",
    ] {
        assert!(err.contains(line), "missing {line:?} in:\n{err}");
    }
    let typo = dir.path().join("typo.toml");
    std::fs::write(&typo, "[decision_log]\npath = \"d\"\nunknown_key = 1\n").unwrap();
    let out = mfagate().args(["check-config"]).arg(&typo).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown_key"));
    // `run` refuses a bad config the same way, before binding anything.
    let out = mfagate().args(["run", "--config"]).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("route \"a\".upstream: not a URL"));

    let demo = certs().join("../examples/demo.toml");
    let out = mfagate().arg("check-config").arg(&demo).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn version_and_help() {
    let out = mfagate().arg("--version").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("mfagate {}", env!("CARGO_PKG_VERSION")));
    let out = mfagate().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for word in ["run", "check-config", "demo"] {
        assert!(help.contains(word), "{help}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_serves_until_sigterm_and_flushes_the_log() {
    let Fixture { idp, echo, dir, config } = fixture(|text| text).await;
    let (mut child, addr) = run(&config);
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let token = idp.mint(&TokenRequest::default()).unwrap();
    let no_mfa =
        idp.mint(&TokenRequest { amr: Some(vec!["pwd".into()]), ..TokenRequest::default() }).unwrap();
    let mut statuses = Vec::new();
    for t in [&token, &no_mfa] {
        let req = http::Request::get(format!("http://{addr}/v1/x"))
            .header("authorization", format!("Bearer {t}"))
            .body(Default::default())
            .unwrap();
        // The first request may race the initial key fetch: readiness is what a balancer waits for.
        let mut status = client.request(req.clone()).await.unwrap().status();
        while status == http::StatusCode::SERVICE_UNAVAILABLE {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            status = client.request(req.clone()).await.unwrap().status();
        }
        statuses.push(status.as_u16());
    }
    assert_eq!(statuses, [200, 401]);
    // The hostile path table, through the real binary.
    let app_only = idp.mint(&TokenRequest { app_only: true, ..TokenRequest::default() }).unwrap();
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    let expected = crate::hostile::send_traversals(addr, &echo, &app_only).await;
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let log = read_log(&dir.path().join("decisions.jsonl"));
    let (first, traversals) = log.split_at(log.len() - expected.len());
    let tail: Vec<_> = first.iter().rev().take(2).map(|r| r["reason"].as_str().unwrap().to_owned()).collect();
    assert_eq!(tail, ["mfa_missing", "mfa_satisfied"]);
    crate::hostile::check_traversal_records(traversals, &expected);
}

/// The unit's `ExecReload` sends SIGHUP: the gateway must log it and keep serving, not die of the
/// signal's default action.
#[tokio::test]
async fn sighup_is_logged_and_the_gateway_keeps_serving() {
    let f = fixture(|text| text).await;
    let mut running = start(&f.config, &[]);
    let pid = running.child.id().to_string();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    let logged = loop {
        let line =
            running.stderr.recv_timeout(std::time::Duration::from_secs(30)).expect("the SIGHUP is logged");
        if line.contains("SIGHUP") {
            break line;
        }
    };
    assert!(logged.contains("reloading the configuration"), "{logged}");
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let rsp = client.get(format!("http://{}/v1/x", running.addr).parse().unwrap()).await.unwrap();
    assert_eq!(rsp.status(), http::StatusCode::UNAUTHORIZED, "still serving after SIGHUP");
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    assert!(running.child.wait().unwrap().success());
}

/// What `mfagate run` needs around it: a development IdP and an echo upstream on the real
/// clock, and a folder holding the configuration.
pub(crate) struct Fixture {
    pub idp: DevIdp,
    pub echo: Echo,
    pub dir: tempfile::TempDir,
    /// `mfagate.toml` in `dir`: the test configuration, changed by `edit`.
    pub config: std::path::PathBuf,
}

/// Starts the IdP and the upstream and writes [`CONFIG`] (filled in, then changed by `edit`).
pub(crate) async fn fixture(edit: impl FnOnce(String) -> String) -> Fixture {
    let clock = std::sync::Arc::new(mfagate::clock::SystemClock);
    let idp = DevIdp::start(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(), dev_keys(), clock)
        .unwrap();
    let echo = Echo::start(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mfagate.toml");
    std::fs::write(&config, edit(render_config(CONFIG, &idp, &echo, dir.path()))).unwrap();
    Fixture { idp, echo, dir, config }
}

/// Starts `mfagate run --config <config>` and returns it with the address it listens on.
pub(crate) fn run(config: &std::path::Path) -> (std::process::Child, String) {
    let running = start(config, &[]);
    (running.child, running.addr)
}

/// A running `mfagate run`, with the addresses its log names and the rest of its log.
pub(crate) struct Running {
    pub child: std::process::Child,
    /// Its standard output (piped: read it when the decision log goes there).
    pub stdout: Option<std::process::ChildStdout>,
    pub addr: String,
    pub admin: Option<String>,
    pub private: Option<String>,
    /// Standard error, line by line, from the line after "Gateway listening".
    pub stderr: std::sync::mpsc::Receiver<String>,
    /// Every line read before it.
    pub early: Vec<String>,
}

/// Starts `mfagate run --config <config> <args>`; reads the addresses from its log (text or JSON).
pub(crate) fn start(config: &std::path::Path, args: &[&str]) -> Running {
    let mut child = mfagate()
        .args(["run", "--config"])
        .arg(config)
        .args(args)
        .env("RUST_LOG", "info")
        // No NO_COLOR: a standard error that is not a terminal gets no colour codes anyway.
        .env_remove("NO_COLOR")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take();
    let rx = lines_of(child.stderr.take().unwrap());
    let (mut admin, mut private, mut early) = (None, None, Vec::new());
    let addr = loop {
        let line = rx.recv_timeout(std::time::Duration::from_secs(30)).expect("gateway starts");
        early.push(line.clone());
        let (message, addr) = message_and_addr(&line);
        match (message.as_str(), addr) {
            ("Gateway listening", Some(a)) => break a,
            ("Admin listening", Some(a)) => admin = Some(a),
            ("Private admin listening", Some(a)) => private = Some(a),
            _ => {}
        }
    };
    Running { child, stdout, addr, admin, private, stderr: rx, early }
}

/// The message and `addr` field of one log line, JSON or text.
fn message_and_addr(line: &str) -> (String, Option<String>) {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
        let field = |k: &str| v["fields"][k].as_str().map(str::to_owned);
        return (field("message").unwrap_or_default(), field("addr"));
    }
    let line = strip_ansi(line);
    for message in ["Private admin listening", "Admin listening", "Gateway listening"] {
        if let Some(rest) = line.split(message).nth(1) {
            let addr = rest.split("addr=").nth(1).and_then(|a| a.split_whitespace().next());
            return (message.to_owned(), addr.map(str::to_owned));
        }
    }
    (String::new(), None)
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
