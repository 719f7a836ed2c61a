//! Checkpoints: read-only snapshots of a box root or a data volume, and atomic restore.

use std::path::{Path, PathBuf};

use super::names;
use crate::error::{Error, Result};
use crate::pool::meta::{self, Meta};
use crate::pool::{self, Intent, Pool};
use crate::sys;

/// Something that can be checkpointed: a box root or a data volume.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    Root { project: &'a str, name: &'a str },
    Volume { project: &'a str, name: &'a str },
}

/// Where checkpoints of a subject go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shelf {
    /// Snapshots that belong to the subject and go away with it.
    Checkpoints,
    /// Volume backups: kept after the volume is deleted.
    Backups,
}

/// Longest description kept with a checkpoint.
pub const MAX_DESCRIPTION: usize = 4096;

/// One row of a checkpoint listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointInfo {
    pub name: String,
    pub size: u64,
    /// RFC3339.
    pub created: String,
    pub description: Option<String>,
}

impl Subject<'_> {
    pub(crate) fn validate(&self) -> Result<()> {
        match self {
            Subject::Root { project, name } => {
                names::component("project", project)?;
                names::component("box", name)
            }
            Subject::Volume { project, name } => {
                names::component("project", project)?;
                names::component("volume", name)
            }
        }
    }

    /// Pool-relative path of the live subvolume.
    pub(crate) fn live(&self) -> PathBuf {
        match self {
            Subject::Root { project, name } => Path::new("roots").join(project).join(name),
            Subject::Volume { project, name } => Path::new("volumes").join(project).join(name),
        }
    }

    pub(crate) fn shelf(&self, shelf: Shelf) -> PathBuf {
        let top = match (self, shelf) {
            (Subject::Root { .. }, _) => "checkpoints",
            (Subject::Volume { .. }, Shelf::Checkpoints) => "volume-checkpoints",
            (Subject::Volume { .. }, Shelf::Backups) => "volume-backups",
        };
        let (Subject::Root { project, name } | Subject::Volume { project, name }) = self;
        Path::new(top).join(project).join(name)
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            Subject::Root { project, name } => format!("box {project}/{name}"),
            Subject::Volume { project, name } => format!("volume {project}/{name}"),
        }
    }

    fn noun(shelf: Shelf) -> &'static str {
        match shelf {
            Shelf::Checkpoints => "snapshot",
            Shelf::Backups => "backup",
        }
    }
}

/// The next automatic name; forkr-api's Kubernetes backend names the same way.
pub use forkr_agent_proto::naming::next_auto_name;

impl Pool {
    pub(crate) fn require_live(&self, subject: Subject<'_>) -> Result<()> {
        subject.validate()?;
        if !sys::is_subvolume(&self.abs(subject.live()))? {
            return Err(Error::NotFound(format!("{} not found", subject.describe())));
        }
        Ok(())
    }

    /// Creates a read-only snapshot of the subject. Without a name the next `vN` is used. A retry
    /// carrying the same `request_id` returns the checkpoint the first attempt made.
    pub fn create_checkpoint(
        &self,
        subject: Subject<'_>,
        shelf: Shelf,
        name: Option<&str>,
        description: Option<&str>,
        request_id: Option<&str>,
    ) -> Result<String> {
        if description.is_some_and(|d| d.len() > MAX_DESCRIPTION) {
            return Err(Error::InvalidArgument(format!(
                "description is longer than {MAX_DESCRIPTION} bytes"
            )));
        }
        let _g = self.lock();
        self.require_live(subject)?;
        let dir = subject.shelf(shelf);
        let existing = pool::list_subvolumes(&self.abs(&dir))?;
        if let Some(rid) = request_id {
            for n in &existing {
                if self
                    .read_meta(&dir.join(n))
                    .and_then(|m| m.request_id)
                    .as_deref()
                    == Some(rid)
                {
                    return Ok(n.clone());
                }
            }
        }
        let name = match name {
            Some(n) => n.to_string(),
            None => next_auto_name(&existing),
        };
        names::snapshot(&name)?;
        if existing.contains(&name) {
            return Err(Error::AlreadyExists(format!(
                "{} {name:?} already exists for {}",
                Subject::noun(shelf),
                subject.describe()
            )));
        }
        let rel = dir.join(&name);
        self.run(Intent::new("checkpoint", &rel), |work| {
            self.step("checkpoint: begin")?;
            let m = Meta {
                created: meta::now_rfc3339(),
                description: description.filter(|d| !d.is_empty()).map(str::to_string),
                request_id: request_id.map(str::to_string),
                ..Default::default()
            };
            self.write_meta(&rel, &m)?;
            self.step("checkpoint: described")?;
            self.publish_snapshot(work, &self.abs(subject.live()), &rel, true)?;
            self.step("checkpoint: published")
        })?;
        Ok(name)
    }

