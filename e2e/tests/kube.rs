//! forkr-api's Kubernetes backend over HTTP, on a real cluster with forkr-operator and a node
//! agent running (scripts/k8s-e2e.sh starts all of it and names the server in FORKR_E2E_URL).
//! What only a cluster has: the agent path and its Kubernetes exec fallback (a second server
//! without agents, FORKR_E2E_FALLBACK_URL), and a Box applied with kubectl reached by `4kr exec`.
//! The API conformance suite (conformance.rs) then runs through the same server.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::Duration;

use forkr_e2e::{Target, Tok};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// An HTTP call with a raw body; the status and the body bytes.
async fn raw(
    t: &Target,
    method: Method,
    path: &str,
    body: Option<Vec<u8>>,
) -> (StatusCode, Vec<u8>) {
    let mut req = t
        .http
        .request(method, format!("{}{path}", t.url))
        .bearer_auth(&t.admin);
    if let Some(b) = body {
        req = req.body(b);
    }
    let r = req.send().await.unwrap();
    (r.status(), r.bytes().await.unwrap().to_vec())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_agent_path_users_files_logs_ports_diff() {
    let t = Target::start_external_only().await;
    let p = "/v1/projects/kagent";
    t.delete_boxes("kagent", &["tools"]).await;
    for u in ["dev"] {
        t.call(Method::DELETE, &format!("{p}/users/{u}"), Tok::Admin, None)
            .await;
    }
    t.create_box("kagent", json!({"name": "tools"})).await;
    // --user runs as the project's user, which only the agent path can do.
    let dev = t
        .expect(
            StatusCode::CREATED,
            Method::POST,
            &format!("{p}/users"),
            Some(json!({"name": "dev"})),
        )
        .await;
    let v = t
        .expect(
            StatusCode::OK,
            Method::POST,
            &format!("{p}/boxes/tools/exec"),
            Some(json!({"command": ["id", "-u"], "user": "dev"})),
        )
        .await;
    assert_eq!(v["stdout"], format!("{}\n", dev["uid"]), "{v}");
    // cp in and out, mode kept.
    let (s, body) = raw(
        &t,
        Method::PUT,
        &format!("{p}/boxes/tools/files?path=/work/in.txt&mode=600"),
        Some(b"through the agent\n".to_vec()),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        t.sh(
            "kagent",
            "tools",
            "stat -c %a /work/in.txt; cat /work/in.txt"
        )
        .await
        .1,
        "600\nthrough the agent\n"
    );
    let (s, body) = raw(
        &t,
        Method::GET,
        &format!("{p}/boxes/tools/files?path=/work/in.txt"),
        None,
    )
    .await;
    assert_eq!(
        (s, body.as_slice()),
        (StatusCode::OK, &b"through the agent\n"[..])
    );
    // A background command, its log, and its port.
    let bg = t
        .expect(
            StatusCode::ACCEPTED,
            Method::POST,
            &format!("{p}/boxes/tools/exec"),
            Some(
                json!({"command": ["sh", "-c", "echo started; exec httpd -f -p 8081"], "bg": true}),
            ),
        )
        .await;
    let pid = bg["pid"].as_u64().unwrap();
    let port = t
        .expect(
            StatusCode::OK,
            Method::POST,
            &format!("{p}/boxes/tools/ports/8081/wait"),
            None,
        )
        .await;
    assert_eq!(port["port"], 8081, "{port}");
    let ports = t
        .expect(
            StatusCode::OK,
            Method::GET,
            &format!("{p}/boxes/tools/ports"),
            None,
        )
        .await;
    assert!(
        ports.as_array().unwrap().iter().any(|p| p["port"] == 8081),
        "{ports}"
    );
    let (s, log) = raw(
        &t,
        Method::GET,
        &format!("{p}/boxes/tools/logs?pid={pid}"),
        None,
    )
    .await;
    assert_eq!((s, log.as_slice()), (StatusCode::OK, &b"started\n"[..]));
    // A streamed exec over the WebSocket.
    let (code, out) = t
        .ws_exec("kagent", "tools", &["sh", "-c", "echo $BOX_NAME; exit 4"])
        .await;
    assert_eq!((code, out.as_slice()), (4, &b"tools\n"[..]));
    // Diff against a snapshot: the pool's answer, from the box's node.
    t.expect(
        StatusCode::CREATED,
        Method::POST,
        &format!("{p}/boxes/tools/snapshots"),
        Some(json!({"name": "before"})),
    )
    .await;
    t.sh("kagent", "tools", "echo new > /work/added").await;
    let d = t
        .expect(
            StatusCode::OK,
            Method::GET,
            &format!("{p}/boxes/tools/diff?against=before"),
            None,
        )
        .await;
    assert!(
        d["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["path"] == "/work/added" && c["change"] == "+"),
        "{d}"
    );
    t.delete_boxes("kagent", &["tools"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_agents_commands_fall_back_to_kubernetes_exec() {
    let t = Target::fallback().await;
    let p = "/v1/projects/kfall";
    t.delete_boxes("kfall", &["plain"]).await;
    t.create_box("kfall", json!({"name": "plain", "env": {"GREETING": "hi"}}))
        .await;
    let v = t
        .expect(
            StatusCode::OK,
            Method::POST,
            &format!("{p}/boxes/plain/exec"),
            Some(json!({"command": ["cat"], "stdin": "fed in\n"})),
        )
        .await;
    assert_eq!(
        (v["exit_code"].as_i64(), v["stdout"].as_str()),
        (Some(0), Some("fed in\n"))
    );
    // Stdin too large for the exec URL goes ahead as a file.
    let v = t
        .expect(
            StatusCode::OK,
            Method::POST,
            &format!("{p}/boxes/plain/exec"),
            Some(
                json!({"command": ["wc -c | tr -d ' '"], "sh": true, "stdin": "x".repeat(50_000)}),
            ),
        )
        .await;
    assert_eq!(v["stdout"], "50000\n", "{v}");
    let (code, out) = t
        .ws_exec(
            "kfall",
            "plain",
            &["sh", "-c", "echo $GREETING $BOX_NAME; exit 5"],
        )
        .await;
    assert_eq!((code, out.as_slice()), (5, &b"hi plain\n"[..]));
    let bg = t
        .expect(
            StatusCode::ACCEPTED,
            Method::POST,
            &format!("{p}/boxes/plain/exec"),
            Some(json!({"command": ["sh", "-c", "echo bg $$; exec httpd -f -p 8082"], "bg": true})),
        )
        .await;
    let pid = bg["pid"].as_u64().unwrap();
    t.expect(
        StatusCode::OK,
        Method::POST,
        &format!("{p}/boxes/plain/ports/8082/wait"),
        None,
    )
    .await;
    let (s, log) = raw(
        &t,
        Method::GET,
        &format!("{p}/boxes/plain/logs?pid={pid}"),
        None,
    )
    .await;
    assert_eq!(
        (s, String::from_utf8_lossy(&log).to_string()),
        (StatusCode::OK, format!("bg {pid}\n"))
    );
    // What needs the agent says so.
    t.expect(
        StatusCode::CREATED,
        Method::POST,
        &format!("{p}/users"),
        Some(json!({"name": "solo"})),
    )
    .await;
    let (s, v) = t
        .call(
            Method::POST,
            &format!("{p}/boxes/plain/exec"),
            Tok::Admin,
            Some(json!({"command": ["id"], "user": "solo"})),
        )
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("agent_unavailable")),
        "{v}"
    );
    t.call(Method::DELETE, &format!("{p}/users/solo"), Tok::Admin, None)
        .await;
    // cp in and out through exec: more than one chunk, every byte value, the mode kept.
    let data: Vec<u8> = (0..120_000u32).map(|i| (i % 251) as u8).collect();
    let (s, body) = raw(
        &t,
        Method::PUT,
        &format!("{p}/boxes/plain/files?path=/work/sub/blob&mode=640"),
        Some(data.clone()),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        t.sh(
            "kfall",
            "plain",
            "stat -c '%a %s' /work/sub/blob; ls /work/sub"
        )
        .await
        .1,
        "640 120000\nblob\n"
    );
    let (s, back) = raw(
        &t,
        Method::GET,
        &format!("{p}/boxes/plain/files?path=/work/sub/blob"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(back == data, "the file came back changed");
    let (s, _) = raw(
        &t,
        Method::GET,
        &format!("{p}/boxes/plain/files?path=/nope"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = raw(
        &t,
        Method::GET,
        &format!("{p}/boxes/plain/files?path=/work"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    t.delete_boxes("kfall", &["plain"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_box_applied_with_kubectl_is_reached_by_4kr_exec() {
    let t = Target::start_external_only().await;
    t.delete_boxes("kapply", &["hello"]).await;
    let manifest = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: kapply
---
apiVersion: forkr.dev/v1alpha1
kind: Box
metadata:
  name: hello
  namespace: kapply
spec:
  base: box-base
  env:
    GREETING: from-kubectl
"#;
    let mut kubectl = Command::new("kubectl")
        .args(["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("kubectl is on PATH");
    use std::io::Write;
    kubectl
        .stdin
        .take()
        .unwrap()
        .write_all(manifest.as_bytes())
        .unwrap();
    assert!(kubectl.wait().unwrap().success(), "kubectl apply failed");
    t.eventually(
        Duration::from_secs(180),
        "the applied box to run",
        || async {
            let (_, v) = t
                .call(
                    Method::GET,
                    "/v1/projects/kapply/boxes/hello",
                    Tok::Admin,
                    None,
                )
                .await;
            v["status"] == "running"
        },
    )
    .await;
    let cli = forkr_api::testkit::workspace_bin("forkr-cli", "4kr");
    let out = Command::new(cli)
        .args([
            "--url",
            &t.url,
            "exec",
            "-p",
            "kapply",
            "hello",
            "--",
            "sh",
            "-c",
            "echo $GREETING $BOX_NAME",
        ])
        .env("FORKR_TOKEN", &t.admin)
        .env("HOME", std::env::temp_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "4kr exec: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "from-kubectl hello\n");
    let shown: Value = t
        .expect(
            StatusCode::OK,
            Method::GET,
            "/v1/projects/kapply/boxes/hello",
            None,
        )
        .await;
    assert_eq!(shown["url"], format!("https://hello.kapply.{}", t.domain));
    t.delete_boxes("kapply", &["hello"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn boxes_through_the_kube_backend() {
    assert!(
        std::env::var("FORKR_E2E_URL").is_ok(),
        "run through scripts/k8s-e2e.sh, which starts forkr-api with the kube backend"
    );
    let t = Target::start_external_only().await;
    let p = "/v1/projects/kapi";
    // Leftovers of an earlier run go first.
    t.delete_boxes("kapi", &["web", "api"]).await;

    let created = t
        .create_box(
            "kapi",
            json!({"name": "web", "env": {"GREETING": "hi"}, "memory": "128Mi"}),
        )
        .await;
    assert_eq!(created["status"], "running", "{created}");
    assert_eq!(created["url"], "https://web.kapi.e2e.forkr.test");
    let (code, out) = t
        .sh("kapi", "web", "echo $GREETING $BOX_NAME; hostname")
        .await;
    assert_eq!((code, out.as_str()), (0, "hi web\nweb.kapi\n"));
    let (code, _) = t.sh("kapi", "web", "exit 3").await;
    assert_eq!(code, 3);
    let (s, v) = t
        .call(
            Method::POST,
            &format!("{p}/boxes"),
            Tok::Admin,
            Some(json!({"name": "web"})),
        )
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::CONFLICT, Some("already_exists"))
    );
    let list = t
        .expect(StatusCode::OK, Method::GET, &format!("{p}/boxes"), None)
        .await;
    assert_eq!(list.as_array().unwrap().len(), 1);

    // Update: the allowlist; nothing from it is 400.
    let up = t
        .expect(
            StatusCode::OK,
            Method::PATCH,
            &format!("{p}/boxes/web"),
            Some(json!({"env": {"PORT": "3000", "X": "y"}, "tags": {"team": "a"}})),
        )
        .await;
    assert_eq!(
        (up["port"].as_u64(), up["tags"]["team"].as_str()),
        (Some(3000), Some("a"))
    );
    let (s, v) = t
        .call(
            Method::PATCH,
            &format!("{p}/boxes/web"),
            Tok::Admin,
            Some(json!({"env": {"X": "y"}})),
        )
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("no_updates"))
    );

    // Snapshot (named v0 by the API), change, restore.
    t.sh("kapi", "web", "echo one > /root/marker").await;
    let snap = t
        .expect(
            StatusCode::CREATED,
            Method::POST,
            &format!("{p}/boxes/web/snapshots"),
            Some(json!({"description": "first"})),
        )
        .await;
    assert_eq!(snap["name"], "v0", "{snap}");
    let (s, _) = t
        .call(
            Method::POST,
            &format!("{p}/boxes/web/snapshots"),
            Tok::Admin,
            Some(json!({"name": "v0"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    t.sh("kapi", "web", "echo two > /root/marker").await;
    t.expect(
        StatusCode::OK,
        Method::POST,
        &format!("{p}/boxes/web/snapshots/v0/restore"),
        None,
    )
    .await;
    assert_eq!(t.sh("kapi", "web", "cat /root/marker").await.1, "one\n");
    let snaps = t
        .expect(
            StatusCode::OK,
            Method::GET,
            &format!("{p}/boxes/web/snapshots"),
            None,
        )
        .await;
    assert_eq!(snaps[0]["description"], "first");

    // Publish: 409 for a host in use, 403 for one not owned.
    let v = t
        .expect(
            StatusCode::OK,
            Method::POST,
            &format!("{p}/boxes/web/publish"),
            Some(json!({"subdomain": "app"})),
        )
        .await;
    assert_eq!(v, json!({"host": "app.e2e.forkr.test"}));
    t.create_box("kapi", json!({"name": "api"})).await;
    let (s, _) = t
        .call(
            Method::POST,
            &format!("{p}/boxes/api/publish"),
            Tok::Admin,
            Some(json!({"subdomain": "app"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _) = t
        .call(
            Method::POST,
            &format!("{p}/boxes/api/unpublish"),
            Tok::Admin,
            Some(json!({"subdomain": "app"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let shown = t
        .expect(StatusCode::OK, Method::GET, &format!("{p}/boxes/web"), None)
        .await;
    assert_eq!(shown["published"], json!(["app.e2e.forkr.test"]));

    // Stop and resume through replicas; the root survives.
    let stopped = t
        .expect(
            StatusCode::OK,
            Method::POST,
            &format!("{p}/boxes/web/stop"),
            None,
        )
        .await;
    assert_eq!(stopped["status"], "stopped");
    let resumed = t
        .expect(
            StatusCode::OK,
            Method::POST,
            &format!("{p}/boxes/web/resume"),
            None,
        )
        .await;
    assert_eq!(resumed["status"], "running");
    assert_eq!(t.sh("kapi", "web", "cat /root/marker").await.1, "one\n");

    // Delete: 409 while running, then the finalizer takes it all.
    let (s, v) = t
        .call(Method::DELETE, &format!("{p}/boxes/web"), Tok::Admin, None)
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::CONFLICT, Some("fork_running"))
    );
    for name in ["web", "api"] {
        let (s, _) = t
            .call(
                Method::DELETE,
                &format!("{p}/boxes/{name}?force=true"),
                Tok::Admin,
                None,
            )
            .await;
        assert!(
            s == StatusCode::NO_CONTENT || s == StatusCode::ACCEPTED,
            "{s}"
        );
    }
    t.eventually(Duration::from_secs(120), "the delete to finish", || async {
        t.call(Method::GET, &format!("{p}/boxes/web"), Tok::Admin, None)
            .await
            .0
            == StatusCode::NOT_FOUND
    })
    .await;
}
