//! Configuration through the real binary: secrets read from files, `${NAME}` from the
//! environment (set on the child process only), what `check-config` refuses and what it only
//! warns about, and host names in addresses.

use crate::support::*;
use std::path::Path;
use std::process::{Command, Output};

fn mfagate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mfagate"))
}

pub(crate) const KEY_A: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const KEY_B: &str = "YW5vdGhlci0zMi1ieXRlLXNlc3Npb24ta2V5LWhlcmU=";
const TOKEN: &str = "k7Qx2b9LmN4pR8sT1vW6yZ3cF5hJ0dG2aE7uI9oP4q=";

/// A valid configuration: one issuer, one API route to this machine, no warnings.
pub(crate) const BASE: &str = r#"
[listen]
addr = "127.0.0.1:0"
[decision_log]
path = "decisions.jsonl"
[[issuer]]
name = "entra"
issuer = "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0"
jwks_uri = "https://login.microsoftonline.com/common/discovery/v2.0/keys"
audiences = ["api://partner"]
[[route]]
name = "api"
path_prefix = "/v1/"
upstream = "http://127.0.0.1:3000"
"#;

/// Runs `check-config` on `text` written to `dir/mfagate.toml`, with `env` set on the child only
/// (every other name this file uses removed).
fn check(dir: &Path, text: &str, env: &[(&str, &str)]) -> Output {
    let file = dir.join("mfagate.toml");
    std::fs::write(&file, text).unwrap();
    let mut cmd = mfagate();
    cmd.arg("check-config").arg(&file);
    for name in ["MFAGATE_TEST_UPSTREAM", "MFAGATE_TEST_HOST", "MFAGATE_TEST_CLIENT_SECRET"] {
        cmd.env_remove(name);
    }
    cmd.envs(env.iter().copied()).output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn secrets_come_from_files_and_values_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("client.secret"), "from-a-file\n").unwrap();
    std::fs::write(dir.path().join("session.keys"), format!("# the new key seals\n{KEY_B}\n\n{KEY_A}\n"))
        .unwrap();
    std::fs::write(dir.path().join("admin.token"), format!("{TOKEN}\n")).unwrap();
    let text = r#"
