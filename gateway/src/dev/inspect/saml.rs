//! A SAML Response or Assertion, examined with the gateway's own SAML verifier and policy: as an
//! `Authorization: SAML` credential, as a browser sign-in at the ACS, or as an RFC 7522 grant,
//! whichever the document is, and under each configured route.

use super::advice;
use super::findings::{CertificateInfo, Findings, LocationInfo, PrincipalInfo, RouteOutcome, SamlInfo, Time};
use super::input::Form;
use super::sources::{Context, Setup, UsageError};
use crate::config::{Channel, Config, RouteConfig, SamlIdp};
use crate::gate::proxy::{Presented, api_refusal, decide, rule_for, saml_on_route, takes_saml};
use crate::respond::Refusal;
use crate::verify::jwt::Verifier;
use crate::verify::saml::{Extracted, SamlVerified, SamlVerifier, Unverified, Use, read_unverified};
use mfagate_policy::{
    Credential, InvalidReason, MfaOutcome, REFEDS_MFA, Reason, RouteRule, SamlFacts, SamlLocation,
    SamlMfaSettings, UnixTime, evaluate, evaluate_saml_mfa, saml_mfa_proof,
};
use std::sync::Arc;

type Checked = Result<(Arc<SamlVerified>, usize), InvalidReason>;

fn once(verifier: &SamlVerifier, xml: &str, how: &Use) -> Checked {
    verifier.verify_once(xml, how).map(|(v, cert)| (Arc::new(v), cert))
}

