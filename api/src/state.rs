//! What every handler shares.

use std::sync::Arc;

use crate::backend::Backend;

/// Server-wide settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The deployment domain (FORKR_DOMAIN): boxes are `https://{box}.{domain}`.
    pub domain: String,
}

#[derive(Clone)]
pub struct AppState {
    pub backend: Arc<dyn Backend>,
    pub config: Arc<Config>,
}
