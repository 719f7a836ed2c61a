//! One module per command family; each function does one command.

pub mod bases;
pub mod boxes;
pub mod build;
pub mod config;
pub mod cp;
pub mod docs;
pub mod exec;
pub mod inject;
pub mod local;
pub mod localbase;
pub mod snapshots;
pub mod stream;
pub mod tokens;
pub mod upload;
pub mod users;
pub mod volumes;

use std::path::PathBuf;

use forkr_api_proto::client::Client;

use crate::config::Config;
use crate::target::{self, TargetFlags};

/// Reads one environment variable; a function so that tests need not touch the process's.
pub type EnvLookup = Box<dyn Fn(&str) -> Option<String>>;

/// What every command may need: the process environment and working directory, read once.
pub struct Context {
    pub flags: TargetFlags,
    pub cwd: PathBuf,
    env: EnvLookup,
}

impl Context {
    pub fn new(flags: TargetFlags, cwd: PathBuf, env: EnvLookup) -> Context {
        Context { flags, cwd, env }
    }

    pub fn env(&self, key: &str) -> Option<String> {
        (self.env)(key)
    }

    pub fn config_path(&self) -> PathBuf {
        crate::config::config_path(&*self.env, &self.cwd)
    }

    pub fn config(&self) -> anyhow::Result<Config> {
        Config::load(&self.config_path())
    }

    /// The API client for the resolved target.
    pub fn client(&self) -> anyhow::Result<Client> {
        let t = target::resolve(&self.flags, &*self.env, &self.config()?)?;
        Ok(Client::new(&t.url, t.token, t.insecure)?)
    }

    /// Resolves a box ref (`box`, `project:box`, `project.box`, `.`) to (project, box). `-`
    /// is refused here: only exec, console and cp make ephemeral boxes.
    pub fn box_ref(
        &self,
        reference: &str,
        project_flag: Option<&str>,
    ) -> anyhow::Result<(String, String)> {
        let parsed = forkr_crds::validation::parse_ref(reference)?;
        let resolved = parsed.resolve(&self.project(project_flag)?, |k| self.env(k))?;
        match resolved.target {
            forkr_crds::validation::ResolvedTarget::Named(name) => Ok((resolved.project, name)),
            forkr_crds::validation::ResolvedTarget::Ephemeral => {
                anyhow::bail!("`-` (an ephemeral box) only works with exec, console and cp")
            }
        }
    }

    /// The project: `-p`, FORKR_PROJECT, the git repository's name, or `default`.
    pub fn project(&self, flag: Option<&str>) -> anyhow::Result<String> {
        Ok(crate::project::resolve(flag, &*self.env, &self.cwd)?)
    }
}