/// Examines `xml` with the context's key source.
pub async fn examine(
    ctx: &mut Context,
    xml: &str,
    form: Form,
    no_verify: bool,
) -> Result<Findings, UsageError> {
    let now = ctx.clock.unix();
    let mut f = Findings::new("saml", form.name(), &ctx.source);
    let (x, version) = match read_unverified(xml) {
        Ok(read) => read,
        Err(why) => {
            f.refuse(why);
            return Ok(f);
        }
    };
    let root = roxmltree::Document::parse(xml).map(|d| d.root_element().tag_name().name().to_owned()).ok();
    let version = match version {
        crate::verify::saml::structure::Version::Saml2 => "2.0",
        crate::verify::saml::structure::Version::Saml11 => "1.1",
    };
    f.document.element = root;
    f.document.saml_version = Some(version);
    f.issuer.claimed = Some(x.issuer.clone());
    let defaults = SamlMfaSettings::default();
    let audience = x.audiences.first().and_then(|a| a.first()).cloned();
    let (verifier, not_checked) = match ctx.saml(audience.as_deref()).await? {
        Setup::Ready(v, not_checked) => (v, not_checked),
        Setup::Missing(why) => {
            f.not_checked.push(format!("signature: {why}"));
            f.signature.note = Some(format!("NOT checked: {why}"));
            f.saml = Some(info(&x, &x.facts, &defaults));
            // What no IdP accepts needs no certificate to be refused.
            let credential = match ctx.saml_decoder().refused_without_keys(xml) {
                Some(why) => Credential::Invalid(why),
                None => Credential::Saml { facts: &x.facts, mfa: &defaults, leeway_secs: 60 },
            };
            let decision = evaluate(&RouteRule::default(), credential, now);
            if no_verify {
                let route = super::default_route();
                let refusal = api_refusal(&route, &decision, false, None, false);
                f.routes.push(
                    RouteOutcome::new(&route, &decision, refusal, false).noted("if the signature verified"),
                );
            }
            f.decide(decision, false, no_verify);
            explain(&mut f, &x.facts, &defaults, None);
            // Posted to the ACS, an IdP-initiated Response needs no key to be refused.
            if form == Form::FormValue && x.in_response_to.is_none() {
                f.document.used_as = Some("sign_in");
                refuse_at_acs(&mut f, SIGN_IN_STATE_INVALID);
            }
            return Ok(f);
        }
    };
    f.not_checked = not_checked;
    f.signature.checked = true;
    let routes = ctx.config.as_ref().map_or_else(|| vec![super::default_route()], |c| c.routes.clone());
    let api = once(&verifier, xml, &Use::Api);
    let grants: Vec<Arc<str>> = routes.iter().filter_map(|r| r.grant_audience.clone()).collect();
    // A sign-in only where the configuration has an ACS; without one a document is a credential
    // or nothing.
    let has_acs = ctx.config.as_ref().is_none_or(|c| c.saml.acs_url.is_some());
    let (used_as, overall) =
        if has_acs && (form == Form::FormValue || api.as_ref().err() == Some(&InvalidReason::SsoResponse)) {
            ("sign_in", once(&verifier, xml, &Use::Acs))
        } else if api.as_ref().err() == Some(&InvalidReason::WrongAudience) {
            grants
                .iter()
                .map(|a| once(&verifier, xml, &Use::Grant(a.clone())))
                .find(Result::is_ok)
                .map_or(("api", api.clone()), |ok| ("grant", ok))
        } else {
            ("api", api.clone())
        };
    f.document.used_as = Some(used_as);
    if used_as == "sign_in" {
        f.not_checked.push(
            "InResponseTo: a sign-in Response must answer the AuthnRequest the gateway sent; inspect sent none"
                .to_owned(),
        );
    }
    let signer = |v: &SamlVerified| verifier.idp(v.idp_index);
    let (facts, settings, leeway) = match &overall {
        Ok((v, cert)) => {
            f.signature.valid = Some(true);
            let idp = signer(v);
            f.issuer.configured = idp.map(|i| i.name.clone());
            f.signature.certificate = verifier.certificate(v.idp_index, *cert).map(|der| certificate(&der));
            (&v.facts, idp.map_or(&defaults, |i| &i.mfa), idp.map_or(60, |i| i.leeway_secs))
        }
        Err(why) => {
            f.signature.valid = super::findings::signature_state(*why);
            let idp = idp_for(&verifier, &x.issuer);
            (&x.facts, idp.map_or(&defaults, |i| &i.mfa), 60)
        }
    };
    f.saml = Some(info(&x, facts, settings));
    let credential = match &overall {
        Ok(_) => Credential::Saml { facts, mfa: settings, leeway_secs: leeway },
        Err(why) => Credential::Invalid(*why),
    };
    f.decide(evaluate(&RouteRule::default(), credential, now), overall.is_ok(), no_verify);
    let acs_refusal = match &overall {
        Ok((v, _)) if used_as == "sign_in" => acs_refusal(v, &verifier, ctx.config.as_ref()),
        _ => None,
    };
    if let Some(code) = acs_refusal {
        refuse_at_acs(&mut f, code);
    }
    let idp_name = idp_for(&verifier, &x.issuer).map(|i| i.name.clone());
    explain(&mut f, facts, settings, idp_name.as_deref());
    if used_as == "sign_in"
        && let Err(InvalidReason::SsoResponse) = api
    {
        f.advice.push(
            "This is a browser sign-in Response: it signs a user in at the ACS (portal routes); as an \
             Authorization: SAML credential on API routes it is refused (sso_response_not_api_credential)."
                .to_owned(),
        );
    }
    let judge = Judge { verifier: &verifier, xml, api: &api, overall: &overall, used_as, acs_refusal, now };
    let lifetime = ctx.config.as_ref().map_or(8 * 3600, |c| c.session.lifetime_secs);
    let tokens = Verifier::new(Vec::new(), 0, ctx.clock.clone());
    f.routes = routes.iter().map(|r| judge.route(r, &tokens, lifetime, idp_name.as_deref())).collect();
    Ok(f)
}

/// What the routes are judged with.
struct Judge<'a> {
    verifier: &'a SamlVerifier,
    xml: &'a str,
    api: &'a Checked,
    overall: &'a Checked,
    used_as: &'static str,
    /// Why the ACS refuses this sign-in Response however well it verifies, if it does.
    acs_refusal: Option<&'static str>,
    now: UnixTime,
}

