//! Console sessions: a PTY, resize, raw bytes, and reattach with the last 64 KiB replayed.
#![allow(clippy::unwrap_used)]

mod rtkit;

use std::time::Duration;

use forkr_node_agent::exec::session::{Event, REPLAY_BYTES, Sessions};
use forkr_node_agent::exec::{ExecRequest, Target};
use forkr_node_agent::runtime::BoxSpec;
use rtkit::Rt;
use tokio::sync::mpsc::Receiver;

/// Reads events until the collected output contains `needle`.
async fn read_until(rx: &mut Receiver<Event>, seen: &mut Vec<u8>, needle: &str) {
    let fut = async {
        while !String::from_utf8_lossy(seen).contains(needle) {
            match rx.recv().await {
                Some(Event::Output(b)) => seen.extend(b),
                other => panic!("unexpected {other:?} before {needle:?}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .unwrap_or_else(|_| panic!("no {needle:?} in {:?}", String::from_utf8_lossy(seen)));
}

/// True when `line` was printed as a line of its own (not just typed).
fn printed(seen: &[u8], line: &str) -> bool {
    String::from_utf8_lossy(seen)
        .lines()
        .any(|l| l.trim_end_matches('\r') == line)
}

/// Waits until `sleep <secs>` runs in the box, so a ^C cannot arrive before it.
async fn wait_for_sleep(pid1: i32, secs: &str) {
    let probe = format!("ps | grep -c '[s]leep {secs}'");
    let ok = tokio::task::spawn_blocking(move || {
        rtkit::wait_until(10, || rtkit::sh(pid1, &probe).stdout.trim() != "0")
    })
    .await
    .unwrap();
    assert!(ok, "sleep {secs} never started");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_resize_raw_bytes_and_reattach_with_replay() {
    let rt = Rt::new();
    let pid = rt.boot(&BoxSpec::new("p", "tty")).pid.unwrap();
    let sessions = Sessions::default();
    let s = sessions
        .open(
            ("p", "tty"),
            &Target::new(pid),
            &ExecRequest::default(),
            24,
            80,
        )
        .unwrap();
    let (_, mut rx) = s.attach();
    let mut seen = Vec::new();
    s.write(b"tty; stty size\n").await.unwrap();
    read_until(&mut rx, &mut seen, "24 80").await;
    assert!(String::from_utf8_lossy(&seen).contains("/dev/pts/"));

    s.resize(40, 120).unwrap();
    s.write(b"stty size\n").await.unwrap();
    read_until(&mut rx, &mut seen, "40 120").await;

    // Raw bytes: a control character reaches the terminal as is (^C interrupts a sleep).
    s.write(b"sleep 31; echo after-sleep\n").await.unwrap();
    wait_for_sleep(pid, "31").await;
    s.write(&[0x03]).await.unwrap();
    s.write(b"echo inter$((6*7))rupted\n").await.unwrap();
    read_until(&mut rx, &mut seen, "inter42rupted").await;
    // Interrupted: the echo never ran (the typed line itself is echoed, maybe twice).
    assert!(
        !printed(&seen, "after-sleep"),
        "{}",
        String::from_utf8_lossy(&seen)
    );

    // A signal from the client goes to the terminal's foreground group, like ^C.
    s.write(b"sleep 32; echo after-second-sleep\n")
        .await
        .unwrap();
    wait_for_sleep(pid, "32").await;
    s.signal(libc::SIGINT).unwrap();
    s.write(b"echo sig$((6*7))nalled\n").await.unwrap();
    read_until(&mut rx, &mut seen, "sig42nalled").await;
    assert!(!printed(&seen, "after-second-sleep"));

    // The client drops; output produced meanwhile is replayed on reattach.
    drop(rx);
    s.detach();
    s.write(b"echo while-away-$((2*21))\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let reattached = sessions.get(&s.id, ("p", "tty")).unwrap();
    let (replay, mut rx) = reattached.attach();
    assert!(
        String::from_utf8_lossy(&replay).contains("while-away-42"),
        "{}",
        String::from_utf8_lossy(&replay)
    );

    // Only the last 64 KiB are kept.
    let mut seen = Vec::new();
    reattached
        .write(b"head -c 100000 /dev/zero | tr '\\0' a; echo; echo big-$((1+1))done\n")
        .await
        .unwrap();
    read_until(&mut rx, &mut seen, "big-2done\r\n").await;
    drop(rx);
    let (replay, mut rx) = sessions.get(&s.id, ("p", "tty")).unwrap().attach();
    assert_eq!(replay.len(), REPLAY_BYTES);
    assert!(String::from_utf8_lossy(&replay).contains("big-2done"));
    assert!(String::from_utf8_lossy(&replay).contains(&"a".repeat(60_000)));

    // The exit code comes through, and a late reattach still learns it.
    s.write(b"exit 5\n").await.unwrap();
    let code = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match rx.recv().await {
                Some(Event::Exit(c)) => return c,
                Some(Event::Output(_)) => {}
                None => panic!("stream ended without exit"),
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(code, 5);
    let (_, mut rx) = sessions.get(&s.id, ("p", "tty")).unwrap().attach();
    assert_eq!(rx.recv().await, Some(Event::Exit(5)));
    assert!(
        sessions.get(&s.id, ("p", "tty")).is_err(),
        "exited session is dropped after the last look"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consoles_without_a_client_are_hung_up_after_their_grace() {
    let rt = Rt::new();
    let pid = rt.boot(&BoxSpec::new("p", "idle")).pid.unwrap();
    let sessions = Sessions::with_grace(Duration::from_millis(300));
    let t = Target::new(pid);
    let idle = sessions
        .open(("p", "idle"), &t, &ExecRequest::default(), 24, 80)
        .unwrap();
    let (_, rx) = idle.attach();
    idle.write(b"exec sleep 33\n").await.unwrap();
    wait_for_sleep(pid, "33").await;
    // The client goes away without saying so; a kept one stays attached.
    drop(rx);
    let kept = sessions
        .open(("p", "idle"), &t, &ExecRequest::default(), 24, 80)
        .unwrap();
    let (_, _kept_rx) = kept.attach();
    tokio::time::sleep(Duration::from_millis(600)).await;
    // The next open reaps: the idle console is forgotten and its processes hung up.
    let _third = sessions
        .open(("p", "idle"), &t, &ExecRequest::default(), 24, 80)
        .unwrap();
    assert!(sessions.get(&idle.id, ("p", "idle")).is_err());
    assert!(sessions.get(&kept.id, ("p", "idle")).is_ok());
    let gone = tokio::task::spawn_blocking(move || {
        rtkit::wait_until(10, || {
            rtkit::sh(pid, "ps | grep -c '[s]leep 33'").stdout.trim() == "0"
        })
    })
    .await
    .unwrap();
    assert!(gone, "the idle console's processes were not hung up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detached_console_keeps_its_output_up_to_the_bound_and_loses_nothing() {
    use forkr_node_agent::exec::grace::DETACHED_BUFFER;
    let rt = Rt::new();
    let pid = rt.boot(&BoxSpec::new("p", "bp")).pid.unwrap();
    let sessions = Sessions::with_grace(Duration::from_secs(3600));
    let s = sessions
        .open(
            ("p", "bp"),
            &Target::new(pid),
            &ExecRequest::default(),
            24,
            80,
        )
        .unwrap();
    // No client: about 2 MiB of numbered lines, more than the bound.
    const LINES: u32 = 300_000;
    s.write(format!("seq 1 {LINES}; echo EN''D\n").as_bytes())
        .await
        .unwrap();
    let s2 = s.clone();
    let full = tokio::task::spawn_blocking(move || {
        rtkit::wait_until(60, || s2.unseen_bytes() >= DETACHED_BUFFER)
    })
    .await
    .unwrap();
    assert!(full, "the console never filled its buffer");
    // The terminal is no longer read: the buffer stops at the bound (plus one read).
    assert!(s.unseen_bytes() < DETACHED_BUFFER + 16 * 1024);
    assert_eq!(s.exit_code(), None);
    // A client attaches: the replay holds everything since the start, then the rest follows.
    let (replay, mut rx) = s.attach();
    let mut seen = replay;
    read_until(&mut rx, &mut seen, "\nEND").await;
    let text = String::from_utf8_lossy(&seen);
    let numbers: Vec<u32> = text
        .lines()
        .filter_map(|l| l.trim_end_matches('\r').parse().ok())
        .collect();
    assert_eq!(numbers.len(), LINES as usize, "lines lost or repeated");
    assert!(numbers.iter().copied().eq(1..=LINES), "lines out of order");
}
