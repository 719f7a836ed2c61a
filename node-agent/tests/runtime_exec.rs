//! The exec engine on a real box: exit codes, stdio, quoting, login shell, env, wd, users,
//! signals, background processes and their logs, ps.
#![allow(clippy::unwrap_used)]

mod rtkit;

use forkr_node_agent::exec::{self, ExecRequest, Target, User, logs};
use forkr_node_agent::runtime::BoxSpec;
use rtkit::{Rt, exec_raw, exec_req, sh, wait_until};

fn boot(rt: &Rt, name: &str) -> i32 {
    rt.boot(&BoxSpec::new("p", name)).pid.unwrap()
}

fn args(a: &[&str]) -> ExecRequest {
    ExecRequest {
        args: a.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

#[test]
fn exit_codes_stdio_and_binary_data() {
    let rt = Rt::new();
    let pid = boot(&rt, "io");
    assert_eq!(sh(pid, "exit 3").code, 3);
    assert_eq!(sh(pid, "true").code, 0);
    assert_eq!(sh(pid, "kill -KILL $$").code, 137);
    assert_eq!(exec_req(pid, &args(&["no-such-program"]), b"").code, 127);

    let out = sh(pid, "echo to-out; echo to-err >&2; echo more-out");
    assert_eq!(out.stdout, "to-out\nmore-out\n");
    assert_eq!(out.stderr, "to-err\n");

    // stdin streams through, and binary data survives both ways.
    let data: Vec<u8> = (0..=255u8).cycle().take(1 << 20).collect();
    let (code, stdout, stderr) = exec_raw(pid, &args(&["cat"]), &data);
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&stderr));
    assert!(stdout == data, "binary round trip differs");
    let (_, stdout, _) = exec_raw(pid, &args(&["wc", "-c"]), &data);
    assert_eq!(
        String::from_utf8_lossy(&stdout).trim(),
        (1 << 20).to_string()
    );
}

#[test]
fn a_command_starts_with_every_signal_at_its_default() {
    // An ignored signal stays ignored across exec: an agent started under `nohup` would hand
    // its ignored SIGHUP to every command, and the exec grace's hang-up would never end one.
    // SAFETY: this test's own process (nextest runs each test in one); nothing else runs here.
    unsafe { libc::signal(libc::SIGHUP, libc::SIG_IGN) };
    let rt = Rt::new();
    let pid = boot(&rt, "sigs");
    let out = sh(pid, "grep SigIgn /proc/self/status");
    let hex = out
        .stdout
        .trim()
        .trim_start_matches("SigIgn:")
        .trim()
        .to_owned();
    let ignored = u64::from_str_radix(&hex, 16).unwrap();
    assert_eq!(
        ignored & 1,
        0,
        "SIGHUP is ignored in the box: {}",
        out.stdout
    );
}

#[test]
fn args_are_words_and_sh_is_one_string() {
    let rt = Rt::new();
    let pid = boot(&rt, "quote");
    let out = exec_req(
        pid,
        &args(&["printf", "%s|", "a b", "$HOME", "'q'", "`id`", "x\ny"]),
        b"",
    );
    assert_eq!(out.stdout, "a b|$HOME|'q'|`id`|x\ny|");
    let out = exec_req(
        pid,
        &ExecRequest {
            args: vec![
                "echo".into(),
                "$((1+2))".into(),
                "&&".into(),
                "echo $HOME".into(),
            ],
            sh: true,
            ..Default::default()
        },
        b"",
    );
    assert_eq!(out.stdout, "3\n/root\n");
}

#[test]
fn login_shell_env_and_wd() {
    let rt = Rt::new();
    let pid = boot(&rt, "login");
    // /etc/profile.d ran (bash -lc), and the box's variables are there.
    let out = sh(
        pid,
        "echo $FORKR_PROFILE_RAN; echo $PATH; echo $BOX_NAME.$FORKR_PROJECT",
    );
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "1");
    assert!(
        lines[1].starts_with("/root/.local/bin:/box/proj/bin:/box/bin:"),
        "{}",
        lines[1]
    );
    assert_eq!(lines[2], "login.p");

    let out = exec_req(
        pid,
        &ExecRequest {
            args: vec!["printf '%s|%s' \"$FOO\" \"$TERM\"; pwd".into()],
            sh: true,
            env: vec![("FOO".into(), "bar \"baz\" $x".into())],
            wd: Some("/etc".into()),
            ..Default::default()
        },
        b"",
    );
    assert_eq!(out.stdout, "bar \"baz\" $x|xterm-256color/etc\n");
    let out = exec_req(
        pid,
        &ExecRequest {
            args: vec!["pwd".into()],
            wd: Some("/nonexistent".into()),
            ..Default::default()
        },
        b"",
    );
    assert_ne!(out.code, 0);
    assert!(out.stdout.is_empty());
    let bad = exec::command(
        &Target::new(pid),
        &ExecRequest {
            args: vec!["pwd".into()],
            wd: Some("relative".into()),
            ..Default::default()
        },
        exec::Stdio3::Pipes,
    );
    assert!(bad.is_err());
}

