use super::*;
use crate::{Amr, Anomaly, MfaGap, Outcome, TokenVersion};
use proptest::prelude::*;

const NOW: UnixTime = UnixTime(1_700_000_000);

fn user(amr: Amr) -> TokenFacts {
    TokenFacts {
        version: TokenVersion::V1,
        idtyp: None,
        has_scp: true,
        has_roles: false,
        amr,
        acrs: Vec::new(),
        client_auth: Some("1".into()),
        expires: NOW.plus(3600),
        not_before: Some(UnixTime(NOW.0 - 10)),
    }
}

fn list(values: &[&str]) -> Amr {
    Amr::List(values.iter().map(|v| v.to_string()).collect())
}

fn app_only() -> TokenFacts {
    TokenFacts { has_scp: false, has_roles: true, amr: Amr::Absent, ..user(Amr::Absent) }
}

fn eval_with(rule: RouteRule, facts: &TokenFacts, mfa: &MfaSettings) -> Decision {
    evaluate(&rule, Credential::Token { facts, mfa, leeway_secs: 60 }, NOW)
}

fn eval(facts: &TokenFacts) -> Decision {
    eval_with(RouteRule::default(), facts, &MfaSettings::default())
}

/// claims.md §9, JWT API-route rows (the numbers are the document's).
#[test]
fn claims_md_section_9_table() {
    let v2 = |f: TokenFacts| TokenFacts { version: TokenVersion::V2, ..f };
    let cases: Vec<(u32, TokenFacts, Reason, Principal, Option<bool>)> = vec![
        (1, user(list(&["pwd", "mfa"])), Reason::MfaSatisfied, Principal::AppUser, Some(true)),
        (2, user(list(&["pwd"])), Reason::MfaRequired(MfaGap::NoMfaMethod), Principal::AppUser, Some(false)),
        (3, user(list(&["rsa", "mfa"])), Reason::MfaSatisfied, Principal::AppUser, Some(true)),
        (4, user(list(&["ngcmfa"])), Reason::MfaSatisfied, Principal::AppUser, Some(true)),
        (
            5,
            user(list(&["wiaormfa"])),
            Reason::MfaRequired(MfaGap::WiaOrMfaOnly),
            Principal::AppUser,
            Some(false),
        ),
        (6, user(list(&["fed", "mfa"])), Reason::MfaSatisfied, Principal::AppUser, Some(true)),
        (7, user(list(&["fed"])), Reason::MfaRequired(MfaGap::NoMfaMethod), Principal::AppUser, Some(false)),
        (
            7,
            user(list(&["fed", "pwd"])),
            Reason::MfaRequired(MfaGap::NoMfaMethod),
            Principal::AppUser,
            Some(false),
        ),
        (8, user(Amr::Absent), Reason::MfaRequired(MfaGap::AmrMissing), Principal::AppUser, Some(false)),
        (
            9,
            user(Amr::Text("mfa".into())),
            Reason::MfaRequired(MfaGap::AmrMalformed),
            Principal::AppUser,
            Some(false),
        ),
        (10, user(list(&["MFA"])), Reason::MfaRequired(MfaGap::NoMfaMethod), Principal::AppUser, Some(false)),
        (
            11,
            user(list(&["pwd", "mfax"])),
            Reason::MfaRequired(MfaGap::NoMfaMethod),
            Principal::AppUser,
            Some(false),
        ),
        (
            11,
            user(list(&["nomfa"])),
            Reason::MfaRequired(MfaGap::NoMfaMethod),
            Principal::AppUser,
            Some(false),
        ),
        (13, v2(user(Amr::Absent)), Reason::MfaRequired(MfaGap::UnknownV2), Principal::AppUser, Some(false)),
        (17, app_only(), Reason::AppOnlyAllowed, Principal::AppOnly, None),
        (
            18,
            TokenFacts { idtyp: Some("app".into()), ..app_only() },
            Reason::AppOnlyAllowed,
            Principal::AppOnly,
            None,
        ),
        (
            19,
            TokenFacts { idtyp: Some("app".into()), has_scp: true, ..app_only() },
            Reason::AppOnlyAllowed,
            Principal::AppOnly,
            None,
        ),
        (
            20,
            TokenFacts { idtyp: Some("user".into()), ..user(list(&["mfa"])) },
            Reason::MfaSatisfied,
            Principal::AppUser,
            Some(true),
        ),
        (
            21,
            TokenFacts { has_scp: false, ..user(list(&["mfa"])) },
            Reason::InvalidToken(InvalidReason::NoPermissionsClaim),
            Principal::Anonymous,
            None,
        ),
        (
            22,
            TokenFacts { client_auth: Some("0".into()), ..app_only() },
            Reason::AppOnlyAllowed,
            Principal::AppOnly,
            None,
        ),
        (
            24,
            TokenFacts { has_roles: true, ..user(list(&["mfa"])) },
            Reason::MfaSatisfied,
            Principal::AppUser,
            Some(true),
        ),
    ];
    for (n, facts, reason, principal, mfa) in cases {
        let d = eval(&facts);
        assert_eq!((d.reason, d.principal, d.mfa), (reason, principal, mfa), "case {n}: {facts:?}");
    }
}

