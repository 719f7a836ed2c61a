//! The harness of the API conformance suite: a target server and an HTTP client that speaks to
//! it. Tests use nothing but HTTP and WebSocket, so the same suite runs against any backend.
//!
//! By default the target is a real `forkr-api --local` process of this workspace: its own data
//! directory (a loopback btrfs pool is made there), its own bridge and /24, tokens minted with
//! `forkr-api token`, and the tiny base imported as `box-base` over the API. Dropping the target
//! deletes its boxes, stops the server, and removes the pool, the bridge and the data.
//!
//! Set `FORKR_E2E_URL`, `FORKR_E2E_ADMIN_TOKEN` and `FORKR_E2E_SHOP_TOKEN` (a token for project
//! `shop` only) to run the suite against another server, e.g. the kube backend; then
//! `FORKR_E2E_RESTART` is the shell command that kills and restarts it, `FORKR_E2E_DOMAIN` its
//! domain (default `forkr.test`), and `FORKR_E2E_CONCURRENCY` how many boxes the concurrency
//! test runs at once (default 50). Tests share an external server, so run them one at a time:
//! each starts by deleting what the suite's projects hold and imports `box-base` if missing.

#![allow(clippy::unwrap_used)]

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use forkr_api_proto::frame::{ClientFrame, ServerFrame};
use forkr_node_agent::runtime::net::SubnetLease;
use futures::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// The deployment domain of local targets.
pub const DOMAIN: &str = "forkr.test";

/// Which token a call carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tok {
    None,
    Admin,
    /// Scoped to project `shop`.
    Shop,
    /// Not a token the server knows.
    Bogus,
}

/// The projects the suite uses; an external target is emptied of them before each test.
pub const PROJECTS: [&str; 3] = ["shop", "default", "other"];

pub struct Target {
    pub url: String,
    /// The server's FORKR_DOMAIN.
    pub domain: String,
    /// The reverse proxy, when the target has one the suite can reach.
    pub proxy: Option<SocketAddr>,
    pub admin: String,
    pub shop: String,
    pub http: reqwest::Client,
    local: Option<LocalServer>,
}

/// A `forkr-api --local` process and everything it owns.
struct LocalServer {
    child: Option<Child>,
    args: Vec<String>,
    api: SocketAddr,
    data: tempfile::TempDir,
    bridge: String,
    subnet: SubnetLease,
    log: PathBuf,
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Options for a local target.
#[derive(Default, Clone)]
pub struct LocalOptions {
    /// PEM certificate and key: the proxy serves HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
}

impl Target {
    /// The target named by the environment, else a fresh local server.
    pub async fn start() -> Target {
        match std::env::var("FORKR_E2E_URL") {
            Ok(url) => {
                let t = Target::external(url);
                t.reset().await;
                t
            }
            Err(_) => Target::local(LocalOptions::default()).await,
        }
    }

    /// The external server of FORKR_E2E_URL, for tests of that backend alone: the suite's
    /// projects are not emptied, but `box-base` is imported if the server lacks it.
    pub async fn start_external_only() -> Target {
        let url = std::env::var("FORKR_E2E_URL")
            .expect("FORKR_E2E_URL names the server (scripts/k8s-e2e.sh starts one)");
        let t = Target::external(url);
        t.ensure_box_base().await;
        t
    }

    /// The agentless server scripts/k8s-e2e.sh starts next to the kube backend's:
    /// FORKR_E2E_FALLBACK_URL with the admin token FORKR_E2E_FALLBACK_TOKEN. It cannot import
    /// bases (that takes a node agent), so `box-base` is made sure of through the main server,
    /// which shares the node's pool.
    pub async fn fallback() -> Target {
        Target::start_external_only().await;
        let var = |k: &str| {
            std::env::var(k)
                .unwrap_or_else(|_| panic!("{k} names the agentless server (scripts/k8s-e2e.sh)"))
        };
        let mut t = Target::external(var("FORKR_E2E_FALLBACK_URL"));
        t.admin = var("FORKR_E2E_FALLBACK_TOKEN");
        t
    }

