//! mfagate: a reverse proxy that enforces multi-factor authentication on partner API calls.
//!
//! The entry point is [`serve`]: give it a bound listener, a validated [`Config`] and a shutdown
//! future. All I/O lives in this crate; every decision is made by `mfagate-policy`.

pub mod admin;
pub mod body;
pub mod clock;
pub mod config;
pub mod connection;
pub mod decision_log;
pub mod demo;
pub mod devidp;
pub mod devsaml;
pub mod echo;
pub mod forward;
#[doc(hidden)]
pub mod fuzzing;
pub mod grant;
pub mod ids;
pub mod jwt;
pub mod keys;
pub mod live;
pub mod log_files;
pub mod markup;
pub mod method_override;
pub mod metrics;
pub mod once;
pub mod outbound;
pub mod page;
pub mod portal;
pub mod proxy;
pub mod report;
pub mod respond;
pub mod routes;
pub mod saml;
pub mod server;
pub mod session;
pub mod state;

pub use config::{Config, ConfigError};
pub use server::{Options, serve, serve_with};
pub use state::StartError;
