//! `4kr port list` and `port wait`: the TCP sockets listening in a box's network namespace, read
//! from `/proc/<pid1>/net/tcp{,6}` on the host, so nothing needs to be installed in the box.

use std::time::Duration;

use async_trait::async_trait;

use super::LocalBackend;
use crate::backend::procnet::{listening_both, wait_for_port};
use crate::backend::{BoxKey, Ports};
use crate::error::ApiResult;
use crate::wire::PortView;

#[async_trait]
impl Ports for LocalBackend {
    async fn list_ports(&self, key: BoxKey) -> ApiResult<Vec<PortView>> {
        let (project, name) = key.into_parts();
        let pid = self.pid1(&project, &name).await?;
        let table = |file: &'static str| async move {
            tokio::fs::read_to_string(format!("/proc/{pid}/net/{file}"))
                .await
                .unwrap_or_default()
        };
        Ok(listening_both(&table("tcp").await, &table("tcp6").await))
    }

    /// Waits until something listens on `port`, up to `timeout`.
    async fn wait_port(&self, key: BoxKey, port: u16, timeout: Duration) -> ApiResult<PortView> {
        wait_for_port(key.name(), port, timeout, || self.list_ports(key.clone())).await
    }
}
