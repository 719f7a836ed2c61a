//! Diffs between a checkpoint and the live root.
//!
//! `status` freezes the live root into a temporary read-only snapshot and asks the kernel for a
//! metadata-only send stream against the checkpoint (as snapper does): btrfs walks only the tree
//! blocks that differ, so the cost follows the change. Every path the stream names is then
//! classified by comparing it in both trees. A full walk of both trees is the fallback when the
//! kernel cannot send (and is kept as the reference in tests and the benchmark).

use std::collections::BTreeMap;
use std::fs::{self, Metadata};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::{sendstream, tree};
use crate::error::{Error, IoContext, Result};
use crate::pool::checkpoint::{Shelf, Subject};
use crate::pool::{Intent, Pool};
use crate::sys;

/// Largest file `diff file` compares.
pub const FILE_DIFF_LIMIT: u64 = 1024 * 1024;

/// How a path differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    Added,
    Modified,
    Deleted,
}

impl Change {
    /// The status letter: `+`, `~` or `-`.
    pub fn symbol(self) -> char {
        match self {
            Change::Added => '+',
            Change::Modified => '~',
            Change::Deleted => '-',
        }
    }
}

/// How `status` found its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    SendStream,
    Walk,
}

/// Changed paths (absolute, as seen inside the box) in path order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    pub against: String,
    pub changes: Vec<(Change, String)>,
    pub method: Method,
}

impl StatusReport {
    /// `+ /path` lines, or `No changes`.
    pub fn render(&self) -> String {
        if self.changes.is_empty() {
            return "No changes\n".to_string();
        }
        self.changes
            .iter()
            .map(|(c, p)| format!("{} {p}\n", c.symbol()))
            .collect()
    }
}

/// The state of one file between checkpoint and live root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileStatus {
    Added,
    Deleted,
    Modified,
    Unchanged,
}

impl FileStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FileStatus::Added => "added",
            FileStatus::Deleted => "deleted",
            FileStatus::Modified => "modified",
            FileStatus::Unchanged => "unchanged",
        }
    }
}

/// Result of `diff file`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDiff {
    pub against: String,
    pub status: FileStatus,
    /// Unified diff, for a modified file.
    pub diff: Option<String>,
}

/// Forces the walk instead of the send stream (for measurements).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    Auto,
    WalkOnly,
}

fn lstat(p: &Path) -> Option<Metadata> {
    fs::symlink_metadata(p).ok()
}

/// Whether two entries differ in what a user would call a change. Directory times move whenever
/// an entry inside changes, so they are not a change of the directory itself.
fn differs(old: &Path, o: &Metadata, new: &Path, n: &Metadata, content_hint: bool) -> bool {
    if o.file_type() != n.file_type()
        || o.mode() != n.mode()
        || o.uid() != n.uid()
        || o.gid() != n.gid()
    {
        return true;
    }
    let ft = o.file_type();
    if ft.is_symlink() {
        return fs::read_link(old).ok() != fs::read_link(new).ok();
    }
    if ft.is_file() {
        return content_hint
            || o.size() != n.size()
            || o.mtime() != n.mtime()
            || o.mtime_nsec() != n.mtime_nsec();
    }
    o.rdev() != n.rdev()
}

fn box_path(rel: &Path) -> String {
    format!("/{}", rel.display())
}

/// Adds every entry below `dir` (not crossing into nested subvolumes) as `change`.
fn add_subtree(
    base: &Path,
    rel: &Path,
    change: Change,
    out: &mut BTreeMap<PathBuf, Change>,
) -> Result<()> {
    let top = base.join(rel);
    let Ok(md) = fs::symlink_metadata(&top) else {
        return Ok(());
    };
    if !md.is_dir() {
        return Ok(());
    }
    let dev = md.dev();
    let mut stack = vec![rel.to_path_buf()];
    while let Some(d) = stack.pop() {
        let abs = base.join(&d);
        for entry in fs::read_dir(&abs).ctx("read", &abs)? {
            let entry = entry.ctx("read", &abs)?;
            let child = d.join(entry.file_name());
            out.insert(child.clone(), change);
            let md = entry.metadata().ctx("stat", &entry.path())?;
            if md.is_dir() && md.dev() == dev {
                stack.push(child);
            }
        }
    }
    Ok(())
}

