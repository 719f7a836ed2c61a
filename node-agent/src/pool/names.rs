//! Checks on names that become path components in the pool.
//!
//! These are not the product's naming rules (those are `forkr_crds::validation`, which every
//! caller applies first); they are the storage engine's own guard that a name can never leave
//! its directory, whoever calls the pool. They stay deliberately looser than the API's rules so
//! that a pool written by an older or newer version still opens.

use crate::error::{Error, Result};

/// Prefix of the pool's staging names; `component` refuses it so a user's object can never look
/// like one.
pub const STAGING_PREFIX: &str = ".forkr-";

/// Longest name accepted for any component; well under the 255-byte limit of a btrfs name,
/// leaving room for the `-vYYYYMMDDhhmmss` version suffix and `box-<name>-<vol>` clones.
pub const MAX_LEN: usize = 200;

/// Accepts a name that is safe as one path component: not empty, not `.` or `..`, no `/` or NUL.
pub fn component(kind: &str, name: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::InvalidArgument(format!(
            "invalid {kind} name {name:?}: {why}"
        )))
    };
    if name.is_empty() {
        return bad("must not be empty");
    }
    if name == "." || name == ".." {
        return bad("must not be . or ..");
    }
    if name.contains('/') || name.contains('\0') {
        return bad("must not contain / or NUL");
    }
    if name.starts_with(STAGING_PREFIX) {
        return bad("names starting with .forkr- are reserved");
    }
    if name.len() > MAX_LEN {
        return bad("too long");
    }
    Ok(())
}

/// Snapshot names follow the documented pattern `^[a-zA-Z0-9_.-]+$`.
pub fn snapshot(name: &str) -> Result<()> {
    component("snapshot", name)?;
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return Err(Error::InvalidArgument(format!(
            "invalid snapshot name {name:?}: must match ^[a-zA-Z0-9_.-]+$"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_dangerous_components() {
        for bad in ["", ".", "..", "a/b", "a\0b", "/"] {
            assert!(component("box", bad).is_err(), "{bad:?}");
        }
        assert!(component("box", &"x".repeat(MAX_LEN + 1)).is_err());
        assert!(component("box", "web-1").is_ok());
    }

    #[test]
    fn snapshot_pattern() {
        assert!(snapshot("before-upgrade.v2_x").is_ok());
        assert!(snapshot("white space").is_err());
        assert!(snapshot("..").is_err());
    }
}
