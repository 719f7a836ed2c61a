//! forkr-agent-proto: everything another process must agree on with a node agent.
//!
//! - [`storage`] and [`runtime`]: the generated gRPC code of the agent's two services. The proto
//!   package names (`forkr.agent.v1`, `forkr.runtime.v1`) never change with this crate, so agents
//!   and callers of different versions keep talking.
//! - [`auth`]: the shared bearer token, on both ends of a call.
//! - [`runner`]: the configuration `forkr-runner` boots a box from, written by the operator (in a
//!   Pod's environment) and by the local runtime (in a runc bundle).
//! - [`layout`]: where the pool keeps what, and where the runner container sees it, for whoever
//!   mounts those paths from outside the agent.
//! - [`naming`] and [`files`]: the names and refusals a caller repeats when it does the agent's
//!   work another way (the Kubernetes-exec fallback).
//! - `client` (feature `client`): the per-node client, and how it finds the agents.
//!
//! The default build has no Kubernetes client and no clap: a node agent needs neither.

pub mod auth;
pub mod files;
pub mod layout;
pub mod naming;
pub mod runner;

#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "client")]
pub mod discovery;

/// The `Storage` service (package `forkr.agent.v1`): roots, checkpoints, bases, volumes.
pub mod storage {
    tonic::include_proto!("forkr.agent.v1");
}

/// The `Runtime` service (package `forkr.runtime.v1`): box lifecycle, exec, console, files.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod runtime {
    tonic::include_proto!("forkr.runtime.v1");
}
