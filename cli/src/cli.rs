//! The command line, as clap reads it.

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "4kr",
    version,
    about = "Forkr: instant, persistent Linux sandboxes",
    disable_help_subcommand = true
)]
pub struct Cli {
    /// API URL (overrides the profile, FORKR_URL and FORKR_API_URL).
    #[arg(long, global = true, display_order = 900)]
    pub url: Option<String>,
    /// Target this profile for one command (same as FORKR_PROFILE).
    #[arg(long, global = true, display_order = 901)]
    pub profile: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

/// `-p/--project`, on the commands that take a project.
#[derive(Args, Debug, Clone, Default)]
pub struct ProjectArg {
    /// Project (default: FORKR_PROJECT, the git repository's name, or `default`).
    #[arg(short = 'p', long = "project")]
    pub project: Option<String>,
}

/// `-j/--json`.
#[derive(Args, Debug, Clone, Copy, Default)]
pub struct JsonArg {
    /// Print JSON.
    #[arg(short = 'j', long = "json")]
    pub json: bool,
}

/// `-j/--json` on a command that has no JSON output: parsed (and hidden) so that 4kr can refuse
/// it with a clear message instead of a usage error.
#[derive(Args, Debug, Clone, Copy, Default)]
pub struct NoJson {
    #[arg(short = 'j', long = "json", hide = true)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a box from a base (default box-base) or as a fork of another box.
    Create {
        name: String,
        /// Base to start from (an alias, an exact version, or alias:tag).
        #[arg(short = 'b', long)]
        base: Option<String>,
        /// Clone an existing box's filesystem instead of a base.
        #[arg(short = 'f', long)]
        fork: Option<String>,
        /// Mount a data volume: NAME=/path[:ro|:rw] (repeatable).
        #[arg(short = 'd', long = "data")]
        data: Vec<String>,
        /// Environment variable KEY=VALUE (repeatable).
        #[arg(short = 'e', long = "env")]
        env: Vec<String>,
        /// CPU request, e.g. 500m or 2.
        #[arg(long)]
        cpu: Option<String>,
        /// Memory limit, e.g. 2Gi.
        #[arg(long)]
        memory: Option<String>,
        #[command(flatten)]
        project: ProjectArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// List boxes.
    #[command(alias = "ls")]
    List {
        #[command(flatten)]
        project: ProjectArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Show a box's details.
    Show {
        #[arg(value_name = "BOX")]
        target: String,
        #[command(flatten)]
        project: ProjectArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Change PORT, CPU, MEMORY, TERMINATION_GRACE_PERIOD_SECONDS and tags.
    Update {
        #[arg(value_name = "BOX")]
        target: String,
        /// KEY=VALUE settings.
        settings: Vec<String>,
        /// KEY=VALUE, merged with the settings (repeatable).
        #[arg(short = 'e', long = "env")]
        env: Vec<String>,
        /// Tag KEY=VALUE (repeatable).
        #[arg(short = 't', long = "tag")]
        tag: Vec<String>,
        #[command(flatten)]
        project: ProjectArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Delete boxes.
    #[command(alias = "rm")]
    Delete {
        #[arg(value_name = "BOX", required = true)]
        targets: Vec<String>,
        /// Delete even if the box is running.
        #[arg(short = 'f', long)]
        force: bool,
        #[command(flatten)]
        project: ProjectArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Stop a box (its root is kept; /tmp and /run are wiped).
    Stop {
        #[arg(value_name = "BOX")]
        target: String,
        #[command(flatten)]
        project: ProjectArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Start a stopped box again.
    Resume {
        #[arg(value_name = "BOX")]
        target: String,
        #[command(flatten)]
        project: ProjectArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Expose a box on a custom hostname with TLS: SUBDOMAIN of the publish domain, `@` for
    /// the bare domain, or --host.
    Publish {
        #[arg(value_name = "BOX")]
        target: String,
        /// The subdomain (`@` is the bare domain); required unless --host.
        subdomain: Option<String>,
        /// An explicit full hostname (instead of a subdomain).
        #[arg(long)]
        host: Option<String>,
        /// Publish under this domain instead of the server's (not with --host).
        #[arg(long)]
        domain: Option<String>,
        /// Take over a host already published by another box.
        #[arg(short = 'f', long)]
        force: bool,
        #[command(flatten)]
        project: ProjectArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Remove a published host (named as for publish), or every host of the box.
    Unpublish {
        #[arg(value_name = "BOX")]
        target: String,
        /// The subdomain (`@` is the bare domain); none and no --host: every host.
        subdomain: Option<String>,
        /// An explicit full hostname.
        #[arg(long)]
        host: Option<String>,
        /// The domain the subdomain is under (not with --host).
        #[arg(long)]
        domain: Option<String>,
        #[command(flatten)]
        project: ProjectArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Run a command in a box (`-` makes an ephemeral box for it).
    Exec(ExecArgs),
    /// An interactive shell in a box (`-` makes an ephemeral box for it).
    Console {
        #[arg(value_name = "BOX")]
        target: String,
        #[command(flatten)]
        project: ProjectArg,
        #[command(flatten)]
        json: NoJson,
    },
    /// SSH into a box: not available, forkr-api has no SSH entry point (use console).
    Ssh {
        #[arg(value_name = "BOX")]
        target: String,
        /// A command to run (after --).
        #[arg(last = true)]
        args: Vec<String>,
        #[command(flatten)]
        project: ProjectArg,
        #[command(flatten)]
        json: NoJson,
    },
    /// Run ps in a box (extra args after --).
    Ps {
        #[arg(value_name = "BOX")]
        target: String,
        #[arg(last = true)]
        args: Vec<String>,
        #[command(flatten)]
        project: ProjectArg,
        #[command(flatten)]
        json: NoJson,
    },
    /// Read a background process's log.
    #[command(alias = "tail")]
    Logs {
        #[arg(value_name = "BOX")]
        target: String,
        /// The background process (from exec --bg).
        #[arg(long)]
        pid: Option<u32>,
        /// Keep printing as the log grows.
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        project: ProjectArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Copy one file into or out of a box: `cp ./f box:/path` or `cp box:/path ./f`.
    #[command(visible_aliases = ["get", "put"])]
    Cp {
        /// A local path or `box:/path` (`-:/path` is an ephemeral box).
        #[arg(allow_hyphen_values = true)]
        src: String,
        /// A local path or `box:/path`.
        #[arg(allow_hyphen_values = true)]
        dest: String,
        #[command(flatten)]
        project: ProjectArg,
        #[command(flatten)]
        json: NoJson,
    },
    /// Copy your codex auth and config, SSH keypair and git config into a box.
    Inject {
        #[arg(value_name = "BOX")]
        target: String,
        /// Codex auth file [default: ~/.codex/auth.json].
        #[arg(long, value_name = "PATH")]
        codex_auth: Option<std::path::PathBuf>,
        /// Codex config, written as /root/.codex/codex.toml [default: ~/.codex/config.toml].
        #[arg(long, value_name = "PATH")]
        codex_toml: Option<std::path::PathBuf>,
        /// SSH private key, with PATH.pub next to it [default: the first of ~/.ssh/id_ed25519,
        /// ~/.ssh/id_rsa, ~/.ssh/id_ecdsa].
        #[arg(long, value_name = "PATH")]
        ssh_key: Option<std::path::PathBuf>,
        #[command(flatten)]
        project: ProjectArg,
        #[command(flatten)]
        json: NoJson,
    },
    /// Ports listening inside a box.
    #[command(subcommand)]
    Port(PortCommand),
    /// Snapshots of a box's root.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// What changed in a box's root since a snapshot.
    #[command(subcommand)]
    Diff(DiffCommand),
    /// Project users that `exec --user` runs as.
    #[command(subcommand)]
    User(UserCommand),
    /// Data volumes: persistent disks mounted into boxes, with checkpoints and backups.
    #[command(subcommand, visible_aliases = ["vol", "data"])]
    Volume(VolumeCommand),
    /// Bases: read-only templates that boxes clone.
    #[command(subcommand)]
    Base(BaseCommand),
    /// Local setup config (.forkr/config.yaml).
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print the "Using forkr" guide.
    Docs {
        #[command(flatten)]
        json: NoJson,
    },
    /// Print a shell completion script: `4kr completion bash > /etc/bash_completion.d/4kr`.
    Completion {
        shell: clap_complete::Shell,
        #[command(flatten)]
        json: NoJson,
    },
    /// Forkr on this machine, without a cluster.
    #[command(subcommand)]
    Local(LocalCommand),
    /// The server's bearer tokens: list, create, revoke (admin tokens only).
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// List the tokens: ID NAME SCOPE CREATED EXPIRES LAST-USED (never a secret).
    #[command(visible_alias = "ls")]
    List {
        #[command(flatten)]
        json: NoJson,
    },
    /// Mint a token and print its secret, once.
    Create {
        /// Name to remember the token by.
        name: String,
        /// Allow every project.
        #[arg(long, conflicts_with = "project")]
        admin: bool,
        /// Allow this project (repeatable).
        #[arg(short = 'p', long)]
        project: Vec<String>,
        /// When it stops working: a lifetime (30d, 12h, 90m, 3600) or an RFC 3339 time.
        #[arg(long)]
        expires: Option<String>,
        #[command(flatten)]
        json: NoJson,
    },
    /// Revoke tokens by id: refused from their next request on.
    #[command(visible_alias = "rm")]
    Revoke {
        #[arg(value_name = "ID", required = true)]
        ids: Vec<String>,
        #[command(flatten)]
        json: NoJson,
    },
}

impl TokenCommand {
    fn json_flag(&self) -> (&'static str, &NoJson) {
        match self {
            TokenCommand::List { json } => ("token list", json),
            TokenCommand::Create { json, .. } => ("token create", json),
            TokenCommand::Revoke { json, .. } => ("token revoke", json),
        }
    }
}

/// `4kr exec`.
#[derive(Args, Debug)]
pub struct ExecArgs {
    #[arg(value_name = "BOX")]
    pub target: String,
    /// Run as a project user.
    #[arg(long)]
    pub user: Option<String>,
    /// KEY=VALUE (repeatable).
    #[arg(long = "env")]
    pub env: Vec<String>,
    /// Working directory.
    #[arg(long = "wd", alias = "cwd")]
    pub wd: Option<String>,
    /// Treat the arguments as one shell string.
    #[arg(long = "sh", alias = "bash")]
    pub sh: bool,
    /// Run detached in the background; prints pid=<n>.
    #[arg(long)]
    pub bg: bool,
    #[command(flatten)]
    pub project: ProjectArg,
    #[command(flatten)]
    pub json: JsonArg,
    /// The command (after --).
    #[arg(last = true)]
    pub command: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum SnapshotCommand {
    /// Take a snapshot (named v0, v1, ... unless you name it).
    Create {
        #[arg(value_name = "BOX")]
        target: String,
        /// The snapshot's name.
        name: Option<String>,
        /// The name (overrides the positional one).
        #[arg(long = "name")]
        name_flag: Option<String>,
        /// A description.
        #[arg(short = 'm', long = "message")]
        message: Option<String>,
        #[command(flatten)]
        project: ProjectArg,
        #[command(flatten)]
        json: NoJson,
    },
    /// List a box's snapshots: NAME, SIZE, CREATED, DESCRIPTION.
    #[command(alias = "ls")]
    List {
        #[arg(value_name = "BOX")]
        target: String,
        #[command(flatten)]
        project: ProjectArg,
        #[command(flatten)]
        json: NoJson,
    },
    /// Restore a box's root from a snapshot (destructive; the box restarts).
    Restore {
        #[arg(value_name = "BOX")]
        target: String,
        name: String,
        #[command(flatten)]
        project: ProjectArg,
        #[command(flatten)]
        json: NoJson,
    },
}

#[derive(Subcommand, Debug)]
pub enum PortCommand {
    /// TCP ports something listens on: PORT, ADDRESS.
    #[command(alias = "ls")]
    List {
        #[arg(value_name = "BOX")]
        target: String,
        #[command(flatten)]
        project: ProjectArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Wait until something listens on PORT.
    Wait {
        #[arg(value_name = "BOX")]
        target: String,
        port: u16,
        /// Seconds to wait.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
        #[command(flatten)]
        project: ProjectArg,
        #[command(flatten)]
        json: JsonArg,
    },
}

#[derive(Subcommand, Debug)]
pub enum DiffCommand {
    /// Added (+), modified (~) and deleted (-) paths.
    Status {
        #[arg(value_name = "BOX")]
        target: String,
        /// The snapshot to compare with (default: the most recent).
        #[arg(long)]
        against: Option<String>,
        #[command(flatten)]
        project: ProjectArg,
        #[command(flatten)]
        json: NoJson,
    },
    /// One file: added, deleted, modified (with a unified diff) or unchanged.
    File {
        #[arg(value_name = "BOX")]
        target: String,
        path: String,
        #[arg(long)]
        against: Option<String>,
        #[command(flatten)]
        project: ProjectArg,
        #[command(flatten)]
        json: NoJson,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// List the project's users.
    List {
        #[command(flatten)]
        project: ProjectArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Add a user (UIDs from 20000, GID = UID, home /home/<name>).
    Create {
        name: String,
        /// Login shell.
        #[arg(long)]
        shell: Option<String>,
        #[command(flatten)]
        project: ProjectArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Change a user's shell.
    Update {
        name: String,
        #[arg(long)]
        shell: String,
        #[command(flatten)]
        project: ProjectArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Remove a user.
    Delete {
        name: String,
        #[command(flatten)]
        project: ProjectArg,
        #[command(flatten)]
        json: NoJson,
    },
}

#[derive(Subcommand, Debug)]
pub enum VolumeCommand {
    /// Create an empty data volume.
    Create {
        name: String,
        /// Size limit, e.g. 10Gi.
        #[arg(long)]
        size: Option<String>,
        #[command(flatten)]
        project: ProjectArg,
        #[command(flatten)]
        json: NoJson,
    },
    /// List data volumes: NAME, SIZE (bytes used), LIMIT, CREATED.
    #[command(alias = "ls")]
    List {
        #[command(flatten)]
        project: ProjectArg,
        #[command(flatten)]
        json: NoJson,
    },
    /// Show one data volume.
    Show {
        #[arg(value_name = "VOLUME")]
        name: String,
        #[command(flatten)]
        project: ProjectArg,
        #[command(flatten)]
        json: NoJson,
    },
    /// Delete data volumes (refused while a box mounts one); their checkpoints go too.
    #[command(alias = "rm")]
    Delete {
        #[arg(value_name = "VOLUME", required = true)]
        names: Vec<String>,
        #[command(flatten)]
        project: ProjectArg,
        #[command(flatten)]
        json: NoJson,
    },
    /// Checkpoint a volume (named v0, v1, ... unless you name it); deleted with the volume.
    Checkpoint(VolumeCopyArgs),
    /// List a volume's checkpoints: NAME, SIZE, CREATED, DESCRIPTION.
    Checkpoints(VolumeArg),
    /// Back a volume up (named v0, v1, ... unless you name it); backups outlive the volume.
    Backup(VolumeCopyArgs),
    /// List a volume's backups: NAME, SIZE, CREATED, DESCRIPTION.
    Backups(VolumeArg),
    /// Replace a volume's contents with a checkpoint or a backup (boxes mounting it must be
    /// stopped); a backup also brings back a deleted volume.
    Restore {
        #[arg(value_name = "VOLUME")]
        name: String,
        /// The checkpoint to restore.
        #[arg(long, conflicts_with = "backup", required_unless_present = "backup")]
        checkpoint: Option<String>,
        /// The backup to restore.
        #[arg(long)]
        backup: Option<String>,
        #[command(flatten)]
        project: ProjectArg,
        #[command(flatten)]
        json: NoJson,
    },
}

/// `volume checkpoint` and `volume backup`: as `snapshot create`.
#[derive(Args, Debug)]
pub struct VolumeCopyArgs {
    #[arg(value_name = "VOLUME")]
    pub volume: String,
    /// The copy's name.
    pub name: Option<String>,
    /// The name (overrides the positional one).
    #[arg(long = "name")]
    pub name_flag: Option<String>,
    /// A description.
    #[arg(short = 'm', long = "message")]
    pub message: Option<String>,
    #[command(flatten)]
    pub project: ProjectArg,
    #[command(flatten)]
    pub json: NoJson,
}

/// One volume, for the commands that list its copies.
#[derive(Args, Debug)]
pub struct VolumeArg {
    #[arg(value_name = "VOLUME")]
    pub volume: String,
    #[command(flatten)]
    pub project: ProjectArg,
    #[command(flatten)]
    pub json: NoJson,
}

#[derive(Subcommand, Debug)]
pub enum BaseCommand {
    /// List bases: NAME, VERSION, SIZE, CREATED.
    #[command(alias = "ls")]
    List {
        #[command(flatten)]
        json: NoJson,
    },
    /// Show a base's versions: VERSION, KIND, TAG, BUILDER, PARENT, SIZE, CREATED.
    Show {
        name: String,
        /// Only versions built from the script with this sha256.
        #[arg(long)]
        tag: Option<String>,
        #[command(flatten)]
        json: NoJson,
    },
    /// Delete a base (every version) or one exact version.
    #[command(alias = "rm")]
    Delete {
        name: String,
        #[command(flatten)]
        json: NoJson,
    },
    /// Save a box's root as a new version of a base.
    Save {
        /// The base to write.
        name: String,
        /// The box whose root to save.
        #[arg(value_name = "BOX")]
        target: String,
        #[command(flatten)]
        json: NoJson,
    },
    /// Import a root filesystem .tar.gz as a new version of a base.
    Import {
        name: String,
        /// The .tar.gz of a root filesystem (amd64).
        #[arg(long, required = true)]
        file: std::path::PathBuf,
        /// Extract on top of this base (here -p means --parent, not --project).
        #[arg(short = 'p', long)]
        parent: Option<String>,
        #[command(flatten)]
        json: NoJson,
    },
    /// Build a base from a Dockerfile with docker, podman or nerdctl (linux/amd64), export its
    /// root filesystem and upload it as a new version.
    Build {
        name: String,
        /// The Dockerfile.
        #[arg(short = 'f', long, default_value = "Dockerfile")]
        file: std::path::PathBuf,
        /// The build context.
        #[arg(long, default_value = ".")]
        context: std::path::PathBuf,
        #[command(flatten)]
        json: NoJson,
    },
}

/// Where local mode keeps its data.
#[derive(Args, Debug, Clone)]
pub struct DataDirArg {
    /// Data directory (database, pool, logs).
    #[arg(long, env = "FORKR_DATA_DIR", default_value = "/var/lib/forkr")]
    pub data_dir: std::path::PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum LocalCommand {
    /// Start forkr-api --local, make a token and the `local` profile, and provide box-base.
    Up {
        #[command(flatten)]
        data: DataDirArg,
        /// Address the API listens on.
        #[arg(long, default_value = "127.0.0.1:7070")]
        listen: String,
        /// Domain of box URLs.
        #[arg(long, default_value = "localhost")]
        domain: String,
        /// Import this rootfs .tar.gz as box-base instead of building one.
        #[arg(long)]
        base_tarball: Option<std::path::PathBuf>,
        /// Do not give each box its own address on the forkr0 bridge.
        #[arg(long)]
        no_network: bool,
        /// Where the reverse proxy for box URLs and published hosts listens (`off`: none).
        #[arg(long, default_value = "127.0.0.1:8080")]
        proxy_listen: String,
        #[command(flatten)]
        json: NoJson,
    },
    /// Stop forkr-api; data and running boxes are left alone.
    Down {
        #[command(flatten)]
        data: DataDirArg,
        #[command(flatten)]
        json: NoJson,
    },
    /// Whether forkr-api runs, and where its data and log are.
    Status {
        #[command(flatten)]
        data: DataDirArg,
        #[command(flatten)]
        json: NoJson,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Set a key.
    Set {
        key: String,
        value: String,
        #[command(flatten)]
        json: NoJson,
    },
    /// Print a key's value.
    Get {
        key: String,
        #[command(flatten)]
        json: NoJson,
    },
    /// Print every key.
    List {
        #[command(flatten)]
        json: NoJson,
    },
    /// Remove a key.
    Unset {
        key: String,
        #[command(flatten)]
        json: NoJson,
    },
    /// Print the config file's path.
    Path {
        #[command(flatten)]
        json: NoJson,
    },
    /// List the profiles that FORKR_PROFILE_* variables and the config define.
    Profiles {
        #[command(flatten)]
        json: NoJson,
    },
}

impl Command {
    /// The command's name when `-j/--json` was given to a command that has no JSON output. JSON
    /// works on create, list, show, update, publish, unpublish, delete, stop, resume,
    /// `exec --bg`, `logs` without `--follow`, `port list/wait` and `user list/create/update`;
    /// exec and logs refuse it in their other modes themselves.
    pub fn json_refused(&self) -> Option<&'static str> {
        let (name, flag) = match self {
            Command::Console { json, .. } => ("console", json),
            Command::Ssh { json, .. } => ("ssh", json),
            Command::Ps { json, .. } => ("ps", json),
            Command::Cp { json, .. } => ("cp", json),
            Command::Inject { json, .. } => ("inject", json),
            Command::Docs { json } => ("docs", json),
            Command::Completion { json, .. } => ("completion", json),
            Command::Snapshot(c) => c.json_flag(),
            Command::Diff(c) => c.json_flag(),
            Command::User(UserCommand::Delete { json, .. }) => ("user delete", json),
            Command::Volume(c) => c.json_flag(),
            Command::Base(c) => c.json_flag(),
            Command::Config(c) => c.json_flag(),
            Command::Local(c) => c.json_flag(),
            Command::Token(c) => c.json_flag(),
            _ => return None,
        };
        flag.json.then_some(name)
    }
}

impl SnapshotCommand {
    fn json_flag(&self) -> (&'static str, &NoJson) {
        match self {
            SnapshotCommand::Create { json, .. } => ("snapshot create", json),
            SnapshotCommand::List { json, .. } => ("snapshot list", json),
            SnapshotCommand::Restore { json, .. } => ("snapshot restore", json),
        }
    }
}

impl DiffCommand {
    fn json_flag(&self) -> (&'static str, &NoJson) {
        match self {
            DiffCommand::Status { json, .. } => ("diff status", json),
            DiffCommand::File { json, .. } => ("diff file", json),
        }
    }
}

impl VolumeCommand {
    fn json_flag(&self) -> (&'static str, &NoJson) {
        match self {
            VolumeCommand::Create { json, .. } => ("volume create", json),
            VolumeCommand::List { json, .. } => ("volume list", json),
            VolumeCommand::Show { json, .. } => ("volume show", json),
            VolumeCommand::Delete { json, .. } => ("volume delete", json),
            VolumeCommand::Checkpoint(a) => ("volume checkpoint", &a.json),
            VolumeCommand::Checkpoints(a) => ("volume checkpoints", &a.json),
            VolumeCommand::Backup(a) => ("volume backup", &a.json),
            VolumeCommand::Backups(a) => ("volume backups", &a.json),
            VolumeCommand::Restore { json, .. } => ("volume restore", json),
        }
    }
}

impl BaseCommand {
    fn json_flag(&self) -> (&'static str, &NoJson) {
        match self {
            BaseCommand::List { json } => ("base list", json),
            BaseCommand::Show { json, .. } => ("base show", json),
            BaseCommand::Delete { json, .. } => ("base delete", json),
            BaseCommand::Save { json, .. } => ("base save", json),
            BaseCommand::Import { json, .. } => ("base import", json),
            BaseCommand::Build { json, .. } => ("base build", json),
        }
    }
}

impl ConfigCommand {
    fn json_flag(&self) -> (&'static str, &NoJson) {
        match self {
            ConfigCommand::Set { json, .. } => ("config set", json),
            ConfigCommand::Get { json, .. } => ("config get", json),
            ConfigCommand::List { json } => ("config list", json),
            ConfigCommand::Unset { json, .. } => ("config unset", json),
            ConfigCommand::Path { json } => ("config path", json),
            ConfigCommand::Profiles { json } => ("config profiles", json),
        }
    }
}

impl LocalCommand {
    fn json_flag(&self) -> (&'static str, &NoJson) {
        match self {
            LocalCommand::Up { json, .. } => ("local up", json),
            LocalCommand::Down { json, .. } => ("local down", json),
            LocalCommand::Status { json, .. } => ("local status", json),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    fn parse(line: &str) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("4kr").chain(line.split_whitespace()))
    }

    #[test]
    fn the_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every command, flag and alias, each on at least one line.
    const ACCEPTED: &[&str] = &[
        "create web",
        "create web -b my-base -e A=1 --env B=2 --cpu 500m --memory 2Gi -d pg=/data:ro --data c=/c -p shop -j",
        "create web --base b --fork f --project shop --json",
        "create web -f src",
        "list",
        "ls -p shop -j",
        "list --project shop --json",
        "show web",
        "show shop:web -p x -j",
        "update web PORT=80 CPU=1 -e A=1 --env B=2 -t k=v --tag k2=v2 -p shop -j",
        "delete a b -f -p shop -j",
        "rm a --force --json",
        "stop web -j -p shop",
        "resume web --project shop --json",
        "publish web www",
        "publish web @ --domain example.com -f -p shop -j",
        "publish web --host a.example.com --force --json",
        "unpublish web",
        "unpublish web www --domain example.com -j",
        "unpublish web --host a.example.com -p shop --json",
        "exec web -- ls -la",
        "exec web --user alice --env A=1 --env B=2 --wd /tmp --sh -- echo",
        "exec web --cwd /tmp --bash -- x",
        "exec web --bg -j -p shop -- x",
        "exec - --project shop",
        "console web",
        "console - -p shop",
        "ssh web",
        "ssh web -p shop -- ls",
        "ps web",
        "ps web -p shop -- aux",
        "logs web --pid 3",
        "tail web --pid 3 --follow -p shop",
        "logs web --pid 3 -j",
        "cp a web:/b",
        "get web:/b a",
        "put a web:/b -p shop",
        "put a -:/b",
        "get -:/b a",
        "cp -p shop a web:/b",
        "cp a shop:-:/b -p shop",
        "inject web",
        "inject web --codex-auth a --codex-toml b --ssh-key c -p shop",
        "port list web -j",
        "port ls web -p shop --json",
        "port wait web 80 --timeout 5 -p shop -j",
        "snapshot create web",
        "snapshot create web n --name m -m desc -p shop",
        "snapshot create web --message d",
        "snapshot list web",
        "snapshot ls web -p s",
        "snapshot restore web v0 -p shop",
        "diff status web",
        "diff status web --against v0 -p shop",
        "diff file web /etc/x --against v0 -p shop",
        "user list -j -p shop",
        "user create alice --shell /bin/sh -j",
        "user update alice --shell /bin/zsh --json -p shop",
        "user delete alice -p shop",
        "volume create v --size 1Gi -p shop",
        "vol list",
        "data ls -p shop",
        "volume show v",
        "volume delete a b",
        "volume rm a -p shop",
        "volume checkpoint v",
        "volume checkpoint v n -m d --name m -p shop",
        "volume checkpoint v --message d",
        "volume checkpoints v",
        "volume backup v n -m d",
        "volume backups v -p shop",
        "volume restore v --checkpoint v0",
        "volume restore v --backup v1 -p shop",
        "base list",
        "base ls",
        "base show b --tag abc",
        "base delete b",
        "base rm b",
        "base save nb web",
        "base import b --file f.tar.gz -p parent",
        "base import b --file f --parent p",
        "base build b",
        "base build b -f Containerfile --context dir",
        "base build b --file x",
        "config set profile x",
        "config get profile",
        "config list",
        "config unset profile",
        "config path",
        "config profiles",
        "docs",
        "completion bash",
        "completion zsh",
        "completion fish",
        "completion elvish",
        "completion powershell",
        "local up --data-dir d --listen a --domain x --base-tarball t --no-network --proxy-listen off",
        "local down --data-dir d",
        "local status",
        "--url http://x --profile p list",
        "list --url http://x --profile p",
    ];

    #[test]
    fn every_flag_and_alias_parses() {
        for line in ACCEPTED {
            if let Err(e) = parse(line) {
                panic!("4kr {line}: {e}");
            }
        }
    }

    /// Lines clap refuses, with a piece of the reason.
    const REFUSED: &[(&str, &str)] = &[
        ("base import b", "--file <FILE>"),
        ("volume restore v", "--checkpoint <CHECKPOINT>"),
        (
            "volume restore v --checkpoint a --backup b",
            "cannot be used with",
        ),
        ("delete", "<BOX>"),
        ("volume delete", "<VOLUME>"),
        ("completion nushell", "invalid value 'nushell'"),
        ("port wait web notaport", "invalid value 'notaport'"),
        ("publish", "<BOX>"),
        ("create", "<NAME>"),
        (
            "base import b --file f -p x --project y",
            "unexpected argument '--project'",
        ),
        ("frobnicate", "unrecognized subcommand"),
    ];

    #[test]
    fn clap_refusals() {
        for (line, why) in REFUSED {
            match parse(line) {
                Ok(_) => panic!("4kr {line} parsed"),
                Err(e) => {
                    let text = e.render().to_string();
                    assert!(text.contains(why), "4kr {line}: {text}");
                }
            }
        }
    }

    #[test]
    fn aliases_reach_their_commands() {
        let cmd = |line: &str| parse(line).unwrap().command;
        assert!(matches!(cmd("ls"), Command::List { .. }));
        assert!(matches!(cmd("rm a"), Command::Delete { .. }));
        assert!(matches!(cmd("tail w --pid 1"), Command::Logs { .. }));
        assert!(matches!(cmd("get w:/a b"), Command::Cp { .. }));
        assert!(matches!(cmd("put a w:/b"), Command::Cp { .. }));
        for v in ["volume", "vol", "data"] {
            assert!(matches!(
                cmd(&format!("{v} ls")),
                Command::Volume(VolumeCommand::List { .. })
            ));
        }
        assert!(matches!(
            cmd("base rm b"),
            Command::Base(BaseCommand::Delete { .. })
        ));
        // On base import, -p is --parent.
        match cmd("base import b --file f -p box-base") {
            Command::Base(BaseCommand::Import { parent, .. }) => {
                assert_eq!(parent.as_deref(), Some("box-base"));
            }
            other => panic!("{other:?}"),
        }
        // --name overrides the positional snapshot name; both are kept for the command.
        match cmd("snapshot create w first --name second -m why") {
            Command::Snapshot(SnapshotCommand::Create {
                name,
                name_flag,
                message,
                ..
            }) => {
                assert_eq!(
                    (name.as_deref(), name_flag.as_deref(), message.as_deref()),
                    (Some("first"), Some("second"), Some("why"))
                );
            }
            other => panic!("{other:?}"),
        }
        match cmd("exec w --cwd /tmp --bash --env A=1 --env B=2 -- echo hi") {
            Command::Exec(a) => {
                assert_eq!(a.wd.as_deref(), Some("/tmp"));
                assert!(a.sh);
                assert_eq!(a.env, ["A=1", "B=2"]);
                assert_eq!(a.command, ["echo", "hi"]);
            }
            other => panic!("{other:?}"),
        }
        for (line, src, dest) in [
            ("put a -:/b", "a", "-:/b"),
            ("get -:/b a -p shop", "-:/b", "a"),
            ("cp -p shop a w:/b", "a", "w:/b"),
        ] {
            match cmd(line) {
                Command::Cp {
                    src: s, dest: d, ..
                } => assert_eq!((s.as_str(), d.as_str()), (src, dest), "{line}"),
                other => panic!("{other:?}"),
            }
        }
        match cmd("base build b") {
            Command::Base(BaseCommand::Build { file, context, .. }) => {
                assert_eq!(
                    (file.to_str(), context.to_str()),
                    (Some("Dockerfile"), Some("."))
                );
            }
            other => panic!("{other:?}"),
        }
    }

    /// The output contract: -j is taken by exactly these commands...
    const JSON_TAKEN: &[&str] = &[
        "create w -j",
        "list -j",
        "show w -j",
        "update w A=1 -j",
        "publish w x -j",
        "unpublish w -j",
        "delete w -j",
        "stop w -j",
        "resume w -j",
        "exec w --bg -j -- x",
        "logs w --pid 1 -j",
        "port list w -j",
        "port wait w 1 -j",
        "user list -j",
        "user create a -j",
        "user update a --shell s -j",
    ];

    /// ... and refused by name everywhere else (exec in the foreground or in an ephemeral box,
    /// and logs --follow, refuse it when they run).
    const JSON_REFUSED: &[(&str, &str)] = &[
        ("console w -j", "console"),
        ("ssh w -j", "ssh"),
        ("ps w -j", "ps"),
        ("cp a w:/b -j", "cp"),
        ("get w:/b a --json", "cp"),
        ("inject w -j", "inject"),
        ("user delete a -j", "user delete"),
        ("snapshot create w -j", "snapshot create"),
        ("snapshot list w -j", "snapshot list"),
        ("snapshot restore w v0 -j", "snapshot restore"),
        ("diff status w -j", "diff status"),
        ("diff file w /x -j", "diff file"),
        ("volume create v -j", "volume create"),
        ("data list -j", "volume list"),
        ("volume show v -j", "volume show"),
        ("volume delete v -j", "volume delete"),
        ("volume checkpoint v -j", "volume checkpoint"),
        ("volume checkpoints v -j", "volume checkpoints"),
        ("volume backup v -j", "volume backup"),
        ("volume backups v -j", "volume backups"),
        ("volume restore v --backup b -j", "volume restore"),
        ("base list -j", "base list"),
        ("base show b -j", "base show"),
        ("base delete b -j", "base delete"),
        ("base save b w -j", "base save"),
        ("base import b --file f -j", "base import"),
        ("base build b -j", "base build"),
        ("config set profile p -j", "config set"),
        ("config get profile -j", "config get"),
        ("config list -j", "config list"),
        ("config unset profile -j", "config unset"),
        ("config path -j", "config path"),
        ("config profiles -j", "config profiles"),
        ("docs -j", "docs"),
        ("completion bash -j", "completion"),
        ("local up -j", "local up"),
        ("local down -j", "local down"),
        ("local status -j", "local status"),
    ];

    #[test]
    fn json_is_taken_or_refused_by_name() {
        for line in JSON_TAKEN {
            let cli = parse(line).unwrap_or_else(|e| panic!("4kr {line}: {e}"));
            assert_eq!(cli.command.json_refused(), None, "4kr {line}");
        }
        for (line, name) in JSON_REFUSED {
            let cli = parse(line).unwrap_or_else(|e| panic!("4kr {line}: {e}"));
            assert_eq!(cli.command.json_refused(), Some(*name), "4kr {line}");
            let without = line.replace(" -j", "").replace(" --json", "");
            assert_eq!(parse(&without).unwrap().command.json_refused(), None);
        }
    }
}
