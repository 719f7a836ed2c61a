//! The runner's boot sequence and the local runtime's lifecycle, on real runc and btrfs.
#![allow(clippy::unwrap_used)]

mod rtkit;

use std::collections::BTreeMap;

use forkr_node_agent::runtime::{BoxSpec, Phase};
use rtkit::{Rt, sh, unique};

fn spec(project: &str, name: &str) -> BoxSpec {
    BoxSpec::new(project, name)
}

#[test]
fn boot_sequence_effects() {
    let rt = Rt::new();
    let project = unique("p");
    let mut s = spec(&project, "web");
    s.env = BTreeMap::from([("GREETING".to_string(), "hello world".to_string())]);
    s.memory_bytes = Some(256 << 20);
    s.cpu_millis = Some(500);
    let st = rt.boot(&s);
    assert_eq!(st.phase, Phase::Running);
    let pid = st.pid.unwrap();

    // PID 1 is tini, with bash -lc "sleep infinity" under it.
    let out = sh(pid, "cat /proc/1/comm; tr '\\0' ' ' < /proc/1/cmdline");
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        "tini\n/usr/bin/tini -s -- /bin/bash -lc sleep infinity "
    );

    // Hostname <box>.<project>.
    let out = sh(pid, "hostname");
    assert_eq!(out.stdout.trim(), format!("web.{project}"));

    // Env file, its source line once, and the same variables in the process environment.
    let out = sh(pid, "cat /etc/boxes-env");
    for line in [
        format!("export FORKR_PROJECT=\"{project}\""),
        "export BOX_NAME=\"web\"".into(),
        "export FORKR_API_URL=\"https://forks.example.test\"".into(),
        "export FORKR_API_HOST=\"forks.example.test\"".into(),
        "export FORKR_API_IP=\"192.0.2.10\"".into(),
        "export FORKR_NODE_IP=\"192.0.2.10\"".into(),
        "export TERM=\"xterm-256color\"".into(),
        "export GREETING=\"hello world\"".into(),
    ] {
        assert!(
            out.stdout.contains(&line),
            "{line} missing in {}",
            out.stdout
        );
    }
    assert!(!out.stdout.contains("FORKR_INSECURE"));
    let out = sh(pid, "grep -c boxes-env /etc/bash.bashrc");
    assert_eq!(out.stdout.trim(), "1");
    let out = sh(
        pid,
        "tr '\\0' '\\n' < /proc/1/environ | grep -E '^(BOX_NAME|GREETING|FORKR_NODE_IP)=' | sort",
    );
    assert_eq!(
        out.stdout,
        "BOX_NAME=web\nFORKR_NODE_IP=192.0.2.10\nGREETING=hello world\n"
    );

    // Mounts: proc, sysfs, /dev, /tmp and /run, the system volumes.
    let out = sh(pid, "cat /proc/mounts");
    let mounts: Vec<(String, String)> = out
        .stdout
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((f.get(1)?.to_string(), f.get(2)?.to_string()))
        })
        .collect();
    let has = |path: &str, fs: Option<&str>| {
        mounts
            .iter()
            .any(|(p, t)| p == path && fs.is_none_or(|f| f == t))
    };
    for (path, fs) in [
        ("/proc", Some("proc")),
        ("/sys", Some("sysfs")),
        ("/dev", None),
        ("/tmp", None),
        ("/run", None),
        ("/box/bin", Some("btrfs")),
        ("/box/all", Some("btrfs")),
        ("/box/proj", Some("btrfs")),
        ("/home", Some("btrfs")),
    ] {
        assert!(has(path, fs), "{path} not mounted: {mounts:?}");
    }
    let out = sh(pid, "stat -c %a /tmp; test -c /dev/null && echo devnull");
    assert_eq!(out.stdout, "1777\ndevnull\n");

    // Resources: memory limit, CPU shares, no quota.
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let mem = cg
        .lines()
        .find_map(|l| {
            l.strip_prefix(|c: char| c.is_ascii_digit())
                .and_then(|r| r.split_once(":memory:"))
                .map(|(_, p)| p.to_string())
        })
        .or_else(|| {
            cg.lines()
                .find_map(|l| l.split_once(":memory:").map(|(_, p)| p.to_string()))
        })
        .expect("memory cgroup");
    let limit =
        std::fs::read_to_string(format!("/sys/fs/cgroup/memory{mem}/memory.limit_in_bytes"))
            .unwrap();
    assert_eq!(limit.trim(), (256u64 << 20).to_string());
    let cpu = cg
        .lines()
        .find_map(|l| l.split_once(":cpu:").map(|(_, p)| p.to_string()))
        .expect("cpu cgroup");
    let shares = std::fs::read_to_string(format!("/sys/fs/cgroup/cpu{cpu}/cpu.shares")).unwrap();
    assert_eq!(shares.trim(), "512");
    let quota =
        std::fs::read_to_string(format!("/sys/fs/cgroup/cpu{cpu}/cpu.cfs_quota_us")).unwrap();
    assert_eq!(quota.trim(), "-1");
}

