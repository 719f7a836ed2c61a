//! The REST API's wire types, declared once here. The server serializes them and 4kr's typed
//! client deserializes the same types, so the two cannot disagree.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The body of every error response: `{"error": code, "message": text}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// A stable machine code, e.g. `fork_running`, `no_updates`, `invalid_name`.
    pub error: String,
    /// The human-readable message, as 4kr prints it.
    pub message: String,
}

/// `GET /healthz`, `GET /readyz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    pub status: String,
}

/// A data mount as the API shows and takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DataMountView {
    pub volume: String,
    pub mount_path: String,
    #[serde(default)]
    pub read_only: bool,
}

/// `POST /v1/projects/{project}/snapshots/{box}`: the name is optional (`v0`, `v1`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateSnapshot {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

/// One snapshot: the NAME, SIZE, CREATED and DESCRIPTION columns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SnapshotView {
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// RFC3339.
    pub created: String,
    pub description: Option<String>,
}

/// A change in `diff status`: `+`, `~` or `-`, and the path inside the box.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiffChange {
    pub change: String,
    pub path: String,
}

/// `diff status`: the snapshot compared against and what changed since.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiffStatusView {
    pub against: String,
    pub changes: Vec<DiffChange>,
    /// `+ /path` lines, or `No changes`.
    pub text: String,
}

/// `diff file`: one of added, deleted, modified or unchanged, with a unified diff if modified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiffFileView {
    pub against: String,
    pub path: String,
    pub status: String,
    pub diff: Option<String>,
}

/// One row of `base list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BaseSummaryView {
    pub name: String,
    pub version: String,
    pub size: u64,
    pub created: String,
}

/// One version in `base show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BaseVersionView {
    pub version: String,
    pub kind: String,
    pub tag: Option<String>,
    pub builder: Option<String>,
    pub parent: Option<String>,
    pub size: u64,
    pub created: String,
}

/// `base show`: the name, the latest version, the version count and the versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BaseDetailsView {
    pub name: String,
    pub latest: String,
    pub version_count: usize,
    pub versions: Vec<BaseVersionView>,
}

/// `POST /v1/projects/{project}/bases/{name}/save`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SaveBase {
    /// The box whose root becomes the new version.
    #[serde(rename = "box")]
    pub box_name: String,
}

/// Query of `POST /v1/projects/{project}/bases/{name}/import`; the body is the `.tar.gz`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct ImportBase {
    /// A base (alias or exact version) to snapshot and extract on top of.
    #[serde(default)]
    pub parent: Option<String>,
    /// sha256 of the build script, for `base build`.
    #[serde(default)]
    pub tag: Option<String>,
    /// What built the image (`docker`, `podman`, ...).
    #[serde(default)]
    pub builder: Option<String>,
    /// Makes a retried upload return the version the first one made.
    #[serde(default)]
    pub request_id: Option<String>,
}

/// The version a save or import wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BaseWritten {
    pub name: String,
    pub version: String,
}

/// `POST /v1/projects/{project}/volumes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateVolume {
    pub name: String,
    /// An optional size limit, e.g. `10Gi`.
    #[serde(default)]
    pub size: Option<String>,
}

/// A data volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VolumeView {
    pub name: String,
    pub project: String,
    /// Bytes used.
    pub size: u64,
    pub limit: Option<String>,
    pub created: String,
}

/// A project user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserView {
    pub name: String,
    pub uid: u32,
    /// Always equal to `uid`.
    pub gid: u32,
    pub home: String,
    pub shell: String,
}

/// `POST /v1/projects/{project}/users`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub name: String,
    #[serde(default)]
    pub shell: Option<String>,
}

/// `PATCH /v1/projects/{project}/users/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    pub shell: String,
}

/// Tags and settings share this shape in several places.
pub type StringMap = BTreeMap<String, String>;

/// `POST /v1/projects/{project}/boxes`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateBox {
    pub name: String,
    /// A base alias, exact version or `alias:tag`; `box-base` when neither base nor fork.
    #[serde(default)]
    pub base: Option<String>,
    /// A box to clone: `box` or `project:box`.
    #[serde(default)]
    pub fork: Option<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub cpu: Option<String>,
    #[serde(default)]
    pub memory: Option<String>,
    /// `NAME=/path[:ro|:rw]`, as `--data` takes them.
    #[serde(default)]
    pub data: Vec<String>,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Made for a `-` ref; 4kr deletes it when done.
    #[serde(default)]
    pub ephemeral: bool,
}

