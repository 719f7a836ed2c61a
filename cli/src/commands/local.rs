//! `4kr local up | down | status`: Forkr on this machine, with no cluster.
//!
//! `up` starts `forkr-api --local` in the background (pid file and log in the data directory),
//! mints an admin token, writes the `local` profile into the config, and makes sure the
//! `box-base` base exists, building it with mmdebstrap when it does not. Every step is skipped
//! when it is already done, so `up` can be run again at any time.

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use forkr_api_proto::client::Client;
use indicatif::{ProgressBar, ProgressStyle};

use super::Context;
use super::localbase;

/// The profile `up` writes and selects.
pub const PROFILE: &str = "local";

pub struct LocalArgs {
    pub data_dir: PathBuf,
    pub listen: String,
    pub domain: String,
    /// Import this rootfs as box-base instead of building one.
    pub base_tarball: Option<PathBuf>,
    pub no_network: bool,
    /// Where forkr-api's reverse proxy (box URLs, published hosts) listens, or `off`.
    pub proxy_listen: String,
}

fn pid_file(data: &Path) -> PathBuf {
    data.join("forkr-api.pid")
}

fn log_file(data: &Path) -> PathBuf {
    data.join("forkr-api.log")
}

/// The server's pid, when its pid file names a live forkr-api.
fn running_pid(data: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(pid_file(data))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    exe.file_name()?
        .to_string_lossy()
        .starts_with("forkr-api")
        .then_some(pid)
}

/// `forkr-api`: FORKR_API_BIN, else next to this 4kr, else on PATH.
fn api_bin(ctx: &Context) -> PathBuf {
    if let Some(p) = ctx.env("FORKR_API_BIN") {
        return PathBuf::from(p);
    }
    let sibling = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("forkr-api")));
    match sibling {
        Some(p) if p.exists() => p,
        _ => PathBuf::from("forkr-api"),
    }
}

/// Shows a step: on the spinner's line at a terminal, as a plain line in logs (the quick start's).
fn step(bar: &ProgressBar, msg: &str) {
    bar.set_message(msg.to_owned());
    if bar.is_hidden() {
        eprintln!("- {msg}");
    } else {
        bar.println(format!("- {msg}"));
    }
}

async fn wait_ready(url: &str, data: &Path, pid: u32) -> anyhow::Result<()> {
    let client = Client::new(url, None, false)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if client.health().await.is_ok() {
            return Ok(());
        }
        if std::fs::metadata(format!("/proc/{pid}")).is_err() || Instant::now() > deadline {
            let log = std::fs::read_to_string(log_file(data)).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!(
                "forkr-api did not start; the end of {}:\n{}",
                log_file(data).display(),
                tail.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Makes the data directory, or tightens an older one, to mode 0700: it holds the database
/// (token hashes, box environments), the pool and the log, none of it for other users.
/// forkr-api does the same at startup; doing it here first leaves no moment when it is open.
pub fn private_data_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    if std::fs::metadata(dir)?.permissions().mode() & 0o7777 != 0o700 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("making {} private", dir.display()))?;
    }
    Ok(())
}

/// A command that carries no API token into the processes it starts: the server needs none,
/// and it outlives the shell that had them.
fn tokenless(bin: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(bin);
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        if k.starts_with("FORKR_") && k.ends_with("TOKEN") {
            cmd.env_remove(&key);
        }
    }
    cmd
}

