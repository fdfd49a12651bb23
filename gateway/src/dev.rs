//! Development tools, never part of a production path: identity providers (OIDC and SAML) with
//! development keys, an echo upstream, and the demo that wires them together.

pub mod demo;
pub mod echo;
pub mod idp;
pub mod saml_idp;
