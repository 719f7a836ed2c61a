//! `4kr` as a user runs it: the real binary against a real forkr-api on a socket, backed by
//! SQLite and a loopback btrfs pool.

#![allow(clippy::unwrap_used)]

use forkr_api::testkit::TestServer;
use serde_json::Value;

struct Env {
    url: String,
    token: String,
    setup: tempfile::TempDir,
    cwd: tempfile::TempDir,
    _server: TestServer,
}

async fn server() -> Env {
    let s = TestServer::start().await;
    Env {
        url: s.url.clone(),
        token: s.admin.clone(),
        setup: tempfile::tempdir().unwrap(),
        cwd: tempfile::tempdir().unwrap(),
        _server: s,
    }
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Env {
    /// Runs 4kr with a clean environment: only what a test gives, plus the target.
    async fn run_with(&self, args: &[&str], extra: &[(&str, &str)], target: bool) -> Out {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_4kr"));
        cmd.args(args)
            .env_clear()
            .current_dir(self.cwd.path())
            .env("FORKR_SETUP_DIR", self.setup.path());
        cmd.env("HOME", self.cwd.path())
            .env("PATH", "/usr/bin:/bin");
        if target {
            cmd.env("FORKR_URL", &self.url)
                .env("FORKR_TOKEN", &self.token);
        }
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let out = cmd.output().await.unwrap();
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    }

    async fn run(&self, args: &[&str]) -> Out {
        self.run_with(args, &[], true).await
    }

    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert_eq!(out.code, 0, "4kr {args:?} failed: {}", out.stderr);
        out.stdout
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn users_from_the_command_line() {
    let e = server().await;
    let created = e.ok(&["user", "create", "alice", "-p", "shop"]).await;
    assert_eq!(
        created,
        "NAME   UID    GID    HOME         SHELL\nalice  20000  20000  /home/alice  /bin/bash\n"
    );
    let json: Value =
        serde_json::from_str(&e.ok(&["user", "create", "bob", "-p", "shop", "-j"]).await).unwrap();
    assert_eq!(json["uid"], 20001);
    let listed: Value =
        serde_json::from_str(&e.ok(&["user", "list", "--project", "shop", "--json"]).await)
            .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    // The project comes from FORKR_PROJECT when -p is absent.
    let out = e
        .run_with(&["user", "list"], &[("FORKR_PROJECT", "shop")], true)
        .await;
    assert!(
        out.stdout.contains("alice") && out.stdout.contains("bob"),
        "{}",
        out.stdout
    );
    // ... and is `default` outside a git repository.
    assert_eq!(
        e.ok(&["user", "list"]).await,
        "NAME  UID  GID  HOME  SHELL\n"
    );
    let dup = e.run(&["user", "create", "alice", "-p", "shop"]).await;
    assert_eq!(
        (dup.code, dup.stderr.as_str()),
        (1, "Error: user \"alice\" already exists\n")
    );
    let root = e.run(&["user", "create", "root", "-p", "shop"]).await;
    assert_eq!(root.stderr, "Error: user name \"root\" is reserved\n");
    assert_eq!(
        e.ok(&["user", "delete", "bob", "-p", "shop"]).await,
        "bob: deleted\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn volumes_and_a_partial_delete() {
    let e = server().await;
    let created = e
        .ok(&["volume", "create", "pgdata", "--size", "1Gi", "-p", "shop"])
        .await;
    assert!(created.starts_with("NAME    SIZE"), "{created}");
    assert!(
        created.contains("pgdata") && created.contains("1Gi"),
        "{created}"
    );
    // `data` and `vol` are the same command.
    let listed = e.ok(&["data", "list", "-p", "shop"]).await;
    assert!(listed.contains("\npgdata  "), "{listed}");
    assert_eq!(e.ok(&["vol", "ls", "-p", "shop"]).await, listed);
    let json = e.run(&["volume", "list", "-p", "shop", "-j"]).await;
    assert_eq!(
        (json.code, json.stderr.as_str()),
        (1, "Error: --json is not supported for volume list\n")
    );
    let out = e
        .run(&["volume", "delete", "pgdata", "Bad_Name", "-p", "shop"])
        .await;
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stdout,
        "pgdata: deleted\nBad_Name: error: invalid data volume name \"Bad_Name\": use 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit\n"
    );
    assert_eq!(
        e.ok(&["volume", "list", "-p", "shop"]).await,
        "NAME  SIZE  LIMIT  CREATED\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn volume_checkpoints_backups_and_restores() {
    let e = server().await;
    e.ok(&["volume", "create", "pg"]).await;
    e.ok(&["create", "db", "-d", "pg=/data"]).await;
    e.ok(&["exec", "db", "--sh", "--", "echo one > /data/state"])
        .await;
    assert_eq!(e.ok(&["volume", "checkpoint", "pg"]).await, "v0\n");
    e.ok(&["exec", "db", "--sh", "--", "echo two > /data/state"])
        .await;
    assert_eq!(
        e.ok(&[
            "volume",
            "checkpoint",
            "pg",
            "x",
            "--name",
            "second",
            "-m",
            "after two"
        ])
        .await,
        "second\n"
    );
    let listed = e.ok(&["volume", "checkpoints", "pg"]).await;
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 3, "{listed}");
    assert!(lines[0].starts_with("NAME    SIZE"), "{listed}");
    assert!(lines[1].starts_with("v0      "), "{listed}");
    assert!(
        lines[2].starts_with("second  ") && lines[2].ends_with("  after two"),
        "{listed}"
    );
    e.ok(&["exec", "db", "--sh", "--", "echo three > /data/state"])
        .await;
    assert_eq!(
        e.ok(&["volume", "backup", "pg", "-m", "nightly"]).await,
        "v0\n"
    );
    let backups = e.ok(&["volume", "backups", "pg"]).await;
    assert!(
        backups.lines().nth(1).unwrap().starts_with("v0  ")
            && backups.trim_end().ends_with("nightly"),
        "{backups}"
    );
    // A restore needs the boxes that mount the volume stopped; the server says so.
    let busy = e
        .run(&["volume", "restore", "pg", "--checkpoint", "v0"])
        .await;
    assert_eq!(busy.code, 1);
    assert!(busy.stderr.starts_with("Error: "), "{}", busy.stderr);
    e.ok(&["stop", "db"]).await;
    assert_eq!(
        e.ok(&["volume", "restore", "pg", "--checkpoint", "v0"])
            .await,
        "restored pg from checkpoint v0\n"
    );
    e.ok(&["resume", "db"]).await;
    assert_eq!(
        e.ok(&["exec", "db", "--", "cat", "/data/state"]).await,
        "one\n"
    );
    // A backup outlives its volume and brings it back.
    e.ok(&["delete", "-f", "db"]).await;
    assert_eq!(e.ok(&["volume", "delete", "pg"]).await, "pg: deleted\n");
    assert_eq!(
        e.ok(&["volume", "restore", "pg", "--backup", "v0"]).await,
        "restored pg from backup v0\n"
    );
    e.ok(&["create", "db2", "-d", "pg=/data"]).await;
    assert_eq!(
        e.ok(&["exec", "db2", "--", "cat", "/data/state"]).await,
        "three\n"
    );
    // clap's refusals carry the same prefix as ours.
    let neither = e.run(&["volume", "restore", "pg"]).await;
    assert_eq!(neither.code, 2);
    assert!(
        neither
            .stderr
            .starts_with("Error: the following required arguments were not provided:"),
        "{}",
        neither.stderr
    );
    let missing = e.run(&["volume", "checkpoints", "nope"]).await;
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.starts_with("Error: "), "{}", missing.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn bases_list_and_a_missing_one() {
    let e = server().await;
    let listed = e.ok(&["base", "list"]).await;
    assert!(listed.starts_with("NAME      VERSION   SIZE"), "{listed}");
    assert!(listed.contains("\nbox-base  box-base  "), "{listed}");
    let missing = e.run(&["base", "show", "nothing"]).await;
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.starts_with("Error: "), "{}", missing.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn targets_profiles_and_config() {
    let e = server().await;
    // The documented error, word for word.
    let out = e
        .run_with(&["user", "list"], &[("FORKR_PROFILE", "staging")], false)
        .await;
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (
            1,
            "Error: profile \"staging\" is selected but FORKR_PROFILE_STAGING_URL is not set\n"
        )
    );
    // A profile through its variables.
    let profile = [
        ("FORKR_PROFILE_STAGING_URL", e.url.as_str()),
        ("FORKR_PROFILE_STAGING_TOKEN", e.token.as_str()),
    ];
    let out = e
        .run_with(&["--profile", "staging", "user", "list"], &profile, false)
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    // The config file: set, get, list (token masked), path, profiles, unset.
    let cfg = |args: &'static [&'static str]| e.run_with(args, &[], false);
    assert_eq!(cfg(&["config", "set", "profile", "staging"]).await.code, 0);
    assert_eq!(cfg(&["config", "get", "profile"]).await.stdout, "staging\n");
    assert_eq!(
        e.run_with(&["config", "path"], &[], false).await.stdout,
        format!("{}\n", e.setup.path().join("config.yaml").display())
    );
    let out = e
        .run_with(&["config", "set", "api_url", &e.url], &[], false)
        .await;
    assert_eq!(out.code, 0);
    let out = e
        .run_with(&["config", "set", "token", &e.token], &[], false)
        .await;
    assert_eq!(out.code, 0);
    let listed = cfg(&["config", "list"]).await.stdout;
    assert_eq!(
        listed,
        format!("api_url={}\nprofile=staging\ntoken=********\n", e.url)
    );
    // Now plain commands target the config's profile, with no variables at all.
    let out = e.run_with(&["user", "list"], &[], false).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let profiles = cfg(&["config", "profiles"]).await.stdout;
    assert_eq!(profiles, format!("* staging\t{}\n", e.url));
    let bad = cfg(&["config", "set", "colour", "blue"]).await;
    assert_eq!(bad.code, 1);
    assert!(
        bad.stderr
            .starts_with("Error: unknown config key \"colour\""),
        "{}",
        bad.stderr
    );
    assert_eq!(cfg(&["config", "unset", "profile"]).await.code, 0);
    let unset = cfg(&["config", "get", "profile"]).await;
    assert_eq!(unset.code, 1);
    // With no target at all, the error says how to give one.
    let out = e
        .run_with(
            &["data", "list"],
            &[("FORKR_SETUP_DIR", "/nonexistent")],
            false,
        )
        .await;
    assert_eq!(
        out.stderr,
        "Error: no API URL: pass --url, select a profile (--profile or FORKR_PROFILE), or set FORKR_URL\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn docs_prints_the_guide() {
    let e = server().await;
    let out = e.ok(&["docs"]).await;
    assert!(out.starts_with("# Using forkr\n"));
    assert_eq!(
        out,
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/guide.md")).unwrap()
    );
}

/// A tiny usr-merged amd64 rootfs, gzipped: /bin/sh is an x86-64 ELF header.
fn rootfs_tar_gz(path: &std::path::Path) {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&rootfs_tar()).unwrap();
    std::fs::write(path, gz.finish().unwrap()).unwrap();
}

/// The same rootfs as a plain tar.
fn rootfs_tar() -> Vec<u8> {
    let mut elf = vec![0u8; 128];
    elf[..4].copy_from_slice(b"\x7fELF");
    elf[4] = 2;
    elf[5] = 1;
    elf[18..20].copy_from_slice(&62u16.to_le_bytes());
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |p: &str, kind: tar::EntryType, mode: u32, data: &[u8], link: Option<&str>| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        if let Some(l) = link {
            h.set_link_name(l).unwrap();
        }
        b.append_data(&mut h, p, data).unwrap();
    };
    add("usr/bin/", tar::EntryType::Directory, 0o755, b"", None);
    add("bin", tar::EntryType::Symlink, 0o777, b"", Some("usr/bin"));
    add("usr/bin/dash", tar::EntryType::Regular, 0o755, &elf, None);
    add(
        "usr/bin/sh",
        tar::EntryType::Symlink,
        0o777,
        b"",
        Some("dash"),
    );
    b.into_inner().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn base_import_with_a_parent() {
    let e = server().await;
    let tarball = e.cwd.path().join("rootfs.tar.gz");
    rootfs_tar_gz(&tarball);
    let file = tarball.display().to_string();
    assert_eq!(
        e.ok(&["base", "import", "mini", "--file", &file]).await,
        "imported mini as mini\n"
    );
    let out = e
        .ok(&["base", "import", "mini", "--file", &file, "-p", "mini"])
        .await;
    assert!(out.starts_with("imported mini as mini-v"), "{out}");
    let table = e.ok(&["base", "show", "mini"]).await;
    assert!(
        table.starts_with("name:     mini\nlatest:   mini-v"),
        "{table}"
    );
    assert!(table.contains("\nversions: 2\n"), "{table}");
    let json = e.run(&["base", "show", "mini", "-j"]).await;
    assert_eq!(
        json.stderr,
        "Error: --json is not supported for base show\n"
    );
    assert!(
        table.contains("KIND    TAG  BUILDER  PARENT  SIZE"),
        "{table}"
    );
    assert!(
        table.contains("  import  -    -        mini    "),
        "{table}"
    );
    let missing = e.run(&["base", "import", "other"]).await;
    assert_eq!(missing.code, 2, "clap refuses a missing --file");
    assert!(
        missing.stderr.contains("--file <FILE>"),
        "{}",
        missing.stderr
    );
    let nofile = e
        .run(&["base", "import", "other", "--file", "/nonexistent.tar.gz"])
        .await;
    assert_eq!(nofile.stderr, "Error: opening /nonexistent.tar.gz\n");
}

impl Env {
    /// Runs 4kr with `stdin` piped in.
    async fn run_stdin(&self, args: &[&str], stdin: &str) -> Out {
        use tokio::io::AsyncWriteExt;
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_4kr"));
        cmd.args(args)
            .env_clear()
            .current_dir(self.cwd.path())
            .env("HOME", self.cwd.path())
            .env("PATH", "/usr/bin:/bin")
            .env("FORKR_SETUP_DIR", self.setup.path())
            .env("FORKR_URL", &self.url)
            .env("FORKR_TOKEN", &self.token)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .await
            .unwrap();
        let out = child.wait_with_output().await.unwrap();
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_everyday_box_workflow() {
    let e = server().await;
    let created = e
        .ok(&[
            "create",
            "myapp",
            "-e",
            "GREETING=hello world",
            "-p",
            "shop",
        ])
        .await;
    assert!(
        created.starts_with("name        myapp\nproject     shop\nstatus      running\n"),
        "{created}"
    );
    assert!(
        created.contains("url         https://myapp.shop.forkr.test\n"),
        "{created}"
    );
    let exec = e
        .run(&["exec", "myapp", "-p", "shop", "--", "echo", "$GREETING"])
        .await;
    assert_eq!(
        (exec.code, exec.stdout.as_str()),
        (0, "$GREETING\n"),
        "args reach the program as they are"
    );
    let exec = e
        .run(&["exec", "shop:myapp", "--sh", "--", "echo $GREETING; exit 7"])
        .await;
    assert_eq!(
        (exec.code, exec.stdout.as_str()),
        (7, "hello world\n"),
        "the exit code is kept"
    );
    let piped = e
        .run_stdin(&["exec", "shop.myapp"], "echo from stdin; uname -s\n")
        .await;
    assert_eq!(
        (piped.code, piped.stdout.as_str()),
        (0, "from stdin\nLinux\n"),
        "{}",
        piped.stderr
    );
    let json = e
        .run(&["exec", "myapp", "-p", "shop", "-j", "--", "true"])
        .await;
    assert_eq!(
        (json.code, json.stderr.as_str()),
        (1, "Error: --json is not supported in foreground mode\n")
    );
    let bg = e
        .ok(&[
            "exec",
            "myapp",
            "-p",
            "shop",
            "--bg",
            "--sh",
            "--",
            "echo done",
        ])
        .await;
    assert!(bg.starts_with("pid="), "{bg}");
    let logs = e.run(&["logs", "myapp", "-p", "shop"]).await;
    assert!(
        logs.stderr.starts_with("Error: --pid is required"),
        "{}",
        logs.stderr
    );
    let ps = e.run(&["ps", "myapp", "-p", "shop"]).await;
    assert!(ps.stdout.contains("tini"), "{}", ps.stdout);

    let listed = e.ok(&["list", "-p", "shop"]).await;
    assert!(
        listed.contains("myapp  running  box-base  https://myapp.shop.forkr.test"),
        "{listed}"
    );
    let updated = e
        .ok(&[
            "update",
            "myapp",
            "PORT=8080",
            "FOO=ignored",
            "--tag",
            "box.ui=main",
            "-p",
            "shop",
        ])
        .await;
    assert!(
        updated.contains("port        8080\n") && updated.contains("tags        box.ui=main\n"),
        "{updated}"
    );
    let none = e.run(&["update", "myapp", "FOO=bar", "-p", "shop"]).await;
    assert_eq!(none.stderr, "Error: no updates provided\n");

    assert_eq!(
        e.ok(&["snapshot", "create", "myapp", "-p", "shop"]).await,
        "v0\n"
    );
    assert_eq!(
        e.ok(&[
            "snapshot", "create", "myapp", "first", "--name", "second", "-m", "why", "-p", "shop"
        ])
        .await,
        "second\n"
    );
    let snaps = e.ok(&["snapshot", "list", "myapp", "-p", "shop"]).await;
    assert!(
        snaps.starts_with("NAME    SIZE") && snaps.contains("second") && snaps.contains("why"),
        "{snaps}"
    );
    e.ok(&[
        "exec",
        "myapp",
        "-p",
        "shop",
        "--sh",
        "--",
        "echo x > /root/new",
    ])
    .await;
    assert_eq!(
        e.ok(&["diff", "status", "myapp", "--against", "v0", "-p", "shop"])
            .await,
        "+ /root/new\n"
    );
    assert_eq!(
        e.ok(&[
            "diff",
            "file",
            "myapp",
            "/root/new",
            "--against",
            "v0",
            "-p",
            "shop"
        ])
        .await,
        "/root/new: added\n"
    );
    assert_eq!(
        e.ok(&["snapshot", "restore", "myapp", "v0", "-p", "shop"])
            .await,
        "restored myapp from v0\n"
    );
    // The restored root no longer has the file (the runner rewrites /etc/boxes-env at boot).
    let after = e
        .ok(&["diff", "status", "myapp", "--against", "v0", "-p", "shop"])
        .await;
    assert!(!after.contains("/root/new"), "{after}");

    let stopped = e.ok(&["stop", "myapp", "-p", "shop"]).await;
    assert!(stopped.contains("status      stopped"), "{stopped}");
    assert!(
        e.ok(&["resume", "myapp", "-p", "shop"])
            .await
            .contains("status      running")
    );
    let both = e
        .run(&["create", "x", "--base", "box-base", "--fork", "myapp"])
        .await;
    assert_eq!(both.stderr, "Error: --base cannot be used with --fork\n");
    e.ok(&["create", "twin", "-f", "myapp", "-p", "shop"]).await;
    assert!(
        e.ok(&["base", "save", "saved", "shop:twin"])
            .await
            .starts_with("saved twin as saved")
    );

    let rm = e.run(&["rm", "myapp", "twin", "ghost", "-p", "shop"]).await;
    assert_eq!(rm.code, 1);
    assert_eq!(
        rm.stdout,
        "myapp: error: box is running\ntwin: error: box is running\nghost: error: box \"ghost\" not found\n"
    );
    let rm = e
        .run(&["delete", "myapp", "twin", "-f", "-p", "shop"])
        .await;
    assert_eq!(
        (rm.code, rm.stdout.as_str()),
        (0, "myapp: deleted\ntwin: deleted\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ephemeral_exec_creates_and_removes_its_box() {
    let e = server().await;
    let out = e.run(&["exec", "-", "--", "cat", "/proc/1/comm"]).await;
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "tini\n"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.starts_with("ephemeral fork: ephemeral-"),
        "{}",
        out.stderr
    );
    assert_eq!(
        e.ok(&["list"]).await,
        "NAME  STATUS  BASE  URL\n",
        "the ephemeral box is gone"
    );
    let json = e.run(&["exec", "-", "-j", "--bg", "--", "true"]).await;
    assert_eq!(
        json.stderr,
        "Error: --json is not supported for ephemeral exec\n"
    );
    // project:- makes it in that project (the hostname is <box>.<project>); cp takes -: too.
    let out = e.run(&["exec", "shop:-", "--", "hostname"]).await;
    assert!(
        out.stdout.starts_with("ephemeral-") && out.stdout.ends_with(".shop\n"),
        "{} {}",
        out.stdout,
        out.stderr
    );
    let local = e.cwd.path().join("f.txt");
    std::fs::write(&local, "x").unwrap();
    let out = e
        .run(&["put", &local.display().to_string(), "-:/tmp/f.txt"])
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.starts_with("ephemeral fork: "), "{}", out.stderr);
    assert_eq!(
        e.ok(&["list", "-p", "shop"]).await,
        "NAME  STATUS  BASE  URL\n"
    );
    assert_eq!(e.ok(&["list"]).await, "NAME  STATUS  BASE  URL\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn cp_get_and_put_keep_modes_and_stay_inside() {
    use std::os::unix::fs::PermissionsExt;
    let e = server().await;
    e.ok(&["create", "files"]).await;
    let local = e.cwd.path().join("tool.sh");
    std::fs::write(&local, "#!/bin/sh\necho tool\n").unwrap();
    std::fs::set_permissions(&local, std::fs::Permissions::from_mode(0o750)).unwrap();
    let src = local.display().to_string();
    assert_eq!(e.ok(&["put", &src, "files:/opt/bin/tool.sh"]).await, "");
    let inside = e
        .ok(&[
            "exec",
            "files",
            "--sh",
            "--",
            "stat -c %a /opt/bin/tool.sh; /opt/bin/tool.sh",
        ])
        .await;
    assert_eq!(inside, "750\ntool\n");
    // And back, into a directory, with the mode kept.
    let back_dir = e.cwd.path().join("back");
    std::fs::create_dir(&back_dir).unwrap();
    assert_eq!(
        e.ok(&[
            "get",
            "files:/opt/bin/tool.sh",
            &back_dir.display().to_string()
        ])
        .await,
        ""
    );
    let back = back_dir.join("tool.sh");
    assert_eq!(
        std::fs::read_to_string(&back).unwrap(),
        "#!/bin/sh\necho tool\n"
    );
    assert_eq!(
        std::fs::metadata(&back).unwrap().permissions().mode() & 0o7777,
        0o750
    );
    // Paths cannot leave the box: `..` is resolved lexically, symlinks inside the root.
    e.ok(&["exec", "files", "--sh", "--", "ln -s / /root/up"])
        .await;
    e.ok(&["cp", &src, "files:/../../tmp/../forkr-escape-test"])
        .await;
    e.ok(&["cp", &src, "files:/root/up/forkr-escape-link"])
        .await;
    assert!(!std::path::Path::new("/forkr-escape-test").exists());
    assert!(!std::path::Path::new("/forkr-escape-link").exists());
    let listed = e
        .ok(&[
            "exec",
            "files",
            "--sh",
            "--",
            "ls /forkr-escape-test /forkr-escape-link",
        ])
        .await;
    assert_eq!(listed, "/forkr-escape-link\n/forkr-escape-test\n");
    // The documented errors.
    let dir = e
        .run(&["cp", &back_dir.display().to_string(), "files:/x"])
        .await;
    assert_eq!(
        dir.stderr,
        "Error: only files are supported (directories require -r, not yet supported)\n"
    );
    let dir = e
        .run(&["get", "files:/opt", &back_dir.display().to_string()])
        .await;
    assert_eq!(
        dir.stderr,
        "Error: only files are supported (directories require -r, not yet supported)\n"
    );
    let both = e.run(&["cp", "files:/a", "files:/b"]).await;
    assert!(
        both.stderr
            .starts_with("Error: exactly one side must be a box path"),
        "{}",
        both.stderr
    );
    let colon = e.run(&["cp", &src, "files:tool.sh"]).await;
    assert!(
        colon.stderr.contains("the :/ is required"),
        "{}",
        colon.stderr
    );
    let missing = e
        .run(&["get", "files:/nope", &back_dir.display().to_string()])
        .await;
    assert_eq!(missing.stderr, "Error: /nope: no such file in the box\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_streams_and_console_reattach() {
    let e = server().await;
    e.ok(&["create", "term"]).await;
    // stdout and stderr stay apart, stdin streams through, binary bytes survive.
    let out = e
        .run_stdin(
            &["exec", "term", "--sh", "--", "cat; echo oops >&2; exit 4"],
            "line one\nline two\n",
        )
        .await;
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (4, "line one\nline two\n", "oops\n")
    );
    let bin = e
        .run(&[
            "exec",
            "term",
            "--sh",
            "--",
            "printf '\\000\\001\\377' | od -An -tx1",
        ])
        .await;
    assert_eq!(
        bin.stdout.split_whitespace().collect::<Vec<_>>(),
        ["00", "01", "ff"]
    );
    // A console on a real terminal: `script` gives 4kr a PTY, and types into it.
    let cmd = format!(
        "printf 'echo MARK$((40+2))\\nexit 5\\n' | script -qec '{} console term' /dev/null",
        env!("CARGO_BIN_EXE_4kr")
    );
    let out = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&cmd)
        .current_dir(e.cwd.path())
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", e.cwd.path())
        .env("FORKR_SETUP_DIR", e.setup.path())
        .env("FORKR_URL", &e.url)
        .env("FORKR_TOKEN", &e.token)
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("MARK42"), "{text}");
    assert_eq!(
        out.status.code(),
        Some(5),
        "the shell's exit code comes back: {text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ports_list_and_wait() {
    let e = server().await;
    e.ok(&["create", "srv"]).await;
    assert_eq!(e.ok(&["port", "list", "srv"]).await, "PORT  ADDRESS\n");
    // Something starts listening a moment later; wait sees it.
    e.ok(&[
        "exec",
        "srv",
        "--bg",
        "--sh",
        "--",
        "sleep 0.3; exec httpd -f -p 8080",
    ])
    .await;
    let waited = e
        .ok(&["port", "wait", "srv", "8080", "--timeout", "20"])
        .await;
    assert_eq!(waited, "port 8080 is listening (::)\n");
    let listed: Value = serde_json::from_str(&e.ok(&["port", "list", "srv", "-j"]).await).unwrap();
    assert_eq!(listed, serde_json::json!([{"port": 8080, "address": "::"}]));
    let late = e
        .run(&["port", "wait", "srv", "9999", "--timeout", "1"])
        .await;
    assert_eq!(
        (late.code, late.stderr.as_str()),
        (
            1,
            "Error: nothing listens on port 9999 in box \"srv\" after 1 s\n"
        )
    );
}

/// A stand-in container engine: a shell script that logs its arguments and does what 4kr asks
/// of an engine (build, inspect, create, export, rm), exporting a real rootfs tar.
fn fake_engine(dir: &std::path::Path, name: &str, arch: &str, tar: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let log = dir.join("engine.log");
    let script = format!(
        "#!/bin/sh\n\
         echo \"$(basename \"$0\") $*\" >> {log}\n\
         case \"$1\" in\n\
           build|buildx) echo building >&1 ;;\n\
           image) echo {arch} ;;\n\
           create) echo 0123abcd ;;\n\
           export) cat {tar} ;;\n\
           rm) echo 0123abcd ;;\n\
           *) echo \"unexpected $1\" >&2; exit 3 ;;\n\
         esac\n",
        log = log.display(),
        tar = tar.display(),
    );
    let path = dir.join(name);
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn engine_log(dir: &std::path::Path) -> String {
    std::fs::read_to_string(dir.join("engine.log")).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn base_build_with_each_engine() {
    use sha2::Digest;
    let e = server().await;
    // The engine exports the tiny base, so the built base boots.
    let tar = e.cwd.path().join("rootfs.tar");
    let mut plain = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(
            std::fs::File::open(forkr_api::testkit::minibase()).unwrap(),
        ),
        &mut plain,
    )
    .unwrap();
    std::fs::write(&tar, plain).unwrap();
    let dockerfile = "FROM scratch\nCOPY rootfs/ /\n";
    std::fs::write(e.cwd.path().join("Dockerfile"), dockerfile).unwrap();
    let sha = hex::encode(sha2::Sha256::digest(dockerfile));

    // No engine at all.
    let empty = tempfile::tempdir().unwrap();
    let path = empty.path().display().to_string();
    let none = e
        .run_with(&["base", "build", "mini"], &[("PATH", &path)], true)
        .await;
    assert_eq!(
        (none.code, none.stderr.as_str()),
        (
            1,
            "Error: no container engine found: tried docker, podman and nerdctl on PATH; install one to build bases\n"
        )
    );

    // docker wins over podman and nerdctl.
    let bin = tempfile::tempdir().unwrap();
    for name in ["nerdctl", "podman", "docker"] {
        fake_engine(bin.path(), name, "amd64", &tar);
    }
    let path = format!("{}:/usr/bin:/bin", bin.path().display());
    let out = e
        .run_with(&["base", "build", "Mini"], &[("PATH", &path)], true)
        .await;
    assert_eq!(out.code, 1, "the name is a base name: validated first");
    assert!(engine_log(bin.path()).is_empty());
    let out = e
        .run_with(&["base", "build", "mini"], &[("PATH", &path)], true)
        .await;
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "built mini:latest with docker\nimported mini as mini\n"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("building"),
        "build output goes to stderr"
    );
    assert_eq!(
        engine_log(bin.path()),
        "docker build --platform linux/amd64 -t mini:latest -f Dockerfile .\n\
         docker image inspect --format {{.Architecture}} mini:latest\n\
         docker create mini:latest true\n\
         docker export 0123abcd\n\
         docker rm 0123abcd\n"
    );
    let shown = e.ok(&["base", "show", "mini", "--tag", &sha]).await;
    assert!(shown.contains(&format!("  {sha}  docker  ")), "{shown}");
    // The base boots, by its name and as alias:tag with the Dockerfile's sha256.
    e.ok(&["create", "built", "-b", "mini"]).await;
    let tagged = e
        .ok(&["create", "tagged", "-b", &format!("mini:{sha}")])
        .await;
    assert!(tagged.contains("base        mini\n"), "{tagged}");

    // podman, then nerdctl, when docker is absent; -f and --context pass through.
    for (engine, gone) in [("podman", "docker"), ("nerdctl", "podman")] {
        std::fs::remove_file(bin.path().join(gone)).unwrap();
        std::fs::remove_file(bin.path().join("engine.log")).unwrap();
        std::fs::create_dir_all(e.cwd.path().join("ctx")).unwrap();
        std::fs::write(e.cwd.path().join("ctx/Containerfile"), dockerfile).unwrap();
        let out = e
            .run_with(
                &[
                    "base",
                    "build",
                    "mini",
                    "-f",
                    "ctx/Containerfile",
                    "--context",
                    "ctx",
                ],
                &[("PATH", &path)],
                true,
            )
            .await;
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(
            out.stdout.starts_with(&format!(
                "built mini:latest with {engine}\nimported mini as mini-v"
            )),
            "{}",
            out.stdout
        );
        assert!(
            engine_log(bin.path()).starts_with(&format!(
                "{engine} build --platform linux/amd64 -t mini:latest -f ctx/Containerfile ctx\n"
            )),
            "{}",
            engine_log(bin.path())
        );
    }

    // An image of another architecture is refused before anything is exported.
    std::fs::remove_file(bin.path().join("engine.log")).unwrap();
    fake_engine(bin.path(), "nerdctl", "arm64", &tar);
    let out = e
        .run_with(&["base", "build", "mini"], &[("PATH", &path)], true)
        .await;
    assert_eq!(
        (out.code, out.stderr.lines().last().unwrap()),
        (1, "Error: image mini:latest is built for arm64, not amd64")
    );
    assert!(!engine_log(bin.path()).contains("export"));
    let missing = e
        .run_with(
            &["base", "build", "mini", "-f", "nope/Dockerfile"],
            &[("PATH", &path)],
            true,
        )
        .await;
    assert_eq!(
        missing.stderr,
        format!(
            "Error: reading {}/nope/Dockerfile\n",
            e.cwd.path().display()
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn publish_and_unpublish() {
    let e = server().await;
    e.ok(&["create", "web"]).await;
    e.ok(&["create", "other"]).await;
    assert_eq!(e.ok(&["publish", "web", "www"]).await, "OK\n");
    let shown = e.ok(&["show", "web"]).await;
    assert!(shown.contains("published   www.forkr.test\n"), "{shown}");
    let again: Value = serde_json::from_str(&e.ok(&["publish", "web", "www", "-j"]).await).unwrap();
    assert_eq!(again, serde_json::json!({"host": "www.forkr.test"}));
    let apex: Value = serde_json::from_str(&e.ok(&["publish", "web", "@", "-j"]).await).unwrap();
    assert_eq!(apex, serde_json::json!({"host": "forkr.test"}));
    let host: Value = serde_json::from_str(
        &e.ok(&["publish", "web", "--host", "app.example.com", "--json"])
            .await,
    )
    .unwrap();
    assert_eq!(host, serde_json::json!({"host": "app.example.com"}));
    let domain: Value = serde_json::from_str(
        &e.ok(&["publish", "web", "api", "--domain", "example.org", "-j"])
            .await,
    )
    .unwrap();
    assert_eq!(domain, serde_json::json!({"host": "api.example.org"}));

    // Taken elsewhere: 409 unless --force.
    let taken = e.run(&["publish", "other", "www"]).await;
    assert_eq!(
        (taken.code, taken.stderr.as_str()),
        (
            1,
            "Error: host www.forkr.test is already published by box default:web (use --force to take it over)\n"
        )
    );
    assert_eq!(e.ok(&["publish", "other", "www", "-f"]).await, "OK\n");
    // Not ours to unpublish: 403.
    let theirs = e.run(&["unpublish", "web", "www"]).await;
    assert_eq!(
        theirs.stderr,
        "Error: host www.forkr.test is not published by box default:web\n"
    );
    assert_eq!(e.ok(&["unpublish", "other", "www"]).await, "OK\n");
    let one: Value = serde_json::from_str(
        &e.ok(&["unpublish", "web", "api", "--domain", "example.org", "-j"])
            .await,
    )
    .unwrap();
    assert_eq!(one, serde_json::json!({"hosts": ["api.example.org"]}));
    // No host named: every host of the box.
    let all: Value = serde_json::from_str(&e.ok(&["unpublish", "web", "-j"]).await).unwrap();
    assert_eq!(
        all,
        serde_json::json!({"hosts": ["forkr.test", "app.example.com"]})
    );
    assert!(e.ok(&["show", "web"]).await.contains("published   -\n"));

    // The documented argument rules, checked before anything is sent.
    for (args, err) in [
        (
            &["publish", "web"][..],
            "Error: a subdomain is required unless --host is given (`@` is the bare domain)\n",
        ),
        (
            &["publish", "web", "www", "--host", "a.example.com"][..],
            "Error: --host cannot be used with a subdomain\n",
        ),
        (
            &[
                "publish",
                "web",
                "--host",
                "a.example.com",
                "--domain",
                "example.com",
            ][..],
            "Error: --domain cannot be used with --host\n",
        ),
        (
            &["unpublish", "web", "--domain", "example.com"][..],
            "Error: a subdomain is required with --domain\n",
        ),
    ] {
        let out = e.run(args).await;
        assert_eq!((out.code, out.stderr.as_str()), (1, err), "{args:?}");
    }
}

/// A HOME with codex files, an SSH keypair and a git config, as a user has them.
fn inject_home(with_git: bool) -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    std::fs::create_dir_all(h.join(".codex")).unwrap();
    std::fs::create_dir_all(h.join(".ssh")).unwrap();
    std::fs::write(h.join(".codex/auth.json"), "{\"token\": \"secret\"}\n").unwrap();
    std::fs::write(h.join(".codex/config.toml"), "model = \"o3\"\n").unwrap();
    std::fs::write(h.join(".ssh/id_ecdsa"), "PRIVATE ECDSA\n").unwrap();
    std::fs::write(h.join(".ssh/id_ecdsa.pub"), "ecdsa-sha2-nistp256 AAAA me\n").unwrap();
    if with_git {
        std::fs::create_dir_all(h.join(".config/git")).unwrap();
        std::fs::write(h.join(".config/git/config"), "[user]\n\tname = Me\n").unwrap();
    }
    home
}

#[tokio::test(flavor = "multi_thread")]
async fn inject_copies_credentials_into_the_box() {
    let e = server().await;
    e.ok(&["create", "dev", "-p", "shop"]).await;
    // Something is missing: nothing is written.
    let empty = tempfile::tempdir().unwrap();
    let empty_home = empty.path().display().to_string();
    let out = e
        .run_with(
            &["inject", "dev", "-p", "shop"],
            &[("HOME", &empty_home)],
            true,
        )
        .await;
    assert_eq!(
        (out.code, out.stderr),
        (
            1,
            format!(
                "Error: codex auth not found: {empty_home}/.codex/auth.json (pass --codex-auth PATH)\n"
            )
        )
    );
    let json = e
        .run_with(&["inject", "dev", "-j"], &[("HOME", &empty_home)], true)
        .await;
    assert_eq!(json.stderr, "Error: --json is not supported for inject\n");
    let nothing = e
        .run(&["exec", "shop:dev", "--sh", "--", "ls -a /root"])
        .await;
    assert!(!nothing.stdout.contains(".codex"), "{}", nothing.stdout);

    let home = inject_home(true);
    let h = home.path().display().to_string();
    // A known_hosts line of the user's own is kept.
    e.ok(&[
        "exec",
        "shop:dev",
        "--sh",
        "--",
        "mkdir -p /root/.ssh && echo 'example.org ssh-ed25519 AAAAexample' > /root/.ssh/known_hosts",
    ])
    .await;
    let out = e
        .run_with(&["inject", "shop:dev"], &[("HOME", &h)], true)
        .await;
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (
            0,
            "OK: injected codex auth/config, ssh keypair, git config into shop:dev\n"
        ),
        "{}",
        out.stderr
    );
    // No network and no ssh client here: the check warns and the injection stands.
    assert!(
        out.stderr
            .starts_with("warning: ssh -T git@github.com did not authenticate (exit "),
        "{}",
        out.stderr
    );
    let modes = e
        .ok(&[
            "exec",
            "shop:dev",
            "--sh",
            "--",
            "cd /root && stat -c '%a %u %n' .codex .ssh .codex/auth.json .codex/codex.toml .ssh/id_ecdsa .ssh/id_ecdsa.pub .ssh/known_hosts .gitconfig && cat .codex/codex.toml .gitconfig",
        ])
        .await;
    assert_eq!(
        modes,
        "700 0 .codex\n700 0 .ssh\n600 0 .codex/auth.json\n600 0 .codex/codex.toml\n\
         600 0 .ssh/id_ecdsa\n644 0 .ssh/id_ecdsa.pub\n644 0 .ssh/known_hosts\n644 0 .gitconfig\n\
         model = \"o3\"\n[user]\n\tname = Me\n"
    );
    let known = e
        .ok(&["exec", "shop:dev", "--", "cat", "/root/.ssh/known_hosts"])
        .await;
    let hosts: Vec<&str> = known
        .lines()
        .map(|l| l.split(' ').take(2).collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .iter()
        .map(|s| match s.as_str() {
            "example.org ssh-ed25519" => "mine",
            "github.com ssh-ed25519" => "ed25519",
            "github.com ecdsa-sha2-nistp256" => "ecdsa",
            "github.com ssh-rsa" => "rsa",
            _ => "other",
        })
        .collect();
    assert_eq!(hosts, ["mine", "ed25519", "ecdsa", "rsa"]);
    // Again: known_hosts does not grow; without a git config the line says so; explicit paths,
    // and a key whose name a shell would misread reaches the box and the check as it is.
    let bare = inject_home(false);
    std::fs::rename(
        bare.path().join(".ssh/id_ecdsa"),
        bare.path().join("work $(x);y"),
    )
    .unwrap();
    std::fs::rename(
        bare.path().join(".ssh/id_ecdsa.pub"),
        bare.path().join("work $(x);y.pub"),
    )
    .unwrap();
    let b = bare.path().display().to_string();
    let out = e
        .run_with(
            &[
                "inject",
                "dev",
                "-p",
                "shop",
                "--ssh-key",
                "~/work $(x);y",
                "--codex-auth",
                &format!("{b}/.codex/auth.json"),
                "--codex-toml",
                "~/.codex/config.toml",
            ],
            &[("HOME", &b)],
            true,
        )
        .await;
    assert_eq!(
        out.stdout, "OK: injected codex auth/config, ssh keypair into shop:dev\n",
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .starts_with("warning: ssh -T git@github.com did not authenticate"),
        "{}",
        out.stderr
    );
    let after = e
        .ok(&[
            "exec",
            "shop:dev",
            "--sh",
            "--",
            "wc -l < /root/.ssh/known_hosts; stat -c %a '/root/.ssh/work $(x);y'",
        ])
        .await;
    assert_eq!(after.split_whitespace().collect::<Vec<_>>(), ["4", "600"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn ssh_completion_and_refused_json() {
    let e = server().await;
    let ssh = e.run(&["ssh", "web"]).await;
    assert_eq!(
        (ssh.code, ssh.stderr.as_str()),
        (
            1,
            "Error: ssh is not available on this server: forkr-api has no SSH entry point; use `4kr console web` for an interactive shell, or `4kr exec web -- CMD`\n"
        )
    );
    let bash = e.ok(&["completion", "bash"]).await;
    assert!(
        bash.contains("_4kr()") && bash.contains("publish"),
        "{bash}"
    );
    let zsh = e.ok(&["completion", "zsh"]).await;
    assert!(zsh.starts_with("#compdef 4kr"), "{zsh}");
    let fish = e.ok(&["completion", "fish"]).await;
    assert!(fish.contains("complete -c 4kr"), "{fish}");
    for (args, name) in [
        (&["snapshot", "list", "web", "-j"][..], "snapshot list"),
        (&["console", "web", "-j"][..], "console"),
        (&["cp", "a", "web:/b", "--json"][..], "cp"),
        (&["user", "delete", "alice", "-j"][..], "user delete"),
        (&["base", "list", "-j"][..], "base list"),
    ] {
        let out = e.run(args).await;
        assert_eq!(
            (out.code, out.stderr),
            (1, format!("Error: --json is not supported for {name}\n")),
            "{args:?}"
        );
    }
    let follow = e
        .run(&["logs", "web", "--pid", "1", "--follow", "-j"])
        .await;
    assert_eq!(
        follow.stderr,
        "Error: --json is not supported with --follow\n"
    );
    // clap's own refusals: exit 2, the usual prefix.
    let usage = e.run(&["list", "--frobnicate"]).await;
    assert_eq!(usage.code, 2);
    assert!(
        usage
            .stderr
            .starts_with("Error: unexpected argument '--frobnicate' found"),
        "{}",
        usage.stderr
    );
}

/// Starts `4kr exec - -- sleep 30`, waits for the `ephemeral fork:` line and `delay`, then sends
/// SIGINT as Ctrl-C would. Returns 4kr's stderr.
async fn interrupt_ephemeral(e: &Env, delay: std::time::Duration) -> String {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_4kr"))
        .args(["exec", "-", "--", "sleep", "30"])
        .env_clear()
        .current_dir(e.cwd.path())
        .env("HOME", e.cwd.path())
        .env("PATH", "/usr/bin:/bin")
        .env("FORKR_SETUP_DIR", e.setup.path())
        .env("FORKR_URL", &e.url)
        .env("FORKR_TOKEN", &e.token)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let first = lines.next_line().await.unwrap().unwrap();
    assert!(first.starts_with("ephemeral fork: ephemeral-"), "{first}");
    tokio::time::sleep(delay).await;
    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    let status = tokio::time::timeout(std::time::Duration::from_secs(20), child.wait())
        .await
        .expect("4kr ends after Ctrl-C")
        .unwrap();
    let mut rest = String::new();
    while let Ok(Some(l)) = lines.next_line().await {
        rest.push_str(&l);
        rest.push('\n');
    }
    assert!(!status.success(), "{rest}");
    rest
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_still_deletes_the_ephemeral_box() {
    let e = server().await;
    // While the box is being made, and while the command runs.
    for delay in [0, 1500] {
        interrupt_ephemeral(&e, std::time::Duration::from_millis(delay)).await;
        assert_eq!(
            e.ok(&["list"]).await,
            "NAME  STATUS  BASE  URL\n",
            "no box left after Ctrl-C at {delay} ms"
        );
    }
}

/// Runs 4kr in `cwd` with exactly `env` (and a PATH).
async fn run_isolated(cwd: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_4kr"))
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .envs(env.iter().copied())
        .current_dir(cwd)
        .output()
        .await
        .unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn config_locations_and_profile_resolution_in_temp_homes() {
    let e = server().await;
    let home = tempfile::tempdir().unwrap();
    let h = home.path().display().to_string();
    let elsewhere = tempfile::tempdir().unwrap();
    // No FORKR_SETUP_DIR and no .forkr above: ~/.forkr/config.yaml.
    let out = run_isolated(elsewhere.path(), &["config", "path"], &[("HOME", &h)]).await;
    assert_eq!(out.stdout, format!("{h}/.forkr/config.yaml\n"));
    let out = run_isolated(
        elsewhere.path(),
        &["config", "set", "api_url", &e.url],
        &[("HOME", &h)],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(home.path().join(".forkr/config.yaml").is_file());
    // The nearest .forkr/config.yaml above the working directory wins over HOME's.
    let repo = tempfile::tempdir().unwrap();
    let deep = repo.path().join("src/deep");
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::create_dir_all(repo.path().join(".forkr")).unwrap();
    std::fs::write(
        repo.path().join(".forkr/config.yaml"),
        format!("env: prod\napi_url: {}\ntoken: {}\n", e.url, e.token),
    )
    .unwrap();
    let out = run_isolated(&deep, &["config", "path"], &[("HOME", &h)]).await;
    assert_eq!(
        out.stdout,
        format!("{}/.forkr/config.yaml\n", repo.path().display())
    );
    // FORKR_PROFILE matching the config's env key: URL and token come from the config.
    let out = run_isolated(
        &deep,
        &["user", "list"],
        &[("HOME", &h), ("FORKR_PROFILE", "prod")],
    )
    .await;
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "NAME  UID  GID  HOME  SHELL\n"),
        "{}",
        out.stderr
    );
    // Another profile is not derived from that config.
    let out = run_isolated(&deep, &["user", "list", "--profile", "qa"], &[("HOME", &h)]).await;
    assert_eq!(
        out.stderr,
        "Error: profile \"qa\" is selected but FORKR_PROFILE_QA_URL is not set\n"
    );
    // Profile names normalize: my.stage-1 reads FORKR_PROFILE_MY_STAGE_1_*.
    let vars = [
        ("HOME", h.as_str()),
        ("FORKR_PROFILE_MY_STAGE_1_URL", e.url.as_str()),
        ("FORKR_PROFILE_MY_STAGE_1_TOKEN", e.token.as_str()),
    ];
    let out = run_isolated(
        elsewhere.path(),
        &["--profile", "my.stage-1", "user", "list"],
        &vars,
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    // --url beats FORKR_URL; FORKR_API_URL is the last resort.
    let dead = "http://127.0.0.1:9";
    let empty = tempfile::tempdir().unwrap();
    let setup = empty.path().display().to_string();
    let base = [
        ("HOME", setup.as_str()),
        ("FORKR_SETUP_DIR", setup.as_str()),
        ("FORKR_TOKEN", e.token.as_str()),
    ];
    let with = |extra: &[(&'static str, &str)]| {
        let mut v: Vec<(&str, String)> = base.iter().map(|(k, v)| (*k, v.to_string())).collect();
        v.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        v
    };
    let env = with(&[("FORKR_URL", dead)]);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = run_isolated(elsewhere.path(), &["--url", &e.url, "user", "list"], &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = run_isolated(elsewhere.path(), &["user", "list"], &env).await;
    assert!(
        out.stderr
            .starts_with("Error: cannot reach http://127.0.0.1:9/"),
        "{}",
        out.stderr
    );
    let env = with(&[("FORKR_API_URL", e.url.as_str())]);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = run_isolated(elsewhere.path(), &["user", "list"], &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn documented_errors_word_for_word() {
    let e = server().await;
    e.ok(&["create", "web"]).await;
    let cases: &[(&[&str], &str)] = &[
        (
            &["create", "x", "-e", "BOX_NAME=y"],
            "environment variable is reserved",
        ),
        (
            &["create", "web2", "-f", "ghost"],
            "box \"ghost\" not found",
        ),
        (
            &["create", "web", "-f", "web"],
            "cannot fork a box from itself",
        ),
        (
            &["create", "x", "-d", "pg=/proc/x"],
            "mount path \"/proc/x\" cannot be under /proc",
        ),
        (
            &["create", "x", "-d", "pg=relative"],
            "mount path \"relative\" must be absolute",
        ),
        (
            &["diff", "status", "web"],
            "box default/web has no snapshots; specify one to diff against with --against <snapshot>",
        ),
        (
            &["diff", "file", "web", "etc/hosts"],
            "path \"etc/hosts\" must be absolute",
        ),
        (
            &["snapshot", "restore", "web", "nope"],
            "snapshot \"nope\" of box \"web\" not found",
        ),
        (
            &["logs", "web"],
            "--pid is required: logs reads the log of one background process (start one with exec --bg)",
        ),
        (
            &["show", "-"],
            "`-` (an ephemeral box) only works with exec, console and cp",
        ),
        (
            &["cp", "./a", "./b"],
            "exactly one side must be a box path (box:/path): neither \"./a\" nor \"./b\" is",
        ),
    ];
    for (args, want) in cases {
        let out = e.run(args).await;
        assert_eq!(
            (out.code, out.stderr),
            (1, format!("Error: {want}\n")),
            "4kr {args:?}"
        );
    }
    e.ok(&["snapshot", "create", "web", "s1"]).await;
    let dup = e.run(&["snapshot", "create", "web", "s1"]).await;
    assert_eq!(
        dup.stderr,
        "Error: snapshot \"s1\" already exists for box default/web\n"
    );
    e.ok(&[
        "exec",
        "web",
        "--sh",
        "--",
        "head -c 1100000 /dev/zero > /root/big",
    ])
    .await;
    let big = e.run(&["diff", "file", "web", "/root/big"]).await;
    assert_eq!(
        big.stderr,
        "Error: /root/big is 1100000 bytes; file diffs are limited to 1 MB\n"
    );
}

/// Every command of the documented JSON set prints one JSON document with -j.
#[tokio::test(flavor = "multi_thread")]
async fn json_on_every_documented_command() {
    let e = server().await;
    let json = |text: String| -> Value {
        serde_json::from_str(&text).unwrap_or_else(|err| panic!("{err}: {text}"))
    };
    let created = json(e.ok(&["create", "j1", "-j"]).await);
    assert_eq!(
        (&created["name"], &created["status"]),
        (&"j1".into(), &"running".into())
    );
    let listed = json(e.ok(&["list", "-j"]).await);
    assert_eq!(listed[0]["name"], "j1");
    assert_eq!(
        json(e.ok(&["show", "j1", "-j"]).await)["project"],
        "default"
    );
    let updated = json(e.ok(&["update", "j1", "PORT=8081", "-j"]).await);
    assert_eq!(updated["port"], 8081);
    let published = json(e.ok(&["publish", "j1", "www", "-j"]).await);
    assert_eq!(published["host"], "www.forkr.test");
    let removed = json(e.ok(&["unpublish", "j1", "-j"]).await);
    assert_eq!(removed["hosts"], serde_json::json!(["www.forkr.test"]));
    let bg = json(
        e.ok(&["exec", "j1", "--bg", "-j", "--sh", "--", "echo logged"])
            .await,
    );
    let pid = bg["pid"].as_u64().unwrap().to_string();
    let mut log = Value::Null;
    for _ in 0..50 {
        log = json(e.ok(&["logs", "j1", "--pid", &pid, "-j"]).await);
        if log["log"] == "logged\n" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(log["log"], "logged\n", "{log}");
    assert!(json(e.ok(&["port", "list", "j1", "-j"]).await).is_array());
    e.ok(&["exec", "j1", "--bg", "--", "httpd", "-f", "-p", "8081"])
        .await;
    let waited = json(e.ok(&["port", "wait", "j1", "8081", "-j"]).await);
    assert_eq!(waited["port"], 8081);
    assert_eq!(
        json(e.ok(&["user", "create", "ann", "-j"]).await)["uid"],
        20000
    );
    let shell = json(
        e.ok(&["user", "update", "ann", "--shell", "/bin/sh", "-j"])
            .await,
    );
    assert_eq!(shell["shell"], "/bin/sh");
    assert_eq!(json(e.ok(&["user", "list", "-j"]).await)[0]["name"], "ann");
    assert_eq!(json(e.ok(&["stop", "j1", "-j"]).await)["status"], "stopped");
    assert_eq!(
        json(e.ok(&["resume", "j1", "-j"]).await)["status"],
        "running"
    );
    let deleted = json(e.ok(&["delete", "j1", "-f", "-j"]).await);
    assert_eq!(
        deleted,
        serde_json::json!([{"name": "j1", "deleted": true}])
    );
}

/// A server that answers every request `200 []` and records the Authorization header of each
/// (None when absent): it stands for "some other server" that must never see a profile token.
async fn recording_server() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<Option<String>>>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head).into_owned();
                let auth = text.lines().find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("authorization")
                        .then(|| v.trim().to_owned())
                });
                record.lock().unwrap().push(auth);
                let _ = conn
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n[]",
                    )
                    .await;
            });
        }
    });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_profile_token_goes_only_to_the_profile_url() {
    let e = server().await;
    let (elsewhere, seen) = recording_server().await;
    // What `4kr local up` writes: the `local` profile, its URL and its admin token.
    std::fs::write(
        e.setup.path().join("config.yaml"),
        format!(
            "profile: local\nenv: local\napi_url: {}\ntoken: {}\n",
            e.url, e.token
        ),
    )
    .unwrap();
    // --url naming another server, no FORKR_TOKEN: refused, and nothing is sent.
    let out = e.run_with(&["--url", &elsewhere, "list"], &[], false).await;
    assert_eq!(
        (out.code, out.stderr),
        (
            1,
            format!(
                "Error: {elsewhere} is not the URL of profile \"local\" ({}), and a profile's token is sent only to its own URL: set FORKR_TOKEN to a token for {elsewhere}, or use a profile whose URL it is\n",
                e.url
            )
        )
    );
    assert!(seen.lock().unwrap().is_empty(), "nothing was sent");
    // With FORKR_TOKEN, that token and only that one goes there.
    let out = e
        .run_with(
            &["--url", &elsewhere, "list"],
            &[("FORKR_TOKEN", "fkr_for_elsewhere")],
            false,
        )
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        *seen.lock().unwrap(),
        [Some("Bearer fkr_for_elsewhere".to_owned())]
    );
    // --url spelling the profile's own server (trailing slash, upper-case host): its token.
    let same = format!("{}/", e.url);
    let out = e.run_with(&["--url", &same, "list"], &[], false).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let upper = e.url.replace("http://", "HTTP://");
    let out = e
        .run_with(&["--url", &upper, "user", "list"], &[], false)
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    // A profile from variables: the same rule.
    let vars = [
        ("FORKR_PROFILE_PROD_URL", e.url.as_str()),
        ("FORKR_PROFILE_PROD_TOKEN", e.token.as_str()),
    ];
    let out = e
        .run_with(
            &["--profile", "prod", "--url", &elsewhere, "list"],
            &vars,
            false,
        )
        .await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("is not the URL of profile \"prod\""),
        "{}",
        out.stderr
    );
    assert_eq!(seen.lock().unwrap().len(), 1, "nothing more was sent");
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .all(|a| a.as_deref() != Some(&format!("Bearer {}", e.token))),
        "the admin token never left for another server"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn token_list_create_and_revoke() {
    let e = server().await;
    let listed = e.ok(&["token", "list"]).await;
    let lines: Vec<&str> = listed.lines().collect();
    assert!(
        lines[0].starts_with("ID            NAME   SCOPE  CREATED"),
        "{listed}"
    );
    assert!(lines[0].ends_with("EXPIRES  LAST-USED"), "{listed}");
    assert_eq!(lines.len(), 3, "{listed}");
    // Create prints the secret alone on stdout; what it is goes to stderr.
    let out = e
        .run(&["token", "create", "ci", "-p", "shop", "--expires", "30d"])
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let secret = out.stdout.trim().to_owned();
    assert!(secret.starts_with("fkr_") && out.stdout.lines().count() == 1);
    assert!(
        out.stderr.starts_with("token ") && out.stderr.contains("(ci, shop, expires "),
        "{}",
        out.stderr
    );
    let id = out.stderr.split_whitespace().nth(1).unwrap().to_owned();
    // The new token works for its project.
    let as_ci = e
        .run_with(
            &["user", "list", "-p", "shop"],
            &[("FORKR_URL", &e.url), ("FORKR_TOKEN", &secret)],
            false,
        )
        .await;
    assert_eq!(as_ci.code, 0, "{}", as_ci.stderr);
    let listed = e.ok(&["token", "ls"]).await;
    let row = listed.lines().find(|l| l.starts_with(&id)).unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!((cells[1], cells[2]), ("ci", "shop"), "{listed}");
    assert_ne!(cells[4], "-", "an expiry: {listed}");
    assert!(!listed.contains(&secret));
    // A project token may not manage tokens.
    let ci_env = [
        ("FORKR_URL", e.url.as_str()),
        ("FORKR_TOKEN", secret.as_str()),
    ];
    let out = e.run_with(&["token", "list"], &ci_env, false).await;
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (1, "Error: only an admin token manages tokens\n")
    );
    // Bad input is refused by the server's words; -j is refused by name.
    let out = e.run(&["token", "create", "x"]).await;
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (1, "Error: give --admin or at least one --project\n")
    );
    let out = e
        .run(&[
            "token",
            "create",
            "x",
            "--admin",
            "--expires",
            "2001-01-01T00:00:00Z",
        ])
        .await;
    assert_eq!(
        out.stderr,
        "Error: expires 2001-01-01T00:00:00Z is not in the future\n"
    );
    let out = e.run(&["token", "list", "-j"]).await;
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (1, "Error: --json is not supported for token list\n")
    );
    // Revoke: one line per id, a failure exits 1; the revoked token is refused.
    let out = e.run(&["token", "revoke", &id, "000000000000"]).await;
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stdout,
        format!("{id}: revoked\n000000000000: error: token \"000000000000\" not found\n")
    );
    let out = e
        .run_with(&["user", "list", "-p", "shop"], &ci_env, false)
        .await;
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (1, "Error: missing or invalid bearer token\n")
    );
}
