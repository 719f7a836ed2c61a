//! `docs` and `completion`: text that comes from the binary itself.

/// The "Using forkr" guide, compiled in so that it matches this binary.
pub const GUIDE: &str = include_str!("../../../docs/guide.md");

pub fn run() -> String {
    GUIDE.to_owned()
}

/// The completion script for `shell`, generated from the same clap definition that parses.
pub fn completion(shell: clap_complete::Shell) -> String {
    let mut cmd = <crate::cli::Cli as clap::CommandFactory>::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "4kr", &mut out);
    String::from_utf8_lossy(&out).into_owned()
}
