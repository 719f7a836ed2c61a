//! A reader for btrfs send streams (v1), enough to learn which paths changed between two
//! snapshots. With `NO_FILE_DATA` the kernel replaces file data by `UPDATE_EXTENT` records, so the
//! stream stays small however many bytes changed.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

const MAGIC: &[u8; 13] = b"btrfs-stream\0";

mod cmd {
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
    pub const END: u16 = 21;
    pub const UPDATE_EXTENT: u16 = 22;
}

const ATTR_PATH: u16 = 15;
const ATTR_PATH_TO: u16 = 16;
const ATTR_PATH_LINK: u16 = 17;

/// What the stream said about one path.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Touch {
    /// Data was written, cloned or truncated.
    pub content: bool,
    /// Mode, owner or extended attributes were set.
    pub attrs: bool,
}

/// One parsed command: its number and path attributes.
#[derive(Debug, Default)]
struct Command {
    kind: u16,
    path: Option<PathBuf>,
    path_to: Option<PathBuf>,
}

fn bad(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("malformed send stream: {what}"),
    )
}

fn read_command(r: &mut impl Read) -> io::Result<Option<Command>> {
    let mut head = [0u8; 10];
    match r.read_exact(&mut head) {
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        other => other?,
    }
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let kind = u16::from_le_bytes([head[4], head[5]]);
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    let mut cmd = Command {
        kind,
        ..Default::default()
    };
    let mut at = 0;
    while at + 4 <= body.len() {
        let ty = u16::from_le_bytes([body[at], body[at + 1]]);
        let n = u16::from_le_bytes([body[at + 2], body[at + 3]]) as usize;
        let value = body
            .get(at + 4..at + 4 + n)
            .ok_or_else(|| bad("attribute overruns command"))?;
        at += 4 + n;
        let as_path = || PathBuf::from(std::ffi::OsStr::from_bytes(value));
        match ty {
            ATTR_PATH => cmd.path = Some(as_path()),
            ATTR_PATH_TO | ATTR_PATH_LINK if cmd.kind == cmd::RENAME => {
                cmd.path_to = Some(as_path())
            }
            _ => {}
        }
    }
    Ok(Some(cmd))
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
    let mut magic = [0u8; 17];
    r.read_exact(&mut magic)?;
    if &magic[..13] != MAGIC {
        return Err(bad("missing magic"));
    }
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
        let Some(path) = c.path else { continue };
        let mut touch = |p: Option<PathBuf>, content: bool, attrs: bool| {
            if let Some(p) = p {
                let t = touched.entry(p).or_default();
                t.content |= content;
                t.attrs |= attrs;
            }
        };
        match c.kind {
            cmd::RENAME => {
                let Some(to) = c.path_to else { continue };
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

    fn command(kind: u16, attrs: &[(u16, &str)]) -> Vec<u8> {
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
        s.extend(command(cmd::MKFILE, &[(ATTR_PATH, "o260-7-0")]));
        s.extend(command(
            cmd::RENAME,
            &[(ATTR_PATH, "o260-7-0"), (ATTR_PATH_TO, "etc/new")],
        ));
        s.extend(command(cmd::UPDATE_EXTENT, &[(ATTR_PATH, "etc/new")]));
        s.extend(command(
            cmd::RENAME,
            &[(ATTR_PATH, "var/old"), (ATTR_PATH_TO, "o300-1-0")],
        ));
        s.extend(command(cmd::UNLINK, &[(ATTR_PATH, "o300-1-0/f")]));
        s.extend(command(cmd::RMDIR, &[(ATTR_PATH, "o300-1-0")]));
        s.extend(command(cmd::CHMOD, &[(ATTR_PATH, "etc/passwd")]));
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
