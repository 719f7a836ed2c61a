//! The local runtime: each box is a runc container whose entrypoint is `forkr-runner`.
//!
//! State lives under one directory (normally `/run/forkr/runtime`):
//!
//! ```text
//! runc/                              runc's own state (--root)
//! rootfs-<hash>/                     the shared, read-only runner rootfs
//! boxes/<project>/<box>/spec.json    what to run, and whether it should be running
//! boxes/<project>/<box>/config.json  the runc bundle
//! boxes/<project>/<box>/forkr/       runner.json and scratch/ (behind /tmp and /run)
//! boxes/<project>/<box>/runner.log   the runner's own output
//! net/                               IP leases, hosts and resolv.conf files
//! ```
//!
//! The runtime keeps no state in memory that it cannot rebuild from that directory and runc, so
//! an agent restart finds running boxes again (and leaves them running) and reports the ones
//! that died meanwhile.

pub mod bundle;
pub mod net;
pub mod runc;
pub mod runner;

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::pool::Pool;
use crate::runtime::net::{NetConfig, Network};
use bundle::{Bind, BundleSpec};
use forkr_agent_proto::layout;
use runc::Runc;
use runner::{DataMount, Injected, RunnerConfig};

/// How the local runtime is set up.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    pub state_dir: PathBuf,
    /// The `forkr-runner` binary to put in the runner rootfs.
    pub runner_bin: PathBuf,
    /// `None` runs boxes without a network namespace of their own (tests of other parts).
    pub network: Option<NetConfig>,
    /// What the runner injects besides the box's names (API URL, node IP...).
    pub api: ApiEndpoints,
}

/// The platform endpoints every box is told about (002, "Injected environment variables").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiEndpoints {
    pub api_url: String,
    pub api_host: String,
    pub node_ip: String,
    #[serde(default)]
    pub insecure: bool,
}

/// A data volume of the box's project, mounted at `target`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeMount {
    pub volume: String,
    pub target: String,
    #[serde(default)]
    pub read_only: bool,
}

/// What to run. Kept on disk, so resume and recovery need nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoxSpec {
    pub project: String,
    pub name: String,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub memory_bytes: Option<u64>,
    #[serde(default)]
    pub cpu_millis: Option<u64>,
    /// Seconds between SIGTERM and SIGKILL on stop.
    #[serde(default = "default_grace")]
    pub grace_seconds: u64,
    #[serde(default)]
    pub volumes: Vec<VolumeMount>,
}

fn default_grace() -> u64 {
    10
}

impl BoxSpec {
    /// A box with defaults for everything but its names.
    pub fn new(project: &str, name: &str) -> BoxSpec {
        BoxSpec {
            project: project.into(),
            name: name.into(),
            env: BTreeMap::new(),
            memory_bytes: None,
            cpu_millis: None,
            grace_seconds: default_grace(),
            volumes: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    spec: BoxSpec,
    /// What the user asked for last: running (start/resume) or not (stop).
    running: bool,
}

/// A box's state as the runtime sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Running,
    Stopped,
    /// Should be running but its container is gone or stopped (crashed, killed, node trouble).
    Dead,
}

/// Status of one box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoxStatus {
    pub project: String,
    pub name: String,
    pub phase: Phase,
    /// PID 1 (tini) on the host, while running.
    pub pid: Option<i32>,
    pub ip: Option<Ipv4Addr>,
}