    /// The names of `project`'s boxes.
    pub async fn box_names(&self, project: &str) -> Vec<String> {
        let (_, list) = self
            .call(
                Method::GET,
                &format!("/v1/projects/{project}/boxes"),
                Tok::Admin,
                None,
            )
            .await;
        list.as_array()
            .into_iter()
            .flatten()
            .filter_map(|b| b["name"].as_str().map(str::to_owned))
            .collect()
    }

    /// Force-deletes `names` in `project`, then waits until every one is gone.
    pub async fn delete_boxes<S: AsRef<str>>(&self, project: &str, names: &[S]) {
        let p = format!("/v1/projects/{project}");
        for name in names {
            let name = name.as_ref();
            self.call(
                Method::DELETE,
                &format!("{p}/boxes/{name}?force=true"),
                Tok::Admin,
                None,
            )
            .await;
        }
        for name in names {
            let path = format!("{p}/boxes/{}", name.as_ref());
            self.eventually(
                Duration::from_secs(180),
                &format!("{path} to go"),
                || async {
                    self.call(Method::GET, &path, Tok::Admin, None).await.0 == StatusCode::NOT_FOUND
                },
            )
            .await;
        }
    }

    /// How many boxes the concurrency test runs at once.
    pub fn concurrency() -> usize {
        std::env::var("FORKR_E2E_CONCURRENCY")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(50)
    }

    /// Empties the suite's projects on an external server (boxes, volumes, users) and makes
    /// sure `box-base` is there.
    async fn reset(&self) {
        for project in PROJECTS {
            let p = format!("/v1/projects/{project}");
            self.delete_boxes(project, &self.box_names(project).await)
                .await;
            for kind in ["volumes", "users"] {
                let (_, list) = self
                    .call(Method::GET, &format!("{p}/{kind}"), Tok::Admin, None)
                    .await;
                for item in list.as_array().cloned().unwrap_or_default() {
                    let name = item["name"].as_str().unwrap_or_default();
                    let (s, v) = self
                        .call(
                            Method::DELETE,
                            &format!("{p}/{kind}/{name}"),
                            Tok::Admin,
                            None,
                        )
                        .await;
                    assert!(s.is_success(), "resetting {p}/{kind}/{name}: {s} {v}");
                }
            }
        }
        self.ensure_box_base().await;
    }

    /// Imports `box-base` unless the server has it. Every test that boots a box on an external
    /// server calls this: on a fresh machine nothing else puts the base there, and tests of one
    /// binary run in parallel, so a concurrent import by a sibling test is fine too.
    pub async fn ensure_box_base(&self) {
        if self.box_base().await.0 == StatusCode::NOT_FOUND {
            self.import_box_base().await;
        }
    }

    /// `GET` of `box-base` as the admin.
    async fn box_base(&self) -> (StatusCode, Value) {
        self.call(
            Method::GET,
            "/v1/projects/default/bases/box-base",
            Tok::Admin,
            None,
        )
        .await
    }

    fn external(url: String) -> Target {
        let var = |k: &str| {
            std::env::var(k).unwrap_or_else(|_| panic!("FORKR_E2E_URL is set, so {k} must be too"))
        };
        Target {
            url,
            domain: std::env::var("FORKR_E2E_DOMAIN").unwrap_or_else(|_| DOMAIN.to_owned()),
            proxy: None,
            admin: var("FORKR_E2E_ADMIN_TOKEN"),
            shop: var("FORKR_E2E_SHOP_TOKEN"),
            http: reqwest::Client::new(),
            local: None,
        }
    }

