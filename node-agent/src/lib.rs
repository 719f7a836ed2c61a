//! forkr-node-agent: owns the node's btrfs pool and serves it over gRPC.

pub mod bases;
pub mod checkpoint;
pub mod diff;
pub mod error;
pub mod fault;
pub mod grpc;
pub mod import;
pub mod loopback;
pub mod meta;
pub mod metrics;
pub mod names;
pub mod pool;
pub mod receive;
pub mod rootfs;
pub mod roots;
pub mod sendstream;
pub mod sizes;
pub mod sys;
pub mod volumes;

pub use checkpoint::{Shelf, Subject};
pub use error::{Error, Result};
pub use pool::Pool;
pub mod exec;
pub mod files;
pub mod minibase;
pub mod net;
pub mod oskit;
pub mod rpc;
pub mod runner;
pub mod runtime;
