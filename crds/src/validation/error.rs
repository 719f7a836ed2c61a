use std::fmt;

/// One rule broken by user input. `Display` is the message users see; [`code`](Self::code) is the
/// stable machine code forkr-api puts in `{"error": code, "message": text}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("invalid {kind} name {name:?}: {rule}")]
    InvalidName {
        kind: super::NameKind,
        name: String,
        rule: &'static str,
    },
    #[error("{kind} name {name:?} is reserved")]
    ReservedName { kind: super::NameKind, name: String },
    /// The documents give this text verbatim; the key is carried separately.
    #[error("environment variable is reserved")]
    ReservedEnv { key: String },
    #[error(
        "invalid environment variable name {key:?}: use letters, digits and '_', not starting with a digit"
    )]
    InvalidEnvKey { key: String },
    #[error("invalid environment variable {key:?}: the value contains a NUL byte")]
    InvalidEnvValue { key: String },
    #[error("invalid environment assignment {arg:?}: expected KEY=VALUE")]
    EnvSyntax { arg: String },
    #[error("--base cannot be used with --fork")]
    BaseWithFork,
    #[error("cannot fork a box from itself")]
    ForkSelf,
    #[error("invalid data mount {arg:?}: expected NAME=/path[:ro|:rw]")]
    MountSyntax { arg: String },
    #[error("mount path {path:?} must be absolute")]
    MountNotAbsolute { path: String },
    #[error("mount path {path:?} cannot be under {under}")]
    MountForbidden { path: String, under: &'static str },
    #[error("mount name {name:?} is used twice: each mount name must be unique")]
    DuplicateMountName { name: String },
    #[error("mount path {path:?} is used twice")]
    DuplicateMountPath { path: String },
    #[error("invalid PORT {value:?}: must be an integer from 1 to 65535")]
    InvalidPort { value: String },
    #[error(
        "invalid termination grace period {value:?}: must be an integer from 0 to 86400 seconds"
    )]
    InvalidGrace { value: String },
    #[error("invalid CPU {value:?}: {rule}")]
    InvalidCpu { value: String, rule: &'static str },
    #[error("invalid memory {value:?}: {rule}")]
    InvalidMemory { value: String, rule: &'static str },
    #[error("no updates provided")]
    NoUpdates,
    #[error("invalid box ref {arg:?}: {rule}")]
    InvalidRef { arg: String, rule: &'static str },
    #[error(
        "`.` means the current box, but BOX_NAME is not set: run this inside a box or name the box"
    )]
    NotInsideBox,
    #[error("invalid box path {arg:?}: write it as box:/path (the :/ is required)")]
    BoxPathSyntax { arg: String },
    #[error("invalid path {path:?}: {rule}")]
    InvalidPath { path: String, rule: &'static str },
    #[error("exactly one side must be a box path (box:/path): both {src:?} and {dest:?} are")]
    BothRemote { src: String, dest: String },
    #[error("exactly one side must be a box path (box:/path): neither {src:?} nor {dest:?} is")]
    NeitherRemote { src: String, dest: String },
    #[error("invalid host {host:?}: {rule}")]
    InvalidHost { host: String, rule: &'static str },
    #[error("too many {what}: {count}, at most {max}")]
    TooMany {
        what: &'static str,
        count: usize,
        max: usize,
    },
    #[error("{what} is too long: {len} bytes, at most {max}")]
    TooLong {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error("invalid {what} {value:?}: {rule}")]
    Invalid {
        what: &'static str,
        value: String,
        rule: &'static str,
    },
}

impl ValidationError {
    /// The stable error code for the API's `error` field and for metrics labels.
    pub fn code(&self) -> &'static str {
        use ValidationError::*;
        match self {
            InvalidName { .. } | ReservedName { .. } => "invalid_name",
            ReservedEnv { .. } => "reserved_env",
            InvalidEnvKey { .. } | InvalidEnvValue { .. } | EnvSyntax { .. } => "invalid_env",
            BaseWithFork => "base_with_fork",
            ForkSelf => "fork_self",
            MountSyntax { .. }
            | MountNotAbsolute { .. }
            | MountForbidden { .. }
            | DuplicateMountName { .. }
            | DuplicateMountPath { .. } => "invalid_mount",
            InvalidPort { .. } => "invalid_port",
            InvalidGrace { .. } => "invalid_grace",
            InvalidCpu { .. } | InvalidMemory { .. } => "invalid_quantity",
            NoUpdates => "no_updates",
            InvalidRef { .. } | NotInsideBox => "invalid_ref",
            BoxPathSyntax { .. }
            | InvalidPath { .. }
            | BothRemote { .. }
            | NeitherRemote { .. } => "invalid_path",
            InvalidHost { .. } => "invalid_host",
            TooMany { .. } | TooLong { .. } | Invalid { .. } => "invalid_argument",
        }
    }
}

/// Every rule a whole object breaks, each with the field it concerns, so that one round trip
/// tells a user everything to fix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationErrors(pub Vec<(String, ValidationError)>);

impl ValidationErrors {
    pub(crate) fn push(&mut self, field: impl Into<String>, err: ValidationError) {
        self.0.push((field.into(), err));
    }

    pub(crate) fn check(&mut self, field: impl Into<String>, result: Result<(), ValidationError>) {
        if let Err(err) = result {
            self.push(field, err);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The first error: what a single-message API response carries.
    pub fn first(&self) -> Option<&ValidationError> {
        self.0.first().map(|(_, e)| e)
    }

    pub(crate) fn into_result(self) -> Result<(), ValidationErrors> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (field, err)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{field}: {err}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}
