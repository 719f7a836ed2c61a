//! The background-exec wrapper (`exec::script::background`), run through a real bash on the
//! host: the engine and the Kubernetes fallback both start `--bg` commands with it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use forkr_node_agent::exec::{EXEC_LOG_DIR, script};

#[test]
fn a_background_wrapper_runs_its_script_as_written() {
    // Run through a real bash with the log directory pointed elsewhere: the pid printed
    // names the log, and a hostile script arrives in it byte for byte.
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().to_str().unwrap();
    let inner = "printf '%s\\n' \"it's\" '$(touch /x)' '`id`'";
    let wrapper = script::background(inner).replace(EXEC_LOG_DIR, log_dir);
    let out = std::process::Command::new("/bin/bash")
        .arg("-c")
        .arg(&wrapper)
        .output()
        .unwrap();
    let pid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let log = dir.path().join(format!("{pid}.log"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.lines().count() >= 3 || std::time::Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(text, "it's\n$(touch /x)\n`id`\n");
}