    /// One checkpoint's row.
    pub fn checkpoint_info(
        &self,
        subject: Subject<'_>,
        shelf: Shelf,
        name: &str,
    ) -> Result<CheckpointInfo> {
        subject.validate()?;
        let rel = self.require_checkpoint(subject, shelf, name)?;
        let m = self.read_meta(&rel).unwrap_or_default();
        Ok(CheckpointInfo {
            name: name.to_string(),
            size: self.size_of(&rel)?,
            created: m.created,
            description: m.description,
        })
    }

    /// Lists checkpoints, oldest first. A missing box or volume is `NotFound`; its backups stay
    /// listable after the volume is gone.
    pub fn list_checkpoints(
        &self,
        subject: Subject<'_>,
        shelf: Shelf,
    ) -> Result<Vec<CheckpointInfo>> {
        subject.validate()?;
        if shelf == Shelf::Checkpoints {
            self.require_live(subject)?;
        }
        let dir = subject.shelf(shelf);
        let mut out = Vec::new();
        for name in pool::list_subvolumes(&self.abs(&dir))? {
            let rel = dir.join(&name);
            let m = self.read_meta(&rel).unwrap_or_default();
            let size = self.size_of(&rel)?;
            let born = sys::creation_time(&self.abs(&rel))?;
            out.push((
                born,
                CheckpointInfo {
                    name,
                    size,
                    created: m.created,
                    description: m.description,
                },
            ));
        }
        // btrfs keeps creation times in nanoseconds; the RFC3339 text has whole seconds only.
        out.sort_by(|a, b| (a.0, &a.1.name).cmp(&(b.0, &b.1.name)));
        let out = out.into_iter().map(|(_, c)| c).collect();
        Ok(out)
    }

    /// The most recent checkpoint, if any.
    pub fn latest_checkpoint(&self, subject: Subject<'_>) -> Result<Option<String>> {
        subject.validate()?;
        let dir = subject.shelf(Shelf::Checkpoints);
        let mut best: Option<((i64, i64), String)> = None;
        for name in pool::list_subvolumes(&self.abs(&dir))? {
            let born = sys::creation_time(&self.abs(dir.join(&name)))?;
            if best.as_ref().is_none_or(|(b, n)| (born, &name) > (*b, n)) {
                best = Some((born, name));
            }
        }
        Ok(best.map(|(_, n)| n))
    }

    pub(crate) fn require_checkpoint(
        &self,
        subject: Subject<'_>,
        shelf: Shelf,
        name: &str,
    ) -> Result<PathBuf> {
        names::snapshot(name)?;
        let rel = subject.shelf(shelf).join(name);
        if !sys::is_subvolume(&self.abs(&rel))? {
            return Err(Error::NotFound(format!(
                "{} {name:?} not found for {}",
                Subject::noun(shelf),
                subject.describe()
            )));
        }
        Ok(rel)
    }

    /// Replaces the live subvolume with a writable copy of the checkpoint. The copy is built
    /// first; the live one is only moved aside once the copy exists, and recovery rolls forward.
    pub fn restore_checkpoint(&self, subject: Subject<'_>, shelf: Shelf, name: &str) -> Result<()> {
        let _g = self.lock();
        subject.validate()?;
        let rel = self.require_checkpoint(subject, shelf, name)?;
        let live = subject.live();
        if shelf == Shelf::Checkpoints {
            self.require_live(subject)?;
        }
        self.run(Intent::new("restore", &live), |work| {
            self.step("restore: begin")?;
            let staged = work.stage(&live, "new")?;
            sys::snapshot(&self.abs(&rel), &staged, false)?;
            self.step("restore: copy built")?;
            if self.read_meta(&live).is_none() {
                let m = Meta {
                    created: meta::now_rfc3339(),
                    ..Default::default()
                };
                self.write_meta(&live, &m)?;
            }
            self.retire(&live, work, "old")?;
            self.step("restore: live moved aside")?;
            // One directory sync makes both renames durable; recovery handles either half.
            self.publish(&staged, &live)?;
            self.step("restore: swapped")
        })
    }

    /// Deletes a checkpoint; deleting a missing one succeeds.
    pub fn delete_checkpoint(&self, subject: Subject<'_>, shelf: Shelf, name: &str) -> Result<()> {
        let _g = self.lock();
        subject.validate()?;
        names::snapshot(name)?;
        let rel = subject.shelf(shelf).join(name);
        self.run(Intent::new("delete-checkpoint", &rel), |work| {
            self.step("delete-checkpoint: begin")?;
            self.retire(&rel, work, "old")?;
            self.step("delete-checkpoint: moved aside")?;
            meta::remove(&self.meta_path(&rel))?;
            self.step("delete-checkpoint: forgotten")
        })
    }
}
