//! The refusals of the file calls, word for word: forkr-api's Kubernetes-exec fallback gives the
//! same answer as the agent, so a client cannot tell which path served it.

/// The documented refusal for anything but a regular file.
pub const ONLY_FILES: &str = "only files are supported (directories require -r, not yet supported)";
