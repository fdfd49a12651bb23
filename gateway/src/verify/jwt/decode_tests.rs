//! The signature, algorithm and `aud` rules through the verifier, with keys and tokens made at run
//! time: each case's outcome is the one jsonwebtoken's `decode` gave before the gateway checked
//! signatures itself with keys parsed once.

use super::*;
use crate::clock::ManualClock;
use base64::Engine;
use jsonwebtoken::EncodingKey;
use jsonwebtoken::jwk::Jwk;
use serde_json::json;
use std::path::Path;

const T0: u64 = 1_767_225_600;
const ISSUER: &str = "https://idp.test/";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A 1024-bit RSA key's public half and a token it signed (RS256), made once with
/// `openssl genrsa 1024` and `openssl dgst -sha256 -sign`: aws-lc-rs signs with nothing under
/// 2048 bits. The private key was not kept.
const SMALL_N: &str = "xi-QOFHwqaKIKKDyc8lscOOE4I1tYnhNLilc2GOAB6Kate8R_ovjsfefQbpTrKSxeKiTpkKF5TGPk5GpD4ifrjoT2DGpsnNH5tbBtsjmzq82z1hD9jY8GqaEkbsutx7x2EejhzwclerS67-CQIZIKX2XFdiJGQxn6_J-PKtkkv8";
const SMALL_TOKEN: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6InNtYWxsIiwidHlwIjoiSldUIn0.eyJpc3MiOiJodHRwczovL2lkcC50ZXN0LyIsImF1ZCI6ImFwaTovL2EiLCJleHAiOjE3NjcyMjkyMDAsInN1YiI6InUiLCJzY3AiOiJyZWFkIn0.RpYcpE8ayKnJEB-b1YrRJe1SoiPeUg2cubzDWRdnnDt6c5vm5EgPmVBH7ym1OXSpp82wX_L50MoRcHEPn1hLbjmPb05vY8AOBDyBFGxH43VJ39KXkuHII6h1SL3aotNDrEQr6vHCP7XgWlSoVet2iVjhDoqfb2ZVJLNRHwfpyyY";

/// A signing key and the JWK the issuer publishes for it.
struct Key {
    encoding: EncodingKey,
    jwk: Jwk,
}

impl Key {
    fn new(kid: &str, encoding: EncodingKey, alg: Algorithm, pinned: bool) -> Key {
        let mut jwk = Jwk::from_encoding_key(&encoding, alg).unwrap();
        jwk.common.key_id = Some(kid.to_owned());
        if !pinned {
            jwk.common.key_algorithm = None;
        }
        Key { encoding, jwk }
    }
}

fn rsa() -> EncodingKey {
    use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
    let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let der = AsDer::<Pkcs8V1Der>::as_der(&key).unwrap();
    // jsonwebtoken signs RSA from PKCS#1, which its PEM reader takes out of PKCS#8.
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    EncodingKey::from_rsa_pem(
        format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n").as_bytes(),
    )
    .unwrap()
}

fn ec(curve: &'static aws_lc_rs::signature::EcdsaSigningAlgorithm) -> EncodingKey {
    let key = aws_lc_rs::signature::EcdsaKeyPair::generate(curve).unwrap();
    EncodingKey::from_ec_der(key.to_pkcs8v1().unwrap().as_ref())
}

fn ed25519() -> EncodingKey {
    let key = aws_lc_rs::signature::Ed25519KeyPair::generate().unwrap();
    EncodingKey::from_ed_der(key.to_pkcs8v1().unwrap().as_ref())
}

struct Fixture {
    rt: tokio::runtime::Runtime,
    verifier: Verifier,
    keys: HashMap<&'static str, Key>,
    _dir: tempfile::TempDir,
}

use std::collections::HashMap;

