//! `.forkr/config.yaml`: the local setup config that `4kr config` reads and writes.
//!
//! Where: `$FORKR_SETUP_DIR/config.yaml` when that is set; else the nearest `.forkr/config.yaml`
//! in the current directory or a parent; else `~/.forkr/config.yaml`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// Keys the config understands, and what each is for.
pub const KEYS: &[(&str, &str)] = &[
    ("profile", "the default profile every command targets"),
    (
        "env",
        "the environment (profile name) this config was written for",
    ),
    (
        "forkr_domain",
        "the deployment domain; derives api_url and ssh_host",
    ),
    (
        "api_url",
        "the API URL (default https://api.<forkr_domain>)",
    ),
    ("ssh_host", "the SSH gateway (default ssh.<forkr_domain>)"),
    ("token", "the API token"),
    ("insecure", "true to accept any TLS certificate"),
    ("ip", "the API's IP address, when DNS does not resolve it"),
];

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    values: BTreeMap<String, String>,
}

impl Config {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn values(&self) -> &BTreeMap<String, String> {
        &self.values
    }

    /// True when this config was written for `profile` (its `profile` or `env` key).
    pub fn describes(&self, profile: &str) -> bool {
        self.get("profile") == Some(profile) || self.get("env") == Some(profile)
    }

    pub fn derived_api_url(&self) -> Option<String> {
        self.get("api_url")
            .map(str::to_owned)
            .or_else(|| self.get("forkr_domain").map(|d| format!("https://api.{d}")))
    }

    pub fn derived_ssh_host(&self) -> Option<String> {
        self.get("ssh_host")
            .map(str::to_owned)
            .or_else(|| self.get("forkr_domain").map(|d| format!("ssh.{d}")))
    }

    pub fn set(&mut self, key: &str, value: &str) -> anyhow::Result<()> {
        check_key(key)?;
        self.values.insert(key.to_owned(), value.to_owned());
        Ok(())
    }

    pub fn unset(&mut self, key: &str) -> anyhow::Result<bool> {
        check_key(key)?;
        Ok(self.values.remove(key).is_some())
    }

    /// Reads the file; a missing file is an empty config.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        match std::fs::read_to_string(path) {
            Ok(text) if text.trim().is_empty() => Ok(Config::default()),
            Ok(text) => {
                let values: BTreeMap<String, serde_yaml_ng::Value> = serde_yaml_ng::from_str(&text)
                    .with_context(|| format!("reading {}", path.display()))?;
                let values = values
                    .into_iter()
                    .map(|(k, v)| {
                        let v = match v {
                            serde_yaml_ng::Value::String(s) => s,
                            serde_yaml_ng::Value::Null => String::new(),
                            other => serde_yaml_ng::to_string(&other)
                                .unwrap_or_default()
                                .trim()
                                .to_owned(),
                        };
                        (k, v)
                    })
                    .collect();
                Ok(Config { values })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Writes the file atomically (temp file, then rename), mode 0600: it may hold a token.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let dir = path.parent().context("config path has no directory")?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let tmp = dir.join(format!(".config.yaml.{}", std::process::id()));
        let text = serde_yaml_ng::to_string(&self.values)?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }
}

fn check_key(key: &str) -> anyhow::Result<()> {
    if KEYS.iter().any(|(k, _)| *k == key) {
        Ok(())
    } else {
        let known: Vec<&str> = KEYS.iter().map(|(k, _)| *k).collect();
        bail!(
            "unknown config key {key:?}; known keys: {}",
            known.join(", ")
        )
    }
}

/// The config file's path, as the module doc says.
pub fn config_path(env: &dyn Fn(&str) -> Option<String>, cwd: &Path) -> PathBuf {
    if let Some(dir) = env("FORKR_SETUP_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("config.yaml");
    }
    for dir in cwd.ancestors() {
        let candidate = dir.join(".forkr").join("config.yaml");
        if candidate.is_file() {
            return candidate;
        }
    }
    let home = env("HOME")
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "/root".to_owned());
    PathBuf::from(home).join(".forkr").join("config.yaml")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_round_trip_and_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/config.yaml");
        let mut c = Config::load(&path).unwrap();
        assert_eq!(c, Config::default());
        c.set("profile", "staging").unwrap();
        c.set("token", "fkr_x: with colon").unwrap();
        c.save(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        assert_eq!(Config::load(&path).unwrap(), c);
        assert_eq!(
            c.set("colour", "blue").unwrap_err().to_string(),
            "unknown config key \"colour\"; known keys: profile, env, forkr_domain, api_url, ssh_host, token, insecure, ip"
        );
        assert!(c.unset("profile").unwrap());
        assert!(!c.unset("profile").unwrap());
        std::fs::write(&path, "insecure: true\nenv:\n").unwrap();
        let loaded = Config::load(&path).unwrap();
        assert_eq!(
            (loaded.get("insecure"), loaded.get("env")),
            (Some("true"), None)
        );
        std::fs::write(&path, "[not, a, map]").unwrap();
        assert!(Config::load(&path).is_err());
    }

    #[test]
    fn where_the_file_is() {
        let dir = tempfile::tempdir().unwrap();
        let env_with = |setup: Option<String>, home: String| {
            move |k: &str| match k {
                "FORKR_SETUP_DIR" => setup.clone(),
                "HOME" => Some(home.clone()),
                _ => None,
            }
        };
        let home = dir.path().join("home").display().to_string();
        let work = dir.path().join("work/a/b");
        std::fs::create_dir_all(&work).unwrap();
        assert_eq!(
            config_path(&env_with(None, home.clone()), &work),
            dir.path().join("home/.forkr/config.yaml")
        );
        std::fs::create_dir_all(dir.path().join("work/.forkr")).unwrap();
        std::fs::write(dir.path().join("work/.forkr/config.yaml"), "").unwrap();
        assert_eq!(
            config_path(&env_with(None, home.clone()), &work),
            dir.path().join("work/.forkr/config.yaml")
        );
        assert_eq!(
            config_path(&env_with(Some("/srv/setup".into()), home), &work),
            PathBuf::from("/srv/setup/config.yaml")
        );
    }
}
