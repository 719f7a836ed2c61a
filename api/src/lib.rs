//! forkr-api: the gateway every client talks to. REST under `/v1/projects/{project}/`, bearer
//! tokens scoped to projects, errors as `{"error": code, "message": text}`, and the embedded
//! local backend (SQLite plus the node agent's pool).

pub mod auth;
pub mod backend;
pub mod error;
pub mod extract;
pub mod routes;
pub mod state;
pub mod store;
pub mod wire;
