//! Which box a hostname reaches in local mode: the published hosts (from every Box object's
//! `spec.publish`) and each box's own URL host. The index lives in memory and is rebuilt from
//! the store at startup, so it can never disagree with the objects after a crash.

use std::collections::HashMap;
use std::sync::RwLock;

use forkr_crds::BoxResource;

use super::BOX;
pub use crate::backend::hostrules::box_of_url_host;
use crate::store::{Store, StoreResult};

/// The box a host belongs to, and the port a published host was bound to, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostOwner {
    pub project: String,
    pub name: String,
    pub port: Option<u16>,
}

#[derive(Debug, Default)]
pub struct HostIndex {
    published: RwLock<HashMap<String, HostOwner>>,
}

/// A Host header without its port, lowercased.
pub fn bare_host(host: &str) -> String {
    let host = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

impl HostIndex {
    /// The index of every published host in the store.
    pub fn load(store: &Store) -> StoreResult<HostIndex> {
        let index = HostIndex::default();
        for (project, b) in store.list_all::<BoxResource>(BOX)? {
            let Some(name) = b.metadata.name.clone() else {
                continue;
            };
            for p in &b.spec.publish {
                index.set(&p.host, &project, &name, p.port);
            }
        }
        Ok(index)
    }

    pub fn owner(&self, host: &str) -> Option<HostOwner> {
        let map = self.published.read().unwrap_or_else(|p| p.into_inner());
        map.get(host).cloned()
    }

    pub fn set(&self, host: &str, project: &str, name: &str, port: Option<i32>) {
        let mut map = self.published.write().unwrap_or_else(|p| p.into_inner());
        map.insert(
            host.to_owned(),
            HostOwner {
                project: project.to_owned(),
                name: name.to_owned(),
                port: port.and_then(|p| u16::try_from(p).ok()),
            },
        );
    }

    /// Drops `host` if `project/name` owns it.
    pub fn remove(&self, host: &str, project: &str, name: &str) {
        let mut map = self.published.write().unwrap_or_else(|p| p.into_inner());
        if map
            .get(host)
            .is_some_and(|o| o.project == project && o.name == name)
        {
            map.remove(host);
        }
    }

    /// Drops every host of a deleted box.
    pub fn forget_box(&self, project: &str, name: &str) {
        let mut map = self.published.write().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, o| !(o.project == project && o.name == name));
    }

    pub fn len(&self) -> usize {
        self.published.read().map(|m| m.len()).unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_hosts_drop_ports_and_case() {
        assert_eq!(bare_host("Web.Forkr.Test:8443"), "web.forkr.test");
        assert_eq!(bare_host("web.forkr.test."), "web.forkr.test");
        assert_eq!(bare_host("web"), "web");
    }

    #[test]
    fn forgetting_a_box_drops_only_its_hosts() {
        let idx = HostIndex::default();
        idx.set("a.x", "p", "one", None);
        idx.set("b.x", "p", "two", Some(3000));
        idx.remove("b.x", "p", "one");
        assert_eq!(idx.len(), 2);
        idx.forget_box("p", "one");
        assert_eq!(idx.owner("a.x"), None);
        assert_eq!(idx.owner("b.x").and_then(|o| o.port), Some(3000));
    }
}
