//! Findings of the sixth review (issue 10: secrets, the private admin plane, request ids), each
//! reproduced here before its fix.

use std::path::Path;

const BASE: &str = r#"
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

const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// `keys = "${SESSION_KEY}"` (a string where a list belongs, an easy slip) made the type error
/// quote the value taken from the environment: the session key went to check-config's output
/// and to the journal, though it never was in the file. Validation quotes values too (a URL
/// with a password from the environment and a wrong scheme).
#[test]
fn a_type_error_never_quotes_a_value_from_the_environment() {
    let env = |name: &str| (name == "MFAGATE_UPSTREAM_PASSWORD").then(|| KEY.to_owned());
    let text = BASE
        .replace("\"http://127.0.0.1:3000\"", "\"ftp://svc:${MFAGATE_UPSTREAM_PASSWORD}@127.0.0.1:3000\"");
    let err = mfagate::Config::from_toml_with_env(&text, Path::new("."), &env).unwrap_err().to_string();
    assert!(!err.contains(KEY), "the secret is in the error: {err}");
    assert!(err.contains("not a URL") && err.contains("${MFAGATE_UPSTREAM_PASSWORD}"), "{err}");

    let env = |name: &str| (name == "MFAGATE_SESSION_KEY").then(|| KEY.to_owned());
    for text in [
        format!("{BASE}[session]\nkeys = \"${{MFAGATE_SESSION_KEY}}\"\n"),
        // The same value with escapes serde prints differently.
        format!("{BASE}[session]\nkeys = \"pre\\\"${{MFAGATE_SESSION_KEY}}\"\n"),
    ] {
        let err = mfagate::Config::from_toml_with_env(&text, Path::new("."), &env).unwrap_err().to_string();
        assert!(!err.contains(KEY), "the secret is in the error: {err}");
        assert!(err.contains("${MFAGATE_SESSION_KEY}"), "the error says what was written: {err}");
    }
}
