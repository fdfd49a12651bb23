//! Development tools, never part of a production path: identity providers (OIDC and SAML) with
//! development keys and the command that serves them (`dev-idp`), `token mint`, an echo
//! upstream, and the demo that wires them together.

pub mod demo;
pub mod echo;
pub mod idp;
pub mod mint;
pub mod saml_idp;
pub mod serve;
