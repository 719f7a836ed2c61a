//! The one builder of the shell text an exec runs, for the engine (nsenter, environment via a
//! memfd and [`ENTER_PRELUDE`]) and for forkr-api's Kubernetes-exec fallback (`busybox chroot
//! /volumes /bin/bash -l -c <script>`, environment exported by the script itself). Pure
//! functions: the same request gives the same words, quoting and environment order on both
//! paths.
//!
//! Environment order, as docs/runtime.md documents it: the box's own variables (PID 1's, or
//! `/etc/boxes-env` where PID 1 cannot be read), then the user's HOME/USER/LOGNAME, then
//! `--env`, last value winning. Names must be shell identifiers; NUL is refused anywhere.

use crate::error::{Error, Result};
use crate::exec::{ExecRequest, users};

pub use crate::runtime::runner::env::single_quote as quote;

/// The first program inside the box: a bash without profile or rc files, started by nsenter
/// with the fixed host environment. It drops that environment, exports the NUL-separated
/// KEY=VALUE pairs of the descriptor named by `$1`, closes it and execs the rest of its
/// arguments (the real `/bin/bash -l...`). Its variable name is prefixed so that no box
/// variable can collide with it.
pub const ENTER_PRELUDE: &str = "unset PATH LC_ALL SHLVL PWD OLDPWD\n\
__forkr_fd=$1; shift\n\
while IFS= read -r -d '' __forkr_kv <&\"$__forkr_fd\"; do export -- \"$__forkr_kv\" 2>/dev/null; done\n\
exec {__forkr_fd}<&-\n\
unset __forkr_fd __forkr_kv\n\
exec \"$@\"";

/// Where the runner writes the box's variables (one `export KEY="value"` each); the fallback
/// sources it because it cannot read PID 1's environment.
pub const BOX_ENV_FILE: &str = "/etc/boxes-env";

