//! `4kr local up | down | status` as root runs them: a real forkr-api in the background on a
//! loopback pool made on first start, with the tiny base as box-base.

#![allow(clippy::unwrap_used)]

use std::path::Path;

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

struct Local {
    data: tempfile::TempDir,
    home: tempfile::TempDir,
    listen: String,
    proxy: String,
}

fn free_addr() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("127.0.0.1:{port}")
}

impl Local {
    fn new() -> Local {
        Local {
            data: tempfile::tempdir().unwrap(),
            home: tempfile::tempdir().unwrap(),
            listen: free_addr(),
            proxy: free_addr(),
        }
    }

    fn run(&self, args: &[&str]) -> Out {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_4kr"))
            .args(args)
            .env_clear()
            .env("HOME", self.home.path())
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("FORKR_DATA_DIR", self.data.path())
            .env(
                "FORKR_API_BIN",
                forkr_api::testkit::workspace_bin("forkr-api", "forkr-api"),
            )
            .current_dir(self.home.path())
            .output()
            .unwrap();
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(out.code, 0, "4kr {args:?}: {}{}", out.stdout, out.stderr);
        out.stdout
    }

    fn up(&self) -> String {
        let base = forkr_api::testkit::minibase().display().to_string();
        self.ok(&[
            "local",
            "up",
            "--listen",
            &self.listen,
            "--proxy-listen",
            &self.proxy,
            "--base-tarball",
            &base,
            "--no-network",
        ])
    }

    fn pid(&self) -> u32 {
        std::fs::read_to_string(self.data.path().join("forkr-api.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        // Boxes first (they hold mounts in the pool), then the server, then the pool itself.
        let _ = self.run(&["delete", "-f", "demo"]);
        let _ = self.run(&["local", "down"]);
        let runtime = self.data.path().join("runtime/runc");
        if let Ok(list) = std::process::Command::new("runc")
            .arg("--root")
            .arg(&runtime)
            .args(["list", "-q"])
            .output()
        {
            for id in String::from_utf8_lossy(&list.stdout).lines() {
                let _ = std::process::Command::new("runc")
                    .arg("--root")
                    .arg(&runtime)
                    .args(["delete", "--force", id])
                    .status();
            }
        }
        let _ = std::process::Command::new("umount")
            .arg(self.data.path().join("pool"))
            .status();
    }
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn up_create_exec_restart_and_down() {
    use std::os::unix::fs::PermissionsExt;
    let l = Local::new();
    // As an older install left it: readable by every user of the host.
    std::fs::set_permissions(l.data.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let up = l.up();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(l.data.path()), 0o700, "the data directory is private");
    for f in ["forkr.db", "forkr-api.log", "forkr.db-wal", "forkr.db-shm"] {
        let p = l.data.path().join(f);
        if f == "forkr.db" || f == "forkr-api.log" || p.exists() {
            assert_eq!(mode(&p), 0o600, "{f}");
        }
    }
    assert!(up.starts_with("forkr is up\n"), "{up}");
    assert!(
        up.contains(&format!("api:     http://{}", l.listen)),
        "{up}"
    );
    assert!(
        up.contains(&format!("proxy:   http://{} (box URLs", l.proxy)),
        "{up}"
    );
    assert!(
        l.data.path().join("pool.img").exists(),
        "a loopback pool was made"
    );
    // Plain commands now work: up wrote the `local` profile.
    assert!(l.ok(&["config", "get", "profile"]) == "local\n");
    assert!(l.ok(&["base", "list"]).contains("box-base"));
    l.ok(&["create", "demo"]);
    assert!(
        l.ok(&["exec", "demo", "--", "uname", "-a"])
            .starts_with("Linux ")
    );
    assert!(
        l.ok(&["local", "status"])
            .starts_with("forkr-api is running")
    );

    // up again changes nothing.
    let pid = l.pid();
    l.up();
    assert_eq!(l.pid(), pid);

    // kill -9 the server: the box keeps running, and a new server finds everything.
    std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    for _ in 0..100 {
        if !alive(pid) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    l.up();
    assert_ne!(l.pid(), pid);
    assert!(l.ok(&["show", "demo"]).contains("status      running"));
    assert_eq!(
        l.ok(&["exec", "demo", "--", "cat", "/proc/1/comm"]),
        "tini\n"
    );

    let down = l.ok(&["local", "down"]);
    assert!(
        down.starts_with("forkr-api stopped; data kept in "),
        "{down}"
    );
    assert!(
        l.ok(&["local", "status"])
            .starts_with("forkr-api is not running")
    );
    assert!(l.data.path().join("forkr.db").exists());
    l.up();
    assert!(l.ok(&["list"]).contains("demo"));
}