#[test]
fn acr_is_never_proof() {
    // Case 12: `acr` is not even a fact the policy receives; amr ["pwd"] decides.
    assert_eq!(eval(&user(list(&["pwd"]))).outcome(), Outcome::Challenge);
}

#[test]
fn lenient_string_amr_is_split_only_when_configured() {
    let lenient = MfaSettings { amr_lenient: true, ..MfaSettings::default() };
    for text in ["mfa", "pwd,mfa", "pwd mfa"] {
        let d = eval_with(RouteRule::default(), &user(Amr::Text(text.into())), &lenient);
        assert_eq!(d.reason, Reason::MfaSatisfied, "{text}");
    }
    let d = eval_with(RouteRule::default(), &user(Amr::Text("pwd,mfax".into())), &lenient);
    assert_eq!(d.reason, Reason::MfaRequired(MfaGap::NoMfaMethod));
    assert_eq!(eval(&user(Amr::Malformed)).reason, Reason::MfaRequired(MfaGap::AmrMalformed));
}

#[test]
fn acrs_prove_mfa_only_when_configured() {
    // Cases 14 and 15.
    let facts = TokenFacts { version: TokenVersion::V2, acrs: vec!["c1".into()], ..user(Amr::Absent) };
    let with_c1 = MfaSettings { mfa_acrs: vec!["c1".into()], ..MfaSettings::default() };
    assert_eq!(eval_with(RouteRule::default(), &facts, &with_c1).reason, Reason::MfaSatisfied);
    assert_eq!(eval(&facts).reason, Reason::MfaRequired(MfaGap::UnknownV2));
    let c2 = TokenFacts { acrs: vec!["c2".into()], ..facts };
    assert_eq!(eval_with(RouteRule::default(), &c2, &with_c1).reason, Reason::MfaRequired(MfaGap::UnknownV2));
}

#[test]
fn anomalies_are_reported() {
    let both = TokenFacts { idtyp: Some("app".into()), has_scp: true, ..app_only() };
    assert_eq!(eval(&both).anomalies, vec![Anomaly::AppTokenWithScopes]);
    let public = TokenFacts { client_auth: Some("0".into()), ..app_only() };
    assert_eq!(eval(&public).anomalies, vec![Anomaly::AppOnlyPublicClient]);
}

#[test]
fn route_rules() {
    let deny_apps = RouteRule { app_only: AppOnlyAccess::Deny, ..RouteRule::default() };
    // Case 23.
    assert_eq!(eval_with(deny_apps, &app_only(), &MfaSettings::default()).reason, Reason::AppOnlyDenied);
    let optional = RouteRule { mfa: MfaRequirement::Optional, ..RouteRule::default() };
    let d = eval_with(optional, &user(list(&["pwd"])), &MfaSettings::default());
    assert_eq!((d.reason, d.mfa), (Reason::MfaNotRequired, Some(false)));
    let report = RouteRule { mode: Mode::ReportOnly, ..RouteRule::default() };
    let d = eval_with(report, &user(list(&["pwd"])), &MfaSettings::default());
    assert_eq!(d.outcome(), Outcome::Challenge);
    assert!(!d.enforced && d.forwards());
}

