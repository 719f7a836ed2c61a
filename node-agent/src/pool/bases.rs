//! Bases: read-only templates with versions and aliases.
//!
//! The first write of a name creates the version with exactly that name; later writes create
//! `<name>-vYYYYMMDDhhmmss`. The alias `<name>` (a sidecar under `meta/aliases/`) points at the
//! newest version. Recovery re-derives every alias from the versions' sidecars, so an alias can
//! never be left pointing at a version a crash did not publish.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::names;
use crate::error::{Error, Result};
use crate::pool::meta::{self, Alias, Meta};
use crate::pool::{self, Intent, Pool, Work};
use crate::sys;

/// One base version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseVersion {
    pub name: String,
    pub version: String,
    pub kind: String,
    pub tag: Option<String>,
    pub builder: Option<String>,
    /// The project that made it: the importing project, or the saved box's.
    pub owner: Option<String>,
    pub parent: Option<String>,
    pub size: u64,
    pub created: String,
}

/// A base name with its newest version, as `base list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseSummary {
    pub name: String,
    pub version: String,
    pub size: u64,
    pub created: String,
}

/// Everything `base show` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseDetails {
    pub name: String,
    pub latest: String,
    pub version_count: usize,
    /// Newest first, filtered by tag when asked.
    pub versions: Vec<BaseVersion>,
}

/// Provenance recorded with a new base version.
#[derive(Debug, Clone, Default)]
pub struct BaseOrigin {
    pub kind: String,
    pub tag: Option<String>,
    pub builder: Option<String>,
    pub owner: Option<String>,
    pub parent: Option<String>,
    pub request_id: Option<String>,
    /// Set for replicas, which keep their origin's time; otherwise now.
    pub created: Option<String>,
    /// Set for replicas: the UUID of the sender's subvolume.
    pub source_uuid: Option<String>,
}

fn alias_rel(name: &str) -> PathBuf {
    Path::new("aliases").join(name)
}

fn base_rel(version: &str) -> PathBuf {
    Path::new("bases").join(version)
}

impl Pool {
    /// The identity a sender's stream must have been computed against for `version` to serve as
    /// the base of an incremental receive: the UUID it was received from, or its own.
    pub fn base_identity(&self, version: &str) -> Result<String> {
        let v = self.resolve_base(version)?;
        if let Some(uuid) = self.read_meta(&base_rel(&v)).and_then(|m| m.source_uuid) {
            return Ok(uuid);
        }
        sys::subvolume_uuid(&self.abs(base_rel(&v)))
    }

    /// Resolves an alias to its newest version, or accepts an exact version name.
    pub fn resolve_base(&self, name: &str) -> Result<String> {
        names::component("base", name)?;
        if let Some(a) = meta::read::<Alias>(&self.meta_path(&alias_rel(name)))
            && sys::is_subvolume(&self.abs(base_rel(&a.target)))?
        {
            return Ok(a.target);
        }
        if sys::is_subvolume(&self.abs(base_rel(name)))? {
            return Ok(name.to_string());
        }
        Err(Error::NotFound(format!("base {name:?} not found")))
    }

    /// Absolute path of a base version (alias or exact).
    pub fn base_path(&self, name: &str) -> Result<PathBuf> {
        Ok(self.abs(base_rel(&self.resolve_base(name)?)))
    }

    fn all_versions(&self) -> Result<Vec<(String, Meta)>> {
        let mut out = Vec::new();
        for v in pool::list_subvolumes(&self.abs("bases"))? {
            let m = self.read_meta(&base_rel(&v)).unwrap_or_default();
            out.push((v, m));
        }
        Ok(out)
    }

    /// Versions grouped by base name, newest first within each name.
    fn versions_by_name(&self) -> Result<BTreeMap<String, Vec<(String, Meta)>>> {
        let mut groups: BTreeMap<String, Vec<(String, Meta)>> = BTreeMap::new();
        for (v, m) in self.all_versions()? {
            let name = m.name.clone().unwrap_or_else(|| v.clone());
            groups.entry(name).or_default().push((v, m));
        }
        for versions in groups.values_mut() {
            versions.sort_by(|a, b| (&b.1.created, &b.0).cmp(&(&a.1.created, &a.0)));
        }
        Ok(groups)
    }