fn start_server(ctx: &Context, a: &LocalArgs) -> anyhow::Result<u32> {
    use std::os::unix::fs::OpenOptionsExt;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(log_file(&a.data_dir))
        .with_context(|| format!("opening {}", log_file(&a.data_dir).display()))?;
    let mut cmd = tokenless(&api_bin(ctx));
    cmd.args(["--local", "--data-dir"])
        .arg(&a.data_dir)
        .args(["--listen", &a.listen, "--domain", &a.domain])
        .args(["--proxy-listen", &a.proxy_listen])
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Its own process group: a Ctrl-C at this terminal must not stop the server.
        .process_group(0);
    if a.no_network {
        cmd.arg("--no-network");
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {}", api_bin(ctx).display()))?;
    let pid = child.id();
    std::fs::write(pid_file(&a.data_dir), format!("{pid}\n"))?;
    Ok(pid)
}

fn mint_token(ctx: &Context, data: &Path) -> anyhow::Result<String> {
    let out = tokenless(&api_bin(ctx))
        .args(["token", "--admin", "--name", PROFILE, "--data-dir"])
        .arg(data)
        .output()
        .context("running forkr-api token")?;
    if !out.status.success() {
        bail!(
            "forkr-api token failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

pub async fn up(ctx: &Context, a: LocalArgs) -> anyhow::Result<String> {
    if std::fs::metadata("/proc/self")?.uid() != 0 {
        bail!("4kr local up must run as root: it mounts a btrfs pool and runs boxes with runc");
    }
    private_data_dir(&a.data_dir)?;
    let url = format!("http://{}", a.listen);
    let bar = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("{spinner} {msg} {elapsed}")
            .map_err(|e| anyhow::anyhow!("progress: {e}"))?,
    );
    bar.enable_steady_tick(Duration::from_millis(120));

    let pid = match running_pid(&a.data_dir) {
        Some(pid) => pid,
        None => {
            step(&bar, "starting forkr-api (the pool is made on first start)");
            start_server(ctx, &a)?
        }
    };
    wait_ready(&url, &a.data_dir, pid).await?;

    let config_path = ctx.config_path();
    let mut config = ctx.config()?;
    let token = match config
        .get("token")
        .filter(|_| config.get("api_url") == Some(url.as_str()))
    {
        Some(t)
            if Client::new(&url, Some(t.to_owned()), false)?
                .list_users("default")
                .await
                .is_ok() =>
        {
            t.to_owned()
        }
        _ => {
            step(&bar, "making an admin token");
            mint_token(ctx, &a.data_dir)?
        }
    };
    for (k, v) in [
        ("profile", PROFILE),
        ("env", PROFILE),
        ("api_url", url.as_str()),
        ("token", token.as_str()),
    ] {
        config.set(k, v)?;
    }
    config.save(&config_path)?;

    let client = Client::new(&url, Some(token), false)?;
    let bases = client.list_bases("default").await?;
    if !bases
        .iter()
        .any(|b| b.name == forkr_crds::labels::DEFAULT_BASE)
    {
        let tarball = match &a.base_tarball {
            Some(t) => t.clone(),
            None => {
                step(
                    &bar,
                    "building box-base with mmdebstrap (a few minutes the first time, cached after)",
                );
                localbase::build(&a.data_dir.join("cache")).await?
            }
        };
        step(&bar, "importing box-base");
        let f = tokio::fs::File::open(&tarball)
            .await
            .with_context(|| format!("opening {}", tarball.display()))?;
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(f));
        client
            .import_base(
                "default",
                forkr_crds::labels::DEFAULT_BASE,
                &Default::default(),
                body,
            )
            .await?;
    }
    bar.finish_and_clear();
    let proxy = if a.proxy_listen == "off" {
        String::new()
    } else {
        format!(
            "  proxy:   http://{} (box URLs and published hosts, by Host header)\n",
            a.proxy_listen
        )
    };
    Ok(format!(
        "forkr is up\n  api:     {url}\n{proxy}  data:    {}\n  log:     {}\n  profile: {PROFILE} (in {})\ntry: 4kr create mybox && 4kr exec mybox -- uname -a\n",
        a.data_dir.display(),
        log_file(&a.data_dir).display(),
        config_path.display()
    ))
}

/// Stops the server; the data, and boxes that are running, are left alone.
pub async fn down(data: &Path) -> anyhow::Result<String> {
    let Some(pid) = running_pid(data) else {
        let _ = std::fs::remove_file(pid_file(data));
        return Ok("forkr-api is not running\n".into());
    };
    let signal = |sig: &str| {
        std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
    };
    signal("-TERM").context("running kill")?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::metadata(format!("/proc/{pid}")).is_ok() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if std::fs::metadata(format!("/proc/{pid}")).is_ok() {
        signal("-KILL").context("running kill")?;
    }
    let _ = std::fs::remove_file(pid_file(data));
    Ok(format!(
        "forkr-api stopped; data kept in {}\n",
        data.display()
    ))
}

pub async fn status(ctx: &Context, data: &Path) -> anyhow::Result<String> {
    match running_pid(data) {
        None => Ok(format!(
            "forkr-api is not running (data: {})\n",
            data.display()
        )),
        Some(pid) => {
            let config = ctx.config()?;
            let url = config.get("api_url").unwrap_or("-").to_owned();
            let ready = match Client::new(&url, None, false) {
                Ok(c) => c.health().await.is_ok(),
                Err(_) => false,
            };
            Ok(format!(
                "forkr-api is running (pid {pid}, {})\n  api:  {url}\n  data: {}\n  log:  {}\n",
                if ready { "ready" } else { "not answering" },
                data.display(),
                log_file(data).display()
            ))
        }
    }
}
