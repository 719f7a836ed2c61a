//! `4kr inject BOX`: your codex auth and config, an SSH keypair and your git config, copied into
//! the box's /root with the modes 001 gives; known_hosts seeded with GitHub's keys; then an
//! `ssh -T git@github.com` check.
//!
//! Everything is found and read before anything is written, so a missing file changes nothing.
//! The check needs the network: when it does not authenticate (no route to GitHub, no ssh in the
//! box, a key GitHub does not know) the injection still stands, and 4kr says so on stderr as a
//! warning rather than failing a copy that succeeded.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use forkr_api_proto::client::{Client, is_not_found};
use forkr_api_proto::wire::{Command, ExecCommand, FileQuery};

use super::Context;

/// GitHub's published SSH host keys (docs.github.com, "GitHub's SSH key fingerprints").
pub const GITHUB_KNOWN_HOSTS: &str = "\
github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl
github.com ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEmKSENjQEezOmxkZMy7opKgwFB9nkt5YRrYMjNuG5N87uRgg6CLrbo5wAdT/y6v0mKV0U2w0WZ2YB/++Tpockg=
github.com ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQCj7ndNxQowgcQnjshcLrqPEiiphnt+VTTvDP6mHBL9j1aNUkY4Ue1gvwnGLVlOhGeYrnZaMgRK6+PKCUXaDbC7qtbW8gIkhL7aGCsOr/C56SJMy/BCZfxd1nWzAOxSDPgVsmerOBYfNqltV9/hWCqBywINIR+5dIg6JTJ72pcEpEjcYgXkE2YEFXV1JHnsKgbLWNlhScqb2UmyRkQyytRLtL+38TGxkxCflmO+5Z8CSSNY7GidjMIZ7Q4zMjA2n1nGrlTDkzwDCsw+wqFPGQA179cnfGWOWRVruj16z6XyvxvjJwbz0wQZ75XK5tKSb7FNyeIEs4TT4jk+S4dhPeAUC5y+bDYirYgM4GC7uEnztnZyaVWQ7B381AK4Qdrwt51ZqExKbQpTUNn+EjqoTwvqNj4kqx5QUCI0ThS/YkOxJCXmPUWZbhjpCg56i+2aB6CmK2JGhn57K5mj0MNdBXA4/WnwH6XoPWJzK5Nyu2zB3nAZp+S5hpQs+p1vN1/wsjk=
";

const KNOWN_HOSTS: &str = "/root/.ssh/known_hosts";

/// The flags of `inject`.
pub struct InjectArgs {
    pub codex_auth: Option<PathBuf>,
    pub codex_toml: Option<PathBuf>,
    pub ssh_key: Option<PathBuf>,
}

/// One local file and where it goes in the box.
#[derive(Debug, PartialEq, Eq)]
pub struct Copy {
    pub local: PathBuf,
    pub dest: String,
    pub mode: &'static str,
}

/// What an injection copies, found before anything is written.
#[derive(Debug, PartialEq, Eq)]
pub struct Plan {
    pub copies: Vec<Copy>,
    /// The private key's path inside the box.
    pub key: String,
    pub git_config: bool,
}

/// `~/x` against HOME; other paths as they are.
fn expand(path: &Path, home: &Path) -> PathBuf {
    match path.strip_prefix("~") {
        Ok(rest) => home.join(rest),
        Err(_) => path.to_path_buf(),
    }
}

fn must_exist(path: PathBuf, what: &str, flag: &str) -> anyhow::Result<PathBuf> {
    if path.is_file() {
        Ok(path)
    } else {
        anyhow::bail!("{what} not found: {} (pass {flag} PATH)", path.display())
    }
}

/// The git config 001 names, in order: GIT_CONFIG_GLOBAL, $XDG_CONFIG_HOME/git/config,
/// ~/.config/git/config, ~/.gitconfig. The first that is a file wins.
pub fn find_git_config(env: &dyn Fn(&str) -> Option<String>, home: &Path) -> Option<PathBuf> {
    let set = |k: &str| env(k).filter(|v| !v.is_empty());
    let candidates = [
        set("GIT_CONFIG_GLOBAL").map(PathBuf::from),
        set("XDG_CONFIG_HOME").map(|x| Path::new(&x).join("git/config")),
        Some(home.join(".config/git/config")),
        Some(home.join(".gitconfig")),
    ];
    candidates.into_iter().flatten().find(|p| p.is_file())
}

