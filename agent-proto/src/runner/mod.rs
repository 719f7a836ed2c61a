//! The configuration `forkr-runner` boots a box from (000, "The mental model"; 002, "Filesystem
//! layout"): one JSON document, in a file (local mode's runc bundle) or in `FORKR_RUNNER_CONFIG`
//! (the `fork` container of a box's Pod, written by the operator), so both modes configure the
//! runner identically. The boot itself (mounts, chroot, exec) is the node agent's.

pub mod env;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::layout;
pub use env::Injected;

/// The variable that may carry the whole configuration as JSON.
pub const CONFIG_ENV: &str = "FORKR_RUNNER_CONFIG";
/// The node IP, when the configuration leaves it empty (Kubernetes: from `status.hostIP`).
pub const NODE_IP_ENV: &str = "FORKR_NODE_IP";

/// Where each system volume appears inside the box.
pub const SYSTEM_MOUNTS: [(&str, &str); 4] = [
    ("box-bin", "/box/bin"),
    ("box-all", "/box/all"),
    ("box-proj", "/box/proj"),
    ("home", "/home"),
];

/// The system volumes every box of every project sees (`box-bin`, `box-all`). A box mounts them
/// read-only: what one tenant could write there would run in every other tenant's box
/// (`/box/bin` is on the login PATH before /usr/bin). An admin changes them from outside the
/// boxes, with `4kr cp` and an admin token (node agent `files::BoxFiles::allow_shared_writes`).
pub const SHARED_MOUNTS: [&str; 2] = ["/box/bin", "/box/all"];

/// A data volume mount: `source` as the runner sees it, at `target` inside the box.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataMount {
    pub source: PathBuf,
    pub target: String,
    #[serde(default)]
    pub read_only: bool,
}

/// Everything the runner needs. Paths are as the runner sees them (inside its container).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunnerConfig {
    #[serde(flatten)]
    pub injected: Injected,
    /// The box root; `/volumes` in both modes.
    #[serde(default = "default_root")]
    pub root: PathBuf,
    /// Ephemeral host directory behind /tmp and /run; emptied on every start.
    pub scratch: PathBuf,
    /// Files bound over /etc/resolv.conf and /etc/hosts; `None` keeps the root's own.
    #[serde(default)]
    pub resolv_conf: Option<PathBuf>,
    #[serde(default)]
    pub hosts: Option<PathBuf>,
    /// System volume name (`box-bin`, `box-all`, `box-proj`, `home`) to its source directory.
    #[serde(default)]
    pub system_volumes: BTreeMap<String, PathBuf>,
    #[serde(default)]
    pub data_volumes: Vec<DataMount>,
    /// The user's `-e KEY=VALUE` pairs.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// PID 1's command line inside the box.
    #[serde(default = "default_init")]
    pub init: Vec<String>,
}

/// [`layout::BOX_ROOT`].
pub fn default_root() -> PathBuf {
    PathBuf::from(layout::BOX_ROOT)
}

/// `tini -s -- /bin/bash -lc "sleep infinity"`, as 000 shows.
pub fn default_init() -> Vec<String> {
    [
        "/usr/bin/tini",
        "-s",
        "--",
        "/bin/bash",
        "-lc",
        "sleep infinity",
    ]
    .map(String::from)
    .to_vec()
}

impl RunnerConfig {
    /// In Kubernetes the operator cannot know the node IP when it writes the configuration: it
    /// leaves `node_ip` empty and the pod gets FORKR_NODE_IP from `status.hostIP`.
    pub fn fill_node_ip(&mut self, from_env: Option<String>) {
        if self.injected.node_ip.is_empty()
            && let Some(ip) = from_env.filter(|ip| !ip.is_empty())
        {
            self.injected.node_ip = ip;
        }
    }

    /// `<box>.<project>`.
    pub fn hostname(&self) -> String {
        format!("{}.{}", self.injected.box_name, self.injected.project)
    }

    /// The full environment of PID 1: a bare PATH and HOME, then the box's variables.
    pub fn process_env(&self) -> Vec<(String, String)> {
        let mut out = vec![
            ("PATH".to_string(), env::BASE_PATH.to_string()),
            ("HOME".to_string(), "/root".to_string()),
        ];
        out.extend(env::box_env(&self.injected, &self.env));
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn minimal() -> RunnerConfig {
        RunnerConfig {
            injected: Injected::default(),
            root: default_root(),
            scratch: PathBuf::from("/s"),
            resolv_conf: None,
            hosts: None,
            system_volumes: BTreeMap::new(),
            data_volumes: Vec::new(),
            env: BTreeMap::new(),
            init: default_init(),
        }
    }

    #[test]
    fn empty_node_ip_comes_from_the_environment_only() {
        let mut cfg = minimal();
        cfg.fill_node_ip(Some("10.1.2.3".into()));
        assert_eq!(cfg.injected.node_ip, "10.1.2.3");
        cfg.fill_node_ip(Some("10.9.9.9".into()));
        assert_eq!(cfg.injected.node_ip, "10.1.2.3");
    }

    /// The document as the operator puts it into `FORKR_RUNNER_CONFIG` reads back the same, and
    /// the fields a writer may leave out take the runner's defaults.
    #[test]
    fn the_json_document_round_trips_and_defaults_the_rest() {
        let mut cfg = minimal();
        cfg.injected.project = "team".into();
        cfg.injected.box_name = "web".into();
        cfg.env.insert("A".into(), "1".into());
        cfg.data_volumes.push(DataMount {
            source: PathBuf::from("/forkr-data/0"),
            target: "/data".into(),
            read_only: true,
        });
        let text = serde_json::to_string(&cfg).unwrap();
        assert_eq!(serde_json::from_str::<RunnerConfig>(&text).unwrap(), cfg);

        let sparse: RunnerConfig = serde_json::from_str(
            r#"{"project":"p","box_name":"b","api_url":"","api_host":"","node_ip":"","scratch":"/s"}"#,
        )
        .unwrap();
        assert_eq!(sparse.root, PathBuf::from("/volumes"));
        assert_eq!(sparse.init, default_init());
        assert!(!sparse.injected.insecure);
        assert!(serde_json::from_str::<RunnerConfig>(r#"{"project":"p"}"#).is_err());
    }

    #[test]
    fn pid1_gets_a_bare_path_then_the_box_variables() {
        let mut cfg = minimal();
        cfg.injected.project = "p".into();
        cfg.injected.box_name = "b".into();
        assert_eq!(cfg.hostname(), "b.p");
        let env = cfg.process_env();
        assert_eq!(env[0], ("PATH".into(), env::BASE_PATH.into()));
        assert_eq!(env[2], ("FORKR_PROJECT".into(), "p".into()));
    }
}