#[test]
fn env_values_round_trip() {
    let rt = Rt::new();
    let project = unique("p");
    let nasty = [
        ("QUOTES", "she said \"hi\" and 'bye'"),
        ("DOLLAR", "$HOME ${PATH} $(id) `id`"),
        ("NEWLINES", "line1\nline2\n\nline4"),
        ("BACKSLASH", "a\\b\\\\c\\n\\"),
        ("EMPTY", ""),
    ];
    let mut s = spec(&project, "env");
    s.env = nasty
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let pid = rt.boot(&s).pid.unwrap();
    for (k, v) in nasty {
        // Through the env file, in a clean environment (as a cron job's sh would source it).
        let out = sh(
            pid,
            &format!("env -i sh -c '. /etc/boxes-env; printf %s \"${k}\"'"),
        );
        assert_eq!(out.stdout, v, "{k} via /etc/boxes-env");
        // Through the process environment.
        let out = sh(pid, &format!("printf %s \"${k}\""));
        assert_eq!(out.stdout, v, "{k} via the environment");
    }
}

#[test]
fn stop_wipes_tmp_and_run_keeps_root_and_resume_restarts() {
    let rt = Rt::new();
    let project = unique("p");
    let mut s = spec(&project, "keep");
    s.grace_seconds = 2;
    let pid = rt.boot(&s).pid.unwrap();
    let out = sh(
        pid,
        "echo root > /root/kept; echo tmp > /tmp/gone; echo run > /run/gone; echo home > /home/kept",
    );
    assert_eq!(out.code, 0, "{out:?}");
    rt.rt.stop(&project, "keep").unwrap();
    assert_eq!(
        rt.rt.status(&project, "keep").unwrap().phase,
        Phase::Stopped
    );
    assert!(!forkr_node_agent::runtime::process_running(pid));
    // Stopping again is fine.
    rt.rt.stop(&project, "keep").unwrap();

    let st = rt.rt.resume(&project, "keep").unwrap();
    assert_eq!(st.phase, Phase::Running);
    let pid2 = st.pid.unwrap();
    assert_ne!(pid, pid2);
    let out = sh(
        pid2,
        "cat /root/kept /home/kept; ls -A /tmp | wc -l; ls -A /run | wc -l; grep -c boxes-env /etc/bash.bashrc",
    );
    assert_eq!(out.stdout, "root\nhome\n0\n0\n1\n", "{out:?}");
}

#[test]
fn stop_escalates_to_sigkill_after_grace() {
    let rt = Rt::new();
    let project = unique("p");
    let mut s = spec(&project, "stubborn");
    s.grace_seconds = 1;
    let pid = rt.boot(&s).pid.unwrap();
    // tini forwards SIGTERM to its child; a stopped child keeps it pending, so tini (and the
    // box) only end with the SIGKILL that follows the grace period.
    let out = sh(pid, "kill -STOP $(cat /proc/1/task/1/children)");
    assert_eq!(out.code, 0, "{out:?}");
    let t = std::time::Instant::now();
    rt.rt.stop(&project, "stubborn").unwrap();
    let took = t.elapsed();
    assert!(!forkr_node_agent::runtime::process_running(pid));
    assert!(took >= std::time::Duration::from_secs(1), "{took:?}");
    assert!(took < std::time::Duration::from_secs(10), "{took:?}");
}

#[test]
fn stop_is_quick_when_pid1_obeys_and_ignores_stray_processes() {
    let rt = Rt::new();
    let project = unique("p");
    let mut s = spec(&project, "quick");
    s.grace_seconds = 30;
    let pid = rt.boot(&s).pid.unwrap();
    let bg = forkr_node_agent::exec::spawn_background(
        &forkr_node_agent::exec::Target::new(pid),
        &forkr_node_agent::exec::ExecRequest {
            args: vec!["trap '' TERM; while :; do sleep 1; done".into()],
            sh: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(bg > 1);
    let t = std::time::Instant::now();
    rt.rt.stop(&project, "quick").unwrap();
    assert!(!forkr_node_agent::runtime::process_running(pid));
    assert!(t.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn recovery_adopts_running_boxes_and_reports_dead_ones() {
    let mut rt = Rt::new();
    let project = unique("p");
    let alive = rt.boot(&spec(&project, "alive")).pid.unwrap();
    let doomed = rt.boot(&spec(&project, "doomed")).pid.unwrap();
    // The box dies while the agent is away.
    forkr_node_agent::sys::kill(doomed, libc::SIGKILL).unwrap();
    let t = std::time::Instant::now();
    while forkr_node_agent::runtime::process_running(doomed) && t.elapsed().as_secs() < 5 {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    rt.restart();
    let find = |n: &str| rt.recovered.iter().find(|s| s.name == n).cloned().unwrap();
    assert_eq!(find("alive").phase, Phase::Running);
    assert_eq!(find("alive").pid, Some(alive), "not restarted");
    assert_eq!(find("doomed").phase, Phase::Dead);
    assert_eq!(rt.rt.status(&project, "doomed").unwrap().phase, Phase::Dead);
    // A dead box resumes.
    assert_eq!(
        rt.rt.resume(&project, "doomed").unwrap().phase,
        Phase::Running
    );
    // Forgetting a box stops it; its root stays in the pool.
    rt.rt.remove(&project, "doomed").unwrap();
    assert!(rt.rt.status(&project, "doomed").is_err());
    assert!(rt.root(&project, "doomed").exists());
}
