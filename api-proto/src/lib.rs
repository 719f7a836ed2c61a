//! forkr-api-proto: the REST contract of forkr-api, shared by the server and its clients.
//!
//! - [`wire`]: the JSON request and response types, declared once so the server and 4kr cannot
//!   disagree (with the `openapi` feature, the utoipa schemas forkr-api documents them from).
//! - [`frame`]: the binary frames of the WebSocket exec and console streams.
//! - `client` (feature `client`): the typed HTTP and WebSocket client 4kr and the e2e suite use.
//!
//! No default features, and nothing server-side: 4kr links this crate, never forkr-api.

pub mod frame;
pub mod wire;

#[cfg(feature = "client")]
pub mod client;
