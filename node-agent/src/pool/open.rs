//! Opening a pool: its layout created, then a full repair as if every earlier owner had crashed.
//! It lives apart from the pool's core so that the core never depends on the objects built on
//! it (base aliases are repaired here, not in `mod.rs`): the modules form a tree, not a cycle.

use std::collections::HashSet;
use std::fs;
use std::path::Path;
use std::sync::Mutex;

use super::fault::Faults;
use super::{GLOBAL_SYSTEM_VOLUMES, Pool, TOP_DIRS, bases, layout, sweep_staging};
use crate::error::{Error, IoContext, Result};
use crate::sys;

impl Pool {
    /// Opens the pool at `dir`, creating its layout, and repairs what a crash left behind.
    /// Fails with a clear message when `dir` is not on btrfs.
    pub fn open(dir: impl AsRef<Path>) -> Result<Pool> {
        let dir = dir.as_ref().to_path_buf();
        if !dir.is_dir() {
            return Err(Error::NotFound(format!(
                "pool directory {} does not exist",
                dir.display()
            )));
        }
        if !sys::is_btrfs(&dir)? {
            return Err(Error::FailedPrecondition(format!(
                "pool directory {} is not on a btrfs filesystem; mount one there or use a loopback pool",
                dir.display()
            )));
        }
        for top in TOP_DIRS {
            let p = dir.join(top);
            fs::create_dir_all(&p).ctx("create", &p)?;
        }
        let pool = Pool {
            dir,
            ops: Mutex::new(()),
            in_flight: Mutex::new(HashSet::new()),
            faults: Faults::default(),
        };
        pool.recover_at_open()?;
        let _g = pool.lock();
        for vol in GLOBAL_SYSTEM_VOLUMES {
            pool.ensure_subvolume(&Path::new(layout::SYSTEM).join(vol))?;
        }
        drop(_g);
        Ok(pool)
    }

    /// Full repair when the pool is opened and nothing else runs: work directories, staging
    /// names whose record did not survive, stale sidecars, and aliases.
    fn recover_at_open(&self) -> Result<()> {
        self.recover()?;
        let _g = self.lock();
        for top in layout::SUBVOLUME_DIRS {
            sweep_staging(&self.abs(top), 3)?;
        }
        self.sweep_meta(&self.abs(layout::META), Path::new(""))?;
        bases::repair_aliases(self)
    }
}
