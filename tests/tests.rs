//! End-to-end tests: a development identity provider, an echo upstream and the gateway, all on
//! 127.0.0.1:0 in-process (and a few through the real binary).

// This whole crate is test code: panicking on a broken fixture is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod admin_plane;
mod binary;
mod chromium;
mod cli;
mod cluster;
mod configure;
mod connections;
mod deploy;
mod dev_tools;
mod fleet_report;
mod hostile;
mod hostile_tokens;
mod inspect;
mod interop;
mod jwt_cases;
mod keys;
mod lifecycle;
mod metrics;
mod ops_logs;
mod package;
mod page;
mod portal;
mod proxy;
mod reload;
mod report;
mod request_ids;
mod review10_findings;
mod review2_findings;
mod review3_findings;
mod review4_findings;
mod review5_findings;
mod review6_findings;
mod review7_findings;
mod review8_findings;
mod review9_findings;
mod review_findings;
mod rollout;
mod saml;
mod saml_gate;
mod saml_metadata;
mod traces;
mod xmlsec_log;
