//! The operator's settings: command-line flags, each with an environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
// The agent flags are shared with forkr-api's Kubernetes backend.
use forkr_agent_proto::discovery::AgentArgs;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "forkr-operator",
    version,
    about = "Reconciles Forkr's Box, Base, Snapshot and DataVolume resources"
)]
pub struct Args {
    /// The cluster's Forkr domain: box URLs are https://{box}.{domain} (default project) or
    /// https://{box}.{project}.{domain}, the API is https://forks.{domain}.
    #[arg(long, env = "FORKR_DOMAIN")]
    pub domain: Option<String>,
    /// Development profile: FORKR_DOMAIN may be unset (it becomes `localhost`).
    #[arg(long, env = "FORKR_DEV")]
    pub dev: bool,
    /// Where `4kr publish` subdomains live; defaults to the domain.
    #[arg(long, env = "FORKR_PUBLISH_DOMAIN")]
    pub publish_domain: Option<String>,
    /// A TLS secret for `*.{domain}` in each project namespace; without it cert-manager issues
    /// one certificate per box through --cluster-issuer.
    #[arg(long, env = "FORKR_WILDCARD_TLS_SECRET")]
    pub wildcard_tls_secret: Option<String>,
    /// cert-manager ClusterIssuer for hosts the wildcard secret does not cover.
    #[arg(long, env = "FORKR_CLUSTER_ISSUER")]
    pub cluster_issuer: Option<String>,
    /// IngressClass of box ingresses; the cluster default when unset.
    #[arg(long, env = "FORKR_INGRESS_CLASS")]
    pub ingress_class: Option<String>,
    /// The image whose entrypoint is forkr-runner.
    #[arg(
        long,
        env = "FORKR_RUNNER_IMAGE",
        default_value = "ghcr.io/forkr/forkr-runner:0.1.0"
    )]
    pub runner_image: String,
    /// The agents' pool directory on every node (hostPath mounts point into it).
    #[arg(long, env = "FORKR_POOL", default_value = "/var/lib/forkr")]
    pub pool_dir: PathBuf,
    #[command(flatten)]
    pub agent: AgentArgs,
    /// Serve /metrics and /healthz here.
    #[arg(long, env = "FORKR_METRICS_LISTEN", default_value = "0.0.0.0:9090")]
    pub listen: SocketAddr,
    /// Identity in the leader Lease; the pod name in a cluster.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Run without leader election (a single replica).
    #[arg(long, env = "FORKR_NO_LEADER_ELECTION")]
    pub no_leader_election: bool,
    /// Log JSON lines.
    #[arg(long, env = "FORKR_LOG_JSON")]
    pub log_json: bool,
    /// Boxes get FORKR_INSECURE=true (a dev cluster with self-signed certificates).
    #[arg(long, env = "FORKR_INSECURE")]
    pub insecure: bool,
    /// Concurrent reconciles per controller.
    #[arg(long, env = "FORKR_CONCURRENCY", default_value_t = 16)]
    pub concurrency: u16,
}

/// Settings the builders and controllers read; derived from [`Args`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub domain: String,
    pub publish_domain: String,
    pub wildcard_tls_secret: Option<String>,
    pub cluster_issuer: Option<String>,
    pub ingress_class: Option<String>,
    pub runner_image: String,
    pub pool_dir: PathBuf,
    pub insecure: bool,
}

/// A configuration the operator refuses to start with.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("FORKR_DOMAIN is required (pass --dev to fall back to localhost)")]
    NoDomain,
}

impl Args {
    pub fn settings(&self) -> Result<Settings, ConfigError> {
        let domain = match (&self.domain, self.dev) {
            (Some(d), _) if !d.trim().is_empty() => d.trim().to_owned(),
            (_, true) => "localhost".to_owned(),
            _ => return Err(ConfigError::NoDomain),
        };
        Ok(Settings {
            publish_domain: self
                .publish_domain
                .clone()
                .unwrap_or_else(|| domain.clone()),
            domain,
            wildcard_tls_secret: self.wildcard_tls_secret.clone(),
            cluster_issuer: self.cluster_issuer.clone(),
            ingress_class: self.ingress_class.clone(),
            runner_image: self.runner_image.clone(),
            pool_dir: self.pool_dir.clone(),
            insecure: self.insecure,
        })
    }
}

impl Settings {
    /// Settings for tests and examples.
    pub fn example() -> Settings {
        Settings {
            domain: "forkr.example.com".into(),
            publish_domain: "forkr.example.com".into(),
            wildcard_tls_secret: Some("forkr-wildcard-tls".into()),
            cluster_issuer: Some("letsencrypt".into()),
            ingress_class: Some("nginx".into()),
            runner_image: "local/forkr-runner:dev".into(),
            pool_dir: PathBuf::from("/var/lib/forkr"),
            insecure: false,
        }
    }

    /// The host of a box's URL, as local mode spells it.
    pub fn box_host(&self, project: &str, name: &str) -> String {
        if project == forkr_crds::labels::DEFAULT_PROJECT {
            format!("{name}.{}", self.domain)
        } else {
            format!("{name}.{project}.{}", self.domain)
        }
    }

    pub fn api_url(&self) -> String {
        format!("https://forks.{}", self.domain)
    }

    pub fn api_host(&self) -> String {
        format!("forks.{}", self.domain)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn args(extra: &[&str]) -> Args {
        let mut v = vec!["forkr-operator", "--agent-token-file", "/t"];
        v.extend_from_slice(extra);
        Args::try_parse_from(v).unwrap()
    }

    #[test]
    fn domain_is_required_outside_dev() {
        // SAFETY-free: clap reads env only for unset flags; the test env has no FORKR_DOMAIN.
        assert!(matches!(args(&[]).settings(), Err(ConfigError::NoDomain)));
        assert_eq!(args(&["--dev"]).settings().unwrap().domain, "localhost");
        let s = args(&["--domain", "f.example"]).settings().unwrap();
        assert_eq!(s.publish_domain, "f.example");
        assert_eq!(s.box_host("default", "web"), "web.f.example");
        assert_eq!(s.box_host("team", "web"), "web.team.f.example");
    }
}
