//! Reconcile errors. Each variant has a stable label, used as the `error` label of metrics and
//! as the reason of the Warning events the controllers emit.

use forkr_agent_proto::client::AgentError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object breaks a rule of the shared validation (or could not be read at all).
    #[error("invalid {kind}: {message}")]
    Invalid { kind: &'static str, message: String },
    /// A tenancy rule forbids acting on the object (see `tenancy`); it waits for the object,
    /// a grant or a namespace label to change.
    #[error("refused {kind} ({reason}): {message}")]
    Refused {
        kind: &'static str,
        reason: &'static str,
        message: String,
    },
    #[error("Kubernetes API: {0}")]
    Kube(#[source] kube::Error),
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// No node can hold the object (no agent, no capacity, base nowhere).
    #[error("cannot place {what}: {why}")]
    Unschedulable { what: String, why: String },
    /// Something the object names does not exist (a snapshot to restore, a fork source).
    #[error("{0}")]
    Missing(String),
    /// Cleanup or a restore waits for the box's pod to be gone.
    #[error("waiting: {0}")]
    Waiting(String),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error("encoding: {0}")]
    Encode(#[from] serde_json::Error),
}

impl From<kube::Error> for Error {
    fn from(e: kube::Error) -> Error {
        Error::Kube(e)
    }
}

impl Error {
    /// The stable label of this error: metrics' `error` label and the event reason suffix.
    pub fn label(&self) -> &'static str {
        match self {
            Error::Invalid { .. } => "invalid",
            Error::Refused { .. } => "refused",
            Error::Kube(_) => "kube_api",
            Error::Agent(a) if a.code == tonic::Code::Unavailable => "agent_unavailable",
            Error::Agent(a) if a.code == tonic::Code::NotFound => "agent_not_found",
            Error::Agent(_) => "agent",
            Error::Unschedulable { .. } => "unschedulable",
            Error::Missing(_) => "missing_dependency",
            Error::Waiting(_) => "waiting",
            Error::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e)
                | kube::runtime::finalizer::Error::CleanupFailed(e) => e.label(),
                _ => "finalizer",
            },
            Error::Encode(_) => "encode",
        }
    }

    /// The event reason: `ReconcileFailed` plus the label in CamelCase.
    pub fn reason(&self) -> String {
        let camel: String = self
            .label()
            .split('_')
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default()
            })
            .collect();
        format!("Failed{camel}")
    }

    /// Errors a retry cannot fix until the object changes.
    pub fn is_permanent(&self) -> bool {
        matches!(self.label(), "invalid")
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_reasons_are_stable() {
        let e = Error::Invalid {
            kind: "Box",
            message: "x".into(),
        };
        assert_eq!(e.label(), "invalid");
        assert_eq!(e.reason(), "FailedInvalid");
        let e = Error::Agent(AgentError::unreachable("n", "down"));
        assert_eq!(e.label(), "agent_unavailable");
        assert_eq!(e.reason(), "FailedAgentUnavailable");
        assert_eq!(Error::Missing("s".into()).label(), "missing_dependency");
    }
}
