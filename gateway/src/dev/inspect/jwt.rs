//! A JWT, examined with the gateway's own verifier and policy: the signature and key, then the
//! policy's decision under a default route and under each configured route.

use super::advice;
use super::findings::{Findings, PrincipalInfo, RouteOutcome, Time};
use super::sources::{Context, Setup, UsageError};
use crate::config::{Channel, RouteConfig};
use crate::gate::proxy::{Presented, api_refusal, bearer, decide, rule_for, token_on_route};
use crate::respond::Refusal;
use crate::verify::jwt::{CacheCounters, Claimed, Verification, Verifier, compact, read_unverified};
use mfagate_policy::{
    Credential, MfaGap, MfaProof, MfaSettings, Principal, RouteRule, TokenFacts, UnixTime, classify_by,
    evaluate, mfa_proof,
};
use serde_json::{Map, Value};

/// The claims shown: what decides and what identifies, never a nonce or a hash.
#[rustfmt::skip]
const SHOWN: [&str; 19] = [
    "iss", "ver", "tid", "oid", "sub", "upn", "unique_name", "preferred_username", "appid", "azp", "appidacr", "azpacr",
    "idtyp", "roles", "scp", "amr", "acrs", "aud", "xms_cc",
];

const BROWSER_ROUTE: &str = "a browser route: it takes sign-in sessions, not bearer tokens (a script \
                             asking for JSON gets 401 login_required)";