/// A box, as `show` prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BoxView {
    pub name: String,
    pub project: String,
    /// pending, creating, running, stopping, stopped, restoring, failed or deleting.
    pub status: String,
    /// The exact base version the root came from.
    pub base: Option<String>,
    /// `project:box` this box was forked from.
    pub fork_of: Option<String>,
    pub url: String,
    pub port: Option<u16>,
    /// RFC3339.
    pub created: Option<String>,
    pub started: Option<String>,
    pub stopped: Option<String>,
    pub published: Vec<String>,
    pub tags: BTreeMap<String, String>,
    pub data: Vec<DataMountView>,
    pub cpus: Option<f64>,
    pub ram_mb: Option<u64>,
    pub storage_gb: Option<f64>,
    pub ip: Option<String>,
    pub ephemeral: bool,
    /// Why the status is what it is, when it is not plain.
    pub message: Option<String>,
}

/// `PATCH /v1/projects/{project}/boxes/{name}`: the CLI merges every `KEY=VALUE` into `env`;
/// the server applies PORT, CPU, MEMORY and TERMINATION_GRACE_PERIOD_SECONDS (or
/// TERMINATION_GRACE_SECONDS) and drops the rest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateBox {
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub tags: Option<BTreeMap<String, String>>,
}

/// `POST .../boxes/{name}/snapshots/{snapshot}/restore` has no body; this is its answer's shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Restored {
    pub snapshot: String,
}

/// What to run and how: the part of a command that `POST .../exec` and the first frame of
/// `.../exec/ws` share, flattened into both so their JSON stays one flat object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Command {
    /// The program and its arguments; with `sh`, one shell string. Required, except that a
    /// `tty` stream with none runs an interactive login shell.
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub sh: bool,
    /// `KEY=VALUE` pairs, applied last.
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default)]
    pub wd: Option<String>,
    /// A project user.
    #[serde(default)]
    pub user: Option<String>,
}

/// `POST .../boxes/{name}/exec`: one command, its output collected.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ExecCommand {
    #[serde(flatten)]
    pub run: Command,
    /// Bytes for stdin, as UTF-8 text.
    #[serde(default)]
    pub stdin: Option<String>,
    /// Run detached and return its pid.
    #[serde(default)]
    pub bg: bool,
}

/// The result of a foreground `POST .../exec`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExecOutput {
    pub exit_code: i32,
    /// Output as UTF-8 (invalid bytes replaced); use the WebSocket exec for binary data.
    pub stdout: String,
    pub stderr: String,
}

/// The result of a background exec: `pid=<n>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BackgroundExec {
    pub pid: u32,
}

/// Query of `PUT`/`GET .../boxes/{name}/files`: the body is the file's bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct FileQuery {
    /// Absolute path inside the box.
    pub path: String,
    /// Mode for a put, octal (`644`); 0644 when unset.
    #[serde(default)]
    pub mode: Option<String>,
    /// Owner for a put; applied only with both ids.
    #[serde(default)]
    pub uid: Option<u32>,
    #[serde(default)]
    pub gid: Option<u32>,
}

/// What a put wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileWritten {
    pub path: String,
    pub size: u64,
}

/// Headers of a file download: mode (octal), owner.
pub const HEADER_MODE: &str = "x-forkr-mode";
pub const HEADER_UID: &str = "x-forkr-uid";
pub const HEADER_GID: &str = "x-forkr-gid";

/// The first frame of a WebSocket exec (`.../exec/ws`) or console (`.../console`), as JSON text.
/// Every frame after it is binary, in the format of [`crate::frame`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ExecStart {
    /// Empty with `tty`: an interactive login shell.
    #[serde(flatten)]
    pub run: Command,
    /// Run on a PTY (raw bytes, one output stream, resizable).
    #[serde(default)]
    pub tty: bool,
    #[serde(default)]
    pub rows: Option<u16>,
    #[serde(default)]
    pub cols: Option<u16>,
    /// Reattach to this console session instead of starting one.
    #[serde(default)]
    pub session: Option<String>,
}

/// A TCP port something listens on inside a box.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PortView {
    pub port: u16,
    /// The address it is bound to (`0.0.0.0`, `::`, `127.0.0.1`, ...).
    pub address: String,
}

/// `POST .../boxes/{name}/publish`. The host resolves as `4kr publish` documents: `host` wins;
/// otherwise `{subdomain}.{domain}`, where `@` is the bare domain and `domain` defaults to the
/// server's publish domain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PublishBox {
    #[serde(default)]
    pub subdomain: Option<String>,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub domain: Option<String>,
    /// Take the host over from the box that has it.
    #[serde(default)]
    pub force: bool,
}

