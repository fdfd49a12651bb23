//! The hostile token corpus: shapes a forger or a confused client sends, each through the
//! gateway on a real socket to an MFA route. Every one is refused with 401 `invalid_token`, never
//! reaches the upstream, and leaves a decision record with its reason. Unless the shape is about
//! the signature, tokens are signed by the trusted dev key, so the shape alone is why they fail.
//! A new shape is one line in the table.

use crate::support::*;
use base64::Engine;
use http::{HeaderValue, Request, StatusCode};
use http_body_util::Full;
use mfagate::dev::idp::{DevKey, TokenRequest};
use serde_json::{Value, json};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;
/// The header the dev IdP's tokens carry.
const H: &str = r#"{"alg":"RS256","kid":"dev-rsa-a","typ":"JWT"}"#;
const MAX_TOKEN: usize = 8192;
/// The dev issuer's OIDC client: its ID tokens' audience is also one of the API's audiences, as
/// with one Entra app registration for both.
const CLIENT: &str = "00000000-0000-4000-8000-0000000000aa";

/// The hostile test gateway: a smaller token limit (so the limit's edge fits in a request head),
/// explicit typing on the v2 issuer, an OIDC client on the v1 issuer.
async fn hostile_gateway() -> Gateway {
    gateway()
        .replace("shutdown_grace_secs = 5", &format!("shutdown_grace_secs = 5\nmax_token_bytes = {MAX_TOKEN}"))
        .replace("tenants = [\"*\"]\n", "tenants = [\"*\"]\ntyp = \"application/AT+JWT\"\n")
        .replace(
            "leeway_secs = 60\n",
            &format!(
                "leeway_secs = 60\nclient_id = \"{CLIENT}\"\nclient_secret = \"dev-secret\"\nauthorization_endpoint = \"{{idp}}/authorize\"\ntoken_endpoint = \"{{idp}}/token\"\n"
            ),
        )
        .start()
        .await
}

/// Signs exact header and payload bytes.
struct Forge<'a> {
    key: &'a DevKey,
    /// The default claims as JSON text: a v1 App+User token with MFA, allowed as it is.
    claims: String,
}

