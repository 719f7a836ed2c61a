//! Self-describing pool: a JSON sidecar per subvolume under `meta/`, written atomically.
//!
//! The subvolume is the source of truth for existence; its sidecar holds what btrfs cannot
//! (descriptions, base build info, request ids for idempotent retries, cached sizes). A sidecar
//! is always written before its subvolume appears, so a visible subvolume has one.
//!
//! A sidecar is an empty file whose JSON lives in its `user.forkr.meta` extended attribute.
//! Extended attributes are btrfs metadata, so they join the running transaction, and the commit
//! that every snapshot ioctl performs makes them durable together with the snapshot. File data,
//! by contrast, waits for writeback and would need an fsync (milliseconds on a loop device) to be
//! safe; an object's creation therefore costs one transaction commit and no fsync.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::sys;

/// The extended attribute holding a sidecar's JSON.
pub const XATTR: &str = "user.forkr.meta";
/// Largest sidecar accepted; well inside what one btrfs xattr can hold.
pub const MAX_LEN: usize = 8 * 1024;

/// Suffix of sidecars being written; leftovers are crash debris.
pub const TEMP_MARK: &str = ".tmp-";

/// What the pool remembers about one subvolume.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// Creation time, RFC3339 UTC.
    pub created: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Client-chosen key that makes a retried create return the first result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// For roots: the exact base version they were cloned from (directly or through a fork).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// For roots: `base:<version>` or `fork:<project>/<box>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// For bases: the alias (user-facing name) this version belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// For bases: `import`, `save` or `build`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// For bases: sha256 of the build script.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builder: Option<String>,
    /// For bases: the project that made the version (see `import::ImportOptions::owner`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// For bases: the btrfs UUID of the subvolume this version was received from, so an
    /// incremental stream is only applied on top of the very tree it was computed against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_uuid: Option<String>,
    /// Size in bytes, valid while the subvolume's generation equals `size_generation`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_generation: Option<u64>,
}

/// An alias: a base name pointing at its newest version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alias {
    pub target: String,
}

/// The current time as RFC3339 UTC with second precision.
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .unwrap_or_else(|_| jiff::Timestamp::now())
        .to_string()
}

/// Reads a sidecar; a missing one is `None`, a corrupt one too (it is rewritten on next change).
pub fn read<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    let bytes = sys::get_xattr(path, XATTR).ok().flatten()?;
    match serde_json::from_slice(&bytes) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "ignoring unreadable metadata");
            None
        }
    }
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `value` to `path` atomically: a temp file carrying the attribute, renamed over.
pub fn write<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    fs::create_dir_all(dir).ctx("create", dir)?;
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!(
        "{TEMP_MARK}{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = dir.join(tmp_name);
    let body = serde_json::to_vec(value).map_err(|e| Error::Io {
        context: format!("encode {}", path.display()),
        source: std::io::Error::other(e),
    })?;
    if body.len() > MAX_LEN {
        return Err(Error::InvalidArgument(format!(
            "metadata for {} is over {MAX_LEN} bytes; shorten the description",
            path.display()
        )));
    }
    fs::File::create(&tmp).ctx("create", &tmp)?;
    sys::set_xattr(&tmp, XATTR, &body)?;
    fs::rename(&tmp, path).ctx("rename", &tmp)
}

/// Removes a sidecar; missing is fine.
pub fn remove(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).ctx("remove", path),
        _ => Ok(()),
    }
}

/// Suffix of sidecar files.
pub const SUFFIX: &str = ".meta";

/// `meta/<rel>.meta` for the subvolume at `<pool>/<rel>`.
pub fn sidecar(meta_dir: &Path, rel: &Path) -> PathBuf {
    let mut p = meta_dir.join(rel).into_os_string();
    p.push(SUFFIX);
    PathBuf::from(p)
}