/// Classifies the paths a send stream named.
fn classify(
    old: &Path,
    new: &Path,
    touched: BTreeMap<PathBuf, sendstream::Touch>,
) -> Result<BTreeMap<PathBuf, Change>> {
    let mut out = BTreeMap::new();
    for (rel, touch) in touched {
        let (op, np) = (old.join(&rel), new.join(&rel));
        match (lstat(&op), lstat(&np)) {
            (None, Some(_)) => {
                out.insert(rel.clone(), Change::Added);
                add_subtree(new, &rel, Change::Added, &mut out)?;
            }
            (Some(_), None) => {
                out.insert(rel.clone(), Change::Deleted);
                add_subtree(old, &rel, Change::Deleted, &mut out)?;
            }
            (Some(o), Some(n)) => {
                if differs(
                    &op,
                    &o,
                    &np,
                    &n,
                    touch.content || (touch.attrs && !o.is_dir()),
                ) {
                    out.insert(rel, Change::Modified);
                }
            }
            (None, None) => {}
        }
    }
    Ok(out)
}

/// Compares two trees entry by entry; the reference and fallback.
pub fn walk_diff(old: &Path, new: &Path) -> Result<BTreeMap<PathBuf, Change>> {
    let mut out = BTreeMap::new();
    let dev_old = fs::symlink_metadata(old).ctx("stat", old)?.dev();
    let dev_new = fs::symlink_metadata(new).ctx("stat", new)?.dev();
    let mut stack = vec![PathBuf::new()];
    while let Some(d) = stack.pop() {
        let names = |base: &Path| -> Result<BTreeMap<std::ffi::OsString, Metadata>> {
            let mut m = BTreeMap::new();
            let abs = base.join(&d);
            for e in fs::read_dir(&abs).ctx("read", &abs)? {
                let e = e.ctx("read", &abs)?;
                m.insert(e.file_name(), e.metadata().ctx("stat", &e.path())?);
            }
            Ok(m)
        };
        let (o, n) = (names(old)?, names(new)?);
        for (name, om) in &o {
            let rel = d.join(name);
            match n.get(name) {
                None => {
                    out.insert(rel.clone(), Change::Deleted);
                    add_subtree(old, &rel, Change::Deleted, &mut out)?;
                }
                Some(nm) => {
                    if differs(&old.join(&rel), om, &new.join(&rel), nm, false) {
                        out.insert(rel.clone(), Change::Modified);
                    }
                    if om.is_dir() && nm.is_dir() && om.dev() == dev_old && nm.dev() == dev_new {
                        stack.push(rel);
                    }
                }
            }
        }
        for name in n.keys().filter(|k| !o.contains_key(*k)) {
            let rel = d.join(name);
            out.insert(rel.clone(), Change::Added);
            add_subtree(new, &rel, Change::Added, &mut out)?;
        }
    }
    Ok(out)
}

impl Pool {
    fn pick_checkpoint(
        &self,
        subject: Subject<'_>,
        against: Option<&str>,
    ) -> Result<(String, PathBuf)> {
        self.require_live(subject)?;
        let name = match against {
            Some(n) => n.to_string(),
            None => self.latest_checkpoint(subject)?.ok_or_else(|| {
                Error::FailedPrecondition(format!(
                    "{} has no snapshots; specify one to diff against with --against <snapshot>",
                    subject.describe()
                ))
            })?,
        };
        let rel = self.require_checkpoint(subject, Shelf::Checkpoints, &name)?;
        Ok((name, self.abs(rel)))
    }

    /// Lists what changed in a box's root since a checkpoint (default: the most recent one).
    pub fn diff_status(
        &self,
        project: &str,
        name: &str,
        against: Option<&str>,
        strategy: Strategy,
    ) -> Result<StatusReport> {
        let subject = Subject::Root { project, name };
        let (against, checkpoint) = self.pick_checkpoint(subject, against)?;
        let live = self.abs(subject.live());
        self.run(Intent::new("diff", subject.live()), |work| {
            let frozen = work.dir.join("live");
            sys::snapshot_flat(&live, &frozen, true)?;
            let via_send = match strategy {
                Strategy::WalkOnly => None,
                Strategy::Auto => match sys::send(&frozen, Some(&checkpoint), true).and_then(|s| {
                    sendstream::touched_paths(s).map_err(|e| Error::Io {
                        context: "read send stream".into(),
                        source: e,
                    })
                }) {
                    Ok(t) => Some(classify(&checkpoint, &frozen, t)?),
                    Err(e) => {
                        tracing::warn!(error = %e, "send stream unavailable, walking both trees");
                        None
                    }
                },
            };
            let (changes, method) = match via_send {
                Some(c) => (c, Method::SendStream),
                None => (walk_diff(&checkpoint, &frozen)?, Method::Walk),
            };
            Ok(StatusReport {
                against: against.clone(),
                changes: changes
                    .into_iter()
                    .map(|(p, c)| (c, box_path(&p)))
                    .collect(),
                method,
            })
        })
    }