/// A verifier for one issuer whose key file holds an RSA key (no `alg`), the same kind pinned to
/// RS256, P-256, P-384 and Ed25519 keys (no `alg`) and a 1024-bit RSA key.
fn fixture() -> Fixture {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING};
    let keys = HashMap::from([
        ("rsa", Key::new("rsa", rsa(), Algorithm::RS256, false)),
        ("rsa-pinned", Key::new("rsa-pinned", rsa(), Algorithm::RS256, true)),
        ("p256", Key::new("p256", ec(&ECDSA_P256_SHA256_FIXED_SIGNING), Algorithm::ES256, false)),
        ("p384", Key::new("p384", ec(&ECDSA_P384_SHA384_FIXED_SIGNING), Algorithm::ES384, false)),
        ("ed", Key::new("ed", ed25519(), Algorithm::EdDSA, false)),
    ]);
    let mut jwks: Vec<Value> = keys.values().map(|k| serde_json::to_value(&k.jwk).unwrap()).collect();
    jwks.push(json!({"kty": "RSA", "kid": "small", "n": SMALL_N, "e": "AQAB"}));
    jwks.extend(not_for_signatures(&keys));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys.json");
    std::fs::write(&file, json!({ "keys": jwks }).to_string()).unwrap();
    let toml = format!(
        "[decision_log]\npath = \"/dev/null\"\n[[issuer]]\nname = \"t\"\nissuer = \"{ISSUER}\"\n\
         jwks_file = \"{}\"\naudiences = [\"api://a\", \"api://b\"]\n\
         algorithms = [\"RS256\", \"RS384\", \"PS256\", \"ES256\", \"ES384\", \"EdDSA\"]\n",
        file.display()
    );
    let config = crate::Config::from_toml(&toml, Path::new(".")).unwrap();
    let client = crate::outbound::client(None, std::time::Duration::from_secs(1)).unwrap();
    let clock = ManualClock::at(T0);
    let verifier = Verifier::for_issuers(&config.issuers, &client, 0, clock);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        for keys in verifier.keys() {
            keys.refresh_now().await.unwrap();
        }
    });
    Fixture { rt, verifier, keys, _dir: dir }
}

fn claims() -> Value {
    json!({"iss": ISSUER, "aud": "api://a", "exp": T0 + 3600, "sub": "u", "oid": "o", "scp": "read"})
}

impl Fixture {
    /// A token with header `{alg, kid}` and `payload`, signed by `signer` with `sign_alg`.
    fn token_as(&self, alg: &str, kid: &str, payload: &Value, signer: &str, sign_alg: Algorithm) -> String {
        let header = json!({"alg": alg, "kid": kid, "typ": "JWT"});
        self.token_raw(&header.to_string(), &payload.to_string(), signer, sign_alg)
    }

    fn token_raw(&self, header: &str, payload: &str, signer: &str, sign_alg: Algorithm) -> String {
        let input = format!("{}.{}", B64.encode(header), B64.encode(payload));
        let signature =
            jsonwebtoken::crypto::sign(input.as_bytes(), &self.keys[signer].encoding, sign_alg).unwrap();
        format!("{input}.{signature}")
    }

    /// A token `kid` signs with `alg`, saying so.
    fn token(&self, kid: &str, alg: Algorithm, payload: &Value) -> String {
        self.token_as(&format!("{alg:?}"), kid, payload, kid, alg)
    }

    fn verify(&self, token: &str) -> Result<(), InvalidReason> {
        match self.rt.block_on(self.verifier.verify(token, &CacheCounters::default())) {
            Verification::Verified(_) => Ok(()),
            Verification::Invalid(why) => Err(why),
            Verification::Unverifiable => panic!("keys not loaded"),
        }
    }
}

/// `token` with one byte of its signature changed (still canonical base64url).
fn flip_signature_byte(token: &str, at: usize) -> String {
    let (input, signature) = token.rsplit_once('.').unwrap();
    let mut bytes = B64.decode(signature).unwrap();
    let at = at % bytes.len();
    bytes[at] ^= 0x01;
    format!("{input}.{}", B64.encode(bytes))
}

