//! Browser sign-in for portal routes: the OIDC and SAML flows and the sealed session cookie.

pub mod oidc;
pub mod portal;
pub mod session;
