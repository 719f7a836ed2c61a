//! A project's users on a cluster: the gateway's own, in SQLite, as tokens are. The agent
//! creates the account in a box when a command first runs as it.

use async_trait::async_trait;

use super::KubeBackend;
use crate::backend::Users;
use crate::error::ApiResult;
use crate::wire::UserView;

#[async_trait]
impl Users for KubeBackend {
    async fn list_users(&self, project: String) -> ApiResult<Vec<UserView>> {
        self.store(move |s| s.list_users(&project)).await
    }

    async fn create_user(
        &self,
        project: String,
        name: String,
        shell: String,
    ) -> ApiResult<UserView> {
        self.store(move |s| s.create_user(&project, &name, &shell))
            .await
    }

    async fn update_user(
        &self,
        project: String,
        name: String,
        shell: String,
    ) -> ApiResult<UserView> {
        self.store(move |s| s.update_user(&project, &name, &shell))
            .await
    }

    async fn delete_user(&self, project: String, name: String) -> ApiResult<()> {
        self.store(move |s| s.delete_user(&project, &name).map(drop))
            .await
    }
}
