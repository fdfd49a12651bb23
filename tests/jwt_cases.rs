//! claims.md §9: every JWT API-route row, through the gateway, with its decision record.

use crate::support::*;
use base64::Engine;
use mfagate::dev::idp::{DevKey, TokenRequest};
use serde_json::{Value, json};

const PC_MFA: &str = "Bearer error=\"invalid_token\", error_description=\"MFA required\"";

struct Case {
    name: &'static str,
    path: &'static str,
    token: String,
    status: u16,
    reason: &'static str,
    principal: &'static str,
    mfa: Value,
    www: Option<&'static str>,
}

fn b64(v: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

#[tokio::test]
async fn claims_md_jwt_rows_end_to_end() {
    let mut g = gateway().start().await;
    let user = |edit: &dyn Fn(&mut Value)| g.token(|c| edit(c));
    let v2 = TokenRequest { ver: "2.0".into(), amr: None, ..TokenRequest::default() };
    let app = TokenRequest { app_only: true, ..TokenRequest::default() };
    let other_tenant = "99999999-2222-4333-8444-555555555555";
    let untrusted =
        DevKey::rsa("dev-rsa-a", &std::fs::read(certs().join("saml-untrusted.key")).unwrap()).unwrap();
    let case = |name, path, token: String, status, reason, principal, mfa: Value, www| Case {
        name,
        path,
        token,
        status,
        reason,
        principal,
        mfa,
        www,
    };
    let allow =
        |name, token: String| case(name, "/v1/x", token, 200, "mfa_satisfied", "app_user", json!(true), None);
    let challenge = |name, token: String, reason| {
        case(name, "/v1/x", token, 401, reason, "app_user", json!(false), Some(PC_MFA))
    };
    let invalid = |name, path, token: String, reason| {
        case(name, path, token, 401, reason, "anonymous", Value::Null, None)
    };
    let app_ok = |name, token: String| {
        case(name, "/v1/x", token, 200, "app_only_allowed", "app_only", Value::Null, None)
    };

    let mut hs256_header = json!({"alg": "HS256", "typ": "JWT", "kid": "dev-rsa-a"});
    let claims = g.idp.claims(&TokenRequest::default());
    let hs256 = format!("{}.{}.c2ln", b64(&hs256_header), b64(&claims));
    hs256_header["alg"] = json!("none");
    let none = format!("{}.{}.", b64(&hs256_header), b64(&claims));
    // An attacker's key, offered in the header (jwk, jku, x5u): never used to find keys.
    let attacker_pem = std::fs::read(certs().join("saml-untrusted.key")).unwrap();
    let attacker = jsonwebtoken::EncodingKey::from_rsa_pem(&attacker_pem).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("attacker".into());
    header.jku = Some("http://127.0.0.1:1/keys".into());
    header.x5u = Some("http://127.0.0.1:1/cert".into());
    header.jwk =
        Some(jsonwebtoken::jwk::Jwk::from_encoding_key(&attacker, jsonwebtoken::Algorithm::RS256).unwrap());
    let embedded_key = jsonwebtoken::encode(&header, &claims, &attacker).unwrap();
    let good = user(&|_| {});
    let tampered = format!("{}AAAA", &good[..good.len() - 4]);

    let cases = vec![
        allow("1 amr pwd+mfa", good.clone()),
        challenge("2 amr pwd", user(&|c| c["amr"] = json!(["pwd"])), "mfa_missing"),
        allow("3 amr rsa+mfa", user(&|c| c["amr"] = json!(["rsa", "mfa"]))),
        allow("4 amr ngcmfa", user(&|c| c["amr"] = json!(["ngcmfa"]))),
        challenge("5 wiaormfa", user(&|c| c["amr"] = json!(["wiaormfa"])), "amr_wiaormfa_not_mfa"),
        allow("6 fed+mfa", user(&|c| c["amr"] = json!(["fed", "mfa"]))),
        challenge("7 fed", user(&|c| c["amr"] = json!(["fed"])), "mfa_missing"),
        challenge("7 fed+pwd", user(&|c| c["amr"] = json!(["fed", "pwd"])), "mfa_missing"),
        challenge(
            "8 amr missing",
            user(&|c| {
                c.as_object_mut().unwrap().remove("amr");
            }),
            "amr_missing",
        ),
        challenge("9 amr string", user(&|c| c["amr"] = json!("mfa")), "amr_malformed"),
        challenge("10 MFA case", user(&|c| c["amr"] = json!(["MFA"])), "mfa_missing"),
        challenge("11 mfax", user(&|c| c["amr"] = json!(["pwd", "mfax"])), "mfa_missing"),
        challenge("11 nomfa", user(&|c| c["amr"] = json!(["nomfa"])), "mfa_missing"),
        challenge(
            "12 acr ignored",
            user(&|c| {
                c["acr"] = json!("1");
                c["amr"] = json!(["pwd"]);
            }),
            "mfa_missing",
        ),
        challenge("13 v2 no amr", g.token_for(&v2, |_| {}), "mfa_unknown_v2"),
        allow(
            "14 v2 acrs c1",
            g.token_for(&v2, |c| {
                c["acrs"] = json!(["c1"]);
                c["xms_cc"] = json!(["cp1"]);
            }),
        ),
        case(
            "15 claims challenge, cp1",
            "/claims/x",
            g.token_for(&v2, |c| {
                c["acrs"] = json!([]);
                c["xms_cc"] = json!(["cp1"]);
            }),
            401,
            "mfa_unknown_v2",
            "app_user",
            json!(false),
            Some(
                "Bearer realm=\"\", error=\"insufficient_claims\", claims=\"eyJhY2Nlc3NfdG9rZW4iOnsiYWNycyI6eyJlc3NlbnRpYWwiOnRydWUsInZhbHVlIjoiYzEifX19\"",
            ),
        ),
        case(
            "15 claims route, no cp1",
            "/claims/x",
            g.token_for(&v2, |c| {
                c["acrs"] = json!([]);
            }),
            401,
            "mfa_unknown_v2",
            "app_user",
            json!(false),
            Some(PC_MFA),
        ),
        case(
            "16 rfc9470",
            "/admin/x",
            user(&|c| c["amr"] = json!(["pwd"])),
            401,
            "mfa_missing",
            "app_user",
            json!(false),
            Some(
                "Bearer error=\"insufficient_user_authentication\", error_description=\"Multi-factor authentication is required\", acr_values=\"urn:mfa\"",
            ),
        ),
        app_ok(
            "17 app-only roles",
            g.token_for(&app, |c| {
                c.as_object_mut().unwrap().remove("idtyp");
            }),
        ),
        app_ok("18 app-only idtyp", g.token_for(&app, |_| {})),
        app_ok("19 idtyp app + scp", g.token_for(&app, |c| c["scp"] = json!("user_impersonation"))),
        allow("20 idtyp user", user(&|c| c["idtyp"] = json!("user"))),
        invalid(
            "21 no scp/roles",
            "/v1/x",
            user(&|c| {
                c.as_object_mut().unwrap().remove("scp");
            }),
            "no_permissions_claim",
        ),
        app_ok("22 appidacr 0", g.token_for(&app, |c| c["appidacr"] = json!("0"))),
        case(
            "23 app-only denied",
            "/admin/x",
            g.token_for(&app, |_| {}),
            403,
            "app_only_denied",
            "app_only",
            Value::Null,
            Some(
                "Bearer error=\"insufficient_scope\", error_description=\"App-only tokens are not accepted on this route\"",
            ),
        ),
        allow("24 scp + roles", user(&|c| c["roles"] = json!(["Admin"]))),
        invalid("25 bad signature", "/v1/x", tampered, "bad_signature"),
        invalid("25 untrusted key, same kid", "/v1/x", untrusted.sign(&claims).unwrap(), "bad_signature"),
        invalid("header jwk/jku/x5u ignored", "/v1/x", embedded_key, "unknown_kid"),
        invalid("27 iss/tid mismatch", "/v1/x", user(&|c| c["tid"] = json!(other_tenant)), "wrong_issuer"),
        invalid(
            "28 tenant not allowed",
            "/v1/x",
            user(&|c| {
                c["tid"] = json!(other_tenant);
                c["iss"] = json!(c["iss"].as_str().unwrap().replace(tenant(), other_tenant));
            }),
            "tenant_not_allowed",
        ),
        invalid(
            "29 graph audience",
            "/v1/x",
            user(&|c| c["aud"] = json!("https://graph.microsoft.com")),
            "wrong_audience",
        ),
        invalid("30 alg none", "/v1/x", none, "alg_not_allowed"),
        invalid("30 HS256", "/v1/x", hs256, "alg_not_allowed"),
        invalid("31 expired", "/v1/x", user(&|c| c["exp"] = json!(T0 - 61)), "token_expired"),
        allow("31 expired within leeway", user(&|c| c["exp"] = json!(T0 - 30))),
        invalid("31 nbf future", "/v1/x", user(&|c| c["nbf"] = json!(T0 + 120)), "token_not_yet_valid"),
        allow("33 GUID audience", user(&|c| c["aud"] = json!("00000000-0000-4000-8000-0000000000aa"))),
        invalid(
            "33 trailing slash audience",
            "/v1/x",
            user(&|c| c["aud"] = json!("api://mfagate-demo/")),
            "wrong_audience",
        ),
        invalid(
            "unknown issuer",
            "/v1/x",
            user(&|c| c["iss"] = json!("https://evil.test/")),
            "unknown_issuer",
        ),
        invalid(
            "no aud",
            "/v1/x",
            user(&|c| {
                c.as_object_mut().unwrap().remove("aud");
            }),
            "wrong_audience",
        ),
        invalid("not a jwt", "/v1/x", "abc.def".into(), "token_malformed"),
        case(
            "no token",
            "/v1/x",
            String::new(),
            401,
            "no_token",
            "anonymous",
            Value::Null,
            Some("Bearer realm=\"mfagate\""),
        ),
    ];
    let mut tokens = Vec::new();
    for c in &cases {
        let token = (!c.token.is_empty()).then_some(c.token.as_str());
        let r = g.get(c.path, token).await;
        assert_eq!(r.status.as_u16(), c.status, "{}: {}", c.name, r.body);
        if let Some(www) = c.www {
            assert_eq!(r.www(), www, "{}", c.name);
        }
        if c.reason.starts_with("token_") || c.reason.contains("signature") || c.reason.contains("alg") {
            assert!(r.www().starts_with("Bearer error=\"invalid_token\""), "{}: {}", c.name, r.www());
        }
        if c.status != 200 {
            assert_eq!(r.json()["error"], c.reason, "{}", c.name);
        }
        tokens.push(c.token.clone());
    }
    // ES256 keys work too.
    let es = g.idp.sign_with_key("dev-ec", &g.idp.claims(&TokenRequest::default())).unwrap();
    assert_eq!(g.get("/v1/x", Some(&es)).await.status, 200);

    let log = g.stop().await;
    assert_eq!(log.len(), cases.len() + 1, "one record per request");
    for (c, rec) in cases.iter().zip(&log) {
        assert_eq!(rec["reason"], c.reason, "{}", c.name);
        assert_eq!(rec["principal"], c.principal, "{}", c.name);
        assert_eq!(rec["mfa"], c.mfa, "{}", c.name);
        assert_eq!(rec["status"], c.status, "{}", c.name);
    }
    let at = |name: &str| cases.iter().position(|c| c.name == name).unwrap();
    assert_eq!(log[at("19 idtyp app + scp")]["anomalies"], json!(["idtyp_app_with_scp"]));
    assert_eq!(log[at("22 appidacr 0")]["anomalies"], json!(["app_only_public_client"]));
    let text = std::fs::read_to_string(g.log_path()).unwrap();
    for t in tokens.iter().filter(|t| t.len() > 20) {
        let signature = t.rsplit('.').next().unwrap_or_default();
        assert!(
            !text.contains(t.as_str()) && (signature.len() < 8 || !text.contains(signature)),
            "a token reached the log"
        );
    }
}