/// The local runtime.
pub struct LocalRuntime {
    cfg: RuntimeConfig,
    pool: Arc<Pool>,
    runc: Runc,
    rootfs: PathBuf,
    net: Option<Network>,
    cgroup_prefix: String,
    locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

impl LocalRuntime {
    /// Opens the runtime over `pool`, and recovers: running boxes are adopted as they are, and
    /// boxes that should run but died are cleaned up and reported as dead (not restarted).
    pub fn open(cfg: RuntimeConfig, pool: Arc<Pool>) -> Result<(LocalRuntime, Vec<BoxStatus>)> {
        for d in ["runc", "boxes", "net"] {
            let p = cfg.state_dir.join(d);
            std::fs::create_dir_all(&p).ctx("create", &p)?;
        }
        let rootfs = bundle::ensure_runner_rootfs(&cfg.state_dir, &cfg.runner_bin)?;
        let net = match &cfg.network {
            Some(n) => Some(Network::setup(n.clone(), &cfg.state_dir.join("net"))?),
            None => None,
        };
        let key = sha2::Digest::finalize(sha2::Digest::chain_update(
            sha2::Sha256::default(),
            cfg.state_dir.to_string_lossy().as_bytes(),
        ));
        let rt = LocalRuntime {
            runc: Runc::new(&cfg.state_dir.join("runc")),
            cgroup_prefix: format!("forkr-{}", &hex::encode(key)[..8]),
            cfg,
            pool,
            rootfs,
            net,
            locks: Mutex::new(HashMap::new()),
        };
        let report = rt.recover()?;
        Ok((rt, report))
    }

    /// The cgroup directory (under each controller) that holds this runtime's boxes.
    pub fn cgroup_parent(&self) -> &str {
        &self.cgroup_prefix
    }

    /// The network, when the runtime has one.
    pub fn network(&self) -> Option<&Network> {
        self.net.as_ref()
    }

    fn id(project: &str, name: &str) -> String {
        format!("{project}.{name}")
    }

    fn box_dir(&self, project: &str, name: &str) -> PathBuf {
        self.cfg.state_dir.join("boxes").join(project).join(name)
    }

    fn lock_box(&self, project: &str, name: &str) -> Arc<Mutex<()>> {
        let mut map = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(Self::id(project, name)).or_default().clone()
    }

    fn read_record(&self, project: &str, name: &str) -> Result<Option<Record>> {
        let p = self.box_dir(project, name).join("spec.json");
        match std::fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| Error::FailedPrecondition(format!("{}: {e}", p.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).ctx("read", &p),
        }
    }

    fn write_record(&self, rec: &Record) -> Result<()> {
        let dir = self.box_dir(&rec.spec.project, &rec.spec.name);
        std::fs::create_dir_all(&dir).ctx("create", &dir)?;
        let tmp = dir.join("spec.json.new");
        let body = serde_json::to_vec_pretty(rec)
            .map_err(|e| Error::InvalidArgument(format!("spec: {e}")))?;
        std::fs::write(&tmp, body).ctx("write", &tmp)?;
        std::fs::rename(&tmp, dir.join("spec.json")).ctx("write", &dir)
    }

    /// Starts a box (or returns its status when it already runs), and waits until PID 1 runs.
    pub fn start(&self, spec: &BoxSpec) -> Result<BoxStatus> {
        validate_spec(spec)?;
        let lock = self.lock_box(&spec.project, &spec.name);
        let _g = lock.lock().unwrap_or_else(|p| p.into_inner());
        if let Ok(status) = self.status_unlocked(&spec.project, &spec.name)
            && status.phase == Phase::Running
        {
            return Ok(status);
        }
        self.write_record(&Record {
            spec: spec.clone(),
            running: true,
        })?;
        self.launch(spec)
    }

    /// Starts a stopped (or dead) box again with its recorded spec.
    pub fn resume(&self, project: &str, name: &str) -> Result<BoxStatus> {
        let rec = self
            .read_record(project, name)?
            .ok_or_else(|| Error::NotFound(format!("box {project}/{name} was never started")))?;
        self.start(&rec.spec)
    }