    /// A fresh `forkr-api --local` of this workspace.
    pub async fn local(opts: LocalOptions) -> Target {
        let api_bin = forkr_api::testkit::workspace_bin("forkr-api", "forkr-api");
        // forkr-api boots boxes with the forkr-runner next to it.
        forkr_api::testkit::workspace_bin("forkr-node-agent", "forkr-runner");
        let data = tempfile::Builder::new()
            .prefix("forkr-e2e-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let subnet = SubnetLease::take().expect("a test subnet");
        let o = subnet.subnet.octets();
        let bridge = format!("fke{}x{}", o[1], o[2]);
        let api = free_port();
        let proxy = free_port();
        let data_dir = data.path().to_str().unwrap().to_owned();
        let token = |scope: &[&str]| {
            let out = Command::new(&api_bin)
                .args(["token", "--data-dir", &data_dir])
                .args(scope)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "forkr-api token: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap().trim().to_owned()
        };
        let admin = token(&["--admin"]);
        let shop = token(&["--project", "shop"]);
        let mut args: Vec<String> = [
            "--local",
            "--data-dir",
            &data_dir,
            "--listen",
            &api.to_string(),
            "--proxy-listen",
            &proxy.to_string(),
            "--domain",
            DOMAIN,
            "--pool-size",
            &(4u64 << 30).to_string(),
            "--bridge",
            &bridge,
            "--subnet",
            &subnet.subnet.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if let Some((cert, key)) = &opts.tls {
            args.extend([
                "--tls-cert".into(),
                cert.display().to_string(),
                "--tls-key".into(),
                key.display().to_string(),
            ]);
        }
        let mut server = LocalServer {
            child: None,
            args,
            api,
            log: data.path().join("forkr-api.log"),
            data,
            bridge,
            subnet,
        };
        server.spawn(&api_bin).await;
        let target = Target {
            url: format!("http://{api}"),
            domain: DOMAIN.to_owned(),
            proxy: Some(proxy),
            admin,
            shop,
            http: reqwest::Client::new(),
            local: Some(server),
        };
        target.import_box_base().await;
        target
    }

    async fn import_box_base(&self) {
        let tarball = forkr_node_agent::minibase::tarball(Path::new("/var/cache/forkr/testbase"))
            .expect("the tiny base");
        let body = std::fs::read(tarball).unwrap();
        let resp = self
            .http
            .post(format!(
                "{}/v1/projects/default/bases/box-base/import",
                self.url
            ))
            .bearer_auth(&self.admin)
            .header("content-type", "application/gzip")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        if status == StatusCode::CREATED {
            return;
        }
        // A sibling test may have imported it at the same moment; what matters is that it is
        // there now.
        let (s, v) = self.box_base().await;
        assert_eq!(
            s,
            StatusCode::OK,
            "importing box-base answered {status}: {v}"
        );
    }

    /// One call; the answer's status and its JSON (or text, or null when empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        tok: Tok,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        req = match tok {
            Tok::None => req,
            Tok::Admin => req.bearer_auth(&self.admin),
            Tok::Shop => req.bearer_auth(&self.shop),
            Tok::Bogus => req.bearer_auth("fkr_not-a-token"),
        };
        if let Some(b) = body {
            req = req.json(&b);
        }
        answer(req.send().await.unwrap()).await
    }

    /// One call with any bearer token (one a test minted); the answer as [`Target::call`]'s.
    pub async fn call_as(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        answer(req.send().await.unwrap()).await
    }

    /// A POST of raw bytes (a base tarball) with a bearer token; the answer's status and JSON.
    pub async fn upload(&self, path: &str, token: &str, bytes: Vec<u8>) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(token)
            .header("content-type", "application/gzip")
            .body(bytes)
            .send()
            .await
            .unwrap();
        answer(resp).await
    }

    /// The tiny base's `.tar.gz`, as `base import` uploads it.
    pub fn tiny_base() -> Vec<u8> {
        let tarball = forkr_node_agent::minibase::tarball(Path::new("/var/cache/forkr/testbase"))
            .expect("the tiny base");
        std::fs::read(tarball).unwrap()
    }

    /// An admin call that must answer `want`; its JSON.
    pub async fn expect(
        &self,
        want: StatusCode,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let (status, v) = self.call(method.clone(), path, Tok::Admin, body).await;
        assert_eq!(status, want, "{method} {path}: {v}");
        v
    }

    pub async fn create_box(&self, project: &str, body: Value) -> Value {
        self.expect(
            StatusCode::CREATED,
            Method::POST,
            &format!("/v1/projects/{project}/boxes"),
            Some(body),
        )
        .await
    }

    /// Runs a shell script in a box; its exit code and stdout.
    pub async fn sh(&self, project: &str, name: &str, script: &str) -> (i64, String) {
        let v = self
            .expect(
                StatusCode::OK,
                Method::POST,
                &format!("/v1/projects/{project}/boxes/{name}/exec"),
                Some(json!({"command": [script], "sh": true})),
            )
            .await;
        (
            v["exit_code"].as_i64().unwrap(),
            v["stdout"].as_str().unwrap_or_default().to_owned(),
        )
    }

