//! The HTTP surface. Every route is registered through utoipa-axum, so `/openapi.json` is built
//! from the same list the router serves.

mod bases;
mod boxes;
mod health;
mod tokens;
mod users;
mod volumes;
mod ws;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth;
use crate::state::AppState;

use crate::extract::MAX_JSON_BODY;

#[derive(OpenApi)]
#[openapi(
    info(title = "forkr-api", description = "Forkr: instant, persistent Linux sandboxes."),
    components(schemas(crate::error::ErrorBody)),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The routes and the document that describes them.
pub fn api(state: AppState) -> (Router, utoipa::openapi::OpenApi) {
    let v1 = OpenApiRouter::new()
        .routes(routes!(users::list, users::create))
        .routes(routes!(users::update, users::delete))
        .routes(routes!(volumes::list, volumes::create))
        .routes(routes!(volumes::show, volumes::delete))
        .routes(routes!(volumes::list_checkpoints, volumes::checkpoint))
        .routes(routes!(volumes::list_backups, volumes::backup))
        .routes(routes!(volumes::restore))
        .routes(routes!(bases::list))
        .routes(routes!(bases::show, bases::delete))
        .routes(routes!(bases::import))
        .routes(routes!(bases::save))
        .routes(routes!(boxes::list, boxes::create))
        .routes(routes!(boxes::show, boxes::update, boxes::delete))
        .routes(routes!(boxes::stop))
        .routes(routes!(boxes::resume))
        .routes(routes!(boxes::publish))
        .routes(routes!(boxes::unpublish))
        .routes(routes!(boxes::list_snapshots, boxes::create_snapshot))
        .routes(routes!(boxes::restore_snapshot))
        .routes(routes!(boxes::diff_status))
        .routes(routes!(boxes::diff_file))
        .routes(routes!(boxes::exec))
        .routes(routes!(boxes::logs))
        .routes(routes!(boxes::put_file, boxes::get_file))
        .routes(routes!(boxes::list_ports))
        .routes(routes!(boxes::wait_port))
        .routes(routes!(ws::exec_ws))
        .routes(routes!(ws::console))
        .routes(routes!(tokens::list, tokens::create))
        .routes(routes!(tokens::revoke))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    let open = OpenApiRouter::new()
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz));
    let (router, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(v1)
        .merge(open)
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .with_state(state)
        .split_for_parts();
    (router, doc)
}

/// The full application: the API plus `/openapi.json`.
pub fn app(state: AppState) -> Router {
    let (router, doc) = api(state);
    let doc = std::sync::Arc::new(doc);
    router.route(
        "/openapi.json",
        axum::routing::get(move || {
            let doc = doc.clone();
            async move { axum::Json((*doc).clone()) }
        }),
    )
}

/// Serves the application on `listener` until the future ends (tests, embedding).
pub async fn serve(listener: tokio::net::TcpListener, state: AppState) -> std::io::Result<()> {
    axum::serve(listener, app(state)).await
}