    fn launch(&self, spec: &BoxSpec) -> Result<BoxStatus> {
        let (p, n) = (spec.project.as_str(), spec.name.as_str());
        let id = Self::id(p, n);
        self.cleanup_container(p, n)?;
        let dir = self.box_dir(p, n);
        self.write_bundle(spec, &dir)?;
        // One runc invocation: the runner boots while the network is plumbed into its new
        // namespace (nothing in the boot needs the network), and the box counts as started
        // once both are done.
        let pid = self.runc.run_detached(&id, &dir, &dir.join("runner.log"))?;
        let ip = match &self.net {
            Some(net) => match net.attach(p, n, pid) {
                Ok(ip) => Some(ip),
                Err(e) => {
                    let _ = self.cleanup_container(p, n);
                    return Err(e);
                }
            },
            None => None,
        };
        if let Err(e) = wait_for_init(pid, &dir.join("runner.log")) {
            let _ = self.cleanup_container(p, n);
            return Err(e);
        }
        Ok(BoxStatus {
            project: p.into(),
            name: n.into(),
            phase: Phase::Running,
            pid: Some(pid),
            ip,
        })
    }

    /// Writes config.json and runner.json for a start. Every host path the runner needs is
    /// bound into its container; runner.json names them as the container sees them.
    fn write_bundle(&self, spec: &BoxSpec, dir: &Path) -> Result<()> {
        let (p, n) = (spec.project.as_str(), spec.name.as_str());
        let root = self.pool.root_path(p, n)?;
        let own = dir.join("forkr");
        std::fs::create_dir_all(own.join("scratch")).ctx("create", &own)?;
        let mut binds = vec![
            bind(&root, layout::BOX_ROOT, false),
            bind(&own, bundle::BOX_DIR, false),
        ];
        let mut rc = RunnerConfig {
            injected: Injected {
                project: p.into(),
                box_name: n.into(),
                api_url: self.cfg.api.api_url.clone(),
                api_host: self.cfg.api.api_host.clone(),
                node_ip: self.cfg.api.node_ip.clone(),
                insecure: self.cfg.api.insecure,
            },
            root: PathBuf::from(layout::BOX_ROOT),
            scratch: PathBuf::from(layout::SCRATCH_DIR),
            resolv_conf: None,
            hosts: None,
            system_volumes: BTreeMap::new(),
            data_volumes: Vec::new(),
            env: spec.env.clone(),
            init: runner::default_init(),
        };
        if let Some(net) = &self.net {
            let (resolv, hosts) = net.project_files(p)?;
            binds.push(bind(
                &resolv,
                &format!("{}/resolv.conf", bundle::ETC_DIR),
                true,
            ));
            binds.push(bind(&hosts, &format!("{}/hosts", bundle::ETC_DIR), true));
            rc.resolv_conf = Some(format!("{}/resolv.conf", bundle::ETC_DIR).into());
            rc.hosts = Some(format!("{}/hosts", bundle::ETC_DIR).into());
        }
        for (name, src) in self.system_volumes(p)? {
            let dest = format!("{}/{name}", bundle::SYSTEM_DIR);
            // The shared volumes are read-only in the runner's container too, so a process
            // that leaves the box's chroot still cannot write what every project runs.
            let shared = crate::pool::GLOBAL_SYSTEM_VOLUMES.contains(&name);
            binds.push(bind(&src, &dest, shared));
            rc.system_volumes.insert(name.to_string(), dest.into());
        }
        for (i, v) in spec.volumes.iter().enumerate() {
            let src = self.pool.volume_path(p, &v.volume)?;
            let dest = format!("{}/{i}", bundle::DATA_DIR);
            binds.push(bind(&src, &dest, v.read_only));
            rc.data_volumes.push(DataMount {
                source: dest.into(),
                target: v.target.clone(),
                read_only: v.read_only,
            });
        }
        runner::validate(&rc)?;
        let runner_json = serde_json::to_vec_pretty(&rc)
            .map_err(|e| Error::InvalidArgument(format!("runner config: {e}")))?;
        std::fs::write(own.join("runner.json"), runner_json).ctx("write", &own)?;
        let config = bundle::config_json(&BundleSpec {
            rootfs: self.rootfs.clone(),
            cgroups_path: format!("/{}/{}", self.cgroup_prefix, Self::id(p, n)),
            // The runner reads the box's variables from runner.json and gives them to PID 1
            // alone; its own process gets the fixed host environment, so a box's LD_PRELOAD or
            // PATH never steers the privileged runner.
            env: crate::sys::cmd::HOST_ENV
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            binds,
            memory_bytes: spec.memory_bytes,
            cpu_shares: spec.cpu_millis.map(bundle::cpu_shares),
        });
        let path = dir.join("config.json");
        std::fs::write(&path, config.to_string()).ctx("write", &path)
    }

