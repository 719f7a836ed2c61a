//! A project's users in local mode: the gateway's own SQLite, as in the cluster.

use async_trait::async_trait;

use super::LocalBackend;
use crate::backend::Users;
use crate::error::ApiResult;
use crate::wire::UserView;

#[async_trait]
impl Users for LocalBackend {
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