    /// Runs `command` over the WebSocket exec; its exit code and stdout.
    pub async fn ws_exec(&self, project: &str, name: &str, command: &[&str]) -> (i64, Vec<u8>) {
        let url = format!(
            "{}/v1/projects/{project}/boxes/{name}/exec/ws",
            self.url.replacen("http", "ws", 1)
        );
        let mut req =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)
                .unwrap();
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {}", self.admin).parse().unwrap(),
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        ws.send(Message::text(json!({"command": command}).to_string()))
            .await
            .unwrap();
        ws.send(Message::binary(ClientFrame::StdinEof.encode()))
            .await
            .unwrap();
        let mut out = Vec::new();
        let mut session = None;
        while let Some(msg) = ws.next().await {
            let frame = match msg.unwrap() {
                Message::Binary(b) => ServerFrame::decode(&b).unwrap(),
                Message::Text(t) => panic!("a text frame after the start: {t}"),
                _ => continue,
            };
            match frame {
                ServerFrame::Session(id) => session = Some(id),
                ServerFrame::Stdout { offset, data } => {
                    assert!(session.is_some(), "output before the session id");
                    assert_eq!(offset, out.len() as u64, "stdout offsets count every byte");
                    out.extend_from_slice(&data);
                }
                ServerFrame::Stderr { .. } => {}
                ServerFrame::Exit(code) => return (code.into(), out),
                ServerFrame::Error(e) => panic!("exec failed: {e:?}"),
            }
        }
        panic!("the exec socket closed without an exit code");
    }

    /// Waits until `f` holds, for at most `within`.
    pub async fn eventually<F, Fut>(&self, within: Duration, what: &str, mut f: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let until = Instant::now() + within;
        while Instant::now() < until {
            if f().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("timed out waiting for {what}");
    }

    /// kill -9 the server and start it again on the same data.
    pub async fn crash_and_restart(&mut self) {
        match &mut self.local {
            Some(server) => {
                server.kill9();
                let bin = forkr_api::testkit::workspace_bin("forkr-api", "forkr-api");
                server.spawn(&bin).await;
            }
            None => {
                let cmd = std::env::var("FORKR_E2E_RESTART")
                    .expect("an external target needs FORKR_E2E_RESTART to test restarts");
                let ok = Command::new("sh").args(["-c", &cmd]).status().unwrap();
                assert!(ok.success(), "FORKR_E2E_RESTART failed");
                wait_healthy(&self.http, &self.url, Duration::from_secs(120)).await;
            }
        }
    }

    /// What a local target leaves behind of `boxes` (project, name) once they are deleted:
    /// runc containers, processes in their cgroups, mounts and subvolumes. Empty when clean.
    pub fn leaks(&self, boxes: &[(String, String)]) -> Vec<String> {
        let Some(server) = &self.local else {
            return Vec::new();
        };
        let mut found = Vec::new();
        let runc_root = server.data.path().join("runtime/runc");
        if let Ok(out) = Command::new("runc")
            .arg("--root")
            .arg(&runc_root)
            .args(["list", "-q"])
            .output()
        {
            let ours: Vec<String> = boxes.iter().map(|(p, n)| format!("{p}.{n}")).collect();
            for id in String::from_utf8_lossy(&out.stdout).lines() {
                if ours.iter().any(|o| o == id) {
                    found.push(format!("runc container {id}"));
                }
            }
        }
        let ids: Vec<String> = boxes.iter().map(|(p, n)| format!("/{p}.{n}")).collect();
        if let Ok(procs) = std::fs::read_dir("/proc") {
            for p in procs.flatten() {
                let Ok(cg) = std::fs::read_to_string(p.path().join("cgroup")) else {
                    continue;
                };
                if let Some(id) = ids.iter().find(|id| {
                    cg.lines()
                        .any(|l| l.ends_with(id.as_str()) || l.contains(&format!("{id}/")))
                }) {
                    found.push(format!(
                        "process {} in cgroup {id}",
                        p.file_name().to_string_lossy()
                    ));
                }
            }
        }
        let pool = server.data.path().join("pool");
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        for line in mounts.lines() {
            let Some(mount_point) = line.split(' ').nth(4) else {
                continue;
            };
            if boxes
                .iter()
                .any(|(p, n)| mount_point.contains(&format!("/{p}/{n}")))
            {
                found.push(format!("mount {mount_point}"));
            }
        }
        for (p, n) in boxes {
            let root = pool.join("roots").join(p).join(n);
            if root.exists() {
                found.push(format!("root {}", root.display()));
            }
        }
        found
    }

    /// The server's log so far (local targets).
    pub fn server_log(&self) -> String {
        self.local
            .as_ref()
            .and_then(|s| std::fs::read_to_string(&s.log).ok())
            .unwrap_or_default()
    }

    /// The data directory of a local target.
    pub fn data_dir(&self) -> Option<&Path> {
        self.local.as_ref().map(|s| s.data.path())
    }
}

