//! Box refs as users type them: `box`, `project:box` (canonical), `project.box` (shorthand), `-`
//! (a new ephemeral box), `project:-`, and `.` (the box this command runs in).

use super::{ValidationError, validate_box_name, validate_project_name};

/// Which box a ref names, before the project is resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BoxTarget {
    Named(String),
    /// `-`: create a box, use it, delete it.
    Ephemeral,
    /// `.`: the box named by BOX_NAME and FORKR_PROJECT.
    Current,
}

/// A parsed ref. `project` is `None` when the ref did not name one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoxRef {
    pub project: Option<String>,
    pub target: BoxTarget,
}

/// A ref with its project decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedBox {
    pub project: String,
    pub target: ResolvedTarget,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolvedTarget {
    Named(String),
    Ephemeral,
}

fn invalid(arg: &str, rule: &'static str) -> ValidationError {
    ValidationError::InvalidRef {
        arg: arg.to_owned(),
        rule,
    }
}

const GRAMMAR: &str = "expected box, project:box, project.box, -, project:- or .";

/// Parses a ref. Box names hold no '.' or ':', so each form is unambiguous.
pub fn parse_ref(arg: &str) -> Result<BoxRef, ValidationError> {
    match arg {
        "" => return Err(invalid(arg, GRAMMAR)),
        "-" => {
            return Ok(BoxRef {
                project: None,
                target: BoxTarget::Ephemeral,
            });
        }
        "." => {
            return Ok(BoxRef {
                project: None,
                target: BoxTarget::Current,
            });
        }
        _ => {}
    }
    let (project, name) = if let Some((p, b)) = arg.split_once(':') {
        (Some(p), b)
    } else if let Some((p, b)) = arg.split_once('.') {
        (Some(p), b)
    } else {
        (None, arg)
    };
    if let Some(p) = project {
        validate_project_name(p)?;
        if name == "-" {
            return Ok(BoxRef {
                project: Some(p.to_owned()),
                target: BoxTarget::Ephemeral,
            });
        }
        if name.contains([':', '.']) {
            return Err(invalid(arg, GRAMMAR));
        }
    }
    validate_box_name(name)?;
    Ok(BoxRef {
        project: project.map(str::to_owned),
        target: BoxTarget::Named(name.to_owned()),
    })
}

impl BoxRef {
    /// Decides the project: the ref's own, else `default_project` (from -p, FORKR_PROJECT, git, or
    /// `default`). `.` reads BOX_NAME and FORKR_PROJECT through `env`, so tests need not touch the
    /// process environment.
    pub fn resolve(
        &self,
        default_project: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<ResolvedBox, ValidationError> {
        let project = self
            .project
            .clone()
            .unwrap_or_else(|| default_project.to_owned());
        match &self.target {
            BoxTarget::Named(name) => Ok(ResolvedBox {
                project,
                target: ResolvedTarget::Named(name.clone()),
            }),
            BoxTarget::Ephemeral => Ok(ResolvedBox {
                project,
                target: ResolvedTarget::Ephemeral,
            }),
            BoxTarget::Current => {
                let name = env("BOX_NAME")
                    .filter(|n| !n.is_empty())
                    .ok_or(ValidationError::NotInsideBox)?;
                validate_box_name(&name)?;
                let project = match env("FORKR_PROJECT").filter(|p| !p.is_empty()) {
                    Some(p) => {
                        validate_project_name(&p)?;
                        p
                    }
                    None => project,
                };
                Ok(ResolvedBox {
                    project,
                    target: ResolvedTarget::Named(name),
                })
            }
        }
    }
}

impl std::fmt::Display for BoxRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(p) = &self.project {
            write!(f, "{p}:")?;
        }
        match &self.target {
            BoxTarget::Named(n) => f.write_str(n),
            BoxTarget::Ephemeral => f.write_str("-"),
            BoxTarget::Current => f.write_str("."),
        }
    }
}
