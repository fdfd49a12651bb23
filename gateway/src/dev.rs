//! Development and diagnostic tools, never part of a production path: identity providers (OIDC
//! and SAML) with development keys and the command that serves them (`dev-idp`), `token mint`,
//! an echo upstream, the demo that wires them together, and `inspect`'s reading and presentation
//! of a token or assertion (its verification is the gateway's own).

pub mod demo;
pub mod echo;
pub mod idp;
pub mod inspect;
pub mod mint;
pub mod saml_idp;
pub mod serve;
