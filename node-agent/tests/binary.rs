//! The `forkr-node-agent` binary end to end: it backs a non-btrfs pool directory with a loopback
//! image, serves on its Unix socket with token auth, and unmounts on SIGINT.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too

use std::process::{Command, Stdio};
use std::time::Duration;

use forkr_node_agent::rpc::storage::proto::storage_client::StorageClient;
use forkr_node_agent::rpc::storage::{BearerToken, proto};

/// Kills the agent if the test fails before stopping it.
struct Agent(std::process::Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn is_mounted(path: &std::path::Path) -> bool {
    std::fs::read_to_string("/proc/self/mounts")
        .unwrap()
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(path.to_str().unwrap()))
}

#[tokio::test(flavor = "multi_thread")]
async fn serves_a_loopback_pool_on_its_socket() {
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("pool");
    let sock = dir.path().join("agent.sock");
    let token = dir.path().join("token");
    std::fs::write(&token, "bin-token\n").unwrap();
    let mut agent = Agent(
        Command::new(env!("CARGO_BIN_EXE_forkr-node-agent"))
            .arg("--pool")
            .arg(&pool)
            .arg("--loopback-gib")
            .arg("1")
            .arg("--socket")
            .arg(&sock)
            .arg("--token-file")
            .arg(&token)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Up to 30 s: formatting and mounting the image is slow on a loaded CI machine.
    let mut channel = None;
    for _ in 0..600 {
        if let Ok(ch) = tonic::transport::Endpoint::try_from(format!("unix://{}", sock.display()))
            .unwrap()
            .connect()
            .await
        {
            channel = Some(ch);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let channel = channel.expect("agent socket");
    assert!(is_mounted(&pool), "loopback pool mounted");
    let mut c =
        StorageClient::with_interceptor(channel.clone(), BearerToken::new("bin-token").unwrap());
    assert!(
        c.list_bases(proto::Empty {})
            .await
            .unwrap()
            .into_inner()
            .bases
            .is_empty()
    );
    let mut wrong = StorageClient::with_interceptor(channel, BearerToken::new("nope").unwrap());
    assert_eq!(
        wrong.list_bases(proto::Empty {}).await.unwrap_err().code(),
        tonic::Code::Unauthenticated
    );

    // SAFETY: signalling our own child.
    unsafe { libc::kill(agent.0.id() as i32, libc::SIGINT) };
    let status = tokio::task::spawn_blocking(move || {
        // Drop then finds the child already reaped and does nothing.
        agent.0.wait().unwrap()
    })
    .await
    .unwrap();
    assert!(status.success(), "{status:?}");
    assert!(!is_mounted(&pool), "unmounted on exit");
    std::fs::remove_file(pool.with_extension("img")).unwrap();
}
