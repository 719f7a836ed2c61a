//! A reader for btrfs send streams (v1), enough to learn which paths changed between two
//! snapshots. With `NO_FILE_DATA` the kernel replaces file data by `UPDATE_EXTENT` records, so the
//! stream stays small however many bytes changed.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

const MAGIC: &[u8; 13] = b"btrfs-stream\0";

/// Command numbers of send stream v1.
pub mod cmd {
    pub const SUBVOL: u16 = 1;
    pub const SNAPSHOT: u16 = 2;
    pub const MKFILE: u16 = 3;
    pub const MKDIR: u16 = 4;
    pub const MKNOD: u16 = 5;
    pub const MKFIFO: u16 = 6;
    pub const MKSOCK: u16 = 7;
    pub const SYMLINK: u16 = 8;
    pub const RENAME: u16 = 9;
    pub const LINK: u16 = 10;
    pub const UNLINK: u16 = 11;
    pub const RMDIR: u16 = 12;
    pub const SET_XATTR: u16 = 13;
    pub const REMOVE_XATTR: u16 = 14;
    pub const WRITE: u16 = 15;
    pub const CLONE: u16 = 16;
    pub const TRUNCATE: u16 = 17;
    pub const CHMOD: u16 = 18;
    pub const CHOWN: u16 = 19;
    pub const UTIMES: u16 = 20;
    pub const END: u16 = 21;
    pub const UPDATE_EXTENT: u16 = 22;
}

/// Attribute numbers of send stream v1.
pub mod attr {
    pub const UUID: u16 = 1;
    pub const SIZE: u16 = 4;
    pub const MODE: u16 = 5;
    pub const UID: u16 = 6;
    pub const GID: u16 = 7;
    pub const RDEV: u16 = 8;
    pub const MTIME: u16 = 10;
    pub const ATIME: u16 = 11;
    pub const XATTR_NAME: u16 = 13;
    pub const XATTR_DATA: u16 = 14;
    pub const PATH: u16 = 15;
    pub const PATH_TO: u16 = 16;
    pub const PATH_LINK: u16 = 17;
    pub const FILE_OFFSET: u16 = 18;
    pub const DATA: u16 = 19;
    pub const CLONE_UUID: u16 = 20;
    pub const CLONE_PATH: u16 = 22;
    pub const CLONE_OFFSET: u16 = 23;
    pub const CLONE_LEN: u16 = 24;
}

/// v1 commands are at most a few hundred KiB; anything far larger is a corrupt or hostile stream.
const MAX_COMMAND: usize = 16 << 20;

/// What the stream said about one path.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Touch {
    /// Data was written, cloned or truncated.
    pub content: bool,
    /// Mode, owner or extended attributes were set.
    pub attrs: bool,
}

/// One command: its number and its attributes as (type, value range in `body`).
#[derive(Debug, Default)]
pub struct Command {
    pub kind: u16,
    body: Vec<u8>,
    attrs: Vec<(u16, std::ops::Range<usize>)>,
}

impl Command {
    /// The raw value of an attribute.
    pub fn attr(&self, ty: u16) -> Option<&[u8]> {
        self.attrs
            .iter()
            .find(|(t, _)| *t == ty)
            .map(|(_, r)| &self.body[r.clone()])
    }

    /// A path attribute, as stored (relative to the subvolume).
    pub fn path(&self, ty: u16) -> Option<PathBuf> {
        self.attr(ty)
            .map(|v| PathBuf::from(std::ffi::OsStr::from_bytes(v)))
    }

    /// A little-endian integer attribute.
    pub fn u64(&self, ty: u16) -> io::Result<u64> {
        let v = self
            .attr(ty)
            .ok_or_else(|| bad(&format!("command {} lacks attribute {ty}", self.kind)))?;
        match v.len() {
            8 => Ok(u64::from_le_bytes([
                v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7],
            ])),
            4 => Ok(u64::from(u32::from_le_bytes([v[0], v[1], v[2], v[3]]))),
            _ => Err(bad("integer attribute of odd size")),
        }
    }

    /// A timespec attribute: (seconds, nanoseconds).
    pub fn time(&self, ty: u16) -> io::Result<(i64, i64)> {
        let v = self.attr(ty).ok_or_else(|| bad("missing time"))?;
        if v.len() != 12 {
            return Err(bad("time attribute of odd size"));
        }
        let secs = u64::from_le_bytes([v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]]);
        let nsecs = u32::from_le_bytes([v[8], v[9], v[10], v[11]]);
        Ok((secs as i64, i64::from(nsecs)))
    }
}

