//! Request extractors whose failures are API errors in the documented JSON shape, rather than
//! axum's plain-text rejections.

use std::collections::HashMap;

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::backend::BoxKey;
use crate::error::ApiError;

/// Largest JSON body: requests are small; uploads have their own streamed routes. Here rather
/// than in `routes`, which installs it as the router's body limit, so that neither module
/// imports the other back.
pub const MAX_JSON_BODY: usize = 1 << 20;

/// A JSON body. Bad JSON, unknown fields and wrong types are 400 `invalid_json`; a body over the
/// limit is 413 `body_too_large`; a wrong content type is 415.
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // A declared length over the limit is refused from the headers, before any of the body
        // is read (and before the client has sent it all).
        let declared = req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_JSON_BODY as u64) {
            return Err(too_large());
        }
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(JsonBody(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("request body is larger than {} bytes", MAX_JSON_BODY),
    )
}

fn json_rejection(r: JsonRejection) -> ApiError {
    let status = r.status();
    let text = r.body_text();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        too_large()
    } else if status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
        ApiError::new(
            status,
            "unsupported_media_type",
            "send the body as application/json",
        )
    } else {
        ApiError::bad_request("invalid_json", text)
    }
}

/// The path's parameters, with `{project}` validated as a project name.
async fn path_params<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
) -> Result<(String, HashMap<String, String>), ApiError> {
    let Path(mut params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
        .await
        .map_err(path_rejection)?;
    let project = params.remove("project").unwrap_or_default();
    forkr_crds::validation::validate_project_name(&project)?;
    Ok((project, params))
}

/// `{project}` from the path, validated as a project name.
pub struct Project(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Project {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Ok(Project(path_params(parts, state).await?.0))
    }
}

/// `{project}` and `{name}` from the path; the project is validated, the name by the handler
/// (it names different kinds of things: volumes, users). Boxes have their own [`BoxKey`].
pub struct Named {
    pub project: String,
    pub name: String,
}

impl<S: Send + Sync> FromRequestParts<S> for Named {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let (project, mut params) = path_params(parts, state).await?;
        let name = params.remove("name").unwrap_or_default();
        Ok(Named { project, name })
    }
}

/// `{project}` and `{name}` of a box route, both validated: a bad box name is 400
/// `invalid_name` before the handler runs, and the backend gets a key it need not check again.
impl<S: Send + Sync> FromRequestParts<S> for BoxKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let (project, mut params) = path_params(parts, state).await?;
        let name = params.remove("name").unwrap_or_default();
        Ok(BoxKey::new(project, name)?)
    }
}

fn path_rejection(r: PathRejection) -> ApiError {
    ApiError::bad_request("invalid_path", r.body_text())
}