[listen]
addr = "127.0.0.1:0"
[admin]
addr = "127.0.0.1:0"
private_addr = "127.0.0.1:0"
token_file = "admin.token"
[decision_log]
path = "decisions.jsonl"
[[issuer]]
name = "entra"
issuer = "https://${MFAGATE_TEST_HOST}/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0"
discovery = "https://${MFAGATE_TEST_HOST}/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0/.well-known/openid-configuration"
audiences = ["api://partner"]
client_id = "mfagate-web"
client_secret_file = "client.secret"
[[route]]
name = "api"
path_prefix = "/v1/"
upstream = "${MFAGATE_TEST_UPSTREAM}"
[session]
keys_file = "session.keys"
[report.application_names]
"app" = "costs $${HOME}"
"#;
    let env =
        [("MFAGATE_TEST_UPSTREAM", "http://127.0.0.1:3000"), ("MFAGATE_TEST_HOST", "login.example.com")];
    let out = check(dir.path(), text, &env);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(": ok (1 issuers, 1 routes)"));
    assert_eq!(stderr(&out), "", "no warnings");

    // What the gateway would run with: the same loader, the environment passed in.
    let lookup = |name: &str| env.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_owned());
    let cfg = mfagate::Config::load_with_env(&dir.path().join("mfagate.toml"), &lookup).unwrap();
    let client = cfg.issuers[0].client.as_ref().unwrap();
    assert_eq!(client.client_secret.expose(), "from-a-file");
    let keys: Vec<&str> = cfg.session.keys.iter().map(|k| k.expose()).collect();
    assert_eq!(keys, [KEY_B, KEY_A]);
    let private = cfg.private_admin.as_ref().unwrap();
    assert!(private.token.as_ref().unwrap().matches(TOKEN.as_bytes()));
    assert_eq!(cfg.routes[0].upstream.to_string(), "http://127.0.0.1:3000/");
    assert!(cfg.issuers[0].issuer.starts_with("https://login.example.com/"));
    assert_eq!(cfg.report.application_name("app"), "costs ${HOME}", "$${{ is a literal ${{");
    let debug = format!("{cfg:?}");
    for secret in ["from-a-file", KEY_A, KEY_B, TOKEN] {
        assert!(!debug.contains(secret), "{secret} in Debug output");
    }

    // An unset variable is an error at its key path, named by the entry's name.
    let out = check(dir.path(), text, &env[1..]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out)
            .contains("  route \"api\".upstream: environment variable MFAGATE_TEST_UPSTREAM is not set\n"),
        "{}",
        stderr(&out)
    );
    let inline = text.replace(
        "client_secret_file = \"client.secret\"",
        "client_secret = \"${MFAGATE_TEST_CLIENT_SECRET}\"",
    );
    let out = check(dir.path(), &inline, &env);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(
            "issuer \"entra\".client_secret: environment variable MFAGATE_TEST_CLIENT_SECRET is not set"
        ),
        "{err}"
    );
    // The variable set, the inline form works as the file did.
    let mut with_secret = env.to_vec();
    with_secret.push(("MFAGATE_TEST_CLIENT_SECRET", "from-the-environment"));
    let out = check(dir.path(), &inline, &with_secret);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn check_config_refuses_each_problem_with_its_key_path() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("empty.secret"), "\n").unwrap();
    std::fs::write(d.join("short.token"), "too-short\n").unwrap();
    std::fs::write(d.join("not-a-cert.pem"), "not a certificate\n").unwrap();
    std::fs::write(d.join("not.json"), "{\"keys\": [").unwrap();
    let certs = certs().display().to_string();
    let client = "client_id = \"web\"\n";
    let api = "[[route]]\nname = \"copy\"\npath_prefix = \"/V1\"\nupstream = \"http://127.0.0.1:3001\"\n";
    let cases: Vec<(String, String)> = vec![
        (
            BASE.replace("audiences", &format!("{client}client_secret = \"s\"\nclient_secret_file = \"empty.secret\"\naudiences")),
            "issuer \"entra\".client_secret_file: set client_secret or client_secret_file, not both".into(),
        ),
        (
            BASE.replace("audiences", &format!("{client}client_secret_file = \"empty.secret\"\naudiences")),
            format!("issuer \"entra\".client_secret_file: {} is empty", d.join("empty.secret").display()),
        ),
        (
            BASE.replace("audiences", &format!("{client}client_secret_file = \"missing.secret\"\naudiences")),
            format!("issuer \"entra\".client_secret_file: cannot read {}", d.join("missing.secret").display()),
        ),
        (
            format!("{BASE}[session]\nkeys = [\"{KEY_A}\"]\nkeys_file = \"keys\"\n"),
            "session.keys_file: set keys or keys_file, not both".into(),
        ),
        (
            format!("{BASE}[session]\nkeys_file = \"empty.secret\"\n"),
            "session.keys_file: ".into(),
        ),
        (
            format!("{BASE}[admin]\naddr = \"127.0.0.1:9090\"\nprivate_addr = \"127.0.0.1:9091\"\ntoken_file = \"short.token\"\n"),
            "admin.token_file: ".into(),
        ),
        // Same host, methods and canonical prefix (paths match case-insensitively by default).
        (format!("{BASE}{api}"), "route \"copy\".path_prefix: same host, methods and prefix as route \"api\"".into()),
        (
            BASE.replace("\"127.0.0.1:0\"", "\"no-such-host.invalid:8080\""),
            "listen.addr: not host:port, [v6]:port or :port, or the host does not resolve: \"no-such-host.invalid:8080\"".into(),
        ),
        (
            format!("{BASE}[admin]\naddr = \"127.0.0.1\"\n"),
            "admin.addr: not host:port".into(),
        ),
        (
            BASE.replace("addr = \"127.0.0.1:0\"", "addr = \"127.0.0.1:0\"\ntls_cert = \"missing.pem\"\ntls_key = \"missing.key\""),
            format!("listen.tls_cert: {}", d.join("missing.pem").display()),
        ),
        (
            BASE.replace(
                "addr = \"127.0.0.1:0\"",
                &format!("addr = \"127.0.0.1:0\"\ntls_cert = \"{certs}/server.pem\"\ntls_key = \"{certs}/saml-idp.key\""),
            ),
            "listen.tls_key: ".to_owned() + &certs + "/saml-idp.key: does not go with listen.tls_cert",
        ),
        (
            format!("{BASE}[outbound]\nca_file = \"not-a-cert.pem\"\n"),
            format!("outbound.ca_file: {}: no PEM certificate in file", d.join("not-a-cert.pem").display()),
        ),
        (
            BASE.replace("jwks_uri = \"https://login.microsoftonline.com/common/discovery/v2.0/keys\"", "jwks_file = \"not.json\""),
            format!("issuer \"entra\".jwks_file: {}: not JSON", d.join("not.json").display()),
        ),
        (
            BASE.replace("jwks_uri = \"https://login.microsoftonline.com/common/discovery/v2.0/keys\"", "jwks_file = \"gone.json\""),
            format!("issuer \"entra\".jwks_file: cannot read {}", d.join("gone.json").display()),
        ),
        (
            format!(
                "{BASE}[saml]\nentity_id = \"https://gw.example/saml\"\n[[saml_idp]]\nname = \"adfs\"\nmetadata = \"gone.xml\"\n"
            ),
            format!("saml_idp \"adfs\".metadata: {}", d.join("gone.xml").display()),
        ),
    ];
    for (text, line) in cases {
        let out = check(d, &text, &[]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{line}: {err}");
        assert!(err.contains(&format!("  {line}")), "missing {line:?} in:\n{err}");
    }
    // Not duplicates: another host, other methods, or another prefix.
    for other in [
        api.replace("path_prefix", "host = \"partner.example.com\"\npath_prefix"),
        api.replace("path_prefix", "methods = [\"POST\"]\npath_prefix"),
        api.replace("\"/V1\"", "\"/v1/admin\""),
    ] {
        let out = check(d, &format!("{BASE}{other}"), &[]);
        assert_eq!(out.status.code(), Some(0), "{other}: {}", stderr(&out));
    }
}