/// The answer to a publish: `{"host": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Published {
    pub host: String,
}

/// `POST .../boxes/{name}/unpublish`: one host, named as for publish, or every host of the box
/// when none is given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UnpublishBox {
    #[serde(default)]
    pub subdomain: Option<String>,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub domain: Option<String>,
}

/// The hosts an unpublish removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Unpublished {
    pub hosts: Vec<String>,
}

/// `POST .../volumes/{name}/checkpoints` and `.../backups`: the name is optional (`v0`, `v1`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CheckpointVolume {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

/// `POST .../volumes/{name}/restore`: exactly one of a checkpoint or a backup.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RestoreVolume {
    #[serde(default)]
    pub checkpoint: Option<String>,
    #[serde(default)]
    pub backup: Option<String>,
}

/// A token's lifetime as `POST /v1/tokens` takes it: seconds, or a number with a unit
/// (`90s`, `30m`, `12h`, `30d`, `2w`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum ExpiresIn {
    Seconds(u64),
    Text(String),
}

impl ExpiresIn {
    /// The lifetime in seconds; an error names what is wrong.
    pub fn seconds(&self) -> Result<u64, String> {
        match self {
            ExpiresIn::Seconds(s) => Ok(*s),
            ExpiresIn::Text(t) => parse_lifetime(t),
        }
    }
}

/// `30d`, `12h`, `45m`, `90s`, `2w` or a bare number of seconds.
pub fn parse_lifetime(text: &str) -> Result<u64, String> {
    let bad = || format!("invalid lifetime {text:?}: a number with s, m, h, d or w (e.g. 30d)");
    let t = text.trim();
    let (digits, unit) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&t[..i], c.to_ascii_lowercase()),
        _ => (t, 's'),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let unit = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(unit).ok_or_else(bad)
}

/// `POST /v1/tokens` (admin only): a name, and either `admin` or one or more `projects`;
/// optionally a lifetime (`expires_in`) or an end (`expires`, RFC 3339), not both.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    pub name: String,
    #[serde(default)]
    pub admin: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub projects: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<ExpiresIn>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
}

/// One token, as `GET /v1/tokens` lists it: never its secret or its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenView {
    /// Stable and not secret: what `DELETE /v1/tokens/{id}` and the audit log name.
    pub id: String,
    pub name: String,
    /// Every project.
    pub admin: bool,
    /// The projects of a non-admin token.
    pub projects: Vec<String>,
    /// RFC 3339.
    pub created: String,
    /// RFC 3339; null: never.
    pub expires: Option<String>,
    /// RFC 3339, updated at most once a minute; null: never used.
    pub last_used: Option<String>,
}

/// `POST /v1/tokens`' answer: the token's secret, shown this once, and its record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedToken {
    pub token: String,
    #[serde(flatten)]
    pub info: TokenView,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    /// The flattened [`Command`] keeps both exec bodies one flat object, as docs/api.md shows.
    #[test]
    fn exec_bodies_stay_flat() {
        let body = json!({"command": ["ls", "-l"], "sh": false, "env": ["A=b"], "wd": "/w",
            "user": "app", "stdin": "hi", "bg": true});
        let cmd: ExecCommand = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(cmd.run.command, ["ls", "-l"]);
        assert_eq!(cmd.run.user.as_deref(), Some("app"));
        assert_eq!(serde_json::to_value(&cmd).unwrap(), body);

        let start: ExecStart =
            serde_json::from_value(json!({"tty": true, "rows": 24, "session": "pty-1"})).unwrap();
        assert!(start.run.command.is_empty() && start.tty);
        let start: ExecStart =
            serde_json::from_value(json!({"command": ["sh"], "sh": true, "cols": 80})).unwrap();
        assert_eq!((start.run.sh, start.cols), (true, Some(80)));
    }

    #[test]
    fn exec_bodies_refuse_unknown_fields() {
        for (body, field) in [
            (json!({"command": ["ls"], "surprise": 1}), "surprise"),
            (json!({"command": ["ls"], "tty": true}), "tty"),
        ] {
            let e = serde_json::from_value::<ExecCommand>(body).unwrap_err();
            assert!(e.to_string().contains(field), "{e}");
        }
        let e = serde_json::from_value::<ExecStart>(json!({"bg": true})).unwrap_err();
        assert!(e.to_string().contains("bg"), "{e}");
    }
}
