//! The request path: listeners and connections, routing, the decision, forwarding upstream.

pub mod admin;
pub mod body;
pub mod connection;
pub mod forward;
pub mod method_override;
pub mod outbound;
pub mod proxy;
pub mod respond;
pub mod routes;
pub mod server;