const SIGNERS: [(&str, Algorithm); 6] = [
    ("rsa", Algorithm::RS256),
    ("rsa", Algorithm::RS384),
    ("rsa", Algorithm::PS256),
    ("p256", Algorithm::ES256),
    ("p384", Algorithm::ES384),
    ("ed", Algorithm::EdDSA),
];

#[test]
fn each_algorithm_verifies_with_its_key_and_not_with_one_byte_changed() {
    let f = fixture();
    for (kid, alg) in SIGNERS {
        let token = f.token(kid, alg, &claims());
        assert_eq!(f.verify(&token), Ok(()), "{kid} {alg:?}");
        for at in [0, 7, usize::MAX] {
            assert_eq!(
                f.verify(&flip_signature_byte(&token, at)),
                Err(InvalidReason::BadSignature),
                "{kid} {alg:?}"
            );
        }
        // Shorter or longer by a byte, and empty: still base64url, never a signature.
        let (input, signature) = token.rsplit_once('.').unwrap();
        let bytes = B64.decode(signature).unwrap();
        for other in [&bytes[..bytes.len() - 1], &[bytes.as_slice(), &[0]].concat(), &[][..]] {
            let t = format!("{input}.{}", B64.encode(other));
            assert_eq!(f.verify(&t), Err(InvalidReason::BadSignature), "{kid} {alg:?} {}", other.len());
        }
        // The signature of another token (same key) over this one's input.
        let other = f.token(kid, alg, &json!({"iss": ISSUER, "aud": "api://a", "exp": T0 + 1, "sub": "x"}));
        let t = format!("{input}.{}", other.rsplit_once('.').unwrap().1);
        assert_eq!(f.verify(&t), Err(InvalidReason::BadSignature), "{kid} {alg:?}");
    }
}

#[test]
fn an_algorithm_is_checked_only_with_a_key_of_its_kind() {
    let f = fixture();
    let c = claims();
    let cases = [
        // RSA keys never check EC or Ed25519 signatures, and the reverse.
        f.token_as("RS256", "p256", &c, "rsa", Algorithm::RS256),
        f.token_as("ES256", "rsa", &c, "p256", Algorithm::ES256),
        f.token_as("EdDSA", "rsa", &c, "ed", Algorithm::EdDSA),
        f.token_as("ES256", "ed", &c, "p256", Algorithm::ES256),
        f.token_as("RS256", "ed", &c, "rsa", Algorithm::RS256),
        // A JWK's `alg` is the only algorithm its key checks.
        f.token_as("PS256", "rsa-pinned", &c, "rsa-pinned", Algorithm::PS256),
        // Not in the issuer's list, though the key could.
        f.token_as("PS384", "rsa", &c, "rsa", Algorithm::PS384),
        f.token_as("RS512", "rsa", &c, "rsa", Algorithm::RS512),
    ];
    for token in &cases {
        assert_eq!(f.verify(token), Err(InvalidReason::AlgorithmNotAllowed), "{token}");
    }
    // HMAC keyed with anything, and no signature at all.
    let input = |alg: &str| {
        format!("{}.{}", B64.encode(json!({"alg": alg, "kid": "rsa"}).to_string()), B64.encode(c.to_string()))
    };
    let n = f.keys["rsa"].jwk.algorithm.clone();
    let hmac = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, format!("{n:?}").as_bytes());
    let hs =
        format!("{}.{}", input("HS256"), B64.encode(aws_lc_rs::hmac::sign(&hmac, input("HS256").as_bytes())));
    for token in
        [hs, format!("{}.", input("none")), format!("{}.", input("None")), format!("{}.", input("RS256 "))]
    {
        assert_eq!(f.verify(&token), Err(InvalidReason::AlgorithmNotAllowed), "{token}");
    }
}

#[test]
fn an_ec_signature_checks_only_on_its_own_curve() {
    let f = fixture();
    // Same family, so allowed; the key cannot be read on the other curve, so nothing verifies.
    let c = claims();
    for token in [
        f.token_as("ES384", "p256", &c, "p384", Algorithm::ES384),
        f.token_as("ES256", "p384", &c, "p256", Algorithm::ES256),
    ] {
        assert_eq!(f.verify(&token), Err(InvalidReason::BadSignature), "{token}");
    }
}

