//! Loopback btrfs pools: an image file formatted and mounted through a loop device. Local mode
//! uses one when its pool directory is not on btrfs; tests make one each.

use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};
use crate::sys;

/// A mounted loopback btrfs. Dropping it unmounts (which frees the loop device) and, when it
/// owns them, removes the image and the mount point; this also runs when a test panics.
pub struct Loopback {
    image: PathBuf,
    mountpoint: PathBuf,
    remove_on_drop: bool,
    _scratch: Option<tempfile::TempDir>,
}

impl Loopback {
    /// Mounts `image` at `mountpoint`, creating and formatting a sparse image of `size` bytes
    /// first when it does not exist. The image and mount point are kept on drop.
    pub fn mount_image(image: &Path, size: u64, mountpoint: &Path) -> Result<Loopback> {
        if !image.exists() {
            let f = std::fs::File::create(image).ctx("create", image)?;
            f.set_len(size).ctx("size", image)?;
            drop(f);
            sys::mkfs_btrfs(image)?;
        }
        std::fs::create_dir_all(mountpoint).ctx("create", mountpoint)?;
        sys::mount_loop(image, mountpoint)?;
        Ok(Loopback {
            image: image.to_path_buf(),
            mountpoint: mountpoint.to_path_buf(),
            remove_on_drop: false,
            _scratch: None,
        })
    }

    /// A throwaway pool of `size` bytes in a fresh temporary directory, removed on drop.
    pub fn scratch(size: u64) -> Result<Loopback> {
        let dir = tempfile::Builder::new()
            .prefix("forkr-pool-")
            .tempdir()
            .ctx("create temp dir in", &std::env::temp_dir())?;
        let image = dir.path().join("pool.img");
        let mountpoint = dir.path().join("mnt");
        let mut lb = Loopback::mount_image(&image, size, &mountpoint)?;
        lb.remove_on_drop = true;
        lb._scratch = Some(dir);
        Ok(lb)
    }

    /// Makes sure `dir` is on btrfs, as local mode needs: when it is not, formats (once) a sparse
    /// image `<dir>.img` of `size` bytes and mounts it at `dir`. Returns the mount to keep alive,
    /// or `None` when `dir` already was on btrfs.
    pub fn ensure_btrfs(dir: &Path, size: u64) -> Result<Option<Loopback>> {
        std::fs::create_dir_all(dir).ctx("create", dir)?;
        if sys::is_btrfs(dir)? {
            return Ok(None);
        }
        let image = dir.with_extension("img");
        tracing::info!(image = %image.display(), size, "pool directory is not on btrfs, mounting a loopback image");
        Loopback::mount_image(&image, size, dir).map(Some)
    }

    /// Where the filesystem is mounted.
    pub fn path(&self) -> &Path {
        &self.mountpoint
    }

    /// The backing image file.
    pub fn image(&self) -> &Path {
        &self.image
    }
}

impl Drop for Loopback {
    fn drop(&mut self) {
        if let Err(e) = sys::unmount(&self.mountpoint) {
            tracing::warn!(error = %e, "unmounting loopback pool failed");
        }
        if self.remove_on_drop {
            let _ = std::fs::remove_file(&self.image);
            let _ = std::fs::remove_dir(&self.mountpoint);
        }
    }
}