    /// (name, host path) of the four system volumes of `project`.
    fn system_volumes(&self, project: &str) -> Result<Vec<(&'static str, PathBuf)>> {
        let global = self.pool.global_system_volumes();
        let per_project = self.pool.ensure_project(project)?;
        let mut out = Vec::new();
        for (name, path) in crate::pool::GLOBAL_SYSTEM_VOLUMES.iter().zip(global) {
            out.push((*name, path));
        }
        for (name, path) in crate::pool::PROJECT_SYSTEM_VOLUMES.iter().zip(per_project) {
            out.push((*name, path));
        }
        Ok(out)
    }

    /// Stops a box: SIGTERM to PID 1, up to the grace period, then SIGKILL to everything. /tmp
    /// and /run are gone afterwards; the root stays. Stopping a stopped box succeeds.
    pub fn stop(&self, project: &str, name: &str) -> Result<()> {
        let lock = self.lock_box(project, name);
        let _g = lock.lock().unwrap_or_else(|p| p.into_inner());
        let Some(mut rec) = self.read_record(project, name)? else {
            return Err(Error::NotFound(format!(
                "box {project}/{name} was never started"
            )));
        };
        let id = Self::id(project, name);
        if let Some(st) = self.runc.state(&id)?
            && st.status == "running"
        {
            crate::sys::kill(st.pid, libc::SIGTERM)?;
            let deadline = Instant::now() + Duration::from_secs(rec.spec.grace_seconds);
            while process_running(st.pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if process_running(st.pid) {
                tracing::info!(box = %id, "grace period over, killing");
                self.runc.kill_all(&id, "KILL")?;
            }
        }
        rec.running = false;
        self.write_record(&rec)?;
        self.cleanup_container(project, name)
    }

    /// Removes the container, the box's address and names, and its scratch (/tmp, /run).
    fn cleanup_container(&self, project: &str, name: &str) -> Result<()> {
        self.runc.delete(&Self::id(project, name))?;
        if let Some(net) = &self.net {
            net.detach(project, name)?;
        }
        let scratch = self.box_dir(project, name).join("forkr").join("scratch");
        if scratch.exists() {
            std::fs::remove_dir_all(&scratch).ctx("remove", &scratch)?;
        }
        Ok(())
    }

    /// Status of one box.
    pub fn status(&self, project: &str, name: &str) -> Result<BoxStatus> {
        let lock = self.lock_box(project, name);
        let _g = lock.lock().unwrap_or_else(|p| p.into_inner());
        self.status_unlocked(project, name)
    }

    fn status_unlocked(&self, project: &str, name: &str) -> Result<BoxStatus> {
        let mut st = BoxStatus {
            project: project.into(),
            name: name.into(),
            phase: Phase::Stopped,
            pid: None,
            ip: None,
        };
        if let Some(pid) = self.runc.running_init(&Self::id(project, name)) {
            st.phase = Phase::Running;
            st.pid = Some(pid);
            st.ip = self.net.as_ref().and_then(|n| n.ip_of(project, name));
            return Ok(st);
        }
        let rec = self.read_record(project, name)?;
        let state = self.runc.state(&Self::id(project, name))?;
        match (&rec, &state) {
            (_, Some(s)) if s.status == "running" && process_running(s.pid) => {
                st.phase = Phase::Running;
                st.pid = Some(s.pid);
                st.ip = self.net.as_ref().and_then(|n| n.ip_of(project, name));
            }
            (Some(r), _) if r.running => st.phase = Phase::Dead,
            (None, None) => {
                return Err(Error::NotFound(format!(
                    "box {project}/{name} is not known to the runtime"
                )));
            }
            _ => {}
        }
        Ok(st)
    }

    /// Host PID of the box's PID 1, for the exec engine.
    pub fn pid1(&self, project: &str, name: &str) -> Result<i32> {
        let st = self.status(project, name)?;
        st.pid.ok_or_else(|| {
            Error::FailedPrecondition(format!("box {project}/{name} is not running"))
        })
    }

    /// Every box the runtime knows.
    pub fn list(&self) -> Result<Vec<BoxStatus>> {
        let mut out = Vec::new();
        let boxes = self.cfg.state_dir.join("boxes");
        for p in std::fs::read_dir(&boxes).ctx("read", &boxes)?.flatten() {
            for b in std::fs::read_dir(p.path())
                .ctx("read", &p.path())?
                .flatten()
            {
                let (project, name) = (
                    p.file_name().to_string_lossy().into_owned(),
                    b.file_name().to_string_lossy().into_owned(),
                );
                if let Ok(st) = self.status(&project, &name) {
                    out.push(st);
                }
            }
        }
        Ok(out)
    }

    /// Forgets a stopped box (its root stays in the pool).
    pub fn remove(&self, project: &str, name: &str) -> Result<()> {
        self.stop(project, name)?;
        let dir = self.box_dir(project, name);
        std::fs::remove_dir_all(&dir).ctx("remove", &dir)
    }

    fn recover(&self) -> Result<Vec<BoxStatus>> {
        let report = self.list()?;
        for st in &report {
            if st.phase == Phase::Dead {
                tracing::warn!(project = %st.project, name = %st.name, "box died while the agent was away");
                self.cleanup_container(&st.project, &st.name)?;
            }
        }
        Ok(report)
    }
}

fn bind(src: &Path, dest: &str, read_only: bool) -> Bind {
    Bind {
        source: src.to_path_buf(),
        destination: dest.into(),
        read_only,
    }
}

fn validate_spec(spec: &BoxSpec) -> Result<()> {
    use forkr_crds::validation as v;
    let bad = |e: v::ValidationError| Error::InvalidArgument(e.to_string());
    v::validate_box_name(&spec.name).map_err(bad)?;
    v::validate_project_name(&spec.project).map_err(bad)?;
    for m in &spec.volumes {
        v::validate_volume_name(&m.volume).map_err(bad)?;
        v::validate_mount_path(&m.target).map_err(bad)?;
    }
    Ok(())
}

/// True while `pid` exists and is not a zombie.
pub fn process_running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
        Err(_) => false,
    }
}

/// Waits until the runner has become tini (its comm changes at exec) and tini runs its child,
/// or fails with the runner's own words when it exits first.
fn wait_for_init(pid: i32, log: &Path) -> Result<()> {
    // Generous: 200 boxes started at once on 2 busy cores take seconds each.
    let deadline = Instant::now() + Duration::from_secs(60);
    // Poll fast at first (a lone start is ready in tens of milliseconds), then back off, so
    // hundreds of starts waiting together do not starve the runners they wait for.
    let mut pause = Duration::from_micros(200);
    loop {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        // Ready once tini has started its child: by then it has its signal mask in place, so a
        // stop's SIGTERM is never lost to an init without handlers.
        if comm.trim() == "tini"
            && !std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
                .unwrap_or_default()
                .trim()
                .is_empty()
        {
            return Ok(());
        }
        if !process_running(pid) {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            return Err(Error::FailedPrecondition(format!(
                "box did not start: {}",
                text.trim()
            )));
        }
        if Instant::now() > deadline {
            return Err(Error::FailedPrecondition(
                "box did not become ready within 60 s".into(),
            ));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(5));
    }
}