#[test]
fn users_get_fresh_passwd_lines_and_others_stay() {
    let rt = Rt::new();
    let pid = boot(&rt, "users");
    let out = sh(
        pid,
        "echo 'alice:x:1:1::/old:/bin/sh' >> /etc/passwd; echo 'bob:x:20001:20001::/home/bob:/bin/bash' >> /etc/passwd; echo 'alice:x:1:' >> /etc/group",
    );
    assert_eq!(out.code, 0);
    let alice = User {
        name: "alice".into(),
        uid: 20000,
    };
    let out = exec_req(
        pid,
        &ExecRequest {
            args: vec![
                "id -u; id -G; whoami; echo $HOME $USER; pwd; touch ~/mine && stat -c %u ~/mine; grep CapEff /proc/self/status"
                    .into(),
            ],
            sh: true,
            user: Some(alice.clone()),
            ..Default::default()
        },
        b"",
    );
    assert_eq!(
        out.stdout,
        "20000\n20000\nalice\n/home/alice alice\n/home/alice\n20000\nCapEff:\t0000000000000000\n",
        "{out:?}"
    );
    let out = sh(
        pid,
        "grep -c '^alice:' /etc/passwd; grep '^alice:' /etc/passwd; grep -c '^bob:' /etc/passwd; grep '^alice:' /etc/group; grep -c root /etc/passwd",
    );
    assert_eq!(
        out.stdout,
        "1\nalice:x:20000:20000::/home/alice:/bin/bash\n1\nalice:x:20000:\n1\n"
    );
    // A second exec as alice leaves exactly one line.
    exec_req(
        pid,
        &ExecRequest {
            args: vec!["true".into()],
            user: Some(alice),
            ..Default::default()
        },
        b"",
    );
    assert_eq!(sh(pid, "grep -c '^alice:' /etc/passwd").stdout, "1\n");
    // Bad names and low UIDs are refused.
    for user in [
        User {
            name: "root".into(),
            uid: 20002,
        },
        User {
            name: "Bad!".into(),
            uid: 20002,
        },
        User {
            name: "carol".into(),
            uid: 0,
        },
    ] {
        let r = exec::command(
            &Target::new(pid),
            &ExecRequest {
                args: vec!["true".into()],
                user: Some(user.clone()),
                ..Default::default()
            },
            exec::Stdio3::Pipes,
        );
        assert!(r.is_err(), "{user:?} accepted");
    }
}

#[test]
fn signals_are_forwarded_to_the_command() {
    let rt = Rt::new();
    let pid = boot(&rt, "sig");
    let req = ExecRequest {
        args: vec!["trap 'echo got-term; exit 7' TERM; sleep 30 & echo ready; wait".into()],
        sh: true,
        ..Default::default()
    };
    let mut p = exec::command(&Target::new(pid), &req, exec::Stdio3::Pipes).unwrap();
    let mut child = p.cmd.spawn().unwrap();
    drop(child.stdin.take());
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 6];
    std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
    assert_eq!(&first, b"ready\n");
    exec::signal_exec(child.id(), libc::SIGTERM).unwrap();
    let t = std::time::Instant::now();
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert_eq!(rest, "got-term\n");
    assert_eq!(exec::exit_code(status), 7);
    // The sleep got the signal too (same process group), so nothing lingers holding stdout.
    assert!(t.elapsed() < std::time::Duration::from_secs(10));
}

