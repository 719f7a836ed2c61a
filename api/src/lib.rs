//! forkr-api: the gateway every client talks to. REST under `/v1/projects/{project}/`, bearer
//! tokens scoped to projects, errors as `{"error": code, "message": text}`, and the embedded
//! local backend (SQLite plus the node agent's pool).
//!
//! With default features off, only [`wire`] (and [`client`] with the `client` feature) remain:
//! that is what 4kr links, so the types the server sends are the types the CLI reads.

pub mod wire;

#[cfg(feature = "client")]
pub mod client;

#[cfg(feature = "server")]
pub mod auth;
#[cfg(feature = "server")]
pub mod authz;
#[cfg(feature = "server")]
pub mod backend;
#[cfg(feature = "server")]
pub mod error;
#[cfg(feature = "server")]
pub mod extract;
#[cfg(feature = "server")]
pub mod ownership;
#[cfg(feature = "server")]
pub mod proxy;
#[cfg(feature = "server")]
pub mod routes;
#[cfg(feature = "server")]
pub mod state;
#[cfg(feature = "server")]
pub mod store;
#[cfg(feature = "testkit")]
pub mod testkit;
#[cfg(feature = "server")]
pub mod upload;
