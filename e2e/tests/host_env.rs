//! Issue 12 over HTTP, on both backends: an exec's and a box's environment reach only the box
//! (never the host-side nsenter), and the shared volumes `/box/bin` and `/box/all` are
//! read-only in boxes and written only by an admin's `cp`. On a local target the host-side
//! checks (a marker a host process would leave) run too; through FORKR_E2E_URL the suite sees
//! the host only through the API, so it checks what the API shows.

#![allow(clippy::unwrap_used)]

use forkr_e2e::Target;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A PUT of raw bytes to the files route with `token`; the status and the JSON answer.
async fn put_file(
    t: &Target,
    token: &str,
    project: &str,
    name: &str,
    path: &str,
    mode: &str,
    body: &[u8],
) -> (StatusCode, Value) {
    let r = t
        .http
        .put(format!(
            "{}/v1/projects/{project}/boxes/{name}/files?path={path}&mode={mode}",
            t.url
        ))
        .bearer_auth(token)
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn exec(t: &Target, project: &str, name: &str, body: Value) -> Value {
    t.expect(
        StatusCode::OK,
        Method::POST,
        &format!("/v1/projects/{project}/boxes/{name}/exec"),
        Some(body),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_environment_reaches_the_box_and_never_the_host() {
    let t = Target::start().await;
    // Where the box's root sits on the host, when the suite can see the host.
    let root = t
        .data_dir()
        .map(|d| d.join("pool/roots/shop/envx").display().to_string());
    let host = tempfile::Builder::new()
        .prefix("forkr-e2e-hostenv-")
        .tempdir()
        .unwrap();
    let marker = host.path().join("ran-on-host");
    let evil_dir = match &root {
        Some(r) => format!("{r}/opt/x"),
        None => "/opt/x".to_string(),
    };
    let path = format!("{evil_dir}:/usr/bin:/bin");
    // A box whose own env carries the PATH into its root, as `4kr create -e PATH=...` would.
    t.create_box("shop", json!({"name": "envx", "env": {"PATH": path}}))
        .await;
    // Its owner plants an `nsenter` there that would leave a marker if the host ran it.
    let (s, v) = put_file(
        &t,
        &t.shop,
        "shop",
        "envx",
        "/opt/x/nsenter",
        "755",
        format!("#!/bin/sh\necho pwned > {}\n", marker.display()).as_bytes(),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");

    // The request's env, with the same PATH and loader variables, reaches the command only.
    let v = exec(
        &t,
        "shop",
        "envx",
        json!({
            "command": ["echo \"$LD_DEBUG|$LD_BIND_NOW|$MY_VAR\" > /seen"],
            "sh": true,
            "env": [format!("PATH={path}"), "LD_DEBUG=libs", "LD_BIND_NOW=1", "MY_VAR=a b'c"],
        }),
    )
    .await;
    assert_eq!(v["exit_code"], 0, "{v}");
    let v = exec(&t, "shop", "envx", json!({"command": ["cat", "/seen"]})).await;
    assert_eq!(v["stdout"], "libs|1|a b'c\n", "{v}");
    // A later exec without env, the admin's, still works and still runs no box file on the host.
    let v = exec(&t, "shop", "envx", json!({"command": ["echo", "inside"]})).await;
    assert_eq!(
        (&v["exit_code"], &v["stdout"]),
        (&json!(0), &json!("inside\n")),
        "{v}"
    );
    if root.is_some() {
        assert!(
            !marker.exists(),
            "a file of the box ran on the host as root"
        );
    }
    t.delete_boxes("shop", &["envx"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn shared_volumes_are_read_only_in_boxes_and_written_by_an_admin_only() {
    let t = Target::start().await;
    t.create_box("shop", json!({"name": "a"})).await;
    t.create_box("other", json!({"name": "b"})).await;

    // Root in project shop's box cannot plant anything in the shared volumes.
    for script in [
        "echo evil > /box/bin/forkr-e2e-ls",
        "echo evil > /box/all/forkr-e2e-ls",
    ] {
        let (code, _) = t.sh("shop", "a", &format!("{script} 2>/dev/null")).await;
        assert_ne!(code, 0, "{script} succeeded in a box");
    }
    let (_, seen) = t.sh("other", "b", "ls -A /box/bin /box/all").await;
    assert!(!seen.contains("forkr-e2e-ls"), "project other sees: {seen}");
    // /box/proj stays the project's, writable.
    assert_eq!(
        t.sh("shop", "a", "echo p > /box/proj/f && cat /box/proj/f")
            .await,
        (0, "p\n".into())
    );

    // A project token's cp into them is 403, directly or through a link in its own box.
    t.sh(
        "shop",
        "a",
        "mkdir -p /work && ln -sfn /box/bin /work/binlink && ln -sfn ../box/all /work/alllink",
    )
    .await;
    for path in [
        "/box/bin/forkr-e2e-ls",
        "/box/all/x",
        "//box/./bin/x",
        "/work/binlink/forkr-e2e-ls",
        "/work/alllink/x",
    ] {
        let (s, v) = put_file(
            &t,
            &t.shop,
            "shop",
            "a",
            path,
            "755",
            b"#!/bin/sh\necho evil\n",
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{path}: {v}");
        assert_eq!(v["error"], "forbidden", "{path}: {v}");
        assert!(
            v["message"].as_str().unwrap_or_default().contains("admin"),
            "{path}: {v}"
        );
    }
    let (_, seen) = t.sh("other", "b", "ls -A /box/bin /box/all").await;
    assert!(!seen.contains("forkr-e2e-ls"), "project other sees: {seen}");

    // An admin's cp writes the shared volume; every box of every project sees and runs it.
    let (s, v) = put_file(
        &t,
        &t.admin,
        "shop",
        "a",
        "/box/bin/forkr-e2e-tool",
        "755",
        b"#!/bin/sh\necho shared tool\n",
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = put_file(
        &t,
        &t.admin,
        "shop",
        "a",
        "/work/alllink/forkr-e2e-note",
        "644",
        b"for all\n",
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    for (p, b) in [("shop", "a"), ("other", "b")] {
        assert_eq!(
            t.sh(p, b, "/box/bin/forkr-e2e-tool; cat /box/all/forkr-e2e-note")
                .await,
            (0, "shared tool\nfor all\n".into()),
            "{p}/{b}"
        );
        let (code, _) = t
            .sh(p, b, "echo x > /box/bin/forkr-e2e-tool 2>/dev/null")
            .await;
        assert_ne!(code, 0, "{p}/{b} changed the admin's tool");
    }
    t.delete_boxes("shop", &["a"]).await;
    t.delete_boxes("other", &["b"]).await;
}