impl Judge<'_> {
    fn route(
        &self,
        route: &RouteConfig,
        tokens: &Verifier,
        lifetime: u64,
        idp: Option<&str>,
    ) -> RouteOutcome {
        let now = self.now;
        let as_presented = |r: &Checked| r.clone().map(|(v, _)| v).map_err(Unverified::Invalid);
        if route.channel == Channel::Portal {
            let signs_in =
                self.used_as == "sign_in" && idp.is_some_and(|i| crate::browser::portal::accepts(route, i));
            if !signs_in {
                let decision = evaluate(&route.rule, Credential::None, now);
                let refusal = (!decision.forwards()).then_some(Refusal::SignIn);
                return RouteOutcome::new(route, &decision, refusal, false).noted(
                    "a browser route: it takes sessions from its own sign-in, not Authorization: SAML \
                         (a script asking for JSON gets 401 login_required)",
                );
            }
            if let Some(code) = self.acs_refusal {
                return RouteOutcome::sign_in_failed(route, code);
            }
            return match self.overall {
                Ok((v, _)) => {
                    let mfa = self.verifier.idp(v.idp_index).map(|i| evaluate_saml_mfa(&v.facts, &i.mfa));
                    let mfa = mfa == Some(MfaOutcome::Proven);
                    let session =
                        Credential::Session { mfa, expires: UnixTime(now.0.saturating_add(lifetime)) };
                    let decision = evaluate(&route.rule, session, now);
                    let refusal = (!decision.forwards()).then_some(Refusal::SignIn);
                    RouteOutcome::new(route, &decision, refusal, false)
                        .noted(format!("after this sign-in at the ACS (a session with mfa = {mfa})"))
                }
                Err(why) => RouteOutcome::sign_in_failed(route, why.code()),
            };
        }
        let (presented, rule, none_because, note) = match &route.grant_audience {
            Some(audience) => {
                let grant = once(self.verifier, self.xml, &Use::Grant(audience.clone()));
                let note = format!("a token endpoint: the document as an RFC 7522 grant for {audience}");
                (saml_on_route(route, as_presented(&grant)), rule_for(route, true), None, Some(note))
            }
            None if !takes_saml(self.verifier, route) => {
                (Presented::SamlNotAccepted, rule_for(route, false), Some(Refusal::SamlNotAccepted), None)
            }
            None => (saml_on_route(route, as_presented(self.api)), rule_for(route, false), None, None),
        };
        let d = decide(tokens, self.verifier, now, &rule, &presented);
        let none_because = none_because.filter(|_| d.decision.reason == Reason::NoToken);
        let refusal = api_refusal(route, &d.decision, route.grant_audience.is_some(), none_because, false);
        let outcome = RouteOutcome::new(route, &d.decision, refusal, false);
        match note {
            Some(n) => outcome.noted(n),
            None => outcome,
        }
    }
}

/// The ACS's reason code for a sign-in that answers none of its AuthnRequests.
const SIGN_IN_STATE_INVALID: &str = "sign_in_state_invalid";

const IDP_INITIATED: &str = "This Response answers no AuthnRequest (no InResponseTo): an IdP-initiated \
                             sign-in, which the gateway's ACS refuses (sign_in_state_invalid). Start the \
                             sign-in at the gateway, on a browser route: it sends the AuthnRequest the \
                             IdP must answer.";

/// The ACS's reason code for a Response from another IdP than the one the sign-in went to.
const SAML_IDP_MISMATCH: &str = "saml_idp_mismatch";

const NO_LOGIN: &str = "No browser route signs in with this IdP: a sign-in starts at a browser \
                        route, at its login IdP, and the ACS takes only that IdP's Response. Set \
                        login to this [[saml_idp]]'s name on the browser routes it is for.";

/// Why the ACS refuses the verified sign-in Response `v` whatever it proves, if it does: it
/// answers none of the ACS's AuthnRequests (IdP-initiated); or, under a configuration, no
/// browser route signs in with its IdP (a sign-in starts at a route's `login`).
fn acs_refusal(v: &SamlVerified, verifier: &SamlVerifier, config: Option<&Config>) -> Option<&'static str> {
    if v.in_response_to.is_none() {
        return Some(SIGN_IN_STATE_INVALID);
    }
    let idp = verifier.idp(v.idp_index).map(|i| i.name.as_str());
    let logs_in = |c: &Config| {
        c.routes.iter().any(|r| r.channel == Channel::Portal && r.login.as_deref() == idp && idp.is_some())
    };
    config.filter(|c| !logs_in(c)).map(|_| SAML_IDP_MISMATCH)
}

