//! Which server 4kr talks to, and as whom: URL, token and profile resolution as 001 gives it.
//!
//! URL: `--url` > the selected profile > FORKR_URL > FORKR_API_URL. The profile is `--profile`,
//! else FORKR_PROFILE, else the config's `profile`. A profile's settings are the variables
//! `FORKR_PROFILE_<NAME>_{URL,TOKEN,SSH_HOST,INSECURE,IP}`; when the profile is the one the config
//! file was written for (its `profile` or `env` key), missing ones derive from the config.

use crate::config::Config;

/// Everything needed to reach the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub url: String,
    pub token: Option<String>,
    pub insecure: bool,
    pub ssh_host: Option<String>,
    pub ip: Option<String>,
    pub profile: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("profile \"{profile}\" is selected but {var} is not set")]
    ProfileWithoutUrl { profile: String, var: String },
    #[error(
        "no API URL: pass --url, select a profile (--profile or FORKR_PROFILE), or set FORKR_URL"
    )]
    NoUrl,
}

/// `FORKR_PROFILE_<NAME>_<SUFFIX>`: the name uppercased, every non-alphanumeric character `_`.
pub fn profile_var(profile: &str, suffix: &str) -> String {
    let name: String = profile
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("FORKR_PROFILE_{name}_{suffix}")
}

