//! Sizes without quota groups.
//!
//! Qgroups make every snapshot and delete pay for accounting and misbehave when snapshots churn,
//! so the pool never enables them. A size is the disk usage of the subvolume's tree, counting each
//! inode once (hard links) from `st_blocks`: what `du` reports. Extents shared with other
//! snapshots are counted in each of them, so sizes do not add up to the disk usage. The walk costs
//! time proportional to the tree, so the result is cached in the sidecar together with the
//! subvolume's generation; read-only snapshots never change generation, and a live root is
//! re-measured only after it changed, in a read-only snapshot of itself so that the box cannot
//! steer the walk outside its tree.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::error::{IoContext, Result};
use crate::pool::{Intent, Pool};
use crate::sys;

/// Disk usage of the tree at `path`, each inode counted once, nested subvolumes included.
pub fn disk_usage(path: &Path) -> Result<u64> {
    let mut seen = HashSet::new();
    let mut total = 0u64;
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let md = fs::symlink_metadata(&dir).ctx("stat", &dir)?;
        if seen.insert((md.dev(), md.ino())) {
            total += md.blocks() * 512;
        }
        for entry in fs::read_dir(&dir).ctx("read", &dir)? {
            let entry = entry.ctx("read", &dir)?;
            let ft = entry.file_type().ctx("stat", &entry.path())?;
            if ft.is_dir() {
                stack.push(entry.path());
                continue;
            }
            let md = entry.metadata().ctx("stat", &entry.path())?;
            if md.nlink() == 1 || seen.insert((md.dev(), md.ino())) {
                total += md.blocks() * 512;
            }
        }
    }
    Ok(total)
}

impl Pool {
    /// Size of the subvolume at `rel`, from the sidecar cache when still valid.
    pub(crate) fn size_of(&self, rel: &Path) -> Result<u64> {
        let abs = self.abs(rel);
        let generation = sys::change_generation(&abs)?;
        if let Some(m) = self.read_meta(rel)
            && m.size_generation == Some(generation)
            && let Some(size) = m.size
        {
            return Ok(size);
        }
        let size = if sys::is_read_only(&abs)? {
            disk_usage(&abs)?
        } else {
            // A box can swap a directory for a symlink to the host while we walk its live tree,
            // so writable subvolumes are measured in a frozen copy.
            self.run(Intent::new("measure", rel), |work| {
                let frozen = work.dir.join("frozen");
                sys::snapshot(&abs, &frozen, true)?;
                disk_usage(&frozen)
            })?
        };
        let _g = self.lock();
        if let Some(mut m) = self.read_meta(rel)
            && sys::is_subvolume(&abs)?
        {
            m.size = Some(size);
            m.size_generation = Some(generation);
            self.write_meta(rel, &m)?;
        }
        Ok(size)
    }
}
