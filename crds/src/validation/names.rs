use std::fmt;

use super::ValidationError;

/// What a name names: each kind has its own grammar because each ends up somewhere different
/// (a Service name, a namespace, a directory in the pool, a passwd line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NameKind {
    Box,
    Project,
    Service,
    User,
    Snapshot,
    DataVolume,
    Base,
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameKind::Box => "box",
            NameKind::Project => "project",
            NameKind::Service => "service",
            NameKind::User => "user",
            NameKind::Snapshot => "snapshot",
            NameKind::DataVolume => "data volume",
            NameKind::Base => "base",
        })
    }
}

/// Longest base alias: the alias plus `-vYYYYMMDDhhmmss` must still be a 63-character label.
pub const MAX_BASE_ALIAS: usize = 63 - crate::base::VERSION_SUFFIX_LEN;

const BOX_RULE: &str = "use 1-63 lowercase letters, digits or '-', starting with a letter and ending with a letter or digit";
const LABEL_RULE: &str =
    "use 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit";
const BASE_RULE: &str =
    "use 1-47 lowercase letters, digits or '-', starting and ending with a letter or digit";
const VERSION_RULE: &str =
    "use 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit";
const USER_RULE: &str = "use 1-32 characters of [a-z0-9_-]";
const SNAPSHOT_RULE: &str = "use 1-63 characters matching ^[a-zA-Z0-9_.-]+$, other than . and ..";

/// Users that every Ubuntu base already has, and groups a user would collide with (UID = GID, and
/// the group carries the user's name).
pub const RESERVED_USERS: &[&str] = &[
    "root",
    "daemon",
    "bin",
    "sys",
    "sync",
    "games",
    "man",
    "lp",
    "mail",
    "news",
    "uucp",
    "proxy",
    "www-data",
    "backup",
    "list",
    "irc",
    "gnats",
    "nobody",
    "nogroup",
    "_apt",
    "messagebus",
    "syslog",
    "sshd",
    "ubuntu",
    "polkitd",
    "tss",
    "uuidd",
    "tcpdump",
    "adm",
    "tty",
    "disk",
    "kmem",
    "dialout",
    "fax",
    "voice",
    "cdrom",
    "floppy",
    "tape",
    "sudo",
    "audio",
    "dip",
    "operator",
    "src",
    "shadow",
    "utmp",
    "video",
    "sasl",
    "plugdev",
    "staff",
    "users",
    "input",
    "sgx",
    "kvm",
    "render",
    "netdev",
    "crontab",
    "ssh",
    "lxd",
    "docker",
];

/// A DNS-1123 label: lowercase alphanumerics and '-', alphanumeric at both ends.
fn is_dns_label(s: &str, max: usize) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= max
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

fn invalid(kind: NameKind, name: &str, rule: &'static str) -> ValidationError {
    ValidationError::InvalidName {
        kind,
        name: name.to_owned(),
        rule,
    }
}

/// Box names become a Service name (DNS-1035), a hostname label and a pool directory.
pub fn validate_box_name(name: &str) -> Result<(), ValidationError> {
    if is_dns_label(name, 63) && name.as_bytes()[0].is_ascii_lowercase() {
        Ok(())
    } else {
        Err(invalid(NameKind::Box, name, BOX_RULE))
    }
}

/// Projects are namespaces. `kube-*` namespaces belong to Kubernetes itself.
pub fn validate_project_name(name: &str) -> Result<(), ValidationError> {
    if !is_dns_label(name, 63) {
        return Err(invalid(NameKind::Project, name, LABEL_RULE));
    }
    if name.starts_with("kube-") {
        return Err(ValidationError::ReservedName {
            kind: NameKind::Project,
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// Service names: lowercase a-z0-9-, as the services page says.
pub fn validate_service_name(name: &str) -> Result<(), ValidationError> {
    if is_dns_label(name, 63) {
        Ok(())
    } else {
        Err(invalid(NameKind::Service, name, LABEL_RULE))
    }
}

/// Data volume names: a DNS label, since a fork names its copies `box-<name>-<vol>`.
pub fn validate_volume_name(name: &str) -> Result<(), ValidationError> {
    if is_dns_label(name, 63) {
        Ok(())
    } else {
        Err(invalid(NameKind::DataVolume, name, LABEL_RULE))
    }
}

/// Project users: 1-32 of `[a-z0-9_-]`, not a name the base image or its groups already use.
pub fn validate_user_name(name: &str) -> Result<(), ValidationError> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-');
    if !ok {
        return Err(invalid(NameKind::User, name, USER_RULE));
    }
    if RESERVED_USERS.contains(&name) || name.starts_with("systemd-") {
        return Err(ValidationError::ReservedName {
            kind: NameKind::User,
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// Snapshot names follow `^[a-zA-Z0-9_.-]+$` (so uppercase and `_` are legal). `.` and `..` match
/// that pattern but would name the directory itself or its parent in the pool, so they are refused.
pub fn validate_snapshot_name(name: &str) -> Result<(), ValidationError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(invalid(NameKind::Snapshot, name, SNAPSHOT_RULE))
    }
}

/// A base alias: short enough that every later version name still fits in a label.
pub fn validate_base_alias(name: &str) -> Result<(), ValidationError> {
    if is_dns_label(name, MAX_BASE_ALIAS) {
        Ok(())
    } else {
        Err(invalid(NameKind::Base, name, BASE_RULE))
    }
}

/// An exact base version: the alias itself or `<alias>-vYYYYMMDDhhmmss`.
pub fn validate_base_version(name: &str) -> Result<(), ValidationError> {
    if is_dns_label(name, 63) {
        Ok(())
    } else {
        Err(invalid(NameKind::Base, name, VERSION_RULE))
    }
}

/// What `--base` accepts: an alias, an exact version, or `alias:tag` where the tag is a (prefix of
/// a) build script's sha256.
pub fn validate_base_ref(reference: &str) -> Result<(), ValidationError> {
    match reference.split_once(':') {
        None => validate_base_version(reference),
        Some((alias, tag)) => {
            validate_base_alias(alias)?;
            let hex = !tag.is_empty()
                && tag.len() <= 64
                && tag
                    .bytes()
                    .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c));
            if hex {
                Ok(())
            } else {
                Err(invalid(
                    NameKind::Base,
                    reference,
                    "the tag after ':' must be 1-64 lowercase hex digits of a build script's sha256",
                ))
            }
        }
    }
}

/// Dispatch by kind, for callers that hold a [`NameKind`].
pub fn validate_name(kind: NameKind, name: &str) -> Result<(), ValidationError> {
    match kind {
        NameKind::Box => validate_box_name(name),
        NameKind::Project => validate_project_name(name),
        NameKind::Service => validate_service_name(name),
        NameKind::User => validate_user_name(name),
        NameKind::Snapshot => validate_snapshot_name(name),
        NameKind::DataVolume => validate_volume_name(name),
        NameKind::Base => validate_base_version(name),
    }
}

/// Turns a directory name (the git root that 4kr falls back to) into a project name: lowercase,
/// every other character becomes '-', runs collapse, ends trimmed, 63 at most. `None` when nothing
/// usable is left, so the caller falls back to `default`.
pub fn normalize_project_name(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len().min(63));
    for c in raw.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.truncate(63);
    let trimmed = out.trim_end_matches('-');
    (validate_project_name(trimmed).is_ok()).then(|| trimmed.to_owned())
}
