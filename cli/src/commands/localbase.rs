//! Building `box-base` without a container engine: Debian with mmdebstrap, holding as many of
//! the documents' box-base packages as Debian has, plus the PATH, eatmydata and /work setup.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use sha2::{Digest, Sha256};

/// Debian's names for the documents' box-base list (`dnsutils` is `bind9-dnsutils` today; the
/// transitional name still installs it).
pub const PACKAGES: &[&str] = &[
    "bash",
    "build-essential",
    "ca-certificates",
    "curl",
    "wget",
    "ripgrep",
    "fd-find",
    "git",
    "less",
    "vim",
    "nano",
    "openssh-client",
    "openssh-sftp-server",
    "jq",
    "procps",
    "psmisc",
    "htop",
    "lsof",
    "iproute2",
    "iputils-ping",
    "net-tools",
    "dnsutils",
    "netcat-openbsd",
    "ncurses-bin",
    "util-linux",
    "tini",
    "python3",
    "python3-pip",
    "python3-venv",
    "python-is-python3",
    "tmux",
    "unzip",
    "zip",
    "eatmydata",
];

const SUITE: &str = "bookworm";

/// Runs outside the chroot with the root as `$1`.
const CUSTOMIZE: &str = r#"set -e
mkdir -p "$1/work" "$1/box/bin" "$1/box/all" "$1/box/proj"
printf '%s\n' 'export PATH="$HOME/.local/bin:/box/proj/bin:/box/bin:$PATH"' > "$1/etc/profile.d/forks-path.sh"
printf '%s\n' 'export PATH="$HOME/.local/bin:/box/proj/bin:/box/bin:$PATH"' >> "$1/etc/bash.bashrc"
printf '%s\n' 'export LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libeatmydata.so' > "$1/etc/profile.d/eatmydata.sh"
printf '%s\n' 'LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libeatmydata.so' >> "$1/etc/environment"
printf '%s\n' 'cd /work 2>/dev/null || true' >> "$1/root/.bashrc"
rm -rf "$1/var/lib/apt/lists/"* "$1/var/cache/apt/archives/"*.deb
"#;

/// The recipe's hash names the cached tarball, so a changed recipe builds anew.
fn recipe_key() -> String {
    let mut h = Sha256::new();
    h.update(SUITE);
    for p in PACKAGES {
        h.update(p);
        h.update([0]);
    }
    h.update(CUSTOMIZE);
    hex::encode(&h.finalize()[..8])
}

/// The box-base tarball, built with mmdebstrap into `cache` unless it is there already.
pub async fn build(cache: &Path) -> anyhow::Result<PathBuf> {
    let out = cache.join(format!("box-base-{SUITE}-{}.tar.gz", recipe_key()));
    if out.exists() {
        return Ok(out);
    }
    if which("mmdebstrap").is_none() {
        bail!(
            "building box-base needs mmdebstrap: apt-get install mmdebstrap (or pass --base-tarball)"
        );
    }
    std::fs::create_dir_all(cache).with_context(|| format!("creating {}", cache.display()))?;
    let tmp = cache.join(format!(".box-base-{}.tar.gz", std::process::id()));
    let log = cache.join("mmdebstrap.log");
    let status = tokio::process::Command::new("mmdebstrap")
        .arg("--variant=minbase")
        .arg(format!("--include={}", PACKAGES.join(",")))
        .arg(format!("--customize-hook={CUSTOMIZE}"))
        .arg(SUITE)
        .arg(&tmp)
        .stdout(std::fs::File::create(&log)?)
        .stderr(std::fs::File::options().append(true).open(&log)?)
        .status()
        .await
        .context("running mmdebstrap")?;
    if !status.success() {
        let _ = std::fs::remove_file(&tmp);
        bail!("mmdebstrap failed; see {}", log.display());
    }
    std::fs::rename(&tmp, &out)?;
    Ok(out)
}

fn which(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_string_lossy()
        .split(':')
        .map(|d| Path::new(d).join(bin))
        .find(|p| p.exists())
}
