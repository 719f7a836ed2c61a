use std::collections::BTreeMap;

use super::{ValidationError, ValidationErrors};

/// Keys the runner injects and a user may not set (002, "Reserved variables").
pub const RESERVED_ENV: &[&str] = &[
    "FORKR_PROJECT",
    "BOX_NAME",
    "FORKR_API_URL",
    "FORKR_API_HOST",
    "TERM",
];

pub fn is_reserved_env(key: &str) -> bool {
    RESERVED_ENV.contains(&key)
}

/// A key that a shell can `export`: letters, digits and '_', not starting with a digit.
pub fn validate_env_key(key: &str) -> Result<(), ValidationError> {
    if is_reserved_env(key) {
        return Err(ValidationError::ReservedEnv {
            key: key.to_owned(),
        });
    }
    let b = key.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 256
        && !b[0].is_ascii_digit()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_');
    if ok {
        Ok(())
    } else {
        Err(ValidationError::InvalidEnvKey {
            key: key.to_owned(),
        })
    }
}

/// The environment a user gives at create time. Values may hold anything but NUL, which no
/// process environment can carry.
pub fn validate_env(env: &BTreeMap<String, String>) -> Result<(), ValidationErrors> {
    let mut errs = ValidationErrors::default();
    for (key, value) in env {
        errs.check(format!("env.{key}"), validate_env_key(key));
        if value.contains('\0') {
            errs.push(
                format!("env.{key}"),
                ValidationError::InvalidEnvValue { key: key.clone() },
            );
        }
    }
    errs.into_result()
}

/// Parses one `-e KEY=VALUE`. The value is everything after the first `=`, and may be empty.
pub fn parse_env_assignment(arg: &str) -> Result<(String, String), ValidationError> {
    let (key, value) = arg
        .split_once('=')
        .ok_or_else(|| ValidationError::EnvSyntax {
            arg: arg.to_owned(),
        })?;
    validate_env_key(key)?;
    if value.contains('\0') {
        return Err(ValidationError::InvalidEnvValue {
            key: key.to_owned(),
        });
    }
    Ok((key.to_owned(), value.to_owned()))
}
