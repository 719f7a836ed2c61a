//! The node's btrfs pool: layout, work directories and crash recovery (`open` opens it); the
//! objects kept in it live in the submodules (`roots`, `checkpoint`, `bases`, `volumes`, ...).
//!
//! Layout under the pool directory:
//!
//! ```text
//! bases/<version>                         read-only base versions
//! roots/<project>/<box>                   writable box roots
//! checkpoints/<project>/<box>/<name>      read-only root snapshots
//! volumes/<project>/<vol>                 data volumes
//! volume-checkpoints/<project>/<vol>/<n>  read-only volume snapshots, deleted with the volume
//! volume-backups/<project>/<vol>/<n>      read-only volume snapshots that outlive the volume
//! system/box-bin, system/box-all          global system volumes
//! system/projects/<project>/{box-proj,home}  per-project system volumes
//! meta/<same path>.meta, meta/aliases/<base>.meta   sidecars (see `meta`)
//! tmp/<op-id>/                            work directories of operations in flight
//! ```
//!
//! Every mutating operation owns a work directory under `tmp/` that starts with an `intent.meta`
//! and records every staging name it uses, and it publishes its result in one atomic step: a
//! snapshot ioctl straight to the final name, or a rename from a staging name next to it.
//! Whatever a crash leaves is rolled back on the next open, except a restore that had already
//! moved the live root aside: that one is rolled forward, so a root is never lost.
//!
//! One agent owns a pool at a time; opening it recovers as if every earlier owner had crashed.

pub mod bases;
pub mod checkpoint;
pub mod diff;
pub mod fault;
pub mod import;
pub mod loopback;
pub mod meta;
pub mod names;
mod open;
pub mod receive;
pub mod roots;
pub mod sendstream;
pub mod sizes;
pub mod tree;
pub mod volumes;

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::pool::fault::Faults;
use crate::sys;
use names::STAGING_PREFIX;

// The layout is the contract with the operator, which mounts parts of the pool by host path.
use forkr_agent_proto::layout::{self, TOP_DIRS};
pub use forkr_agent_proto::layout::{GLOBAL_SYSTEM_VOLUMES, PROJECT_SYSTEM_VOLUMES};

/// An open pool. Cheap operations serialise on one lock; long ones (import, diff) only hold it to
/// publish their result.
pub struct Pool {
    dir: PathBuf,
    ops: Mutex<()>,
    in_flight: Mutex<HashSet<String>>,
    faults: Faults,
}

/// Why a work directory exists; read back by recovery.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Intent {
    pub op: String,
    /// Pool-relative path of the object the operation publishes or replaces.
    pub target: PathBuf,
}

/// A work directory under `tmp/`, registered as in flight while this value lives.
pub(crate) struct Work<'a> {
    pool: &'a Pool,
    pub id: String,
    pub dir: PathBuf,
}

impl Drop for Work<'_> {
    fn drop(&mut self) {
        self.pool.lock_in_flight().remove(&self.id);
    }
}

