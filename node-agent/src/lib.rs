//! forkr-node-agent: owns the node's btrfs pool and serves it over gRPC.
//!
//! Rooms: `sys` is the one seam to the kernel and the host's programs; `pool` is the storage
//! engine on btrfs; `runtime` runs boxes (runc, the runner, networking); `exec` enters
//! running boxes (commands, sessions, files); `rpc` serves the Storage and Runtime services.

pub mod error;
pub mod exec;
pub mod metrics;
pub mod minibase;
pub mod pool;
pub mod rpc;
pub mod runtime;
pub mod sys;

pub use error::{Error, Result};
pub use pool::Pool;
pub use pool::checkpoint::{Shelf, Subject};