#[test]
fn an_rsa_key_under_2048_bits_verifies_nothing() {
    // The fixture is a genuine signature: only the key's size refuses it.
    let (input, signature) = SMALL_TOKEN.rsplit_once('.').unwrap();
    let components =
        aws_lc_rs::signature::RsaPublicKeyComponents { n: B64.decode(SMALL_N).unwrap(), e: vec![1, 0, 1] };
    let legacy = &aws_lc_rs::signature::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY;
    assert!(components.verify(legacy, input.as_bytes(), &B64.decode(signature).unwrap()).is_ok());
    let f = fixture();
    assert_eq!(f.verify(SMALL_TOKEN), Err(InvalidReason::BadSignature));
}

#[test]
fn aud_is_required_and_one_of_its_values_must_be_expected() {
    let f = fixture();
    let with_aud = |aud: Option<Value>| {
        let mut c = claims();
        match aud {
            Some(aud) => c["aud"] = aud,
            None => {
                c.as_object_mut().unwrap().remove("aud");
            }
        }
        f.token("rsa", Algorithm::RS256, &c)
    };
    for aud in
        [json!("api://a"), json!("api://b"), json!(["api://x", "api://b"]), json!(["api://a", "api://a"])]
    {
        assert_eq!(f.verify(&with_aud(Some(aud.clone()))), Ok(()), "{aud}");
    }
    for aud in [
        None,
        Some(Value::Null),
        Some(json!("api://x")),
        Some(json!("API://A")),
        Some(json!("api://a ")),
        Some(json!([])),
        Some(json!(["api://x"])),
        Some(json!(["api://a", 1])),
        Some(json!([["api://a"]])),
        Some(json!(5)),
        Some(json!({"api://a": true})),
    ] {
        assert_eq!(f.verify(&with_aud(aud.clone())), Err(InvalidReason::WrongAudience), "{aud:?}");
    }
}

#[test]
fn checks_run_in_the_order_jsonwebtoken_ran_them() {
    let f = fixture();
    let sign = |header: Value, payload: Value| {
        f.token_raw(&header.to_string(), &payload.to_string(), "rsa", Algorithm::RS256)
    };
    let header = json!({"alg": "RS256", "kid": "rsa"});
    let mut bad_claim = claims();
    bad_claim["upn"] = json!(5);
    let mut bad_claim_and_aud = bad_claim.clone();
    bad_claim_and_aud["aud"] = json!("api://x");
    // A standard header member of the wrong type, even with a good signature.
    for odd in [json!({"x5c": "AAAA"}), json!({"jwk": 1}), json!({"x5t": 1}), json!({"enc": 1})] {
        let mut h = header.clone();
        h.as_object_mut().unwrap().extend(odd.as_object().unwrap().clone());
        assert_eq!(f.verify(&sign(h, claims())), Err(InvalidReason::ClaimsInvalid), "{odd}");
    }
    // The signature before the claims, the claims' types before `aud`.
    assert_eq!(
        f.verify(&flip_signature_byte(&sign(header.clone(), bad_claim.clone()), 3)),
        Err(InvalidReason::BadSignature)
    );
    assert_eq!(f.verify(&sign(header.clone(), bad_claim_and_aud)), Err(InvalidReason::ClaimsInvalid));
    // jsonwebtoken's own claim reading failed on an `exp` or `nbf` holding a non-empty array or
    // object (before `aud`), and not on an empty one.
    for (member, value, why) in [
        ("exp", json!([1]), InvalidReason::ClaimsInvalid),
        ("nbf", json!({"a": 1}), InvalidReason::ClaimsInvalid),
        ("exp", json!([]), InvalidReason::WrongAudience),
        ("nbf", json!({}), InvalidReason::WrongAudience),
        ("exp", json!("1"), InvalidReason::WrongAudience),
    ] {
        let mut c = claims();
        c[member] = value.clone();
        c["aud"] = json!("api://x");
        assert_eq!(f.verify(&sign(header.clone(), c)), Err(why), "{member}: {value}");
    }
}