static OP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Pool {
    /// The pool's directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Testing hook: the `n`-th step of the following operations fails as a crash would.
    pub fn arm_fault(&self, n: usize) {
        self.faults.arm(n);
    }

    pub(crate) fn step(&self, what: &str) -> Result<()> {
        self.faults.step(what)
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, ()> {
        self.ops.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_in_flight(&self) -> MutexGuard<'_, HashSet<String>> {
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn abs(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.dir.join(rel)
    }

    pub(crate) fn meta_path(&self, rel: &Path) -> PathBuf {
        meta::sidecar(&self.dir.join(layout::META), rel)
    }

    pub(crate) fn read_meta(&self, rel: &Path) -> Option<meta::Meta> {
        meta::read(&self.meta_path(rel))
    }

    pub(crate) fn write_meta(&self, rel: &Path, m: &meta::Meta) -> Result<()> {
        meta::write(&self.meta_path(rel), m)
    }

    /// Paths of the per-project system volumes, created on first use.
    pub fn ensure_project(&self, project: &str) -> Result<Vec<PathBuf>> {
        let _g = self.lock();
        self.ensure_project_locked(project)
    }

    /// `ensure_project` for callers that hold the pool lock.
    pub(crate) fn ensure_project_locked(&self, project: &str) -> Result<Vec<PathBuf>> {
        names::component("project", project)?;
        let mut out = Vec::new();
        for vol in PROJECT_SYSTEM_VOLUMES {
            let rel = layout::system_volume(project, vol);
            self.ensure_subvolume(&rel)?;
            out.push(self.abs(rel));
        }
        Ok(out)
    }

    /// Paths of the global system volumes.
    pub fn global_system_volumes(&self) -> Vec<PathBuf> {
        GLOBAL_SYSTEM_VOLUMES
            .iter()
            .map(|v| self.abs(Path::new(layout::SYSTEM).join(v)))
            .collect()
    }

    /// Creates a subvolume at `rel` unless it exists, publishing it atomically. The caller holds
    /// the pool lock.
    fn ensure_subvolume(&self, rel: &Path) -> Result<()> {
        if sys::is_subvolume(&self.abs(rel))? {
            return Ok(());
        }
        self.run(Intent::new("create-system-volume", rel), |work| {
            let staged = work.stage(rel, "new")?;
            sys::create_subvolume(&staged)?;
            self.write_meta(
                rel,
                &meta::Meta {
                    created: meta::now_rfc3339(),
                    ..Default::default()
                },
            )?;
            self.publish(&staged, rel)
        })
    }

    /// Runs `f` inside a fresh work directory. On success the directory is cleared; on an
    /// ordinary error it is rolled back at once; on an injected fault it is left for recovery,
    /// which is what a crash would do.
    pub(crate) fn run<T>(
        &self,
        intent: Intent,
        f: impl FnOnce(&Work<'_>) -> Result<T>,
    ) -> Result<T> {
        let work = self.begin(&intent)?;
        match f(&work) {
            Ok(v) => {
                self.clear_work_dir(&work.dir)?;
                Ok(v)
            }
            Err(e @ Error::Fault { .. }) => Err(e),
            Err(e) => {
                if let Err(cleanup) = self.recover_work_dir(&work.dir) {
                    tracing::warn!(error = %cleanup, dir = %work.dir.display(), "rollback failed");
                }
                Err(e)
            }
        }
    }

    fn begin(&self, intent: &Intent) -> Result<Work<'_>> {
        let id = format!(
            "{}-{}-{}",
            jiff::Timestamp::now().as_nanosecond(),
            std::process::id(),
            OP_COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        self.lock_in_flight().insert(id.clone());
        let work = Work {
            pool: self,
            dir: self.abs(layout::TMP).join(&id),
            id,
        };
        fs::create_dir(&work.dir).ctx("create", &work.dir)?;
        meta::write(&work.dir.join("intent.meta"), intent)?;
        Ok(work)
    }

    /// Moves a staged subvolume to its final place; the rename is the commit point.
    pub(crate) fn publish(&self, staged: &Path, rel: &Path) -> Result<()> {
        let dst = self.abs(rel);
        let parent = dst.parent().unwrap_or(&self.dir);
        if dst.symlink_metadata().is_ok() {
            return Err(Error::AlreadyExists(format!(
                "{} already exists",
                rel.display()
            )));
        }
        fs::rename(staged, &dst).ctx("rename into place", &dst)?;
        sys::sync_dir(parent)
    }

    /// Moves a published subvolume (or a directory of them) aside under a staging name, so that
    /// it disappears atomically and is deleted as debris if we crash before deleting it.
    pub(crate) fn retire(&self, rel: &Path, work: &Work<'_>, slot: &str) -> Result<bool> {
        let src = self.abs(rel);
        if src.symlink_metadata().is_err() {
            return Ok(false);
        }
        let aside = work.stage(rel, slot)?;
        // Not synced: if a crash loses the rename the object is simply back, and the caller's
        // delete or swap had not completed, which a retry finishes.
        fs::rename(&src, &aside).ctx("move aside", &src)?;
        Ok(true)
    }

    /// Publishes a snapshot of `src` at `rel`. Without nested subvolumes the snapshot ioctl is
    /// itself atomic, so it goes straight to its final name, and the transaction commit it
    /// performs is the commit point. With nested ones (created one by one) it is built under a
    /// staging name and renamed into place.
    pub(crate) fn publish_snapshot(
        &self,
        work: &Work<'_>,
        src: &Path,
        rel: &Path,
        read_only: bool,
    ) -> Result<()> {
        let dst = self.abs(rel);
        if dst.symlink_metadata().is_ok() {
            return Err(Error::AlreadyExists(format!(
                "{} already exists",
                rel.display()
            )));
        }
        if sys::nested_subvolumes(src)?.is_empty() {
            let parent = dst.parent().unwrap_or(&self.dir);
            fs::create_dir_all(parent).ctx("create", parent)?;
            return sys::snapshot_flat(src, &dst, read_only);
        }
        let staged = work.stage(rel, "new")?;
        sys::snapshot(src, &staged, read_only)?;
        self.step("snapshot: staged")?;
        self.publish(&staged, rel)
    }

    /// Rolls back (or, for a restore, forward) every work directory that no running operation
    /// owns. Safe to call at any time.
    pub fn recover(&self) -> Result<()> {
        let _g = self.lock();
        let tmp = self.abs(layout::TMP);
        let mut dirs = Vec::new();
        for entry in fs::read_dir(&tmp).ctx("read", &tmp)? {
            dirs.push(entry.ctx("read", &tmp)?);
        }
        // Read after listing: an operation registers before it creates its directory, so every
        // listed directory of a live operation is in this set.
        let busy = self.lock_in_flight().clone();
        for entry in dirs {
            if !busy.contains(&*entry.file_name().to_string_lossy()) {
                self.recover_work_dir(&entry.path())?;
            }
        }
        Ok(())
    }

    fn recover_work_dir(&self, dir: &Path) -> Result<()> {
        let intent: Option<Intent> = meta::read(&dir.join("intent.meta"));
        let staged = self.staged_in(dir)?;
        if let Some(intent) = intent.filter(|i| i.op == "restore") {
            let live = self.abs(&intent.target);
            if live.symlink_metadata().is_err() {
                // The live root was moved aside: put a whole root back, preferring the new one,
                // which was complete before the old one moved.
                for slot in ["new", "old"] {
                    let Some((_, cand)) = staged.iter().find(|(s, _)| s == slot) else {
                        continue;
                    };
                    if sys::is_subvolume(cand)? {
                        fs::rename(cand, &live).ctx("restore into place", &live)?;
                        if let Some(parent) = live.parent() {
                            sys::sync_dir(parent)?;
                        }
                        tracing::info!(target = %intent.target.display(), slot, "recovered interrupted restore");
                        break;
                    }
                }
            }
        }
        self.clear_work_dir(dir)
    }

    /// Staged paths recorded in a work directory, as (slot, absolute path).
    fn staged_in(&self, dir: &Path) -> Result<Vec<(String, PathBuf)>> {
        let mut out = Vec::new();
        let Ok(entries) = fs::read_dir(dir) else {
            return Ok(out);
        };
        for entry in entries {
            let entry = entry.ctx("read", dir)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(slot) = name.strip_prefix("staged-") else {
                continue;
            };
            if name.contains(meta::TEMP_MARK) {
                continue;
            }
            if let Some(rel) = meta::read::<PathBuf>(&entry.path()) {
                out.push((slot.to_string(), self.abs(rel)));
            }
        }
        Ok(out)
    }

    /// Deletes everything an operation staged, then its work directory.
    fn clear_work_dir(&self, dir: &Path) -> Result<()> {
        for (_, path) in self.staged_in(dir)? {
            delete_tree(&path)?;
        }
        delete_tree(dir)
    }

    fn sweep_meta(&self, dir: &Path, rel: &Path) -> Result<()> {
        let Ok(entries) = fs::read_dir(dir) else {
            return Ok(());
        };
        for entry in entries {
            let entry = entry.ctx("read", dir)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            let child_rel = rel.join(&name);
            if entry.file_type().ctx("stat", &path)?.is_dir() {
                self.sweep_meta(&path, &child_rel)?;
                // Empty directories of deleted boxes are noise; ignore failure when not empty.
                let _ = fs::remove_dir(&path);
                continue;
            }
            if name.contains(meta::TEMP_MARK) {
                meta::remove(&path)?;
                continue;
            }
            let Some(subject) = name.strip_suffix(meta::SUFFIX) else {
                continue;
            };
            if rel.starts_with("aliases") {
                continue;
            }
            if !sys::is_subvolume(&self.abs(rel.join(subject)))? {
                meta::remove(&path)?;
            }
        }
        Ok(())
    }
}

impl Work<'_> {
    /// A staging path next to `target` (same directory, so even a read-only subvolume can be
    /// renamed into place), recorded in the work directory before it is used.
    pub(crate) fn stage(&self, target: &Path, slot: &str) -> Result<PathBuf> {
        let parent = target.parent().unwrap_or(Path::new(""));
        let abs_parent = self.pool.abs(parent);
        fs::create_dir_all(&abs_parent).ctx("create", &abs_parent)?;
        let rel = parent.join(format!("{STAGING_PREFIX}tmp-{}-{slot}", self.id));
        meta::write(&self.dir.join(format!("staged-{slot}")), &rel)?;
        Ok(self.pool.abs(rel))
    }
}

impl Intent {
    pub(crate) fn new(op: &str, target: impl AsRef<Path>) -> Intent {
        Intent {
            op: op.to_string(),
            target: target.as_ref().to_path_buf(),
        }
    }
}

/// Deletes staging leftovers whose work directory record did not survive a crash, looking
/// `depth` levels down and never inside a subvolume.
fn sweep_staging(dir: &Path, depth: usize) -> Result<()> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let path = entry.ctx("read", dir)?.path();
        let is_staging = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(STAGING_PREFIX));
        if is_staging {
            tracing::info!(path = %path.display(), "removing staging debris");
            delete_tree(&path)?;
        } else if depth > 1 && path.is_dir() && !sys::is_subvolume(&path)? {
            sweep_staging(&path, depth - 1)?;
        }
    }
    Ok(())
}

/// Removes `path` whatever it holds: subvolumes (recursively), directories, files.
pub(crate) fn delete_tree(path: &Path) -> Result<()> {
    let Ok(md) = path.symlink_metadata() else {
        return Ok(());
    };
    if md.is_dir() && sys::is_subvolume(path)? {
        return sys::delete_subvolume_tree(path);
    }
    if md.is_dir() {
        for entry in fs::read_dir(path).ctx("read", path)? {
            delete_tree(&entry.ctx("read", path)?.path())?;
        }
        return fs::remove_dir(path).ctx("remove", path);
    }
    fs::remove_file(path).ctx("remove", path)
}

/// Lists the names of subvolumes directly inside `dir` (missing dir = none), sorted.
pub(crate) fn list_subvolumes(dir: &Path) -> Result<Vec<String>> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.ctx("read", dir)?;
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with(STAGING_PREFIX) && sys::is_subvolume(&entry.path())?
        {
            out.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    out.sort();
    Ok(out)
}
