//! Box names as hosts files, and each project's resolv.conf.
//!
//! Why hosts files rather than a DNS responder: every resolver reads /etc/hosts (glibc, musl,
//! static busybox, Go's), the names keep resolving while the agent restarts, and there is no
//! daemon or port to keep up. The file of project P maps `<box>` for P's boxes and
//! `<box>.<project>` (plus `<box>.<project>.forks`) for every box, so the three forms of 001
//! resolve without a search list; dotted external names fall through to DNS. The agent rewrites
//! the files in place on every start and stop (a bind mount pins the inode, so a rename would not
//! reach running boxes): one write, then a truncate to the new length.

use std::io::Write;
use std::net::Ipv4Addr;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::error::{IoContext, Result};

/// The hosts file of `project` for the running boxes `(ip, project, box)`, plus `extra` names.
pub fn hosts_file(
    project: &str,
    boxes: &[(Ipv4Addr, String, String)],
    extra: &[(Ipv4Addr, String)],
) -> String {
    let mut out = String::from(
        "# Written by forkr; rewritten whenever a box starts or stops.\n\
         127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
    );
    for (ip, name) in extra {
        out.push_str(&format!("{ip}\t{name}\n"));
    }
    for (ip, p, b) in boxes {
        out.push_str(&format!("{ip}\t{b}.{p} {b}.{p}.forks"));
        if p == project {
            out.push_str(&format!(" {b}"));
        }
        out.push('\n');
    }
    out
}

/// 002's DNS settings: search `<project>.forks forks <project>`, `ndots:1`.
pub fn resolv_conf(project: &str, nameservers: &[Ipv4Addr]) -> String {
    let mut out = format!("search {project}.forks forks {project}\noptions ndots:1\n");
    for ns in nameservers {
        out.push_str(&format!("nameserver {ns}\n"));
    }
    out
}

/// The host's nameservers that a box can reach (loopback ones live in the host's namespace).
pub fn host_nameservers() -> Vec<Ipv4Addr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    text.lines()
        .filter_map(|l| l.strip_prefix("nameserver"))
        .filter_map(|v| v.trim().parse::<Ipv4Addr>().ok())
        .filter(|ip| !ip.is_loopback())
        .collect()
}

/// Replaces the content of `path` keeping its inode: one positioned write, then a truncate.
pub fn rewrite_in_place(path: &Path, text: &str) -> Result<()> {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .ctx("open", path)?;
    f.write_all_at(text.as_bytes(), 0).ctx("write", path)?;
    f.set_len(text.len() as u64).ctx("truncate", path)?;
    (&f).flush().ctx("flush", path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_project_gets_bare_names_others_qualified() {
        let boxes = vec![
            (
                Ipv4Addr::new(10, 0, 0, 2),
                "p".to_string(),
                "db".to_string(),
            ),
            (
                Ipv4Addr::new(10, 0, 0, 3),
                "q".to_string(),
                "web".to_string(),
            ),
        ];
        let api = [(Ipv4Addr::new(10, 0, 0, 1), "forks.example.com".to_string())];
        let text = hosts_file("p", &boxes, &api);
        assert!(text.contains("10.0.0.1\tforks.example.com\n"));
        assert!(text.contains("10.0.0.2\tdb.p db.p.forks db\n"));
        assert!(text.contains("10.0.0.3\tweb.q web.q.forks\n"));
    }

    #[test]
    fn resolv_has_search_and_ndots() {
        let t = resolv_conf("p", &[Ipv4Addr::new(1, 1, 1, 1)]);
        assert_eq!(
            t,
            "search p.forks forks p\noptions ndots:1\nnameserver 1.1.1.1\n"
        );
    }
}