fn truthy(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

/// The flags that take part in resolution.
#[derive(Debug, Clone, Default)]
pub struct TargetFlags {
    pub url: Option<String>,
    pub profile: Option<String>,
}

/// Resolves the target. `env` reads the environment, so tests need not touch the process's.
pub fn resolve(
    flags: &TargetFlags,
    env: &dyn Fn(&str) -> Option<String>,
    config: &Config,
) -> Result<Target, TargetError> {
    let get = |k: &str| env(k).filter(|v| !v.is_empty());
    let profile = flags
        .profile
        .clone()
        .or_else(|| get("FORKR_PROFILE"))
        .or_else(|| config.get("profile").map(str::to_owned));
    let derived = profile
        .as_deref()
        .filter(|p| config.describes(p))
        .map(|_| config);

    let from_profile = |suffix: &str| {
        profile
            .as_deref()
            .and_then(|p| get(&profile_var(p, suffix)))
    };
    let profile_url = match profile.as_deref() {
        None => None,
        Some(p) => {
            match from_profile("URL").or_else(|| derived.and_then(Config::derived_api_url)) {
                Some(url) => Some(url),
                None if flags.url.is_some() => None,
                None => {
                    return Err(TargetError::ProfileWithoutUrl {
                        profile: p.to_owned(),
                        var: profile_var(p, "URL"),
                    });
                }
            }
        }
    };
    let url = flags
        .url
        .clone()
        .or(profile_url)
        .or_else(|| get("FORKR_URL"))
        .or_else(|| get("FORKR_API_URL"))
        .ok_or(TargetError::NoUrl)?;
    let token = from_profile("TOKEN")
        .or_else(|| derived.and_then(|c| c.get("token").map(str::to_owned)))
        .or_else(|| get("FORKR_TOKEN"));
    let insecure = from_profile("INSECURE")
        .or_else(|| derived.and_then(|c| c.get("insecure").map(str::to_owned)))
        .or_else(|| get("FORKR_INSECURE"))
        .is_some_and(|v| truthy(&v));
    let ssh_host = from_profile("SSH_HOST").or_else(|| derived.and_then(Config::derived_ssh_host));
    let ip = from_profile("IP").or_else(|| derived.and_then(|c| c.get("ip").map(str::to_owned)));
    Ok(Target {
        url,
        token,
        insecure,
        ssh_host,
        ip,
        profile,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn config(pairs: &[(&str, &str)]) -> Config {
        let mut c = Config::default();
        for (k, v) in pairs {
            c.set(k, v).unwrap();
        }
        c
    }

    fn url(
        flags: TargetFlags,
        e: &[(&str, &str)],
        c: &[(&str, &str)],
    ) -> Result<String, TargetError> {
        resolve(&flags, &env(e), &config(c)).map(|t| t.url)
    }

    fn flag_url(u: &str) -> TargetFlags {
        TargetFlags {
            url: Some(u.into()),
            profile: None,
        }
    }

    fn flag_profile(p: &str) -> TargetFlags {
        TargetFlags {
            url: None,
            profile: Some(p.into()),
        }
    }

    #[test]
    fn profile_variable_names() {
        assert_eq!(profile_var("staging", "URL"), "FORKR_PROFILE_STAGING_URL");
        assert_eq!(
            profile_var("eu-west.1", "TOKEN"),
            "FORKR_PROFILE_EU_WEST_1_TOKEN"
        );
    }

    #[test]
    fn url_precedence() {
        let all = [
            ("FORKR_PROFILE", "staging"),
            ("FORKR_PROFILE_STAGING_URL", "https://profile"),
            ("FORKR_URL", "https://forkr-url"),
            ("FORKR_API_URL", "https://api-url"),
        ];
        assert_eq!(
            url(flag_url("https://flag"), &all, &[]).unwrap(),
            "https://flag"
        );
        assert_eq!(
            url(TargetFlags::default(), &all, &[]).unwrap(),
            "https://profile"
        );
        assert_eq!(
            url(TargetFlags::default(), &all[2..], &[]).unwrap(),
            "https://forkr-url"
        );
        assert_eq!(
            url(TargetFlags::default(), &all[3..], &[]).unwrap(),
            "https://api-url"
        );
        assert_eq!(
            url(TargetFlags::default(), &[], &[]),
            Err(TargetError::NoUrl)
        );
        // --profile beats FORKR_PROFILE.
        let two = [
            ("FORKR_PROFILE", "a"),
            ("FORKR_PROFILE_A_URL", "https://a"),
            ("FORKR_PROFILE_B_URL", "https://b"),
        ];
        assert_eq!(url(flag_profile("b"), &two, &[]).unwrap(), "https://b");
        // The config's default profile is used when nothing else selects one.
        assert_eq!(
            url(TargetFlags::default(), &two[1..], &[("profile", "b")]).unwrap(),
            "https://b"
        );
    }

    #[test]
    fn a_selected_profile_needs_a_url() {
        let err = url(
            TargetFlags::default(),
            &[("FORKR_PROFILE", "staging"), ("FORKR_URL", "https://x")],
            &[],
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "profile \"staging\" is selected but FORKR_PROFILE_STAGING_URL is not set"
        );
        // --url makes the profile's URL unnecessary.
        assert_eq!(
            url(
                flag_url("https://flag"),
                &[("FORKR_PROFILE", "staging")],
                &[]
            )
            .unwrap(),
            "https://flag"
        );
    }

    #[test]
    fn a_config_written_for_the_profile_fills_in() {
        let c = [
            ("env", "staging"),
            ("forkr_domain", "forkr.example.com"),
            ("token", "fkr_cfg"),
        ];
        let t = resolve(
            &TargetFlags::default(),
            &env(&[("FORKR_PROFILE", "staging")]),
            &config(&c),
        )
        .unwrap();
        assert_eq!(t.url, "https://api.forkr.example.com");
        assert_eq!(t.ssh_host.as_deref(), Some("ssh.forkr.example.com"));
        assert_eq!(t.token.as_deref(), Some("fkr_cfg"));
        // Explicit keys win over the domain; profile variables win over the config.
        let c = [
            ("profile", "staging"),
            ("forkr_domain", "d.io"),
            ("api_url", "https://api.other"),
            ("ssh_host", "gw"),
        ];
        let e = [("FORKR_PROFILE_STAGING_TOKEN", "fkr_env")];
        let t = resolve(&TargetFlags::default(), &env(&e), &config(&c)).unwrap();
        assert_eq!(
            (t.url.as_str(), t.ssh_host.as_deref(), t.token.as_deref()),
            ("https://api.other", Some("gw"), Some("fkr_env"))
        );
        // A config written for another profile does not apply.
        let err = resolve(
            &flag_profile("prod"),
            &env(&[]),
            &config(&[("env", "staging"), ("forkr_domain", "d.io")]),
        );
        assert!(matches!(err, Err(TargetError::ProfileWithoutUrl { .. })));
    }

    #[test]
    fn token_and_insecure() {
        let e = [
            ("FORKR_URL", "https://x"),
            ("FORKR_TOKEN", "fkr_plain"),
            ("FORKR_INSECURE", "true"),
        ];
        let t = resolve(&TargetFlags::default(), &env(&e), &Config::default()).unwrap();
        assert_eq!(
            (t.token.as_deref(), t.insecure, t.profile),
            (Some("fkr_plain"), true, None)
        );
        let e = [
            ("FORKR_PROFILE", "dev"),
            ("FORKR_PROFILE_DEV_URL", "https://dev"),
            ("FORKR_PROFILE_DEV_TOKEN", "fkr_dev"),
            ("FORKR_PROFILE_DEV_INSECURE", "1"),
            ("FORKR_PROFILE_DEV_SSH_HOST", "ssh.dev"),
            ("FORKR_PROFILE_DEV_IP", "10.0.0.9"),
            ("FORKR_TOKEN", "fkr_plain"),
        ];
        let t = resolve(&TargetFlags::default(), &env(&e), &Config::default()).unwrap();
        assert_eq!(
            t,
            Target {
                url: "https://dev".into(),
                token: Some("fkr_dev".into()),
                insecure: true,
                ssh_host: Some("ssh.dev".into()),
                ip: Some("10.0.0.9".into()),
                profile: Some("dev".into()),
            }
        );
    }
}
