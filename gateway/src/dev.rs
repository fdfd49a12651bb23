//! Development tools, never part of a production path: identity providers (OIDC and SAML) with
//! development keys, an echo upstream, the demo that wires them together, and `inspect`.

pub mod demo;
pub mod echo;
pub mod idp;
pub mod inspect;
pub mod saml_idp;
