//! The API conformance suite: every documented status and error, the authorization matrix, bad
//! input, publish, volumes, restarts and concurrency, spoken over HTTP and WebSocket only, so
//! that every backend can be held to it (see the harness in `forkr_e2e`).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use forkr_e2e::{Target, Tok, named};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn err(code: &str, message: &str) -> Value {
    json!({"error": code, "message": message})
}

/// Every route of the OpenAPI document with its parameters filled in for project `project`.
async fn documented_routes(t: &Target, project: &str) -> Vec<(Method, String)> {
    let doc: Value = t
        .http
        .get(format!("{}/openapi.json", t.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let m: Method = method.to_uppercase().parse().unwrap();
            let concrete = path
                .replace("{project}", project)
                .replace("{name}", "thing")
                .replace("{snapshot}", "v0")
                .replace("{port}", "80");
            out.push((m, concrete));
        }
    }
    assert!(out.len() > 30, "the document lists the routes: {out:?}");
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn the_authorization_matrix() {
    let t = Target::start().await;
    for path in ["/healthz", "/readyz", "/openapi.json"] {
        let (status, _) = t.call(Method::GET, path, Tok::None, None).await;
        assert_eq!(status, StatusCode::OK, "{path} is open");
    }
    let unauthorized = err("unauthorized", "missing or invalid bearer token");
    for (method, path) in documented_routes(&t, "other").await {
        if !path.starts_with("/v1/") {
            continue;
        }
        for tok in [Tok::None, Tok::Bogus] {
            let got = t.call(method.clone(), &path, tok, None).await;
            assert_eq!(
                got,
                (StatusCode::UNAUTHORIZED, unauthorized.clone()),
                "{method} {path} with {tok:?}"
            );
        }
        // A token for project shop reaches nothing of project other.
        let (status, body) = t.call(method.clone(), &path, Tok::Shop, None).await;
        if path.starts_with("/v1/projects/") {
            assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {body}");
            assert_eq!(body["error"], "forbidden", "{method} {path}");
        }
    }
    // Within its project the scoped token works, and admin works everywhere.
    let (status, _) = t
        .call(Method::GET, "/v1/projects/shop/boxes", Tok::Shop, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = t
        .call(Method::GET, "/v1/projects/other/boxes", Tok::Admin, None)
        .await;
    assert_eq!(status, StatusCode::OK);
}

/// Announces a 2 MiB JSON body and sends none of it: the server must refuse it from the
/// headers alone. (Sending it all would race the server closing the connection after its 413.)
async fn huge_request_head(t: &Target, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = t.url.trim_start_matches("http://");
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        t.admin,
        2 << 20
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), sock.read(&mut buf))
        .await
        .expect("the server answers before the body arrives")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_4xx_and_changes_nothing() {
    let t = Target::start().await;
    t.create_box("shop", json!({"name": "keep"})).await;
    let before_boxes = t
        .expect(StatusCode::OK, Method::GET, "/v1/projects/shop/boxes", None)
        .await;
    let send_raw = |path: &str, body: Vec<u8>| {
        let req = t
            .http
            .post(format!("{}{path}", t.url))
            .bearer_auth(&t.admin)
            .header("content-type", "application/json")
            .body(body);
        async move {
            let r = req.send().await.unwrap();
            let s = r.status();
            let v: Value = r.json().await.unwrap_or(Value::Null);
            (s, v)
        }
    };
    for path in [
        "/v1/projects/shop/boxes",
        "/v1/projects/shop/volumes",
        "/v1/projects/shop/users",
        "/v1/projects/shop/boxes/keep/publish",
        "/v1/projects/shop/boxes/keep/snapshots",
        "/v1/projects/shop/boxes/keep/exec",
    ] {
        let (s, v) = send_raw(path, b"{not json".to_vec()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "bad JSON to {path}: {v}");
        assert!(v["error"].is_string() && v["message"].is_string(), "{v}");
        let (s, v) = send_raw(path, br#"{"name": "x", "surprise": 1}"#.to_vec()).await;
        assert!(
            s == StatusCode::BAD_REQUEST || s == StatusCode::UNPROCESSABLE_ENTITY,
            "unknown field to {path}: {s} {v}"
        );
        let head = huge_request_head(&t, path).await;
        assert!(
            head.starts_with("HTTP/1.1 413"),
            "huge body to {path}: {head}"
        );
    }
    for (path, body) in [
        ("/v1/projects/shop/boxes", json!({"name": "Bad_Name"})),
        ("/v1/projects/shop/boxes", json!({"name": "-x"})),
        ("/v1/projects/shop/boxes", json!({"name": "a".repeat(64)})),
        ("/v1/projects/shop/volumes", json!({"name": "no/slash"})),
        ("/v1/projects/shop/users", json!({"name": "Root!"})),
        ("/v1/projects/Bad/boxes", json!({"name": "fine"})),
    ] {
        let (s, v) = t.call(Method::POST, path, Tok::Admin, Some(body)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{path}: {v}");
        assert_eq!(v["error"], "invalid_name", "{path}: {v}");
    }
    let (s, v) = t
        .call(
            Method::GET,
            "/v1/projects/shop/boxes/Not..Valid",
            Tok::Admin,
            None,
        )
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_name"))
    );
    let after_boxes = t
        .expect(StatusCode::OK, Method::GET, "/v1/projects/shop/boxes", None)
        .await;
    assert_eq!(
        before_boxes.as_array().unwrap().len(),
        after_boxes.as_array().unwrap().len()
    );
    assert_eq!(
        t.expect(
            StatusCode::OK,
            Method::GET,
            "/v1/projects/shop/volumes",
            None
        )
        .await,
        json!([])
    );
    assert_eq!(
        t.expect(StatusCode::OK, Method::GET, "/v1/projects/shop/users", None)
            .await,
        json!([])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn box_statuses_and_documented_errors() {
    let t = Target::start().await;
    let p = "/v1/projects/shop";
    let created = t
        .create_box(
            "shop",
            json!({"name": "web", "port": 8080, "env": {"A": "1"}}),
        )
        .await;
    assert_eq!(created["status"], "running");
    assert_eq!(created["url"], format!("https://web.shop.{}", t.domain));
    let d = t.create_box("default", json!({"name": "web"})).await;
    assert_eq!(d["url"], format!("https://web.{}", t.domain));
    let call = |m: Method, path: String, body: Option<Value>| {
        let t = &t;
        async move { t.call(m, &path, Tok::Admin, body).await }
    };
    assert_eq!(
        call(
            Method::POST,
            format!("{p}/boxes"),
            Some(json!({"name": "web"}))
        )
        .await,
        (
            StatusCode::CONFLICT,
            err("already_exists", "box \"web\" already exists")
        )
    );
    assert_eq!(
        call(
            Method::POST,
            format!("{p}/boxes"),
            Some(json!({"name": "x", "env": {"FORKR_PROJECT": "y"}}))
        )
        .await,
        (
            StatusCode::BAD_REQUEST,
            err("reserved_env", "environment variable is reserved")
        )
    );
    assert_eq!(
        call(
            Method::POST,
            format!("{p}/boxes"),
            Some(json!({"name": "x", "base": "box-base", "fork": "web"}))
        )
        .await,
        (
            StatusCode::BAD_REQUEST,
            err("base_with_fork", "--base cannot be used with --fork")
        )
    );
    let (s, v) = call(
        Method::POST,
        format!("{p}/boxes"),
        Some(json!({"name": "twin", "fork": "twin"})),
    )
    .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("fork_self")),
        "{v}"
    );
    // A volume of another project cannot be mounted; mount paths must be unique.
    t.expect(
        StatusCode::CREATED,
        Method::POST,
        "/v1/projects/other/volumes",
        Some(json!({"name": "theirs"})),
    )
    .await;
    let (s, v) = call(
        Method::POST,
        format!("{p}/boxes"),
        Some(json!({"name": "x", "data": ["theirs=/data"]})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    t.expect(
        StatusCode::CREATED,
        Method::POST,
        &format!("{p}/volumes"),
        Some(json!({"name": "mine"})),
    )
    .await;
    let (s, v) = call(
        Method::POST,
        format!("{p}/boxes"),
        Some(json!({"name": "x", "data": ["mine=/data", "mine=/data"]})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    // Update: the allowlist, and nothing from it.
    let up = t
        .expect(
            StatusCode::OK,
            Method::PATCH,
            &format!("{p}/boxes/web"),
            Some(json!({"env": {"PORT": "3000", "CPU": "500m", "MEMORY": "256Mi", "TERMINATION_GRACE_PERIOD_SECONDS": "7", "IGNORED": "x"}, "tags": {"team": "a"}})),
        )
        .await;
    assert_eq!(up["port"], 3000);
    assert_eq!(up["tags"]["team"], "a");
    assert_eq!(
        call(
            Method::PATCH,
            format!("{p}/boxes/web"),
            Some(json!({"env": {"IGNORED": "x"}}))
        )
        .await,
        (
            StatusCode::BAD_REQUEST,
            err("no_updates", "no updates provided")
        )
    );
    for bad in [
        json!({"PORT": "0"}),
        json!({"PORT": "65536"}),
        json!({"TERMINATION_GRACE_SECONDS": "86401"}),
    ] {
        let (s, v) = call(
            Method::PATCH,
            format!("{p}/boxes/web"),
            Some(json!({"env": bad})),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
    }
    // Snapshots: 201, a taken name 409, restore, and missing ones 404.
    t.sh("shop", "web", "echo one > /work/f").await;
    let snap = t
        .expect(
            StatusCode::CREATED,
            Method::POST,
            &format!("{p}/boxes/web/snapshots"),
            Some(json!({"name": "first", "description": "before"})),
        )
        .await;
    assert_eq!(snap["name"], "first");
    let (s, v) = call(
        Method::POST,
        format!("{p}/boxes/web/snapshots"),
        Some(json!({"name": "first"})),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    // The exit code matters: a write killed half-way leaves a short file, and the 1 MB check
    // below would then pass for the wrong reason (this hid the update-restarts-the-pod race).
    let (code, _) = t
        .sh(
            "shop",
            "web",
            "echo two > /work/f; head -c 1100000 /dev/zero | tr '\\0' a > /work/big",
        )
        .await;
    assert_eq!(code, 0, "writing /work/big");
    let status = t
        .expect(
            StatusCode::OK,
            Method::GET,
            &format!("{p}/boxes/web/diff?against=first"),
            None,
        )
        .await;
    assert!(
        status["text"].as_str().unwrap().contains("/work/big"),
        "{status}"
    );
    let (s, v) = call(
        Method::GET,
        format!("{p}/boxes/web/diff/file?path=/work/big&against=first"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "diff of a file over 1 MB: {v}");
    assert_eq!(
        v["message"],
        "/work/big is 1100000 bytes; file diffs are limited to 1 MB"
    );
    t.expect(
        StatusCode::OK,
        Method::POST,
        &format!("{p}/boxes/web/snapshots/first/restore"),
        None,
    )
    .await;
    assert_eq!(t.sh("shop", "web", "cat /work/f").await.1, "one\n");
    let (s, _) = call(
        Method::POST,
        format!("{p}/boxes/web/snapshots/nope/restore"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    for path in [
        format!("{p}/boxes/nope"),
        format!("{p}/boxes/nope/snapshots"),
        format!("{p}/volumes/nope"),
        "/v1/projects/shop/bases/nope".to_string(),
    ] {
        let (s, v) = call(Method::GET, path.clone(), None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {v}");
        assert_eq!(v["error"], "not_found", "{path}: {v}");
    }
    // Stop and resume; delete: 409 while running, forced 204, then 404.
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
    assert_eq!(
        call(Method::DELETE, format!("{p}/boxes/web"), None).await,
        (StatusCode::CONFLICT, err("fork_running", "box is running"))
    );
    let (s, _) = call(Method::DELETE, format!("{p}/boxes/web?force=true"), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = call(Method::DELETE, format!("{p}/boxes/web?force=true"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let leaks = t.leaks(&named("shop", &["web".into()]));
    assert!(leaks.is_empty(), "left behind: {leaks:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn publish_routes_hosts_through_the_proxy() {
    let t = Target::start().await;
    let Some(proxy) = t.proxy else {
        panic!("this target has no proxy the suite can reach");
    };
    let p = "/v1/projects/shop";
    t.create_box("shop", json!({"name": "web", "port": 8000}))
        .await;
    t.create_box("shop", json!({"name": "api"})).await;
    // A web server and a byte-echoing "WebSocket" server (any upgrade passes through as bytes).
    t.expect(
        StatusCode::ACCEPTED,
        Method::POST,
        &format!("{p}/boxes/web/exec"),
        Some(json!({"command": ["mkdir -p /srv && echo hello from web > /srv/index.html && exec httpd -f -p 8000 -h /srv"], "sh": true, "bg": true})),
    )
    .await;
    t.sh("shop", "web", "printf '#!/bin/sh\\nprintf \"HTTP/1.1 101 Switching Protocols\\\\r\\\\nUpgrade: websocket\\\\r\\\\nConnection: Upgrade\\\\r\\\\n\\\\r\\\\n\"\\nwhile read -r line; do case \"$line\" in \"\"|$(printf \"\\\\r\")) break;; esac; done\\nexec cat\\n' > /srv/ws.sh && chmod +x /srv/ws.sh").await;
    t.expect(
        StatusCode::ACCEPTED,
        Method::POST,
        &format!("{p}/boxes/web/exec"),
        Some(json!({"command": ["exec nc -ll -p 8001 -e /srv/ws.sh"], "sh": true, "bg": true})),
    )
    .await;
    t.expect(
        StatusCode::OK,
        Method::POST,
        &format!("{p}/boxes/web/ports/8000/wait?timeout=10"),
        None,
    )
    .await;
    t.expect(
        StatusCode::OK,
        Method::POST,
        &format!("{p}/boxes/web/ports/8001/wait?timeout=10"),
        None,
    )
    .await;

    let via_proxy = |host: &str, path: &str| {
        let req = t
            .http
            .get(format!("http://{proxy}{path}"))
            .header("host", host);
        async move {
            let r = req.send().await.unwrap();
            (r.status(), r.text().await.unwrap())
        }
    };
    // The box's own URL host reaches its port.
    assert_eq!(
        via_proxy("web.shop.forkr.test", "/").await,
        (StatusCode::OK, "hello from web\n".into())
    );
    // Publish: the host resolves as documented; a taken host is 409 unless forced.
    let v = t
        .expect(
            StatusCode::OK,
            Method::POST,
            &format!("{p}/boxes/web/publish"),
            Some(json!({"subdomain": "app"})),
        )
        .await;
    assert_eq!(v, json!({"host": "app.forkr.test"}));
    let v = t
        .expect(
            StatusCode::OK,
            Method::POST,
            &format!("{p}/boxes/web/publish"),
            Some(json!({"subdomain": "@", "domain": "example.org"})),
        )
        .await;
    assert_eq!(v, json!({"host": "example.org"}));
    let v = t
        .expect(
            StatusCode::OK,
            Method::POST,
            &format!("{p}/boxes/web/publish"),
            Some(json!({"host": "WWW.Example.org"})),
        )
        .await;
    assert_eq!(v, json!({"host": "www.example.org"}));
    let (s, v) = t
        .call(
            Method::POST,
            &format!("{p}/boxes/web/publish"),
            Tok::Admin,
            Some(json!({"host": "a.b", "domain": "c"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = t
        .call(
            Method::POST,
            &format!("{p}/boxes/web/publish"),
            Tok::Admin,
            Some(json!({})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(
        via_proxy("app.forkr.test:443", "/index.html").await,
        (StatusCode::OK, "hello from web\n".into())
    );
    let (s, v) = t
        .call(
            Method::POST,
            &format!("{p}/boxes/api/publish"),
            Tok::Admin,
            Some(json!({"subdomain": "app"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"], "host_in_use");
    let shown = t
        .expect(StatusCode::OK, Method::GET, &format!("{p}/boxes/web"), None)
        .await;
    assert_eq!(
        shown["published"],
        json!(["app.forkr.test", "example.org", "www.example.org"])
    );
    // Unpublishing a host the box does not own is 403.
    let (s, v) = t
        .call(
            Method::POST,
            &format!("{p}/boxes/api/unpublish"),
            Tok::Admin,
            Some(json!({"subdomain": "app"})),
        )
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("host_not_owned")),
        "{v}"
    );
    // Forced, the host moves; api listens on nothing, so the proxy says so.
    let v = t
        .expect(
            StatusCode::OK,
            Method::POST,
            &format!("{p}/boxes/api/publish"),
            Some(json!({"subdomain": "app", "force": true})),
        )
        .await;
    assert_eq!(v, json!({"host": "app.forkr.test"}));
    let shown = t
        .expect(StatusCode::OK, Method::GET, &format!("{p}/boxes/web"), None)
        .await;
    assert_eq!(
        shown["published"],
        json!(["example.org", "www.example.org"])
    );
    let (s, body) = via_proxy("app.forkr.test", "/").await;
    assert_eq!(s, StatusCode::BAD_GATEWAY, "{body}");
    // Upgrades pass through both ways.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        t.expect(
            StatusCode::OK,
            Method::POST,
            &format!("{p}/boxes/web/publish"),
            Some(json!({"subdomain": "ws"})),
        )
        .await;
        let shown = t
            .expect(StatusCode::OK, Method::GET, &format!("{p}/boxes/web"), None)
            .await;
        assert!(
            shown["published"]
                .as_array()
                .unwrap()
                .contains(&json!("ws.forkr.test"))
        );
        // The box port is 8000; the echo server is on 8001, reached through the URL of a box
        // whose PORT is 8001.
        t.create_box("shop", json!({"name": "echo", "port": 8001}))
            .await;
        t.expect(
            StatusCode::ACCEPTED,
            Method::POST,
            &format!("{p}/boxes/echo/exec"),
            Some(json!({"command": ["printf '#!/bin/sh\\nprintf \"HTTP/1.1 101 Switching Protocols\\\\r\\\\nUpgrade: websocket\\\\r\\\\nConnection: Upgrade\\\\r\\\\n\\\\r\\\\n\"\\nwhile read -r line; do case \"$line\" in \"\"|$(printf \"\\\\r\")) break;; esac; done\\nexec cat\\n' > /ws.sh && chmod +x /ws.sh && exec nc -ll -p 8001 -e /ws.sh"], "sh": true, "bg": true})),
        )
        .await;
        t.expect(
            StatusCode::OK,
            Method::POST,
            &format!("{p}/boxes/echo/ports/8001/wait?timeout=10"),
            None,
        )
        .await;
        // Under a loaded CI machine one run answered 502 here although the port was already
        // listening; a client retries that, so this does too, for a few seconds, and says
        // what the proxy answered if it never switches.
        let until = std::time::Instant::now() + Duration::from_secs(5);
        let (mut sock, head) = loop {
            let mut sock = tokio::net::TcpStream::connect(proxy).await.unwrap();
            sock.write_all(b"GET /chat HTTP/1.1\r\nHost: echo.shop.forkr.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
                .await
                .unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                let n = tokio::time::timeout(Duration::from_secs(10), sock.read(&mut byte))
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(
                    n,
                    1,
                    "connection closed in the response head: {:?}",
                    String::from_utf8_lossy(&head)
                );
                head.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&head).to_string();
            if head.starts_with("HTTP/1.1 502") && std::time::Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            if !head.starts_with("HTTP/1.1 101") {
                let mut body = vec![0u8; 512];
                let n = tokio::time::timeout(Duration::from_secs(2), sock.read(&mut body))
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .unwrap_or(0);
                panic!("{head}{}", String::from_utf8_lossy(&body[..n]));
            }
            break (sock, head);
        };
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        sock.write_all(b"ping over the proxy\n").await.unwrap();
        let mut echoed = vec![0u8; 20];
        tokio::time::timeout(Duration::from_secs(10), sock.read_exact(&mut echoed))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&echoed, b"ping over the proxy\n");
    }
    // Unknown hosts are 404; a stopped box's host is 503.
    let (s, _) = via_proxy("nobody.forkr.test", "/").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    t.expect(
        StatusCode::OK,
        Method::POST,
        &format!("{p}/boxes/web/stop"),
        None,
    )
    .await;
    let (s, _) = via_proxy("www.example.org", "/").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    // Unpublish with no host removes every host of the box.
    let v = t
        .expect(
            StatusCode::OK,
            Method::POST,
            &format!("{p}/boxes/web/unpublish"),
            Some(json!({})),
        )
        .await;
    assert_eq!(v["hosts"].as_array().unwrap().len(), 3, "{v}");
    // The API is reachable from inside a box at FORKR_API_URL.
    let (code, out) = t
        .sh(
            "shop",
            "api",
            "wget -qO- \"$FORKR_API_URL/healthz\"; echo; echo $FORKR_API_HOST",
        )
        .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"status\""), "{out}");
    assert!(out.ends_with("forks.forkr.test\n"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn volume_checkpoints_backups_and_restores() {
    let t = Target::start().await;
    let p = "/v1/projects/shop";
    // Backups outlive their volume and the API deletes none, so a server the suite reuses keeps
    // earlier runs' backups: each run names its own.
    let nightly = forkr_e2e::unique("nightly");
    t.expect(
        StatusCode::CREATED,
        Method::POST,
        &format!("{p}/volumes"),
        Some(json!({"name": "pg"})),
    )
    .await;
    t.create_box("shop", json!({"name": "db", "data": ["pg=/data"]}))
        .await;
    t.sh("shop", "db", "echo v1 > /data/state").await;
    let c = t
        .expect(
            StatusCode::CREATED,
            Method::POST,
            &format!("{p}/volumes/pg/checkpoints"),
            Some(json!({"description": "first"})),
        )
        .await;
    assert_eq!(
        (c["name"].as_str(), c["description"].as_str()),
        (Some("v0"), Some("first"))
    );
    let (s, _) = t
        .call(
            Method::POST,
            &format!("{p}/volumes/pg/checkpoints"),
            Tok::Admin,
            Some(json!({"name": "v0"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    t.sh("shop", "db", "echo v2 > /data/state").await;
    let b = t
        .expect(
            StatusCode::CREATED,
            Method::POST,
            &format!("{p}/volumes/pg/backups"),
            Some(json!({"name": nightly})),
        )
        .await;
    assert_eq!(b["name"], nightly.as_str());
    let list = t
        .expect(
            StatusCode::OK,
            Method::GET,
            &format!("{p}/volumes/pg/checkpoints"),
            None,
        )
        .await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    // A restore while a running box mounts the volume is refused.
    let (s, v) = t
        .call(
            Method::POST,
            &format!("{p}/volumes/pg/restore"),
            Tok::Admin,
            Some(json!({"checkpoint": "v0"})),
        )
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::CONFLICT, Some("volume_in_use")),
        "{v}"
    );
    let (s, _) = t
        .call(
            Method::POST,
            &format!("{p}/volumes/pg/restore"),
            Tok::Admin,
            Some(json!({"checkpoint": "v0", "backup": nightly})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    t.expect(
        StatusCode::OK,
        Method::POST,
        &format!("{p}/boxes/db/stop"),
        None,
    )
    .await;
    t.expect(
        StatusCode::OK,
        Method::POST,
        &format!("{p}/volumes/pg/restore"),
        Some(json!({"checkpoint": "v0"})),
    )
    .await;
    t.expect(
        StatusCode::OK,
        Method::POST,
        &format!("{p}/boxes/db/resume"),
        None,
    )
    .await;
    assert_eq!(t.sh("shop", "db", "cat /data/state").await.1, "v1\n");
    // A backup outlives its volume and brings it back.
    t.expect(
        StatusCode::NO_CONTENT,
        Method::DELETE,
        &format!("{p}/boxes/db?force=true"),
        None,
    )
    .await;
    t.expect(
        StatusCode::NO_CONTENT,
        Method::DELETE,
        &format!("{p}/volumes/pg"),
        None,
    )
    .await;
    let (s, _) = t
        .call(Method::GET, &format!("{p}/volumes/pg"), Tok::Admin, None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    t.expect(
        StatusCode::OK,
        Method::POST,
        &format!("{p}/volumes/pg/restore"),
        Some(json!({"backup": nightly})),
    )
    .await;
    t.create_box("shop", json!({"name": "db2", "data": ["pg=/data:ro"]}))
        .await;
    assert_eq!(t.sh("shop", "db2", "cat /data/state").await.1, "v2\n");
    let (s, _) = t
        .call(
            Method::GET,
            &format!("{p}/volumes/nope/checkpoints"),
            Tok::Admin,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn everything_survives_kill_9() {
    let mut t = Target::start().await;
    let p = "/v1/projects/shop";
    t.create_box("shop", json!({"name": "live"})).await;
    t.create_box("shop", json!({"name": "asleep"})).await;
    t.expect(
        StatusCode::OK,
        Method::POST,
        &format!("{p}/boxes/asleep/stop"),
        None,
    )
    .await;
    t.sh("shop", "live", "echo kept > /work/note").await;
    t.expect(
        StatusCode::ACCEPTED,
        Method::POST,
        &format!("{p}/boxes/live/exec"),
        Some(json!({"command": ["sleep", "1000"], "bg": true})),
    )
    .await;
    t.expect(
        StatusCode::CREATED,
        Method::POST,
        &format!("{p}/boxes/live/snapshots"),
        Some(json!({"name": "s1"})),
    )
    .await;
    t.expect(
        StatusCode::CREATED,
        Method::POST,
        &format!("{p}/volumes"),
        Some(json!({"name": "vol"})),
    )
    .await;
    t.expect(
        StatusCode::CREATED,
        Method::POST,
        &format!("{p}/bases/saved/save"),
        Some(json!({"box": "live"})),
    )
    .await;
    t.expect(
        StatusCode::OK,
        Method::POST,
        &format!("{p}/boxes/live/publish"),
        Some(json!({"subdomain": "kept"})),
    )
    .await;
    let before = t
        .sh(
            "shop",
            "live",
            "ps -o pid,args | grep '[s]leep 1000' | awk '{print $1}'",
        )
        .await;
    assert!(!before.1.trim().is_empty(), "the background sleep runs");

    t.crash_and_restart().await;

    let live = t
        .expect(
            StatusCode::OK,
            Method::GET,
            &format!("{p}/boxes/live"),
            None,
        )
        .await;
    assert_eq!(live["status"], "running", "{live}");
    assert_eq!(live["published"], json!([format!("kept.{}", t.domain)]));
    let asleep = t
        .expect(
            StatusCode::OK,
            Method::GET,
            &format!("{p}/boxes/asleep"),
            None,
        )
        .await;
    assert_eq!(asleep["status"], "stopped");
    // The same processes: the background sleep is still there, no resume needed.
    assert_eq!(
        t.sh(
            "shop",
            "live",
            "ps -o pid,args | grep '[s]leep 1000' | awk '{print $1}'"
        )
        .await,
        before
    );
    assert_eq!(t.sh("shop", "live", "cat /work/note").await.1, "kept\n");
    let snaps = t
        .expect(
            StatusCode::OK,
            Method::GET,
            &format!("{p}/boxes/live/snapshots"),
            None,
        )
        .await;
    assert_eq!(snaps[0]["name"], "s1");
    t.expect(
        StatusCode::OK,
        Method::GET,
        &format!("{p}/volumes/vol"),
        None,
    )
    .await;
    t.expect(
        StatusCode::OK,
        Method::GET,
        &format!("{p}/bases/saved"),
        None,
    )
    .await;
    t.expect(
        StatusCode::OK,
        Method::POST,
        &format!("{p}/boxes/asleep/resume"),
        None,
    )
    .await;
    // The restarted server serves the published host again.
    let (s, _) = t
        .call(
            Method::POST,
            &format!("{p}/boxes/asleep/publish"),
            Tok::Admin,
            Some(json!({"subdomain": "kept"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_concurrent_creates_and_execs_leave_nothing_behind() {
    let t = Target::start().await;
    let names: Vec<String> = (0..Target::concurrency())
        .map(|i| format!("c{i}"))
        .collect();
    let creates = names.iter().map(|n| {
        let t = &t;
        async move {
            t.call(
                Method::POST,
                "/v1/projects/shop/boxes",
                Tok::Admin,
                Some(json!({"name": n})),
            )
            .await
        }
    });
    for (n, (s, v)) in names.iter().zip(futures::future::join_all(creates).await) {
        assert_eq!(s, StatusCode::CREATED, "create {n}: {v}");
    }
    let execs = names.iter().map(|n| {
        let t = &t;
        async move {
            (
                n,
                t.ws_exec("shop", n, &["sh", "-c", "echo $BOX_NAME"]).await,
            )
        }
    });
    for (n, (code, out)) in futures::future::join_all(execs).await {
        assert_eq!(
            (code, String::from_utf8_lossy(&out).to_string()),
            (0, format!("{n}\n"))
        );
    }
    let list = t
        .expect(StatusCode::OK, Method::GET, "/v1/projects/shop/boxes", None)
        .await;
    assert_eq!(list.as_array().unwrap().len(), names.len());
    let deletes = names.iter().map(|n| {
        let t = &t;
        async move {
            t.call(
                Method::DELETE,
                &format!("/v1/projects/shop/boxes/{n}?force=true"),
                Tok::Admin,
                None,
            )
            .await
        }
    });
    for (n, (s, v)) in names.iter().zip(futures::future::join_all(deletes).await) {
        // On a cluster a delete waits 30 s for the finalizer, and many pods stopping at once
        // on one node can take longer: 202, documented as "the cleanup continues", then gone.
        if s == StatusCode::ACCEPTED && t.data_dir().is_none() {
            let path = format!("/v1/projects/shop/boxes/{n}");
            t.eventually(Duration::from_secs(180), &format!("{n} to go"), || async {
                t.call(Method::GET, &path, Tok::Admin, None).await.0 == StatusCode::NOT_FOUND
            })
            .await;
            continue;
        }
        assert_eq!(s, StatusCode::NO_CONTENT, "delete {n}: {v}");
    }
    let leaks = t.leaks(&named("shop", &names));
    assert!(leaks.is_empty(), "left behind: {leaks:?}");
}

/// How many processes in box `name` run exactly `sleep <secs>`, read from /proc in the box.
async fn sleepers(t: &Target, name: &str, secs: &str) -> usize {
    let script = format!(
        "n=0; for f in /proc/[0-9]*/cmdline; do c=$(tr '\\0' ' ' < \"$f\" 2>/dev/null); \
         [ \"$c\" = 'sleep {secs} ' ] && n=$((n+1)); done; echo $n"
    );
    let (code, out) = t.sh("shop", name, &script).await;
    assert_eq!(code, 0, "counting sleepers: {out}");
    out.trim().parse().unwrap()
}

/// The exec grace (docs/operations.md, `--exec-grace`) is seconds; this deadline only bounds a
/// broken server, it measures nothing.
const GRACE_DEADLINE: Duration = Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_client_ends_its_foreground_exec_once_the_grace_has_passed() {
    use futures::SinkExt as _;
    use tokio_tungstenite::tungstenite::Message;

    let t = Target::start().await;
    let name = forkr_e2e::unique("hup");
    t.create_box("shop", json!({"name": name})).await;
    // A duration of this test's own, so the count sees only this exec's sleep.
    let secs = format!("{}", 100_000 + std::process::id() % 100_000);
    let url = format!(
        "{}/v1/projects/shop/boxes/{name}/exec/ws",
        t.url.replacen("http", "ws", 1)
    );
    let mut req =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)
            .unwrap();
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {}", t.admin).parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    ws.send(Message::text(
        json!({"command": ["sleep", secs]}).to_string(),
    ))
    .await
    .unwrap();
    t.eventually(GRACE_DEADLINE, "the foreground sleep to start", || async {
        sleepers(&t, &name, &secs).await == 1
    })
    .await;
    // The client dies as under kill -9: its socket goes away without a close frame.
    drop(ws);
    t.eventually(
        GRACE_DEADLINE,
        "the orphaned foreground exec to be hung up",
        || async { sleepers(&t, &name, &secs).await == 0 },
    )
    .await;
    t.delete_boxes("shop", &[name]).await;
}
