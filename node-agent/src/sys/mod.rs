//! The one seam to the kernel and the host: every btrfs call, ioctl, mount, confined path walk,
//! process call and host program goes through here, so the rest of the crate reads as logic.

mod btrfs;
mod in_root;
pub mod netlink;

pub use btrfs::*;
pub use in_root::*;
