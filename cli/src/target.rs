//! Which server 4kr talks to, and as whom: URL, token and profile resolution as 001 gives it.
//!
//! URL: `--url` > the selected profile > FORKR_URL > FORKR_API_URL. The profile is `--profile`,
//! else FORKR_PROFILE, else the config's `profile`. A profile's settings are the variables
//! `FORKR_PROFILE_<NAME>_{URL,TOKEN,SSH_HOST,INSECURE,IP}`; when the profile is the one the config
//! file was written for (its `profile` or `env` key), missing ones derive from the config.
//!
//! Token: a profile's token (and its INSECURE, SSH_HOST and IP) goes only to that profile's own
//! URL. When the URL comes from elsewhere (`--url` naming another server) only FORKR_TOKEN is
//! sent; with no FORKR_TOKEN, 4kr refuses rather than hand an admin token to a stranger.

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
    #[error(
        "{url} is not the URL of profile \"{profile}\" ({profile_url}), and a profile's token is sent only to its own URL: set FORKR_TOKEN to a token for {url}, or use a profile whose URL it is"
    )]
    ProfileTokenElsewhere {
        url: String,
        profile: String,
        profile_url: String,
    },
}

/// Whether two API URLs name the same server: scheme and host compared without case, the
/// default port made explicit, trailing slashes ignored. URLs that do not parse must be equal
/// as strings.
pub fn same_server(a: &str, b: &str) -> bool {
    fn key(u: &str) -> Option<(String, String, Option<u16>, String, String)> {
        let url = reqwest::Url::parse(u.trim()).ok()?;
        Some((
            url.scheme().to_owned(),
            url.host_str()?.to_ascii_lowercase(),
            url.port_or_known_default(),
            url.path().trim_end_matches('/').to_owned(),
            url.username().to_owned(),
        ))
    }
    match (key(a), key(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a.trim().trim_end_matches('/') == b.trim().trim_end_matches('/'),
    }
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
        .or_else(|| profile_url.clone())
        .or_else(|| get("FORKR_URL"))
        .or_else(|| get("FORKR_API_URL"))
        .ok_or(TargetError::NoUrl)?;
    // The profile's own settings apply only when the request goes to the profile's server.
    let to_profile = profile_url.as_deref().is_some_and(|p| same_server(p, &url));
    let profile_setting = |suffix: &str, key: &str| {
        from_profile(suffix).or_else(|| derived.and_then(|c| c.get(key).map(str::to_owned)))
    };
    let token = if to_profile {
        profile_setting("TOKEN", "token").or_else(|| get("FORKR_TOKEN"))
    } else {
        match (get("FORKR_TOKEN"), profile.as_deref()) {
            (Some(t), _) => Some(t),
            (None, Some(p)) if profile_setting("TOKEN", "token").is_some() => {
                return Err(TargetError::ProfileTokenElsewhere {
                    url,
                    profile: p.to_owned(),
                    profile_url: profile_url.unwrap_or_else(|| "no URL".to_owned()),
                });
            }
            (None, _) => None,
        }
    };
    let insecure = to_profile
        .then(|| profile_setting("INSECURE", "insecure"))
        .flatten()
        .or_else(|| get("FORKR_INSECURE"))
        .is_some_and(|v| truthy(&v));
    let ssh_host = to_profile
        .then(|| from_profile("SSH_HOST").or_else(|| derived.and_then(Config::derived_ssh_host)))
        .flatten();
    let ip = to_profile.then(|| profile_setting("IP", "ip")).flatten();
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

    #[test]
    fn urls_compare_by_server() {
        for (a, b) in [
            ("http://127.0.0.1:7070", "http://127.0.0.1:7070/"),
            ("HTTPS://API.Example.com", "https://api.example.com:443/"),
            ("http://h", "http://h:80"),
            ("https://h/api/", "https://h/api"),
        ] {
            assert!(same_server(a, b), "{a} {b}");
        }
        for (a, b) in [
            ("http://h", "https://h"),
            ("http://h:7070", "http://h:7071"),
            ("http://h", "http://h.evil"),
            ("https://h/api", "https://h/other"),
            ("http://user@h", "http://h"),
        ] {
            assert!(!same_server(a, b), "{a} {b}");
        }
    }

    #[test]
    fn a_profile_token_goes_only_to_the_profile_url() {
        let profile = [
            ("FORKR_PROFILE", "prod"),
            ("FORKR_PROFILE_PROD_URL", "https://api.example.com"),
            ("FORKR_PROFILE_PROD_TOKEN", "fkr_admin"),
            ("FORKR_PROFILE_PROD_INSECURE", "1"),
            ("FORKR_PROFILE_PROD_SSH_HOST", "ssh.example.com"),
        ];
        // --url naming another server: refused, nothing to send.
        let err = resolve(
            &flag_url("http://elsewhere"),
            &env(&profile),
            &Config::default(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "http://elsewhere is not the URL of profile \"prod\" (https://api.example.com), and a profile's token is sent only to its own URL: set FORKR_TOKEN to a token for http://elsewhere, or use a profile whose URL it is"
        );
        // ... unless FORKR_TOKEN says what to send there; the profile's other settings stay home.
        let mut with_plain = profile.to_vec();
        with_plain.push(("FORKR_TOKEN", "fkr_plain"));
        let t = resolve(
            &flag_url("http://elsewhere"),
            &env(&with_plain),
            &Config::default(),
        )
        .unwrap();
        assert_eq!(
            (t.url.as_str(), t.token.as_deref(), t.insecure, t.ssh_host),
            ("http://elsewhere", Some("fkr_plain"), false, None)
        );
        // --url spelling the profile's own server keeps the profile's token.
        let t = resolve(
            &flag_url("HTTPS://api.example.com:443/"),
            &env(&with_plain),
            &Config::default(),
        )
        .unwrap();
        assert_eq!(t.token.as_deref(), Some("fkr_admin"));
        assert!(t.insecure);
        // A profile with a token and no URL sends it nowhere.
        let err = resolve(
            &flag_url("http://elsewhere"),
            &env(&[("FORKR_PROFILE", "x"), ("FORKR_PROFILE_X_TOKEN", "fkr_x")]),
            &Config::default(),
        )
        .unwrap_err();
        assert!(
            matches!(err, TargetError::ProfileTokenElsewhere { .. }),
            "{err}"
        );
        // The config `4kr local up` writes: its token stays with its api_url.
        let c = config(&[
            ("profile", "local"),
            ("env", "local"),
            ("api_url", "http://127.0.0.1:7070"),
            ("token", "fkr_local"),
        ]);
        let err = resolve(&flag_url("http://elsewhere:7070"), &env(&[]), &c).unwrap_err();
        assert!(
            matches!(err, TargetError::ProfileTokenElsewhere { .. }),
            "{err}"
        );
        let t = resolve(&flag_url("http://127.0.0.1:7070/"), &env(&[]), &c).unwrap();
        assert_eq!(t.token.as_deref(), Some("fkr_local"));
        // No profile: FORKR_URL goes with FORKR_TOKEN, as before.
        let t = resolve(
            &TargetFlags::default(),
            &env(&[("FORKR_URL", "http://x"), ("FORKR_TOKEN", "fkr_t")]),
            &Config::default(),
        )
        .unwrap();
        assert_eq!(t.token.as_deref(), Some("fkr_t"));
    }
}
