//! Local networking: one Linux bridge, a network namespace per box with its own IP on it, egress
//! NAT, and names.
//!
//! Plumbing is rtnetlink requests on the start path (`sys::netlink`), and iproute2/iptables
//! for the one-time bridge and NAT set-up, rather than the CNI plugins: the steps are a few fixed
//! requests, the IP allocation has to live in our own state anyway (it feeds the names), and it
//! keeps one dependency fewer on every node. Names are hosts files, one per project, that the
//! runtime rewrites in place whenever a box starts or stops, bound over each box's /etc/hosts;
//! see `hosts`.

pub mod hosts;
mod lease;

pub use lease::SubnetLease;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use crate::error::{Error, IoContext, Result};
use crate::sys::cmd::{HostBin, host_command};
use crate::sys::netlink;

/// The bridge and its /24.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// Bridge interface name (at most 15 bytes).
    pub bridge: String,
    /// The /24 network; the bridge takes .1, boxes .2 to .254.
    pub subnet: Ipv4Addr,
    /// Nameservers for everything that is not a box; default: the host's, minus loopback ones.
    pub upstream_dns: Vec<Ipv4Addr>,
    /// Names every box resolves besides boxes, e.g. the API's `forks.<domain>` on the gateway.
    pub extra_hosts: Vec<(Ipv4Addr, String)>,
}

impl NetConfig {
    /// `forkr0` on 10.88.0.0/24 with the host's nameservers.
    pub fn default_local() -> NetConfig {
        NetConfig {
            bridge: "forkr0".into(),
            subnet: Ipv4Addr::new(10, 88, 0, 0),
            upstream_dns: hosts::host_nameservers(),
            extra_hosts: Vec::new(),
        }
    }

    /// The bridge's own address: the host as boxes see it.
    pub fn gateway(&self) -> Ipv4Addr {
        let o = self.subnet.octets();
        Ipv4Addr::new(o[0], o[1], o[2], 1)
    }

    fn cidr(&self) -> String {
        format!("{}/24", self.subnet)
    }
}

/// The node's box network, with its state (IP leases, hosts files) under `dir`.
pub struct Network {
    cfg: NetConfig,
    dir: PathBuf,
    lock: Mutex<()>,
}

