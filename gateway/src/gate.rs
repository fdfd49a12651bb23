//! The request path: listeners and connections, routing, the decision, forwarding upstream.

pub mod admin;
pub mod connection;
pub mod forward;
pub mod method_override;
pub mod proxy;
pub mod routes;
pub mod server;