#[test]
fn credentials_and_time() {
    let rule = RouteRule::default();
    let d = evaluate(&rule, Credential::None, NOW);
    assert_eq!((d.reason, d.forwards()), (Reason::NoToken, false));
    let d = evaluate(&rule, Credential::Invalid(InvalidReason::BadSignature), NOW);
    assert_eq!(d.reason.code(), "bad_signature");
    assert_eq!(evaluate(&rule, Credential::Unverifiable, NOW).reason, Reason::KeysUnavailable);

    let mfa = MfaSettings::default();
    let at = |expires: u64, nbf: Option<u64>| TokenFacts {
        expires: UnixTime(expires),
        not_before: nbf.map(UnixTime),
        ..user(list(&["mfa"]))
    };
    let check = |facts: &TokenFacts| {
        evaluate(&rule, Credential::Token { facts, mfa: &mfa, leeway_secs: 60 }, NOW).reason
    };
    let expired = Reason::InvalidToken(InvalidReason::Expired);
    let early = Reason::InvalidToken(InvalidReason::NotYetValid);
    // Case 31, with the leeway's edges.
    assert_eq!(check(&at(NOW.0 - 60, None)), expired);
    assert_eq!(check(&at(NOW.0 - 59, None)), Reason::MfaSatisfied);
    assert_eq!(check(&at(NOW.0 + 100, Some(NOW.0 + 61))), early);
    assert_eq!(check(&at(NOW.0 + 100, Some(NOW.0 + 60))), Reason::MfaSatisfied);
}

#[test]
fn public_routes_never_refuse_but_name_valid_callers() {
    let public = RouteRule { auth: AuthRequirement::None, ..RouteRule::default() };
    let d = evaluate(&public, Credential::None, NOW);
    assert_eq!((d.reason, d.principal, d.forwards()), (Reason::PublicRoute, Principal::Anonymous, true));
    let d = eval_with(public, &user(list(&["pwd"])), &MfaSettings::default());
    assert_eq!((d.reason, d.principal, d.mfa), (Reason::PublicRoute, Principal::AppUser, Some(false)));
    let d = evaluate(&public, Credential::Invalid(InvalidReason::Expired), NOW);
    assert_eq!((d.principal, d.mfa), (Principal::Anonymous, None));
}

#[test]
fn reason_codes_are_unique() {
    use std::collections::HashSet;
    let invalid = [
        InvalidReason::Malformed,
        InvalidReason::TooLarge,
        InvalidReason::AlgorithmNotAllowed,
        InvalidReason::UnknownKey,
        InvalidReason::BadSignature,
        InvalidReason::Expired,
        InvalidReason::NotYetValid,
        InvalidReason::UnknownIssuer,
        InvalidReason::WrongIssuer,
        InvalidReason::TenantNotAllowed,
        InvalidReason::WrongAudience,
        InvalidReason::ClaimsInvalid,
        InvalidReason::NoPermissionsClaim,
        InvalidReason::Replayed,
        InvalidReason::SignatureMisplaced,
        InvalidReason::CritUnsupported,
        InvalidReason::B64Unsupported,
        InvalidReason::NestedJwt,
        InvalidReason::TypNotAllowed,
        InvalidReason::DuplicateJsonKey,
        InvalidReason::SsoResponse,
        InvalidReason::WeakAlgorithm(crate::WeakAlgorithm::RsaSha1),
    ];
    let gaps = [
        MfaGap::AmrMissing,
        MfaGap::AmrMalformed,
        MfaGap::WiaOrMfaOnly,
        MfaGap::NoMfaMethod,
        MfaGap::UnknownV2,
        MfaGap::SamlNoMfa,
        MfaGap::SamlWiaOrMultiAuthnOnly,
        MfaGap::SessionWithoutMfa,
    ];
    let mut all: Vec<Reason> = vec![
        Reason::MfaSatisfied,
        Reason::MfaNotRequired,
        Reason::AppOnlyAllowed,
        Reason::PublicRoute,
        Reason::NoToken,
        Reason::KeysUnavailable,
        Reason::AppOnlyDenied,
    ];
    all.extend(invalid.map(Reason::InvalidToken));
    all.extend(gaps.map(Reason::MfaRequired));
    let codes: HashSet<_> = all.iter().map(|r| r.code()).collect();
    assert_eq!(codes.len(), all.len());
    // Each weak algorithm is named by its own URI, and read back from it.
    for a in crate::WeakAlgorithm::ALL {
        assert_eq!(crate::WeakAlgorithm::from_uri(a.uri()), Some(a));
        assert_eq!(Reason::InvalidToken(InvalidReason::WeakAlgorithm(a)).detail(), Some(a.uri()));
    }
    let uris: HashSet<_> = crate::WeakAlgorithm::ALL.iter().map(|a| a.uri()).collect();
    assert_eq!(uris.len(), crate::WeakAlgorithm::ALL.len());
    assert_eq!(crate::WeakAlgorithm::from_uri("http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"), None);
    assert_eq!(Reason::InvalidToken(InvalidReason::BadSignature).detail(), None);
}

