//! Data volumes: persistent subvolumes mounted into boxes, with checkpoints and backups.

use std::path::Path;

use super::names;
use crate::error::{Error, Result};
use crate::pool::checkpoint::{Shelf, Subject};
use crate::pool::meta::{self, Meta};
use crate::pool::{self, GLOBAL_SYSTEM_VOLUMES, Intent, PROJECT_SYSTEM_VOLUMES, Pool};
use crate::sys;

/// One data volume as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeInfo {
    pub name: String,
    pub size: u64,
    pub created: String,
}

fn refuse_system(name: &str) -> Result<()> {
    if PROJECT_SYSTEM_VOLUMES.contains(&name) || GLOBAL_SYSTEM_VOLUMES.contains(&name) {
        return Err(Error::InvalidArgument(format!(
            "volume name {name:?} is reserved for a system volume"
        )));
    }
    Ok(())
}

impl Pool {
    /// Creates an empty data volume; creating an existing one succeeds without change.
    pub fn create_volume(&self, project: &str, name: &str) -> Result<()> {
        let subject = Subject::Volume { project, name };
        subject.validate()?;
        refuse_system(name)?;
        let _g = self.lock();
        let rel = subject.live();
        if sys::is_subvolume(&self.abs(&rel))? {
            return Ok(());
        }
        self.run(Intent::new("create-volume", &rel), |work| {
            self.step("create-volume: begin")?;
            let staged = work.stage(&rel, "new")?;
            sys::create_subvolume(&staged)?;
            self.step("create-volume: created")?;
            self.write_meta(
                &rel,
                &Meta {
                    created: meta::now_rfc3339(),
                    ..Default::default()
                },
            )?;
            self.step("create-volume: described")?;
            self.publish(&staged, &rel)?;
            self.step("create-volume: published")
        })
    }

    /// Deletes a data volume and its checkpoints; its backups stay. Missing is success.
    pub fn delete_volume(&self, project: &str, name: &str) -> Result<()> {
        let subject = Subject::Volume { project, name };
        subject.validate()?;
        let _g = self.lock();
        let rel = subject.live();
        let shelf = subject.shelf(Shelf::Checkpoints);
        self.run(Intent::new("delete-volume", &rel), |work| {
            self.step("delete-volume: begin")?;
            self.retire(&rel, work, "volume")?;
            self.step("delete-volume: moved aside")?;
            self.retire(&shelf, work, "checkpoints")?;
            self.step("delete-volume: checkpoints moved aside")?;
            meta::remove(&self.meta_path(&rel))?;
            pool::delete_tree(&self.abs("meta").join(&shelf))?;
            self.step("delete-volume: forgotten")
        })
    }

    /// The project's data volumes with their sizes (system volumes are not listed).
    pub fn list_volumes(&self, project: &str) -> Result<Vec<VolumeInfo>> {
        names::component("project", project)?;
        let dir = Path::new("volumes").join(project);
        let mut out = Vec::new();
        for name in pool::list_subvolumes(&self.abs(&dir))? {
            let rel = dir.join(&name);
            out.push(VolumeInfo {
                size: self.size_of(&rel)?,
                created: self.read_meta(&rel).unwrap_or_default().created,
                name,
            });
        }
        Ok(out)
    }

    /// Absolute path of a data volume.
    pub fn volume_path(&self, project: &str, name: &str) -> Result<std::path::PathBuf> {
        let subject = Subject::Volume { project, name };
        self.require_live(subject)?;
        Ok(self.abs(subject.live()))
    }
}
