//! Verification of credentials: JWTs and their key sets, SAML assertions, RFC 7522 grants, and
//! the single-use facts (replays, one-time states) that go with them.

pub mod grant;
pub mod jwt;
pub mod keys;
pub mod once;
pub mod published;
pub(crate) mod refresh;
pub mod saml;
