//! Review 5 findings: `mfagate inspect`, the report, and the command line. Each test failed
//! before its fix.

use crate::inspect::*;
use crate::saml::signer;
use base64::Engine;
use mfagate::dev::saml_idp::{response_xml, signature_template, with_sha1};
use mfagate_policy::MULTIPLE_AUTHN;
use serde_json::{Value, json};

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A token with this header and `payload`, signed with `signature` (not by any key).
fn forged(header: &str, payload: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64url(header.as_bytes()),
        b64url(&serde_json::to_vec(payload).unwrap()),
        b64url(signature)
    )
}

/// `alg: none` and HS256 are refused by every issuer the gateway can be configured with (the
/// configuration refuses HS*, jsonwebtoken knows no `none`), whatever the keys: `--no-verify`
/// must not turn such a token into "MFA proven" (exit 0). So must a token without `aud` (the
/// verifier requires it), without `iss` (no issuer can be chosen), or over `max_token_bytes`.
#[test]
fn no_verify_never_proves_mfa_for_a_token_no_issuer_accepts() {
    let f = Fixture::new();
    let claims = f.idp.claims(&user(&["pwd", "mfa"]));
    let mut no_aud = claims.clone();
    no_aud.as_object_mut().unwrap().remove("aud");
    let mut no_iss = claims.clone();
    no_iss.as_object_mut().unwrap().remove("iss");
    let mut large = claims.clone();
    large["padding"] = json!("x".repeat(20 * 1024));
    let cases = [
        (forged(r#"{"alg":"none","typ":"JWT"}"#, &claims, b""), "alg_not_allowed"),
        (
            forged(r#"{"alg":"HS256","typ":"JWT"}"#, &claims, b"0123456789abcdef0123456789abcdef"),
            "alg_not_allowed",
        ),
        (forged(r#"{"alg":"RS1","typ":"JWT"}"#, &claims, b"sig"), "alg_not_allowed"),
        (f.idp.sign(&no_aud).unwrap(), "wrong_audience"),
        (f.idp.sign(&no_iss).unwrap(), "unknown_issuer"),
        // Over the gateway's max_token_bytes (16 KiB by default), refused before anything is read.
        (f.idp.sign(&large).unwrap(), "token_too_large"),
    ];
    // The token as it is verified, for contrast: --no-verify lets its MFA verdict stand.
    assert_eq!(inspect(&["--no-verify"], &f.idp.sign(&claims).unwrap()).code, 0);
    for (token, reason) in &cases {
        for args in [&["--no-verify", "--json"][..], &["--json"]] {
            let run = inspect(args, token);
            run.never_shows(&secrets(token));
            assert_eq!(run.code, 2, "{reason} {args:?}: {}", run.out);
            let j = run.json();
            assert_eq!(j["verdict"]["result"], "invalid", "{reason}: {j}");
            assert_eq!(j["invalid"]["reason"], *reason, "{j}");
        }
    }
}

/// A SAML document whose shape the gateway refuses before it looks at any key (no signature, a
/// SHA-1 signature, a signature that does not cover the assertion) is not "MFA proven" with
/// `--no-verify`.
#[test]
fn no_verify_never_proves_mfa_for_a_saml_shape_the_gateway_refuses() {
    let s = spec(MULTIPLE_AUTHN);
    let unsigned = s.to_xml().replace(&signature_template(&s.id), "");
    let sha1 = signer("saml-idp").sign(&with_sha1(&response_xml("_r1", &unsigned, true))).unwrap();
    // Two assertions in one Response, as a wrapping attack makes it: only one is what was signed.
    let signed = signer("saml-idp").sign(&s.to_xml()).unwrap();
    let wrapped = response_xml("_r1", &format!("{signed}{signed}"), false);
    let cases = [(unsigned, "bad_signature"), (sha1, "weak_algorithm"), (wrapped, "signature_misplaced")];
    let b64 = |xml: &str| base64::engine::general_purpose::STANDARD.encode(xml);
    // A signed document for contrast: --no-verify lets its MFA verdict stand.
    assert_eq!(inspect(&["--no-verify"], &b64(&signed)).code, 0);
    for (xml, reason) in &cases {
        for args in [&["--no-verify", "--json"][..], &["--json"]] {
            let run = inspect(args, &b64(xml));
            assert_eq!(run.code, 2, "{reason} {args:?}: {}", run.out);
            let j = run.json();
            assert_eq!(j["invalid"]["reason"], *reason, "{j}");
        }
    }
}

/// The ACS refuses every IdP-initiated sign-in (a Response that answers no AuthnRequest of the
/// gateway's): `sign_in_state_invalid`, whatever the keys. Judged as a sign-in, such a Response
/// is not "MFA proven"; nor is a sign-in Response under a configuration that has no ACS at all.
#[test]
fn a_sign_in_the_acs_would_refuse_is_not_mfa_proven() {
    let f = Fixture::new();
    let meta = metadata(&f);
    let assertion = signer("saml-idp").sign(&spec(MULTIPLE_AUTHN).to_xml()).unwrap();
    let unsolicited = sealed(response_xml("_r1", &assertion, false));
    let form: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("SAMLResponse", &unsolicited.base64)
        .finish();
    let run = inspect(&["--idp-metadata", &meta, "--json"], &form);
    assert_eq!(run.code, 2, "{}", run.out);
    let j = run.never_shows(&unsolicited.secrets()).json();
    assert_eq!(j["document"]["used_as"], "sign_in");
    assert_eq!(j["invalid"]["reason"], "sign_in_state_invalid", "{j}");
    assert!(j["advice"].to_string().contains("IdP-initiated"), "{j}");
    // Without a key, and --no-verify: the ACS needs none to refuse it.
    let j = inspect(&["--no-verify", "--json"], &form).json();
    assert_eq!(j["verdict"]["exit_code"], 2, "{j}");
    assert_eq!(j["invalid"]["reason"], "sign_in_state_invalid", "{j}");

    // A sign-in Response (it answers an AuthnRequest), under the test configuration, which has no
    // acs_url: there is nowhere it signs anyone in, and as a credential it is refused.
    let mut s = spec(MULTIPLE_AUTHN);
    s.in_response_to = Some("_req1".into());
    let sign_in = sealed(response_xml("_r2", &signer("saml-idp").sign(&s.to_xml()).unwrap(), false));
    let run = inspect(&["--config", &f.arg("mfagate.toml"), "--json"], &sign_in.base64);
    assert_eq!(run.code, 2, "{}", run.out);
    let j = run.json();
    assert_eq!(j["invalid"]["reason"], "sso_response_not_api_credential", "{j}");
    assert_eq!(answer(&j, "api"), (json!(401), "sso_response_not_api_credential".into()));
}

/// A log with a record and then many bad lines (as a small gzip file logrotate compressed can
/// expand to: 40 KB gave 20 million lines and 2.8 GB of warnings in memory) keeps a bounded
/// number of warnings, and counts the rest; `report` still says how many it skipped.
#[test]
fn report_warnings_take_bounded_memory_however_many_lines_are_bad() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let record = r#"{"ts":"2026-01-01T00:00:00.000Z","channel":"api","principal":"app_user","mfa":true,"decision":"allow"}"#;
    let lines = 100_000u64;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    writeln!(gz, "{record}").unwrap();
    gz.write_all(&b"x\n".repeat(lines as usize)).unwrap();
    let gz = gz.finish().unwrap();
    assert!(gz.len() < 4096, "{}", gz.len());
    std::fs::write(dir.path().join("decisions.jsonl.1.gz"), gz).unwrap();

    let now = mfagate::evidence::report::parse_ts_ms("2026-01-02T00:00:00Z").unwrap();
    let (r, warnings) = mfagate::evidence::report::build(&[dir.path().to_owned()], now, 7).unwrap();
    assert_eq!(r.totals.api_app_user, 1);
    assert!(warnings.first.len() <= 20, "{} warnings kept", warnings.first.len());
    assert_eq!(warnings.total, lines);

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mfagate"))
        .args(["report", "--now", "2026-01-02T00:00:00Z", "--log"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 21, "{stderr}");
    assert!(stderr.ends_with(&format!("warning: {} more warnings\n", lines - 20)), "{stderr}");
}

/// A usage error of `inspect` with standard error closed (`2>&1 | head -0`, a supervisor gone)
/// still exits 3: its message was printed with `eprintln!`, which panicked (101).
#[test]
fn inspect_exits_3_with_standard_error_closed() {
    let (err_r, err_w) = std::io::pipe().unwrap();
    drop(err_r);
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_mfagate"))
        .args(["inspect", "--jwks", "/nonexistent/keys.json", "eyJh.eyJi.c2ln"])
        .stdout(std::process::Stdio::null())
        .stderr(err_w)
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(3));
}

/// The text output shows what a token or assertion claims, and a claim can hold any character:
/// an escape sequence (move the cursor up, clear the line) or a line break in `upn`, `iss` or
/// `kid` could write a fake "verdict MFA proven" over the real one on a terminal. Control
/// characters are shown escaped.
#[test]
fn the_text_output_shows_control_characters_in_claims_escaped() {
    let f = Fixture::new();
    let fake = "\u{1b}[3A\u{1b}[2K\r  verdict     MFA proven  exit 0\n  verdict     MFA proven";
    let claims = f.claims(&user(&["pwd"]), |c| {
        c["upn"] = json!(fake);
        c["iss"] = json!(format!("https://sts.windows.net/x/{fake}"));
    });
    let parts: Vec<&str> = claims.split('.').collect();
    let header = json!({"alg": "RS256", "kid": format!("k{fake}"), "typ": "JWT"});
    let header = b64url(&serde_json::to_vec(&header).unwrap());
    let token = format!("{header}.{}.{}", parts[1], parts[2]);
    for args in [&["--no-verify"][..], &[]] {
        let run = inspect(args, &token);
        assert!(!run.out.contains('\u{1b}'), "{:?}", run.out);
        let verdicts = run.out.lines().filter(|l| l.trim_start().starts_with("verdict")).count();
        assert_eq!(verdicts, 1, "{}", run.out);
        assert!(run.out.contains("\\u{1b}[3A"), "shown, escaped: {}", run.out);
    }
}

/// The development keys of `certs/` are published with their private halves: a configuration
/// that trusts one (a copied demo configuration, the dev IdP's JWKS, `certs/saml-idp.pem`) lets
/// anybody sign credentials with `mfagate token mint`. That was silent; the key caches and the
/// SAML verifier the gateway runs (here through inspect, which runs the same) warn.
#[test]
fn trusting_a_published_development_key_is_not_silent() {
    let f = Fixture::new();
    let token = f.token(user(&["pwd", "mfa"]));
    let run = inspect(&["--config", &f.arg("mfagate.toml")], &token);
    assert_eq!(run.code, 0, "{}{}", run.out, run.err);
    assert!(run.err.contains("published development key"), "{}", run.err);
    assert!(run.err.contains("dev-rsa-a"), "names the key: {}", run.err);

    let doc = signed(&spec(MULTIPLE_AUTHN));
    let run = inspect(&["--idp-metadata", &metadata(&f)], &doc.base64);
    assert_eq!(run.code, 0, "{}{}", run.out, run.err);
    assert!(run.err.contains("published development certificate"), "{}", run.err);
}

/// `mfagate inspect Bearer eyJ...` (a header value pasted without quotes) was a usage error whose
/// message, clap's, printed the whole token ("unexpected argument 'eyJ...' found") to standard
/// error, a CI log. The words given are one document, as an `Authorization` line is.
#[test]
fn a_header_pasted_without_quotes_is_inspected_and_never_echoed() {
    let f = Fixture::new();
    let keys = f.arg("keys.json");
    let token = f.token(user(&["pwd", "mfa"]));
    for words in [&["Bearer", token.as_str()][..], &["Authorization:", "Bearer", &token], &["x", &token]] {
        let args: Vec<&str> =
            ["--jwks", keys.as_str()].iter().copied().chain(words.iter().copied()).collect();
        let run = inspect(&args, "");
        run.never_shows(&secrets(&token));
        let expected = if words[0] == "x" { 2 } else { 0 };
        assert_eq!(run.code, expected, "{words:?}: {}{}", run.out, run.err);
    }
}

/// `--log` naming something that is neither a file nor a folder (a device, a FIFO, a process
/// substitution `<(zcat ...)`) was skipped without a word: the report then showed no traffic
/// and exited 0, an empty report that looks like a real one. It is skipped with a warning.
#[test]
fn report_says_when_a_log_it_was_given_is_not_a_file() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mfagate"))
        .args(["report", "--log", "/dev/null", "--days", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/dev/null: skipped: not a file or folder"), "{stderr}");
}

/// A sign-in starts at a browser route, at its `login` IdP, and the ACS takes only the Response
/// of that IdP: a sign-in Response from an IdP that no browser route signs in with is refused
/// there (`saml_idp_mismatch`), however well it verifies.
#[test]
fn a_sign_in_from_an_idp_no_browser_route_uses_is_not_mfa_proven() {
    let f = Fixture::new();
    f.write_config(
        "acs.toml",
        &[(
            "entity_id = \"https://gateway.contoso.test/saml\"\n",
            "entity_id = \"https://gateway.contoso.test/saml\"\nacs_url = \"https://gateway.contoso.test/saml/acs\"\n",
        )],
        "",
    );
    let mut s = spec(MULTIPLE_AUTHN);
    s.in_response_to = Some("_req1".into());
    s.recipient = Some("https://gateway.contoso.test/saml/acs".into());
    let sign_in = sealed(response_xml("_r1", &signer("saml-idp").sign(&s.to_xml()).unwrap(), false));
    let run = inspect(&["--config", &f.arg("acs.toml"), "--json"], &sign_in.base64);
    assert_eq!(run.code, 2, "{}{}", run.out, run.err);
    let j = run.json();
    assert_eq!(j["document"]["used_as"], "sign_in");
    assert_eq!(j["invalid"]["reason"], "saml_idp_mismatch", "{j}");
}