/// Examines `token` with the context's key source.
pub async fn examine(ctx: &mut Context, token: &str, no_verify: bool) -> Result<Findings, UsageError> {
    let now = ctx.clock.unix();
    let mut f = Findings::new("jwt", "compact", &ctx.source);
    let parts = compact::split(token).ok();
    let json = |bytes: &[u8]| serde_json::from_slice::<Value>(bytes).ok();
    let header = parts.as_ref().and_then(|p| json(&p.header)).unwrap_or(Value::Null);
    let payload = parts.as_ref().and_then(|p| json(&p.payload)).unwrap_or(Value::Null);
    f.jwt = Some(shown_claims(&payload));
    let text = |v: &Value, name: &str| v.get(name).and_then(Value::as_str).map(str::to_owned);
    f.issuer.claimed = text(&payload, "iss");
    f.signature.alg = text(&header, "alg");
    f.signature.kid = text(&header, "kid");
    let claimed = match read_unverified(token) {
        // The gateway refuses a token over its size before it reads it.
        Ok(c) if token.len() > ctx.max_token_bytes() => {
            Claimed { refused: Some(mfagate_policy::InvalidReason::TooLarge), ..c }
        }
        Ok(c) => c,
        Err(why) => {
            f.refuse(why);
            return Ok(f);
        }
    };
    let aud = match payload.get("aud") {
        Some(Value::String(a)) => vec![a.clone()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        _ => Vec::new(),
    };
    let looks_adfs = f.issuer.claimed.as_deref().is_some_and(|i| i.to_ascii_lowercase().contains("/adfs"));
    let defaults = MfaSettings::default();
    let (verifier, not_checked) = match ctx.jwt(f.issuer.claimed.as_deref(), &aud).await? {
        Setup::Ready(v, not_checked) => (v, not_checked),
        Setup::Missing(why) => {
            f.not_checked.push(format!("signature: {why}"));
            f.signature.note = Some(format!("NOT checked: {why}"));
            // What no issuer accepts needs no key to be refused.
            let credential = match claimed.refused {
                Some(why) => Credential::Invalid(why),
                None => Credential::Token { facts: &claimed.facts, mfa: &defaults, leeway_secs: 60 },
            };
            let decision = evaluate(&RouteRule::default(), credential, now);
            if no_verify {
                let route = super::default_route();
                let refusal = api_refusal(&route, &decision, false, None, claimed.claims_capable);
                f.routes.push(
                    RouteOutcome::new(&route, &decision, refusal, claimed.claims_capable)
                        .noted("if the signature verified"),
                );
            }
            f.decide(decision, false, no_verify);
            explain(&mut f, &claimed.facts, &defaults, looks_adfs);
            return Ok(f);
        }
    };
    f.not_checked = not_checked;
    let verification = bearer(&verifier, &CacheCounters::default(), ctx.max_token_bytes(), token).await;
    f.signature.checked = true;
    let (facts, settings, leeway) = match &verification {
        Verification::Verified(v) => {
            f.signature.valid = Some(true);
            if let Some(key) = v.key.upgrade() {
                f.signature.kid = Some(key.kid.clone());
                f.signature.key_thumbprint = key.thumbprint.clone();
            }
            f.issuer.configured = Some(v.identity.issuer.clone());
            let issuer = verifier.issuer_config(v.issuer_index);
            (&v.facts, issuer.map_or(&defaults, |i| &i.mfa), issuer.map_or(60, |i| i.leeway_secs))
        }
        Verification::Invalid(why) => {
            f.signature.valid = super::findings::signature_state(*why);
            (&claimed.facts, &defaults, 60)
        }
        Verification::Unverifiable => {
            let why = key_errors(&verifier).join("; ");
            f.signature.checked = false;
            f.signature.note = Some(format!("NOT checked: the keys could not be loaded ({why})"));
            f.not_checked.push(format!("signature: the keys could not be loaded ({why})"));
            (&claimed.facts, &defaults, 60)
        }
    };
    let credential = match (&verification, &claimed.refused) {
        (Verification::Invalid(why), _) | (Verification::Unverifiable, Some(why)) => {
            Credential::Invalid(*why)
        }
        _ => Credential::Token { facts, mfa: settings, leeway_secs: leeway },
    };
    let verified = matches!(verification, Verification::Verified(_));
    f.decide(evaluate(&RouteRule::default(), credential, now), verified, no_verify);
    explain(&mut f, facts, settings, looks_adfs);
    let default_route = [super::default_route()];
    let routes = ctx.config.as_ref().map_or(&default_route[..], |c| &c.routes[..]);
    f.routes = judge_routes(routes, &verifier, &ctx.saml_decoder(), &verification, now);
    Ok(f)
}

/// What every route would answer, through the request path's own steps.
fn judge_routes(
    routes: &[RouteConfig],
    verifier: &Verifier,
    saml: &crate::verify::saml::SamlVerifier,
    verification: &Verification,
    now: UnixTime,
) -> Vec<RouteOutcome> {
    routes
        .iter()
        .map(|route| {
            if route.channel == Channel::Portal {
                // Browser routes read their session cookie, never the Authorization header.
                let decision = evaluate(&route.rule, Credential::None, now);
                let refusal = (!decision.forwards()).then_some(Refusal::SignIn);
                return RouteOutcome::new(route, &decision, refusal, false).noted(BROWSER_ROUTE);
            }
            let presented: Presented = token_on_route(route, verification.clone());
            let d = decide(verifier, saml, now, &rule_for(route, false), &presented);
            let refusal = api_refusal(route, &d.decision, false, None, d.claims_capable);
            RouteOutcome::new(route, &d.decision, refusal, d.claims_capable)
        })
        .collect()
}

fn key_errors(verifier: &Verifier) -> Vec<String> {
    verifier
        .keys()
        .filter(|k| !k.is_loaded())
        .map(|k| format!("{}: {}", k.name(), k.last_error().unwrap_or_else(|| "not loaded".into())))
        .collect()
}

/// Who is calling and whether MFA is proven, with the claim that decided each, and the advice.
fn explain(f: &mut Findings, facts: &TokenFacts, settings: &MfaSettings, looks_adfs: bool) {
    let amr: Vec<String> = match &facts.amr {
        mfagate_policy::Amr::List(v) => v.clone(),
        mfagate_policy::Amr::Text(t) => vec![t.clone()],
        _ => Vec::new(),
    };
    let Ok((principal, _, by)) = classify_by(facts) else { return };
    f.principal = Some(PrincipalInfo { kind: principal.as_str(), decided_by: by.claim() });
    if principal == Principal::AppOnly {
        f.mfa.verdict = "n/a";
        f.mfa.reason = Some("app_only");
        f.advice.push(
            "App-only (an application acting as itself): no user signed in, so MFA does not apply and \
             Partner Center leaves the call out of its MFA metric. Exit 1: MFA is not proven. If a user \
             is behind these calls, use a delegated (App+User) flow."
                .to_owned(),
        );
        return;
    }
    match mfa_proof(facts, settings) {
        Ok(proof) => {
            f.mfa.verdict = "yes";
            let (claim, value) = match proof {
                MfaProof::Amr(v) => ("amr", v),
                MfaProof::Acrs(v) => ("acrs", v),
            };
            f.mfa.decided_by = Some(claim.to_owned());
            f.mfa.value = Some(value);
        }
        Err(gap) => {
            f.mfa.verdict = if gap == MfaGap::UnknownV2 { "unknown" } else { "no" };
            f.mfa.decided_by = Some(if gap == MfaGap::UnknownV2 { "ver" } else { "amr" }.to_owned());
            f.mfa.reason = Some(gap.code());
            f.advice.extend(advice::jwt_gap(gap, &amr, &facts.acrs, looks_adfs));
        }
    }
}

/// The claims that matter, times as RFC 3339.
fn shown_claims(payload: &Value) -> Value {
    let mut out = Map::new();
    for name in SHOWN {
        if let Some(v) = payload.get(name) {
            out.insert(name.to_owned(), v.clone());
        }
    }
    for name in ["exp", "iat", "nbf"] {
        if let Some(t) = payload.get(name).and_then(Value::as_f64).filter(|t| *t >= 0.0) {
            out.insert(name.to_owned(), serde_json::to_value(Time::at(t as u64)).unwrap_or(Value::Null));
        }
    }
    Value::Object(out)
}