fn amr_strategy() -> impl Strategy<Value = Amr> {
    let value = prop_oneof![
        Just("mfa".to_string()),
        Just("ngcmfa".to_string()),
        Just("pwd".to_string()),
        Just("wiaormfa".to_string()),
        Just("MFA".to_string()),
        Just("fed".to_string()),
        "[a-z]{0,8}",
    ];
    prop_oneof![
        Just(Amr::Absent),
        Just(Amr::Malformed),
        proptest::collection::vec(value.clone(), 0..5).prop_map(Amr::List),
        value.prop_map(Amr::Text),
    ]
}

fn facts_strategy() -> impl Strategy<Value = TokenFacts> {
    (
        amr_strategy(),
        prop_oneof![Just(None), Just(Some("app".to_string())), Just(Some("user".to_string()))],
        any::<bool>(),
        any::<bool>(),
        prop_oneof![Just(TokenVersion::V1), Just(TokenVersion::V2), Just(TokenVersion::Unversioned)],
        proptest::collection::vec(prop_oneof![Just("c1".to_string()), Just("c2".to_string())], 0..2),
        0u64..7200,
    )
        .prop_map(|(amr, idtyp, has_scp, has_roles, version, acrs, exp)| TokenFacts {
            version,
            idtyp,
            has_scp,
            has_roles,
            amr,
            acrs,
            client_auth: None,
            expires: UnixTime(NOW.0 - 3600 + exp),
            not_before: None,
        })
}

fn rule_strategy() -> impl Strategy<Value = RouteRule> {
    (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(a, m, o, r)| RouteRule {
        auth: if a { AuthRequirement::Required } else { AuthRequirement::None },
        mfa: if m { MfaRequirement::Required } else { MfaRequirement::Optional },
        app_only: if o { AppOnlyAccess::Allow } else { AppOnlyAccess::Deny },
        mode: if r { Mode::Enforce } else { Mode::ReportOnly },
    })
}

fn without_mfa(amr: &Amr) -> Amr {
    match amr {
        Amr::List(v) => Amr::List(v.iter().filter(|x| *x != "mfa" && *x != "ngcmfa").cloned().collect()),
        Amr::Text(_) => Amr::Text("pwd".into()),
        other => other.clone(),
    }
}