/// Finds every file, or says which one is missing.
pub fn plan(env: &dyn Fn(&str) -> Option<String>, a: InjectArgs) -> anyhow::Result<Plan> {
    let home = PathBuf::from(
        env("HOME")
            .filter(|h| !h.is_empty())
            .context("HOME is not set")?,
    );
    let auth = a
        .codex_auth
        .map_or_else(|| home.join(".codex/auth.json"), |p| expand(&p, &home));
    let toml = a
        .codex_toml
        .map_or_else(|| home.join(".codex/config.toml"), |p| expand(&p, &home));
    let auth = must_exist(auth, "codex auth", "--codex-auth")?;
    let toml = must_exist(toml, "codex config", "--codex-toml")?;
    let key = match a.ssh_key {
        Some(p) => must_exist(expand(&p, &home), "SSH key", "--ssh-key")?,
        None => ["id_ed25519", "id_rsa", "id_ecdsa"]
            .iter()
            .map(|n| home.join(".ssh").join(n))
            .find(|p| p.is_file())
            .with_context(|| {
                format!(
                    "no SSH key found: tried {0}/.ssh/id_ed25519, {0}/.ssh/id_rsa and {0}/.ssh/id_ecdsa (pass --ssh-key PATH)",
                    home.display()
                )
            })?,
    };
    let mut public = key.clone().into_os_string();
    public.push(".pub");
    let public = PathBuf::from(public);
    if !public.is_file() {
        anyhow::bail!("SSH public key not found: {}", public.display());
    }
    let key_name = key
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .context("the SSH key path names no file")?;
    let key_dest = format!("/root/.ssh/{key_name}");
    let mut copies = vec![
        Copy {
            local: auth,
            dest: "/root/.codex/auth.json".into(),
            mode: "600",
        },
        Copy {
            local: toml,
            dest: "/root/.codex/codex.toml".into(),
            mode: "600",
        },
        Copy {
            local: key,
            dest: key_dest.clone(),
            mode: "600",
        },
        Copy {
            local: public,
            dest: format!("{key_dest}.pub"),
            mode: "644",
        },
    ];
    let git = find_git_config(env, &home);
    let git_config = git.is_some();
    if let Some(g) = git {
        copies.push(Copy {
            local: g,
            dest: "/root/.gitconfig".into(),
            mode: "644",
        });
    }
    Ok(Plan {
        copies,
        key: key_dest,
        git_config,
    })
}

