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
