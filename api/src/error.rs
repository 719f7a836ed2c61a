//! API errors: `{"error": code, "message": text}` with the status and code the documents give.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use forkr_crds::validation::{ValidationError, ValidationErrors};

pub use crate::wire::ErrorBody;

/// An error with its HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {code}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// Appends advice to the message: what the user can do about it.
    pub fn with_hint(mut self, hint: &str) -> Self {
        self.message = format!("{}; {hint}", self.message);
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(what: &str, name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} {name:?} not found"),
        )
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or invalid bearer token",
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        ApiError::bad_request(e.code(), e.to_string())
    }
}

impl From<ValidationErrors> for ApiError {
    fn from(e: ValidationErrors) -> Self {
        match e.first() {
            Some(first) if e.0.len() == 1 => ApiError::bad_request(first.code(), first.to_string()),
            Some(first) => ApiError::bad_request(first.code(), e.to_string()),
            None => ApiError::bad_request("invalid_argument", "invalid request"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = self.code, message = %self.message, "request failed");
        }
        let body = ErrorBody {
            error: self.code.to_owned(),
            message: self.message,
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<forkr_node_agent::Error> for ApiError {
    fn from(e: forkr_node_agent::Error) -> Self {
        use forkr_node_agent::Error as E;
        match &e {
            E::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, "not_found", m.clone()),
            E::AlreadyExists(m) => ApiError::new(StatusCode::CONFLICT, "already_exists", m.clone()),
            E::InvalidArgument(m) => ApiError::bad_request("invalid_argument", m.clone()),
            E::FailedPrecondition(m) => {
                ApiError::new(StatusCode::CONFLICT, "failed_precondition", m.clone())
            }
            E::PermissionDenied(m) => ApiError::forbidden(m.clone()),
            _ => ApiError::internal(e.to_string()),
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError as E;
        match &e {
            E::Exists(what) => {
                ApiError::conflict("already_exists", format!("{what} already exists"))
            }
            E::Missing(what) => ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("{what} not found"),
            ),
            _ => ApiError::internal(e.to_string()),
        }
    }
}
