//! Paths inside a box, and the `box:/path` form of `4kr cp`.

use super::{BoxRef, ValidationError, parse_ref};

const MAX_PATH: usize = 4096;

/// Resolves `.` and `..` lexically and drops doubled slashes, never rising above `/`. The result
/// is what the agent joins to a box root, so it can never name anything outside the root by
/// itself (symlinks inside the root are the agent's job).
pub fn normalize_box_path(path: &str) -> Result<String, ValidationError> {
    let invalid = |rule| ValidationError::InvalidPath {
        path: path.to_owned(),
        rule,
    };
    if !path.starts_with('/') {
        return Err(invalid("the path must be absolute"));
    }
    if path.contains('\0') {
        return Err(invalid("the path contains a NUL byte"));
    }
    if path.len() > MAX_PATH {
        return Err(invalid("the path is longer than 4096 bytes"));
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

/// A file inside a box: which box, and the normalized absolute path in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoxPath {
    pub box_ref: BoxRef,
    pub path: String,
}

/// One side of a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local(String),
    Box(BoxPath),
}

/// Reads one side of `4kr cp`. `REF:/path` is a box path. A prefix that is a valid ref followed
/// by `:` without the `/` is refused, because the user meant a box and forgot the `:/`. Anything
/// else is a local path.
pub fn parse_location(arg: &str) -> Result<Location, ValidationError> {
    if arg.is_empty() {
        return Err(ValidationError::InvalidPath {
            path: String::new(),
            rule: "the path is empty",
        });
    }
    if let Some(idx) = arg.find(":/") {
        let (prefix, path) = (&arg[..idx], &arg[idx + 1..]);
        if let Ok(box_ref) = parse_ref(prefix) {
            let path = normalize_box_path(path)?;
            return Ok(Location::Box(BoxPath { box_ref, path }));
        }
        if looks_like_ref(prefix) {
            // A ref-shaped prefix that did not parse: say why, rather than copying to a local
            // file with a colon in its name.
            parse_ref(prefix)?;
        }
        return Ok(Location::Local(arg.to_owned()));
    }
    if let Some((prefix, _)) = arg.rsplit_once(':')
        && parse_ref(prefix).is_ok()
    {
        return Err(ValidationError::BoxPathSyntax {
            arg: arg.to_owned(),
        });
    }
    Ok(Location::Local(arg.to_owned()))
}

/// Local paths start with `/`, `./`, `../` or `~`; a prefix without those and without `/` is
/// meant as a box ref.
fn looks_like_ref(prefix: &str) -> bool {
    !prefix.is_empty() && !prefix.contains('/') && !prefix.starts_with('~')
}

/// Which way a copy goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyDirection {
    /// Local file into a box (`put`).
    Upload { local: String, remote: BoxPath },
    /// Box file to local (`get`).
    Download { remote: BoxPath, local: String },
}

/// Parses `4kr cp SRC DEST`: exactly one side is a box path.
pub fn parse_copy(src: &str, dest: &str) -> Result<CopyDirection, ValidationError> {
    match (parse_location(src)?, parse_location(dest)?) {
        (Location::Local(local), Location::Box(remote)) => {
            Ok(CopyDirection::Upload { local, remote })
        }
        (Location::Box(remote), Location::Local(local)) => {
            Ok(CopyDirection::Download { remote, local })
        }
        (Location::Box(_), Location::Box(_)) => Err(ValidationError::BothRemote {
            src: src.to_owned(),
            dest: dest.to_owned(),
        }),
        (Location::Local(_), Location::Local(_)) => Err(ValidationError::NeitherRemote {
            src: src.to_owned(),
            dest: dest.to_owned(),
        }),
    }
}