/// A name a shell can `export` (crds' env-key rule without the reserved list: an exec may set
/// TERM). Anything else could not reach the box's bash, so it is refused up front.
pub fn is_env_name(k: &str) -> bool {
    let b = k.as_bytes();
    !b.is_empty()
        && b.len() <= 256
        && !b[0].is_ascii_digit()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// Refuses what no shell text can carry faithfully: bad variable names, NUL, a relative
/// `--wd`, a user outside the project range.
pub fn check(req: &ExecRequest) -> Result<()> {
    for (k, _) in &req.env {
        if !is_env_name(k) {
            return Err(Error::InvalidArgument(format!(
                "invalid environment variable name {k:?}: use letters, digits and '_', not starting with a digit"
            )));
        }
    }
    if req.env.iter().any(|(_, v)| v.contains('\0'))
        || req.args.iter().any(|a| a.contains('\0'))
        || req.wd.as_deref().is_some_and(|w| w.contains('\0'))
    {
        return Err(Error::InvalidArgument(
            "arguments and values must not contain NUL".into(),
        ));
    }
    if let Some(wd) = &req.wd
        && !wd.starts_with('/')
    {
        return Err(Error::InvalidArgument(format!(
            "--wd {wd:?} must be an absolute path"
        )));
    }
    if let Some(u) = &req.user {
        forkr_crds::validation::validate_user_name(&u.name)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        if u.uid < users::FIRST_UID {
            return Err(Error::InvalidArgument(format!(
                "uid {} of user {} is below {}",
                u.uid,
                u.name,
                users::FIRST_UID
            )));
        }
    }
    Ok(())
}

/// The shell string of a request: `--sh` args joined as given, otherwise every arg quoted so
/// that it reaches the program as exactly one argument. `--wd` becomes a leading `cd`.
pub fn body(req: &ExecRequest) -> String {
    let body = if req.sh {
        req.args.join(" ")
    } else {
        req.args
            .iter()
            .map(|a| quote(a))
            .collect::<Vec<_>>()
            .join(" ")
    };
    match (&req.wd, &req.user) {
        (Some(wd), _) => format!("cd -- {} || exit 1\n{body}", quote(wd)),
        (None, Some(_)) => format!("cd 2>/dev/null\n{body}"),
        (None, None) => body,
    }
}

/// Last value wins, first position kept.
pub fn dedup_env(env: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in env {
        match out.iter_mut().find(|(ok, _)| *ok == k) {
            Some(slot) => slot.1 = v,
            None => out.push((k, v)),
        }
    }
    out
}

/// The environment as [`ENTER_PRELUDE`] reads it: `KEY=VALUE\0` per variable.
pub fn env_blob(env: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in env {
        out.extend_from_slice(k.as_bytes());
        out.push(b'=');
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

/// The whole script of the Kubernetes-exec fallback, for `bash -l -c`: the box's variables
/// from [`BOX_ENV_FILE`], then `--env` (each one `export -- 'K=V'`, so a value is never
/// expanded), then [`body`]. `--user` needs the engine, so it is not allowed here.
pub fn fallback(req: &ExecRequest) -> Result<String> {
    check(req)?;
    if req.user.is_some() {
        return Err(Error::FailedPrecondition(
            "running as a project user needs the node agent".into(),
        ));
    }
    let mut out = format!("set -a; [ -r {BOX_ENV_FILE} ] && . {BOX_ENV_FILE}; set +a\n");
    for (k, v) in dedup_env(req.env.clone()) {
        out.push_str(&format!("export -- {}\n", quote(&format!("{k}={v}"))));
    }
    out.push_str(&body(req));
    Ok(out)
}

/// The wrapper of a background exec (`--bg`), the same for the engine and the Kubernetes
/// fallback: it starts `inner` (a whole script) detached from the caller, stdin from /dev/null,
/// stdout and stderr into `<EXEC_LOG_DIR>/<pid>.log`, and prints that pid. `$$` of the detached
/// bash is the pid the box sees, and its `exec` keeps it for the command, so the pid printed
/// and the log's name agree. `;` rather than `&&` before `&`: a backgrounded `a && b` would be a
/// subshell holding the caller's stdout, and the caller would wait for the command to end.
pub fn background(inner: &str) -> String {
    let detached = format!(
        "exec >{dir}/$$.log 2>&1 </dev/null; exec /bin/bash -lc {inner}",
        dir = super::EXEC_LOG_DIR,
        inner = quote(inner)
    );
    format!(
        "mkdir -p {dir}; /bin/bash -c {detached} </dev/null >/dev/null 2>&1 & echo $!",
        dir = super::EXEC_LOG_DIR,
        detached = quote(&detached)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::User;

    fn req(args: &[&str]) -> ExecRequest {
        ExecRequest {
            args: args.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn hostile_words_are_single_quoted_whole() {
        // Running them through a real bash, on the host and in a box, is in
        // tests/runtime_exec.rs; here: the exact quoting.
        let r = req(&["it's", "$(touch /x)", "`id`", "a\nb", "'; exit 7; '"]);
        assert_eq!(
            body(&r),
            r#"'it'\''s' '$(touch /x)' '`id`' 'a
b' ''\''; exit 7; '\'''"#
        );
        let mut e = req(&["true"]);
        e.env = vec![
            ("V".into(), "first".into()),
            ("V".into(), "$(x) 'y'".into()),
        ];
        let text = fallback(&e).unwrap();
        assert!(text.contains(r#"export -- 'V=$(x) '\''y'\'''"#), "{text}");
        assert!(!text.contains("first"), "{text}");
    }

    #[test]
    fn wd_is_quoted_and_a_missing_one_stops_the_command() {
        let mut r = req(&["pwd"]);
        r.wd = Some("/tmp/no such $(dir)".into());
        assert_eq!(body(&r), "cd -- '/tmp/no such $(dir)' || exit 1\n'pwd'");
    }

    #[test]
    fn sh_joins_words_as_one_shell_string() {
        let mut r = req(&["echo", "$((1+2))"]);
        r.sh = true;
        assert_eq!(body(&r), "echo $((1+2))");
    }

    #[test]
    fn nul_bad_names_and_relative_wd_are_refused() {
        let mut r = req(&["a\0b"]);
        assert!(check(&r).is_err());
        r = req(&["true"]);
        r.env = vec![("V".into(), "x\0y".into())];
        assert!(fallback(&r).is_err());
        for name in ["", "1A", "A-B", "A B", "A=B", "$(x)"] {
            r.env = vec![(name.into(), "v".into())];
            assert!(check(&r).is_err(), "{name:?}");
        }
        r.env.clear();
        r.wd = Some("rel".into());
        assert!(check(&r).is_err());
        r.wd = Some("/a\0b".into());
        assert!(check(&r).is_err());
    }

    #[test]
    fn the_fallback_sources_the_box_env_first_and_refuses_users() {
        let mut r = req(&["true"]);
        r.env = vec![("A".into(), "b c".into())];
        assert_eq!(
            fallback(&r).unwrap(),
            "set -a; [ -r /etc/boxes-env ] && . /etc/boxes-env; set +a\nexport -- 'A=b c'\n'true'"
        );
        r.user = Some(User {
            name: "ann".into(),
            uid: 20000,
        });
        assert!(fallback(&r).is_err());
    }

    #[test]
    fn the_env_blob_is_nul_separated_pairs() {
        let env = dedup_env(vec![
            ("A".into(), "1".into()),
            ("B".into(), "x\ny".into()),
            ("A".into(), "2".into()),
        ]);
        assert_eq!(env_blob(&env), b"A=2\0B=x\ny\0");
    }
}