proptest! {
    #[test]
    fn removing_mfa_never_turns_a_refusal_into_an_allow(facts in facts_strategy(), rule in rule_strategy(), lenient in any::<bool>()) {
        let mfa = MfaSettings { amr_lenient: lenient, mfa_acrs: vec!["c1".into()], ..MfaSettings::default() };
        let before = eval_with(rule, &facts, &mfa);
        let stripped = TokenFacts { amr: without_mfa(&facts.amr), acrs: Vec::new(), ..facts.clone() };
        let after = eval_with(rule, &stripped, &mfa);
        if before.outcome() != Outcome::Allow {
            prop_assert_ne!(after.outcome(), Outcome::Allow);
        }
        prop_assert_ne!(after.mfa, Some(true));
    }

    #[test]
    fn app_only_never_counts_as_mfa(facts in facts_strategy(), rule in rule_strategy()) {
        let d = eval_with(rule, &facts, &MfaSettings::default());
        if d.principal != Principal::AppUser {
            prop_assert_eq!(d.mfa, None);
        }
    }

    #[test]
    fn report_only_decides_like_enforce_and_always_forwards(facts in facts_strategy(), rule in rule_strategy()) {
        let enforce = eval_with(RouteRule { mode: Mode::Enforce, ..rule }, &facts, &MfaSettings::default());
        let report = eval_with(RouteRule { mode: Mode::ReportOnly, ..rule }, &facts, &MfaSettings::default());
        prop_assert_eq!(&enforce.reason, &report.reason);
        prop_assert!(report.forwards());
        prop_assert!(enforce.enforced && !report.enforced);
    }

    #[test]
    fn an_allow_on_an_mfa_route_means_mfa_or_app_only(facts in facts_strategy(), rule in rule_strategy()) {
        let d = eval_with(rule, &facts, &MfaSettings::default());
        if rule.auth == AuthRequirement::Required && rule.mfa == MfaRequirement::Required && d.outcome() == Outcome::Allow {
            prop_assert!(d.mfa == Some(true) || d.principal == Principal::AppOnly);
        }
    }

    #[test]
    fn expired_tokens_are_never_allowed_on_protected_routes(facts in facts_strategy()) {
        let d = eval(&facts);
        if facts.expires.plus(60) <= NOW {
            prop_assert_eq!(d.reason, Reason::InvalidToken(InvalidReason::Expired));
        }
    }
}

#[test]
fn the_proof_names_the_claim_value_and_the_classification_its_claim() {
    use crate::{ClassifiedBy, MfaProof, classify_by, mfa_proof};
    let s = MfaSettings { mfa_acrs: vec!["c1".into()], ..MfaSettings::default() };
    assert_eq!(mfa_proof(&user(list(&["pwd", "ngcmfa"])), &s), Ok(MfaProof::Amr("ngcmfa".into())));
    let acrs = TokenFacts { acrs: vec!["c2".into(), "c1".into()], ..user(list(&["pwd"])) };
    assert_eq!(mfa_proof(&acrs, &s), Ok(MfaProof::Acrs("c1".into())));
    assert_eq!(mfa_proof(&user(list(&["wiaormfa"])), &s), Err(MfaGap::WiaOrMfaOnly));
    let lenient = MfaSettings { amr_lenient: true, ..MfaSettings::default() };
    assert_eq!(mfa_proof(&user(Amr::Text("pwd, mfa".into())), &lenient), Ok(MfaProof::Amr("mfa".into())));

    let by = |f: TokenFacts| classify_by(&f).map(|(p, _, by)| (p, by));
    let idtyp = |v: &str, f: TokenFacts| TokenFacts { idtyp: Some(v.into()), ..f };
    assert_eq!(by(idtyp("app", user(Amr::Absent))), Ok((Principal::AppOnly, ClassifiedBy::Idtyp)));
    assert_eq!(by(idtyp("user", app_only())), Ok((Principal::AppUser, ClassifiedBy::Idtyp)));
    assert_eq!(
        by(TokenFacts { has_roles: true, ..user(Amr::Absent) }),
        Ok((Principal::AppUser, ClassifiedBy::Scp))
    );
    assert_eq!(by(app_only()), Ok((Principal::AppOnly, ClassifiedBy::Roles)));
    let nothing = TokenFacts { has_roles: false, ..app_only() };
    assert_eq!(by(idtyp("user", nothing)), Err(InvalidReason::NoPermissionsClaim));
}
