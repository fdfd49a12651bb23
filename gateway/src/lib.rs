//! mfagate: a reverse proxy that enforces multi-factor authentication on partner API calls.
//!
//! The entry point is [`serve`]: give it a bound listener, a validated [`Config`] and a shutdown
//! future. All I/O lives in this crate; every decision is made by `mfagate-policy`.
//!
//! Where things are:
//! - [`gate`]: the request path: listeners, connections, routing, the decision, forwarding.
//! - [`verify`]: JWTs, key sets, SAML assertions, token-exchange grants, single-use state.
//! - [`browser`]: portal sign-in (OIDC and SAML) and the session cookie.
//! - [`evidence`]: the decision log, the report, the live view, the report page, metrics.
//! - [`dev`]: development tools: identity providers, the echo upstream, the demo.
//! - [`cli`]: the command line's exit codes, output and the `report` command.
//! - [`config`]: the configuration file and its own types; everything else reads it.
//! - [`body`], [`outbound`], [`respond`]: shared plumbing: bodies, the outbound HTTP client, and
//!   the one table from each refusal to its status and challenge.
//! - [`state`]: the running gateway's shared state, built from the config (the composition root).
//! - [`reload`]: SIGHUP and the file watch build the next [`state::State`] and swap it in.

pub mod body;
pub mod browser;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod dev;
pub mod evidence;
#[doc(hidden)]
pub mod fuzzing;
pub mod gate;
pub mod ids;
pub mod markup;
pub mod outbound;
pub mod reload;
pub mod respond;
pub mod state;
pub mod verify;

pub use config::{Config, ConfigError};
pub use gate::server::{Options, serve, serve_with};
pub use state::StartError;
