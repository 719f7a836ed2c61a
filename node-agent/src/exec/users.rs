//! Project users inside a box (002, "Project users"): before an exec as `--user NAME`, that
//! user's /etc/passwd and /etc/group lines are replaced by fresh ones; other lines stay.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;

use crate::error::{Error, IoContext, Result};
use crate::exec::User;
use crate::sys;

/// The first UID of a project's allocation.
pub const FIRST_UID: u32 = 20000;

/// `lines` without `name`'s entry, plus `fresh`.
pub fn replace_entry(lines: &str, name: &str, fresh: &str) -> String {
    let prefix = format!("{name}:");
    let mut out: String = lines
        .lines()
        .filter(|l| !l.starts_with(&prefix))
        .map(|l| format!("{l}\n"))
        .collect();
    out.push_str(fresh);
    out.push('\n');
    out
}

/// Writes the user's passwd and group lines and creates their home when missing.
pub fn ensure_user(root: &OwnedFd, user: &User) -> Result<()> {
    let (n, id) = (&user.name, user.uid);
    // Serialise concurrent execs of this box on a lock of /etc/passwd itself.
    let passwd = sys::open_in_root(root, Path::new("/etc/passwd"), libc::O_RDONLY, 0)?;
    // flock(2), held until `passwd` closes at the end of this function.
    let passwd = std::fs::File::from(passwd);
    passwd.lock().map_err(|source| Error::Io {
        context: "lock /etc/passwd".into(),
        source,
    })?;
    rewrite(
        root,
        "/etc/passwd",
        n,
        &format!("{n}:x:{id}:{id}::/home/{n}:/bin/bash"),
    )?;
    rewrite(root, "/etc/group", n, &format!("{n}:x:{id}:"))?;
    let home = Path::new("/home").join(n);
    let existed = sys::open_in_root(root, &home, libc::O_PATH | libc::O_DIRECTORY, 0).is_ok();
    if !existed {
        let fd = sys::mkdir_all_in_root(root, &home)?;
        let p = sys::fd_path(&fd);
        std::os::unix::fs::chown(&p, Some(id), Some(id)).ctx("chown", &home)?;
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .ctx("chmod", &home)?;
    }
    drop(passwd);
    Ok(())
}

fn rewrite(root: &OwnedFd, path: &str, name: &str, fresh: &str) -> Result<()> {
    let p = Path::new(path);
    let mut text = String::new();
    match sys::open_in_root(root, p, libc::O_RDONLY, 0) {
        Ok(fd) => {
            std::fs::File::from(fd)
                .read_to_string(&mut text)
                .ctx("read", p)?;
        }
        Err(e) if sys::is_enoent(&e) => {}
        Err(e) => return Err(e),
    }
    let updated = replace_entry(&text, name, fresh);
    if updated == text {
        return Ok(());
    }
    // In place, keeping the file's inode, owner and mode (a bind-mounted /etc/passwd stays valid).
    let fd = sys::open_in_root(root, p, libc::O_WRONLY | libc::O_CREAT, 0o644)?;
    let mut f = std::fs::File::from(fd);
    f.write_all(updated.as_bytes()).ctx("write", p)?;
    f.set_len(updated.len() as u64).ctx("truncate", p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_only_that_user() {
        let before = "root:x:0:0::/root:/bin/bash\nalice:x:20000:20000::/old:/bin/sh\nbob:x:20001:20001::/home/bob:/bin/bash\n";
        let after = replace_entry(
            before,
            "alice",
            "alice:x:20000:20000::/home/alice:/bin/bash",
        );
        assert_eq!(
            after,
            "root:x:0:0::/root:/bin/bash\nbob:x:20001:20001::/home/bob:/bin/bash\nalice:x:20000:20000::/home/alice:/bin/bash\n"
        );
        // A user whose name is a prefix of another's is a different user.
        let after = replace_entry("al:x:1:1::/:/bin/sh\n", "a", "a:x:2:2::/:/bin/sh");
        assert!(after.contains("al:x:1:1"));
    }
}