/// review11: JWKs that publish a key for something other than these signatures (or for another
/// curve), each with a `kid` of its own. They once loaded unpinned: `alg` was read by its `Debug`
/// name (`RSA_OAEP`), which no signature algorithm has, and `key_ops`, an unknown `use` and `crv`
/// were not looked at. Also an RSA key with `e = 1`, whose signatures anyone can make.
fn not_for_signatures(keys: &HashMap<&'static str, Key>) -> Vec<Value> {
    let with = |kid: &str, signer: &str, members: Value| {
        let mut jwk = serde_json::to_value(&keys[signer].jwk).unwrap();
        jwk.as_object_mut().unwrap().extend(members.as_object().unwrap().clone());
        jwk["kid"] = json!(kid);
        jwk
    };
    vec![
        with("rsa-oaep", "rsa", json!({"alg": "RSA-OAEP"})),
        with("rsa-1-5", "rsa", json!({"alg": "RSA1_5"})),
        with("rsa-unknown-alg", "rsa", json!({"alg": "RS1"})),
        with("rsa-encrypt-ops", "rsa", json!({"key_ops": ["encrypt", "wrapKey"]})),
        with("rsa-odd-use", "rsa", json!({"use": "ENC"})),
        with("rsa-verify", "rsa", json!({"use": "sig", "key_ops": ["verify"]})),
        with("p256-as-p384", "p256", json!({"crv": "P-384"})),
        with("p256-as-p384-es256", "p256", json!({"crv": "P-384", "alg": "ES256"})),
        json!({"kty": "RSA", "kid": "rsa-e1", "n": B64.encode([0xff; 256]), "e": "AQ"}),
    ]
}

#[test]
fn review11_a_jwk_for_encryption_another_algorithm_or_another_curve_checks_no_signature() {
    let f = fixture();
    let c = claims();
    let mut outcomes = Vec::new();
    for kid in ["rsa-oaep", "rsa-1-5", "rsa-unknown-alg", "rsa-encrypt-ops", "rsa-odd-use"] {
        for alg in [Algorithm::RS256, Algorithm::PS256] {
            let token = f.token_as(&format!("{alg:?}"), kid, &c, "rsa", alg);
            outcomes.push((kid, alg, f.verify(&token)));
        }
    }
    for kid in ["p256-as-p384", "p256-as-p384-es256"] {
        outcomes.push((
            kid,
            Algorithm::ES256,
            f.verify(&f.token_as("ES256", kid, &c, "p256", Algorithm::ES256)),
        ));
    }
    let accepted: Vec<_> = outcomes.iter().filter(|(_, _, o)| *o != Err(InvalidReason::UnknownKey)).collect();
    assert!(accepted.is_empty(), "{accepted:?}");
    // The control: the same key, said to verify signatures, does.
    assert_eq!(f.verify(&f.token_as("RS256", "rsa-verify", &c, "rsa", Algorithm::RS256)), Ok(()));
}

#[test]
fn review11_an_rsa_key_with_exponent_one_verifies_nothing() {
    // With e = 1 the signature is its own PKCS#1 v1.5 encoding: anyone can write it.
    let f = fixture();
    let header = B64.encode(json!({"alg": "RS256", "kid": "rsa-e1"}).to_string());
    let input = format!("{header}.{}", B64.encode(claims().to_string()));
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, input.as_bytes());
    let prefix = [
        0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00,
        0x04, 0x20,
    ];
    let mut em = vec![0x00, 0x01];
    em.resize(256 - 1 - prefix.len() - 32, 0xff);
    em.push(0x00);
    em.extend_from_slice(&prefix);
    em.extend_from_slice(digest.as_ref());
    assert_eq!(em.len(), 256);
    let token = format!("{input}.{}", B64.encode(&em));
    assert!(f.verify(&token).is_err());
}
