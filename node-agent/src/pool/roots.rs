//! Box roots: writable snapshots of a base, forks of another root, deletion.

use std::path::{Path, PathBuf};

use super::names;
use crate::error::{Error, Result};
use crate::pool::checkpoint::{Shelf, Subject};
use crate::pool::meta::{self, Meta};
use crate::pool::{self, Intent, PROJECT_SYSTEM_VOLUMES, Pool};
use crate::sys;

/// A box root as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootInfo {
    pub project: String,
    pub name: String,
    /// The base version the root descends from.
    pub base: Option<String>,
    pub origin: Option<String>,
    pub created: String,
}

/// The data volume a fork gives the new box: `box-<box>-<vol>`.
pub fn fork_volume_name(new_box: &str, vol: &str) -> String {
    format!("box-{new_box}-{vol}")
}

impl Pool {
    /// Absolute path of a box's live root.
    pub fn root_path(&self, project: &str, name: &str) -> Result<PathBuf> {
        let subject = Subject::Root { project, name };
        self.require_live(subject)?;
        Ok(self.abs(subject.live()))
    }

    /// Creates a box root as a writable snapshot of a base (alias or exact version). Creating it
    /// again from the same base version succeeds without change.
    pub fn create_root(&self, project: &str, name: &str, base: &str) -> Result<RootInfo> {
        let subject = Subject::Root { project, name };
        subject.validate()?;
        let _g = self.lock();
        let version = self.resolve_base(base)?;
        let rel = subject.live();
        if let Some(existing) = self.existing_root(project, name)? {
            if existing.base.as_deref() == Some(version.as_str())
                && existing.origin.as_deref() == Some(&format!("base:{version}"))
            {
                return Ok(existing);
            }
            return Err(Error::AlreadyExists(format!(
                "box {project}/{name} already exists"
            )));
        }
        let m = Meta {
            created: meta::now_rfc3339(),
            base: Some(version.clone()),
            origin: Some(format!("base:{version}")),
            ..Default::default()
        };
        self.ensure_project_locked(project)?;
        self.run(Intent::new("create-root", &rel), |work| {
            self.step("create-root: begin")?;
            self.write_meta(&rel, &m)?;
            self.step("create-root: described")?;
            let base = self.abs(Path::new("bases").join(&version));
            self.publish_snapshot(work, &base, &rel, false)?;
            self.step("create-root: published")
        })?;
        Ok(root_info(project, name, m))
    }

    /// Forks `from` into a new box in `project`, cloning each listed non-system data volume of the
    /// source project into `box-<name>-<vol>`. Retrying after any failure completes the fork.
    pub fn fork_root(
        &self,
        from_project: &str,
        from: &str,
        project: &str,
        name: &str,
        volumes: &[String],
    ) -> Result<RootInfo> {
        let source = Subject::Root {
            project: from_project,
            name: from,
        };
        let subject = Subject::Root { project, name };
        subject.validate()?;
        let _g = self.lock();
        self.require_live(source)?;
        let origin = format!("fork:{from_project}/{from}");
        if let Some(existing) = self.existing_root(project, name)? {
            if existing.origin.as_deref() == Some(origin.as_str()) {
                return Ok(existing);
            }
            return Err(Error::AlreadyExists(format!(
                "box {project}/{name} already exists"
            )));
        }
        let clones: Vec<&String> = volumes
            .iter()
            .filter(|v| {
                !PROJECT_SYSTEM_VOLUMES.contains(&v.as_str())
                    && !pool::GLOBAL_SYSTEM_VOLUMES.contains(&v.as_str())
            })
            .collect();
        for vol in &clones {
            self.require_live(Subject::Volume {
                project: from_project,
                name: vol,
            })?;
            names::component("volume", &fork_volume_name(name, vol))?;
        }
        let source_meta = self.read_meta(&source.live()).unwrap_or_default();
        let m = Meta {
            created: meta::now_rfc3339(),
            base: source_meta.base,
            origin: Some(origin),
            ..Default::default()
        };
        let rel = subject.live();
        self.ensure_project_locked(project)?;
        self.run(Intent::new("fork", &rel), |work| {
            self.step("fork: begin")?;
            for vol in &clones {
                self.clone_volume(
                    from_project,
                    vol,
                    project,
                    &fork_volume_name(name, vol),
                    work,
                )?;
                self.step("fork: volume cloned")?;
            }
            self.write_meta(&rel, &m)?;
            self.step("fork: described")?;
            self.publish_snapshot(work, &self.abs(source.live()), &rel, false)?;
            self.step("fork: published")
        })?;
        Ok(root_info(project, name, m))
    }

    fn clone_volume(
        &self,
        from_project: &str,
        vol: &str,
        project: &str,
        new_vol: &str,
        work: &pool::Work<'_>,
    ) -> Result<()> {
        let rel = Subject::Volume {
            project,
            name: new_vol,
        }
        .live();
        if sys::is_subvolume(&self.abs(&rel))? {
            // Published by an earlier attempt of this same fork.
            return Ok(());
        }
        let m = Meta {
            created: meta::now_rfc3339(),
            origin: Some(format!("fork:{from_project}/{vol}")),
            ..Default::default()
        };
        self.write_meta(&rel, &m)?;
        let src = self.abs(
            Subject::Volume {
                project: from_project,
                name: vol,
            }
            .live(),
        );
        self.publish_snapshot(work, &src, &rel, false)
    }

    /// Deletes a box's root and its checkpoints. Deleting a missing box succeeds. Returns without
    /// waiting for btrfs to free the space.
    pub fn delete_root(&self, project: &str, name: &str) -> Result<()> {
        let subject = Subject::Root { project, name };
        subject.validate()?;
        let _g = self.lock();
        let rel = subject.live();
        let shelf = subject.shelf(Shelf::Checkpoints);
        self.run(Intent::new("delete-root", &rel), |work| {
            self.step("delete-root: begin")?;
            self.retire(&rel, work, "root")?;
            self.step("delete-root: root moved aside")?;
            self.retire(&shelf, work, "checkpoints")?;
            self.step("delete-root: checkpoints moved aside")?;
            meta::remove(&self.meta_path(&rel))?;
            pool::delete_tree(&self.abs("meta").join(&shelf))?;
            self.step("delete-root: forgotten")
        })
    }

    /// All box roots of a project, by name.
    pub fn list_roots(&self, project: &str) -> Result<Vec<RootInfo>> {
        names::component("project", project)?;
        let mut out = Vec::new();
        for name in pool::list_subvolumes(&self.abs(Path::new("roots").join(project)))? {
            let m = self
                .read_meta(&Path::new("roots").join(project).join(&name))
                .unwrap_or_default();
            out.push(root_info(project, &name, m));
        }
        Ok(out)
    }

    pub(crate) fn existing_root(&self, project: &str, name: &str) -> Result<Option<RootInfo>> {
        let rel = Subject::Root { project, name }.live();
        if !sys::is_subvolume(&self.abs(&rel))? {
            return Ok(None);
        }
        Ok(Some(root_info(
            project,
            name,
            self.read_meta(&rel).unwrap_or_default(),
        )))
    }
}

fn root_info(project: &str, name: &str, m: Meta) -> RootInfo {
    RootInfo {
        project: project.to_string(),
        name: name.to_string(),
        base: m.base,
        origin: m.origin,
        created: m.created,
    }
}
