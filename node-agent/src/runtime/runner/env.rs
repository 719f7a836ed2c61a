//! The box environment: the injected variables, `/etc/boxes-env`, and its bashrc source line.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The line `/etc/bash.bashrc` gets, once, so every bash sees `/etc/boxes-env`.
pub const BASHRC_SOURCE_LINE: &str = "[ -r /etc/boxes-env ] && . /etc/boxes-env";

/// The PATH a process gets before any profile runs (002's "bare system PATH").
pub const BASE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What the platform injects into every box (002, "Injected environment variables").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Injected {
    pub project: String,
    pub box_name: String,
    /// `https://forks.<domain>`.
    pub api_url: String,
    /// `forks.<domain>`.
    pub api_host: String,
    /// The node IP; FORKR_API_IP and FORKR_NODE_IP both carry it.
    pub node_ip: String,
    /// FORKR_INSECURE="true" is set only when this is true.
    #[serde(default)]
    pub insecure: bool,
}

/// The box's variables in order: injected first, then the user's (which validation keeps off
/// the reserved names, so they can never shadow an injected one).
pub fn box_env(inj: &Injected, user: &BTreeMap<String, String>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = vec![
        ("FORKR_PROJECT".into(), inj.project.clone()),
        ("BOX_NAME".into(), inj.box_name.clone()),
        ("FORKR_API_URL".into(), inj.api_url.clone()),
        ("FORKR_API_HOST".into(), inj.api_host.clone()),
        ("FORKR_API_IP".into(), inj.node_ip.clone()),
        ("FORKR_NODE_IP".into(), inj.node_ip.clone()),
    ];
    if inj.insecure {
        out.push(("FORKR_INSECURE".into(), "true".into()));
    }
    out.push(("TERM".into(), "xterm-256color".into()));
    for (k, v) in user {
        if !out.iter().any(|(ok, _)| ok == k) {
            out.push((k.clone(), v.clone()));
        }
    }
    out
}

/// Quotes `value` for a POSIX shell's double quotes: `\`, `"`, `$` and `` ` `` are escaped, and
/// everything else (newlines included) is literal there, so any value without NUL round-trips.
pub fn double_quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if matches!(c, '\\' | '"' | '$' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Quotes one word for a shell with single quotes (`'` becomes `'\''`).
pub fn single_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// The text of `/etc/boxes-env`: one `export KEY="value"` per variable.
pub fn env_file(vars: &[(String, String)]) -> String {
    let mut out = String::from("# Written by forkr-runner at every start; edits are lost.\n");
    for (k, v) in vars {
        out.push_str(&format!("export {k}={}\n", double_quote(v)));
    }
    out
}

/// `bashrc` with the source line appended, or `None` when it is already there.
pub fn with_source_line(bashrc: &str) -> Option<String> {
    if bashrc.lines().any(|l| l.trim() == BASHRC_SOURCE_LINE) {
        return None;
    }
    let mut out = bashrc.to_string();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(BASHRC_SOURCE_LINE);
    out.push('\n');
    Some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn quoting_round_trips_through_bash() {
        let nasty = "a\"b'c$HOME`id`\\n\\\nline2\n\ttab $ \\";
        let script = format!("export V={}\nprintf %s \"$V\"", double_quote(nasty));
        let out = std::process::Command::new("bash")
            .args(["-c", &script])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), nasty);
        let out = std::process::Command::new("busybox")
            .args(["sh", "-c", &script])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), nasty);
    }

    #[test]
    fn source_line_is_added_once() {
        let once = with_source_line("alias ll='ls -l'").unwrap();
        assert!(once.ends_with(&format!("\n{BASHRC_SOURCE_LINE}\n")));
        assert_eq!(with_source_line(&once), None);
        assert_eq!(
            with_source_line("").unwrap(),
            format!("{BASHRC_SOURCE_LINE}\n")
        );
    }

    #[test]
    fn injected_come_first_and_insecure_only_when_set() {
        let inj = Injected {
            project: "p".into(),
            box_name: "b".into(),
            node_ip: "10.0.0.1".into(),
            ..Default::default()
        };
        let user = BTreeMap::from([("A".to_string(), "1".to_string())]);
        let env = box_env(&inj, &user);
        assert_eq!(env[0], ("FORKR_PROJECT".into(), "p".into()));
        assert!(!env.iter().any(|(k, _)| k == "FORKR_INSECURE"));
        assert_eq!(env.last().unwrap(), &("A".into(), "1".into()));
        let env = box_env(
            &Injected {
                insecure: true,
                ..inj
            },
            &user,
        );
        assert!(env.contains(&("FORKR_INSECURE".into(), "true".into())));
    }
}