impl Forge<'_> {
    fn raw(&self, header: &[u8], payload: &[u8]) -> String {
        self.key.sign_parts(header, payload).unwrap()
    }

    fn signed(&self, header: &str, payload: &str) -> String {
        self.raw(header.as_bytes(), payload.as_bytes())
    }

    /// The default claims under another header.
    fn header(&self, header: &str) -> String {
        self.signed(header, &self.claims)
    }

    /// The default claims with `members` (JSON text) put first: a repeated name comes before the
    /// original, as a first-wins parser would read it.
    fn first(&self, members: &str) -> String {
        self.signed(H, &format!("{{{members},{}", &self.claims[1..]))
    }

    /// A token of the default claims padded to a length in `len` (base64 cannot reach every length).
    fn sized(&self, len: std::ops::RangeInclusive<usize>) -> String {
        let base = self.first(r#""pad":"""#).len();
        let start = (len.start().saturating_sub(base) * 3 / 4).saturating_sub(4);
        (start..start + 12)
            .map(|n| self.first(&format!(r#""pad":"{}""#, "a".repeat(n))))
            .find(|t| len.contains(&t.len()))
            .unwrap()
    }
}

fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

/// `token` with its signature bytes changed by `f`.
fn resign(token: &str, f: &dyn Fn(&mut Vec<u8>)) -> String {
    let (input, signature) = token.rsplit_once('.').unwrap();
    let mut bytes = B64.decode(signature).unwrap();
    f(&mut bytes);
    format!("{input}.{}", b64(&bytes))
}

/// `token` with segment `i` (0 header, 1 payload, 2 signature) changed as text by `f`.
fn segment(token: &str, i: usize, f: &dyn Fn(&str) -> String) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[i] = f(&parts[i]);
    parts.join(".")
}

/// A raw P-256 r||s signature as ASN.1 DER (what OpenSSL and Java produce, not JWS).
fn der(raw: &[u8]) -> Vec<u8> {
    let int = |b: &[u8]| {
        let b = &b[b.iter().take_while(|x| **x == 0).count().min(b.len() - 1)..];
        let pad = usize::from(b[0] >= 0x80);
        let mut out = vec![0x02, (b.len() + pad) as u8];
        out.extend(std::iter::repeat_n(0, pad));
        out.extend_from_slice(b);
        out
    };
    let body = [int(&raw[..32]), int(&raw[32..])].concat();
    [vec![0x30, body.len() as u8], body].concat()
}

/// The last base64url character with its unused low bits set: the same bytes to a lenient decoder.
fn non_canonical(segment: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    assert_ne!(segment.len() % 4, 0, "needs a segment with unused bits");
    let (head, last) = segment.split_at(segment.len() - 1);
    let v = ALPHABET.iter().position(|c| *c == last.as_bytes()[0]).unwrap();
    format!("{head}{}", ALPHABET[v | 1] as char)
}

fn rsa_public_pem() -> String {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::KeyPair;
    use rustls_pki_types::pem::PemObject;
    let der = rustls_pki_types::PrivatePkcs8KeyDer::from_pem_file(certs().join("dev-idp-rsa-a.key")).unwrap();
    let pair = aws_lc_rs::signature::RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).unwrap();
    let spki = pair.public_key().as_der().unwrap();
    let text = base64::engine::general_purpose::STANDARD.encode(spki.as_ref());
    let lines: Vec<&str> = text.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
    format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", lines.join("\n"))
}

/// HS256 over the default claims, keyed with `secret` (the "public key as HMAC secret" attack).
fn hs256(forge: &Forge<'_>, header: &str, secret: &[u8]) -> String {
    let input = format!("{}.{}", b64(header.as_bytes()), b64(forge.claims.as_bytes()));
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    format!("{input}.{}", b64(aws_lc_rs::hmac::sign(&key, input.as_bytes()).as_ref()))
}

/// Sends `Authorization: Bearer <token>` as raw bytes (some shapes are not visible ASCII).
async fn present(g: &Gateway, token: &str) -> Reply {
    let value = HeaderValue::from_bytes(format!("Bearer {token}").as_bytes()).unwrap();
    let req = Request::get(format!("http://{}/v1/x", g.addr)).header("authorization", value);
    g.send(req.body(Full::default()).unwrap()).await
}

#[tokio::test]
async fn hostile_tokens_are_refused_before_the_upstream() {
    let mut g = hostile_gateway().await;
    let (rsa_key, ec_key) = (g.idp.key("dev-rsa-a").unwrap(), g.idp.key("dev-ec").unwrap());
    let forge = Forge { key: &rsa_key, claims: g.idp.claims(&TokenRequest::default()).to_string() };
    let es = Forge { key: &ec_key, claims: forge.claims.clone() };
    let good = forge.header(H);
    let good_es = es.header(r#"{"alg":"ES256","kid":"dev-ec","typ":"JWT"}"#);

    // The attacker's key and certificate (not trusted by the configuration), offered in the header.
    let attacker_pem = std::fs::read(certs().join("saml-untrusted.key")).unwrap();
    let attacker_key = DevKey::rsa("dev-rsa-a", &attacker_pem).unwrap();
    let attacker = Forge { key: &attacker_key, claims: forge.claims.clone() };
    let encoding = jsonwebtoken::EncodingKey::from_rsa_pem(&attacker_pem).unwrap();
    let jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&encoding, jsonwebtoken::Algorithm::RS256).unwrap();
    let jwk = serde_json::to_value(jwk).unwrap();
    let x5c = {
        use rustls_pki_types::pem::PemObject;
        let cert =
            rustls_pki_types::CertificateDer::from_pem_file(certs().join("saml-untrusted.pem")).unwrap();
        base64::engine::general_purpose::STANDARD.encode(cert.as_ref())
    };
    // Anything that fetched a jku or x5u would connect here; nothing may.
    let trap = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    trap.set_nonblocking(true).unwrap();
    let trap_url = format!("http://{}/keys", trap.local_addr().unwrap());
    let trap = (trap, trap_url);
    let jwks = g.client.get(format!("{}/keys", g.idp.base_url()).parse().unwrap()).await.unwrap();
    let jwks = http_body_util::BodyExt::collect(jwks.into_body()).await.unwrap().to_bytes();
    let pem = rsa_public_pem();
    let deep = format!(r#""deep":{}1{}"#, "[".repeat(1000), "]".repeat(1000));
    let exactly_max = forge.sized(MAX_TOKEN - 1..=MAX_TOKEN);

    // Short names, so that each case stays one line.
    let with = |members: Value| {
        let mut h: Value = serde_json::from_str(H).unwrap();
        h.as_object_mut().unwrap().extend(members.as_object().unwrap().clone());
        h.to_string()
    };
    let hdr = |members: Value| forge.header(&with(members)); // the dev header, plus members
    let exact = |header: &str| forge.header(header); // exactly this header text
    let evil = |members: Value| attacker.header(&with(members));
    let evil_exact = |header: Value| attacker.header(&header.to_string());
    let first = |members: &str| forge.first(members);
    let none = |alg: &str| {
        format!("{}.{}.", b64(json!({"alg": alg}).to_string().as_bytes()), b64(forge.claims.as_bytes()))
    };
    let seg = |i: usize, f: &dyn Fn(&str) -> String| segment(&good, i, f);
    let rs = |f: &dyn Fn(&mut Vec<u8>)| resign(&good, f);
    let ec = |f: &dyn Fn(&mut Vec<u8>)| resign(&good_es, f);
    let hs = |header: &str, secret: &[u8]| hs256(&forge, header, secret);
    let hs_h = H.replace("RS256", "HS256");
    let bytes_in = |text: &[u8]| {
        forge.raw(H.as_bytes(), &[&forge.claims.as_bytes()[..forge.claims.len() - 1], text].concat())
    };
    let v2 = |typ: Option<&str>| {
        let mut c = g.idp.claims(&TokenRequest { ver: "2.0".into(), amr: None, ..TokenRequest::default() });
        c["acrs"] = json!(["c1"]);
        let h = match typ {
            Some(t) => json!({"alg": "RS256", "kid": "dev-rsa-a", "typ": t}),
            None => json!({"alg": "RS256", "kid": "dev-rsa-a"}),
        };
        forge.signed(&h.to_string(), &c.to_string())
    };
    let id_token = |aud: &str| g.idp.sign(&g.idp.id_token_claims(aud, "n-0S1gn", true)).unwrap();

    // Controls: the same forging, benign, is accepted. Without them the table would prove nothing.
    #[rustfmt::skip]
    let accepted = [
        ("control: dev header", good.clone()),
        ("control: ES256", good_es.clone()),
        ("control: no typ", exact(r#"{"alg":"RS256","kid":"dev-rsa-a"}"#)),
        ("control: typ at+jwt", hdr(json!({"typ": "at+jwt"}))),
        ("control: jku present, trusted signature", hdr(json!({"jku": trap.1}))),
        ("control: token of max_token_bytes", exactly_max.clone()),
        ("control: v2 typ at+jwt", v2(Some("at+jwt"))),
        ("control: v2 typ application/AT+JWT", v2(Some("application/AT+JWT"))),
    ];

    #[rustfmt::skip]
    let hostile: Vec<(&str, String, &str)> = vec![
        // alg none and friends
        ("alg none", none("none"), "alg_not_allowed"),
        ("alg None", none("None"), "alg_not_allowed"),
        ("alg NONE", none("NONE"), "alg_not_allowed"),
        ("alg nOnE", none("nOnE"), "alg_not_allowed"),
        ("alg none with an RS256 signature", hdr(json!({"alg": "none"})), "alg_not_allowed"),
        ("alg rs256 (case)", hdr(json!({"alg": "rs256"})), "alg_not_allowed"),
        ("alg with a space", hdr(json!({"alg": "RS256 "})), "alg_not_allowed"),
        ("alg ES256 on the RSA key", hdr(json!({"alg": "ES256"})), "alg_not_allowed"),
        ("alg missing", exact(r#"{"kid":"dev-rsa-a"}"#), "token_malformed"),
        ("empty signature", seg(2, &|_| String::new()), "bad_signature"),
        // HS256 keyed with what the gateway knows of the RSA key
        ("HS256 keyed with the RSA public key PEM", hs(&hs_h, pem.as_bytes()), "alg_not_allowed"),
        ("HS256 keyed with the PEM, no kid", hs(r#"{"alg":"HS256"}"#, pem.as_bytes()), "alg_not_allowed"),
        ("HS256 keyed with the JWKS text", hs(&hs_h, &jwks), "alg_not_allowed"),
        // kid is a map key: never a path, a query, a command or a C string
        ("kid path traversal", hdr(json!({"kid": "../../etc/passwd"})), "unknown_kid"),
        ("kid traversal to the dev key", hdr(json!({"kid": "../keys/dev-rsa-a"})), "unknown_kid"),
        ("kid SQL injection", hdr(json!({"kid": "x' OR '1'='1"})), "unknown_kid"),
        ("kid SQL union", hdr(json!({"kid": "' UNION SELECT 'dev-rsa-a'--"})), "unknown_kid"),
        ("kid command injection", hdr(json!({"kid": "dev-rsa-a; cat /etc/passwd"})), "unknown_kid"),
        ("kid command substitution", hdr(json!({"kid": "$(id)`id`"})), "unknown_kid"),
        ("kid with NUL after the real kid", hdr(json!({"kid": "dev-rsa-a\u{0}"})), "unknown_kid"),
        ("kid NUL then traversal", hdr(json!({"kid": "dev-rsa-a\u{0}../../x"})), "unknown_kid"),
        ("kid a number", hdr(json!({"kid": 1})), "token_malformed"),
        // the attacker's key in the header: keys come from the issuer's JWKS, by kid only
        ("embedded jwk, trusted kid", evil(json!({"jwk": jwk})), "bad_signature"),
        ("embedded jwk, no kid", evil_exact(json!({"alg": "RS256", "jwk": jwk})), "unknown_kid"),
        ("embedded jwk, its own kid", evil_exact(json!({"alg": "RS256", "kid": "attacker", "jwk": jwk})), "unknown_kid"),
        ("jku to the attacker", evil(json!({"jku": trap.1})), "bad_signature"),
        ("jku, attacker kid", evil_exact(json!({"alg": "RS256", "kid": "attacker", "jku": trap.1})), "unknown_kid"),
        ("x5u to the attacker", evil(json!({"x5u": trap.1})), "bad_signature"),
        ("x5c with the attacker certificate", evil(json!({"x5c": [x5c]})), "bad_signature"),
        ("x5c, no kid", evil_exact(json!({"alg": "RS256", "x5c": [x5c]})), "unknown_kid"),
        ("jwk, jku, x5u and x5c at once", evil(json!({"jwk": jwk, "jku": trap.1, "x5u": trap.1, "x5c": [x5c]})), "bad_signature"),
        // crit and b64: no extension is implemented
        ("crit empty", hdr(json!({"crit": []})), "crit_unsupported"),
        ("crit null", hdr(json!({"crit": null})), "crit_unsupported"),
        ("crit b64 with b64 false", hdr(json!({"crit": ["b64"], "b64": false})), "crit_unsupported"),
        ("crit naming a registered claim", hdr(json!({"crit": ["exp"], "exp": 1})), "crit_unsupported"),
        ("crit unknown extension", hdr(json!({"crit": ["urn:x:must"], "urn:x:must": true})), "crit_unsupported"),
        ("crit not an array", hdr(json!({"crit": "b64"})), "crit_unsupported"),
        ("b64 false without crit", hdr(json!({"b64": false})), "b64_unsupported"),
        ("b64 false, payload unencoded", format!("{}.{}.x", b64(with(json!({"b64": false})).as_bytes()), forge.claims), "token_malformed"),
        // one member name, one value (a first-wins parser reads the first)
        ("amr twice", first(r#""amr":["pwd"]"#), "duplicate_json_key"),
        ("amr twice, escaped", first(r#""\u0061mr":["pwd"]"#), "duplicate_json_key"),
        ("iss twice", first(r#""iss":"https://evil.test/""#), "duplicate_json_key"),
        ("aud twice", first(r#""aud":"https://graph.microsoft.com""#), "duplicate_json_key"),
        ("alg twice", exact(r#"{"alg":"HS256","alg":"RS256","kid":"dev-rsa-a"}"#), "duplicate_json_key"),
        ("kid twice", exact(r#"{"alg":"RS256","kid":"attacker","kid":"dev-rsa-a"}"#), "duplicate_json_key"),
        ("duplicate in a nested object", first(r#""cnf":{"jkt":"a","jkt":"b"}"#), "duplicate_json_key"),
        // depth and size
        ("1000 nested arrays in a claim", first(&deep), "token_malformed"),
        ("1000 nested arrays in the header", exact(&format!(r#"{{"alg":"RS256","kid":"dev-rsa-a",{deep}}}"#)), "token_malformed"),
        ("max_token_bytes, bad signature", resign(&exactly_max, &|s: &mut Vec<u8>| s[0] ^= 1), "bad_signature"),
        ("just over max_token_bytes", forge.sized(MAX_TOKEN + 1..=MAX_TOKEN + 2), "token_too_large"),
        ("well over max_token_bytes", forge.sized(12_000..=12_001), "token_too_large"),
        // base64url, strictly
        ("padding on the header", seg(0, &|s| format!("{s}==")), "token_malformed"),
        ("padding on the signature", seg(2, &|s| format!("{s}==")), "token_malformed"),
        ("+/ alphabet in the signature", seg(2, &|s| s.replace('-', "+").replace('_', "/")), "token_malformed"),
        ("standard base64 payload", seg(1, &|_| base64::engine::general_purpose::STANDARD.encode(&forge.claims)), "token_malformed"),
        ("space inside the payload", seg(1, &|s| format!("{} {}", &s[..10], &s[10..])), "token_malformed"),
        ("tab inside the payload", seg(1, &|s| format!("{}\t{}", &s[..10], &s[10..])), "token_malformed"),
        ("invalid character", seg(1, &|s| format!("{}*{}", &s[..10], &s[11..])), "token_malformed"),
        ("non-ASCII character", seg(1, &|s| format!("{}é{}", &s[..10], &s[12..])), "token_malformed"),
        ("non-canonical trailing bits", seg(2, &non_canonical), "token_malformed"),
        // bytes that are not one UTF-8 JSON object
        ("non-UTF-8 header", forge.raw(b"{\"alg\":\"RS256\",\"kid\":\"dev-rsa-a\",\"x\":\"\xff\"}", forge.claims.as_bytes()), "token_malformed"),
        ("non-UTF-8 payload", bytes_in(b",\"x\":\"\xc3\x28\"}"), "token_malformed"),
        ("overlong UTF-8 in the payload", bytes_in(b",\"x\":\"\xc0\xaf\"}"), "token_malformed"),
        ("lone surrogate escape", first(r#""x":"\ud800""#), "token_malformed"),
        ("byte order mark", forge.raw(&[b"\xef\xbb\xbf", H.as_bytes()].concat(), forge.claims.as_bytes()), "token_malformed"),
        ("payload is an array", forge.signed(H, &format!("[{}]", forge.claims)), "token_malformed"),
        ("trailing data after the payload", forge.signed(H, &format!("{} {{}}", forge.claims)), "token_malformed"),
        // ECDSA signatures
        ("ES256 r = s = 0", ec(&|s| s.fill(0)), "bad_signature"),
        ("ES256 r = s = 0, DER", ec(&|s| *s = der(&[0; 64])), "bad_signature"),
        ("ES256 DER instead of raw r||s", ec(&|s| *s = der(s)), "bad_signature"),
        ("ES256 r and s swapped", ec(&|s| s.rotate_left(32)), "bad_signature"),
        // signature length and segment count
        ("RS256 signature one byte short", rs(&|s| s.truncate(s.len() - 1)), "bad_signature"),
        ("RS256 signature one byte long", rs(&|s| s.push(0)), "bad_signature"),
        ("ES256 signature one byte short", ec(&|s| s.truncate(s.len() - 1)), "bad_signature"),
        ("ES256 signature one byte long", ec(&|s| s.push(0)), "bad_signature"),
        ("signature one character short", seg(2, &|s| s[..s.len() - 1].to_owned()), "token_malformed"),
        ("garbage segment appended", format!("{good}.Z2FyYmFnZQ"), "token_malformed"),
        ("empty segment appended", format!("{good}."), "token_malformed"),
        ("two segments", good[..good.rfind('.').unwrap()].to_owned(), "token_malformed"),
        // nested tokens
        ("cty JWT", hdr(json!({"cty": "JWT"})), "nested_jwt"),
        ("cty jwt", hdr(json!({"cty": "jwt"})), "nested_jwt"),
        ("cty application/JWT", hdr(json!({"cty": "application/JWT"})), "nested_jwt"),
        ("cty JWT, payload a JWT", forge.raw(with(json!({"cty": "JWT"})).as_bytes(), good.as_bytes()), "token_malformed"),
        // typ confusion
        ("ID token for the gateway's client", id_token(CLIENT), "typ_not_allowed"),
        ("ID token for another client", id_token("mfagate-web"), "wrong_audience"),
        ("typ id_token+jwt", hdr(json!({"typ": "id_token+jwt"})), "typ_not_allowed"),
        ("typ logout+jwt", hdr(json!({"typ": "logout+jwt"})), "typ_not_allowed"),
        ("typ application/secevent+jwt", hdr(json!({"typ": "application/secevent+jwt"})), "typ_not_allowed"),
        ("typ dpop+jwt", hdr(json!({"typ": "dpop+jwt"})), "typ_not_allowed"),
        ("typ oauth-authz-req+jwt", hdr(json!({"typ": "oauth-authz-req+jwt"})), "typ_not_allowed"),
        ("typ empty", hdr(json!({"typ": ""})), "typ_not_allowed"),
        ("typ a number", hdr(json!({"typ": 1})), "token_malformed"),
        ("v2 issuer wants at+jwt, typ JWT", v2(Some("JWT")), "typ_not_allowed"),
        ("v2 issuer wants at+jwt, no typ", v2(None), "typ_not_allowed"),
        ("v2 issuer wants at+jwt, typ at+jwt+x", v2(Some("at+jwt+x")), "typ_not_allowed"),
    ];

    let mut expected = Vec::new();
    for (name, token) in &accepted {
        let before = g.echo.hits();
        let r = present(&g, token).await;
        assert_eq!(r.status, StatusCode::OK, "{name}: {}", r.body);
        assert_eq!(g.echo.hits(), before + 1, "{name}");
        expected.push((*name, "mfa_satisfied"));
    }
    for (name, token, reason) in &hostile {
        let before = g.echo.hits();
        let r = present(&g, token).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{name}: {}", r.body);
        assert_eq!(r.json()["error"], *reason, "{name}");
        assert!(r.www().starts_with("Bearer error=\"invalid_token\""), "{name}: {}", r.www());
        assert_eq!(g.echo.hits(), before, "{name} reached the upstream");
        expected.push((*name, *reason));
    }
    assert!(
        matches!(trap.0.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "jku/x5u fetched"
    );

    let log = g.stop().await;
    assert_eq!(log.len(), expected.len(), "one record per request");
    for ((name, reason), rec) in expected.iter().zip(&log) {
        assert_eq!(rec["reason"], *reason, "{name}");
        assert_eq!(rec["path"], "/v1/x", "{name}");
    }
}

#[tokio::test]
async fn x_auth_upn_never_comes_from_preferred_username() {
    let mut g = gateway().start().await;
    let cases = [
        (
            "upn",
            json!({"upn": "adele@contoso.test", "unique_name": "other@contoso.test"}),
            "adele@contoso.test",
        ),
        ("unique_name", json!({"unique_name": "adele@contoso.test"}), "adele@contoso.test"),
        ("preferred_username only", json!({"preferred_username": "ceo@contoso.test"}), ""),
        (
            "both",
            json!({"unique_name": "adele@contoso.test", "preferred_username": "ceo@contoso.test"}),
            "adele@contoso.test",
        ),
    ];
    for (name, names, upn) in &cases {
        let token = g.token(|c| {
            c.as_object_mut().unwrap().remove("upn");
            c.as_object_mut().unwrap().extend(names.as_object().unwrap().clone());
        });
        let r = g.get("/v1/x", Some(&token)).await;
        assert_eq!(r.status, StatusCode::OK, "{name}");
        assert_eq!(r.upstream_header("x-auth-upn").unwrap_or_default(), *upn, "{name}");
    }
    let log = g.stop().await;
    for ((name, _, upn), rec) in cases.iter().zip(&log) {
        assert_eq!(rec["upn"].as_str().unwrap_or_default(), *upn, "{name}");
    }
}
