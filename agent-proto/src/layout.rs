//! Where a node's pool keeps what, and where the runner container sees it.
//!
//! The agent lays the pool out; the operator mounts parts of it into a box's Pod by host path,
//! and both bind the same places into the runner container. These names are the contract between
//! them, so they are spelled here once.
//!
//! Under the pool directory:
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
//! meta/<same path>.meta, meta/aliases/<base>.meta   sidecars
//! tmp/<op-id>/                            work directories of operations in flight
//! ```
//!
//! The path helpers return paths relative to the pool directory; join them onto it.

use std::path::PathBuf;

pub const BASES: &str = "bases";
pub const ROOTS: &str = "roots";
pub const CHECKPOINTS: &str = "checkpoints";
pub const VOLUMES: &str = "volumes";
pub const VOLUME_CHECKPOINTS: &str = "volume-checkpoints";
pub const VOLUME_BACKUPS: &str = "volume-backups";
pub const SYSTEM: &str = "system";
/// Per-project system volumes, under [`SYSTEM`].
pub const PROJECT_SYSTEM: &str = "system/projects";
pub const META: &str = "meta";
pub const TMP: &str = "tmp";

/// Every top-level directory of a pool.
pub const TOP_DIRS: [&str; 9] = [
    BASES,
    ROOTS,
    CHECKPOINTS,
    VOLUMES,
    VOLUME_CHECKPOINTS,
    VOLUME_BACKUPS,
    SYSTEM,
    META,
    TMP,
];

/// The top-level directories that hold subvolumes (everything but the sidecars and work dirs).
pub const SUBVOLUME_DIRS: [&str; 7] = [
    BASES,
    ROOTS,
    CHECKPOINTS,
    VOLUMES,
    VOLUME_CHECKPOINTS,
    VOLUME_BACKUPS,
    SYSTEM,
];

/// Global system volumes, behind `/box/bin` and `/box/all`.
pub const GLOBAL_SYSTEM_VOLUMES: [&str; 2] = ["box-bin", "box-all"];
/// Per-project system volumes, behind `/box/proj` and `/home`.
pub const PROJECT_SYSTEM_VOLUMES: [&str; 2] = ["box-proj", "home"];

/// A box's root: `roots/<project>/<box>`.
pub fn root(project: &str, name: &str) -> PathBuf {
    [ROOTS, project, name].iter().collect()
}

/// A data volume: `volumes/<project>/<vol>`.
pub fn volume(project: &str, vol: &str) -> PathBuf {
    [VOLUMES, project, vol].iter().collect()
}

/// A system volume as `project` sees it: the global ones are shared by every project.
pub fn system_volume(project: &str, vol: &str) -> PathBuf {
    if GLOBAL_SYSTEM_VOLUMES.contains(&vol) {
        [SYSTEM, vol].iter().collect()
    } else {
        [PROJECT_SYSTEM, project, vol].iter().collect()
    }
}

/// The box root inside the runner container, in both modes.
pub const BOX_ROOT: &str = "/volumes";
/// The per-box directory inside the runner container (the local runtime keeps runner.json
/// there).
pub const BOX_DIR: &str = "/forkr";
/// The runner's scratch directory, behind the box's /tmp and /run: under [`BOX_DIR`].
pub const SCRATCH_DIR: &str = "/forkr/scratch";
/// System volumes inside the runner container: `/forkr-system/<name>`.
pub const SYSTEM_DIR: &str = "/forkr-system";
/// Data volumes inside the runner container: `/forkr-data/<index>`.
pub const DATA_DIR: &str = "/forkr-data";

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn paths_are_relative_to_the_pool() {
        assert_eq!(root("team", "web"), Path::new("roots/team/web"));
        assert_eq!(volume("team", "data"), Path::new("volumes/team/data"));
        assert_eq!(
            system_volume("team", "box-bin"),
            Path::new("system/box-bin")
        );
        assert_eq!(
            system_volume("team", "home"),
            Path::new("system/projects/team/home")
        );
        assert!(root("team", "web").is_relative());
        assert!(Path::new(SCRATCH_DIR).starts_with(BOX_DIR));
    }
}