/// A sign-in the ACS refuses with `code`, with what to do instead.
fn refuse_at_acs(f: &mut Findings, code: &'static str) {
    let (description, advice) = if code == SIGN_IN_STATE_INVALID {
        ("An IdP-initiated sign-in (a Response to no AuthnRequest) is refused at the ACS", IDP_INITIATED)
    } else {
        ("No browser route signs in with this IdP", NO_LOGIN)
    };
    f.refuse_sign_in(code, description);
    f.advice.push(advice.to_owned());
}

/// The configured IdP whose entity id is `issuer`.
fn idp_for<'a>(verifier: &'a SamlVerifier, issuer: &str) -> Option<&'a SamlIdp> {
    (0..).map_while(|i| verifier.idp(i)).find(|idp| idp.entity_id == issuer)
}

/// Who signed in and whether MFA is proven, with the location that decided, and the advice.
fn explain(f: &mut Findings, facts: &SamlFacts, settings: &SamlMfaSettings, idp: Option<&str>) {
    f.principal = Some(PrincipalInfo { kind: "user", decided_by: "saml" });
    match saml_mfa_proof(facts, settings) {
        Ok((location, value)) => {
            f.mfa.verdict = "yes";
            f.mfa.decided_by = Some(location.name().to_owned());
            f.mfa.value = Some(value);
        }
        Err(gap) => {
            f.mfa.verdict = "no";
            f.mfa.reason = Some(gap.code());
            // Inspect reads every location itself, to name the one the configuration misses.
            let mut everywhere = settings.clone();
            for l in SamlLocation::ALL {
                everywhere.set_reads(l, true);
            }
            let elsewhere =
                saml_mfa_proof(facts, &everywhere).ok().map(|(l, _)| l).filter(|l| !settings.reads(*l));
            f.mfa.unread_location = elsewhere.map(SamlLocation::name);
            let refeds_unread = !settings.refeds
                && settings.authn_context
                && facts.class_refs.iter().any(|c| c == REFEDS_MFA);
            f.advice.extend(advice::saml_gap(gap, elsewhere, idp, refeds_unread));
        }
    }
}

/// The statements that matter, MFA facts from `facts` (the signed ones once verified).
fn info(x: &Extracted, facts: &SamlFacts, settings: &SamlMfaSettings) -> SamlInfo {
    let identity = x.identity("");
    SamlInfo {
        assertion_id: x.id.clone(),
        audiences: x.audiences.iter().flatten().cloned().collect(),
        name_id: x.name_id.clone(),
        tenant_id: identity.tenant_id,
        object_id: identity.object_id,
        upn: identity.upn,
        not_before: facts.not_before.map(|t| Time::at(t.0)),
        not_on_or_after: Some(Time::at(facts.expires.0)),
        recipient: x.recipient.clone(),
        in_response_to: x.in_response_to.clone(),
        one_time_use: x.one_time_use,
        mfa_locations: SamlLocation::ALL
            .into_iter()
            .map(|l| LocationInfo {
                location: l.name(),
                path: l.path(),
                values: l.values(facts).into_iter().map(str::to_owned).collect(),
                read: settings.reads(l),
            })
            .collect(),
    }
}

/// A certificate by its fingerprint, subject and end of validity: never its key.
fn certificate(der: &[u8]) -> CertificateInfo {
    let digest = crate::verify::jwt::sha256(der);
    let sha256 = digest.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":");
    let parsed = openssl::x509::X509::from_der(der).ok();
    let subject = parsed.as_ref().map(|c| {
        c.subject_name()
            .entries()
            .map(|e| {
                let name = e.object().nid().short_name().unwrap_or("?");
                let value = e.data().to_string().unwrap_or_default();
                format!("{name}={value}")
            })
            .collect::<Vec<_>>()
            .join(", ")
    });
    CertificateInfo { sha256, subject, not_after: parsed.map(|c| c.not_after().to_string()) }
}