fn bad(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("malformed send stream: {what}"),
    )
}

/// Checks the stream header.
pub fn read_header(r: &mut impl Read) -> io::Result<()> {
    let mut magic = [0u8; 17];
    r.read_exact(&mut magic)?;
    if &magic[..13] != MAGIC {
        return Err(bad("missing magic"));
    }
    Ok(())
}

/// Reads the next command; `None` at a clean end of input.
pub fn read_command(r: &mut impl Read) -> io::Result<Option<Command>> {
    let mut head = [0u8; 10];
    match r.read_exact(&mut head) {
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        other => other?,
    }
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if len > MAX_COMMAND {
        return Err(bad("command too large"));
    }
    let kind = u16::from_le_bytes([head[4], head[5]]);
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    let mut attrs = Vec::new();
    let mut at = 0;
    while at + 4 <= body.len() {
        let ty = u16::from_le_bytes([body[at], body[at + 1]]);
        let n = u16::from_le_bytes([body[at + 2], body[at + 3]]) as usize;
        if at + 4 + n > body.len() {
            return Err(bad("attribute overruns command"));
        }
        attrs.push((ty, at + 4..at + 4 + n));
        at += 4 + n;
    }
    Ok(Some(Command { kind, body, attrs }))
}

/// Orphans are the kernel's temporary top-level names `o<ino>-<gen>-<seq>` for inodes whose final
/// name is not settled yet.
fn is_orphan(path: &Path) -> bool {
    let mut parts = path.components();
    let Some(Component::Normal(first)) = parts.next() else {
        return false;
    };
    let Some(rest) = first.to_str().and_then(|s| s.strip_prefix('o')) else {
        return false;
    };
    let nums: Vec<&str> = rest.split('-').collect();
    nums.len() == 3
        && nums
            .iter()
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Paths touched by a send stream, keyed by their path in either snapshot, with what happened.
pub fn touched_paths(stream: impl Read) -> io::Result<BTreeMap<PathBuf, Touch>> {
    let mut r = BufReader::with_capacity(1 << 16, stream);
    read_header(&mut r)?;
    let mut touched: BTreeMap<PathBuf, Touch> = BTreeMap::new();
    // An existing inode moved under an orphan name (to be deleted or renamed later) keeps being
    // reported under its original path.
    let mut orphan_origin: HashMap<PathBuf, PathBuf> = HashMap::new();
    let translate = |p: &Path, origins: &HashMap<PathBuf, PathBuf>| -> Option<PathBuf> {
        if !is_orphan(p) {
            return Some(p.to_path_buf());
        }
        let mut parts = p.components();
        let head = PathBuf::from(parts.next()?.as_os_str());
        origins.get(&head).map(|orig| orig.join(parts.as_path()))
    };
    while let Some(c) = read_command(&mut r)? {
        if c.kind == cmd::END {
            break;
        }
        let Some(path) = c.path(attr::PATH) else {
            continue;
        };
        let mut touch = |p: Option<PathBuf>, content: bool, attrs: bool| {
            if let Some(p) = p {
                let t = touched.entry(p).or_default();
                t.content |= content;
                t.attrs |= attrs;
            }
        };
        match c.kind {
            cmd::RENAME => {
                let Some(to) = c.path(attr::PATH_TO) else {
                    continue;
                };
                let from = translate(&path, &orphan_origin);
                if is_orphan(&to) && !is_orphan(&path) {
                    orphan_origin.insert(to.clone(), path.clone());
                }
                touch(from, false, false);
                touch(
                    translate(&to, &orphan_origin).filter(|_| !is_orphan(&to)),
                    false,
                    false,
                );
            }
            cmd::MKFILE
            | cmd::MKDIR
            | cmd::MKNOD
            | cmd::MKFIFO
            | cmd::MKSOCK
            | cmd::SYMLINK
            | cmd::LINK
            | cmd::UNLINK
            | cmd::RMDIR => touch(translate(&path, &orphan_origin), false, false),
            cmd::WRITE | cmd::CLONE | cmd::TRUNCATE | cmd::UPDATE_EXTENT => {
                touch(translate(&path, &orphan_origin), true, false)
            }
            cmd::CHMOD | cmd::CHOWN | cmd::SET_XATTR | cmd::REMOVE_XATTR => {
                touch(translate(&path, &orphan_origin), false, true)
            }
            _ => {}
        }
    }
    touched.retain(|p, _| !p.as_os_str().is_empty() && !is_orphan(p));
    Ok(touched)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn command(kind: u16, attrs: &[(u16, &str)]) -> Vec<u8> {
        let mut body = Vec::new();
        for (ty, v) in attrs {
            body.extend_from_slice(&ty.to_le_bytes());
            body.extend_from_slice(&(v.len() as u16).to_le_bytes());
            body.extend_from_slice(v.as_bytes());
        }
        let mut out = Vec::new();
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&body);
        out
    }

    #[test]
    fn follows_orphans_and_renames() {
        let mut s = MAGIC.to_vec();
        s.extend_from_slice(&1u32.to_le_bytes());
        s.extend(command(cmd::MKFILE, &[(attr::PATH, "o260-7-0")]));
        s.extend(command(
            cmd::RENAME,
            &[(attr::PATH, "o260-7-0"), (attr::PATH_TO, "etc/new")],
        ));
        s.extend(command(cmd::UPDATE_EXTENT, &[(attr::PATH, "etc/new")]));
        s.extend(command(
            cmd::RENAME,
            &[(attr::PATH, "var/old"), (attr::PATH_TO, "o300-1-0")],
        ));
        s.extend(command(cmd::UNLINK, &[(attr::PATH, "o300-1-0/f")]));
        s.extend(command(cmd::RMDIR, &[(attr::PATH, "o300-1-0")]));
        s.extend(command(cmd::CHMOD, &[(attr::PATH, "etc/passwd")]));
        s.extend(command(cmd::END, &[]));
        let t = touched_paths(&s[..]).unwrap();
        let keys: Vec<_> = t.keys().map(|p| p.to_string_lossy().into_owned()).collect();
        assert_eq!(keys, ["etc/new", "etc/passwd", "var/old", "var/old/f"]);
        assert!(t[Path::new("etc/new")].content);
        assert!(t[Path::new("etc/passwd")].attrs);
    }

    #[test]
    fn rejects_garbage() {
        assert!(touched_paths(&b"not a send stream at all"[..]).is_err());
    }
}

#[cfg(test)]
mod props {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Whatever bytes a peer sends, parsing returns an error or a result; it never panics.
        #[test]
        fn arbitrary_bytes_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let mut s = MAGIC.to_vec();
            s.extend_from_slice(&1u32.to_le_bytes());
            s.extend_from_slice(&tail);
            let _ = touched_paths(&s[..]);
            let mut r = &s[17..];
            while let Ok(Some(c)) = read_command(&mut r) {
                let _ = (c.u64(attr::SIZE), c.time(attr::MTIME), c.path(attr::PATH));
            }
        }

        /// Touched paths never contain orphan names or climb out with `..`.
        #[test]
        fn touched_paths_are_clean(names in proptest::collection::vec("[a-z]{1,3}|o[0-9]{1,3}-[0-9]-0", 1..20)) {
            let mut s = MAGIC.to_vec();
            s.extend_from_slice(&1u32.to_le_bytes());
            for pair in names.windows(2) {
                s.extend(tests::command(cmd::RENAME, &[(attr::PATH, &pair[0]), (attr::PATH_TO, &pair[1])]));
            }
            let t = touched_paths(&s[..]).unwrap();
            for p in t.keys() {
                prop_assert!(!is_orphan(p), "{}", p.display());
            }
        }
    }
}
