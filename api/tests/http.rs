//! The API over a real TCP socket, on a real SQLite store and a real loopback btrfs pool.

#![allow(clippy::unwrap_used)]

use forkr_api::testkit::{Options, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

struct Server {
    base: String,
    admin: String,
    shop: String,
    http: reqwest::Client,
    inner: TestServer,
}

impl Server {
    async fn start() -> Server {
        Self::from(TestServer::start().await)
    }

    fn from(inner: TestServer) -> Server {
        Server {
            base: inner.url.clone(),
            admin: inner.admin.clone(),
            shop: inner.shop.clone(),
            http: reqwest::Client::new(),
            inner,
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (
            status,
            if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap_or(Value::String(text))
            },
        )
    }

    async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call(method, path, Some(&self.admin.clone()), body)
            .await
    }
}

fn error(code: &str, message: &str) -> Value {
    json!({"error": code, "message": message})
}

#[tokio::test]
async fn health_is_open_and_everything_else_needs_a_token() {
    let s = Server::start().await;
    assert_eq!(
        s.call(Method::GET, "/healthz", None, None).await,
        (StatusCode::OK, json!({"status": "ok"}))
    );
    assert_eq!(
        s.call(Method::GET, "/readyz", None, None).await,
        (StatusCode::OK, json!({"status": "ready"}))
    );
    let unauthorized = (
        StatusCode::UNAUTHORIZED,
        error("unauthorized", "missing or invalid bearer token"),
    );
    assert_eq!(
        s.call(Method::GET, "/v1/projects/shop/users", None, None)
            .await,
        unauthorized
    );
    assert_eq!(
        s.call(
            Method::GET,
            "/v1/projects/shop/users",
            Some("fkr_wrong"),
            None
        )
        .await,
        unauthorized
    );
    let (status, _) = s
        .call(Method::GET, "/v1/projects/shop/users", Some(&s.shop), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        s.call(Method::GET, "/v1/projects/other/users", Some(&s.shop), None)
            .await,
        (
            StatusCode::FORBIDDEN,
            error("forbidden", "this token has no access to project \"other\"")
        )
    );
    let (status, _) = s.admin(Method::GET, "/v1/projects/other/users", None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn users_get_sequential_uids_from_20000() {
    let s = Server::start().await;
    let (status, alice) = s
        .admin(
            Method::POST,
            "/v1/projects/shop/users",
            Some(json!({"name": "alice"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        alice,
        json!({"name": "alice", "uid": 20000, "gid": 20000, "home": "/home/alice", "shell": "/bin/bash"})
    );
    let (_, bob) = s
        .admin(
            Method::POST,
            "/v1/projects/shop/users",
            Some(json!({"name": "bob", "shell": "/bin/sh"})),
        )
        .await;
    assert_eq!(bob["uid"], 20001);
    // Another project counts from 20000 on its own.
    let (_, carol) = s
        .admin(
            Method::POST,
            "/v1/projects/lab/users",
            Some(json!({"name": "carol"})),
        )
        .await;
    assert_eq!(carol["uid"], 20000);
    assert_eq!(
        s.admin(
            Method::POST,
            "/v1/projects/shop/users",
            Some(json!({"name": "alice"}))
        )
        .await,
        (
            StatusCode::CONFLICT,
            error("already_exists", "user \"alice\" already exists")
        )
    );
    assert_eq!(
        s.admin(
            Method::POST,
            "/v1/projects/shop/users",
            Some(json!({"name": "root"}))
        )
        .await,
        (
            StatusCode::BAD_REQUEST,
            error("invalid_name", "user name \"root\" is reserved")
        )
    );
    let (status, body) = s
        .admin(
            Method::POST,
            "/v1/projects/shop/users",
            Some(json!({"name": "Al"})),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_name"))
    );
    let (status, updated) = s
        .admin(
            Method::PATCH,
            "/v1/projects/shop/users/alice",
            Some(json!({"shell": "/bin/zsh"})),
        )
        .await;
    assert_eq!(
        (status, updated["shell"].as_str()),
        (StatusCode::OK, Some("/bin/zsh"))
    );
    let (status, list) = s.admin(Method::GET, "/v1/projects/shop/users", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        list.as_array()
            .unwrap()
            .iter()
            .map(|u| u["name"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["alice", "bob"]
    );
    for _ in 0..2 {
        assert_eq!(
            s.admin(Method::DELETE, "/v1/projects/shop/users/bob", None)
                .await
                .0,
            StatusCode::NO_CONTENT
        );
    }
    // The UID after a deletion is still max + 1, never reused below the highest.
    let (_, dave) = s
        .admin(
            Method::POST,
            "/v1/projects/shop/users",
            Some(json!({"name": "dave"})),
        )
        .await;
    assert_eq!(dave["uid"], 20001);
    let (status, _) = s
        .admin(
            Method::PATCH,
            "/v1/projects/shop/users/zed",
            Some(json!({"shell": "/bin/sh"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_bodies_get_4xx_and_change_nothing() {
    let s = Server::start().await;
    let url = format!("{}/v1/projects/shop/users", s.base);
    let send = |body: String, ctype: &'static str| {
        s.http
            .post(&url)
            .bearer_auth(&s.admin)
            .header("content-type", ctype)
            .body(body)
            .send()
    };
    let bad_json = send("{\"name\": ".into(), "application/json")
        .await
        .unwrap();
    assert_eq!(bad_json.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        bad_json.json::<Value>().await.unwrap()["error"],
        "invalid_json"
    );
    let unknown = send(
        json!({"name": "x", "uid": 0}).to_string(),
        "application/json",
    )
    .await
    .unwrap();
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
    let body: Value = unknown.json().await.unwrap();
    assert_eq!(body["error"], "invalid_json");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `uid`"),
        "{body}"
    );
    let huge = send(
        format!("{{\"name\": \"{}\"}}", "a".repeat(2 << 20)),
        "application/json",
    )
    .await
    .unwrap();
    assert_eq!(huge.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        huge.json::<Value>().await.unwrap()["error"],
        "body_too_large"
    );
    let text = send("name=x".into(), "text/plain").await.unwrap();
    assert_eq!(text.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        s.admin(Method::GET, "/v1/projects/Bad_Project/users", None)
            .await
            .1["error"],
        "invalid_name"
    );
    assert_eq!(
        s.admin(Method::GET, "/v1/projects/shop/users", None)
            .await
            .1,
        json!([])
    );
}

#[tokio::test]
async fn volumes_lifecycle() {
    let s = Server::start().await;
    let (status, v) = s
        .admin(
            Method::POST,
            "/v1/projects/shop/volumes",
            Some(json!({"name": "pgdata", "size": "1Gi"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(
        (
            v["name"].as_str(),
            v["limit"].as_str(),
            v["project"].as_str()
        ),
        (Some("pgdata"), Some("1Gi"), Some("shop"))
    );
    assert_eq!(
        s.admin(
            Method::POST,
            "/v1/projects/shop/volumes",
            Some(json!({"name": "pgdata"}))
        )
        .await,
        (
            StatusCode::CONFLICT,
            error("already_exists", "data volume \"pgdata\" already exists")
        )
    );
    let (status, body) = s
        .admin(
            Method::POST,
            "/v1/projects/shop/volumes",
            Some(json!({"name": "x", "size": "1Mi"})),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_quantity"))
    );
    let (status, body) = s
        .admin(
            Method::POST,
            "/v1/projects/shop/volumes",
            Some(json!({"name": "PG"})),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_name"))
    );
    let (status, list) = s
        .admin(Method::GET, "/v1/projects/shop/volumes", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(
        s.admin(Method::GET, "/v1/projects/lab/volumes", None)
            .await
            .1,
        json!([])
    );
    let (status, shown) = s
        .admin(Method::GET, "/v1/projects/shop/volumes/pgdata", None)
        .await;
    assert_eq!(
        (status, shown["name"].as_str()),
        (StatusCode::OK, Some("pgdata"))
    );
    assert_eq!(
        s.admin(Method::GET, "/v1/projects/shop/volumes/nope", None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    for _ in 0..2 {
        assert_eq!(
            s.admin(Method::DELETE, "/v1/projects/shop/volumes/pgdata", None)
                .await
                .0,
            StatusCode::NO_CONTENT
        );
    }
    assert_eq!(
        s.admin(Method::GET, "/v1/projects/shop/volumes", None)
            .await
            .1,
        json!([])
    );
}

#[tokio::test]
async fn bases_list_and_missing_ones() {
    let s = Server::start().await;
    let (status, list) = s.admin(Method::GET, "/v1/projects/shop/bases", None).await;
    assert_eq!(
        (status, list[0]["name"].as_str()),
        (StatusCode::OK, Some("box-base"))
    );
    assert_eq!(
        s.admin(Method::GET, "/v1/projects/shop/bases/none", None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.admin(Method::DELETE, "/v1/projects/shop/bases/none", None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    let (status, body) = s
        .admin(Method::GET, "/v1/projects/shop/bases/Bad", None)
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_name"))
    );
}

/// Every path and method in /openapi.json is served, and every served route is documented.
#[tokio::test]
async fn the_openapi_document_and_the_routes_agree() {
    let s = Server::start().await;
    let (status, doc) = s.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let mut documented = Vec::new();
    for (path, item) in paths {
        for method in item
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| ["get", "post", "put", "patch", "delete"].contains(&k.as_str()))
        {
            let concrete = path.replace("{project}", "shop").replace("{name}", "probe");
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let (status, body) = s.admin(m.clone(), &concrete, Some(json!({}))).await;
            // A handler's 404 carries an error body; the router's own 404 for an unknown route
            // has none.
            assert!(
                status != StatusCode::NOT_FOUND || body["error"] == "not_found",
                "{method} {path} is documented but not served"
            );
            assert_ne!(
                status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path} is documented but not served"
            );
            documented.push(format!("{method} {path}"));
        }
    }
    documented.sort();
    assert_eq!(
        documented,
        [
            "delete /v1/projects/{project}/bases/{name}",
            "delete /v1/projects/{project}/boxes/{name}",
            "delete /v1/projects/{project}/users/{name}",
            "delete /v1/projects/{project}/volumes/{name}",
            "delete /v1/tokens/{id}",
            "get /healthz",
            "get /readyz",
            "get /v1/projects/{project}/bases",
            "get /v1/projects/{project}/bases/{name}",
            "get /v1/projects/{project}/boxes",
            "get /v1/projects/{project}/boxes/{name}",
            "get /v1/projects/{project}/boxes/{name}/console",
            "get /v1/projects/{project}/boxes/{name}/diff",
            "get /v1/projects/{project}/boxes/{name}/diff/file",
            "get /v1/projects/{project}/boxes/{name}/exec/ws",
            "get /v1/projects/{project}/boxes/{name}/files",
            "get /v1/projects/{project}/boxes/{name}/logs",
            "get /v1/projects/{project}/boxes/{name}/ports",
            "get /v1/projects/{project}/boxes/{name}/snapshots",
            "get /v1/projects/{project}/users",
            "get /v1/projects/{project}/volumes",
            "get /v1/projects/{project}/volumes/{name}",
            "get /v1/projects/{project}/volumes/{name}/backups",
            "get /v1/projects/{project}/volumes/{name}/checkpoints",
            "get /v1/tokens",
            "patch /v1/projects/{project}/boxes/{name}",
            "patch /v1/projects/{project}/users/{name}",
            "post /v1/projects/{project}/bases/{name}/import",
            "post /v1/projects/{project}/bases/{name}/save",
            "post /v1/projects/{project}/boxes",
            "post /v1/projects/{project}/boxes/{name}/exec",
            "post /v1/projects/{project}/boxes/{name}/ports/{port}/wait",
            "post /v1/projects/{project}/boxes/{name}/publish",
            "post /v1/projects/{project}/boxes/{name}/resume",
            "post /v1/projects/{project}/boxes/{name}/snapshots",
            "post /v1/projects/{project}/boxes/{name}/snapshots/{snapshot}/restore",
            "post /v1/projects/{project}/boxes/{name}/stop",
            "post /v1/projects/{project}/boxes/{name}/unpublish",
            "post /v1/projects/{project}/users",
            "post /v1/projects/{project}/volumes",
            "post /v1/projects/{project}/volumes/{name}/backups",
            "post /v1/projects/{project}/volumes/{name}/checkpoints",
            "post /v1/projects/{project}/volumes/{name}/restore",
            "post /v1/tokens",
            "put /v1/projects/{project}/boxes/{name}/files",
        ]
    );

    // docs/api.md lists every route.
    let reference =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/api.md")).unwrap();
    for route in &documented {
        let (method, path) = route.split_once(' ').unwrap();
        let exact = format!("`{} {path}`", method.to_uppercase());
        let with_query = format!("`{} {path}?", method.to_uppercase());
        assert!(
            reference.contains(&exact) || reference.contains(&with_query),
            "docs/api.md does not list {route}"
        );
    }
    // A route that is not in the document is not served either.
    assert_eq!(
        s.admin(Method::GET, "/v1/projects/shop/nothing", None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
}

/// A tiny usr-merged rootfs whose /bin/sh claims the given ELF machine (62 = x86-64).
fn rootfs(machine: u16, extra: &[(&str, &[u8])]) -> Vec<u8> {
    let mut elf = vec![0u8; 128];
    elf[..4].copy_from_slice(b"\x7fELF");
    elf[4] = 2;
    elf[5] = 1;
    elf[18..20].copy_from_slice(&machine.to_le_bytes());
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    let mut add = |path: &str, kind: tar::EntryType, mode: u32, data: &[u8], link: Option<&str>| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        if let Some(l) = link {
            h.set_link_name(l).unwrap();
        }
        // Raw names, so that hostile ones (`../x`) can be written as a hostile upload would.
        let name = &mut h.as_old_mut().name;
        name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_cksum();
        b.append(&h, data).unwrap();
    };
    add("usr/", tar::EntryType::Directory, 0o755, b"", None);
    add("usr/bin/", tar::EntryType::Directory, 0o755, b"", None);
    add("bin", tar::EntryType::Symlink, 0o777, b"", Some("usr/bin"));
    add("usr/bin/dash", tar::EntryType::Regular, 0o755, &elf, None);
    add(
        "usr/bin/sh",
        tar::EntryType::Symlink,
        0o777,
        b"",
        Some("dash"),
    );
    for (p, d) in extra {
        add(p, tar::EntryType::Regular, 0o644, d, None);
    }
    b.into_inner().unwrap().finish().unwrap()
}

impl Server {
    async fn upload(&self, path: &str, body: Vec<u8>) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.admin)
            .header("content-type", "application/gzip")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn bases_import_version_and_refuse_bad_tarballs() {
    let s = Server::start().await;
    let (status, first) = s
        .upload("/v1/projects/shop/bases/mini/import", rootfs(62, &[]))
        .await;
    assert_eq!(
        (status, first.clone()),
        (
            StatusCode::CREATED,
            json!({"name": "mini", "version": "mini"})
        )
    );
    let (status, second) = s
        .upload(
            "/v1/projects/shop/bases/mini/import?parent=mini&tag=abc123&builder=docker",
            rootfs(62, &[("etc/motd", b"hi")]),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    let version = second["version"].as_str().unwrap().to_owned();
    assert!(
        version.starts_with("mini-v") && version.len() == "mini-v20260101120000".len(),
        "{version}"
    );
    let (_, list) = s.admin(Method::GET, "/v1/projects/shop/bases", None).await;
    let mini = list
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "mini")
        .unwrap();
    assert_eq!(mini["version"], version.as_str());
    let (_, shown) = s
        .admin(Method::GET, "/v1/projects/shop/bases/mini", None)
        .await;
    assert_eq!(
        (shown["latest"].as_str(), shown["version_count"].as_u64()),
        (Some(version.as_str()), Some(2))
    );
    assert_eq!(shown["versions"][0]["builder"], "docker");
    assert_eq!(shown["versions"][0]["parent"], "mini");
    let (_, by_tag) = s
        .admin(Method::GET, "/v1/projects/shop/bases/mini?tag=abc123", None)
        .await;
    assert_eq!(by_tag["versions"].as_array().unwrap().len(), 1);

    let (status, arm) = s
        .upload("/v1/projects/shop/bases/armed/import", rootfs(183, &[]))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        arm["message"]
            .as_str()
            .unwrap()
            .contains("expected amd64, found arm64"),
        "{arm}"
    );
    let (status, escape) = s
        .upload(
            "/v1/projects/shop/bases/evil/import",
            rootfs(62, &[("../outside", b"x")]),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        escape["message"]
            .as_str()
            .unwrap()
            .contains("refusing tar entry"),
        "{escape}"
    );
    let (status, garbage) = s
        .upload(
            "/v1/projects/shop/bases/junk/import",
            b"not a tarball".to_vec(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{garbage}");
    let (status, body) = s
        .upload("/v1/projects/shop/bases/Bad/import", rootfs(62, &[]))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_name"))
    );
    // None of the refused uploads left a base behind: only box-base and mini.
    let (_, list) = s.admin(Method::GET, "/v1/projects/shop/bases", None).await;
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    assert_eq!(
        s.admin(Method::DELETE, "/v1/projects/shop/bases/mini", None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    let (_, list) = s.admin(Method::GET, "/v1/projects/shop/bases", None).await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
}

#[tokio::test]
async fn uploads_over_the_cap_are_cut_off() {
    let s = Server::from(
        TestServer::start_with(Options {
            max_upload: Some(64 << 10),
        })
        .await,
    );
    let big: Vec<u8> = (0..(1u32 << 20))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/projects/shop/bases/big/import", s.base))
        .bearer_auth(&s.admin)
        .body(rootfs(62, &[("blob", &big)]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "upload_too_large"
    );
    // Only the tiny base the server starts with is there.
    let names: Vec<String> = s
        .inner
        .pool
        .list_bases()
        .unwrap()
        .into_iter()
        .map(|b| b.name)
        .collect();
    assert_eq!(names, ["box-base"]);
}

/// Everything the server logs while it lives, as text: the audit lines are checked in it.
#[derive(Clone, Default)]
struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn tokens_are_listed_minted_revoked_and_expire() {
    // The test's runtime has one thread, and the server runs on it: a subscriber set for this
    // thread sees every line the server logs.
    let log = LogBuffer::default();
    let writer = log.clone();
    let _logging = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || writer.clone())
            .finish(),
    );
    let s = Server::start().await;
    let (status, listed) = s.admin(Method::GET, "/v1/tokens", None).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let listed = listed.as_array().unwrap().clone();
    let names: Vec<&str> = listed.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["admin", "shop"]);
    let mut keys: Vec<&String> = listed[1].as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "admin",
            "created",
            "expires",
            "id",
            "last_used",
            "name",
            "projects"
        ]
    );
    assert_eq!(
        (&listed[1]["admin"], &listed[1]["projects"]),
        (&json!(false), &json!(["shop"]))
    );
    let admin_id = listed[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(admin_id.len(), 12);
    // The admin token has been used: by this very request, or the one before it.
    assert!(listed[0]["last_used"].is_string(), "{listed:?}");
    assert!(!serde_json::to_string(&listed).unwrap().contains(&s.admin));

    // A project token cannot list, mint or revoke, not even with a bad body; no token is 401.
    let forbidden = (
        StatusCode::FORBIDDEN,
        error("forbidden", "only an admin token manages tokens"),
    );
    assert_eq!(
        s.call(Method::GET, "/v1/tokens", Some(&s.shop), None).await,
        forbidden
    );
    let wider = json!({"name": "mine", "admin": true});
    assert_eq!(
        s.call(Method::POST, "/v1/tokens", Some(&s.shop), Some(wider))
            .await,
        forbidden
    );
    assert_eq!(
        s.call(Method::POST, "/v1/tokens", Some(&s.shop), Some(json!([])))
            .await,
        forbidden
    );
    let path = format!("/v1/tokens/{admin_id}");
    assert_eq!(
        s.call(Method::DELETE, &path, Some(&s.shop), None).await,
        forbidden
    );
    assert_eq!(
        s.call(Method::GET, "/v1/tokens", None, None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        s.admin(Method::GET, "/v1/tokens", None).await.0,
        StatusCode::OK
    );

    // Bad requests change nothing.
    for (body, message) in [
        (json!({"name": "x"}), "give admin or at least one project"),
        (
            json!({"name": "x", "admin": true, "projects": ["shop"]}),
            "give admin or projects, not both",
        ),
        (
            json!({"name": "x", "admin": true, "expires_in": "1h", "expires": "2999-01-01T00:00:00Z"}),
            "give expires_in or expires, not both",
        ),
        (
            json!({"name": "x", "admin": true, "expires": "2001-01-01T00:00:00Z"}),
            "expires 2001-01-01T00:00:00Z is not in the future",
        ),
        (
            json!({"name": "x", "admin": true, "expires_in": "soon"}),
            "invalid lifetime \"soon\": a number with s, m, h, d or w (e.g. 30d)",
        ),
        (
            json!({"name": "x", "admin": true, "expires_in": 0}),
            "invalid lifetime 0: at least 1 second",
        ),
        (
            json!({"name": "", "admin": true}),
            "invalid token name \"\": 1-64 characters, no control characters",
        ),
    ] {
        let (status, got) = s.admin(Method::POST, "/v1/tokens", Some(body)).await;
        assert_eq!(
            (status, &got["message"]),
            (StatusCode::BAD_REQUEST, &json!(message))
        );
    }
    let (status, got) = s
        .admin(
            Method::POST,
            "/v1/tokens",
            Some(json!({"name": "x", "projects": ["Bad_Project"]})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{got}");
    let (_, listed) = s.admin(Method::GET, "/v1/tokens", None).await;
    assert_eq!(listed.as_array().unwrap().len(), 2);

    // Mint a project token: it works in its project only, and is listed, without its secret.
    let (status, made) = s
        .admin(
            Method::POST,
            "/v1/tokens",
            Some(json!({"name": "ci", "projects": ["shop"], "expires_in": "30d"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let ci = made["token"].as_str().unwrap().to_owned();
    let ci_id = made["id"].as_str().unwrap().to_owned();
    assert!(ci.starts_with("fkr_"), "{made}");
    assert!(made["expires"].is_string(), "{made}");
    assert_eq!(
        s.call(Method::GET, "/v1/projects/shop/users", Some(&ci), None)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        s.call(Method::GET, "/v1/projects/other/users", Some(&ci), None)
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    let (_, listed) = s.admin(Method::GET, "/v1/tokens", None).await;
    let row = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == json!(ci_id))
        .unwrap()
        .clone();
    assert_eq!(
        (&row["name"], &row["expires"]),
        (&json!("ci"), &made["expires"])
    );
    assert!(row["last_used"].is_string(), "{row}");
    assert!(!listed.to_string().contains(&ci));

    // Every authenticated request left one audit line: id and name, never the secret.
    let text = log.text();
    let audit: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("forkr_api::audit: request "))
        .filter(|l| l.contains(&format!("token_id={ci_id}")))
        .collect();
    assert_eq!(audit.len(), 2, "{text}");
    for (line, project, status) in [(audit[0], "shop", 200), (audit[1], "other", 403)] {
        for part in [
            "token_name=\"ci\"".to_owned(),
            "method=GET".to_owned(),
            format!("path=/v1/projects/{project}/users"),
            format!("project={project}"),
            format!("status={status}"),
        ] {
            assert!(line.contains(&part), "{part} not in {line}");
        }
    }
    assert!(!text.contains(&ci) && !text.contains(&s.admin), "{text}");

    // Revoked: 401 from the next request on; revoking again is 404.
    let path = format!("/v1/tokens/{ci_id}");
    assert_eq!(
        s.admin(Method::DELETE, &path, None).await,
        (StatusCode::NO_CONTENT, Value::Null)
    );
    assert_eq!(
        s.call(Method::GET, "/v1/projects/shop/users", Some(&ci), None)
            .await,
        (
            StatusCode::UNAUTHORIZED,
            error("unauthorized", "missing or invalid bearer token")
        )
    );
    assert_eq!(
        s.admin(Method::DELETE, &path, None).await,
        (
            StatusCode::NOT_FOUND,
            error("not_found", &format!("token {ci_id:?} not found"))
        )
    );

    // Expired: 401 saying so. The token lives one second; the test waits until it is over.
    let (status, short) = s
        .admin(
            Method::POST,
            "/v1/tokens",
            Some(json!({"name": "short", "admin": true, "expires_in": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{short}");
    let expires: jiff::Timestamp = short["expires"].as_str().unwrap().parse().unwrap();
    while jiff::Timestamp::now() <= expires {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let secret = short["token"].as_str().unwrap();
    assert_eq!(
        s.call(Method::GET, "/v1/tokens", Some(secret), None).await,
        (
            StatusCode::UNAUTHORIZED,
            error(
                "unauthorized",
                &format!(
                    "this token expired at {}",
                    short["expires"].as_str().unwrap()
                )
            )
        )
    );
}

/// `forkr-api token` on a data directory: mint (with an expiry), list, revoke; and the data
/// directory and database end up private, whatever an older install left.
#[test]
fn forkr_api_token_lists_and_revokes_and_keeps_the_data_private() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_forkr-api"))
            .args(args)
            .arg("--data-dir")
            .arg(&data)
            .env("RUST_LOG", "info")
            .env("RUST_BACKTRACE", "0")
            .env("RUST_LIB_BACKTRACE", "0")
            .output()
            .unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    // As scripts call it: one line on stdout, the secret.
    let (code, out, err) = run(&["token", "--admin", "--name", "local"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("fkr_") && out.lines().count() == 1, "{out}");
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("forkr.db")), 0o600);
    let (code, _, err) = run(&[
        "token",
        "--project",
        "shop",
        "--name",
        "ci",
        "--expires",
        "30d",
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(&["token", "--name", "nothing"]);
    assert_eq!(
        (code, err.trim_end()),
        (1, "Error: give --admin or at least one --project")
    );
    let (code, list, _) = run(&["token", "list"]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 3, "{list}");
    assert!(lines[0].starts_with("ID  "), "{list}");
    let ci: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!((ci[1], ci[2]), ("ci", "shop"), "{list}");
    assert_ne!(ci[4], "-", "an expiry: {list}");
    // The data directory may come before the subcommand, as scripts write it; minting flags
    // do not mix with list or revoke.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_forkr-api"))
        .args(["token", "--data-dir"])
        .arg(&data)
        .arg("list")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), list);
    let (code, _, err) = run(&["token", "--admin", "list"]);
    assert_eq!(
        (code, err.trim_end()),
        (
            1,
            "Error: --admin, --project, --name and --expires are for minting a token, not with list or revoke"
        )
    );
    let (code, out, _) = run(&["token", "revoke", ci[0]]);
    assert_eq!((code, out), (0, format!("{}: revoked\n", ci[0])));
    let (code, _, err) = run(&["token", "revoke", ci[0]]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("token \"{}\" not found", ci[0])),
        "{err}"
    );
    assert_eq!(run(&["token", "list"]).1.lines().count(), 2);

    // An older install: everything readable by everyone. The next start tightens it and says so.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(
        data.join("forkr.db"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let (code, _, err) = run(&["token", "list"]);
    assert_eq!(code, 0);
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("forkr.db")), 0o600);
    assert!(err.contains("made the data directory 0700"), "{err}");
    assert!(err.contains("made the database file 0600"), "{err}");
}

/// Every box-scoped route takes its box as a `BoxKey`, checked by the extractor before the
/// handler (and so before any backend) runs: a bad name is 400 `invalid_name` on each family of
/// routes, and nothing changes.
#[tokio::test]
async fn a_bad_box_name_is_invalid_name_on_every_box_route() {
    let s = Server::start().await;
    let (_, before) = s.admin(Method::GET, "/v1/projects/shop/boxes", None).await;
    let b = "/v1/projects/shop/boxes/Bad_Name";
    let routes: Vec<(Method, String, Option<Value>)> = vec![
        // boxes
        (Method::GET, b.to_owned(), None),
        (
            Method::PATCH,
            b.to_owned(),
            Some(json!({"env": {"PORT": "80"}})),
        ),
        (Method::DELETE, format!("{b}?force=true"), None),
        (Method::POST, format!("{b}/stop"), None),
        (Method::POST, format!("{b}/resume"), None),
        // hosts
        (
            Method::POST,
            format!("{b}/publish"),
            Some(json!({"subdomain": "x"})),
        ),
        (Method::POST, format!("{b}/unpublish"), Some(json!({}))),
        // snapshots and diffs
        (Method::GET, format!("{b}/snapshots"), None),
        (Method::POST, format!("{b}/snapshots"), Some(json!({}))),
        (Method::POST, format!("{b}/snapshots/v0/restore"), None),
        (Method::GET, format!("{b}/diff"), None),
        (Method::GET, format!("{b}/diff/file?path=/etc/hosts"), None),
        // exec
        (
            Method::POST,
            format!("{b}/exec"),
            Some(json!({"command": ["true"]})),
        ),
        (Method::GET, format!("{b}/logs?pid=1"), None),
        (Method::GET, format!("{b}/exec/ws"), None),
        (Method::GET, format!("{b}/console"), None),
        // files
        (
            Method::PUT,
            format!("{b}/files?path=/tmp/x"),
            Some(json!("data")),
        ),
        (Method::GET, format!("{b}/files?path=/etc/hosts"), None),
        // ports
        (Method::GET, format!("{b}/ports"), None),
        (Method::POST, format!("{b}/ports/80/wait?timeout=1"), None),
        // a base saved from a box names the box in the body
        (
            Method::POST,
            "/v1/projects/shop/bases/mine/save".to_owned(),
            Some(json!({"box": "Bad_Name"})),
        ),
    ];
    for (method, path, body) in routes {
        let (status, v) = s.admin(method.clone(), &path, body).await;
        assert_eq!(
            (status, v["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_name")),
            "{method} {path}: {v}"
        );
        assert!(
            v["message"].as_str().unwrap().contains("Bad_Name"),
            "{method} {path}: {v}"
        );
    }
    let (_, after) = s.admin(Method::GET, "/v1/projects/shop/boxes", None).await;
    assert_eq!(before, after);
    let (_, bases) = s.admin(Method::GET, "/v1/projects/shop/bases", None).await;
    assert!(
        bases
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["name"] != "mine"),
        "{bases}"
    );
}
