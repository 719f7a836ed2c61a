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
    #[arg(long, global = true)]
    pub url: Option<String>,
    /// Target this profile for one command (same as FORKR_PROFILE).
    #[arg(long, global = true)]
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
    /// Run a command in a box (`-` makes an ephemeral box for it).
    Exec(ExecArgs),
    /// An interactive shell in a box (`-` makes an ephemeral box for it).
    Console {
        #[arg(value_name = "BOX")]
        target: String,
        #[command(flatten)]
        project: ProjectArg,
    },
    /// Run ps in a box (extra args after --).
    Ps {
        #[arg(value_name = "BOX")]
        target: String,
        #[arg(last = true)]
        args: Vec<String>,
        #[command(flatten)]
        project: ProjectArg,
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
        src: String,
        dest: String,
        #[command(flatten)]
        project: ProjectArg,
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
    /// Data volumes: persistent disks mounted into boxes.
    #[command(subcommand)]
    Data(DataCommand),
    /// Bases: read-only templates that boxes clone.
    #[command(subcommand)]
    Base(BaseCommand),
    /// Local setup config (.forkr/config.yaml).
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print the "Using forkr" guide.
    Docs,
    /// Forkr on this machine, without a cluster.
    #[command(subcommand)]
    Local(LocalCommand),
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
        json: JsonArg,
    },
    /// List a box's snapshots: NAME, SIZE, CREATED, DESCRIPTION.
    #[command(alias = "ls")]
    List {
        #[arg(value_name = "BOX")]
        target: String,
        #[command(flatten)]
        project: ProjectArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Restore a box's root from a snapshot (destructive; the box restarts).
    Restore {
        #[arg(value_name = "BOX")]
        target: String,
        name: String,
        #[command(flatten)]
        project: ProjectArg,
        #[command(flatten)]
        json: JsonArg,
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
        json: JsonArg,
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
        json: JsonArg,
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
    },
}

#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Create an empty data volume.
    Create {
        name: String,
        /// Size limit, e.g. 10Gi.
        #[arg(long)]
        size: Option<String>,
        #[command(flatten)]
        project: ProjectArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// List data volumes with their sizes.
    #[command(alias = "ls")]
    List {
        #[command(flatten)]
        project: ProjectArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Show one data volume.
    Show {
        name: String,
        #[command(flatten)]
        project: ProjectArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Delete data volumes (refused while a box mounts one).
    #[command(alias = "rm")]
    Delete {
        #[arg(required = true)]
        names: Vec<String>,
        #[command(flatten)]
        project: ProjectArg,
        #[command(flatten)]
        json: JsonArg,
    },
}

#[derive(Subcommand, Debug)]
pub enum BaseCommand {
    /// List bases: NAME, VERSION, SIZE, CREATED.
    #[command(alias = "ls")]
    List {
        #[command(flatten)]
        json: JsonArg,
    },
    /// Show a base's versions: VERSION, KIND, TAG, BUILDER, PARENT, SIZE, CREATED.
    Show {
        name: String,
        /// Only versions built from the script with this sha256.
        #[arg(long)]
        tag: Option<String>,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Delete a base (every version) or one exact version.
    #[command(alias = "rm")]
    Delete { name: String },
    /// Save a box's root as a new version of a base.
    Save {
        /// The base to write.
        name: String,
        /// The box whose root to save.
        #[arg(value_name = "BOX")]
        target: String,
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
        /// Run boxes in the host's network instead of one each on a bridge.
        #[arg(long)]
        no_network: bool,
    },
    /// Stop forkr-api; data and running boxes are left alone.
    Down {
        #[command(flatten)]
        data: DataDirArg,
    },
    /// Whether forkr-api runs, and where its data and log are.
    Status {
        #[command(flatten)]
        data: DataDirArg,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Set a key.
    Set { key: String, value: String },
    /// Print a key's value.
    Get { key: String },
    /// Print every key.
    List,
    /// Remove a key.
    Unset { key: String },
    /// Print the config file's path.
    Path,
    /// List the profiles that FORKR_PROFILE_* variables and the config define.
    Profiles,
}
