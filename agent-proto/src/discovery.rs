//! How a caller finds the node agents: the flags (each with an environment variable) that
//! forkr-operator and forkr-api's Kubernetes backend share, and what they resolve to.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// How to find the agents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Discovery {
    /// Fixed addresses per node (`http://host:port`); `*` matches any node.
    Static(BTreeMap<String, String>),
    /// The Running pods of the agent DaemonSet: `namespace`, label `selector`, gRPC `port`.
    Pods {
        namespace: String,
        selector: String,
        port: u16,
    },
}

/// How to reach the node agents; shared by forkr-operator and forkr-api's Kubernetes backend.
#[derive(Debug, Clone, clap::Args)]
pub struct AgentArgs {
    /// The agents' gRPC port.
    #[arg(long, env = "FORKR_AGENT_PORT", default_value_t = 7443)]
    pub agent_port: u16,
    /// File holding the agents' bearer token.
    #[arg(long, env = "FORKR_AGENT_TOKEN_FILE")]
    pub agent_token_file: Option<PathBuf>,
    /// Namespace of the agent DaemonSet's pods (and of the operator's leader Lease).
    #[arg(long, env = "FORKR_NAMESPACE", default_value = "forkr-system")]
    pub namespace: String,
    /// Label selector of the agent DaemonSet's pods.
    #[arg(
        long,
        env = "FORKR_AGENT_SELECTOR",
        default_value = "app.kubernetes.io/name=forkr-node-agent"
    )]
    pub agent_selector: String,
    /// Fixed agent addresses instead of pod discovery: NODE=http://host:port, repeatable;
    /// NODE `*` matches every node.
    #[arg(long = "agent", env = "FORKR_AGENTS", value_delimiter = ',')]
    pub agents: Vec<String>,
}

/// Agent flags a process refuses to start with.
#[derive(Debug, thiserror::Error)]
pub enum AgentConfigError {
    #[error("invalid --agent {0:?}: use NODE=http://host:port")]
    BadAgent(String),
    #[error(
        "--agent-token-file (FORKR_AGENT_TOKEN_FILE) is required: the node agents' bearer token"
    )]
    NoAgentToken,
    #[error("reading the agent token file {0}: {1}")]
    AgentToken(PathBuf, String),
}

impl AgentArgs {
    pub fn discovery(&self) -> Result<Discovery, AgentConfigError> {
        if self.agents.is_empty() {
            return Ok(Discovery::Pods {
                namespace: self.namespace.clone(),
                selector: self.agent_selector.clone(),
                port: self.agent_port,
            });
        }
        let mut map = BTreeMap::new();
        for a in &self.agents {
            let (node, addr) = a
                .split_once('=')
                .filter(|(n, a)| !n.is_empty() && a.starts_with("http"))
                .ok_or_else(|| AgentConfigError::BadAgent(a.clone()))?;
            map.insert(node.to_owned(), addr.to_owned());
        }
        Ok(Discovery::Static(map))
    }

    /// The bearer token from --agent-token-file, trimmed.
    pub fn token(&self) -> Result<String, AgentConfigError> {
        let path = self
            .agent_token_file
            .as_ref()
            .ok_or(AgentConfigError::NoAgentToken)?;
        let token = std::fs::read_to_string(path)
            .map_err(|e| AgentConfigError::AgentToken(path.clone(), e.to_string()))?
            .trim()
            .to_owned();
        if token.is_empty() {
            return Err(AgentConfigError::AgentToken(
                path.clone(),
                "the file is empty".into(),
            ));
        }
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        agent: AgentArgs,
    }

    fn args(extra: &[&str]) -> AgentArgs {
        let mut v = vec!["test"];
        v.extend_from_slice(extra);
        Cli::try_parse_from(v).unwrap().agent
    }

    #[test]
    fn static_agents_parse() {
        let a = args(&[
            "--agent",
            "n1=http://10.0.0.1:7443",
            "--agent",
            "*=http://x:1",
        ]);
        match a.discovery().unwrap() {
            Discovery::Static(m) => {
                assert_eq!(m.len(), 2);
                assert_eq!(m["n1"], "http://10.0.0.1:7443");
            }
            other => panic!("{other:?}"),
        }
        assert!(args(&["--agent", "nonsense"]).discovery().is_err());
    }

    #[test]
    fn a_bad_agent_is_named_in_the_error() {
        for bad in ["nonsense", "=http://x:1", "n1=ftp://x:1", "n1="] {
            match args(&["--agent", bad]).discovery() {
                Err(AgentConfigError::BadAgent(a)) => assert_eq!(a, bad),
                other => panic!("{bad}: {other:?}"),
            }
        }
        // One bad entry spoils the list: no half-configured discovery.
        let mixed = args(&["--agent", "n1=http://x:1", "--agent", "n2"]);
        assert!(matches!(
            mixed.discovery(),
            Err(AgentConfigError::BadAgent(a)) if a == "n2"
        ));
    }

    #[test]
    fn without_agents_the_daemonset_pods_are_found() {
        let d = args(&["--agent-port", "9000", "--namespace", "ops"])
            .discovery()
            .unwrap();
        assert_eq!(
            d,
            Discovery::Pods {
                namespace: "ops".into(),
                selector: "app.kubernetes.io/name=forkr-node-agent".into(),
                port: 9000,
            }
        );
    }

    #[test]
    fn the_token_file_is_read_trimmed_and_must_not_be_empty() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("token");
        std::fs::write(&good, "  s3cret\n").unwrap();
        let arg = |p: &std::path::Path| args(&["--agent-token-file", p.to_str().unwrap()]);
        assert_eq!(arg(&good).token().unwrap(), "s3cret");

        let empty = dir.path().join("empty");
        std::fs::write(&empty, " \n").unwrap();
        match arg(&empty).token() {
            Err(AgentConfigError::AgentToken(p, why)) => {
                assert_eq!(p, empty);
                assert_eq!(why, "the file is empty");
            }
            other => panic!("{other:?}"),
        }

        let missing = dir.path().join("missing");
        assert!(matches!(
            arg(&missing).token(),
            Err(AgentConfigError::AgentToken(p, _)) if p == missing
        ));
    }

    #[test]
    fn no_token_file_is_its_own_error() {
        let a = AgentArgs {
            agent_token_file: None,
            ..args(&[])
        };
        assert!(matches!(a.token(), Err(AgentConfigError::NoAgentToken)));
    }
}
