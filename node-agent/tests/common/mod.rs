//! Shared fixtures: every test gets its own loopback btrfs, removed even when the test fails.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::Write;
use std::path::Path;

use forkr_node_agent::Pool;
use forkr_node_agent::pool::import::ImportOptions;
use forkr_node_agent::pool::loopback::Loopback;

/// A pool on a private loopback btrfs. Field order matters: the pool closes before the unmount.
pub struct TestPool {
    pub pool: Pool,
    pub lb: Loopback,
}

impl TestPool {
    pub fn new() -> TestPool {
        let lb = Loopback::scratch(512 << 20).expect("loopback btrfs (needs root)");
        let pool = Pool::open(lb.path()).expect("open pool");
        TestPool { pool, lb }
    }

    /// Simulates an agent restart on the same disk.
    pub fn restart(&mut self) {
        self.pool = Pool::open(self.lb.path()).expect("reopen pool");
    }

    /// Imports a small amd64-looking base under `name`.
    pub fn base(&self, name: &str) -> String {
        self.pool
            .import_base(
                name,
                &rootfs_tar(&[("etc/hostname", b"base\n")])[..],
                &ImportOptions::default(),
            )
            .expect("import base")
    }

    /// Names of the entries left under tmp/.
    pub fn debris(&self) -> Vec<String> {
        std::fs::read_dir(self.lb.path().join("tmp"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }
}

/// An ELF header claiming the given machine (62 = x86-64, 183 = aarch64).
pub fn elf(machine: u16) -> Vec<u8> {
    let mut h = vec![0u8; 128];
    h[..4].copy_from_slice(b"\x7fELF");
    h[4] = 2;
    h[5] = 1;
    h[18..20].copy_from_slice(&machine.to_le_bytes());
    h
}

/// A tar builder over a gzip encoder, with helpers for the entry kinds tests need.
pub struct TarGz {
    pub b: tar::Builder<flate2::write::GzEncoder<Vec<u8>>>,
}

impl TarGz {
    pub fn new() -> TarGz {
        TarGz {
            b: tar::Builder::new(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::fast(),
            )),
        }
    }

    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h
    }

    /// Writes the name bytes raw, so tests can build hostile names the builder would refuse.
    fn raw_name(h: &mut tar::Header, name: &str) {
        let gnu = h.as_gnu_mut().unwrap();
        gnu.name = [0; 100];
        gnu.name[..name.len()].copy_from_slice(name.as_bytes());
    }

    pub fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Directory, mode, 0);
        Self::raw_name(&mut h, path);
        h.set_cksum();
        self.b.append(&h, &[][..]).unwrap();
        self
    }

    pub fn file(&mut self, path: &str, data: &[u8]) -> &mut Self {
        self.file_owned(path, data, 0o644, 0, 0)
    }

    pub fn file_owned(
        &mut self,
        path: &str,
        data: &[u8],
        mode: u32,
        uid: u64,
        gid: u64,
    ) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Regular, mode, data.len() as u64);
        h.set_uid(uid);
        h.set_gid(gid);
        Self::raw_name(&mut h, path);
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }

    pub fn link(&mut self, kind: tar::EntryType, path: &str, target: &str) -> &mut Self {
        let mut h = Self::header(kind, 0o777, 0);
        Self::raw_name(&mut h, path);
        let gnu = h.as_gnu_mut().unwrap();
        gnu.linkname = [0; 100];
        gnu.linkname[..target.len()].copy_from_slice(target.as_bytes());
        h.set_cksum();
        self.b.append(&h, &[][..]).unwrap();
        self
    }

    pub fn xattr_file(&mut self, path: &str, data: &[u8], key: &str, value: &str) -> &mut Self {
        let record = format!("SCHILY.xattr.{key}={value}\n");
        let mut len = record.len() + 2;
        while format!("{len} {record}").len() != len {
            len += 1;
        }
        let line = format!("{len} {record}");
        let mut pax = Self::header(tar::EntryType::XHeader, 0o644, line.len() as u64);
        Self::raw_name(&mut pax, "PaxHeader");
        pax.set_cksum();
        self.b.append(&pax, line.as_bytes()).unwrap();
        self.file(path, data)
    }

    pub fn finish(self) -> Vec<u8> {
        let enc = self.b.into_inner().unwrap();
        enc.finish().unwrap()
    }
}

/// A minimal usr-merged amd64 rootfs plus extra files.
pub fn rootfs_tar(extra: &[(&str, &[u8])]) -> Vec<u8> {
    let mut t = TarGz::new();
    t.dir("./", 0o755)
        .dir("usr/", 0o755)
        .dir("usr/bin/", 0o755)
        .dir("etc/", 0o755);
    t.link(tar::EntryType::Symlink, "bin", "usr/bin");
    t.file_owned("usr/bin/dash", &elf(62), 0o755, 0, 0);
    t.link(tar::EntryType::Symlink, "usr/bin/sh", "dash");
    for (p, d) in extra {
        t.file(p, d);
    }
    t.finish()
}

pub fn write_file(path: &Path, data: &str) {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).unwrap();
    }
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(data.as_bytes()).unwrap();
}
