//! `4kr update`: the server applies only a fixed allowlist of settings (001, "update").

use std::collections::BTreeMap;

use super::{ValidationError, cpu_millis, memory_bytes};

/// The longest termination grace a box may ask for: one day.
pub const MAX_GRACE_SECONDS: i64 = 86_400;

pub fn validate_port(value: &str) -> Result<u16, ValidationError> {
    match value.trim().parse::<u16>() {
        Ok(p) if p >= 1 => Ok(p),
        _ => Err(ValidationError::InvalidPort {
            value: value.to_owned(),
        }),
    }
}

pub fn validate_grace(value: &str) -> Result<i64, ValidationError> {
    match value.trim().parse::<i64>() {
        Ok(g) if (0..=MAX_GRACE_SECONDS).contains(&g) => Ok(g),
        _ => Err(ValidationError::InvalidGrace {
            value: value.to_owned(),
        }),
    }
}

/// What an update changes. `None` leaves a field alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BoxUpdate {
    pub port: Option<u16>,
    pub cpu: Option<String>,
    pub memory: Option<String>,
    pub termination_grace_period_seconds: Option<i64>,
    pub tags: Option<BTreeMap<String, String>>,
}

/// Picks the allowlisted settings out of the merged map the CLI sends: PORT, CPU, MEMORY, and
/// TERMINATION_GRACE_PERIOD_SECONDS or TERMINATION_GRACE_SECONDS (the first wins when both are
/// given). Keys match case-insensitively. Every other key is dropped without a word. An allowlisted
/// key with a bad value is an error; nothing allowlisted at all is `no updates provided`.
pub fn parse_box_update(
    settings: &BTreeMap<String, String>,
    tags: Option<&BTreeMap<String, String>>,
) -> Result<BoxUpdate, ValidationError> {
    let get = |key: &str| {
        settings
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    };
    let mut update = BoxUpdate::default();
    if let Some(v) = get("PORT") {
        update.port = Some(validate_port(v)?);
    }
    if let Some(v) = get("CPU").map(str::trim) {
        cpu_millis(v)?;
        update.cpu = Some(v.to_owned());
    }
    if let Some(v) = get("MEMORY").map(str::trim) {
        memory_bytes(v)?;
        update.memory = Some(v.to_owned());
    }
    let grace =
        get("TERMINATION_GRACE_PERIOD_SECONDS").or_else(|| get("TERMINATION_GRACE_SECONDS"));
    if let Some(v) = grace {
        update.termination_grace_period_seconds = Some(validate_grace(v)?);
    }
    if let Some(tags) = tags.filter(|t| !t.is_empty()) {
        for key in tags.keys() {
            crate::box_resource::validate_tag_key(key)?;
        }
        update.tags = Some(tags.clone());
    }
    if update == BoxUpdate::default() {
        return Err(ValidationError::NoUpdates);
    }
    Ok(update)
}
