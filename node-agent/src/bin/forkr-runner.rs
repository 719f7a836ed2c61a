//! `forkr-runner`: the entrypoint of every box (a runc container locally, the `fork` container of
//! the box's Pod in Kubernetes). Mounts the box's surfaces, then becomes `tini` inside the root.

use std::path::PathBuf;

use forkr_node_agent::runtime::runner;

fn main() {
    let mut args = std::env::args_os().skip(1);
    let mut config: Option<PathBuf> = None;
    while let Some(a) = args.next() {
        match a.to_str() {
            Some("--config") => config = args.next().map(PathBuf::from),
            Some("--help") | Some("-h") => {
                println!(
                    "usage: forkr-runner [--config FILE]\n\nReads the JSON configuration from FILE or from ${}.",
                    runner::CONFIG_ENV
                );
                return;
            }
            _ => {
                eprintln!("forkr-runner: unexpected argument {a:?}");
                std::process::exit(2);
            }
        }
    }
    let cfg = match runner::load(config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("forkr-runner: {e}");
            std::process::exit(2);
        }
    };
    let err = runner::boot(&cfg);
    eprintln!("forkr-runner: {err}");
    std::process::exit(1);
}
