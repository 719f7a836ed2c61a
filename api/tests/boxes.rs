//! Boxes through the API, on real runc and btrfs: lifecycle, the update allowlist, delete
//! rules, snapshots, diff, exec and logs, forks and saved bases.

#![allow(clippy::unwrap_used)]

use forkr_api::testkit::TestServer;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

struct Api {
    s: TestServer,
    http: reqwest::Client,
}

impl Api {
    async fn start() -> Api {
        Api {
            s: TestServer::start().await,
            http: reqwest::Client::new(),
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}/v1/projects/shop{path}", self.s.url))
            .bearer_auth(&self.s.admin);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn ok(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self.call(method, path, body).await;
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    }

    async fn sh(&self, name: &str, script: &str) -> Value {
        self.ok(
            Method::POST,
            &format!("/boxes/{name}/exec"),
            Some(json!({"command": [script], "sh": true})),
        )
        .await
    }
}

fn err(code: &str, message: &str) -> Value {
    json!({"error": code, "message": message})
}

#[tokio::test(flavor = "multi_thread")]
async fn lifecycle_update_and_delete_rules() {
    let a = Api::start().await;
    let (status, created) = a
        .call(
            Method::POST,
            "/boxes",
            Some(json!({"name": "web", "env": {"GREETING": "hi \"there\" $HOME"}, "port": 8080})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["status"], "running");
    assert_eq!(created["url"], "https://web.shop.forkr.test");
    assert_eq!(created["base"], "box-base");
    // The environment reaches every process, quotes and dollars intact.
    let out = a
        .sh(
            "web",
            "echo \"$GREETING|$BOX_NAME|$FORKR_PROJECT\"; hostname",
        )
        .await;
    assert_eq!(out["stdout"], "hi \"there\" $HOME|web|shop\nweb.shop\n");
    assert_eq!(out["exit_code"], 0);
    // Names, conflicts and the documented errors.
    assert_eq!(
        a.call(Method::POST, "/boxes", Some(json!({"name": "web"})))
            .await,
        (
            StatusCode::CONFLICT,
            err("already_exists", "box \"web\" already exists")
        )
    );
    assert_eq!(
        a.call(
            Method::POST,
            "/boxes",
            Some(json!({"name": "x", "env": {"BOX_NAME": "y"}}))
        )
        .await,
        (
            StatusCode::BAD_REQUEST,
            err("reserved_env", "environment variable is reserved")
        )
    );
    assert_eq!(
        a.call(
            Method::POST,
            "/boxes",
            Some(json!({"name": "x", "base": "box-base", "fork": "web"}))
        )
        .await,
        (
            StatusCode::BAD_REQUEST,
            err("base_with_fork", "--base cannot be used with --fork")
        )
    );
    assert_eq!(
        a.call(
            Method::POST,
            "/boxes",
            Some(json!({"name": "web2", "fork": "web2"}))
        )
        .await
        .1["error"],
        "fork_self"
    );
    let (status, body) = a
        .call(Method::POST, "/boxes", Some(json!({"name": "Web"})))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_name"))
    );
    let (status, body) = a
        .call(
            Method::POST,
            "/boxes",
            Some(json!({"name": "x", "data": ["nope=/data"]})),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("volume_not_found")),
        "{body}"
    );
    let (status, body) = a
        .call(
            Method::POST,
            "/boxes",
            Some(json!({"name": "x", "base": "no-such-base"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    // Update: the allowlist applies, the rest is dropped, nothing applicable is no_updates.
    let updated = a
        .ok(Method::PATCH, "/boxes/web", Some(json!({"env": {"PORT": "9090", "TERMINATION_GRACE_SECONDS": "5", "FOO": "bar"}, "tags": {"box.ui": "main"}})))
        .await;
    assert_eq!(
        (updated["port"].as_u64(), updated["tags"]["box.ui"].as_str()),
        (Some(9090), Some("main"))
    );
    assert_eq!(
        a.call(
            Method::PATCH,
            "/boxes/web",
            Some(json!({"env": {"FOO": "bar"}}))
        )
        .await,
        (
            StatusCode::BAD_REQUEST,
            err("no_updates", "no updates provided")
        )
    );
    assert_eq!(
        a.call(
            Method::PATCH,
            "/boxes/web",
            Some(json!({"env": {"PORT": "70000"}}))
        )
        .await
        .1["error"],
        "invalid_port"
    );
    // Delete: refused while running, forced otherwise.
    assert_eq!(
        a.call(Method::DELETE, "/boxes/web", None).await,
        (StatusCode::CONFLICT, err("fork_running", "box is running"))
    );
    let list = a.ok(Method::GET, "/boxes", None).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(
        a.call(Method::DELETE, "/boxes/web?force=true", None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        a.call(Method::DELETE, "/boxes/web?force=true", None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(a.ok(Method::GET, "/boxes", None).await, json!([]));
    assert!(
        a.s.runtime.list().unwrap().is_empty(),
        "no container left behind"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_wipes_tmp_keeps_the_root_and_resume_boots_again() {
    let a = Api::start().await;
    a.ok(Method::POST, "/boxes", Some(json!({"name": "app"})))
        .await;
    a.sh("app", "echo kept > /root/kept; echo gone > /tmp/gone")
        .await;
    let stopped = a.ok(Method::POST, "/boxes/app/stop", None).await;
    assert_eq!(stopped["status"], "stopped");
    assert_eq!(
        a.call(
            Method::POST,
            "/boxes/app/exec",
            Some(json!({"command": ["true"]}))
        )
        .await
        .1["error"],
        "box_not_running"
    );
    // A stopped box can be deleted without force.
    let resumed = a.ok(Method::POST, "/boxes/app/resume", None).await;
    assert_eq!(resumed["status"], "running");
    let out = a
        .sh(
            "app",
            "cat /root/kept; ls /tmp/gone 2>&1 || true; cat /proc/1/comm",
        )
        .await;
    assert_eq!(
        out["stdout"],
        "kept\nls: /tmp/gone: No such file or directory\ntini\n"
    );
    a.ok(Method::POST, "/boxes/app/stop", None).await;
    assert_eq!(
        a.call(Method::DELETE, "/boxes/app", None).await.0,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_background_and_logs() {
    let a = Api::start().await;
    a.ok(Method::POST, "/boxes", Some(json!({"name": "job"})))
        .await;
    let out = a
        .ok(Method::POST, "/boxes/job/exec", Some(json!({"command": ["sh", "-c", "cat; echo err >&2; exit 3"], "stdin": "piped in\n"})))
        .await;
    assert_eq!(
        out,
        json!({"exit_code": 3, "stdout": "piped in\n", "stderr": "err\n"})
    );
    let out = a
        .ok(
            Method::POST,
            "/boxes/job/exec",
            Some(json!({"command": ["pwd"], "wd": "/tmp", "env": ["A=1"]})),
        )
        .await;
    assert_eq!(out["stdout"], "/tmp\n");
    let (status, started) = a
        .call(
            Method::POST,
            "/boxes/job/exec",
            Some(json!({"command": ["echo from the background"], "sh": true, "bg": true})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let pid = started["pid"].as_u64().unwrap();
    let mut log = String::new();
    for _ in 0..100 {
        let resp = a
            .http
            .get(format!(
                "{}/v1/projects/shop/boxes/job/logs?pid={pid}",
                a.s.url
            ))
            .bearer_auth(&a.s.admin)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        log = resp.text().await.unwrap();
        if !log.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(log, "from the background\n");
    let (status, body) = a.call(Method::GET, "/boxes/job/logs", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("--pid is required"),
        "{body}"
    );
    assert_eq!(
        a.call(Method::GET, "/boxes/job/logs?pid=999999", None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (status, body) = a
        .call(
            Method::POST,
            "/boxes/job/exec",
            Some(json!({"command": []})),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("command_required"))
    );
    // --user runs as a project user with a synthesized passwd line.
    a.ok(Method::POST, "/users", Some(json!({"name": "alice"})))
        .await;
    let out = a
        .ok(
            Method::POST,
            "/boxes/job/exec",
            Some(json!({"command": ["id -u; id -g; whoami"], "sh": true, "user": "alice"})),
        )
        .await;
    assert_eq!(out["stdout"], "20000\n20000\nalice\n");
    assert_eq!(
        a.call(
            Method::POST,
            "/boxes/job/exec",
            Some(json!({"command": ["id"], "user": "bob"}))
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshots_diff_restore_fork_and_save() {
    let a = Api::start().await;
    a.ok(
        Method::POST,
        "/boxes",
        Some(
            json!({"name": "src", "env": {"ROLE": "source"}, "port": 3000, "tags": {"team": "a"}}),
        ),
    )
    .await;
    a.sh("src", "echo one > /root/file").await;
    let (status, body) = a.call(Method::GET, "/boxes/src/diff", None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("specify one"),
        "{body}"
    );
    let v0 = a
        .ok(Method::POST, "/boxes/src/snapshots", Some(json!({})))
        .await;
    assert_eq!(v0["name"], "v0");
    let named = a
        .ok(
            Method::POST,
            "/boxes/src/snapshots",
            Some(json!({"name": "Before_Upgrade.1", "description": "clean"})),
        )
        .await;
    assert_eq!(named["description"], "clean");
    let (status, body) = a
        .call(
            Method::POST,
            "/boxes/src/snapshots",
            Some(json!({"name": "v0"})),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("snapshot_exists"))
    );
    let (status, body) = a
        .call(
            Method::POST,
            "/boxes/src/snapshots",
            Some(json!({"name": ".."})),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_name"))
    );
    let list = a.ok(Method::GET, "/boxes/src/snapshots", None).await;
    let mut names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["Before_Upgrade.1", "v0"]);
    a.sh(
        "src",
        "echo two > /root/file; echo new > /root/added; rm -f /etc/hostname",
    )
    .await;
    let diff = a.ok(Method::GET, "/boxes/src/diff?against=v0", None).await;
    assert_eq!(
        diff["text"],
        "- /etc/hostname\n+ /root/added\n~ /root/file\n"
    );
    let file = a
        .ok(
            Method::GET,
            "/boxes/src/diff/file?path=/root/file&against=v0",
            None,
        )
        .await;
    assert_eq!(file["status"], "modified");
    assert!(
        file["diff"].as_str().unwrap().contains("-one\n+two\n"),
        "{file}"
    );
    assert_eq!(
        a.call(Method::GET, "/boxes/src/diff/file?path=root/file", None)
            .await
            .1["error"],
        "invalid_path"
    );
    // Restore rolls the root back and the box keeps running.
    let restored = a
        .ok(Method::POST, "/boxes/src/snapshots/v0/restore", None)
        .await;
    assert_eq!(restored["status"], "running");
    assert_eq!(
        a.sh("src", "cat /root/file; ls /root").await["stdout"],
        "one\nfile\n"
    );
    assert_eq!(
        a.call(Method::POST, "/boxes/src/snapshots/nope/restore", None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    // A fork inherits env, port and tags, and gets its own copy of the root.
    let fork = a
        .ok(
            Method::POST,
            "/boxes",
            Some(json!({"name": "copy", "fork": "src", "env": {"EXTRA": "1"}})),
        )
        .await;
    assert_eq!(
        (
            fork["port"].as_u64(),
            fork["tags"]["team"].as_str(),
            fork["fork_of"].as_str()
        ),
        (Some(3000), Some("a"), Some("shop:src"))
    );
    assert_eq!(
        a.sh("copy", "echo $ROLE $EXTRA; cat /root/file").await["stdout"],
        "source 1\none\n"
    );
    a.sh("copy", "echo changed > /root/file").await;
    assert_eq!(a.sh("src", "cat /root/file").await["stdout"], "one\n");
    // Save the fork's root as a base, and boot a box from it.
    let saved = a
        .ok(
            Method::POST,
            "/bases/mybase/save",
            Some(json!({"box": "copy"})),
        )
        .await;
    assert_eq!(saved, json!({"name": "mybase", "version": "mybase"}));
    a.ok(
        Method::POST,
        "/boxes",
        Some(json!({"name": "child", "base": "mybase"})),
    )
    .await;
    assert_eq!(a.sh("child", "cat /root/file").await["stdout"], "changed\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn console_survives_a_dropped_connection() {
    use forkr_api_proto::client::Client;
    use forkr_api_proto::frame::{ClientFrame, ServerFrame};
    use forkr_api_proto::wire::ExecStart;

    let a = Api::start().await;
    a.ok(Method::POST, "/boxes", Some(json!({"name": "tty"})))
        .await;
    let client = Client::new(&a.s.url, Some(a.s.admin.clone()), false).unwrap();
    let start = ExecStart {
        tty: true,
        rows: Some(30),
        cols: Some(100),
        ..Default::default()
    };
    let mut ws = client
        .exec_socket("shop", "tty", &start, true)
        .await
        .unwrap();
    let id = match ws.recv().await.unwrap().unwrap() {
        ServerFrame::Session(id) => id,
        other => panic!("expected the session first, got {other:?}"),
    };
    assert!(id.starts_with("pty-"), "{id}");
    ws.send(&ClientFrame::Stdin(
        b"stty size; echo BEFORE$((1+1))\n".to_vec(),
    ))
    .await
    .unwrap();
    let mut seen = String::new();
    let mut next_offset = 0;
    while !seen.contains("BEFORE2") {
        match ws.recv().await.unwrap().unwrap() {
            ServerFrame::Stdout { offset, data } => {
                assert_eq!(offset, next_offset, "output frames number every byte");
                next_offset += data.len() as u64;
                seen.push_str(&String::from_utf8_lossy(&data));
            }
            other => panic!("a PTY has one output stream, got {other:?}"),
        }
    }
    assert!(
        seen.contains("30 100"),
        "the PTY has the requested size: {seen}"
    );
    drop(ws); // the network drops

    // Reattach: the replay holds what was printed before, then the session goes on.
    let again = ExecStart {
        session: Some(id.clone()),
        ..Default::default()
    };
    let mut ws = client
        .exec_socket("shop", "tty", &again, true)
        .await
        .unwrap();
    let mut replay = String::new();
    let mut exit = None;
    let mut sent = false;
    while exit.is_none() {
        match ws.recv().await.unwrap().unwrap() {
            ServerFrame::Stdout { data, .. } => replay.push_str(&String::from_utf8_lossy(&data)),
            ServerFrame::Exit(code) => exit = Some(code),
            ServerFrame::Session(s) => assert_eq!(s, id),
            other => panic!("unexpected frame {other:?}"),
        }
        if !sent && replay.contains("BEFORE2") {
            ws.send(&ClientFrame::Stdin(b"exit 3\n".to_vec()))
                .await
                .unwrap();
            sent = true;
        }
    }
    assert!(replay.contains("BEFORE2"), "{replay}");
    assert_eq!(exit, Some(3));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_delete_answers_202_and_finishes_in_the_background() {
    let a = Api::start().await;
    a.ok(Method::POST, "/boxes", Some(json!({"name": "doomed"})))
        .await;
    // The next pool step fails as if the process had died there.
    a.s.pool.arm_fault(1);
    let (status, body) = a
        .call(Method::DELETE, "/boxes/doomed?force=true", None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    // Until the retry lands the box is listed as deleting (or already gone).
    let (status, shown) = a.call(Method::GET, "/boxes/doomed", None).await;
    assert!(
        status == StatusCode::NOT_FOUND || shown["status"] == "deleting",
        "{status} {shown}"
    );
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (status, _) = a.call(Method::GET, "/boxes/doomed", None).await;
        if status == StatusCode::NOT_FOUND {
            break;
        }
        assert!(
            std::time::Instant::now() < until,
            "the background delete never finished"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(a.s.runtime.list().unwrap().is_empty());
    assert!(
        !a.s.pool.path().join("roots/shop/doomed").exists(),
        "the root is gone"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_proxy_routes_by_host_and_says_why_it_cannot() {
    // The test server runs without a bridge: boxes have only their own loopback.
    let a = Api::start().await;
    a.ok(Method::POST, "/boxes", Some(json!({"name": "web"})))
        .await;
    let get = |host: &'static str, path: &'static str| {
        let req = a
            .http
            .get(format!("{}{path}", a.s.proxy_url))
            .header("host", host);
        async move {
            let r = req.send().await.unwrap();
            let status = r.status();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, body) = get("web.shop.forkr.test", "/").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("box_unreachable")),
        "{body}"
    );
    let (status, body) = get("nobody.forkr.test", "/").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("host_not_found"))
    );
    // The API's own name, and a bare address, reach the API.
    assert_eq!(get("forks.forkr.test", "/healthz").await.0, StatusCode::OK);
    assert_eq!(get("127.0.0.1:1234", "/healthz").await.0, StatusCode::OK);
}

/// A client frame the codec cannot read ends the stream with `invalid_frame`; the old
/// end-of-stdin byte (`[1]`, now a server kind) is one.
#[tokio::test(flavor = "multi_thread")]
async fn a_bad_exec_frame_is_refused() {
    use forkr_api_proto::frame::ServerFrame;
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};

    let a = Api::start().await;
    a.ok(Method::POST, "/boxes", Some(json!({"name": "frames"})))
        .await;
    for bad in [vec![0x01], vec![], vec![0x04, 0, 24], vec![0x7f, 1, 2]] {
        let url = format!(
            "{}/v1/projects/shop/boxes/frames/exec/ws",
            a.s.url.replacen("http", "ws", 1)
        );
        let mut req = url.into_client_request().unwrap();
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {}", a.s.admin).parse().unwrap(),
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        let start = json!({"command": ["cat"]}).to_string();
        ws.send(Message::text(start)).await.unwrap();
        ws.send(Message::binary(bad.clone())).await.unwrap();
        let mut frames = Vec::new();
        while let Some(Ok(msg)) = ws.next().await {
            if let Message::Binary(b) = msg {
                frames.push(ServerFrame::decode(&b).unwrap());
            }
        }
        assert!(
            matches!(frames.first(), Some(ServerFrame::Session(id)) if id.starts_with("exec-")),
            "{bad:?}: {frames:?}"
        );
        match frames.last() {
            Some(ServerFrame::Error(e)) => assert_eq!(e.error, "invalid_frame", "{bad:?}: {e:?}"),
            other => panic!("{bad:?}: expected an invalid_frame error, got {other:?}"),
        }
    }
}
