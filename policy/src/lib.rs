//! mfagate's policy: verified facts in, a decision out.
//!
//! Nothing here does I/O, reads a clock or the environment: the gateway verifies credentials,
//! hands over [`TokenFacts`], and passes the current time as a [`UnixTime`]. The rules follow
//! `shared/docs/claims.md` §8: App-only vs App+User by `idtyp`, then `scp`/`roles`; MFA by an exact
//! `amr` element (`mfa`, `ngcmfa`) or a configured auth-context id in `acrs`, never by `acr`,
//! `wiaormfa`, case variants or substrings.
#![warn(missing_docs)]

mod decision;
mod evaluate;
mod facts;
mod mfa;
pub mod path;
mod portal;
mod principal;
pub mod report;
mod rule;
mod saml;
mod time;

pub use decision::{Anomaly, Decision, InvalidReason, MfaGap, Outcome, Reason, WeakAlgorithm};
pub use evaluate::{Credential, evaluate, time_window};
pub use facts::{Amr, TokenFacts, TokenVersion};
pub use mfa::{MfaOutcome, MfaProof, MfaSettings, evaluate_mfa, mfa_proof};
pub use portal::{Reprompt, reprompt};
pub use principal::{ClassifiedBy, Principal, classify, classify_by};
pub use rule::{AppOnlyAccess, AuthRequirement, MfaRequirement, Mode, RouteRule};
pub use saml::{
    ATTR_AUTHENTICATION_METHOD, ATTR_AUTHN_METHODS_REFERENCES, MULTIPLE_AUTHN, REFEDS_MFA, SamlFacts,
    SamlLocation, SamlMfaSettings, WIA_OR_MULTIPLE_AUTHN, evaluate_saml_mfa, saml_mfa_proof,
};
pub use time::UnixTime;