/// `existing` known_hosts with each of GitHub's keys appended unless it is there already.
pub fn seed_known_hosts(existing: &str) -> String {
    let mut out = existing.to_owned();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    for line in GITHUB_KNOWN_HOSTS.lines() {
        if !existing.lines().any(|l| l.trim() == line) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

async fn put(
    client: &Client,
    p: &str,
    b: &str,
    dest: &str,
    mode: &str,
    bytes: Vec<u8>,
) -> anyhow::Result<()> {
    let q = FileQuery {
        path: dest.to_owned(),
        mode: Some(mode.to_owned()),
        uid: Some(0),
        gid: Some(0),
    };
    client
        .put_file(p, b, &q, reqwest::Body::from(bytes))
        .await
        .with_context(|| format!("writing {dest}"))?;
    Ok(())
}

async fn read_known_hosts(client: &Client, p: &str, b: &str) -> anyhow::Result<String> {
    match client.get_file(p, b, KNOWN_HOSTS).await {
        Ok(f) => {
            let bytes = f.response.bytes().await?;
            Ok(String::from_utf8_lossy(&bytes).into_owned())
        }
        Err(e) if is_not_found(&e) => Ok(String::new()),
        Err(e) => Err(e.into()),
    }
}

/// Runs a program with its arguments as they are (no shell string: the key's file name is the
/// user's and may hold anything).
async fn run(
    client: &Client,
    p: &str,
    b: &str,
    command: &[&str],
) -> anyhow::Result<forkr_api_proto::wire::ExecOutput> {
    let cmd = ExecCommand {
        run: Command {
            command: command.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        },
        ..Default::default()
    };
    Ok(client.exec(p, b, &cmd).await?)
}

/// `ssh -T git@github.com` answers exit 1 with "successfully authenticated" when the key works.
async fn check_github(client: &Client, p: &str, b: &str, key: &str) -> anyhow::Result<()> {
    let out = run(
        client,
        p,
        b,
        &[
            "ssh",
            "-T",
            "-i",
            key,
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=10",
            "-o",
            "StrictHostKeyChecking=yes",
            "git@github.com",
        ],
    )
    .await?;
    let said = format!("{}{}", out.stderr, out.stdout);
    let last = said
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no output")
        .trim();
    if said.contains("successfully authenticated") {
        eprintln!("ssh -T git@github.com: {last}");
    } else {
        eprintln!(
            "warning: ssh -T git@github.com did not authenticate (exit {}): {last}",
            out.exit_code
        );
    }
    Ok(())
}

pub async fn inject(
    ctx: &Context,
    target: &str,
    args: InjectArgs,
    project: Option<&str>,
) -> anyhow::Result<String> {
    let (p, b) = ctx.box_ref(target, project)?;
    let plan = plan(&|k| ctx.env(k), args)?;
    let mut contents = Vec::new();
    for c in &plan.copies {
        let bytes =
            std::fs::read(&c.local).with_context(|| format!("reading {}", c.local.display()))?;
        contents.push(bytes);
    }
    let client = ctx.client()?;
    for (c, bytes) in plan.copies.iter().zip(contents) {
        put(&client, &p, &b, &c.dest, c.mode, bytes).await?;
    }
    let known = seed_known_hosts(&read_known_hosts(&client, &p, &b).await?);
    put(&client, &p, &b, KNOWN_HOSTS, "644", known.into_bytes()).await?;
    let out = run(
        &client,
        &p,
        &b,
        &["chmod", "700", "/root/.ssh", "/root/.codex"],
    )
    .await?;
    if out.exit_code != 0 {
        anyhow::bail!(
            "chmod 700 /root/.ssh /root/.codex failed: {}",
            out.stderr.trim()
        );
    }
    check_github(&client, &p, &b, &plan.key).await?;
    let git = if plan.git_config { ", git config" } else { "" };
    Ok(format!(
        "OK: injected codex auth/config, ssh keypair{git} into {p}:{b}\n"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: Vec<(&'static str, String)>) -> impl Fn(&str) -> Option<String> {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
    }

    fn touch(p: &Path) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, "x").unwrap();
    }

    fn none() -> InjectArgs {
        InjectArgs {
            codex_auth: None,
            codex_toml: None,
            ssh_key: None,
        }
    }

    #[test]
    fn defaults_discovery_order_and_missing_files() {
        let home = tempfile::tempdir().unwrap();
        let h = home.path();
        let env = env_of(vec![("HOME", h.display().to_string())]);
        let err = plan(&env, none()).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "codex auth not found: {}/.codex/auth.json (pass --codex-auth PATH)",
                h.display()
            )
        );
        touch(&h.join(".codex/auth.json"));
        touch(&h.join(".codex/config.toml"));
        let err = plan(&env, none()).unwrap_err().to_string();
        assert!(err.starts_with("no SSH key found: tried "), "{err}");
        // id_rsa and id_ecdsa: id_rsa comes first; id_ed25519 beats both.
        touch(&h.join(".ssh/id_ecdsa"));
        touch(&h.join(".ssh/id_rsa"));
        let err = plan(&env, none()).unwrap_err().to_string();
        assert_eq!(
            err,
            format!("SSH public key not found: {}/.ssh/id_rsa.pub", h.display())
        );
        touch(&h.join(".ssh/id_rsa.pub"));
        assert_eq!(plan(&env, none()).unwrap().key, "/root/.ssh/id_rsa");
        touch(&h.join(".ssh/id_ed25519"));
        touch(&h.join(".ssh/id_ed25519.pub"));
        let p = plan(&env, none()).unwrap();
        assert_eq!(p.key, "/root/.ssh/id_ed25519");
        assert!(!p.git_config);
        let dests: Vec<(&str, &str)> = p.copies.iter().map(|c| (c.dest.as_str(), c.mode)).collect();
        assert_eq!(
            dests,
            [
                ("/root/.codex/auth.json", "600"),
                ("/root/.codex/codex.toml", "600"),
                ("/root/.ssh/id_ed25519", "600"),
                ("/root/.ssh/id_ed25519.pub", "644"),
            ]
        );
        // Git config: ~/.gitconfig < ~/.config/git/config < XDG < GIT_CONFIG_GLOBAL.
        touch(&h.join(".gitconfig"));
        assert_eq!(find_git_config(&env, h), Some(h.join(".gitconfig")));
        touch(&h.join(".config/git/config"));
        assert_eq!(find_git_config(&env, h), Some(h.join(".config/git/config")));
        touch(&h.join("xdg/git/config"));
        touch(&h.join("global"));
        let env2 = env_of(vec![
            ("HOME", h.display().to_string()),
            ("XDG_CONFIG_HOME", h.join("xdg").display().to_string()),
        ]);
        assert_eq!(find_git_config(&env2, h), Some(h.join("xdg/git/config")));
        let env3 = env_of(vec![
            ("HOME", h.display().to_string()),
            ("XDG_CONFIG_HOME", h.join("xdg").display().to_string()),
            ("GIT_CONFIG_GLOBAL", h.join("global").display().to_string()),
        ]);
        assert_eq!(find_git_config(&env3, h), Some(h.join("global")));
        let p = plan(&env3, none()).unwrap();
        assert!(p.git_config);
        assert_eq!(p.copies.last().unwrap().local, h.join("global"));
        // Explicit paths, with ~ expanded; a missing explicit key is an error, not a fallback.
        touch(&h.join("keys/work"));
        let a = InjectArgs {
            codex_auth: Some(PathBuf::from("~/.codex/auth.json")),
            codex_toml: None,
            ssh_key: Some(PathBuf::from("~/keys/work")),
        };
        let err = plan(&env, a).unwrap_err().to_string();
        assert_eq!(
            err,
            format!("SSH public key not found: {}/keys/work.pub", h.display())
        );
        let a = InjectArgs {
            codex_auth: None,
            codex_toml: None,
            ssh_key: Some(h.join("nope")),
        };
        assert_eq!(
            plan(&env, a).unwrap_err().to_string(),
            format!(
                "SSH key not found: {}/nope (pass --ssh-key PATH)",
                h.display()
            )
        );
    }

    #[test]
    fn known_hosts_are_seeded_once() {
        let once = seed_known_hosts("example.org ssh-ed25519 AAAA");
        assert!(once.starts_with("example.org ssh-ed25519 AAAA\ngithub.com ssh-ed25519 "));
        assert_eq!(once.lines().count(), 4);
        assert_eq!(seed_known_hosts(&once), once);
        assert_eq!(seed_known_hosts(""), GITHUB_KNOWN_HOSTS);
    }

    fn base64_decode(s: &str) -> Vec<u8> {
        let val = |c: u8| match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            _ => 63,
        };
        let bits: Vec<u8> = s.bytes().filter(|&c| c != b'=').map(val).collect();
        let mut out = Vec::new();
        for chunk in bits.chunks(4) {
            let mut n = 0u32;
            for (i, v) in chunk.iter().enumerate() {
                n |= u32::from(*v) << (18 - 6 * i);
            }
            let bytes = n.to_be_bytes();
            out.extend_from_slice(&bytes[1..chunk.len()]);
        }
        out
    }

    fn base64_encode(data: &[u8]) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in data.chunks(3) {
            let mut n = 0u32;
            for (i, b) in chunk.iter().enumerate() {
                n |= u32::from(*b) << (16 - 8 * i);
            }
            for i in 0..=chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }

    /// The keys are the ones whose fingerprints GitHub publishes.
    #[test]
    fn github_keys_match_the_published_fingerprints() {
        use sha2::Digest;
        let fingerprints: Vec<String> = GITHUB_KNOWN_HOSTS
            .lines()
            .map(|l| {
                let blob = base64_decode(l.split(' ').nth(2).unwrap());
                format!("SHA256:{}", base64_encode(&sha2::Sha256::digest(blob)))
            })
            .collect();
        assert_eq!(
            fingerprints,
            [
                "SHA256:+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU",
                "SHA256:p2QAMXNIC1TJYWeIOttrVc98/R1BUFWu3/LiyKgUfQM",
                "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s",
            ]
        );
    }
}
