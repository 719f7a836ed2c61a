//! Writes the CRD YAML into charts/forkr/crds (or `--out DIR`), or with `--check` fails when the
//! files there differ from what the types generate.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Parser;

#[derive(Parser)]
#[command(
    name = "forkr-crdgen",
    about = "Generate Forkr's CustomResourceDefinitions"
)]
struct Args {
    /// Directory to write into.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../charts/forkr/crds"))]
    out: PathBuf,
    /// Compare instead of writing; exit 1 on any difference.
    #[arg(long)]
    check: bool,
    /// Drop CEL rules (x-kubernetes-validations), for clusters older than 1.25.
    #[arg(long)]
    without_cel: bool,
    /// Print every CRD to stdout as one multi-document YAML stream instead of writing files.
    #[arg(long, conflicts_with_all = ["check"])]
    stdout: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut stale = Vec::new();
    for crd in forkr_crds::crdgen::crds() {
        let crd = if args.without_cel {
            forkr_crds::crdgen::without_cel(crd)
        } else {
            crd
        };
        let text = forkr_crds::crdgen::render(&crd)?;
        if args.stdout {
            print!("---\n{text}");
            continue;
        }
        let path = args.out.join(forkr_crds::crdgen::file_name(&crd));
        if args.check {
            let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
            if on_disk != text {
                stale.push(path.display().to_string());
            }
        } else {
            std::fs::create_dir_all(&args.out)
                .with_context(|| format!("creating {}", args.out.display()))?;
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            println!("wrote {}", path.display());
        }
    }
    if !stale.is_empty() {
        bail!(
            "out of date (run `cargo run -p forkr-crds --bin forkr-crdgen`): {}",
            stale.join(", ")
        );
    }
    Ok(())
}
