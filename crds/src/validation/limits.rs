//! Size bounds and request ids: the OpenAPI limits of the CRDs, checked in Rust too, so that an
//! object the apiserver would refuse is refused the same way by forkr-api and the local backend.

use super::ValidationError;

/// At most `max` entries in a list or map field.
pub fn check_count(what: &'static str, count: usize, max: usize) -> Result<(), ValidationError> {
    if count <= max {
        Ok(())
    } else {
        Err(ValidationError::TooMany { what, count, max })
    }
}

/// At most `max` bytes of free text.
pub fn check_len(what: &'static str, value: &str, max: usize) -> Result<(), ValidationError> {
    if value.len() <= max {
        Ok(())
    } else {
        Err(ValidationError::TooLong {
            what,
            len: value.len(),
            max,
        })
    }
}

/// The id that makes a declarative request (restore, new base version) happen once: 1-128 of
/// letters, digits, `.`, `_`, `:` and `-`, so a UUID or an RFC3339-ish timestamp fits.
pub fn validate_request_id(id: &str) -> Result<(), ValidationError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ValidationError::Invalid {
            what: "request id",
            value: id.to_owned(),
            rule: "use 1-128 letters, digits, '.', '_', ':' or '-'",
        })
    }
}

/// A staged upload's id: 1-128 of letters, digits, `.`, `_` and `-` (it names a file).
pub fn validate_upload_id(id: &str) -> Result<(), ValidationError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ValidationError::Invalid {
            what: "upload id",
            value: id.to_owned(),
            rule: "use 1-128 letters, digits, '.', '_' or '-', not starting with '.'",
        })
    }
}

/// A sha256 in lowercase hex.
pub fn validate_sha256(value: &str) -> Result<(), ValidationError> {
    let ok = value.len() == 64
        && value
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c));
    if ok {
        Ok(())
    } else {
        Err(ValidationError::Invalid {
            what: "sha256",
            value: value.to_owned(),
            rule: "64 lowercase hex digits",
        })
    }
}