#[test]
fn warnings_are_printed_apart_from_errors() {
    let dir = tempfile::tempdir().unwrap();
    let certs = certs().display().to_string();
    // The API route names its issuers, so one left out is unused.
    let named = BASE.replace(
        "upstream = \"http://127.0.0.1:3000\"",
        "upstream = \"http://127.0.0.1:3000\"\nissuers = [\"entra\", \"twin\"]",
    );
    let warned = format!(
        r#"{named}
[[issuer]]
name = "twin"
issuer = "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0"
jwks_uri = "https://login.microsoftonline.com/common/discovery/v2.0/keys"
audiences = ["api://other"]
[[issuer]]
name = "spare"
issuer = "https://spare.example.com/"
jwks_uri = "http://keys.example.com/keys"
audiences = ["api://spare"]
[[route]]
name = "legacy"
path_prefix = "/legacy/"
upstream = "http://backend.example.com:8080"
mode = "report-only"
issuers = ["entra"]
[outbound]
ca_file = "{certs}/ca.pem"
[session]
keys = ["{KEY_A}"]
secure = false
"#
    );
    let out = check(dir.path(), &warned, &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "warnings only: {err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(": ok (3 issuers, 2 routes)"));
    for line in [
        "warning: issuer \"twin\".issuer: the same issuer URL as issuer \"entra\", which takes every such token first",
        "warning: issuer \"spare\".jwks_uri: http://keys.example.com/keys is plain http:// to another host",
        "warning: route \"legacy\".mode: report-only: refusals are logged, not enforced",
        "warning: route \"legacy\".upstream: http://backend.example.com:8080/ is plain http:// to another host",
        "warning: outbound.ca_file: this is mfagate's development ca.pem from certs/",
        "warning: session.secure: false: session cookies also travel over plain HTTP",
    ] {
        assert!(err.contains(line), "missing {line:?} in:\n{err}");
    }
    // "spare" is unused; "twin" is named by a route.
    assert!(err.contains("warning: issuer \"spare\": no route accepts its tokens"), "{err}");
    assert!(!err.contains("warning: issuer \"twin\": no route"), "{err}");
    assert!(err.lines().all(|l| l.starts_with("warning: ")), "{err}");

    // With an error too: exit 1, errors first, the warnings still shown and marked.
    let out = check(
        dir.path(),
        &warned.replace("mode = \"report-only\"", "mode = \"report-only\"\ntimeout_secs = 0"),
        &[],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let error = err.find("  route \"legacy\".timeout_secs: must be at least 1").expect("the error");
    let warning = err.find("  warning: route \"legacy\".mode: report-only").expect("the warning");
    assert!(error < warning, "{err}");
    assert!(!err.contains("  warning: route \"legacy\".timeout_secs"), "{err}");
}

#[test]
fn addresses_take_host_names_and_run_logs_the_warnings() {
    let dir = tempfile::tempdir().unwrap();
    for (listen, admin) in
        [("localhost:8080", "[::1]:9090"), (":8080", "localhost:9090"), ("[::]:8080", ":9090")]
    {
        let text = BASE.replace("\"127.0.0.1:0\"", &format!("{listen:?}\n[admin]\naddr = {admin:?}"));
        let out = check(dir.path(), &text, &[]);
        assert_eq!(out.status.code(), Some(0), "{listen} {admin}: {}", stderr(&out));
    }
    // The real gateway: a host name resolved, `:port` on every interface, the warnings logged.
    let config = dir.path().join("run.toml");
    let text = BASE
        .replace("\"127.0.0.1:0\"", "\"localhost:0\"\nshutdown_delay_secs = 0\n[admin]\naddr = \":0\"")
        .replace(
            "jwks_uri = \"https://login.microsoftonline.com/common/discovery/v2.0/keys\"",
            "jwks_uri = \"http://127.0.0.1:9/keys\"",
        )
        + "mode = \"report-only\"\n";
    std::fs::write(&config, text).unwrap();
    let running = crate::binary::start(&config, &[]);
    let (mut child, addr, before) = (running.child, running.addr, running.early);
    let stop = |child: &mut std::process::Child| {
        let pid = child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        child.wait().unwrap()
    };
    let logged = before.iter().any(|l| l.contains("configuration: route") && l.contains("report-only"));
    let admin = running.admin;
    let status = stop(&mut child);
    assert!(status.success(), "{status:?}");
    assert!(addr.starts_with("127.0.0.1:"), "localhost resolved to {addr}");
    assert!(logged, "the warning is logged at start: {before:#?}");
    assert!(admin.as_deref().is_some_and(|a| a.starts_with("0.0.0.0:")), "{admin:?}");
}
