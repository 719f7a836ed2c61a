//! Test networks: a /24 under 10.200.0.0/13 that no other process on the machine holds, so
//! that test runtimes and servers running side by side never hand out the same addresses.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// Where the leases are kept: in /run, so a reboot frees whatever a killed test left.
const LEASES: &str = "/run/forkr-test-subnets";

/// A /24 taken by creating its file exclusively, given back on drop.
#[derive(Debug)]
pub struct SubnetLease {
    pub subnet: Ipv4Addr,
    file: PathBuf,
}

impl SubnetLease {
    /// The first free /24, starting at a place that depends on the process id.
    pub fn take() -> std::io::Result<SubnetLease> {
        let dir = Path::new(LEASES);
        std::fs::create_dir_all(dir)?;
        let start = std::process::id() as usize;
        for i in 0..2000 {
            let n = (start + i * 7) % 2000;
            // n < 2000, so both octets fit: 200 + 7 and 249 at most.
            let subnet = Ipv4Addr::new(10, 200 + (n / 250) as u8, (n % 250) as u8, 0);
            let file = dir.join(subnet.to_string());
            let made = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&file);
            if made.is_ok() {
                return Ok(SubnetLease { subnet, file });
            }
        }
        Err(std::io::Error::other(format!(
            "no free test subnet in {LEASES}"
        )))
    }
}

impl Drop for SubnetLease {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
    }
}