    /// Compares one file of a box's root with a checkpoint.
    pub fn diff_file(
        &self,
        project: &str,
        name: &str,
        path: &str,
        against: Option<&str>,
    ) -> Result<FileDiff> {
        let p = Path::new(path);
        if !p.is_absolute() {
            return Err(Error::InvalidArgument(format!(
                "path {path:?} must be absolute"
            )));
        }
        let subject = Subject::Root { project, name };
        let (against, checkpoint) = self.pick_checkpoint(subject, against)?;
        let live = self.abs(subject.live());
        // Read a frozen copy: the box can rewrite its live tree (swap a directory for a symlink
        // to a host path) between our resolving a path and opening it.
        self.run(Intent::new("diff", subject.live()), |work| {
            let frozen = work.dir.join("live");
            sys::snapshot_flat(&live, &frozen, true)?;
            compare_file(&checkpoint, &frozen, p, &against, subject)
        })
    }
}

/// Classifies one path between two frozen trees.
fn compare_file(
    checkpoint: &Path,
    frozen: &Path,
    p: &Path,
    against: &str,
    subject: Subject<'_>,
) -> Result<FileDiff> {
    let path = &*p.to_string_lossy();
    let against = against.to_string();
    let old = tree::resolve(checkpoint, p, false)?.filter(|h| h.symlink_metadata().is_ok());
    let new = tree::resolve(frozen, p, false)?.filter(|h| h.symlink_metadata().is_ok());
    let (status, diff) = match (&old, &new) {
        (None, None) => {
            return Err(Error::NotFound(format!(
                "{path} exists neither in {} nor in snapshot {against:?}",
                subject.describe()
            )));
        }
        (None, Some(n)) => {
            file_content(n, path)?;
            (FileStatus::Added, None)
        }
        (Some(o), None) => {
            file_content(o, path)?;
            (FileStatus::Deleted, None)
        }
        (Some(o), Some(n)) => {
            let (a, b) = (file_content(o, path)?, file_content(n, path)?);
            let (om, nm) = (
                fs::symlink_metadata(o).ctx("stat", o)?,
                fs::symlink_metadata(n).ctx("stat", n)?,
            );
            let same_meta = om.mode() == nm.mode() && om.uid() == nm.uid() && om.gid() == nm.gid();
            if a == b && same_meta {
                (FileStatus::Unchanged, None)
            } else {
                (FileStatus::Modified, Some(unified(path, &a, &b)))
            }
        }
    };
    Ok(FileDiff {
        against,
        status,
        diff,
    })
}

/// The bytes compared for a path: a file's content or a symlink's target. Refuses directories
/// and files over the limit.
fn file_content(host: &Path, path: &str) -> Result<Vec<u8>> {
    let md = fs::symlink_metadata(host).ctx("stat", host)?;
    if md.is_dir() {
        return Err(Error::InvalidArgument(format!(
            "{path} is a directory; diff file compares files"
        )));
    }
    if md.file_type().is_symlink() {
        use std::os::unix::ffi::OsStrExt;
        return Ok(fs::read_link(host)
            .ctx("read link", host)?
            .as_os_str()
            .as_bytes()
            .to_vec());
    }
    if md.size() > FILE_DIFF_LIMIT {
        return Err(Error::FailedPrecondition(format!(
            "{path} is {} bytes; file diffs are limited to 1 MB",
            md.size()
        )));
    }
    if !md.is_file() {
        return Ok(Vec::new());
    }
    fs::read(host).ctx("read", host)
}

fn unified(path: &str, old: &[u8], new: &[u8]) -> String {
    let (a, b) = (format!("a{path}"), format!("b{path}"));
    match (std::str::from_utf8(old), std::str::from_utf8(new)) {
        (Ok(o), Ok(n)) => similar::TextDiff::from_lines(o, n)
            .unified_diff()
            .context_radius(3)
            .header(&a, &b)
            .to_string(),
        _ => format!("Binary files {a} and {b} differ\n"),
    }
}