    fn version_name(&self, name: &str) -> Result<String> {
        let taken = |v: &str| -> Result<bool> { sys::is_subvolume(&self.abs(base_rel(v))) };
        let known = self.versions_by_name()?.contains_key(name);
        if !known && !taken(name)? {
            return Ok(name.to_string());
        }
        let mut t = jiff::Timestamp::now();
        loop {
            let stamp = t.strftime("%Y%m%d%H%M%S").to_string();
            let v = format!("{name}-v{stamp}");
            if !taken(&v)? {
                return Ok(v);
            }
            // Two writes within one second: take the next free second so names stay ordered.
            t = t
                .checked_add(jiff::SignedDuration::from_secs(1))
                .map_err(|e| Error::Io {
                    context: "clock".into(),
                    source: std::io::Error::other(e),
                })?;
        }
    }

    pub(crate) fn base_by_request_id(&self, request_id: Option<&str>) -> Result<Option<String>> {
        let Some(rid) = request_id else {
            return Ok(None);
        };
        Ok(self
            .all_versions()?
            .into_iter()
            .find(|(_, m)| m.request_id.as_deref() == Some(rid))
            .map(|(v, _)| v))
    }

    /// Publishes the next version of `name`: writes its sidecar, lets `place` put the read-only
    /// subvolume at the given pool-relative path, and points the alias at it. Called with the
    /// pool lock held.
    pub(crate) fn publish_base(
        &self,
        name: &str,
        origin: &BaseOrigin,
        place: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<String> {
        let version = self.version_name(name)?;
        self.publish_base_as(name, &version, origin, place)
    }

    /// Like `publish_base` with the version name chosen by the caller: a replica keeps the name
    /// (and creation time) its origin node gave it. The alias follows the newest version.
    pub(crate) fn publish_base_as(
        &self,
        name: &str,
        version: &str,
        origin: &BaseOrigin,
        place: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<String> {
        let rel = base_rel(version);
        let m = Meta {
            created: origin.created.clone().unwrap_or_else(meta::now_rfc3339),
            name: Some(name.to_string()),
            kind: Some(origin.kind.clone()),
            tag: origin.tag.clone(),
            builder: origin.builder.clone(),
            owner: origin.owner.clone(),
            parent: origin.parent.clone(),
            request_id: origin.request_id.clone(),
            source_uuid: origin.source_uuid.clone(),
            ..Default::default()
        };
        self.write_meta(&rel, &m)?;
        self.step("base: described")?;
        place(&rel)?;
        self.step("base: published")?;
        self.repair_aliases_locked()?;
        self.step("base: aliased")?;
        Ok(version.to_string())
    }

    /// Saves a box's root as a new read-only base version. The box need not be running.
    pub fn save_base(
        &self,
        name: &str,
        project: &str,
        box_name: &str,
        request_id: Option<&str>,
    ) -> Result<String> {
        names::component("base", name)?;
        let root = self.root_path(project, box_name)?;
        let _g = self.lock();
        if let Some(v) = self.base_by_request_id(request_id)? {
            return Ok(v);
        }
        let parent = self
            .read_meta(&Path::new("roots").join(project).join(box_name))
            .and_then(|m| m.base);
        let origin = BaseOrigin {
            kind: "save".into(),
            builder: Some(format!("box {project}/{box_name}")),
            owner: Some(project.to_string()),
            parent,
            request_id: request_id.map(str::to_string),
            ..Default::default()
        };
        self.run(Intent::new("save-base", base_rel(name)), |work| {
            self.step("save-base: begin")?;
            self.publish_base(name, &origin, |rel| {
                self.publish_snapshot(work, &root, rel, true)
            })
        })
    }

    /// Starts a base import: a work directory holding the parent's snapshot or an empty
    /// subvolume, ready to be extracted into. Returns the resolved parent version.
    pub(crate) fn stage_base(
        &self,
        work: &Work<'_>,
        parent: Option<&str>,
    ) -> Result<(PathBuf, Option<String>)> {
        let staged = work.stage(&base_rel("staged"), "new")?;
        let parent = match parent {
            Some(p) => {
                let _g = self.lock();
                let v = self.resolve_base(p)?;
                sys::snapshot(&self.abs(base_rel(&v)), &staged, false)?;
                Some(v)
            }
            None => {
                sys::create_subvolume(&staged)?;
                None
            }
        };
        Ok((staged, parent))
    }

    /// Lists base names with their newest version.
    pub fn list_bases(&self) -> Result<Vec<BaseSummary>> {
        let mut out = Vec::new();
        for (name, versions) in self.versions_by_name()? {
            let Some((v, m)) = versions.into_iter().next() else {
                continue;
            };
            out.push(BaseSummary {
                size: self.size_of(&base_rel(&v))?,
                name,
                version: v,
                created: m.created,
            });
        }
        Ok(out)
    }

    /// Shows a base's versions, newest first, optionally only those with the given tag.
    pub fn show_base(&self, name: &str, tag: Option<&str>) -> Result<BaseDetails> {
        names::component("base", name)?;
        let groups = self.versions_by_name()?;
        let versions = match groups.get(name) {
            Some(v) => v.clone(),
            None => {
                // An exact version name shows its own family.
                let v = self.resolve_base(name)?;
                let family = self
                    .read_meta(&base_rel(&v))
                    .and_then(|m| m.name)
                    .unwrap_or(v);
                groups.get(&family).cloned().unwrap_or_default()
            }
        };
        let Some((latest, first)) = versions.first().cloned() else {
            return Err(Error::NotFound(format!("base {name:?} not found")));
        };
        let mut rows = Vec::new();
        for (v, m) in &versions {
            if tag.is_some_and(|t| m.tag.as_deref() != Some(t)) {
                continue;
            }
            rows.push(BaseVersion {
                name: m.name.clone().unwrap_or_else(|| v.clone()),
                version: v.clone(),
                kind: m.kind.clone().unwrap_or_else(|| "import".into()),
                tag: m.tag.clone(),
                builder: m.builder.clone(),
                owner: m.owner.clone(),
                parent: m.parent.clone(),
                size: self.size_of(&base_rel(v))?,
                created: m.created.clone(),
            });
        }
        Ok(BaseDetails {
            name: first.name.unwrap_or_else(|| name.to_string()),
            latest,
            version_count: versions.len(),
            versions: rows,
        })
    }

    /// Deletes a base: every version when given its name, one when given an exact version.
    /// Refused while a box root was cloned from a version being deleted.
    pub fn delete_base(&self, name: &str) -> Result<()> {
        names::component("base", name)?;
        let _g = self.lock();
        let groups = self.versions_by_name()?;
        let doomed: Vec<String> = match groups.get(name) {
            Some(vs) => vs.iter().map(|(v, _)| v.clone()).collect(),
            None if sys::is_subvolume(&self.abs(base_rel(name)))? => vec![name.to_string()],
            None => return Ok(()),
        };
        let users = self.base_users(&doomed)?;
        if !users.is_empty() {
            return Err(Error::FailedPrecondition(format!(
                "base {name:?} is in use by {}; delete those boxes first",
                users.join(", ")
            )));
        }
        self.run(Intent::new("delete-base", base_rel(name)), |work| {
            self.step("delete-base: begin")?;
            for v in &doomed {
                self.retire(&base_rel(v), work, v)?;
                meta::remove(&self.meta_path(&base_rel(v)))?;
                self.step("delete-base: version removed")?;
            }
            self.repair_aliases_locked()?;
            self.step("delete-base: aliases repaired")
        })
    }

    /// Boxes (`project/box`) whose root was cloned from one of `versions`.
    fn base_users(&self, versions: &[String]) -> Result<Vec<String>> {
        let mut users = Vec::new();
        let roots = self.abs("roots");
        let Ok(projects) = std::fs::read_dir(&roots) else {
            return Ok(users);
        };
        for project in projects.flatten() {
            let project = project.file_name().to_string_lossy().into_owned();
            for r in self.list_roots(&project)? {
                if r.base.as_ref().is_some_and(|b| versions.contains(b)) {
                    users.push(format!("{}/{}", r.project, r.name));
                }
            }
        }
        Ok(users)
    }

    fn repair_aliases_locked(&self) -> Result<()> {
        let groups = self.versions_by_name()?;
        let alias_dir = self.abs("meta").join("aliases");
        if let Ok(entries) = std::fs::read_dir(&alias_dir) {
            for e in entries.flatten() {
                let file = e.file_name().to_string_lossy().into_owned();
                let name = file.strip_suffix(meta::SUFFIX).unwrap_or(&file);
                if !groups.contains_key(name) {
                    meta::remove(&e.path())?;
                }
            }
        }
        for (name, versions) in groups {
            let Some((newest, _)) = versions.first() else {
                continue;
            };
            let path = self.meta_path(&alias_rel(&name));
            if meta::read::<Alias>(&path).map(|a| a.target) != Some(newest.clone()) {
                meta::write(
                    &path,
                    &Alias {
                        target: newest.clone(),
                    },
                )?;
            }
        }
        Ok(())
    }
}

/// Points every alias at its newest version and drops aliases without versions. The caller holds
/// the pool lock (recovery does).
pub(crate) fn repair_aliases(pool: &Pool) -> Result<()> {
    pool.repair_aliases_locked()
}
