//! forkr-api: the gateway every client talks to. REST under `/v1/projects/{project}/`, bearer
//! tokens scoped to projects, errors as `{"error": code, "message": text}`, and the embedded
//! local backend (SQLite plus the node agent's pool).
//!
//! The contract itself (wire types, exec frames, the typed client) lives in forkr-api-proto,
//! which 4kr links instead of this crate; [`wire`] is re-exported so `crate::wire::X` keeps
//! naming the types the server sends.

pub use forkr_api_proto::{frame, wire};

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