#[test]
fn background_exec_survives_and_logs_by_pid() {
    let rt = Rt::new();
    let pid1 = boot(&rt, "bg");
    let t = Target::new(pid1);
    let bg = exec::spawn_background(
        &t,
        &ExecRequest {
            args: vec!["echo started; echo oops >&2; sleep 1; echo done".into()],
            sh: true,
            ..Default::default()
        },
    )
    .unwrap();
    // The caller is gone (spawn_background returned); the process lives on in the box.
    let out = sh(
        pid1,
        &format!("kill -0 {bg} && echo alive; cat /proc/{bg}/comm"),
    );
    assert!(out.stdout.starts_with("alive\n"), "{out:?}");
    assert!(wait_until(10, || {
        logs::read_log(&t, Some(bg), 0)
            .map(|l| l.ends_with(b"done\n"))
            .unwrap_or(false)
    }));
    let log = logs::read_log(&t, Some(bg), 0).unwrap();
    assert_eq!(String::from_utf8_lossy(&log), "started\noops\ndone\n");
    assert_eq!(logs::read_log(&t, Some(bg), 8).unwrap(), b"oops\ndone\n");
    let out = sh(pid1, &format!("ls /tmp/boxes/exec/{bg}.log"));
    assert_eq!(out.code, 0);

    let err = logs::read_log(&t, None, 0).unwrap_err().to_string();
    assert!(err.contains("--pid is required"), "{err}");
    let err = logs::read_log(&t, Some(999_999), 0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no log for pid 999999"), "{err}");

    // As a project user: the log directory is writable for them too.
    let bg = exec::spawn_background(
        &t,
        &ExecRequest {
            args: vec!["id -u".into()],
            sh: true,
            user: Some(User {
                name: "dora".into(),
                uid: 20005,
            }),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(wait_until(10, || {
        logs::read_log(&t, Some(bg), 0).is_ok_and(|l| l == b"20005\n")
    }));
}

#[test]
fn ps_lists_the_box_processes() {
    let rt = Rt::new();
    let pid = boot(&rt, "ps");
    let out = exec_req(pid, &exec::ps_request(&[]), b"");
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("tini"), "{}", out.stdout);
    assert!(out.stdout.contains("sleep infinity"), "{}", out.stdout);
    let first = out.stdout.lines().nth(1).unwrap_or_default();
    assert!(
        first.trim_start().starts_with("1 "),
        "PID 1 first: {}",
        out.stdout
    );
}

// Finding PID 1 in Kubernetes mode (containerd's records, not a process's look): tests/pid1.rs.

// The exec driver (`exec::stream`), shared by local mode and the agent.

use std::time::Duration;

use forkr_node_agent::exec::grace::DETACHED_BUFFER;
use forkr_node_agent::exec::stream::{self, Input, Output, PIPE_BYTES};

/// The host pid of a process whose command line is exactly `words`.
fn host_pid_of(words: &[&str]) -> Option<i32> {
    let want: Vec<u8> = words
        .iter()
        .flat_map(|w| [w.as_bytes(), b"\0"].concat())
        .collect();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        (std::fs::read(e.path().join("cmdline")).ok()? == want).then_some(pid)
    })
}

fn wait_for_pid(words: &[&str]) -> i32 {
    let mut found = None;
    assert!(
        wait_until(30, || {
            found = host_pid_of(words);
            found.is_some()
        }),
        "{words:?} never started"
    );
    found.unwrap()
}

