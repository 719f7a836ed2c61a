//! `4kr port list` and `port wait`: the TCP sockets listening in a box's network namespace, read
//! from `/proc/<pid1>/net/tcp{,6}` on the host, so nothing needs to be installed in the box.

use std::time::Duration;

use super::LocalBackend;
use crate::backend::procnet::{listening, wait_for_port};
use crate::error::ApiResult;
use crate::wire::PortView;

impl LocalBackend {
    pub(super) async fn list_ports(
        &self,
        project: String,
        name: String,
    ) -> ApiResult<Vec<PortView>> {
        let pid = self.pid1(&project, &name).await?;
        let mut ports = Vec::new();
        for (file, v6) in [("tcp", false), ("tcp6", true)] {
            if let Ok(table) = tokio::fs::read_to_string(format!("/proc/{pid}/net/{file}")).await {
                ports.extend(listening(&table, v6));
            }
        }
        ports.sort_by(|a, b| (a.port, &a.address).cmp(&(b.port, &b.address)));
        ports.dedup();
        Ok(ports)
    }

    /// Waits until something listens on `port`, up to `timeout`.
    pub(super) async fn wait_port(
        &self,
        project: String,
        name: String,
        port: u16,
        timeout: Duration,
    ) -> ApiResult<PortView> {
        wait_for_port(&name, port, timeout, || {
            self.list_ports(project.clone(), name.clone())
        })
        .await
    }
}
