//! How long a command outlives its client: the one rule for every exec and console session,
//! in local mode and in the agent alike.
//!
//! While a client is attached, output flows to it. When it goes away (its stream is dropped, a
//! killed `4kr` included), the session is detached: output is buffered up to
//! [`DETACHED_BUFFER`] bytes, then the pipe or terminal is no longer read, so the command
//! blocks on its next write instead of memory growing, and nothing it wrote is lost. Once the
//! session has been detached for its grace, its foreground process group gets SIGHUP, as a
//! terminal's processes do when the terminal hangs up; the session is then forgotten.
//!
//! A console may be reattached within its grace (long by default); a plain exec cannot be yet,
//! so its grace is short: a few seconds, enough to ride out a proxy's hiccup.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Default grace of a plain (pipe) exec whose client went away.
pub const DEFAULT_EXEC_GRACE: Duration = Duration::from_secs(5);

/// Default grace of a console (a PTY session) without a client: a working day and night, so a
/// laptop that sleeps overnight finds its shell again.
pub const DEFAULT_CONSOLE_GRACE: Duration = Duration::from_secs(24 * 3600);

/// Output kept while no client is attached; past it the command's output is no longer read.
pub const DETACHED_BUFFER: usize = 1024 * 1024;

/// The graces of one process (forkr-api in local mode, or forkr-node-agent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grace {
    pub exec: Duration,
    pub console: Duration,
}

impl Default for Grace {
    fn default() -> Grace {
        Grace {
            exec: DEFAULT_EXEC_GRACE,
            console: DEFAULT_CONSOLE_GRACE,
        }
    }
}

static CONFIGURED: OnceLock<Grace> = OnceLock::new();

impl Grace {
    /// Sets the process's graces from its flags (`--exec-grace`, `--console-grace`), once, at
    /// start. Returns false when they were already set (or read): the first value stays.
    pub fn install(grace: Grace) -> bool {
        CONFIGURED.set(grace).is_ok()
    }

    /// The process's graces: as installed, else the defaults.
    pub fn current() -> Grace {
        *CONFIGURED.get_or_init(Grace::default)
    }
}

/// The flags of both binaries that run execs (forkr-api in local mode, forkr-node-agent),
/// flattened into their command lines.
#[derive(Debug, Clone, clap::Args)]
pub struct GraceArgs {
    /// How long a plain exec runs on after its client went away before it gets SIGHUP (e.g.
    /// 5s, 2m).
    #[arg(long, env = "FORKR_EXEC_GRACE", default_value = "5s", value_parser = parse_duration)]
    pub exec_grace: Duration,
    /// How long a console waits for a client to reattach before it gets SIGHUP (e.g. 30m,
    /// 24h).
    #[arg(long, env = "FORKR_CONSOLE_GRACE", default_value = "24h", value_parser = parse_duration)]
    pub console_grace: Duration,
}

impl GraceArgs {
    /// Installs the graces for this process (see [`Grace::install`]).
    pub fn install(&self) {
        Grace::install(Grace {
            exec: self.exec_grace,
            console: self.console_grace,
        });
    }
}

/// Parses a flag's duration: whole seconds, or a number with `ms`, `s`, `m` or `h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (num, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a duration: use e.g. 5s, 10m or 24h"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => return Err(format!("{text:?} has unit {unit:?}: use ms, s, m or h")),
    };
    Ok(d)
}

/// Whether a session is attached, and since when it has not been.
#[derive(Debug, Clone, Copy)]
pub struct Attachment {
    detached_since: Option<Instant>,
}

impl Attachment {
    /// A session that starts with a client.
    pub fn attached() -> Attachment {
        Attachment {
            detached_since: None,
        }
    }

    /// A session that starts without one (a console before its first attach).
    pub fn detached() -> Attachment {
        Attachment {
            detached_since: Some(Instant::now()),
        }
    }

    pub fn attach(&mut self) {
        self.detached_since = None;
    }

    /// Marks the client gone; an earlier detach keeps its time.
    pub fn detach(&mut self) {
        self.detached_since.get_or_insert_with(Instant::now);
    }

    pub fn is_attached(&self) -> bool {
        self.detached_since.is_none()
    }

    /// When the grace runs out, while detached.
    pub fn deadline(&self, grace: Duration) -> Option<Instant> {
        self.detached_since.map(|t| t + grace)
    }

    /// True once the session has been detached for longer than `grace`.
    pub fn expired(&self, grace: Duration) -> bool {
        self.deadline(grace).is_some_and(|d| Instant::now() >= d)
    }
}

/// Whether output may still be read while detached with `buffered` bytes unsent.
pub fn may_read(buffered: usize) -> bool {
    buffered < DETACHED_BUFFER
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_refuse_the_rest() {
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86400)));
        for bad in ["", "s", "5d", "-1s", "1.5s", "5 s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_detached_session_expires_after_its_grace_only() {
        let mut a = Attachment::attached();
        assert!(!a.expired(Duration::ZERO));
        a.detach();
        assert!(a.expired(Duration::ZERO));
        assert!(!a.expired(Duration::from_secs(3600)));
        a.attach();
        assert!(!a.expired(Duration::ZERO));
        assert!(may_read(DETACHED_BUFFER - 1));
        assert!(!may_read(DETACHED_BUFFER));
    }
}