/// Everything a driver sends until its exit code.
async fn collect(output: &mut tokio::sync::mpsc::Receiver<Output>) -> (Vec<u8>, Vec<u8>, i32) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    while let Some(o) = output.recv().await {
        match o {
            Output::Stdout(b) => out.extend(b),
            Output::Stderr(b) => err.extend(b),
            Output::Exit(c) => return (out, err, c),
            Output::Session(_) => {}
        }
    }
    panic!("the driver ended without an exit code");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_driver_hangs_up_a_foreground_exec_once_its_client_is_gone_past_the_grace() {
    let rt = Rt::new();
    let pid1 = boot(&rt, "hup");
    let t = Target::new(pid1);
    // An attached client is never hung up, however short the grace.
    let mut kept =
        stream::pipes(&t, &args(&["sh", "-c", "sleep 1; echo ok"]), Duration::ZERO).unwrap();
    let (out, _, code) = collect(&mut kept.output).await;
    assert_eq!((out.as_slice(), code), (&b"ok\n"[..], 0));

    let gone = stream::pipes(&t, &args(&["sleep", "4101"]), Duration::from_millis(300)).unwrap();
    let sleeper = wait_for_pid(&["sleep", "4101"]);
    // The client dies without a word: its output end goes away, its input end stays open.
    drop(gone.output);
    let hung_up = tokio::task::spawn_blocking(move || {
        wait_until(30, || {
            !std::path::Path::new(&format!("/proc/{sleeper}")).exists()
        })
    })
    .await
    .unwrap();
    assert!(hung_up, "the orphaned sleep was not hung up");
    drop(gone.input);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_driver_forwards_signals_to_a_plain_exec() {
    let rt = Rt::new();
    let pid1 = boot(&rt, "dsig");
    let req = ExecRequest {
        args: vec!["trap 'echo got-term; exit 7' TERM; sleep 30 & echo ready; wait".into()],
        sh: true,
        ..Default::default()
    };
    let mut s = stream::pipes(&Target::new(pid1), &req, Duration::from_secs(60)).unwrap();
    s.input.send(Input::Eof).await.unwrap();
    assert_eq!(
        s.output.recv().await,
        Some(Output::Stdout(b"ready\n".to_vec()))
    );
    s.input.send(Input::Signal(libc::SIGTERM)).await.unwrap();
    let (out, _, code) = collect(&mut s.output).await;
    assert_eq!(String::from_utf8_lossy(&out), "got-term\n");
    assert_eq!(code, 7);
}

/// F_GETPIPE_SZ of another process's descriptor, through /proc (the same pipe).
fn pipe_size(pid: i32, fd: i32) -> i32 {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(format!("/proc/{pid}/fd/{fd}")).unwrap();
    // SAFETY: plain fcntl on an open fd.
    unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETPIPE_SZ) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_driver_uses_one_mib_pipes() {
    let rt = Rt::new();
    let pid1 = boot(&rt, "pipes");
    let s = stream::pipes(
        &Target::new(pid1),
        &args(&["sleep", "4102"]),
        Duration::ZERO,
    )
    .unwrap();
    let sleeper = wait_for_pid(&["sleep", "4102"]);
    for fd in [1, 2] {
        assert_eq!(pipe_size(sleeper, fd), PIPE_BYTES as i32, "fd {fd}");
    }
    drop(s);
}

/// `(wchan, bytes written so far)` of a process.
fn write_state(pid: i32) -> Option<(String, u64)> {
    let wchan = std::fs::read_to_string(format!("/proc/{pid}/wchan")).ok()?;
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    let wchar = io
        .lines()
        .find_map(|l| l.strip_prefix("wchar: "))?
        .trim()
        .parse()
        .ok()?;
    Some((wchan, wchar))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detached_exec_blocks_on_a_full_pipe_instead_of_growing_memory() {
    let rt = Rt::new();
    let pid1 = boot(&rt, "bp");
    const TOTAL: u64 = 256 << 20;
    let words = ["head", "-c", "268435456", "/dev/zero"];
    let s = stream::pipes(&Target::new(pid1), &args(&words), Duration::from_secs(3600)).unwrap();
    drop(s.output);
    let writer = wait_for_pid(&words);
    // Blocked in a pipe write, and no longer moving: the driver stopped reading.
    let mut last = None;
    let blocked = tokio::task::spawn_blocking(move || {
        wait_until(60, || {
            std::thread::sleep(Duration::from_millis(200));
            let now = write_state(writer);
            let settled = now.as_ref().is_some_and(|(w, _)| w.contains("pipe")) && now == last;
            last = now;
            settled
        })
        .then_some(last)
    })
    .await
    .unwrap();
    let (_, written) = blocked
        .flatten()
        .expect("the writer never settled in a pipe write");
    // What it wrote sits in the kept buffer, the driver's queue and the pipe: bounded, far
    // below what it wanted to write.
    let bound = (DETACHED_BUFFER + 7 * PIPE_BYTES) as u64;
    assert!(written <= bound, "{written} bytes written, bound {bound}");
    assert!(written < TOTAL);
    assert!(std::path::Path::new(&format!("/proc/{writer}")).exists());
    drop(s.input);
}

#[test]
fn hostile_words_and_env_run_literally_in_a_box_and_in_the_fallback_script() {
    use forkr_node_agent::exec::script;
    let rt = Rt::new();
    let pid = boot(&rt, "quote");
    let hostile = [
        "it's",
        "\"double\"",
        "$(touch /tmp/pwned)",
        "`touch /tmp/pwned`",
        "a\nb",
        "'; exit 7; '",
        "$HOME *",
    ];
    for w in hostile {
        let out = exec_req(pid, &args(&["printf", "[%s]", w]), b"");
        assert_eq!(out.stdout, format!("[{w}]"), "{w:?}");
        // The fallback's text (what Kubernetes exec runs) in the same box's bash.
        let req = ExecRequest {
            args: vec![r#"printf '%s\n' "$V""#.into()],
            sh: true,
            env: vec![("V".into(), "first".into()), ("V".into(), w.into())],
            ..Default::default()
        };
        let text = script::fallback(&req).unwrap();
        let out = exec_req(pid, &args(&["bash", "-c", &text]), b"");
        assert_eq!(out.stdout, format!("{w}\n"), "{w:?}: {text} {}", out.stderr);
        // And the engine's own environment path gives the same.
        assert_eq!(exec_req(pid, &req, b"").stdout, format!("{w}\n"), "{w:?}");
    }
    assert_eq!(
        sh(pid, "ls /tmp/pwned 2>/dev/null | wc -l").stdout.trim(),
        "0"
    );
    assert!(exec::command(&Target::new(pid), &args(&["a\0b"]), exec::Stdio3::Pipes).is_err());
}
