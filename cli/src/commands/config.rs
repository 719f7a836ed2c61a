use std::collections::BTreeSet;

use anyhow::bail;

use super::Context;
use crate::cli::ConfigCommand;
use crate::target::profile_var;

pub fn run(ctx: &Context, cmd: ConfigCommand) -> anyhow::Result<String> {
    let path = ctx.config_path();
    match cmd {
        ConfigCommand::Path { .. } => Ok(format!("{}\n", path.display())),
        ConfigCommand::Get { key, .. } => {
            let config = ctx.config()?;
            crate::config::KEYS
                .iter()
                .find(|(k, _)| *k == key)
                .ok_or_else(|| anyhow::anyhow!("unknown config key {key:?}"))?;
            match config.get(&key) {
                Some(v) => Ok(format!("{v}\n")),
                None => bail!("{key} is not set in {}", path.display()),
            }
        }
        ConfigCommand::List { .. } => {
            let config = ctx.config()?;
            Ok(config
                .values()
                .iter()
                .map(|(k, v)| {
                    let shown = if k == "token" && !v.is_empty() {
                        "********"
                    } else {
                        v.as_str()
                    };
                    format!("{k}={shown}\n")
                })
                .collect())
        }
        ConfigCommand::Set { key, value, .. } => {
            let mut config = ctx.config()?;
            config.set(&key, &value)?;
            config.save(&path)?;
            Ok(String::new())
        }
        ConfigCommand::Unset { key, .. } => {
            let mut config = ctx.config()?;
            if config.unset(&key)? {
                config.save(&path)?;
            }
            Ok(String::new())
        }
        ConfigCommand::Profiles { .. } => {
            let config = ctx.config()?;
            let mut names: BTreeSet<String> = std::env::vars()
                .filter_map(|(k, _)| {
                    k.strip_prefix("FORKR_PROFILE_")?
                        .strip_suffix("_URL")
                        .map(|n| n.to_ascii_lowercase())
                })
                .filter(|n| !n.is_empty())
                .collect();
            names.extend(
                ["profile", "env"]
                    .iter()
                    .filter_map(|k| config.get(k))
                    .map(str::to_owned),
            );
            let selected = ctx
                .flags
                .profile
                .clone()
                .or_else(|| ctx.env("FORKR_PROFILE").filter(|p| !p.is_empty()))
                .or_else(|| config.get("profile").map(str::to_owned));
            Ok(names
                .iter()
                .map(|n| {
                    let mark = if selected.as_deref() == Some(n.as_str()) {
                        "*"
                    } else {
                        " "
                    };
                    let url = ctx
                        .env(&profile_var(n, "URL"))
                        .or_else(|| {
                            config
                                .describes(n)
                                .then(|| config.derived_api_url())
                                .flatten()
                        })
                        .unwrap_or_else(|| "-".into());
                    format!("{mark} {n}\t{url}\n")
                })
                .collect())
        }
    }
}