fn run(cmd: &mut Command, input: Option<&str>) -> Result<()> {
    use std::io::Write;
    let desc = format!("{cmd:?}");
    let mut child = cmd
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| Error::Io {
            context: format!("run {desc}"),
            source,
        })?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        let _ = stdin.write_all(text.as_bytes());
    }
    let out = child.wait_with_output().map_err(|source| Error::Io {
        context: format!("wait for {desc}"),
        source,
    })?;
    if !out.status.success() {
        return Err(Error::FailedPrecondition(format!(
            "{desc} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

fn iptables_ensure(table: &str, rule: &[&str]) -> Result<()> {
    let exists = host_command(HostBin::Iptables)?
        .args(["-w", "-t", table, "-C"])
        .args(rule)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if exists {
        return Ok(());
    }
    run(
        host_command(HostBin::Iptables)?
            .args(["-w", "-t", table, "-A"])
            .args(rule),
        None,
    )
}

fn iptables_remove(table: &str, rule: &[&str]) {
    if let Ok(mut cmd) = host_command(HostBin::Iptables) {
        let _ = cmd
            .args(["-w", "-t", table, "-D"])
            .args(rule)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Network {
    /// Creates the bridge, its address, forwarding and the NAT rules unless they exist.
    pub fn setup(cfg: NetConfig, dir: &Path) -> Result<Network> {
        if cfg.bridge.len() > 15 || cfg.bridge.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "bridge name {:?} must be 1-15 bytes",
                cfg.bridge
            )));
        }
        for d in ["ips", "hosts", "resolv"] {
            std::fs::create_dir_all(dir.join(d)).ctx("create", &dir.join(d))?;
        }
        let net = Network {
            cfg,
            dir: dir.to_path_buf(),
            lock: Mutex::new(()),
        };
        net.ensure_bridge()?;
        Ok(net)
    }

    fn ensure_bridge(&self) -> Result<()> {
        let br = &self.cfg.bridge;
        if !Path::new("/sys/class/net").join(br).exists() {
            let batch = format!(
                "link add name {br} type bridge\naddr add {}/24 dev {br}\nlink set {br} up\n",
                self.cfg.gateway()
            );
            run(
                host_command(HostBin::Ip)?.args(["-batch", "-"]),
                Some(&batch),
            )?;
        }
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
            .ctx("enable", Path::new("/proc/sys/net/ipv4/ip_forward"))?;
        let cidr = self.cfg.cidr();
        for rule in self.rules(&cidr) {
            iptables_ensure(rule.0, &rule.1)?;
        }
        Ok(())
    }

    fn rules<'a>(&'a self, cidr: &'a str) -> Vec<(&'static str, Vec<&'a str>)> {
        let br = self.cfg.bridge.as_str();
        vec![
            (
                "nat",
                vec!["POSTROUTING", "-s", cidr, "!", "-o", br, "-j", "MASQUERADE"],
            ),
            ("filter", vec!["FORWARD", "-i", br, "-j", "ACCEPT"]),
            ("filter", vec!["FORWARD", "-o", br, "-j", "ACCEPT"]),
        ]
    }

    /// Removes the bridge and the rules (tests; a node keeps its network).
    pub fn teardown(&self) {
        let cidr = self.cfg.cidr();
        for rule in self.rules(&cidr) {
            iptables_remove(rule.0, &rule.1);
        }
        if let Ok(mut ip) = host_command(HostBin::Ip) {
            let _ = run(ip.args(["link", "del", &self.cfg.bridge]), None);
        }
    }

    /// The bridge's address, which boxes use as their gateway.
    pub fn gateway(&self) -> Ipv4Addr {
        self.cfg.gateway()
    }

    /// The resolv.conf and hosts files of `project`, created when missing.
    pub fn project_files(&self, project: &str) -> Result<(PathBuf, PathBuf)> {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let resolv = self.dir.join("resolv").join(project);
        if !resolv.exists() {
            let text = hosts::resolv_conf(project, &self.cfg.upstream_dns);
            std::fs::write(&resolv, text).ctx("write", &resolv)?;
        }
        let hosts = self.dir.join("hosts").join(project);
        if !hosts.exists() {
            std::fs::write(&hosts, "").ctx("write", &hosts)?;
            self.rewrite_hosts()?;
        }
        Ok((resolv, hosts))
    }

    /// Gives the box whose init is `pid` an interface on the bridge with a fresh IP, and
    /// publishes its names. The interface dies with the box's network namespace.
    pub fn attach(&self, project: &str, name: &str, pid: i32) -> Result<Ipv4Addr> {
        let ip = self.lease(project, name)?;
        if let Err(e) = self.plumb(project, name, pid, ip) {
            self.release(project, name)?;
            return Err(e);
        }
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        self.rewrite_hosts()?;
        Ok(ip)
    }

    /// Four rtnetlink requests, no `ip` processes: the veth pair (box end straight into the
    /// box's namespace as eth0), the host end up on the bridge, then inside the box the
    /// address, lo and eth0 up, and the default route.
    fn plumb(&self, project: &str, name: &str, pid: i32, ip: Ipv4Addr) -> Result<()> {
        let host_if = veth_name(&self.cfg.bridge, project, name);
        let host = netlink::Netlink::open()?;
        host.add_veth(&host_if, "eth0", pid)?;
        let bridge = netlink::index_of(&self.cfg.bridge)?;
        host.link_up(netlink::index_of(&host_if)?, Some(bridge))?;
        let (inside, idx) = netlink::Netlink::open_in(pid, &["lo", "eth0"])?;
        inside.add_addr(idx[1], ip, 24)?;
        inside.link_up(idx[0], None)?;
        inside.link_up(idx[1], None)?;
        inside.add_default_route(idx[1], self.cfg.gateway())
    }

    /// Forgets the box's IP and its names (its interface went with its namespace).
    pub fn detach(&self, project: &str, name: &str) -> Result<()> {
        self.release(project, name)?;
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        self.rewrite_hosts()
    }

    /// The IP leased to a box, if any.
    pub fn ip_of(&self, project: &str, name: &str) -> Option<Ipv4Addr> {
        let owner = format!("{project}/{name}");
        self.leases()
            .ok()?
            .into_iter()
            .find(|(_, o)| *o == owner)
            .map(|(ip, _)| ip)
    }

    fn leases(&self) -> Result<Vec<(Ipv4Addr, String)>> {
        let dir = self.dir.join("ips");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).ctx("read", &dir)?.flatten() {
            let Ok(ip) = entry.file_name().to_string_lossy().parse::<Ipv4Addr>() else {
                continue;
            };
            if let Ok(owner) = std::fs::read_to_string(entry.path()) {
                out.push((ip, owner));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Takes the lowest free address by creating its lease file exclusively.
    fn lease(&self, project: &str, name: &str) -> Result<Ipv4Addr> {
        use std::io::Write;
        self.release(project, name)?;
        let o = self.cfg.subnet.octets();
        for host in 2..=254u8 {
            let ip = Ipv4Addr::new(o[0], o[1], o[2], host);
            let path = self.dir.join("ips").join(ip.to_string());
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    f.write_all(format!("{project}/{name}").as_bytes())
                        .ctx("write", &path)?;
                    return Ok(ip);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e).ctx("create", &path),
            }
        }
        Err(Error::FailedPrecondition(format!(
            "no free address left in {}",
            self.cfg.cidr()
        )))
    }

    fn release(&self, project: &str, name: &str) -> Result<()> {
        let owner = format!("{project}/{name}");
        for (ip, o) in self.leases()? {
            if o == owner {
                let p = self.dir.join("ips").join(ip.to_string());
                std::fs::remove_file(&p).ctx("remove", &p)?;
            }
        }
        Ok(())
    }

    /// Rewrites every project's hosts file from the leases, in place, so the bind mounts in
    /// running boxes see the change.
    fn rewrite_hosts(&self) -> Result<()> {
        let boxes: Vec<(Ipv4Addr, String, String)> = self
            .leases()?
            .into_iter()
            .filter_map(|(ip, owner)| {
                let (p, n) = owner.split_once('/')?;
                Some((ip, p.to_string(), n.to_string()))
            })
            .collect();
        let dir = self.dir.join("hosts");
        for entry in std::fs::read_dir(&dir).ctx("read", &dir)?.flatten() {
            let project = entry.file_name().to_string_lossy().into_owned();
            hosts::rewrite_in_place(
                &entry.path(),
                &hosts::hosts_file(&project, &boxes, &self.cfg.extra_hosts),
            )?;
        }
        Ok(())
    }
}

/// The host side of a box's veth pair: short (15-byte limit) and stable per bridge and box.
fn veth_name(bridge: &str, project: &str, name: &str) -> String {
    let h = Sha256::digest(format!("{bridge}/{project}/{name}").as_bytes());
    format!("fk{}", &hex::encode(h)[..11])
}