/// `prefix` and the time in milliseconds: a name of this run's own, for what outlives a test on
/// a server the suite reuses (backups, which the API never deletes).
pub fn unique(prefix: &str) -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    format!("{prefix}{ms}")
}

/// A response's status and its JSON (or text, or null when empty).
async fn answer(resp: reqwest::Response) -> (StatusCode, Value) {
    let status = resp.status();
    let text = resp.text().await.unwrap();
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, value)
}

async fn wait_healthy(http: &reqwest::Client, url: &str, within: Duration) {
    let until = Instant::now() + within;
    while Instant::now() < until {
        if let Ok(r) = http.get(format!("{url}/readyz")).send().await
            && r.status() == StatusCode::OK
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} did not become ready within {within:?}");
}

impl LocalServer {
    async fn spawn(&mut self, bin: &Path) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(bin)
            .args(&self.args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let http = reqwest::Client::new();
        wait_healthy(
            &http,
            &format!("http://{}", self.api),
            Duration::from_secs(60),
        )
        .await;
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        self.kill9();
        // Boxes outlive the server by design; take them down with runc, then the pool.
        let runc_root = self.data.path().join("runtime/runc");
        if let Ok(out) = Command::new("runc")
            .arg("--root")
            .arg(&runc_root)
            .args(["list", "-q"])
            .output()
        {
            for id in String::from_utf8_lossy(&out.stdout).lines() {
                let _ = Command::new("runc")
                    .arg("--root")
                    .arg(&runc_root)
                    .args(["delete", "--force", id])
                    .status();
            }
        }
        let data = self.data.path().to_string_lossy().into_owned();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut under: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&data))
            .collect();
        under.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in under {
            let _ = Command::new("umount").args(["-l", m]).status();
        }
        let cidr = format!("{}/24", self.subnet.subnet);
        let br = self.bridge.as_str();
        let rules: [&[&str]; 3] = [
            &[
                "-t",
                "nat",
                "-D",
                "POSTROUTING",
                "-s",
                &cidr,
                "!",
                "-o",
                br,
                "-j",
                "MASQUERADE",
            ],
            &["-D", "FORWARD", "-i", br, "-j", "ACCEPT"],
            &["-D", "FORWARD", "-o", br, "-j", "ACCEPT"],
        ];
        for r in rules {
            let _ = Command::new("iptables")
                .args(r)
                .stderr(Stdio::null())
                .status();
        }
        let _ = Command::new("ip").args(["link", "del", br]).status();
        // Loop devices of the pool image detach with the lazy unmount (autoclear).
    }
}

/// Sorted `(project, name)` list helper for leak checks.
pub fn named(project: &str, names: &[String]) -> Vec<(String, String)> {
    names
        .iter()
        .map(|n| (project.to_owned(), n.clone()))
        .collect()
}

/// Percentiles and milliseconds for the benchmarks' tables.
pub mod bench {
    use std::time::Duration;

    /// The `p` quantile (0 to 1) of `samples`, which it sorts.
    pub fn pct(samples: &mut [Duration], p: f64) -> Duration {
        samples.sort();
        let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
        samples[i]
    }

    pub fn ms(d: Duration) -> String {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    }
}
